//! What a tenant's database holds of its collections and settings, kept beside it so that an
//! opening reads nothing while the files are still exactly as they were when it was taken.
//!
//! Provisioning reads a new tenant's `_collections` rows and stored settings back in the
//! transaction that writes them, and saves them, with the state of the closed files (see
//! [`crate::dormant::FileState`]), as `catalog.snapshot` in the tenant's directory. A closed
//! tenant's in-memory dormant entry holds the same for its files as its close left them; when
//! the entries' bound pushes out one that no snapshot on disk matches (its opening connected
//! to the database, or one before it did), it is saved as the tenant's snapshot. Closes
//! themselves write nothing: a tenant closed and reopened within the entries' reach costs no
//! file. An opening with no dormant entry whose files are in the saved state builds the catalog
//! from the saved rows, exactly as it would from the database, and opens no connection until a
//! request needs one: a tenant signed up and not used yet, or one closed longer ago than the
//! dormant entries reach, answers its first request without SQLite parsing its schema. Any
//! connection to the database since (it creates the `-wal` file), a write, a restore or an
//! import changes that state, and the first opening to see the change deletes the snapshot.
//! Only while Warren has no migrations of tenant databases ([`crate::MIGRATIONS`]): an opening
//! from a snapshot connects lazily, and its first read could come before a migration its
//! writer would apply.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warren_records::Catalog;
use warren_schema::CollectionRow;

use crate::dormant::FileState;

/// File name of the snapshot inside a tenant's directory.
pub const FILE: &str = "catalog.snapshot";

/// Largest snapshot read back (a new tenant's is about 20 KB).
const MAX_BYTES: u64 = 1 << 20;

/// The rows and settings a new tenant's database holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Contents {
    /// Its `_collections` rows, in catalog order.
    pub collections: Vec<CollectionRow>,
    /// Its stored settings document (`None`: the defaults).
    pub settings: Option<String>,
}

impl Contents {
    /// The contents of a database whose collections are `catalog` and whose settings are
    /// `stored` (over the defaults, as an opening reads them): the rows as the collections
    /// write them, and the settings document, or `None` for the defaults themselves.
    pub(crate) fn of(catalog: &Catalog, stored: &Arc<serde_json::Value>) -> Self {
        let defaults = Arc::ptr_eq(stored, &warren_records::settings::shared_of(None));
        Self {
            collections: catalog
                .entries()
                .iter()
                .map(|entry| entry.collection.to_row())
                .collect(),
            settings: (!defaults).then(|| stored.to_string()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// Which Warren wrote it: another version may migrate the database as it opens.
    format: String,
    files: FileState,
    contents: Contents,
}

/// The format this build writes and reads. The file is postcard (length-prefixed fields, no
/// escaping): the rows hold JSON text, which JSON around it escaped quote by quote and an
/// opening had to unescape (about a fifth of a first request's CPU). A snapshot in another
/// format fails to read, or reads with another `format`, and is discarded.
fn format() -> String {
    format!(
        "{}/{}/postcard",
        env!("CARGO_PKG_VERSION"),
        crate::MIGRATIONS.len()
    )
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Saves `contents` for the database in `dir`, whose files are in state `files`. Written
/// whole under a temporary name of its own and renamed, so a reader never sees half of one
/// and two writers never share one.
pub(crate) fn write(dir: &Path, files: FileState, contents: Contents) -> std::io::Result<()> {
    static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if !crate::MIGRATIONS.is_empty() {
        return Ok(());
    }
    let snapshot = Snapshot {
        format: format(),
        files,
        contents,
    };
    let body = postcard::to_stdvec(&snapshot).map_err(std::io::Error::other)?;
    let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staged = dir.join(format!("{FILE}.{n}"));
    let written = std::fs::write(&staged, body).and_then(|()| std::fs::rename(&staged, path(dir)));
    if written.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    written
}

/// The contents saved for the database in `dir` if its files are still in state `files`.
/// A snapshot that no longer matches (or cannot be read) is deleted, so later openings do
/// not read it again.
pub(crate) fn read(dir: &Path, files: FileState) -> Option<Contents> {
    let path = path(dir);
    let body = match std::fs::metadata(&path) {
        Ok(metadata) if metadata.len() <= MAX_BYTES => std::fs::read(&path).ok(),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(_) => None,
    };
    let snapshot = body.and_then(|b| postcard::from_bytes::<Snapshot>(&b).ok());
    match snapshot {
        Some(s) if s.files == files && s.format == format() && crate::MIGRATIONS.is_empty() => {
            Some(s.contents)
        }
        _ => {
            discard(dir);
            None
        }
    }
}

/// Deletes the snapshot in `dir`, if any.
pub(crate) fn discard(dir: &Path) {
    let _ = std::fs::remove_file(path(dir));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents() -> Contents {
        Contents {
            collections: Vec::new(),
            settings: Some("{\"meta\":{}}".into()),
        }
    }

    fn state(dir: &Path) -> FileState {
        FileState::of(&dir.join("data.db")).unwrap()
    }

    /// A directory with a `data.db` and a snapshot taken of it.
    fn saved() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.db"), b"one").unwrap();
        write(dir.path(), state(dir.path()), contents()).unwrap();
        dir
    }

    #[test]
    fn a_snapshot_is_read_back_only_while_the_files_are_unchanged() {
        let dir = saved();
        assert_eq!(read(dir.path(), state(dir.path())), Some(contents()));
        assert_eq!(read(dir.path(), state(dir.path())), Some(contents()));

        // A `-wal` appears (a connection opened): not the state it was taken in.
        std::fs::write(dir.path().join("data.db-wal"), b"").unwrap();
        assert_eq!(read(dir.path(), state(dir.path())), None);
        // And it is gone, even once the state matches again.
        std::fs::remove_file(dir.path().join("data.db-wal")).unwrap();
        assert!(!path(dir.path()).exists());
        assert_eq!(read(dir.path(), state(dir.path())), None);
    }

    #[test]
    fn a_replaced_or_rewritten_database_does_not_match() {
        let dir = saved();
        let db = dir.path().join("data.db");
        // Same size, same content, another file (a restore renames a new file in).
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"one").unwrap();
        std::fs::rename(&other, &db).unwrap();
        assert_eq!(read(dir.path(), state(dir.path())), None);

        write(dir.path(), state(dir.path()), contents()).unwrap();
        std::fs::write(&db, b"two!").unwrap();
        assert_eq!(read(dir.path(), state(dir.path())), None);
    }

    #[test]
    fn an_unreadable_or_foreign_snapshot_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.db"), b"one").unwrap();
        std::fs::write(path(dir.path()), b"{not a snapshot").unwrap();
        assert_eq!(read(dir.path(), state(dir.path())), None);
        assert!(!path(dir.path()).exists());

        let foreign = Snapshot {
            format: "0.0.0/0".into(),
            files: state(dir.path()),
            contents: contents(),
        };
        std::fs::write(path(dir.path()), postcard::to_stdvec(&foreign).unwrap()).unwrap();
        assert_eq!(read(dir.path(), state(dir.path())), None);
        assert!(!path(dir.path()).exists());

        // What an earlier build wrote: the same snapshot as JSON.
        let earlier = Snapshot {
            format: format(),
            files: state(dir.path()),
            contents: contents(),
        };
        std::fs::write(path(dir.path()), serde_json::to_vec(&earlier).unwrap()).unwrap();
        assert_eq!(read(dir.path(), state(dir.path())), None);
        assert!(!path(dir.path()).exists());
        assert_eq!(read(dir.path(), state(dir.path())), None);
    }
}
