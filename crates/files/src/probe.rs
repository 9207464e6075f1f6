//! A connection test of S3 settings: a probe object written, listed and deleted.

use std::time::Duration;

use bytes::Bytes;

use crate::s3::{S3Config, S3Storage};
use crate::storage::{PutMeta, Storage};

/// The whole test gives up after this long (an endpoint that accepts and never answers).
const PROBE_TIME: Duration = Duration::from_secs(30);

/// Tries `config`: uploads a 4-byte object under a random `pb_settings_test_*/` prefix, then
/// deletes that prefix (which lists it first). `Err` says which step failed and why, in words
/// fit for the superuser who typed the settings.
pub async fn probe_s3(config: &S3Config) -> Result<(), String> {
    if !config.enabled {
        return Err("S3 storage filesystem is not enabled".into());
    }
    let storage = S3Storage::new(config, "")
        .map_err(|e| format!("failed to initialize the S3 filesystem: {e}"))?;
    let prefix = format!("pb_settings_test_{}", random_suffix());
    let key = format!("{prefix}/test.txt");
    let steps = async {
        storage
            .put_bytes(&key, Bytes::from_static(b"test"), &PutMeta::default())
            .await
            .map_err(|e| format!("failed to upload a test file: {e}"))?;
        storage
            .delete_prefix(&format!("{prefix}/"))
            .await
            .map_err(|e| format!("failed to delete a test file: {e}"))
    };
    tokio::time::timeout(PROBE_TIME, steps)
        .await
        .map_err(|_| format!("no answer within {} seconds", PROBE_TIME.as_secs()))?
}

/// Five random lowercase letters and digits.
fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
