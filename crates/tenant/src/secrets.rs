//! A tenant's secrets: names and values the operator sets for the tenant's code to read with
//! `$os.getenv`. Kept in `<tenant dir>/secrets.json` (owner-only), beside the tenant's data but
//! not in it: backups, exports and imports of the data do not carry them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Most secrets per tenant.
pub const MAX_SECRETS: usize = 64;
/// Longest name.
pub const MAX_NAME: usize = 64;
/// Largest value.
pub const MAX_VALUE: usize = 8 << 10;

/// The file holding a tenant's secrets.
pub const FILE: &str = "secrets.json";

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name outside `[A-Za-z_][A-Za-z0-9_]*` or too long.
    #[error("A secret's name is 1 to {MAX_NAME} letters, digits or _, not starting with a digit.")]
    Name,
    /// A value too large.
    #[error("A secret's value is at most {MAX_VALUE} bytes.")]
    Value,
    /// Too many secrets.
    #[error("A project has at most {MAX_SECRETS} secrets.")]
    Count,
    /// The file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Whether `name` is a valid secret name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn file(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The secrets of the tenant in `dir` (none when it has no file).
pub fn read(dir: &Path) -> Result<BTreeMap<String, String>, Error> {
    match std::fs::read(file(dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Io(std::io::Error::other(format!("{FILE}: {e}")))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e.into()),
    }
}

/// The value of secret `name` (`None` when it is not set or the name is invalid).
pub fn get(dir: &Path, name: &str) -> Option<String> {
    if !valid_name(name) {
        return None;
    }
    read(dir).ok()?.remove(name)
}

/// Sets secret `name` to `value`.
pub fn set(dir: &Path, name: &str, value: &str) -> Result<(), Error> {
    if !valid_name(name) {
        return Err(Error::Name);
    }
    if value.len() > MAX_VALUE {
        return Err(Error::Value);
    }
    let mut secrets = read(dir)?;
    if !secrets.contains_key(name) && secrets.len() >= MAX_SECRETS {
        return Err(Error::Count);
    }
    secrets.insert(name.to_string(), value.to_string());
    write(dir, &secrets)
}

/// Removes secret `name`; whether it was set.
pub fn unset(dir: &Path, name: &str) -> Result<bool, Error> {
    if !valid_name(name) {
        return Err(Error::Name);
    }
    let mut secrets = read(dir)?;
    if secrets.remove(name).is_none() {
        return Ok(false);
    }
    write(dir, &secrets)?;
    Ok(true)
}

/// Replaces the file at once (a temporary file renamed over it), readable by the owner only.
fn write(dir: &Path, secrets: &BTreeMap<String, String>) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let staged = dir.join(format!(".{FILE}.tmp"));
    let bytes = serde_json::to_vec(secrets).map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staged)?;
    out.write_all(&bytes)?;
    out.sync_all()?;
    std::fs::rename(&staged, file(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_set_read_and_removed_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(get(dir.path(), "API_KEY"), None);
        set(dir.path(), "API_KEY", "s3cret").unwrap();
        assert_eq!(get(dir.path(), "API_KEY").as_deref(), Some("s3cret"));
        set(dir.path(), "API_KEY", "other").unwrap();
        assert_eq!(get(dir.path(), "API_KEY").as_deref(), Some("other"));
        for bad in ["", "1A", "A-B", "PATH/X", "A B", &"A".repeat(MAX_NAME + 1)] {
            assert!(
                matches!(set(dir.path(), bad, "v"), Err(Error::Name)),
                "{bad}"
            );
        }
        assert!(matches!(
            set(dir.path(), "BIG", &"x".repeat(MAX_VALUE + 1)),
            Err(Error::Value)
        ));
        for i in 1..MAX_SECRETS {
            set(dir.path(), &format!("K{i}"), "v").unwrap();
        }
        assert!(matches!(
            set(dir.path(), "ONE_MORE", "v"),
            Err(Error::Count)
        ));
        assert!(unset(dir.path(), "API_KEY").unwrap());
        assert!(!unset(dir.path(), "API_KEY").unwrap());
        assert_eq!(get(dir.path(), "API_KEY"), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
