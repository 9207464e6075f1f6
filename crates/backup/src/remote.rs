//! Files a tenant keeps in S3 (its own bucket from `settings.s3`, or the platform's default
//! bucket under its id): a snapshot downloads every object of the tenant's collections into
//! scratch space, where they are packed like local files (`s3files.tar.zst`, object bytes
//! under `objects/` and each object's content type and file name under `meta/`); a restore
//! uploads them back to wherever the restored tenant keeps its files.
//!
//! Only keys under `<prefix><collection id>/` are copied, so a tenant's own bucket that holds
//! other things besides never has those in its backups.

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
pub use warren_files::S3Config;
use warren_store::sql::{Connection, OpenFlags, OptionalExtension};

use crate::{Error, Progress, Report, Result};

/// Name of the packed object and of its entry in the manifest.
pub const NAME: &str = "s3files";

/// Where a tenant's files live in S3: the bucket's settings and the key prefix (`""` or
/// `<tenant id>/`).
#[derive(Debug, Clone)]
pub struct Bucket {
    /// The bucket.
    pub config: S3Config,
    /// Put before every key.
    pub prefix: String,
}

/// An object's recorded facts, restored with it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    content_type: String,
    original_name: String,
}

fn s3_error(e: impl std::error::Error) -> Error {
    Error::Target(format!(
        "file bucket: {}",
        aws_sdk_s3::error::DisplayErrorContext(e)
    ))
}

/// Where the tenant whose database is `db` keeps its files: its own bucket when its settings
/// enable one, else `default` under `<tenant_id>/`; `None` when its files are local.
pub fn locate(db: &Path, tenant_id: &str, default: Option<&S3Config>) -> Result<Option<Bucket>> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let stored: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM _params WHERE id = 'settings'", [], |r| {
            Ok(match r.get_ref(0)? {
                warren_store::sql::ValueRef::Text(b) | warren_store::sql::ValueRef::Blob(b) => {
                    Some(b.to_vec())
                }
                _ => None,
            })
        })
        .optional()
        .unwrap_or(None)
        .flatten();
    let own = stored
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::from_value::<S3Config>(v.get("s3")?.clone()).ok())
        .filter(S3Config::is_usable);
    Ok(match (own, default) {
        (Some(config), _) => Some(Bucket {
            config,
            prefix: String::new(),
        }),
        (None, Some(config)) if config.is_usable() => Some(Bucket {
            config: config.clone(),
            prefix: format!("{tenant_id}/"),
        }),
        _ => None,
    })
}

/// Ids of the collections of the database at `db` (their files live under `<id>/`).
pub fn collections(db: &Path) -> Result<Vec<String>> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let ids = conn
        .prepare("SELECT id FROM _collections WHERE type != 'view' ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

/// Whether `rel` is a key that stays inside a directory: `/`-separated plain segments.
fn safe(rel: &str) -> bool {
    !rel.is_empty()
        && rel.len() <= 1024
        && rel.split('/').all(|s| {
            !s.is_empty() && s != "." && s != ".." && !s.contains('\\') && !s.contains('\0')
        })
}

/// Downloads every object under `<prefix><collection>/` into `dest` (`objects/<key>` and
/// `meta/<key>`). Returns the bytes downloaded.
pub async fn download(
    bucket: &Bucket,
    collections: &[String],
    dest: &Path,
    report: Report<'_>,
) -> Result<u64> {
    let client = warren_files::s3::client(&bucket.config);
    let mut done = 0u64;
    for collection in collections {
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(&bucket.config.bucket)
                .prefix(format!("{}{collection}/", bucket.prefix))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(s3_error)?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let Some(rel) = key.strip_prefix(&bucket.prefix).filter(|r| safe(r)) else {
                    tracing::warn!(key, "file key skipped by the backup: not a plain path");
                    continue;
                };
                done += fetch_one(&client, bucket, key, rel, dest).await?;
                report(Progress {
                    step: "copy files from S3".into(),
                    done,
                    total: 0,
                });
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
    }
    Ok(done)
}

async fn fetch_one(
    client: &aws_sdk_s3::Client,
    bucket: &Bucket,
    key: &str,
    rel: &str,
    dest: &Path,
) -> Result<u64> {
    let got = client
        .get_object()
        .bucket(&bucket.config.bucket)
        .key(key)
        .send()
        .await;
    let mut object = match got {
        Ok(object) => object,
        // Deleted since it was listed: it is simply not in the backup.
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(0),
        Err(e) => return Err(s3_error(e)),
    };
    let meta = Meta {
        content_type: object.content_type().unwrap_or_default().to_string(),
        original_name: object
            .metadata()
            .and_then(|m| m.get("original-filename"))
            .cloned()
            .unwrap_or_default(),
    };
    let path = dest.join("objects").join(rel);
    tokio::fs::create_dir_all(path.parent().unwrap_or(dest)).await?;
    let mut out = tokio::fs::File::create(&path).await?;
    let mut size = 0u64;
    while let Some(chunk) = object
        .body
        .try_next()
        .await
        .map_err(|e| Error::Target(format!("file bucket: {e}")))?
    {
        size += chunk.len() as u64;
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    let meta_path = dest.join("meta").join(rel);
    tokio::fs::create_dir_all(meta_path.parent().unwrap_or(dest)).await?;
    tokio::fs::write(
        &meta_path,
        serde_json::to_vec(&meta).map_err(|e| Error::Invalid(e.to_string()))?,
    )
    .await?;
    Ok(size)
}

/// Uploads the objects unpacked at `src` (see [`download`]) to `bucket`. Returns how many.
pub async fn upload(bucket: &Bucket, src: &Path, report: Report<'_>) -> Result<u64> {
    let objects = src.join("objects");
    let mut files = Vec::new();
    walk(&objects, PathBuf::new(), &mut files)?;
    let client = warren_files::s3::client(&bucket.config);
    let total = files.len() as u64;
    for (n, rel) in files.iter().enumerate() {
        let rel_key = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if !safe(&rel_key) {
            return Err(Error::Corrupt(format!("{rel_key:?} is not a file key")));
        }
        let meta: Meta = match tokio::fs::read(src.join("meta").join(rel)).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => Meta::default(),
        };
        let body = ByteStream::from_path(objects.join(rel))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let mut put = client
            .put_object()
            .bucket(&bucket.config.bucket)
            .key(format!("{}{rel_key}", bucket.prefix))
            .body(body);
        if !meta.content_type.is_empty() {
            put = put.content_type(meta.content_type);
        }
        if !meta.original_name.is_empty() {
            put = put.metadata("original-filename", meta.original_name);
        }
        put.send().await.map_err(s3_error)?;
        report(Progress {
            step: "put files back into S3".into(),
            done: n as u64 + 1,
            total,
        });
    }
    Ok(total)
}

/// Every regular file under `root/rel` (none when it does not exist), as paths relative to
/// `root`.
pub(crate) fn walk(root: &Path, rel: PathBuf, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(root.join(&rel)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = rel.join(entry.file_name());
        if kind.is_dir() {
            walk(root, path, out)?;
        } else if kind.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// After a restore is fetched into `staging`: puts the files the backup took from S3 back
/// where the restored tenant `tenant_id` keeps them, then removes them from `staging`.
/// Nothing to do for a backup without files in S3.
pub async fn put_back(
    staging: &Path,
    tenant_id: &str,
    default: Option<&S3Config>,
    report: Report<'_>,
) -> Result<u64> {
    let unpacked = staging.join(NAME);
    if !tokio::fs::try_exists(&unpacked).await? {
        return Ok(0);
    }
    let db = staging.join("data.db");
    let (id, default) = (tenant_id.to_string(), default.cloned());
    let bucket = tokio::task::spawn_blocking(move || locate(&db, &id, default.as_ref()))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    let Some(bucket) = bucket else {
        return Err(Error::Invalid(
            "the backup holds files kept in S3, but the restored tenant has no S3 storage \
             (set the platform's file bucket, --s3-*)"
                .into(),
        ));
    };
    let count = upload(&bucket, &unpacked, report).await?;
    tokio::fs::remove_dir_all(&unpacked).await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_keys_are_copied() {
        assert!(safe("pbc_1/rec/file_abc.txt"));
        assert!(safe("pbc_1/rec/thumbs_file.png/100x100_file.png"));
        for bad in ["", "../x", "a//b", "a/./b", "/abs", "a\\b", "a/"] {
            assert!(!safe(bad), "{bad:?}");
        }
    }
}
