//! A tenant's own PocketBase-style backups (what `/api/backups` serves): zips of its data
//! directory kept in `<tenant dir>/backups/`, made, checked and restored with the same export,
//! unpack and build steps as `warren tenant export` / `import`.
//!
//! Invariants:
//! - A key is a plain file name (`^[a-z0-9_-]+\.zip$`, at most 150 bytes), so no key reaches
//!   outside the backups directory. Files are written beside their place and renamed in.
//! - At most one backup or restore runs per tenant ([`Backups::begin`]); the key in use
//!   cannot be deleted meanwhile.
//! - A zip is unpacked and built into a complete, checked tenant directory in scratch space
//!   before anything is replaced: a damaged zip is refused and changes nothing. A restore then
//!   drains the tenant (requests get 503, realtime clients are disconnected) and swaps the
//!   directories; the registry carries the backups directory over (as on every swap).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::archive::{self, Limits};
use crate::transfer::{self, Files};
use crate::{Error, Registry, Result, Tenant};

/// The backups directory inside a tenant's directory.
pub const BACKUPS_DIR: &str = "backups";
/// Longest key (PocketBase's limit on a backup name).
pub const MAX_KEY: usize = 150;
/// How long a restore waits for the tenant's requests in flight.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// Most entries a backup zip may hold.
const MAX_ENTRIES: usize = 1_000_000;
/// Unpacked bytes allowed per zip byte, and at least this many (zip-bomb bound).
const MAX_RATIO: u64 = 100;
const MIN_UNPACKED: u64 = 256 << 20;

/// The plan's bounds on a tenant's kept backups; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Most backups kept at once.
    pub max_count: u64,
    /// Most bytes of all kept backups together.
    pub max_bytes: u64,
}

/// One kept backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    /// Its file name.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// Key prefix of the backups the `__pbAutoBackup__` cron job makes (PocketBase's).
pub const AUTO_PREFIX: &str = "@auto_pb_backup_";

/// PocketBase's generated backup name: `<prefix><app name in snake case>_<UTC time>.zip`
/// (`pb_backup_` for one made on request, [`AUTO_PREFIX`] for the cron's).
pub async fn generated_name(tenant: &Tenant, prefix: &str) -> String {
    let app = match tenant.settings().await {
        Ok(settings) => settings["meta"]["appName"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        Err(_) => String::new(),
    };
    let mut snake = String::new();
    for c in app.chars() {
        if c.is_ascii_alphanumeric() {
            snake.push(c.to_ascii_lowercase());
        } else if !snake.is_empty() && !snake.ends_with('_') {
            snake.push('_');
        }
    }
    let snake: String = snake.trim_end_matches('_').chars().take(50).collect();
    let stamp: String = warren_schema::datetime::DateTime::now()
        .format()
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    format!("{prefix}{snake}_{stamp}.zip")
}

/// Whether `key` names a kept backup: a name a user may choose ([`valid_name`]), or one the
/// backups cron made (the same with a leading `@`, which no user-chosen name has).
pub fn valid_key(key: &str) -> bool {
    valid_name(key.strip_prefix('@').unwrap_or(key))
}

/// Whether `key` is a backup file name a user may choose (`^[a-z0-9_-]+\.zip$`).
pub fn valid_name(key: &str) -> bool {
    let Some(stem) = key.strip_suffix(".zip") else {
        return false;
    };
    key.len() <= MAX_KEY
        && !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The path of backup `key` of the tenant in `dir`, if the key is valid.
pub fn path_of(dir: &Path, key: &str) -> Option<PathBuf> {
    valid_key(key).then(|| dir.join(BACKUPS_DIR).join(key))
}

/// The backups of the tenant in `dir`, by key.
pub async fn list(dir: &Path) -> Result<Vec<BackupFile>> {
    let mut entries = match tokio::fs::read_dir(dir.join(BACKUPS_DIR)).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut found = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let key = entry.file_name().to_string_lossy().into_owned();
        let meta = match entry.metadata().await {
            Ok(meta) => meta,
            // Removed since the directory was read (a rotation, a delete): not listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        if !meta.is_file() || !valid_key(&key) {
            continue;
        }
        found.push(BackupFile {
            key,
            size: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

/// Refuses one more backup of `adding` bytes when `quota` would be passed.
pub async fn check_quota(dir: &Path, quota: Quota, adding: u64) -> Result<()> {
    let kept = list(dir).await?;
    if quota.max_count > 0 && kept.len() as u64 >= quota.max_count {
        return Err(Error::Invalid(format!(
            "The project's plan keeps at most {} backups; delete one first.",
            quota.max_count
        )));
    }
    let total = kept
        .iter()
        .map(|b| b.size)
        .sum::<u64>()
        .saturating_add(adding);
    if quota.max_bytes > 0 && total > quota.max_bytes {
        return Err(Error::Invalid(format!(
            "The project's plan keeps at most {} bytes of backups; delete one first.",
            quota.max_bytes
        )));
    }
    Ok(())
}

/// Deletes backup `key` of the tenant in `dir`; `NotFound` when there is none.
pub async fn delete(dir: &Path, key: &str) -> Result<()> {
    let path = path_of(dir, key).ok_or(Error::NotFound)?;
    match tokio::fs::remove_file(&path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Whether backup `key` exists in the tenant's directory `dir`.
pub async fn exists(dir: &Path, key: &str) -> Result<bool> {
    match path_of(dir, key) {
        Some(path) => Ok(tokio::fs::try_exists(&path).await?),
        None => Ok(false),
    }
}

/// Backups and restores of this node's tenants: who is running one, and the registry that
/// drains a tenant for a restore. Cheap to clone.
#[derive(Clone, Default)]
pub struct Backups {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The open tenants; without one (a router without a server) restores are refused.
    registry: Option<Registry>,
    /// The backup key in use per tenant id, while a backup or restore runs.
    active: Mutex<HashMap<String, String>>,
}

/// Marks a backup or restore of one tenant as running; dropping it ends that.
pub struct Active {
    backups: Backups,
    id: String,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.backups.active().remove(&self.id);
    }
}

impl Backups {
    /// Backups of the tenants open in `registry`.
    pub fn new(registry: Registry) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry: Some(registry),
                active: Mutex::default(),
            }),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Single inserts and removals: a poisoned map is still consistent.
        self.inner.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a backup or restore of tenant `id` using `key`; `None` when one already runs.
    pub fn begin(&self, id: &str, key: &str) -> Option<Active> {
        let mut active = self.active();
        if active.contains_key(id) {
            return None;
        }
        active.insert(id.to_string(), key.to_string());
        Some(Active {
            backups: self.clone(),
            id: id.to_string(),
        })
    }

    /// Whether a backup or restore of tenant `id` runs now.
    pub fn is_running(&self, id: &str) -> bool {
        self.active().contains_key(id)
    }

    /// Whether backup `key` of tenant `id` is in use by a running backup or restore.
    pub fn in_use(&self, id: &str, key: &str) -> bool {
        self.active().get(id).is_some_and(|k| k == key)
    }

    /// Writes `tenant` as backup `key` (which must not exist): the export `warren tenant
    /// export` makes, zipped. Returns its size.
    pub async fn create(&self, tenant: &Tenant, key: &str) -> Result<u64> {
        let path = path_of(tenant.dir(), key).ok_or_else(|| invalid_key(key))?;
        let root = root_of(tenant)?;
        let (export, zip) = (
            scratch(&root, ".export-", ""),
            scratch(&root, ".export-", ".zip"),
        );
        let made = async {
            transfer::export(&root, tenant.id(), &export).await?;
            let (from, to) = (export.clone(), zip.clone());
            let size = blocking(move || archive::pack(&from, &to, &transfer::quiet)).await?;
            tokio::fs::create_dir_all(tenant.dir().join(BACKUPS_DIR)).await?;
            if tokio::fs::try_exists(&path).await? {
                return Err(Error::Invalid(format!("the backup {key} already exists")));
            }
            tokio::fs::rename(&zip, &path).await?;
            Ok(size)
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&export).await;
        let _ = tokio::fs::remove_file(&zip).await;
        made
    }

    /// Makes an automatic backup of `tenant` (the `__pbAutoBackup__` cron job): a new
    /// [`AUTO_PREFIX`] backup within `quota`, then only the `keep` newest automatic backups
    /// are kept (0 keeps all), as PocketBase rotates them. Returns the new key.
    pub async fn auto_backup(&self, tenant: &Tenant, quota: Quota, keep: usize) -> Result<String> {
        let key = generated_name(tenant, AUTO_PREFIX).await;
        check_quota(tenant.dir(), quota, 0).await?;
        let Some(active) = self.begin(tenant.id(), &key) else {
            return Err(Error::Invalid(
                "another backup or restore of the project is running".into(),
            ));
        };
        let made = self.create(tenant, &key).await;
        drop(active);
        made?;
        let over = Quota {
            max_count: 0,
            ..quota
        };
        if let Err(e) = check_quota(tenant.dir(), over, 0).await {
            let _ = delete(tenant.dir(), &key).await;
            return Err(e);
        }
        if keep > 0 {
            let mut made: Vec<BackupFile> = list(tenant.dir())
                .await?
                .into_iter()
                .filter(|b| b.key.starts_with(AUTO_PREFIX))
                .collect();
            made.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.key.cmp(&a.key)));
            for old in made.iter().skip(keep) {
                if !self.in_use(tenant.id(), &old.key) {
                    delete(tenant.dir(), &old.key).await?;
                }
            }
        }
        Ok(key)
    }

    /// Keeps the uploaded zip `from` as backup `key` of `tenant` once [`stage`] has checked
    /// that it restores; a damaged zip is refused and nothing is kept.
    pub async fn add(&self, tenant: &Tenant, key: &str, from: &Path) -> Result<()> {
        let path = path_of(tenant.dir(), key).ok_or_else(|| invalid_key(key))?;
        let root = root_of(tenant)?;
        let staging = stage(&root, from).await?;
        let _ = tokio::fs::remove_dir_all(&staging).await;
        tokio::fs::create_dir_all(tenant.dir().join(BACKUPS_DIR)).await?;
        let part = scratch(&tenant.dir().join(BACKUPS_DIR), ".", ".part");
        let copied = async {
            tokio::fs::copy(from, &part).await?;
            if tokio::fs::try_exists(&path).await? {
                return Err(Error::Invalid(format!("the backup {key} already exists")));
            }
            tokio::fs::rename(&part, &path).await?;
            Ok(())
        }
        .await;
        let _ = tokio::fs::remove_file(&part).await;
        copied
    }

    /// Replaces `tenant` by the contents of backup `key`. The zip is unpacked and checked
    /// before this returns (a damaged one is refused, nothing changes); the tenant is then
    /// drained and swapped in the background, once the caller's request has finished with
    /// it. `active` is held until the swap is done.
    pub async fn restore(&self, tenant: &Tenant, key: &str, active: Active) -> Result<()> {
        let Some(registry) = self.inner.registry.clone() else {
            return Err(Error::Invalid(
                "restoring is not available on this server".into(),
            ));
        };
        let zip = path_of(tenant.dir(), key).ok_or(Error::NotFound)?;
        let root = root_of(tenant)?;
        let staging = stage(&root, &zip).await?;
        let id = tenant.id().to_string();
        tokio::spawn(async move {
            let swapped = swap(&registry, &id, &root, &staging).await;
            drop(active);
            match swapped {
                Ok(()) => tracing::info!(tenant = %id, "backup restored"),
                Err(e) => {
                    let _ = tokio::fs::remove_dir_all(&staging).await;
                    tracing::warn!(tenant = %id, error = %e, "backup restore failed; nothing changed");
                }
            }
        });
        Ok(())
    }
}

/// Drains tenant `id` and puts `staging` in place of its directory (the backups directory
/// moves across; see [`crate::Drained::replace_files`]).
async fn swap(registry: &Registry, id: &str, root: &Path, staging: &Path) -> Result<()> {
    let drained = registry.drain(id, DRAIN_LIMIT).await?;
    let aside = scratch(root, ".staging-", "-replaced");
    drained.replace_files(staging, &aside).await
}

/// Unpacks the zip `zip` and builds a checked tenant directory from it in scratch space under
/// `root`; returns the directory. Refuses (leaving nothing) what is not a PocketBase backup.
pub async fn stage(root: &Path, zip: &Path) -> Result<PathBuf> {
    let bytes = tokio::fs::metadata(zip).await?.len();
    let limits = Limits {
        max_entries: MAX_ENTRIES,
        max_bytes: bytes.saturating_mul(MAX_RATIO).max(MIN_UNPACKED),
    };
    let checked = zip.to_path_buf();
    blocking(move || archive::check(&checked, limits).map_err(Error::from)).await?;
    let (unpacked, staging) = (
        scratch(root, ".unpack-", ""),
        scratch(root, ".staging-", ""),
    );
    let built = async {
        let (from, to) = (zip.to_path_buf(), unpacked.clone());
        let contents =
            blocking(move || archive::unpack(&from, &to, limits, &transfer::quiet)).await?;
        let inner = unpacked.join(contents.prefix.trim_end_matches('/'));
        transfer::build(
            &inner,
            &staging,
            Files::Move,
            "the backup",
            &transfer::quiet,
        )
        .await
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&unpacked).await;
    built.map(|_| staging)
}

/// Runs blocking archive work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
}

/// The directory holding `tenant`'s directory (scratch files go there, on the same file system).
fn root_of(tenant: &Tenant) -> Result<PathBuf> {
    tenant
        .dir()
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::Invalid("the tenant directory has no parent".into()))
}

/// A fresh scratch path in `dir`; the prefixes are those the server removes at start.
fn scratch(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    dir.join(format!(
        "{prefix}{}{suffix}",
        warren_secrets::random::record_id()
    ))
}

fn invalid_key(key: &str) -> Error {
    Error::Invalid(format!("{key:?} is not a valid backup name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_zip_names() {
        for good in ["a.zip", "pb_backup_20240101.zip", "x-1_2.zip"] {
            assert!(valid_key(good), "{good}");
        }
        let long = format!("{}.zip", "a".repeat(MAX_KEY));
        for bad in [
            "",
            ".zip",
            "a.ZIP",
            "A.zip",
            "../a.zip",
            "a/b.zip",
            "a.zip/",
            "a",
            "@@a.zip",
            "a@b.zip",
            "@",
            "a b.zip",
            "..",
            long.as_str(),
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
        // The backups cron's keys start with `@`; a user may not choose one.
        assert!(valid_key("@auto_pb_backup_acme_20261204000000.zip"));
        assert!(!valid_name("@auto_pb_backup_acme_20261204000000.zip"));
        assert_eq!(path_of(Path::new("/t"), "../x.zip"), None);
    }

    #[test]
    fn one_backup_or_restore_runs_per_tenant() {
        let backups = Backups::default();
        let first = backups.begin("a", "one.zip").unwrap();
        assert!(backups.begin("a", "two.zip").is_none());
        assert!(backups.in_use("a", "one.zip") && !backups.in_use("a", "two.zip"));
        let other = backups.begin("b", "one.zip");
        assert!(other.is_some());
        drop(first);
        assert!(!backups.is_running("a") && backups.is_running("b"));
        assert!(backups.begin("a", "two.zip").is_some());
    }

    #[tokio::test]
    async fn the_quota_counts_kept_backups_and_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let none = Quota::default();
        check_quota(dir.path(), none, 10).await.unwrap();
        std::fs::create_dir(dir.path().join(BACKUPS_DIR)).unwrap();
        std::fs::write(dir.path().join(BACKUPS_DIR).join("a.zip"), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join(BACKUPS_DIR).join("notes.txt"), [0u8; 100]).unwrap();
        assert_eq!(list(dir.path()).await.unwrap().len(), 1);
        let count = Quota {
            max_count: 1,
            max_bytes: 0,
        };
        assert!(check_quota(dir.path(), count, 1).await.is_err());
        let bytes = Quota {
            max_count: 0,
            max_bytes: 150,
        };
        check_quota(dir.path(), bytes, 50).await.unwrap();
        assert!(check_quota(dir.path(), bytes, 51).await.is_err());
        assert!(matches!(
            delete(dir.path(), "b.zip").await,
            Err(Error::NotFound)
        ));
        delete(dir.path(), "a.zip").await.unwrap();
        assert!(list(dir.path()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_zip_that_is_no_backup_is_refused_and_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let zip = root.path().join("upload.zip");
        std::fs::write(&zip, b"not a zip at all").unwrap();
        assert!(matches!(
            stage(root.path(), &zip).await,
            Err(Error::Invalid(_))
        ));
        // A zip whose data.db is no SQLite database.
        {
            let file = std::fs::File::create(&zip).unwrap();
            let mut writer = zip::ZipWriter::new(file);
            writer
                .start_file("data.db", zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut writer, &[7u8; 4096]).unwrap();
            writer.finish().unwrap();
        }
        let refused = stage(root.path(), &zip).await.unwrap_err();
        assert!(refused.to_string().contains("SQLite"), "{refused}");
        let left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["upload.zip"]);
    }
}
