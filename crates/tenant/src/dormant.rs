//! What a closed tenant leaves behind so that reopening it reads nothing: its collections and
//! settings, kept while its files stay exactly as its close left them.
//!
//! A tenant closes when the LRU cap or the idle sweep takes it; reopening it used to open its
//! database, have SQLite parse the schema, and load the collections and settings again. A
//! dormant entry keeps the parsed collections and settings of a tenant whose close completed,
//! with the state of its database files (`data.db` and its `-wal`: inode, size, modification
//! time) taken once the close had checkpointed. A reopen whose files are in that same state
//! takes the entry and opens no connection until a request needs one; any change to the files
//! since (a restore, an import, a command-line write) makes the entry useless and the tenant
//! opens as before.
//!
//! Each opening gets a generation; only the close of a tenant's newest opening leaves an
//! entry, so an older handle closing late never puts back what a newer one changed. A drain
//! forgets the tenant. Entries are bounded (least recently closed dropped first).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use warren_records::Catalog;
use warren_records::policy::Policy;

/// The state of a tenant's database files, as far as a reopen needs to know they are unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct FileState {
    database: Stamp,
    /// The `-wal` file's, when there is one.
    wal: Option<Stamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    inode: u64,
    size: u64,
    modified: (i64, i64),
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
        }
    }
}

impl FileState {
    /// The state of the database at `path` (two `stat` calls); fails when it does not exist.
    pub(crate) fn of(path: &Path) -> std::io::Result<Self> {
        let database = Stamp::of(&std::fs::metadata(path)?);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = match std::fs::metadata(&wal) {
            Ok(metadata) => Some(Stamp::of(&metadata)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Self { database, wal })
    }

    /// The database file's inode.
    pub(crate) fn inode(&self) -> u64 {
        self.database.inode
    }
}

/// What a reopen takes over from the tenant's last close.
pub(crate) struct Dormant {
    /// The state of the files when the close completed.
    files: FileState,
    /// The collections as the tenant last knew them.
    pub(crate) catalog: Arc<Catalog>,
    /// The settings and the URL they were used at.
    pub(crate) settings: Kept,
    /// Whether the tenant's snapshot on disk was taken of these same files (see
    /// [`crate::snapshot`]): then it need not be saved again when the entry is pushed out.
    pub(crate) saved: bool,
}

/// A closed tenant's settings, as its next opening can use them without deriving anything.
pub(crate) struct Kept {
    /// As stored (over the defaults).
    pub(crate) stored: Arc<serde_json::Value>,
    /// As the tenant used them, `public_url` applied, if it asked for them.
    pub(crate) value: crate::registry::Derived,
    /// The request policy parsed from `stored`.
    pub(crate) policy: Arc<Policy>,
    /// The URL the tenant was last reached at; a reopen reached at another derives `value`
    /// again from `stored`.
    pub(crate) public_url: Option<Arc<str>>,
}

impl Dormant {
    /// The state of the files it was left for.
    pub(crate) fn files(&self) -> FileState {
        self.files
    }

    pub(crate) fn new(
        files: FileState,
        catalog: Arc<Catalog>,
        settings: Kept,
        saved: bool,
    ) -> Self {
        Self {
            files,
            catalog,
            settings,
            saved,
        }
    }
}

/// The entries of a registry's closed tenants.
pub(crate) struct Dormancy {
    state: Mutex<State>,
    /// Most entries kept.
    cap: usize,
}

#[derive(Default)]
struct State {
    /// Last generation given out.
    generation: u64,
    /// Tenant id → generation of its newest opening, until that opening's close is recorded.
    opened: HashMap<String, u64>,
    /// Tenant id → its entry and the sequence number it was kept under.
    entries: HashMap<String, (u64, Dormant)>,
    /// Sequence number → tenant id, oldest first.
    order: BTreeMap<u64, String>,
    /// Last sequence number given out.
    sequence: u64,
}

impl State {
    fn remove(&mut self, id: &str) -> Option<Dormant> {
        let (sequence, dormant) = self.entries.remove(id)?;
        self.order.remove(&sequence);
        Some(dormant)
    }
}

impl Dormancy {
    /// Keeps at most `cap` entries.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            state: Mutex::default(),
            cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the maps consistent before anything can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tenant `id` is being opened: returns the opening's generation and, when its files are
    /// in `files`, the entry its last close left (taken out: the new opening owns it now).
    pub(crate) fn open(&self, id: &str, files: Option<FileState>) -> (u64, Option<Dormant>) {
        let mut state = self.lock();
        state.generation += 1;
        let generation = state.generation;
        state.opened.insert(id.to_string(), generation);
        let dormant = state
            .remove(id)
            .filter(|dormant| Some(dormant.files) == files);
        (generation, dormant)
    }

    /// The opening `generation` of tenant `id` has closed; `dormant` is what it leaves (none
    /// when it cannot say, e.g. its settings were dropped and not read again). Kept only if no
    /// newer opening began and no drain came since.
    /// Returns the entries the bound pushed out to make room (tenant id and entry), oldest
    /// first.
    pub(crate) fn closed(
        &self,
        id: &str,
        generation: u64,
        dormant: Option<Dormant>,
    ) -> Vec<(String, Dormant)> {
        let mut state = self.lock();
        if state.opened.get(id) != Some(&generation) {
            return Vec::new();
        }
        state.opened.remove(id);
        let Some(dormant) = dormant else {
            return Vec::new();
        };
        state.remove(id);
        state.sequence += 1;
        let sequence = state.sequence;
        state.order.insert(sequence, id.to_string());
        state.entries.insert(id.to_string(), (sequence, dormant));
        let mut evicted = Vec::new();
        while state.entries.len() > self.cap {
            let Some((_, oldest)) = state.order.pop_first() else {
                break;
            };
            if let Some((_, dormant)) = state.entries.remove(&oldest) {
                evicted.push((oldest, dormant));
            }
        }
        evicted
    }

    /// Forgets tenant `id` (its files are about to be replaced or deleted): no close of an
    /// opening made before now leaves an entry.
    pub(crate) fn forget(&self, id: &str) {
        let mut state = self.lock();
        state.opened.remove(id);
        state.remove(id);
    }

    /// How many entries are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(size: u64) -> FileState {
        FileState {
            database: Stamp {
                inode: 1,
                size,
                modified: (1, 0),
            },
            wal: None,
        }
    }

    fn dormant(size: u64) -> Dormant {
        let stored = Arc::new(serde_json::json!({}));
        Dormant::new(
            files(size),
            Arc::new(Catalog::default()),
            Kept {
                value: Default::default(),
                policy: Arc::new(Policy::from_settings(&stored)),
                stored,
                public_url: None,
            },
            false,
        )
    }

    #[test]
    fn a_reopen_takes_the_entry_only_when_the_files_are_unchanged() {
        let dormancy = Dormancy::new(8);
        let (generation, none) = dormancy.open("a", Some(files(1)));
        assert!(none.is_none());
        dormancy.closed("a", generation, Some(dormant(1)));
        // Changed files: the entry is dropped, not returned.
        let (generation, changed) = dormancy.open("a", Some(files(2)));
        assert!(changed.is_none());
        assert_eq!(dormancy.len(), 0);
        dormancy.closed("a", generation, Some(dormant(2)));
        let (_, same) = dormancy.open("a", Some(files(2)));
        assert!(same.is_some());
        assert_eq!(dormancy.len(), 0);
    }

    #[test]
    fn only_the_newest_opening_leaves_an_entry() {
        let dormancy = Dormancy::new(8);
        let (old, _) = dormancy.open("a", Some(files(1)));
        let (new, _) = dormancy.open("a", Some(files(1)));
        dormancy.closed("a", old, Some(dormant(1)));
        assert_eq!(dormancy.len(), 0);
        dormancy.closed("a", new, Some(dormant(1)));
        assert_eq!(dormancy.len(), 1);
    }

    #[test]
    fn a_drain_forgets_the_tenant_and_its_pending_close() {
        let dormancy = Dormancy::new(8);
        let (generation, _) = dormancy.open("a", Some(files(1)));
        dormancy.forget("a");
        dormancy.closed("a", generation, Some(dormant(1)));
        assert_eq!(dormancy.len(), 0);
    }

    #[test]
    fn the_least_recently_closed_go_first() {
        let dormancy = Dormancy::new(2);
        let mut evicted = Vec::new();
        for id in ["a", "b", "c"] {
            let (generation, _) = dormancy.open(id, Some(files(1)));
            evicted.extend(dormancy.closed(id, generation, Some(dormant(1))));
        }
        assert_eq!(dormancy.len(), 2);
        // The one pushed out is handed back (to be saved).
        let evicted: Vec<&str> = evicted.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(evicted, ["a"]);
        assert!(dormancy.open("a", Some(files(1))).1.is_none());
        assert!(dormancy.open("c", Some(files(1))).1.is_some());
    }
}
