//! The index advisor: a tenant's slow lists that no index serves, and the index that would.
//!
//! A list is noted when it took at least [`SLOW`] and SQLite's plan for it read the whole table
//! or sorted the matching rows itself. The proposal is one index per (collection, columns): the
//! first sort column when the list is sorted (a sorted page then walks the index and stops
//! once the page is full), else the columns the filter and rule compare for equality, then the
//! first one compared by range. Proposals are kept in memory per open tenant, at most
//! [`MAX_PROPOSALS`], with how often and how slowly they were seen.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use warren_schema::Collection;

/// A list at least this slow, with a plan that scans or sorts, is noted.
pub const SLOW: Duration = Duration::from_millis(1);

/// Proposals kept per tenant; later ones are dropped until the tenant reopens.
pub const MAX_PROPOSALS: usize = 64;

/// Slow lists a proposal needs before `--auto-index` creates its index.
pub const AUTO_AFTER: u64 = 3;

/// What one slow list asks of the collection's indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// The collection's name.
    pub collection: String,
    /// The proposed index's columns, in order.
    pub columns: Vec<String>,
    /// The columns the conditions compared (equalities, then ranges).
    pub filtered: Vec<String>,
    /// The sort's columns.
    pub sorted: Vec<String>,
}

impl Advice {
    /// Builds the advice for one list, or `None` when there is nothing an index would add
    /// (no compared or sorted column, or only `id`, which the primary key serves).
    pub fn new(
        collection: &str,
        equalities: &[&str],
        ranges: &[&str],
        sorted: &[&str],
    ) -> Option<Advice> {
        let columns: Vec<String> = match sorted.first() {
            Some(first) => vec![(*first).to_string()],
            None => equalities
                .iter()
                .chain(ranges.first())
                .map(|c| (*c).to_string())
                .collect(),
        };
        if columns.is_empty() || columns.first().is_some_and(|c| c == "id") {
            return None;
        }
        Some(Advice {
            collection: collection.to_string(),
            columns,
            filtered: equalities
                .iter()
                .chain(ranges)
                .map(|c| (*c).to_string())
                .collect(),
            sorted: sorted.iter().map(|c| (*c).to_string()).collect(),
        })
    }

    /// The index's name: `idx_<collection>_<columns>` (names are word characters).
    pub fn index_name(&self) -> String {
        format!("idx_{}_{}", self.collection, self.columns.join("_"))
    }

    /// The `CREATE INDEX` statement, as a collection's `indexes` hold it.
    pub fn index_sql(&self) -> String {
        let columns = self
            .columns
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "CREATE INDEX `{}` ON `{}` ({columns})",
            self.index_name(),
            self.collection
        )
    }

    /// Whether one of `collection`'s indexes already starts with these columns.
    pub fn served_by(&self, collection: &Collection) -> bool {
        collection
            .indexes
            .iter()
            .filter_map(|raw| warren_schema::Index::parse(raw))
            .any(|index| {
                index.where_clause.is_empty()
                    && index.columns.len() >= self.columns.len()
                    && index
                        .columns
                        .iter()
                        .zip(&self.columns)
                        .all(|(have, want)| have.name == *want && have.collate.is_empty())
            })
    }
}

/// How often and how slowly one proposal was seen.
#[derive(Debug, Clone)]
struct Seen {
    advice: Advice,
    count: u64,
    total: Duration,
    max: Duration,
    last: SystemTime,
    auto: bool,
}

/// What noting a slow list changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Noted {
    /// A proposal seen for the first time (log it once).
    New,
    /// A proposal seen again, now this many times.
    Again(u64),
    /// The table of proposals is full; nothing was kept.
    Full,
}

/// One tenant's proposals (in memory, while the tenant is open).
#[derive(Debug, Default)]
pub struct Advisor {
    seen: Mutex<HashMap<(String, Vec<String>), Seen>>,
}

impl Advisor {
    /// Notes one slow list.
    pub fn note(&self, advice: &Advice, took: Duration) -> Noted {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let key = (advice.collection.clone(), advice.columns.clone());
        if let Some(s) = seen.get_mut(&key) {
            s.count += 1;
            s.total += took;
            s.max = s.max.max(took);
            s.last = SystemTime::now();
            return Noted::Again(s.count);
        }
        if seen.len() >= MAX_PROPOSALS {
            return Noted::Full;
        }
        seen.insert(
            key,
            Seen {
                advice: advice.clone(),
                count: 1,
                total: took,
                max: took,
                last: SystemTime::now(),
                auto: false,
            },
        );
        Noted::New
    }

    /// Marks a proposal as handed to `--auto-index`; false when it already was.
    pub fn claim_auto(&self, advice: &Advice) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get_mut(&(advice.collection.clone(), advice.columns.clone())) {
            Some(s) if !s.auto => {
                s.auto = true;
                true
            }
            _ => false,
        }
    }

    /// The proposals still open as JSON, slowest in total first; `lookup` gives a
    /// collection's current definition by name (a proposal an index now serves, or of a
    /// collection gone, is left out).
    pub fn suggestions(&self, lookup: impl Fn(&str) -> Option<Collection>) -> Vec<Value> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut open: Vec<(&Seen, Collection)> = seen
            .values()
            .filter_map(|s| {
                let collection = lookup(&s.advice.collection)?;
                (!s.advice.served_by(&collection)).then_some((s, collection))
            })
            .collect();
        open.sort_by_key(|s| std::cmp::Reverse(s.0.total));
        open.into_iter()
            .map(|(s, collection)| {
                let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
                let last = s
                    .last
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                json!({
                    "collectionId": collection.id,
                    "collection": s.advice.collection,
                    "columns": s.advice.columns,
                    "filtered": s.advice.filtered,
                    "sorted": s.advice.sorted,
                    "index": s.advice.index_sql(),
                    "count": s.count,
                    "totalMs": ms(s.total),
                    "maxMs": ms(s.max),
                    "avgMs": ms(s.total / u32::try_from(s.count).unwrap_or(u32::MAX).max(1)),
                    "lastSeen": last,
                })
            })
            .collect()
    }
}

/// Whether SQLite's plan lines show a whole-table scan or a sort of its own.
pub fn plan_scans_or_sorts(plan: &[String]) -> bool {
    plan.iter().any(|line| {
        line.starts_with("USE TEMP B-TREE FOR")
            || (line.starts_with("SCAN ") && !line.contains(" USING "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sorted_list_asks_for_its_first_sort_column() {
        let a = Advice::new("plain", &["public"], &["number"], &["created", "id"]).unwrap();
        assert_eq!(a.columns, ["created"]);
        assert_eq!(a.filtered, ["public", "number"]);
        assert_eq!(
            a.index_sql(),
            "CREATE INDEX `idx_plain_created` ON `plain` (`created`)"
        );
    }

    #[test]
    fn an_unsorted_list_asks_for_equalities_then_one_range() {
        let a = Advice::new("posts", &["owner", "public"], &["number", "views"], &[]).unwrap();
        assert_eq!(a.columns, ["owner", "public", "number"]);
        assert_eq!(a.index_name(), "idx_posts_owner_public_number");
        assert!(Advice::new("posts", &[], &[], &["id"]).is_none());
        assert!(Advice::new("posts", &[], &[], &[]).is_none());
    }

    #[test]
    fn proposals_are_counted_once_each_and_bounded() {
        let advisor = Advisor::default();
        let a = Advice::new("plain", &[], &[], &["created"]).unwrap();
        assert_eq!(advisor.note(&a, Duration::from_millis(5)), Noted::New);
        assert_eq!(advisor.note(&a, Duration::from_millis(7)), Noted::Again(2));
        assert!(advisor.claim_auto(&a));
        assert!(!advisor.claim_auto(&a));
        for i in 1..MAX_PROPOSALS {
            let b = Advice::new(&format!("c{i}"), &["x"], &[], &[]).unwrap();
            assert_eq!(advisor.note(&b, Duration::from_millis(1)), Noted::New);
        }
        let c = Advice::new("late", &["x"], &[], &[]).unwrap();
        assert_eq!(advisor.note(&c, Duration::from_millis(1)), Noted::Full);
    }

    #[test]
    fn plans_that_scan_or_sort() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(plan_scans_or_sorts(&lines(&["SCAN plain"])));
        assert!(plan_scans_or_sorts(&lines(&[
            "SEARCH plain USING INDEX i (owner=?)",
            "USE TEMP B-TREE FOR ORDER BY"
        ])));
        assert!(!plan_scans_or_sorts(&lines(&[
            "SCAN plain USING INDEX idx_plain_created"
        ])));
        assert!(!plan_scans_or_sorts(&lines(&[
            "SEARCH plain USING INDEX i (owner=?)"
        ])));
    }
}
