//! Record changes a write committed, handed back to the caller so that realtime subscribers
//! can be told after the commit (never from inside the writer), and their rendering for one
//! viewer.

use std::sync::Arc;

use serde_json::Value;
use warren_filter::RequestContext;
use warren_schema::record::{RecordData, RecordJson};
use warren_store::sql::Connection;

use crate::catalog::{Catalog, Entry};
use crate::read::{NOT_FOUND, render};
use crate::{Caller, Error, Result, expand};

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    /// The record was inserted.
    Create,
    /// The record was updated.
    Update,
    /// The record was deleted (its data is the state just before).
    Delete,
}

impl ChangeAction {
    /// PocketBase's name of the action in realtime payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Delete => "delete",
        }
    }
}

/// One committed record change: the collection, the action and the full record data (hidden
/// fields included; rendering decides what a viewer sees).
#[derive(Debug, Clone)]
pub struct Change {
    /// The record's collection as of the write.
    pub entry: Arc<Entry>,
    /// What happened.
    pub action: ChangeAction,
    /// The record after a create/update, before a delete.
    pub data: RecordData,
}

impl Change {
    /// A change of `entry`'s record `data`.
    pub fn new(entry: Arc<Entry>, action: ChangeAction, data: RecordData) -> Self {
        Self {
            entry,
            action,
            data,
        }
    }

    /// The record's id.
    pub fn id(&self) -> &str {
        self.data.get("id").and_then(Value::as_str).unwrap_or("")
    }
}

/// Renders a changed record for `viewer` as the REST API would (hidden fields, email
/// visibility), without touching the database.
pub fn render_plain(viewer: &Caller, entry: &Entry, data: &RecordData) -> Value {
    render(viewer, entry, data).into_value()
}

/// Renders a changed record for `viewer` with `expand` resolved on `conn` under the related
/// collections' view rules for that viewer. An empty `expand` needs no query.
pub fn render_expanded(
    conn: &Connection,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    viewer: &Caller,
    ctx: &RequestContext,
    data: &RecordData,
    expand_param: &str,
) -> Result<Value> {
    let Some(tree) = expand::Tree::parse(expand_param) else {
        return Ok(render_plain(viewer, entry, data));
    };
    let mut items = expand::render_rows(
        conn,
        catalog,
        entry,
        viewer,
        ctx,
        vec![data.clone()],
        Some(&tree),
    )?;
    items
        .pop()
        .map(RecordJson::into_value)
        .ok_or(Error::NotFound(NOT_FOUND))
}

/// Decides, in one statement, which of `checks` (compiled for `entry`) admit the changed
/// record `data`. The record is bound as a one-row table shadowing the collection's table,
/// so a deleted record is judged on its state just before the delete. Checks that join other
/// tables see those tables as committed now.
pub fn admitted_by_sql(
    conn: &Connection,
    entry: &Entry,
    data: &RecordData,
    checks: &[&warren_filter::Query],
) -> Result<Vec<bool>> {
    if checks.is_empty() {
        return Ok(Vec::new());
    }
    let fields = &entry.collection.fields;
    let names = fields
        .iter()
        .map(|f| crate::sql::quote(&f.name))
        .collect::<Vec<_>>()
        .join(", ");
    let placeholders = vec!["?"; fields.len()].join(", ");
    let mut params: Vec<warren_store::sql::Value> = fields
        .iter()
        .map(|f| crate::sql::from_schema(&f.to_sql(data.get(&f.name).unwrap_or(&Value::Null))))
        .collect();
    let mut exists = Vec::with_capacity(checks.len());
    let mut table = String::new();
    for query in checks {
        let sqlf = query.to_sql();
        table.clone_from(&sqlf.table);
        let joins = if sqlf.joins.is_empty() {
            String::new()
        } else {
            format!(" {}", sqlf.joins)
        };
        exists.push(format!(
            "EXISTS (SELECT 1 FROM {}{joins} WHERE {})",
            sqlf.table, sqlf.where_clause
        ));
        params.extend(crate::sql::params(&sqlf.params));
    }
    let statement = format!(
        "WITH {table} ({names}) AS (VALUES ({placeholders})) SELECT {}",
        exists.join(", ")
    );
    let mut stmt = conn.prepare(&statement)?;
    let row = stmt.query_row(crate::sql::bind(&params).as_slice(), |row| {
        (0..checks.len())
            .map(|i| row.get::<_, bool>(i))
            .collect::<warren_store::sql::Result<Vec<bool>>>()
    })?;
    Ok(row)
}
