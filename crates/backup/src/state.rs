//! A tenant's state beside its data — its code folders and its secrets — stored in the chain it
//! ships to, so that a node taking the tenant over restores them as they are now, not as the
//! chain's snapshot held them.
//!
//! Layout: `wal/<tenant id>/<backup id>/state/<seq, 10 digits>[-o<ownership, 10 digits>].tar.zst`,
//! numbered from 0 within a chain. Each object is a zstd tar (with zstd's content checksum)
//! holding `carries.json` (what it carries), `secrets.json` when it carries the secrets, and
//! the code folders it carries, each whole. Object 0 is stored with the chain's snapshot and
//! carries the secrets (snapshots never hold them); later ones are stored when code is
//! deployed or a secret changes. A restore of the latest state ([`crate::latest`]) applies
//! them in order onto the snapshot's copies, so the newest copy of each item wins; like
//! segments, only objects stored under the chain's own ownership generation count.
//!
//! Secrets are in the backup target only here: never in a snapshot's objects, so nothing a
//! tenant's user can download (exports, backups restored into a new tenant) holds them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::target::Target;
use crate::{Error, Result, archive};

/// The file holding a tenant's secrets in its directory (`warren_tenant::secrets::FILE`).
pub const SECRETS_FILE: &str = "secrets.json";
/// What a state object carries, first in it.
const CARRIES: &str = "carries.json";
/// Most raw bytes of one state object: the code a deploy may bring (256 MiB) and the secrets.
pub const MAX_STATE: u64 = (256 << 20) + (4 << 20);
/// Most bytes of a secrets file (64 secrets of at most 8 KiB, JSON-escaped).
const MAX_SECRETS_BYTES: u64 = 4 << 20;
/// Prefix of scratch files and directories beside a tenant's directory.
pub const SCRATCH_PREFIX: &str = ".state-";

/// What changed, and so what a state object carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Items {
    /// Code folders (names in [`crate::CODE_FOLDERS`]), each carried whole; one the tenant
    /// does not have is carried as absent (removed where it is applied).
    pub folders: Vec<String>,
    /// The secrets, whole (absent when the tenant has none).
    pub secrets: bool,
}

impl Items {
    /// The secrets alone.
    pub fn secrets() -> Self {
        Self {
            folders: Vec::new(),
            secrets: true,
        }
    }

    /// Code folders `folders`.
    pub fn folders<S: AsRef<str>>(folders: &[S]) -> Self {
        Self {
            folders: folders.iter().map(|f| f.as_ref().to_string()).collect(),
            secrets: false,
        }
    }

    fn check(&self) -> Result<()> {
        for folder in &self.folders {
            if !crate::CODE_FOLDERS.contains(&folder.as_str()) {
                return Err(Error::Invalid(format!("{folder:?} is not a code folder")));
            }
        }
        Ok(())
    }
}

/// What `carries.json` says: the items, and which of them were present when packed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Carries {
    items: Items,
    /// The carried folders the tenant had (the others are absent).
    present: Vec<String>,
    /// Whether the tenant had a secrets file.
    secrets_present: bool,
}

/// Key prefix of a chain's state objects.
pub fn state_prefix(tenant_id: &str, backup_id: &str) -> String {
    format!(
        "{}state/",
        crate::ship::generation_prefix(tenant_id, backup_id)
    )
}

/// Key of state object `seq` of a chain, stored under ownership generation `ownership`.
pub fn state_key(tenant_id: &str, backup_id: &str, seq: u64, ownership: u64) -> String {
    let prefix = state_prefix(tenant_id, backup_id);
    if ownership == 0 {
        format!("{prefix}{seq:010}.tar.zst")
    } else {
        format!("{prefix}{seq:010}-o{ownership:010}.tar.zst")
    }
}

/// Parses a state object's file name: its number and ownership generation.
pub fn parse_state(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".tar.zst")?;
    crate::ship::parse_segment(&format!("{stem}.wal.zst"))
}

/// Scratch space beside tenant directory `dir` (same file system, removed by its caller).
fn scratch_beside(dir: &Path, what: &str) -> Result<PathBuf> {
    let parent = dir
        .parent()
        .ok_or_else(|| Error::Invalid("the tenant directory has no parent".into()))?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    Ok(parent.join(format!(
        "{SCRATCH_PREFIX}{what}-{name}-{:08x}",
        rand::random::<u32>()
    )))
}

/// Removes a scratch path when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Packs what `items` names from tenant directory `dir` into `dest`; its compressed size.
fn pack(dir: &Path, items: &Items, dest: &Path, carries_file: &Path) -> Result<u64> {
    let mut carries = Carries {
        items: items.clone(),
        ..Carries::default()
    };
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    let secrets = dir.join(SECRETS_FILE);
    if items.secrets && std::fs::symlink_metadata(&secrets).is_ok_and(|m| m.is_file()) {
        carries.secrets_present = true;
        entries.push((SECRETS_FILE.to_string(), secrets));
    }
    for folder in &items.folders {
        let path = dir.join(folder);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            carries.present.push(folder.clone());
            entries.push((folder.clone(), path));
        }
    }
    let body = serde_json::to_vec(&carries).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(carries_file, body)?;
    let mut all: Vec<(&str, &Path)> = vec![(CARRIES, carries_file)];
    all.extend(entries.iter().map(|(n, p)| (n.as_str(), p.as_path())));
    archive::pack_checksummed(dest, &all)
}

/// Stores state object `seq` of chain `backup_id` of tenant `tenant_id` under ownership
/// generation `ownership`: what `items` names, as it is now in the tenant's directory `dir`.
/// Returns the bytes stored. Scratch space is taken beside `dir`.
pub async fn store(
    target: &Target,
    tenant_id: &str,
    backup_id: &str,
    seq: u64,
    ownership: u64,
    dir: &Path,
    items: &Items,
) -> Result<u64> {
    items.check()?;
    let packed = Scratch(scratch_beside(dir, "pack")?);
    let carries = Scratch(packed.0.with_extension("json"));
    let (from, to, what, listed) = (
        dir.to_path_buf(),
        packed.0.clone(),
        items.clone(),
        carries.0.clone(),
    );
    let size = tokio::task::spawn_blocking(move || pack(&from, &what, &to, &listed))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    if size > MAX_STATE {
        return Err(Error::Invalid(format!(
            "the tenant's code and secrets take {size} bytes packed, more than {MAX_STATE}"
        )));
    }
    let key = state_key(tenant_id, backup_id, seq, ownership);
    target.put_file(&key, &packed.0, &crate::quiet).await?;
    Ok(size)
}

/// Stores state object 0 of the new chain `backup_id`: the secrets of the tenant in `dir`,
/// when it has any. Returns the bytes stored.
pub async fn store_secrets(
    target: &Target,
    tenant_id: &str,
    backup_id: &str,
    ownership: u64,
    dir: &Path,
) -> Result<u64> {
    if !tokio::fs::try_exists(dir.join(SECRETS_FILE)).await? {
        return Ok(0);
    }
    store(
        target,
        tenant_id,
        backup_id,
        0,
        ownership,
        dir,
        &Items::secrets(),
    )
    .await
}

/// Applies the state objects of chain `backup_id` (of tenant `tenant_id`, ownership generation
/// `ownership`) onto the restored directory `dir`, in order: each carried folder and the
/// secrets replace what is there (or are removed, when carried as absent). Objects stored
/// under another ownership generation are ignored. Returns how many were applied; a damaged
/// object fails the whole restore.
pub async fn apply(
    target: &Target,
    tenant_id: &str,
    backup_id: &str,
    ownership: u64,
    dir: &Path,
) -> Result<usize> {
    let prefix = state_prefix(tenant_id, backup_id);
    let mut objects: Vec<(u64, String)> = Vec::new();
    for key in target.list(&prefix).await? {
        let Some((seq, stored_under)) = key.strip_prefix(&prefix).and_then(parse_state) else {
            continue;
        };
        if stored_under == ownership {
            objects.push((seq, key));
        } else {
            tracing::warn!(tenant = %tenant_id, backup = %backup_id, %key, stored_under, "a state object stored under another ownership generation than its chain's is ignored");
        }
    }
    objects.sort();
    for (_, key) in &objects {
        let download = Scratch(scratch_beside(dir, "get")?);
        target
            .get_file(key, &download.0, MAX_STATE, &crate::quiet)
            .await
            .map_err(|e| match e {
                Error::NotFound(key) => Error::Corrupt(format!("{key} is missing")),
                other => other,
            })?;
        let unpacked = Scratch(scratch_beside(dir, "unpack")?);
        let (from, at, into) = (download.0.clone(), unpacked.0.clone(), dir.to_path_buf());
        tokio::task::spawn_blocking(move || {
            archive::unpack_checksummed(&from, &at, MAX_STATE)?;
            put(&at, &into)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    }
    Ok(objects.len())
}

/// Puts what the unpacked state object at `unpacked` carries into `dir`.
fn put(unpacked: &Path, dir: &Path) -> Result<()> {
    let refused = |why: String| Error::Corrupt(format!("a state object {why}"));
    let carries: Carries = {
        let path = unpacked.join(CARRIES);
        let meta = std::fs::metadata(&path).map_err(|_| refused("has no carries.json".into()))?;
        if meta.len() > 64 << 10 {
            return Err(refused("has an oversized carries.json".into()));
        }
        serde_json::from_slice(&std::fs::read(&path)?)
            .map_err(|e| refused(format!("has an unreadable carries.json: {e}")))?
    };
    carries.items.check().map_err(|e| refused(e.to_string()))?;
    // Nothing but what it says it carries.
    for entry in std::fs::read_dir(unpacked)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        let known = name == CARRIES
            || (name == SECRETS_FILE && carries.secrets_present)
            || carries.present.iter().any(|f| *f == name);
        if !known {
            return Err(refused(format!("holds {name:?}, which it does not carry")));
        }
    }
    for folder in &carries.present {
        if !carries.items.folders.contains(folder) {
            return Err(refused(format!("lists {folder:?} without carrying it")));
        }
    }
    if carries.items.secrets {
        let dest = dir.join(SECRETS_FILE);
        if carries.secrets_present {
            let from = unpacked.join(SECRETS_FILE);
            if std::fs::metadata(&from)?.len() > MAX_SECRETS_BYTES {
                return Err(refused("holds oversized secrets".into()));
            }
            let bytes = std::fs::read(&from)?;
            serde_json::from_slice::<std::collections::BTreeMap<String, String>>(&bytes)
                .map_err(|e| refused(format!("holds unreadable secrets: {e}")))?;
            write_private(dir, &dest, &bytes)?;
        } else {
            match std::fs::remove_file(&dest) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
    }
    for folder in &carries.items.folders {
        let live = dir.join(folder);
        match std::fs::symlink_metadata(&live) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&live)?,
            Ok(_) => std::fs::remove_file(&live)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        if carries.present.contains(folder) {
            std::fs::rename(unpacked.join(folder), &live)?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `dest` (in `dir`) readable by the owner only, through a renamed temporary.
fn write_private(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let staged = dir.join(format!(".{SECRETS_FILE}.tmp"));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staged)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    std::fs::rename(&staged, dest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(root: &Path, name: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    #[test]
    fn state_names_sort_and_parse() {
        assert_eq!(
            state_key("t1", "b", 3, 7),
            "wal/t1/b/state/0000000003-o0000000007.tar.zst"
        );
        assert_eq!(
            state_key("t1", "b", 3, 0),
            "wal/t1/b/state/0000000003.tar.zst"
        );
        assert_eq!(parse_state("0000000003-o0000000007.tar.zst"), Some((3, 7)));
        assert_eq!(parse_state("0000000003.tar.zst"), Some((3, 0)));
        assert_eq!(parse_state("3.tar.zst"), None);
        assert_eq!(parse_state("0000000003-o0000000007.wal.zst"), None);
        assert!(state_key("t", "b", 9, 2) < state_key("t", "b", 10, 2));
    }

    /// State objects are stored and applied in order: the newest copy of each item wins,
    /// items a later object does not carry keep the earlier copy, a folder carried as absent
    /// is removed, and objects of another ownership generation are ignored.
    #[tokio::test]
    async fn the_newest_state_of_each_item_wins_and_a_stale_generation_is_ignored() {
        let root = tempfile::tempdir().unwrap();
        let target = Target::Dir(root.path().join("target"));
        let live = tenant(root.path(), "live");
        write(&live.join("pb_hooks/main.pb.js"), "v1");
        write(&live.join("pb_public/index.html"), "site v1");
        write(&live.join(SECRETS_FILE), r#"{"X":"one"}"#);
        store(&target, "t1", "b", 0, 2, &live, &Items::secrets())
            .await
            .unwrap();
        store(
            &target,
            "t1",
            "b",
            1,
            2,
            &live,
            &Items::folders(&["pb_hooks", "pb_public"]),
        )
        .await
        .unwrap();
        write(&live.join("pb_hooks/main.pb.js"), "v2");
        write(&live.join("pb_hooks/lib/more.js"), "more");
        write(&live.join(SECRETS_FILE), r#"{"X":"two"}"#);
        std::fs::remove_dir_all(live.join("pb_public")).unwrap();
        store(
            &target,
            "t1",
            "b",
            2,
            2,
            &live,
            &Items::folders(&["pb_hooks", "pb_public"]),
        )
        .await
        .unwrap();
        store(&target, "t1", "b", 3, 2, &live, &Items::secrets())
            .await
            .unwrap();
        // A stale owner (generation 1) stores into the same chain: ignored.
        write(&live.join(SECRETS_FILE), r#"{"X":"stale"}"#);
        write(&live.join("pb_hooks/main.pb.js"), "stale");
        let mut all = Items::folders(&["pb_hooks"]);
        all.secrets = true;
        store(&target, "t1", "b", 4, 1, &live, &all).await.unwrap();

        // The restored copy: the snapshot's older code.
        let restored = tenant(root.path(), "restored");
        write(&restored.join("pb_hooks/main.pb.js"), "snapshot");
        write(&restored.join("pb_hooks/old.js"), "gone after");
        write(&restored.join("pb_migrations/1.js"), "kept");
        let applied = apply(&target, "t1", "b", 2, &restored).await.unwrap();
        assert_eq!(applied, 4);
        assert_eq!(read(&restored.join("pb_hooks/main.pb.js")).unwrap(), "v2");
        assert_eq!(
            read(&restored.join("pb_hooks/lib/more.js")).unwrap(),
            "more"
        );
        assert_eq!(read(&restored.join("pb_hooks/old.js")), None);
        assert_eq!(read(&restored.join("pb_migrations/1.js")).unwrap(), "kept");
        assert!(!restored.join("pb_public").exists());
        assert_eq!(
            read(&restored.join(SECRETS_FILE)).unwrap(),
            r#"{"X":"two"}"#
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(restored.join(SECRETS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // No scratch is left beside either directory.
        let beside: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(SCRATCH_PREFIX))
            .collect();
        assert!(beside.is_empty(), "{beside:?}");
        // Not a code folder: refused before anything is stored.
        let bad = store(
            &target,
            "t1",
            "b",
            5,
            2,
            &live,
            &Items::folders(&["storage"]),
        )
        .await;
        assert!(matches!(bad, Err(Error::Invalid(_))), "{bad:?}");
    }

    /// A damaged state object (a flipped byte, an entry outside the directory, an item it
    /// does not declare) is refused.
    #[tokio::test]
    async fn a_bad_state_object_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let target_dir = root.path().join("target");
        let target = Target::Dir(target_dir.clone());
        let live = tenant(root.path(), "live");
        write(&live.join(SECRETS_FILE), r#"{"X":"one"}"#);
        write(&live.join("pb_hooks/main.pb.js"), &"x".repeat(10_000));
        let mut items = Items::folders(&["pb_hooks"]);
        items.secrets = true;
        store(&target, "t1", "b", 0, 1, &live, &items)
            .await
            .unwrap();
        let key = state_key("t1", "b", 0, 1);
        let path = target_dir.join(&key);
        let good = std::fs::read(&path).unwrap();

        let restored = tenant(root.path(), "restored");
        // A flipped byte in the middle.
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        std::fs::write(&path, &bad).unwrap();
        let got = apply(&target, "t1", "b", 1, &restored).await;
        assert!(matches!(got, Err(Error::Corrupt(_))), "{got:?}");

        // An entry that climbs out of the directory.
        let mut tar = tar::Builder::new(Vec::new());
        let carries = serde_json::to_vec(&Carries {
            items: Items::secrets(),
            present: Vec::new(),
            secrets_present: true,
        })
        .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(carries.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, CARRIES, carries.as_slice())
            .unwrap();
        let mut header = tar::Header::new_gnu();
        let evil = b"owned";
        header.set_size(evil.len() as u64);
        header.set_mode(0o644);
        // `append_data` refuses `..`: write the name into the header directly.
        header.as_gnu_mut().unwrap().name[..15].copy_from_slice(b"../escaped.json");
        header.set_cksum();
        tar.append(&header, evil.as_slice()).unwrap();
        let raw = tar.into_inner().unwrap();
        std::fs::write(&path, zstd::encode_all(raw.as_slice(), 3).unwrap()).unwrap();
        let got = apply(&target, "t1", "b", 1, &restored).await;
        assert!(matches!(got, Err(Error::Corrupt(_))), "{got:?}");
        assert!(!root.path().join("escaped.json").exists());

        // An item it does not declare.
        let extra = tenant(root.path(), "extra");
        write(&extra.join(SECRETS_FILE), r#"{"X":"one"}"#);
        write(&extra.join("pb_public/x"), "x");
        let packed = root.path().join("extra.tar.zst");
        let listed = root.path().join("extra.json");
        std::fs::write(
            &listed,
            serde_json::to_vec(&Carries {
                items: Items::secrets(),
                present: Vec::new(),
                secrets_present: true,
            })
            .unwrap(),
        )
        .unwrap();
        archive::pack_checksummed(
            &packed,
            &[
                (CARRIES, listed.as_path()),
                (SECRETS_FILE, extra.join(SECRETS_FILE).as_path()),
                ("pb_public", extra.join("pb_public").as_path()),
            ],
        )
        .unwrap();
        std::fs::copy(&packed, &path).unwrap();
        let got = apply(&target, "t1", "b", 1, &restored).await;
        assert!(matches!(got, Err(Error::Corrupt(_))), "{got:?}");
        assert!(!restored.join("pb_public").exists());

        // The good object applies.
        std::fs::write(&path, &good).unwrap();
        assert_eq!(apply(&target, "t1", "b", 1, &restored).await.unwrap(), 1);
        assert_eq!(
            read(&restored.join(SECRETS_FILE)).unwrap(),
            r#"{"X":"one"}"#
        );
    }
}
