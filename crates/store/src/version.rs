//! A database's data version, a sequence lock over its commits: a number its writer replaces
//! after every write ends, before the write is acknowledged to anyone, drawn from one sequence
//! for the whole process so that no two databases (nor two opens of one file) show the same
//! value; and marks odd, from SQLite's commit hook, while a commit is becoming visible.
//!
//! A reader that reads an even version before its snapshot starts, and the same value again
//! once its snapshot has started, read exactly the state of that version: every commit its
//! snapshot holds was marked before it became visible and replaced after. Extra changes are
//! harmless (a cache keyed on the version only misses); a missing one is not, so every place
//! that ends a write on the writer connection replaces it: the group commit, idle work (ad-hoc
//! SQL run alone, checkpoints), and each step and the end of a held transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The next settled value handed out, process-wide: even, never 0.
static NEXT: AtomicU64 = AtomicU64::new(2);

/// One database's current data version.
#[derive(Debug)]
pub(crate) struct DataVersion(AtomicU64);

impl DataVersion {
    /// A settled version no other database of this process has had.
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(NEXT.fetch_add(2, Ordering::SeqCst)))
    }

    /// The current value when settled; `None` while a commit is becoming visible.
    pub(crate) fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::SeqCst)).filter(|v| v % 2 == 0)
    }

    /// Marks a commit under way (SQLite's commit hook, before the commit is visible).
    pub(crate) fn committing(&self) {
        self.0.fetch_or(1, Ordering::SeqCst);
    }

    /// Replaces the value with a settled one never seen before. Call after a write has ended
    /// and before anyone learns of it.
    pub(crate) fn bump(&self) {
        self.0
            .store(NEXT.fetch_add(2, Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// A cheap handle on an exclusive database's data version (see [`crate::Database::versions`]).
#[derive(Debug, Clone)]
pub struct Versions(pub(crate) Arc<DataVersion>);

impl Versions {
    /// The current data version, or `None` while a commit is becoming visible.
    pub fn current(&self) -> Option<u64> {
        self.0.get()
    }
}

/// Installs the commit hook that marks `version` while a commit of `conn` becomes visible.
pub(crate) fn watch_commits(
    conn: &rusqlite::Connection,
    version: &Arc<DataVersion>,
) -> rusqlite::Result<()> {
    let version = version.clone();
    conn.commit_hook(Some(move || {
        version.committing();
        // Never turns the commit into a rollback.
        false
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_never_shared_or_repeated_and_a_commit_under_way_has_none() {
        let a = DataVersion::new();
        let b = DataVersion::new();
        assert_ne!(a.get(), b.get());
        let before = a.get().unwrap();
        a.committing();
        assert_eq!(a.get(), None);
        a.bump();
        let after = a.get().unwrap();
        assert_ne!(after, before);
        assert_ne!(Some(after), b.get());
        assert_ne!(after, 0);
    }

    #[test]
    fn the_commit_hook_marks_writes_and_not_reads() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let version = Arc::new(DataVersion::new());
        watch_commits(&conn, &version).unwrap();
        conn.execute_batch("CREATE TABLE t (v); SELECT count(*) FROM t;")
            .unwrap();
        assert_eq!(version.get(), None);
        version.bump();
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap();
        assert!(version.get().is_some());
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert_eq!(version.get(), None);
    }
}
