//! Where backups are kept: an S3-compatible bucket under a key prefix (`s3://bucket/prefix`),
//! or a local directory (`file:///dir`). Objects are written whole or not at all: a directory
//! target renames a finished temporary file into place, S3 completes a multipart upload only
//! after its last part.

use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Error, Progress, Report, Result};

/// Objects larger than this go up in parts of this size (S3 needs at least 5 MiB per part).
pub const PART_SIZE: u64 = 16 << 20;

/// How to reach the S3 endpoint of an `s3://` target.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// Endpoint URL; empty means AWS (`https://s3.<region>.amazonaws.com`).
    pub endpoint: String,
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret: String,
}

/// A backup target. Cheap to clone.
#[derive(Clone)]
pub enum Target {
    /// A local directory.
    Dir(PathBuf),
    /// A bucket, with every key under `prefix` (`""` or ending with `/`).
    S3 {
        /// SDK client.
        client: Client,
        /// Bucket name.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn s3_error(e: impl std::error::Error) -> Error {
    Error::Target(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
}

/// Keys are `/`-separated segments of letters, digits, `.`, `_` and `-`, never `.` or `..`.
fn check_key(key: &str) -> Result<()> {
    let fine = !key.is_empty()
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if fine {
        Ok(())
    } else {
        Err(Error::Invalid(format!("invalid backup key {key:?}")))
    }
}

impl Target {
    /// Parses `s3://bucket/prefix` or `file:///absolute/dir`.
    pub fn from_url(url: &str, s3: &S3Settings) -> Result<Self> {
        if let Some(path) = url.strip_prefix("file://") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(Error::Invalid(
                    "a file:// backup URL needs an absolute path (file:///dir)".into(),
                ));
            }
            return Ok(Target::Dir(path));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(Error::Invalid(
                "the backup URL must start with s3:// or file://".into(),
            ));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Invalid("the backup URL names no bucket".into()));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(prefix)?;
        }
        let region = if s3.region.is_empty() {
            "us-east-1".to_string()
        } else {
            s3.region.clone()
        };
        let endpoint = if s3.endpoint.is_empty() {
            format!("https://s3.{region}.amazonaws.com")
        } else {
            s3.endpoint.clone()
        };
        let client = warren_files::s3::client(&warren_files::S3Config {
            enabled: true,
            bucket: bucket.to_string(),
            region,
            endpoint,
            access_key: s3.access_key.clone(),
            secret: s3.secret.clone(),
            force_path_style: true,
        });
        Ok(Target::S3 {
            client,
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }

    /// The target as a URL, for messages.
    pub fn describe(&self) -> String {
        match self {
            Target::Dir(dir) => format!("file://{}", dir.display()),
            Target::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    fn path(dir: &Path, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(dir.join(key))
    }

    /// Stores the file at `source` under `key`, whole or not at all.
    pub async fn put_file(&self, key: &str, source: &Path, report: Report<'_>) -> Result<()> {
        let total = tokio::fs::metadata(source).await?.len();
        let step = format!("upload {key}");
        report(Progress {
            step: step.clone(),
            done: 0,
            total,
        });
        match self {
            Target::Dir(dir) => {
                let dest = Self::path(dir, key)?;
                if let Some(parent) = dest.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                let partial = dest.with_extension(format!("partial-{}", rand::random::<u32>()));
                let copied = async {
                    tokio::fs::copy(source, &partial).await?;
                    tokio::fs::File::open(&partial).await?.sync_all().await?;
                    tokio::fs::rename(&partial, &dest).await?;
                    if let Some(parent) = dest.parent() {
                        tokio::fs::File::open(parent).await?.sync_all().await?;
                    }
                    Ok::<_, Error>(())
                }
                .await;
                if copied.is_err() {
                    let _ = tokio::fs::remove_file(&partial).await;
                }
                copied?;
            }
            Target::S3 {
                client,
                bucket,
                prefix,
            } => {
                check_key(key)?;
                let full = format!("{prefix}{key}");
                if total <= PART_SIZE {
                    let body = ByteStream::from_path(source)
                        .await
                        .map_err(|e| Error::Target(e.to_string()))?;
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(&full)
                        .body(body)
                        .send()
                        .await
                        .map_err(s3_error)?;
                } else {
                    upload_parts(client, bucket, &full, source, total, &step, report).await?;
                }
            }
        }
        report(Progress {
            step,
            done: total,
            total,
        });
        Ok(())
    }

    /// Stores `bytes` under `key`.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            Target::Dir(dir) => {
                let dest = Self::path(dir, key)?;
                if let Some(parent) = dest.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                let partial = dest.with_extension(format!("partial-{}", rand::random::<u32>()));
                let mut file = tokio::fs::File::create(&partial).await?;
                file.write_all(&bytes).await?;
                file.sync_all().await?;
                drop(file);
                tokio::fs::rename(&partial, &dest).await?;
                if let Some(parent) = dest.parent() {
                    tokio::fs::File::open(parent).await?.sync_all().await?;
                }
                Ok(())
            }
            Target::S3 {
                client,
                bucket,
                prefix,
            } => {
                check_key(key)?;
                client
                    .put_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .body(ByteStream::from(bytes))
                    .send()
                    .await
                    .map_err(s3_error)?;
                Ok(())
            }
        }
    }

    /// Reads object `key` into `dest` (created or truncated); returns its size. Reads at most
    /// `limit` bytes and fails beyond that.
    pub async fn get_file(
        &self,
        key: &str,
        dest: &Path,
        limit: u64,
        report: Report<'_>,
    ) -> Result<u64> {
        let step = format!("download {key}");
        let mut out = tokio::fs::File::create(dest).await?;
        let mut done = 0u64;
        match self {
            Target::Dir(dir) => {
                let path = Self::path(dir, key)?;
                let mut file = match tokio::fs::File::open(&path).await {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(Error::NotFound(key.to_string()));
                    }
                    Err(e) => return Err(e.into()),
                };
                let total = file.metadata().await?.len();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    done += n as u64;
                    if done > limit {
                        return Err(Error::Corrupt(format!("{key} is larger than expected")));
                    }
                    out.write_all(&buf[..n]).await?;
                    report(Progress {
                        step: step.clone(),
                        done,
                        total,
                    });
                }
            }
            Target::S3 {
                client,
                bucket,
                prefix,
            } => {
                let mut object = get_object(client, bucket, prefix, key).await?;
                let total = object.content_length().unwrap_or(0).max(0) as u64;
                while let Some(chunk) = object
                    .body
                    .try_next()
                    .await
                    .map_err(|e| Error::Target(e.to_string()))?
                {
                    done += chunk.len() as u64;
                    if done > limit {
                        return Err(Error::Corrupt(format!("{key} is larger than expected")));
                    }
                    out.write_all(&chunk).await?;
                    report(Progress {
                        step: step.clone(),
                        done,
                        total,
                    });
                }
            }
        }
        out.flush().await?;
        Ok(done)
    }

    /// Reads a small object whole (at most `limit` bytes).
    pub async fn get_bytes(&self, key: &str, limit: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        match self {
            Target::Dir(dir) => {
                let path = Self::path(dir, key)?;
                let file = match tokio::fs::File::open(&path).await {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(Error::NotFound(key.to_string()));
                    }
                    Err(e) => return Err(e.into()),
                };
                file.take(limit + 1).read_to_end(&mut buf).await?;
            }
            Target::S3 {
                client,
                bucket,
                prefix,
            } => {
                let mut object = get_object(client, bucket, prefix, key).await?;
                while let Some(chunk) = object
                    .body
                    .try_next()
                    .await
                    .map_err(|e| Error::Target(e.to_string()))?
                {
                    buf.extend_from_slice(&chunk);
                    if buf.len() as u64 > limit {
                        break;
                    }
                }
            }
        }
        if buf.len() as u64 > limit {
            return Err(Error::Corrupt(format!("{key} is larger than expected")));
        }
        Ok(buf)
    }

    /// Keys (relative to the target) under `prefix` (a key ending with `/`), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        check_key(prefix.trim_end_matches('/'))?;
        let mut keys = Vec::new();
        match self {
            Target::Dir(dir) => {
                let mut stack = vec![dir.join(prefix.trim_end_matches('/'))];
                while let Some(path) = stack.pop() {
                    let mut entries = match tokio::fs::read_dir(&path).await {
                        Ok(entries) => entries,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e.into()),
                    };
                    while let Some(entry) = entries.next_entry().await? {
                        let kind = entry.file_type().await?;
                        if kind.is_dir() {
                            stack.push(entry.path());
                        } else if kind.is_file()
                            && let Ok(rel) = entry.path().strip_prefix(dir)
                            && let Some(rel) = rel.to_str()
                            && !rel.contains(".partial-")
                        {
                            keys.push(rel.to_string());
                        }
                    }
                }
            }
            Target::S3 {
                client,
                bucket,
                prefix: root,
            } => {
                let full = format!("{root}{prefix}");
                let mut token = None;
                loop {
                    let page = client
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(&full)
                        .set_continuation_token(token.take())
                        .send()
                        .await
                        .map_err(s3_error)?;
                    for object in page.contents() {
                        if let Some(key) = object.key().and_then(|k| k.strip_prefix(root.as_str()))
                        {
                            keys.push(key.to_string());
                        }
                    }
                    match page.next_continuation_token() {
                        Some(next) if page.is_truncated() == Some(true) => {
                            token = Some(next.to_string())
                        }
                        _ => break,
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Deletes object `key` (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self {
            Target::Dir(dir) => match tokio::fs::remove_file(Self::path(dir, key)?).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            },
            Target::S3 {
                client,
                bucket,
                prefix,
            } => {
                check_key(key)?;
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .send()
                    .await
                    .map_err(s3_error)?;
                Ok(())
            }
        }
    }
}

/// A multipart upload of `source`, part by part; aborted if any part fails, so a partial
/// object never appears under `key`.
/// Starts reading `prefix + key` from the bucket; a missing key is [`Error::NotFound`].
async fn get_object(
    client: &Client,
    bucket: &str,
    prefix: &str,
    key: &str,
) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput> {
    check_key(key)?;
    let got = client
        .get_object()
        .bucket(bucket)
        .key(format!("{prefix}{key}"))
        .send()
        .await;
    match got {
        Ok(object) => Ok(object),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            Err(Error::NotFound(key.to_string()))
        }
        Err(e) => Err(s3_error(e)),
    }
}

async fn upload_parts(
    client: &Client,
    bucket: &str,
    key: &str,
    source: &Path,
    total: u64,
    step: &str,
    report: Report<'_>,
) -> Result<()> {
    let started = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(s3_error)?;
    let upload_id = started
        .upload_id()
        .ok_or_else(|| Error::Target("the server gave no upload id".into()))?
        .to_string();
    let uploaded = async {
        let mut file = tokio::fs::File::open(source).await?;
        let mut parts = Vec::new();
        let mut done = 0u64;
        let mut number = 1;
        while done < total {
            let size = PART_SIZE.min(total - done) as usize;
            let mut buf = vec![0u8; size];
            file.read_exact(&mut buf).await?;
            let part = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(s3_error)?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .build(),
            );
            done += size as u64;
            number += 1;
            report(Progress {
                step: step.to_string(),
                done,
                total,
            });
        }
        client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(s3_error)?;
        Ok::<_, Error>(())
    }
    .await;
    if uploaded.is_err() {
        let _ = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    uploaded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_target() {
        assert!(check_key("abc/20261125T101010Z-1a2b/data.db.zst").is_ok());
        for bad in ["", "../x", "a//b", "a/./b", "/abs", "a b", "a/..", "a\\b"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_are_parsed() {
        assert!(matches!(
            Target::from_url("file:///tmp/x", &S3Settings::default()).unwrap(),
            Target::Dir(_)
        ));
        assert!(Target::from_url("file://rel", &S3Settings::default()).is_err());
        assert!(Target::from_url("ftp://x", &S3Settings::default()).is_err());
        assert!(Target::from_url("s3:///p", &S3Settings::default()).is_err());
        let t = Target::from_url("s3://bucket/some/prefix/", &S3Settings::default()).unwrap();
        assert_eq!(t.describe(), "s3://bucket/some/prefix/");
    }

    #[tokio::test]
    async fn a_directory_target_round_trips_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Dir(dir.path().join("t"));
        let src = dir.path().join("src");
        std::fs::write(&src, b"hello").unwrap();
        target
            .put_file("a/b/x.zst", &src, &crate::quiet)
            .await
            .unwrap();
        target
            .put_bytes("a/c/m.json", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(
            target.list("a/").await.unwrap(),
            ["a/b/x.zst", "a/c/m.json"]
        );
        let out = dir.path().join("out");
        assert_eq!(
            target
                .get_file("a/b/x.zst", &out, 10, &crate::quiet)
                .await
                .unwrap(),
            5
        );
        assert!(
            target
                .get_file("a/b/x.zst", &out, 4, &crate::quiet)
                .await
                .is_err()
        );
        assert!(matches!(
            target.get_bytes("a/none", 10).await,
            Err(Error::NotFound(_))
        ));
        target.delete("a/b/x.zst").await.unwrap();
        assert_eq!(target.list("a/").await.unwrap(), ["a/c/m.json"]);
    }
}
