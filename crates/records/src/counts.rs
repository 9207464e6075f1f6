//! List counts remembered per tenant, each with the data version it was counted at, so a
//! list asked again while nothing was committed takes its `totalItems` without counting.
//!
//! A count is kept only when it was read in a snapshot of exactly that version (the version
//! was settled before the read began and unchanged once its snapshot had started, see
//! `warren_store::Versions`), and is taken only by a read whose snapshot holds exactly that
//! version again: so the count always agrees with the page beside it. The key is the count
//! statement and every value bound to it, so two callers share a count only when their
//! statements (rules, filters, the signed-in record's values) are the same. Statements whose
//! answer can change with the clock (`strftime` of `'now'`) and views (any SQL) are not kept.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use warren_store::sql::Value as Sqlite;

/// Most counts remembered per tenant; the map starts afresh when full.
const CAPACITY: usize = 256;
/// Longest key kept, in bytes (a statement with its values).
const MAX_KEY: usize = 8 * 1024;

/// The per-tenant map (lives in the tenant's [`crate::Catalog`], so it goes with it).
#[derive(Default)]
pub struct Counts {
    counts: Mutex<HashMap<String, (u64, i64)>>,
}

impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counts").finish_non_exhaustive()
    }
}

impl Counts {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, i64)>> {
        // Each critical section is one map operation: a poisoned map is still consistent.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The count remembered for `key` at `version`.
    pub(crate) fn get(&self, key: &str, version: u64) -> Option<i64> {
        self.lock()
            .get(key)
            .filter(|(at, _)| *at == version)
            .map(|(_, count)| *count)
    }

    /// Remembers `count` for `key` at `version`.
    pub(crate) fn put(&self, key: String, version: u64, count: i64) {
        let mut counts = self.lock();
        if counts.len() >= CAPACITY && !counts.contains_key(&key) {
            counts.clear();
        }
        counts.insert(key, (version, count));
    }
}

/// The key of count statement `sql` bound to `params`: `None` when it must not be kept (its
/// answer may change with the clock, or it is too long).
pub(crate) fn key(sql: &str, params: &[Sqlite]) -> Option<String> {
    if sql.contains("strftime") || sql.len() > MAX_KEY {
        return None;
    }
    let mut key = String::with_capacity(sql.len() + 16 * params.len());
    key.push_str(sql);
    for param in params {
        // Each value with its type, so 1, 1.0 and '1' stay apart; text is length-prefixed.
        let _ = match param {
            Sqlite::Null => write!(key, "\0n"),
            Sqlite::Integer(n) => write!(key, "\0i{n}"),
            Sqlite::Real(f) => write!(key, "\0r{}", f.to_bits()),
            Sqlite::Text(t) => write!(key, "\0t{}:{t}", t.len()),
            Sqlite::Blob(b) => write!(key, "\0b{}:{b:?}", b.len()),
        };
        if key.len() > MAX_KEY {
            return None;
        }
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_taken_only_at_its_version() {
        let counts = Counts::default();
        counts.put("k".into(), 2, 7);
        assert_eq!(counts.get("k", 2), Some(7));
        assert_eq!(counts.get("k", 4), None);
        assert_eq!(counts.get("other", 2), None);
        counts.put("k".into(), 4, 8);
        assert_eq!(counts.get("k", 2), None);
        assert_eq!(counts.get("k", 4), Some(8));
    }

    #[test]
    fn keys_keep_values_and_types_apart_and_refuse_the_clock() {
        let sql = "SELECT COUNT(*) FROM t WHERE a = ?1";
        let one = |v: Sqlite| key(sql, &[v]).unwrap();
        let keys = [
            one(Sqlite::Integer(1)),
            one(Sqlite::Real(1.0)),
            one(Sqlite::Text("1".into())),
            one(Sqlite::Null),
            one(Sqlite::Blob(vec![1])),
            key(sql, &[Sqlite::Text("a".into()), Sqlite::Text("b".into())]).unwrap(),
            key(sql, &[Sqlite::Text("a\0tb".into())]).unwrap(),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(key(sql, &[Sqlite::Integer(1)]), Some(keys[0].clone()));
        assert_eq!(
            key(
                "SELECT COUNT(*) FROM t WHERE strftime('%Y', 'now') = a",
                &[]
            ),
            None
        );
        assert_eq!(key(sql, &[Sqlite::Text("x".repeat(MAX_KEY))]), None);
    }

    #[test]
    fn a_full_map_starts_afresh() {
        let counts = Counts::default();
        for i in 0..CAPACITY {
            counts.put(i.to_string(), 2, i as i64);
        }
        assert_eq!(counts.get("0", 2), Some(0));
        counts.put("new".into(), 2, 1);
        assert_eq!(counts.get("0", 2), None);
        assert_eq!(counts.get("new", 2), Some(1));
    }
}
