//! A sorted page no index serves: the scan's best `offset + perPage` rows kept in memory.
//!
//! For `ORDER BY ... LIMIT` without an index SQLite inserts every matching row into a temporary
//! b-tree and deletes the worst once it holds `offset + limit` entries: a b-tree insert, often a
//! rebalance, and a delete per matching row, about two thirds of an unindexed list's work. Here
//! the same scan runs without the ORDER BY and the best rows are kept in a binary heap; a row
//! worse than the worst kept is dropped after one comparison, without a copy.
//!
//! The result is SQLite's, ties included: the keys are compared as SQLite compares them under
//! the BINARY collation (NULL, then numbers, then text, then blobs), and rows with equal keys
//! keep their scan order, which is what SQLite's sorter does (its entries carry a sequence
//! number). That holds because the page is only found this way when [`scan_order`] shows that
//! SQLite would read the rows in the same order and sort them afterwards. A whole-table scan
//! meets rows in rowid order, so there equal keys rank by rowid and the table may be read
//! backwards: with a descending first key over rows inserted in that key's order, the best
//! rows then come first and nearly every later row is dropped at once.

use std::cmp::Ordering;

use warren_store::sql::{Connection, ToSql, Value, ValueRef};

use crate::Result;

/// Largest `offset + perPage` kept in memory; deeper pages are left to SQLite.
pub(crate) const MAX_KEPT: u64 = 2000;

/// The last line of SQLite's plan when it sorts the scanned rows for ORDER BY.
const SORTS_AFTER_SCAN: &str = "USE TEMP B-TREE FOR ORDER BY";

/// SQLite's order of two values under the BINARY collation.
pub(crate) fn compare(a: ValueRef<'_>, b: ValueRef<'_>) -> Ordering {
    fn class(v: &ValueRef<'_>) -> u8 {
        match v {
            ValueRef::Null => 0,
            ValueRef::Integer(_) | ValueRef::Real(_) => 1,
            ValueRef::Text(_) => 2,
            ValueRef::Blob(_) => 3,
        }
    }
    match (a, b) {
        (ValueRef::Integer(x), ValueRef::Integer(y)) => x.cmp(&y),
        // SQLite stores no NaN (it becomes NULL), so the order is total.
        (ValueRef::Real(x), ValueRef::Real(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (ValueRef::Integer(i), ValueRef::Real(r)) => int_real(i, r),
        (ValueRef::Real(r), ValueRef::Integer(i)) => int_real(i, r).reverse(),
        (ValueRef::Text(x), ValueRef::Text(y)) | (ValueRef::Blob(x), ValueRef::Blob(y)) => x.cmp(y),
        (a, b) => class(&a).cmp(&class(&b)),
    }
}

/// An integer against a real, exactly (as SQLite does without a long double).
fn int_real(i: i64, r: f64) -> Ordering {
    if r.is_nan() {
        return Ordering::Greater;
    }
    if r < -9_223_372_036_854_775_808.0 {
        return Ordering::Greater;
    }
    if r >= 9_223_372_036_854_775_808.0 {
        return Ordering::Less;
    }
    // In range, so the truncation is exact.
    let y = r as i64;
    match i.cmp(&y) {
        Ordering::Equal => (i as f64).partial_cmp(&r).unwrap_or(Ordering::Equal),
        other => other,
    }
}

/// Compares two key lists under the sort's directions.
fn compare_keys<'a, 'b>(
    descending: &[bool],
    a: impl Iterator<Item = ValueRef<'a>>,
    b: impl Iterator<Item = ValueRef<'b>>,
) -> Ordering {
    for ((x, y), desc) in a.zip(b).zip(descending) {
        let o = compare(x, y);
        if o != Ordering::Equal {
            return if *desc { o.reverse() } else { o };
        }
    }
    Ordering::Equal
}

/// One kept row: its keys, what breaks a tie between equal keys, its rowid.
struct Kept {
    keys: Vec<Value>,
    tie: i64,
    rowid: i64,
}

/// `a` against `b` in page order: keys under their directions, then the tie-breaker.
fn order(descending: &[bool], a: &Kept, b: &Kept) -> Ordering {
    compare_keys(
        descending,
        a.keys.iter().map(ValueRef::from),
        b.keys.iter().map(ValueRef::from),
    )
    .then(a.tie.cmp(&b.tie))
}

/// How SQLite would read the rows, from [`scan_order`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The whole table in rowid order: rows with equal keys rank by rowid, so the table may be
    /// read backwards (`reverse`) when the rows SQLite meets last are likely the best (a
    /// descending first key, as `-created` over rows inserted in time order).
    Table,
    /// Any other way (an index search, several of them): rows with equal keys rank by their
    /// place in the scan.
    Other,
}

/// The rowids of the page `offset..offset + per_page` of `scan`'s rows in sort order.
///
/// `scan` selects the rowid, then one column per sort key, with no ORDER BY or LIMIT;
/// `descending` gives each key's direction. Candidates gather in a buffer of twice the rows
/// needed; when it fills, it is cut to the best `offset + per_page`, whose worst becomes the
/// bar every later row must beat (one comparison, no copy, for most rows).
pub(crate) fn page(
    c: &Connection,
    scan: &str,
    params: &[&dyn ToSql],
    descending: &[bool],
    how: Scan,
    offset: usize,
    per_page: usize,
) -> Result<Vec<i64>> {
    let keep = offset.saturating_add(per_page);
    if keep == 0 {
        return Ok(Vec::new());
    }
    let reverse = how == Scan::Table && descending.first() == Some(&true);
    let statement;
    let scan = if reverse {
        statement = format!("{scan} ORDER BY 1 DESC");
        statement.as_str()
    } else {
        scan
    };
    let mut stmt = c.prepare_cached(scan)?;
    let mut rows = stmt.query(params)?;
    let n = descending.len();
    let cut = keep.saturating_mul(2).min(1 << 16);
    let mut kept: Vec<Kept> = Vec::with_capacity(cut.min(4096));
    let mut bar: Option<Kept> = None;
    let mut seq = 0i64;
    while let Some(row) = rows.next()? {
        seq += 1;
        let rowid: i64 = row.get(0)?;
        let tie = if how == Scan::Table { rowid } else { seq };
        if let Some(bar) = &bar {
            let mut o = Ordering::Equal;
            for (i, (worst, desc)) in bar.keys.iter().zip(descending).enumerate() {
                let x = compare(row.get_ref(i + 1)?, ValueRef::from(worst));
                if x != Ordering::Equal {
                    o = if *desc { x.reverse() } else { x };
                    break;
                }
            }
            if o.then(tie.cmp(&bar.tie)) != Ordering::Less {
                continue;
            }
        }
        let mut keys = Vec::with_capacity(n);
        for i in 0..n {
            keys.push(row.get::<_, Value>(i + 1)?);
        }
        kept.push(Kept { keys, tie, rowid });
        if kept.len() >= cut {
            kept.select_nth_unstable_by(keep - 1, |a, b| order(descending, a, b));
            kept.truncate(keep);
            bar = kept.get(keep - 1).map(|k| Kept {
                keys: k.keys.clone(),
                tie: k.tie,
                rowid: k.rowid,
            });
        }
    }
    kept.sort_unstable_by(|a, b| order(descending, a, b));
    Ok(kept
        .into_iter()
        .skip(offset)
        .take(per_page)
        .map(|k| k.rowid)
        .collect())
}

/// How SQLite reads the rows for `ordered`, when it reads them as `unordered` does and sorts
/// them afterwards (so rows with equal keys keep the scan's order in both); `None` when it
/// does anything else. `params` binds `unordered`; `ordered` takes them plus its OFFSET (and
/// its LIMIT, where that is bound too). `table` is the quoted table name.
pub(crate) fn scan_order(
    c: &Connection,
    ordered: &str,
    unordered: &str,
    table: &str,
    params: &[&dyn ToSql],
    ordered_params: &[&dyn ToSql],
) -> Result<Option<Scan>> {
    let ordered = plan(c, ordered, ordered_params)?;
    let Some((last, scan)) = ordered.split_last() else {
        return Ok(None);
    };
    if last != SORTS_AFTER_SCAN || scan != plan(c, unordered, params)?.as_slice() {
        return Ok(None);
    }
    let whole = format!("SCAN {}", table.trim_matches('"'));
    Ok(Some(if scan.len() == 1 && scan[0] == whole {
        Scan::Table
    } else {
        Scan::Other
    }))
}

/// The detail lines of a statement's `EXPLAIN QUERY PLAN`, in order.
pub(crate) fn plan(c: &Connection, sql: &str, params: &[&dyn ToSql]) -> Result<Vec<String>> {
    let mut stmt = c.prepare_cached(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(row.get::<_, String>(3)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY, k NUMERIC, s TEXT, f INTEGER);")
            .unwrap();
        c
    }

    /// SQLite's own page against the kept rows', for many offsets and page sizes; returns
    /// how SQLite scanned.
    fn check(c: &Connection, keys: &[(&str, bool)], filter: &str) -> Scan {
        let cols = keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
        let order = keys
            .iter()
            .map(|(k, d)| format!("{k} {}", if *d { "DESC" } else { "ASC" }))
            .collect::<Vec<_>>()
            .join(", ");
        let desc: Vec<bool> = keys.iter().map(|(_, d)| *d).collect();
        let scan = format!("SELECT t._rowid_, {cols} FROM t WHERE {filter}");
        let sql =
            format!("SELECT t._rowid_ FROM t WHERE {filter} ORDER BY {order} LIMIT ? OFFSET ?");
        let how = scan_order(c, &sql, &scan, "\"t\"", &[], &[&1, &0])
            .unwrap()
            .unwrap_or_else(|| panic!("SQLite does not sort after the scan: {sql}"));
        for offset in [0usize, 1, 3, 7, 40] {
            for per_page in [1usize, 2, 5, 30] {
                let want: Vec<i64> = c
                    .prepare(&sql)
                    .unwrap()
                    .query_map([per_page as i64, offset as i64], |r| r.get(0))
                    .unwrap()
                    .collect::<std::result::Result<_, _>>()
                    .unwrap();
                let got = page(c, &scan, &[], &desc, how, offset, per_page).unwrap();
                assert_eq!(
                    got, want,
                    "{order} WHERE {filter} offset {offset} per page {per_page}"
                );
            }
        }
        how
    }

    #[test]
    fn pages_match_sqlite_with_ties_nulls_and_mixed_types() {
        let c = db();
        // Few distinct keys (many ties), NULLs, integers, reals, texts and blobs in one column.
        for i in 0..60i64 {
            let k = match i % 7 {
                0 => "NULL".to_string(),
                1 => format!("{}", i % 3),
                2 => format!("{}.5", i % 4),
                3 => format!("'{}'", ["a", "B", "é", ""][(i % 4) as usize]),
                4 => "x'00ff'".to_string(),
                5 => "2".to_string(),
                _ => "2.0".to_string(),
            };
            let s = if i % 5 == 0 {
                "NULL".to_string()
            } else {
                format!("'s{}'", i % 4)
            };
            c.execute(
                &format!(
                    "INSERT INTO t (id, k, s, f) VALUES ('r{:03}', {k}, {s}, {})",
                    (i * 37) % 60,
                    i % 2
                ),
                [],
            )
            .unwrap();
        }
        let sorts = [
            vec![("k", false)],
            vec![("k", true)],
            vec![("s", true), ("k", false)],
            vec![("f", false)],
            vec![("f", true), ("id", false)],
            vec![("s", false), ("f", true), ("k", true)],
        ];
        for keys in &sorts {
            assert_eq!(check(&c, keys, "TRUE"), Scan::Table);
            assert_eq!(check(&c, keys, "f = 1 OR s = 's2'"), Scan::Table);
        }
        // Found through an index: rows come in the index's order, not the rowid's.
        c.execute_batch("CREATE INDEX t_f ON t (f, k)").unwrap();
        for keys in [
            vec![("s", false)],
            vec![("s", true)],
            vec![("s", true), ("k", true)],
        ] {
            assert_eq!(check(&c, &keys, "f = 1"), Scan::Other);
        }
    }

    #[test]
    fn integers_and_reals_compare_exactly() {
        let i = |v| ValueRef::Integer(v);
        let r = |v| ValueRef::Real(v);
        assert_eq!(compare(i(2), r(2.0)), Ordering::Equal);
        assert_eq!(compare(i(2), r(2.5)), Ordering::Less);
        assert_eq!(compare(r(-0.5), i(0)), Ordering::Less);
        assert_eq!(compare(i(i64::MAX), r(9.3e18)), Ordering::Less);
        assert_eq!(compare(i(i64::MIN), r(-9.3e18)), Ordering::Greater);
        assert_eq!(
            compare(i((1 << 53) + 1), r((1u64 << 53) as f64)),
            Ordering::Greater
        );
        assert_eq!(compare(ValueRef::Null, i(0)), Ordering::Less);
        assert_eq!(compare(r(1e300), ValueRef::Text(b"")), Ordering::Less);
        assert_eq!(
            compare(ValueRef::Text(b"z"), ValueRef::Blob(b"")),
            Ordering::Less
        );
    }

    #[test]
    fn kept_rows_only_when_sqlite_sorts_after_the_same_scan() {
        let c = db();
        let unordered = "SELECT t._rowid_, s FROM t WHERE f = ?";
        let ordered = "SELECT t._rowid_ FROM t WHERE f = ? ORDER BY s DESC LIMIT ? OFFSET ?";
        let p: [&dyn ToSql; 1] = [&1];
        let po: [&dyn ToSql; 3] = [&1, &30, &0];
        let how = |c: &Connection| scan_order(c, ordered, unordered, "\"t\"", &p, &po).unwrap();
        assert_eq!(how(&c), Some(Scan::Table));
        // An index serving the order: SQLite walks it and sorts nothing.
        c.execute_batch("CREATE INDEX t_s ON t (s)").unwrap();
        assert_eq!(how(&c), None);
    }
}
