//! Where file bytes live: the [`Storage`] trait with a local-disk backend (the tenant's
//! `storage/` directory, laid out as PocketBase lays out `pb_data/storage`) and an S3 backend.
//!
//! Keys are relative, `/`-separated and checked segment by segment before any backend sees
//! them, so no key can leave its root. Bodies stream in both directions.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::name::check_key;
use crate::s3::S3Storage;
use crate::{Error, Result};

/// A streamed body.
pub type Body = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Facts about a stored object.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub modified: SystemTime,
    /// The content type recorded at upload, when known.
    pub content_type: Option<String>,
}

/// An object being read: its facts and (part of) its bytes.
pub struct Object {
    /// The whole object's facts.
    pub meta: Meta,
    /// The requested bytes.
    pub body: Body,
}

/// What is recorded with a new object.
#[derive(Debug, Clone, Default)]
pub struct PutMeta {
    /// Its sniffed content type.
    pub content_type: String,
    /// The client's file name.
    pub original_name: String,
}

/// A place to keep files. Keys are checked by the caller-facing functions; backends check
/// them again before touching anything.
pub trait Storage: Send + Sync {
    /// Stores the file at `source` under `key`, streaming it.
    fn put_file(
        &self,
        key: &str,
        source: &Path,
        meta: &PutMeta,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Stores `bytes` under `key`.
    fn put_bytes(
        &self,
        key: &str,
        bytes: Bytes,
        meta: &PutMeta,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The object's facts, or `None` when it does not exist.
    fn stat(&self, key: &str) -> impl Future<Output = Result<Option<Meta>>> + Send;
    /// Reads the object (bytes `start..=end` of it when `range` is given).
    fn get(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> impl Future<Output = Result<Option<Object>>> + Send;
    /// Deletes one object (missing is fine).
    fn delete(&self, key: &str) -> impl Future<Output = Result<()>> + Send;
    /// Deletes every object under `prefix` (which ends with `/`).
    fn delete_prefix(&self, prefix: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Reads a whole object into memory, refusing objects above `max` bytes.
pub async fn read_all(store: &impl Storage, key: &str, max: u64) -> Result<Option<Vec<u8>>> {
    use futures_util::StreamExt;
    let Some(object) = store.get(key, None).await? else {
        return Ok(None);
    };
    if object.meta.size > max {
        return Err(Error::TooLarge);
    }
    let mut out = Vec::with_capacity(object.meta.size as usize);
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() as u64 > max {
            return Err(Error::TooLarge);
        }
    }
    Ok(Some(out))
}

/// The chosen backend of one tenant. An S3 call's future is boxed: it is several kilobytes,
/// and held inline it would make every future that may call the backend (each record write's)
/// that large, copied whole as it is boxed for each request.
#[derive(Clone)]
pub enum Backend {
    /// Files on local disk.
    Local(LocalStorage),
    /// Files in an S3 bucket.
    S3(S3Storage),
}

impl Storage for Backend {
    async fn put_file(&self, key: &str, source: &Path, meta: &PutMeta) -> Result<()> {
        match self {
            Backend::Local(s) => s.put_file(key, source, meta).await,
            Backend::S3(s) => Box::pin(s.put_file(key, source, meta)).await,
        }
    }
    async fn put_bytes(&self, key: &str, bytes: Bytes, meta: &PutMeta) -> Result<()> {
        match self {
            Backend::Local(s) => s.put_bytes(key, bytes, meta).await,
            Backend::S3(s) => Box::pin(s.put_bytes(key, bytes, meta)).await,
        }
    }
    async fn stat(&self, key: &str) -> Result<Option<Meta>> {
        match self {
            Backend::Local(s) => s.stat(key).await,
            Backend::S3(s) => Box::pin(s.stat(key)).await,
        }
    }
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Object>> {
        match self {
            Backend::Local(s) => s.get(key, range).await,
            Backend::S3(s) => Box::pin(s.get(key, range)).await,
        }
    }
    async fn delete(&self, key: &str) -> Result<()> {
        match self {
            Backend::Local(s) => s.delete(key).await,
            Backend::S3(s) => Box::pin(s.delete(key)).await,
        }
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        match self {
            Backend::Local(s) => s.delete_prefix(prefix).await,
            Backend::S3(s) => Box::pin(s.delete_prefix(prefix)).await,
        }
    }
}

/// Files under one directory (a tenant's `storage/`), with PocketBase's `.attrs` sidecars so a
/// stock PocketBase serves them with the same content type.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    /// The storage root.
    root: PathBuf,
}

/// Chunk size of streamed reads.
const CHUNK: usize = 64 << 10;

impl LocalStorage {
    /// Storage rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key.trim_end_matches('/')))
    }

    fn attrs_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".attrs");
        PathBuf::from(name)
    }

    async fn write_attrs(path: &Path, meta: &PutMeta) -> Result<()> {
        let attrs = json!({
            "user.cache_control": "",
            "user.content_disposition": "",
            "user.content_encoding": "",
            "user.content_language": "",
            "user.content_type": meta.content_type,
            "user.metadata": {"original-filename": meta.original_name},
            "md5": null,
        });
        tokio::fs::write(Self::attrs_path(path), attrs.to_string()).await?;
        Ok(())
    }

    /// A temporary sibling of `path` to write into before renaming over it.
    fn partial(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{}.part", crate::name::random_suffix(8)));
        PathBuf::from(name)
    }

    async fn place(
        &self,
        key: &str,
        meta: &PutMeta,
        fill: impl AsyncFnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<()> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let partial = Self::partial(&path);
        if let Err(e) = fill(&partial).await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e.into());
        }
        Self::write_attrs(&path, meta).await?;
        if let Err(e) = tokio::fs::rename(&partial, &path).await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e.into());
        }
        Ok(())
    }
}

impl Storage for LocalStorage {
    async fn put_file(&self, key: &str, source: &Path, meta: &PutMeta) -> Result<()> {
        self.place(key, meta, async |partial| {
            // A hard link costs nothing when the upload was spooled on the same filesystem.
            match tokio::fs::hard_link(source, partial).await {
                Ok(()) => Ok(()),
                Err(_) => tokio::fs::copy(source, partial).await.map(|_| ()),
            }
        })
        .await
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes, meta: &PutMeta) -> Result<()> {
        self.place(key, meta, async |partial| {
            tokio::fs::write(partial, &bytes).await
        })
        .await
    }

    async fn stat(&self, key: &str) -> Result<Option<Meta>> {
        let path = self.path(key)?;
        let metadata = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let content_type = match tokio::fs::read(Self::attrs_path(&path)).await {
            Ok(raw) => serde_json::from_slice::<serde_json::Value>(&raw)
                .ok()
                .and_then(|v| {
                    v.get("user.content_type")
                        .and_then(|t| t.as_str())
                        .map(str::to_string)
                })
                .filter(|t| !t.is_empty()),
            Err(_) => None,
        };
        Ok(Some(Meta {
            size: metadata.len(),
            modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            content_type,
        }))
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Object>> {
        let Some(meta) = self.stat(key).await? else {
            return Ok(None);
        };
        let mut file = match tokio::fs::File::open(self.path(key)?).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (start, end) = range.unwrap_or((0, meta.size.saturating_sub(1)));
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start)).await?;
        }
        let remaining = if meta.size == 0 { 0 } else { end + 1 - start };
        let body = futures_util::stream::unfold((file, remaining), |(mut file, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; CHUNK.min(left as usize)];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
                }
                Err(e) => Some((Err(e), (file, 0))),
            }
        });
        Ok(Some(Object {
            meta,
            body: Box::pin(body),
        }))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        for p in [Self::attrs_path(&path), path] {
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let path = self.path(prefix)?;
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn text(store: &LocalStorage, key: &str, range: Option<(u64, u64)>) -> String {
        use futures_util::StreamExt;
        let mut body = store.get(key, range).await.unwrap().unwrap().body;
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn local_files_round_trip_with_ranges_and_attrs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::new(dir.path().join("storage"));
        let meta = PutMeta {
            content_type: "text/plain; charset=utf-8".into(),
            original_name: "a.txt".into(),
        };
        store
            .put_bytes("c1/r1/a_x.txt", Bytes::from_static(b"hello world"), &meta)
            .await
            .unwrap();
        assert_eq!(text(&store, "c1/r1/a_x.txt", None).await, "hello world");
        assert_eq!(text(&store, "c1/r1/a_x.txt", Some((6, 10))).await, "world");
        let stat = store.stat("c1/r1/a_x.txt").await.unwrap().unwrap();
        assert_eq!(stat.size, 11);
        assert_eq!(
            stat.content_type.as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert!(dir.path().join("storage/c1/r1/a_x.txt.attrs").exists());
        store.delete_prefix("c1/r1/").await.unwrap();
        assert!(store.stat("c1/r1/a_x.txt").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn keys_outside_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::new(dir.path().join("storage"));
        let meta = PutMeta::default();
        for key in ["../x", "/etc/passwd", "a/../../x", "a//b", "a/.b"] {
            assert!(
                store.put_bytes(key, Bytes::new(), &meta).await.is_err(),
                "{key}"
            );
            assert!(store.get(key, None).await.is_err(), "{key}");
        }
        assert!(!dir.path().join("x").exists());
    }
}
