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
//!
//! Each table also has a version: the data version of the last write that touched it. The
//! writer knows which tables a group commit wrote from SQLite's update hook; whenever it cannot
//! be sure it saw every row change of a write (idle work and held transactions run any SQL, a
//! job failed, the schema changed, or SQLite counted changes the hook never reported: the
//! truncate optimisation, tables without a rowid, virtual tables), every table counts as
//! touched. A cache that depends on one table's rows (a token's auth record) keys on that
//! table's version, and so survives writes to other tables.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The next settled value handed out, process-wide: even, never 0.
static NEXT: AtomicU64 = AtomicU64::new(2);

/// Most distinct tables one group commit may write and still be told apart; past that, every
/// table counts as touched.
const MAX_WRITTEN: usize = 32;

/// One database's current data version, and its tables' versions.
#[derive(Debug)]
pub(crate) struct DataVersion {
    value: AtomicU64,
    /// The version of the last write whose tables are not known: every table's version is at
    /// least this.
    floor: AtomicU64,
    /// Per table (named as SQLite reports it), the version of the last write known to have
    /// touched it, when later than `floor`.
    tables: Mutex<Vec<(Box<str>, u64)>>,
    /// What the writer's update hook saw since the last write ended.
    written: Mutex<Written>,
    /// Whether tables are told apart at all (else every write touches every table).
    tracks_tables: bool,
}

/// The rows the writer connection changed since the last write ended, as its update hook
/// reported them.
#[derive(Debug, Default)]
struct Written {
    /// The distinct tables written.
    tables: Vec<Box<str>>,
    /// Rows reported.
    rows: u64,
    /// More than [`MAX_WRITTEN`] tables were written.
    overflow: bool,
}

/// How a group commit's write ended, for [`DataVersion::bump_after`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// The commit succeeded, every job succeeded and the schema is unchanged.
    pub clean: bool,
    /// The rows SQLite counted as changed by the write (`sqlite3_total_changes` after less
    /// before).
    pub changes: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section leaves its data consistent: a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DataVersion {
    /// A settled version no other database of this process has had; with `tables`, one that
    /// tells tables apart (its writer's update hook notes the tables written).
    pub(crate) fn new(tables: bool) -> Self {
        let value = NEXT.fetch_add(2, Ordering::SeqCst);
        Self {
            value: AtomicU64::new(value),
            floor: AtomicU64::new(value),
            tables: Mutex::default(),
            written: Mutex::default(),
            tracks_tables: tables,
        }
    }

    /// The current value when settled; `None` while a commit is becoming visible.
    pub(crate) fn get(&self) -> Option<u64> {
        Some(self.value.load(Ordering::SeqCst)).filter(|v| v % 2 == 0)
    }

    /// The version of `table` (ASCII case ignored, as SQLite does): the data version of the
    /// last write that touched it, or may have; `None` while a commit is becoming visible.
    pub(crate) fn table(&self, table: &str) -> Option<u64> {
        self.get()?;
        let floor = self.floor.load(Ordering::SeqCst);
        let own = lock(&self.tables)
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(table))
            .map_or(0, |(_, v)| *v);
        Some(floor.max(own))
    }

    /// Marks a commit under way (SQLite's commit hook, before the commit is visible).
    pub(crate) fn committing(&self) {
        self.value.fetch_or(1, Ordering::SeqCst);
    }

    /// Notes a row of `table` changed by the writer connection (its update hook).
    fn wrote(&self, table: &str) {
        let mut written = lock(&self.written);
        written.rows += 1;
        if written.tables.iter().any(|t| **t == *table) {
            return;
        }
        if written.tables.len() < MAX_WRITTEN {
            written.tables.push(table.into());
        } else {
            written.overflow = true;
        }
    }

    /// Replaces the value with a settled one never seen before, every table counting as
    /// touched. Call after a write has ended and before anyone learns of it.
    pub(crate) fn bump(&self) {
        self.settle(None);
    }

    /// Like [`DataVersion::bump`] after a group commit: when `outcome` shows the update hook
    /// saw every row the write changed, only the tables it wrote count as touched.
    pub(crate) fn bump_after(&self, outcome: Outcome) {
        self.settle(Some(outcome));
    }

    fn settle(&self, outcome: Option<Outcome>) {
        let value = NEXT.fetch_add(2, Ordering::SeqCst);
        let written = std::mem::take(&mut *lock(&self.written));
        let known = self.tracks_tables
            && outcome.is_some_and(|o| o.clean && o.changes == written.rows && !written.overflow);
        {
            let mut tables = lock(&self.tables);
            if known {
                for table in written.tables {
                    match tables
                        .iter_mut()
                        .find(|(name, _)| name.eq_ignore_ascii_case(&table))
                    {
                        Some((_, v)) => *v = value,
                        None => tables.push((table, value)),
                    }
                }
            } else {
                self.floor.store(value, Ordering::SeqCst);
                tables.clear();
            }
        }
        // Tables first: a reader that sees the new value sees them too.
        self.value.store(value, Ordering::SeqCst);
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

    /// The current version of `table` (see the module doc), or `None` while a commit is
    /// becoming visible.
    pub fn table(&self, table: &str) -> Option<u64> {
        self.0.table(table)
    }
}

/// Installs the hooks of `version` on the writer connection `conn`: the commit hook that marks
/// a commit under way, and (when it tells tables apart) the update hook that notes the tables
/// written.
pub(crate) fn watch_commits(
    conn: &rusqlite::Connection,
    version: &Arc<DataVersion>,
) -> rusqlite::Result<()> {
    let marks = version.clone();
    conn.commit_hook(Some(move || {
        marks.committing();
        // Never turns the commit into a rollback.
        false
    }))?;
    if !version.tracks_tables {
        return Ok(());
    }
    let notes = version.clone();
    conn.update_hook(Some(move |_, _: &str, table: &str, _| notes.wrote(table)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_never_shared_or_repeated_and_a_commit_under_way_has_none() {
        let a = DataVersion::new(false);
        let b = DataVersion::new(false);
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
    fn a_table_keeps_its_version_through_writes_known_to_touch_only_others() {
        let version = DataVersion::new(true);
        let start = version.table("users").unwrap();
        let clean = |changes| Outcome {
            clean: true,
            changes,
        };
        version.wrote("posts");
        version.wrote("posts");
        version.bump_after(clean(2));
        assert_eq!(version.table("users"), Some(start));
        assert_eq!(version.table("Posts"), version.get());
        // Its own rows written, in another letter case.
        version.wrote("USERS");
        version.bump_after(clean(1));
        let written = version.table("users").unwrap();
        assert_ne!(written, start);
        // A count the hook did not match, an unclean end, or no outcome at all: every table.
        for end in [
            Some(clean(2)),
            Some(Outcome {
                clean: false,
                changes: 1,
            }),
            None,
        ] {
            let before = version.table("users").unwrap();
            version.wrote("posts");
            match end {
                Some(outcome) => version.bump_after(outcome),
                None => version.bump(),
            }
            assert_ne!(version.table("users"), Some(before));
        }
        // None while a commit is becoming visible.
        version.committing();
        assert_eq!(version.table("users"), None);
        // A version that does not tell tables apart moves every table with every write.
        let untold = DataVersion::new(false);
        let before = untold.table("users").unwrap();
        untold.wrote("posts");
        untold.bump_after(clean(1));
        assert_ne!(untold.table("users"), Some(before));
    }

    #[test]
    fn the_commit_hook_marks_writes_and_not_reads() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let version = Arc::new(DataVersion::new(false));
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
