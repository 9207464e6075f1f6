//! The S3 backend: any S3-compatible server, path-style addressing, rustls over ring, keys
//! under an optional per-tenant prefix (so tenants sharing the platform bucket never see each
//! other's objects).

use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::name::check_key;
use crate::storage::{Meta, Object, PutMeta, Storage};
use crate::{Error, Result};

/// Where and how to reach a bucket (the shape of PocketBase's `settings.s3`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct S3Config {
    /// Whether this configuration is in use.
    pub enabled: bool,
    /// Bucket name.
    pub bucket: String,
    /// Region (any non-empty name for most S3-compatible servers).
    pub region: String,
    /// Endpoint URL, e.g. `http://127.0.0.1:8333`.
    pub endpoint: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret: String,
    /// Path-style addressing (always used; kept for PocketBase's settings shape).
    pub force_path_style: bool,
}

impl S3Config {
    /// Whether the configuration can be used at all.
    pub fn is_usable(&self) -> bool {
        self.enabled && !self.bucket.is_empty() && !self.endpoint.is_empty()
    }
}

/// Objects in one bucket, under one key prefix.
#[derive(Clone)]
pub struct S3Storage {
    /// The SDK client (cheap to clone, shares its connection pool).
    client: Client,
    /// Bucket name.
    bucket: String,
    /// Prefix put before every key (`""` or ends with `/`).
    prefix: String,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// An SDK client for `config`'s endpoint: path-style addressing, static credentials, rustls over
/// ring, checksums only where S3 requires them. Shared by every part of Warren that talks to S3.
pub fn client(config: &S3Config) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let region = if config.region.is_empty() {
        "us-east-1".to_string()
    } else {
        config.region.clone()
    };
    let sdk = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .endpoint_url(config.endpoint.clone())
        .credentials_provider(Credentials::new(
            config.access_key.clone(),
            config.secret.clone(),
            None,
            None,
            "warren",
        ))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .build(),
        )
        .http_client(http)
        .build();
    Client::from_conf(sdk)
}

fn s3_error(e: impl std::fmt::Display) -> Error {
    Error::S3(e.to_string())
}

impl S3Storage {
    /// A client for `config`'s bucket, putting `prefix` before every key.
    pub fn new(config: &S3Config, prefix: &str) -> Result<Self> {
        if config.bucket.is_empty() || config.endpoint.is_empty() {
            return Err(Error::S3("bucket and endpoint are required".into()));
        }
        let client = client(config);
        let prefix = prefix.trim_matches('/');
        Ok(Self {
            client,
            bucket: config.bucket.clone(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }

    fn key(&self, key: &str) -> Result<String> {
        check_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    fn modified(t: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
        t.and_then(|d| SystemTime::try_from(*d).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    async fn put(&self, key: &str, body: ByteStream, meta: &PutMeta) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key)?)
            .content_type(&meta.content_type)
            .metadata("original-filename", &meta.original_name)
            .body(body)
            .send()
            .await
            .map_err(|e| s3_error(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }
}

impl Storage for S3Storage {
    async fn put_file(&self, key: &str, source: &Path, meta: &PutMeta) -> Result<()> {
        let body = ByteStream::from_path(source).await.map_err(s3_error)?;
        self.put(key, body, meta).await
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes, meta: &PutMeta) -> Result<()> {
        self.put(key, ByteStream::from(bytes), meta).await
    }

    async fn stat(&self, key: &str) -> Result<Option<Meta>> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key)?)
            .send()
            .await;
        match out {
            Ok(head) => Ok(Some(Meta {
                size: head.content_length().unwrap_or(0).max(0) as u64,
                modified: Self::modified(head.last_modified()),
                content_type: head.content_type().map(str::to_string),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error(aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Object>> {
        let Some(meta) = self.stat(key).await? else {
            return Ok(None);
        };
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key)?);
        if let Some((start, end)) = range {
            request = request.range(format!("bytes={start}-{end}"));
        }
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Ok(None);
            }
            Err(e) => return Err(s3_error(aws_sdk_s3::error::DisplayErrorContext(e))),
        };
        let body = futures_util::stream::unfold(out.body, |mut body| async move {
            match body.try_next().await {
                Ok(Some(chunk)) => Some((Ok(chunk), body)),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), body)),
            }
        });
        Ok(Some(Object {
            meta,
            body: Box::pin(body),
        }))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key)?)
            .send()
            .await
            .map_err(|e| s3_error(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let full = self.key(prefix)?;
        let full = if full.ends_with('/') {
            full
        } else {
            format!("{full}/")
        };
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    self.client
                        .delete_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .send()
                        .await
                        .map_err(|e| s3_error(aws_sdk_s3::error::DisplayErrorContext(e)))?;
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(()),
            }
        }
    }
}
