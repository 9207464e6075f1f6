//! Listing and viewing records under the collection's list and view rules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use warren_filter::{Access, Filter, Headers, Query, RequestContext, parse_sort};
use warren_schema::json_out;
use warren_schema::record::{RecordData, RecordJson, Visibility};
use warren_store::sql::Connection;
use warren_store::{Database, Versions};

use crate::advisor::{self, Advice};
use crate::auth::Pending;
use crate::catalog::{Catalog, Entry};
use crate::{Caller, Error, Result, expand, sql, topk};

/// 403 message for a `null` rule and a non-superuser.
pub(crate) const SUPERUSERS_ONLY: &str = "Only superusers can perform this action.";
/// 404 message for a missing or hidden record.
pub(crate) const NOT_FOUND: &str = "The requested resource wasn't found.";

/// Largest page.
pub const MAX_PER_PAGE: u64 = 1000;

/// What a list request asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// 1-based page.
    pub page: u64,
    /// Items per page (1..=1000).
    pub per_page: u64,
    /// The `sort` parameter.
    pub sort: String,
    /// The `filter` parameter.
    pub filter: String,
    /// The `expand` parameter.
    pub expand: String,
    /// Leave out the count (`totalItems`/`totalPages` are -1).
    pub skip_total: bool,
}

/// One page of records (or of other items, such as logs), ready to serialize.
#[derive(Debug, Clone)]
pub struct Page<T = RecordJson> {
    /// The items' JSON.
    pub items: Vec<T>,
    /// The page number.
    pub page: u64,
    /// Page size.
    pub per_page: u64,
    /// Matching records, or -1 with `skip_total`.
    pub total_items: i64,
    /// Pages, or -1 with `skip_total`.
    pub total_pages: i64,
    /// When the list was slow and no index served it: what the index advisor should note,
    /// and how long the list took.
    pub slow: Option<(Advice, Duration)>,
}

impl<T: serde::Serialize> Page<T> {
    /// PocketBase's list JSON.
    pub fn to_value(&self) -> Value {
        json!({
            "items": self.items,
            "page": self.page,
            "perPage": self.per_page,
            "totalItems": self.total_items,
            "totalPages": self.total_pages,
        })
    }
}

/// The JSON of [`Page::to_value`], written without building it first (the same keys, in the
/// same order).
impl<T: serde::Serialize> serde::Serialize for Page<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("items", &self.items)?;
        m.serialize_entry("page", &self.page)?;
        m.serialize_entry("perPage", &self.per_page)?;
        m.serialize_entry("totalItems", &self.total_items)?;
        m.serialize_entry("totalPages", &self.total_pages)?;
        m.end()
    }
}

impl Page<RecordJson> {
    /// The page's JSON as its [`serde::Serialize`] implementation writes it through
    /// `serde_json` (the same bytes), each item written by [`RecordJson::write_json`].
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.items.len() * 512);
        out.extend_from_slice(b"{\"items\":[");
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item.write_json(&mut out);
        }
        out.extend_from_slice(b"],\"page\":");
        json_out::write_u64(&mut out, self.page);
        out.extend_from_slice(b",\"perPage\":");
        json_out::write_u64(&mut out, self.per_page);
        out.extend_from_slice(b",\"totalItems\":");
        json_out::write_i64(&mut out, self.total_items);
        out.extend_from_slice(b",\"totalPages\":");
        json_out::write_i64(&mut out, self.total_pages);
        out.push(b'}');
        out
    }
}

/// Looks a collection up for a records route (404 `Missing collection context.` if absent).
pub fn collection(catalog: &Catalog, id_or_name: &str) -> Result<Arc<Entry>> {
    catalog
        .get(id_or_name)
        .cloned()
        .ok_or(Error::NotFound("Missing collection context."))
}

/// The rule for an action, or 403 when it is `null` and the caller is no superuser. `None`
/// means "no condition" (superuser, or an empty rule).
pub(crate) fn rule<'a>(caller: &Caller, rule: &'a Option<Filter>) -> Result<Option<&'a Filter>> {
    if caller.is_superuser() {
        return Ok(None);
    }
    match rule {
        None => Err(Error::Forbidden(SUPERUSERS_ONLY)),
        Some(filter) if filter.expr().is_none() => Ok(None),
        Some(filter) => Ok(Some(filter)),
    }
}

/// How records of `entry` are shown to `caller`.
pub(crate) fn visibility(caller: &Caller, entry: &Entry, data: &RecordData) -> Visibility {
    if caller.is_superuser() {
        return Visibility {
            show_hidden: true,
            show_email: true,
        };
    }
    let own = entry.collection.is_auth()
        && caller.collection_id() == Some(entry.collection.id.as_str())
        && caller
            .id()
            .is_some_and(|id| data.get("id").and_then(Value::as_str) == Some(id));
    Visibility {
        show_hidden: false,
        show_email: own,
    }
}

/// Builds a record's JSON for `caller`.
pub(crate) fn render(caller: &Caller, entry: &Entry, data: &RecordData) -> RecordJson {
    RecordJson::build(&entry.collection, data, visibility(caller, entry, data))
}

/// The column list of a collection's table, qualified: every field, in the collection's order,
/// as [`sql::read_record`] reads them (built once per catalog entry).
pub(crate) fn columns(entry: &Entry) -> &str {
    entry.columns.get_or_init(|| {
        let table = sql::quote(&entry.collection.name);
        entry
            .collection
            .fields
            .iter()
            .map(|f| format!("{table}.{}", sql::quote(&f.name)))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Lists records of `entry` visible to `caller` under the list rule, filtered and sorted.
pub async fn list(
    db: &Database,
    catalog: Arc<Catalog>,
    entry: Arc<Entry>,
    caller: &Caller,
    ctx: RequestContext,
    query: ListQuery,
) -> Result<Page> {
    let viewer = caller.clone();
    let versions = db.versions();
    db.read(move |c| list_on(c, &catalog, &entry, &viewer, ctx, &query, versions.as_ref()))
        .await
}

/// [`list`] on connection `c` (a read connection, or the writer inside a transaction the
/// caller holds, whose uncommitted writes it then sees). With `versions` (the database's, see
/// `Database::versions`), a count remembered for the same statement at the same data version
/// is taken instead of counting again (see [`crate::counts`]).
pub fn list_on(
    c: &Connection,
    catalog: &Arc<Catalog>,
    entry: &Arc<Entry>,
    caller: &Caller,
    ctx: RequestContext,
    query: &ListQuery,
    versions: Option<&Versions>,
) -> Result<Page> {
    let started = Instant::now();
    let rule = rule(caller, &entry.rules.list)?.cloned();
    let access = if caller.is_superuser() {
        Access::Trusted
    } else {
        Access::Client
    };
    let mut q = Query::for_collection(entry.info.clone());
    if let Some(rule) = &rule {
        q.and_where(catalog.as_ref(), &ctx, rule, Access::Trusted)?;
    }
    if !query.filter.trim().is_empty() {
        let filter = Filter::parse(&query.filter)?;
        q.and_where(catalog.as_ref(), &ctx, &filter, access)?;
    }
    if !query.sort.trim().is_empty() {
        let items = parse_sort(&query.sort)?;
        q.order_by(catalog.as_ref(), &ctx, &items, access)?;
    }
    let per_page = query.per_page.clamp(1, MAX_PER_PAGE);
    let page = query.page.max(1);
    let sqlf = q.to_sql();
    let column_list = columns(entry);
    // A table's page is found as rowids first, then its rows are read by rowid. Without an
    // index serving the sort, SQLite keeps the best `offset + perPage` matches in a temporary
    // b-tree while it scans, and each entry holds every selected column: with whole records
    // that b-tree outgrows its pages and rebalances on almost every insert, about half of an
    // unindexed list's time. Sorting rowids keeps the entries small; the page's few rows cost
    // one primary-key lookup each. A view has no rowid and selects its rows at once.
    let by_rowid = (!entry.collection.is_view()).then(|| {
        format!(
            "SELECT {column_list} FROM {table} WHERE {table}._rowid_ = ?",
            table = sql::quote(&entry.collection.name)
        )
    });
    let selected = match by_rowid {
        Some(_) => format!("{}._rowid_", sqlf.table),
        None => column_list.to_string(),
    };
    // The page size is written into the statement and only the offset is bound: SQLite plans
    // with a bound LIMIT's value, so rebinding one expires the statement and every list would
    // parse and plan its statement again (about as much work as an indexed page itself). Page
    // sizes are few, so the cached statements stay few.
    let select = format!("{} LIMIT {per_page} OFFSET ?", sqlf.select(&selected));
    let ordered = ordering_index(entry, &query.sort).map(|index| {
        let from = format!(" FROM {}", sqlf.table);
        select.replacen(
            &from,
            &format!("{from} INDEXED BY {}", sql::quote(&index)),
            1,
        )
    });
    let count = (!query.skip_total).then(|| {
        let joins = if sqlf.joins.is_empty() {
            String::new()
        } else {
            format!(" {}", sqlf.joins)
        };
        let counted = if sqlf.distinct {
            format!("COUNT(DISTINCT {}._rowid_)", sqlf.table)
        } else {
            "COUNT(*)".into()
        };
        format!(
            "SELECT {counted} FROM {}{joins} WHERE {}",
            sqlf.table, sqlf.where_clause
        )
    });
    let mut params = sql::params(&sqlf.params);
    let offset = (page - 1).saturating_mul(per_page);
    // The scan whose best rows `topk` keeps: rowid and sort keys, no ORDER BY, when the sort
    // is on the table's own columns and the page is not too deep.
    let order = q.column_order().filter(|_| {
        by_rowid.is_some() && !sqlf.distinct && offset.saturating_add(per_page) <= topk::MAX_KEPT
    });
    let descending: Vec<bool> = order.iter().flatten().map(|(_, d)| *d).collect();
    let kept_scan = order.as_ref().map(|columns| {
        let mut keys = format!("{}._rowid_", sqlf.table);
        for (column, _) in columns {
            keys.push_str(&format!(", {}.{}", sqlf.table, sql::quote(column)));
        }
        let unsorted = warren_filter::SqlFilter {
            order_by: String::new(),
            ..sqlf.clone()
        };
        unsorted.select(&keys)
    });
    let reader = entry.clone();
    let (viewer, tree, scope) = (
        caller.clone(),
        expand::Tree::parse(&query.expand),
        catalog.clone(),
    );
    let (items, total, slow) = {
        // The data version before the snapshot starts: only outside any transaction.
        let before = versions
            .filter(|_| c.is_autocommit())
            .and_then(Versions::current);
        // The count, the page's rowids and its rows come from one snapshot, so concurrent
        // writes cannot make them disagree (inside a transaction they are one already).
        let _snapshot = match (&count, &by_rowid) {
            (None, None) => None,
            _ if !c.is_autocommit() => None,
            _ => Some(c.unchecked_transaction()?),
        };
        // The count's parameters are the page's without its offset.
        let count_params = count.as_ref().map(|_| params.clone());
        params.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
        let read = |row: &warren_store::sql::Row<'_>| -> Result<RecordData> {
            Ok(sql::read_record(row, &reader.collection)?)
        };
        let by_rowids = |by_rowid: &str, rowids: Vec<i64>| -> Result<Vec<RecordData>> {
            let mut out = Vec::with_capacity(rowids.len());
            let mut one = c.prepare_cached(by_rowid)?;
            for rowid in rowids {
                let mut rows = one.query([rowid])?;
                if let Some(row) = rows.next()? {
                    out.push(read(row)?);
                }
            }
            Ok(out)
        };
        let page_rows = |statement: &str| -> Result<Vec<RecordData>> {
            let mut stmt = c.prepare_cached(statement)?;
            let mut rows = stmt.query(sql::bind(&params).as_slice())?;
            let mut out = Vec::new();
            let Some(by_rowid) = &by_rowid else {
                while let Some(row) = rows.next()? {
                    out.push(read(row)?);
                }
                return Ok(out);
            };
            let mut rowids = Vec::new();
            while let Some(row) = rows.next()? {
                rowids.push(row.get::<_, i64>(0)?);
            }
            by_rowids(by_rowid, rowids)
        };
        // A sort no index serves: the best rows of the scan kept in memory (see `topk`), when
        // SQLite would scan the same way and sort afterwards; else SQLite's own sort.
        let sorted = || -> Result<Vec<RecordData>> {
            if let (Some(by_rowid), Some(scan)) = (&by_rowid, &kept_scan) {
                let bound = sql::bind(&params);
                // The scan takes the page's parameters without its OFFSET.
                let unordered = &bound[..bound.len() - 1];
                if let Some(how) =
                    topk::scan_order(c, &select, scan, &sqlf.table, unordered, &bound)?
                {
                    let rowids = topk::page(
                        c,
                        scan,
                        unordered,
                        &descending,
                        how,
                        usize::try_from(offset).unwrap_or(usize::MAX),
                        usize::try_from(per_page).unwrap_or(usize::MAX),
                    )?;
                    return by_rowids(by_rowid, rowids);
                }
            }
            page_rows(&select)
        };
        let out = match &ordered {
            Some(fast) => match bounded(c, || page_rows(fast))? {
                Some(rows) => rows,
                None => sorted()?,
            },
            None => sorted()?,
        };
        let items = expand::render_rows(c, &scope, &reader, &viewer, &ctx, out, tree.as_ref())?;
        // Counted after the page, in the snapshot the page's reads started.
        let total = match (&count, &count_params) {
            (Some(count), Some(count_params)) => Some(count_in_snapshot(
                c,
                catalog,
                count,
                count_params,
                !entry.collection.is_view(),
                before,
                versions,
            )?),
            _ => None,
        };
        let took = started.elapsed();
        let slow = if took >= advisor::SLOW && ordered.is_none() {
            let plan = topk::plan(c, &select, &sql::bind(&params))?;
            advisor::plan_scans_or_sorts(&plan)
                .then(|| {
                    let (eq, range) = q.compared_columns();
                    let sorted: Vec<&str> =
                        q.column_order().iter().flatten().map(|(c, _)| *c).collect();
                    Advice::new(&entry.collection.name, &eq, &range, &sorted)
                })
                .flatten()
                .filter(|a| !a.served_by(&entry.collection))
                .map(|a| (a, took))
        } else {
            None
        };
        (items, total, slow)
    };
    let (total_items, total_pages) = match total {
        Some(total) => (total, (total + per_page as i64 - 1) / per_page as i64),
        None => (-1, -1),
    };
    Ok(Page {
        items,
        page,
        per_page,
        total_items,
        total_pages,
        slow,
    })
}

/// Runs count statement `count` with `params` in the snapshot a read has started, or takes
/// the count remembered for it: `before` is the data version read before that snapshot
/// started, and the version must read the same now (see [`crate::counts`]). `keep` is false
/// for a statement that must not be remembered (a view's).
fn count_in_snapshot(
    c: &Connection,
    catalog: &Catalog,
    count: &str,
    params: &[warren_store::sql::Value],
    keep: bool,
    before: Option<u64>,
    versions: Option<&Versions>,
) -> Result<i64> {
    let settled = before.filter(|v| versions.and_then(Versions::current) == Some(*v));
    let key = settled
        .filter(|_| keep)
        .and_then(|_| crate::counts::key(count, params));
    if let (Some(version), Some(key)) = (settled, &key)
        && let Some(total) = catalog.counts().get(key, version)
    {
        return Ok(total);
    }
    let total = c
        .prepare_cached(count)?
        .query_row(sql::bind(params).as_slice(), |r| r.get::<_, i64>(0))?;
    if let (Some(version), Some(key)) = (settled, key) {
        catalog.counts().put(key, version, total);
    }
    Ok(total)
}

/// VM steps between two progress checks, and checks allowed, for the ordered-index attempt:
/// about 300,000 steps, a few milliseconds — less than the sort it replaces costs.
const PROGRESS_STEP: i32 = 1000;
const PROGRESS_CHECKS: u32 = 300;

/// The index to walk for a sorted page: one whose first column is the first sort field.
///
/// SQLite's planner picks the index that narrows the WHERE clause best and then sorts every
/// matching row to return one page — with a broad filter that is tens of thousands of rows read
/// and sorted for thirty. Walking an index in sort order instead stops as soon as the page is
/// full. That is only cheaper when matches are common, so the walk runs under a step budget
/// (see [`bounded`]) and the planner's choice remains the fallback.
fn ordering_index(entry: &Entry, sort: &str) -> Option<String> {
    let first = sort
        .split(',')
        .next()?
        .trim()
        .trim_start_matches(['-', '+']);
    if first.is_empty() || first.contains(['.', '@', ':', '(']) || entry.collection.is_view() {
        return None;
    }
    entry
        .collection
        .indexes
        .iter()
        .filter_map(|raw| warren_schema::Index::parse(raw))
        .find_map(|index| {
            let leading = index.columns.first()?;
            (index.where_clause.is_empty() && leading.name == first && leading.collate.is_empty())
                .then_some(index.name)
        })
}

/// Runs `work` with a VM step budget: `Some` with its result, or `None` when the budget ran
/// out (the statement was interrupted and nothing of it is used).
fn bounded<T>(c: &Connection, work: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
    let mut checks = 0u32;
    c.progress_handler(
        PROGRESS_STEP,
        Some(move || {
            checks += 1;
            checks > PROGRESS_CHECKS
        }),
    )?;
    let result = work();
    c.progress_handler(0, None::<fn() -> bool>)?;
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Error::Store(warren_store::Error::Interrupted(_))) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Views one record under the view rule (404 when missing or hidden by the rule).
pub async fn view(
    db: &Database,
    catalog: Arc<Catalog>,
    entry: Arc<Entry>,
    caller: &Caller,
    ctx: RequestContext,
    id: &str,
    expand_param: &str,
) -> Result<Value> {
    let (viewer, tree, id) = (
        caller.clone(),
        expand::Tree::parse(expand_param),
        id.to_string(),
    );
    db.read(move |c| {
        view_on(c, &catalog, &entry, &viewer, &ctx, &id, tree.as_ref()).map(RecordJson::into_value)
    })
    .await
}

/// [`view`] for a caller whose token is checked in the same read as the record, run as a quick
/// read (see `Database::read_quick`: inline when a connection is idle and the read is short).
/// `ctx` is completed with the caller. Returns the caller, for the
/// request log, with the outcome; the caller is `None` only when the read could not run.
pub async fn view_as(
    db: &Database,
    catalog: Arc<Catalog>,
    entry: Arc<Entry>,
    who: Pending,
    ctx: RequestContext,
    id: &str,
    expand_param: &str,
) -> (Option<Caller>, Result<RecordJson>) {
    let (tree, id) = (expand::Tree::parse(expand_param), id.to_string());
    let version = match &who {
        Pending::Token(token) => token.table_version(db),
        Pending::Known(_) => None,
    };
    let out = db
        .read_quick(move |c| {
            let caller = who.resolve(c, version)?;
            let mut ctx = ctx.clone();
            ctx.auth = caller.shared_record().cloned();
            let viewed = view_on(c, &catalog, &entry, &caller, &ctx, &id, tree.as_ref());
            Ok::<_, Error>((caller, viewed))
        })
        .await;
    match out {
        Ok((caller, viewed)) => (Some(caller), viewed),
        Err(e) => (None, Err(e)),
    }
}

/// The record `id` as `caller` may view it (no expand), on connection `c` (a read connection,
/// or the writer inside a transaction the caller holds).
pub fn view_in(
    c: &Connection,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    caller: &Caller,
    id: &str,
) -> Result<Value> {
    view_on(c, catalog, entry, caller, &caller.context(), id, None).map(RecordJson::into_value)
}

/// The record `id` as `caller` may view it, on `c`.
fn view_on(
    c: &Connection,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    caller: &Caller,
    ctx: &RequestContext,
    id: &str,
    tree: Option<&expand::Tree>,
) -> Result<RecordJson> {
    let rule = rule(caller, &entry.rules.view)?;
    let statement = catalog.compiled().view(entry, rule, ctx, || {
        rule_statement(catalog, entry, ctx, rule)
    })?;
    let data = select_by_id(c, entry, &statement, id)?.ok_or(Error::NotFound(NOT_FOUND))?;
    let mut items = expand::render_rows(c, catalog, entry, caller, ctx, vec![data], tree)?;
    items.pop().ok_or(Error::NotFound(NOT_FOUND))
}

/// A compiled "record `id`, if the rule admits it" query: SQL and params.
pub(crate) struct OneStatement {
    sql: String,
    params: Vec<warren_store::sql::Value>,
}

pub(crate) fn one_statement(
    catalog: &Catalog,
    entry: &Arc<Entry>,
    ctx: &RequestContext,
    rule: Option<&Filter>,
    id: &str,
) -> Result<OneStatement> {
    let mut statement = rule_statement(catalog, entry, ctx, rule)?;
    statement.params.push(id.to_string().into());
    Ok(statement)
}

/// [`one_statement`] without the id: its last parameter is left for [`select_by_id`] to bind.
pub(crate) fn rule_statement(
    catalog: &Catalog,
    entry: &Arc<Entry>,
    ctx: &RequestContext,
    rule: Option<&Filter>,
) -> Result<OneStatement> {
    let mut q = Query::for_collection(entry.info.clone());
    if let Some(rule) = rule {
        q.and_where(catalog, ctx, rule, Access::Trusted)?;
    }
    let sqlf = q.to_sql();
    let column_list = columns(entry);
    let sql = format!(
        "{} AND {}.\"id\" = ? LIMIT 1",
        sqlf.select(column_list),
        sqlf.table
    );
    let params = sql::params(&sqlf.params);
    Ok(OneStatement { sql, params })
}

/// Whether record `id` exists and passes `rule` (`None`: exists at all); a rule check around
/// a write, which reads no column of the record.
pub(crate) fn passes(
    c: &Connection,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    ctx: &RequestContext,
    rule: Option<&Filter>,
    id: &str,
) -> Result<bool> {
    let compile = || {
        let mut q = Query::for_collection(entry.info.clone());
        if let Some(rule) = rule {
            q.and_where(catalog, ctx, rule, Access::Trusted)?;
        }
        let sqlf = q.to_sql();
        let sql = format!("{} AND {}.\"id\" = ? LIMIT 1", sqlf.select("1"), sqlf.table);
        Ok(OneStatement {
            sql,
            params: sql::params(&sqlf.params),
        })
    };
    // Kept only for the catalog's own entry: the statement is compiled against the catalog.
    let statement = if catalog
        .get(&entry.collection.id)
        .is_some_and(|own| Arc::ptr_eq(own, entry))
    {
        catalog.compiled().check(entry, rule, ctx, compile)?
    } else {
        Arc::new(compile()?)
    };
    let mut params = sql::bind(&statement.params);
    params.push(&id);
    Ok(c.prepare_cached(&statement.sql)?
        .exists(params.as_slice())?)
}

pub(crate) fn select_one(
    c: &Connection,
    entry: &Entry,
    statement: &OneStatement,
) -> Result<Option<RecordData>> {
    select_with(c, entry, statement, sql::bind(&statement.params))
}

/// Runs a statement of [`rule_statement`] for record `id`.
pub(crate) fn select_by_id(
    c: &Connection,
    entry: &Entry,
    statement: &OneStatement,
    id: &str,
) -> Result<Option<RecordData>> {
    let mut params = sql::bind(&statement.params);
    params.push(&id);
    select_with(c, entry, statement, params)
}

fn select_with(
    c: &Connection,
    entry: &Entry,
    statement: &OneStatement,
    params: Vec<&dyn warren_store::sql::ToSql>,
) -> Result<Option<RecordData>> {
    let mut stmt = c.prepare_cached(&statement.sql)?;
    let mut rows = stmt.query(params.as_slice())?;
    match rows.next()? {
        Some(row) => Ok(Some(sql::read_record(row, &entry.collection)?)),
        None => Ok(None),
    }
}

/// Adds the caller, query parameters and headers to a request context.
pub fn context(
    caller: &Caller,
    method: &str,
    query: &Map<String, Value>,
    headers: Headers,
) -> RequestContext {
    let mut ctx = caller.context();
    ctx.method = method.to_string();
    for (k, v) in query {
        if let Some(v) = v.as_str() {
            ctx.query.insert(k.clone(), v.to_string());
        }
    }
    ctx.headers = headers;
    ctx
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use warren_schema::Collection;

    use super::*;

    /// A database with a `posts` collection of `rows` records (`n` descending from `rows`,
    /// `flag` set on every third) and, when `indexed`, an index on `n`.
    async fn posts(dir: &std::path::Path, rows: usize, indexed: bool) -> (Database, Arc<Catalog>) {
        let indexes = if indexed {
            json!(["CREATE INDEX idx_posts_n ON posts (n)"])
        } else {
            json!([])
        };
        let collection = Collection::from_create_body(&json!({
            "name": "posts",
            "fields": [{"name": "n", "type": "number"}, {"name": "flag", "type": "bool"}],
            "indexes": indexes,
            "listRule": ""
        }))
        .unwrap();
        let db = crate::testing::database(dir, &[&collection], move |c| {
            let mut insert = c.prepare("INSERT INTO posts (id, n, flag) VALUES (?1, ?2, ?3)")?;
            for i in 0..rows {
                insert.execute(warren_store::sql::params![
                    format!("r{i:014}"),
                    (rows - i) as i64,
                    i % 3 == 0
                ])?;
            }
            Ok(())
        })
        .await;
        (db, Arc::new(Catalog::new(vec![collection])))
    }

    async fn ids(db: &Database, catalog: &Arc<Catalog>, filter: &str, page: u64) -> Vec<String> {
        let entry = catalog.get("posts").unwrap().clone();
        let query = ListQuery {
            page,
            per_page: 30,
            sort: "-n,id".into(),
            filter: filter.into(),
            ..ListQuery::default()
        };
        let page = list(
            db,
            catalog.clone(),
            entry,
            &Caller::Superuser {
                record: Default::default(),
            },
            RequestContext::guest(),
            query,
        )
        .await
        .unwrap();
        page.items
            .iter()
            .map(|r| r.get("id").unwrap().as_str().unwrap().to_string())
            .collect()
    }

    /// The total of a superuser's page of `posts` matching `filter`.
    async fn total(db: &Database, catalog: &Arc<Catalog>, filter: &str) -> i64 {
        let entry = catalog.get("posts").unwrap().clone();
        let query = ListQuery {
            page: 1,
            per_page: 5,
            filter: filter.into(),
            ..ListQuery::default()
        };
        let superuser = Caller::Superuser {
            record: Default::default(),
        };
        list(
            db,
            catalog.clone(),
            entry,
            &superuser,
            RequestContext::guest(),
            query,
        )
        .await
        .unwrap()
        .total_items
    }

    /// Sets every remembered count to `fake`, keeping its version.
    fn tamper(catalog: &Catalog, fake: i64) -> usize {
        let mut counts = catalog.counts().lock();
        for (_, count) in counts.values_mut() {
            *count = fake;
        }
        counts.len()
    }

    #[tokio::test]
    async fn a_count_is_remembered_until_anything_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let collection = Collection::from_create_body(&json!({
            "name": "posts",
            "fields": [{"name": "n", "type": "number"}],
            "listRule": ""
        }))
        .unwrap();
        let db = crate::testing::exclusive_database(dir.path(), &[&collection], |c| {
            c.execute_batch(
                "INSERT INTO posts (id, n) VALUES ('r00000000000001', 1), ('r00000000000002', 2)",
            )?;
            Ok(())
        })
        .await;
        let catalog = Arc::new(Catalog::new(vec![collection]));
        assert_eq!(total(&db, &catalog, "n > 0").await, 2);
        // Remembered, and taken while nothing is committed (the fake shows it was).
        assert_eq!(tamper(&catalog, 99), 1);
        assert_eq!(total(&db, &catalog, "n > 0").await, 99);
        // Another filter is another statement.
        assert_eq!(total(&db, &catalog, "n > 1").await, 1);
        // Any commit, to any table, makes the remembered counts stale.
        db.write(|c| {
            c.execute(
                "INSERT INTO posts (id, n) VALUES ('r00000000000003', 3)",
                [],
            )
            .map_err(crate::Error::from)
        })
        .await
        .unwrap();
        assert_eq!(total(&db, &catalog, "n > 0").await, 3);
        assert_eq!(total(&db, &catalog, "n > 1").await, 2);
        tamper(&catalog, 98);
        db.write(|c| {
            c.execute_batch("CREATE TABLE other (x)")
                .map_err(crate::Error::from)
        })
        .await
        .unwrap();
        assert_eq!(total(&db, &catalog, "n > 0").await, 3);
        // A statement whose answer can change with the clock is never remembered.
        catalog.counts().lock().clear();
        assert_eq!(
            total(&db, &catalog, "strftime('%Y', 'now') != '' && n > 0").await,
            3
        );
        assert_eq!(catalog.counts().lock().len(), 0);
    }

    #[tokio::test]
    async fn a_database_another_process_may_write_keeps_no_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (db, catalog) = posts(dir.path(), 10, false).await;
        assert_eq!(total(&db, &catalog, "").await, 10);
        assert_eq!(catalog.counts().lock().len(), 0);
    }

    #[tokio::test]
    async fn a_page_written_out_directly_is_its_json_value() {
        let dir = tempfile::tempdir().unwrap();
        let (db, catalog) = posts(dir.path(), 40, false).await;
        let entry = catalog.get("posts").unwrap().clone();
        for skip_total in [false, true] {
            let query = ListQuery {
                page: 2,
                per_page: 7,
                sort: "-n,id".into(),
                skip_total,
                ..ListQuery::default()
            };
            let superuser = Caller::Superuser {
                record: Default::default(),
            };
            let page = list(
                &db,
                catalog.clone(),
                entry.clone(),
                &superuser,
                RequestContext::guest(),
                query,
            )
            .await
            .unwrap();
            assert_eq!(page.items.len(), 7);
            let direct = serde_json::to_string(&page).unwrap();
            assert_eq!(direct, serde_json::to_string(&page.to_value()).unwrap());
            let bytes = String::from_utf8(page.to_json_bytes()).unwrap();
            assert_eq!(bytes, direct, "written straight, the same bytes");
        }
    }

    #[tokio::test]
    async fn passes_says_whether_a_record_exists_and_meets_the_rule() {
        let dir = tempfile::tempdir().unwrap();
        let (db, catalog) = posts(dir.path(), 10, false).await;
        let entry = catalog.get("posts").unwrap().clone();
        // Record `r…3` has n = 7, flag set; `r…4` has n = 6, flag unset.
        let check = |rule: Option<&str>, id: &str| {
            let (catalog, entry) = (catalog.clone(), entry.clone());
            let rule = rule.map(|r| Filter::parse(r).unwrap());
            let id = id.to_string();
            db.read(move |c| {
                passes(
                    c,
                    &catalog,
                    &entry,
                    &RequestContext::guest(),
                    rule.as_ref(),
                    &id,
                )
            })
        };
        assert!(check(None, "r00000000000003").await.unwrap());
        assert!(!check(None, "missing").await.unwrap());
        assert!(
            check(Some("n = 7 && flag = true"), "r00000000000003")
                .await
                .unwrap()
        );
        assert!(!check(Some("flag = true"), "r00000000000004").await.unwrap());
        assert!(!check(Some("n > 100"), "r00000000000003").await.unwrap());
        // Each check compiled once and kept: the same rule again, for another record, answers
        // from the kept statement with that record's own outcome.
        assert_eq!(catalog.compiled().len(), 4);
        assert!(check(Some("flag = true"), "r00000000000003").await.unwrap());
        assert_eq!(catalog.compiled().len(), 4);
        // A rule reading the request is kept per value it reads, never answered for another.
        let with_body = |n: i64| {
            let (catalog, entry) = (catalog.clone(), entry.clone());
            let rule = Filter::parse("n = @request.body.n").unwrap();
            let mut ctx = RequestContext::guest();
            ctx.body.insert("n".into(), json!(n));
            db.read(move |c| passes(c, &catalog, &entry, &ctx, Some(&rule), "r00000000000003"))
        };
        assert!(with_body(7).await.unwrap());
        assert!(!with_body(6).await.unwrap());
        assert!(with_body(7).await.unwrap());
        assert_eq!(catalog.compiled().len(), 6);
    }

    #[tokio::test]
    async fn walking_the_sort_index_returns_the_same_pages() {
        let (with, without) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (indexed, indexed_catalog) = posts(with.path(), 40_000, true).await;
        let (plain, plain_catalog) = posts(without.path(), 40_000, false).await;
        assert!(ordering_index(&indexed_catalog.get("posts").unwrap().clone(), "-n,id").is_some());
        // A broad filter (the index walk finishes early) and one matching a single record at the
        // far end of the index (the walk runs out of budget and the planner's plan answers).
        for (filter, page) in [
            ("flag = true", 1),
            ("flag = true", 7),
            ("n = 1", 1),
            ("n > 39990", 1),
            ("", 3),
        ] {
            let expected = ids(&plain, &plain_catalog, filter, page).await;
            assert!(!expected.is_empty(), "{filter}");
            assert_eq!(
                ids(&indexed, &indexed_catalog, filter, page).await,
                expected,
                "{filter} page {page}"
            );
        }
    }

    /// A caller of collection `users` with id `id`, and its rule context.
    fn user(id: &str) -> (Caller, RequestContext) {
        let record =
            json!({"id": id, "collectionId": "_pb_users_auth_", "collectionName": "users"});
        let caller = Caller::Record {
            record: record.as_object().unwrap().clone().into(),
        };
        let ctx = caller.context();
        (caller, ctx)
    }

    /// Views `id` as `who` against `catalog`; the record's `n` or the error.
    async fn view_n(db: &Database, catalog: &Arc<Catalog>, who: &str, id: &str) -> Result<i64> {
        let entry = catalog.get("posts").unwrap().clone();
        let (caller, ctx) = user(who);
        let record = view(db, catalog.clone(), entry, &caller, ctx, id, "").await?;
        Ok(record["n"].as_i64().unwrap())
    }

    /// `posts` (3 rows, `n` = 3, 2, 1) under `view_rule`, in the same database.
    fn with_rule(view_rule: &str, name: &str) -> Arc<Catalog> {
        let collection = Collection::from_create_body(&json!({
            "id": "pbc_posts",
            "name": name,
            "fields": [{"name": "n", "type": "number"}, {"name": "flag", "type": "bool"}],
            "viewRule": view_rule
        }))
        .unwrap();
        Arc::new(Catalog::new(vec![collection]))
    }

    #[tokio::test]
    async fn a_per_user_rule_is_compiled_once_per_user_and_never_crosses_users() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = posts(dir.path(), 3, false).await;
        // Each user may see the record whose id is theirs.
        let catalog = with_rule("id = @request.auth.id", "posts");
        let first = "r00000000000000";
        let second = "r00000000000001";
        assert_eq!(view_n(&db, &catalog, first, first).await.unwrap(), 3);
        assert_eq!(catalog.compiled().len(), 1);
        // The same user again: the kept statement answers.
        assert_eq!(view_n(&db, &catalog, first, first).await.unwrap(), 3);
        assert_eq!(catalog.compiled().len(), 1);
        // Another user gets their own statement, and not the first user's record.
        assert!(matches!(
            view_n(&db, &catalog, second, first).await,
            Err(Error::NotFound(_))
        ));
        assert_eq!(view_n(&db, &catalog, second, second).await.unwrap(), 2);
        assert_eq!(catalog.compiled().len(), 2);
        // After the first user was cached, they still cannot see the second's record.
        assert!(matches!(
            view_n(&db, &catalog, first, second).await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_new_catalog_compiles_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = posts(dir.path(), 3, false).await;
        let id = "r00000000000000";
        let open = with_rule("", "posts");
        assert_eq!(view_n(&db, &open, "u1", id).await.unwrap(), 3);
        // The rule changed: the next request runs under the new one.
        let closed = with_rule("n > 100", "posts");
        assert!(matches!(
            view_n(&db, &closed, "u1", id).await,
            Err(Error::NotFound(_))
        ));
        // Another tenant's catalog with a same-named, same-id collection under another rule
        // shares nothing with this one, in either order.
        let other = with_rule("n = 3", "posts");
        assert_eq!(view_n(&db, &other, "u1", id).await.unwrap(), 3);
        assert!(matches!(
            view_n(&db, &closed, "u1", id).await,
            Err(Error::NotFound(_))
        ));
        // Superusers-only: forbidden whatever was kept before.
        let locked = Arc::new(Catalog::new(vec![
            Collection::from_create_body(&json!({
                "id": "pbc_posts",
                "name": "posts",
                "fields": [{"name": "n", "type": "number"}],
            }))
            .unwrap(),
        ]));
        assert!(matches!(
            view_n(&db, &locked, "u1", id).await,
            Err(Error::Forbidden(_))
        ));
    }
}
