//! Listing collections page by page for the collections API, and the scaffolds.

use std::sync::Arc;

use serde_json::{Value, json};
use warren_filter::{
    Access, CollectionInfo, FieldInfo, FieldType, Query, RequestContext, StaticSchema,
};
use warren_schema::{Collection, CollectionType};
use warren_store::Database;
use warren_store::sql::{Connection, params_from_iter};

use super::{DEFAULT_PER_PAGE, MAX_PER_PAGE, Result};
use crate::catalog::Catalog;
use crate::sql;

/// `GET /api/collections` parameters.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// 1-based page (values below 1 mean 1).
    pub page: i64,
    /// Page size (0 = default, capped at [`MAX_PER_PAGE`]).
    pub per_page: i64,
    /// Filter over `id, created, updated, name, system, type`.
    pub filter: String,
    /// Sort over the same fields.
    pub sort: String,
    /// Skip counting (`totalItems`/`totalPages` become -1).
    pub skip_total: bool,
}

/// One page of collections.
#[derive(Debug, Clone)]
pub struct CollectionPage {
    /// The collections of this page.
    pub items: Vec<Collection>,
    /// The page number.
    pub page: i64,
    /// The page size.
    pub per_page: i64,
    /// Matching collections in all (-1 when skipped).
    pub total_items: i64,
    /// Pages in all (-1 when skipped).
    pub total_pages: i64,
}

impl CollectionPage {
    /// PocketBase's list JSON `{items,page,perPage,totalItems,totalPages}`.
    pub fn to_json(&self) -> Value {
        json!({
            "items": self.items,
            "page": self.page,
            "perPage": self.per_page,
            "totalItems": self.total_items,
            "totalPages": self.total_pages,
        })
    }
}

/// The `_collections` table as the filter compiler sees it: only the columns PocketBase lets
/// a collections list filter and sort by.
pub(super) fn collections_table() -> CollectionInfo {
    CollectionInfo {
        id: "_collections".into(),
        name: "_collections".into(),
        collection_type: warren_filter::CollectionType::Base,
        fields: vec![
            FieldInfo::new("id", FieldType::Text),
            FieldInfo::new("created", FieldType::Autodate),
            FieldInfo::new("updated", FieldType::Autodate),
            FieldInfo::new("name", FieldType::Text),
            FieldInfo::new("system", FieldType::Bool),
            FieldInfo::new("type", FieldType::Text),
        ],
        list_rule: None,
        unique_fields: vec!["id".into(), "name".into()],
    }
}

/// Lists collections page by page (a bad filter or sort is a 400).
pub async fn list(db: &Database, params: ListParams) -> Result<CollectionPage> {
    db.read(move |conn| list_in(conn, &params)).await
}

/// [`list`] on a connection.
pub fn list_in(conn: &Connection, params: &ListParams) -> Result<CollectionPage> {
    let info = Arc::new(collections_table());
    let schema = StaticSchema::new([(*info).clone()]);
    let request = RequestContext::guest();
    let mut query = Query::for_collection(info);
    let filter = warren_filter::Filter::parse(&params.filter).map_err(crate::Error::from)?;
    query
        .and_where(&schema, &request, &filter, Access::Trusted)
        .map_err(crate::Error::from)?;
    let sort = warren_filter::parse_sort(&params.sort).map_err(crate::Error::from)?;
    query
        .order_by(&schema, &request, &sort, Access::Trusted)
        .map_err(crate::Error::from)?;
    let compiled = query.to_sql();

    let page = params.page.max(1);
    let per_page = match params.per_page {
        n if n <= 0 => DEFAULT_PER_PAGE,
        n => n.min(MAX_PER_PAGE),
    };
    let from = format!(
        "FROM {table} {joins} WHERE {cond}",
        table = compiled.table,
        joins = compiled.joins,
        cond = compiled.where_clause
    );
    let order = if compiled.order_by.is_empty() {
        format!("{}.rowid", compiled.table)
    } else {
        format!("{}, {}.rowid", compiled.order_by, compiled.table)
    };
    let mut values = sql::params(&compiled.params);
    let (total_items, total_pages) = if params.skip_total {
        (-1, -1)
    } else {
        let count: i64 = conn.query_row(
            &format!("SELECT COUNT(DISTINCT {}.id) {from}", compiled.table),
            params_from_iter(values.iter()),
            |r| r.get(0),
        )?;
        (count, (count + per_page - 1) / per_page)
    };
    values.push(warren_store::sql::Value::Integer(
        (page - 1).saturating_mul(per_page),
    ));
    let distinct = if compiled.distinct { "DISTINCT " } else { "" };
    let mut stmt = conn.prepare(&format!(
        // The page size is part of the statement: SQLite plans with a bound LIMIT's value, so
        // a bound one makes it prepare the statement twice.
        "SELECT {distinct}{table}.id {from} ORDER BY {order} LIMIT {per_page} OFFSET ?",
        table = compiled.table
    ))?;
    let ids = stmt
        .query_map(params_from_iter(values.iter()), |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let catalog = Catalog::load(conn)?;
    let items = ids
        .iter()
        .filter_map(|id| catalog.get(id).map(|e| e.collection.clone()))
        .collect();
    Ok(CollectionPage {
        items,
        page,
        per_page,
        total_items,
        total_pages,
    })
}

/// `GET /api/collections/meta/scaffolds`: the blank base, auth and view collections.
pub fn scaffolds() -> Value {
    json!({
        "base": Collection::scaffold(CollectionType::Base, ""),
        "auth": Collection::scaffold(CollectionType::Auth, ""),
        "view": Collection::scaffold(CollectionType::View, ""),
    })
}
