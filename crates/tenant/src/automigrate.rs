//! Which `pb_migrations` folders this process has already applied as their tenants opened.
//!
//! PocketBase applies the migrations not applied yet when it starts. A tenant opens many
//! times in a server's life (after idle, after a command held it closed), so an opening runs
//! them only the first time in this process, or when the folder changed since (files added,
//! removed or renamed, a deploy swapping it): a `warren tenant migrate down` then stays
//! reverted on the running server, and the files come back up at its next start, as with
//! PocketBase.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A folder's identity and last change of its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    inode: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    /// The stamp of folder `dir`, `None` when it cannot be read.
    pub(crate) fn of(dir: &Path) -> Option<Self> {
        let meta = std::fs::metadata(dir).ok()?;
        Some(Self {
            inode: meta.ino(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        })
    }
}

static APPLIED: Mutex<Option<HashMap<PathBuf, Stamp>>> = Mutex::new(None);

/// Whether `dir` was applied as it is now (`stamp`).
pub(crate) fn applied(dir: &Path, stamp: Stamp) -> bool {
    let applied = APPLIED.lock().unwrap_or_else(|p| p.into_inner());
    applied.as_ref().and_then(|m| m.get(dir)) == Some(&stamp)
}

/// Records that `dir`, as of `stamp`, was applied.
pub(crate) fn record(dir: &Path, stamp: Stamp) {
    let mut applied = APPLIED.lock().unwrap_or_else(|p| p.into_inner());
    applied
        .get_or_insert_with(HashMap::new)
        .insert(dir.to_path_buf(), stamp);
}

/// Forgets what was applied in `dir` (a restore or an import put another database under it:
/// its next opening applies what that one lacks).
pub(crate) fn forget(dir: &Path) {
    let mut applied = APPLIED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(applied) = applied.as_mut() {
        applied.remove(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_counts_as_applied_until_its_entries_change() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("pb_migrations");
        std::fs::create_dir(&folder).unwrap();
        let stamp = Stamp::of(&folder).unwrap();
        assert!(!applied(&folder, stamp));
        record(&folder, stamp);
        assert!(applied(&folder, Stamp::of(&folder).unwrap()));
        // A new file changes the folder's modification time (ext4 and tmpfs keep nanoseconds;
        // wait out a coarse clock tick all the same).
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(folder.join("2_more.js"), "").unwrap();
        assert!(!applied(&folder, Stamp::of(&folder).unwrap()));
        // So does a folder swapped in by a deploy (another inode).
        let swapped = dir.path().join("next");
        std::fs::create_dir(&swapped).unwrap();
        let now = Stamp::of(&folder).unwrap();
        record(&folder, now);
        std::fs::remove_dir_all(&folder).unwrap();
        std::fs::rename(&swapped, &folder).unwrap();
        assert!(!applied(&folder, Stamp::of(&folder).unwrap()));
        // Forgotten, as a restore does.
        let now = Stamp::of(&folder).unwrap();
        record(&folder, now);
        forget(&folder);
        assert!(!applied(&folder, now));
    }
}
