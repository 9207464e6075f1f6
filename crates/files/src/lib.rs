//! File fields' storage for Warren tenants: where uploaded files go (the tenant's local
//! `storage/` directory, the tenant's own S3 bucket, or the platform's default bucket under the
//! tenant's prefix), what they are named, what they are (sniffed, never trusted), and their
//! thumbnails, made once under decoding limits and bounded concurrency.
//!
//! It knows storage keys, bytes and images only; records, rules and HTTP belong to other
//! crates. It must not depend on axum.

pub mod mime;
pub mod name;
pub mod probe;
pub mod s3;
pub mod spool;
pub mod storage;
pub mod thumb;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

pub use s3::{S3Config, S3Storage};
pub use spool::{Spool, Staged, Upload};
pub use storage::{Backend, LocalStorage, Meta, Object, PutMeta, Storage};
pub use thumb::ThumbSize;

/// Errors of file storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key or file name would leave its directory or holds forbidden characters.
    #[error("invalid file name")]
    InvalidName,
    /// More bytes than allowed.
    #[error("file too large")]
    TooLarge,
    /// An image could not be decoded or was refused by the decoding limits.
    #[error("image: {0}")]
    Image(String),
    /// The S3 server failed or refused a request.
    #[error("s3: {0}")]
    S3(String),
    /// Local disk failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Largest source image a thumb is made from (bytes).
pub const MAX_THUMB_SOURCE: u64 = 64 << 20;

/// Node-wide file settings.
#[derive(Debug, Clone, Default)]
pub struct FilesConfig {
    /// The platform's default bucket: tenants without their own S3 settings keep files there,
    /// under `<tenant id>/`. `None` keeps them on local disk.
    pub default_s3: Option<S3Config>,
    /// Most thumbs rendered at once (0 = number of CPUs + 2).
    pub thumb_workers: usize,
}

/// The node's file service: picks each tenant's backend and renders thumbs. Cheap to clone.
#[derive(Clone)]
pub struct Files {
    inner: Arc<Inner>,
}

struct Inner {
    /// Settings.
    config: FilesConfig,
    /// S3 clients by (configuration, prefix), so connection pools are reused across requests.
    clients: Mutex<HashMap<(S3Config, String), S3Storage>>,
    /// Bounds concurrent thumb rendering (CPU work on the blocking pool).
    renders: tokio::sync::Semaphore,
    /// Thumbs being made now, by backend scope and key: the first request makes it, the
    /// others wait on the same lock and then find it stored.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Most cached S3 clients (tenants with their own buckets); the cache is cleared past it.
const MAX_CLIENTS: usize = 256;

impl Files {
    /// The service with `config`.
    pub fn new(config: FilesConfig) -> Self {
        let workers = if config.thumb_workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get()) + 2
        } else {
            config.thumb_workers
        };
        Self {
            inner: Arc::new(Inner {
                config,
                clients: Mutex::new(HashMap::new()),
                renders: tokio::sync::Semaphore::new(workers),
                inflight: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Where uploads for the tenant in `tenant_dir` are spooled.
    pub fn upload_dir(tenant_dir: &Path) -> PathBuf {
        tenant_dir.join(".uploads")
    }

    /// The backend of tenant `tenant_id`: its own S3 settings when enabled, else the platform
    /// bucket under its id, else its local `storage/` directory.
    pub fn backend(
        &self,
        tenant_id: &str,
        tenant_dir: &Path,
        own_s3: Option<&S3Config>,
    ) -> Result<Backend> {
        name::check_segment(tenant_id)?;
        let (config, prefix) = match own_s3 {
            Some(c) if c.is_usable() => (c.clone(), String::new()),
            _ => match &self.inner.config.default_s3 {
                Some(c) if c.is_usable() => (c.clone(), tenant_id.to_string()),
                _ => {
                    return Ok(Backend::Local(LocalStorage::new(
                        tenant_dir.join("storage"),
                    )));
                }
            },
        };
        let mut clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
        let key = (config, prefix);
        if let Some(client) = clients.get(&key) {
            return Ok(Backend::S3(client.clone()));
        }
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let client = S3Storage::new(&key.0, &key.1)?;
        clients.insert(key, client.clone());
        Ok(Backend::S3(client))
    }

    /// Makes sure the thumb at `thumb_key` of the image at `source_key` exists, rendering it
    /// when missing. Returns `false` when it cannot be made (not an image, too large, refused
    /// by the decoding limits): the caller serves the original then.
    pub async fn ensure_thumb(
        &self,
        backend: &Backend,
        scope: &str,
        source_key: &str,
        thumb_key: &str,
        size: ThumbSize,
    ) -> Result<bool> {
        if backend.stat(thumb_key).await?.is_some() {
            return Ok(true);
        }
        let flight = format!("{scope}\u{0}{thumb_key}");
        let lock = {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            inflight.entry(flight.clone()).or_default().clone()
        };
        let made = {
            let _guard = lock.lock().await;
            self.render_once(backend, source_key, thumb_key, size).await
        };
        {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if inflight
                .get(&flight)
                .is_some_and(|l| Arc::ptr_eq(l, &lock) && Arc::strong_count(l) <= 2)
            {
                inflight.remove(&flight);
            }
        }
        made
    }

    async fn render_once(
        &self,
        backend: &Backend,
        source_key: &str,
        thumb_key: &str,
        size: ThumbSize,
    ) -> Result<bool> {
        if backend.stat(thumb_key).await?.is_some() {
            return Ok(true);
        }
        let source = match storage::read_all(backend, source_key, MAX_THUMB_SOURCE).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) | Err(Error::TooLarge) => return Ok(false),
            Err(e) => return Err(e),
        };
        let content_type = mime::sniff(&source).mime;
        let permit = self
            .inner
            .renders
            .acquire()
            .await
            .map_err(|e| Error::Image(e.to_string()))?;
        let rendered = tokio::task::spawn_blocking(move || thumb::render(&source, size))
            .await
            .map_err(|e| Error::Image(e.to_string()))?;
        drop(permit);
        let bytes = match rendered {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::debug!(error = %e, key = source_key, "thumb refused");
                return Ok(false);
            }
        };
        let thumb_type = mime::sniff(&bytes).mime;
        let meta = PutMeta {
            content_type: if thumb_type.is_empty() {
                content_type
            } else {
                thumb_type
            },
            original_name: thumb_key.rsplit('/').next().unwrap_or_default().to_string(),
        };
        backend
            .put_bytes(thumb_key, Bytes::from(bytes), &meta)
            .await?;
        Ok(true)
    }
}
