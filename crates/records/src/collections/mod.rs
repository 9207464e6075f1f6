//! Schema changes of a tenant: create, update, delete, truncate and import collections, and
//! list them for the collections API.
//!
//! Every change is one closure on the tenant's single writer. It loads the catalog inside that
//! closure (so it validates against exactly the schema it changes), validates the candidate
//! collection, runs the schema crate's DDL and writes the `_collections` row(s). The writer runs
//! the closure in a savepoint of its own: when any statement fails (a unique index over
//! duplicate data, a view query SQLite rejects), the old schema and data stay as they were.
//! Callers reload the tenant's cached catalog after a successful change.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde_json::{Map, Value, json};
use warren_filter::{
    Access, CollectionInfo, FieldInfo, FieldType, Query, RequestContext, StaticSchema,
};
use warren_schema::collection::CollectionOptions;
use warren_schema::datetime::DateTime;
use warren_schema::field::{JsonOptions, NumberOptions, RelationOptions, TextOptions};
use warren_schema::validate::RuleChecker;
use warren_schema::{
    Collection, CollectionRow, CollectionType, Field, FieldError, FieldKind, Index,
    ValidationErrors, ddl, id,
};
use warren_store::Database;
use warren_store::rusqlite::{Connection, params_from_iter};

use crate::catalog::{Catalog, filter_info};
use crate::sql;

/// Envelope message of a failed create.
pub const CREATE_FAILED: &str = "Failed to create collection.";
/// Envelope message of a failed update.
pub const UPDATE_FAILED: &str = "Failed to update collection.";
/// Envelope message of a failed import.
pub const IMPORT_FAILED: &str = "Failed to import collections.";
/// Envelope message of a malformed request body.
pub const INVALID_DATA: &str = "An error occurred while validating the submitted data.";

/// Most `perPage` a list request may ask for.
pub const MAX_PER_PAGE: i64 = 1000;
/// `perPage` when the request names none.
pub const DEFAULT_PER_PAGE: i64 = 30;

/// Auth-related system tables whose rows point at a collection through `collectionRef`.
pub(crate) const AUTH_REF_TABLES: [&str; 4] = ["_externalAuths", "_mfas", "_otps", "_authOrigins"];

/// Deepest chain of cascading deletes followed while truncating.
const MAX_CASCADE_DEPTH: usize = 16;

/// Why a schema change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    /// 404: no collection with that id or name.
    #[error("collection not found")]
    NotFound,
    /// 400 with per-field errors under the envelope's `data`.
    #[error("{message}")]
    Invalid {
        /// The envelope's message, e.g. [`CREATE_FAILED`].
        message: &'static str,
        /// The field errors.
        errors: ValidationErrors,
    },
    /// 400 with a message and no field details.
    #[error("{0}")]
    Rejected(String),
    /// The database failed.
    #[error(transparent)]
    Records(#[from] crate::Error),
}

impl From<warren_store::Error> for CollectionError {
    fn from(e: warren_store::Error) -> Self {
        Self::Records(e.into())
    }
}

impl From<warren_store::rusqlite::Error> for CollectionError {
    fn from(e: warren_store::rusqlite::Error) -> Self {
        Self::Records(e.into())
    }
}

/// Result alias of schema changes.
pub type Result<T, E = CollectionError> = std::result::Result<T, E>;

fn invalid(message: &'static str, key: &str, error: FieldError) -> CollectionError {
    let mut errors = ValidationErrors::new();
    errors.add(key, error);
    CollectionError::Invalid { message, errors }
}

// ---------------------------------------------------------------------------------------------
// Rules

/// Checks rules with the filter compiler against a candidate set of collections (the one being
/// saved included), so a rule naming an unknown field or collection is refused.
pub struct FilterRuleChecker {
    schema: StaticSchema,
}

impl FilterRuleChecker {
    /// A checker over these collections.
    pub fn new(collections: &[Collection]) -> Self {
        Self {
            schema: StaticSchema::new(collections.iter().map(filter_info)),
        }
    }
}

impl RuleChecker for FilterRuleChecker {
    fn check(&self, collection: &Collection, rule: &str) -> std::result::Result<(), String> {
        warren_filter::compile(
            &self.schema,
            &collection.id,
            rule,
            &RequestContext::guest(),
            Access::Trusted,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Listing

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
fn collections_table() -> CollectionInfo {
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
    values.push(warren_store::rusqlite::types::Value::Integer(per_page));
    values.push(warren_store::rusqlite::types::Value::Integer(
        (page - 1).saturating_mul(per_page),
    ));
    let distinct = if compiled.distinct { "DISTINCT " } else { "" };
    let mut stmt = conn.prepare(&format!(
        "SELECT {distinct}{table}.id {from} ORDER BY {order} LIMIT ? OFFSET ?",
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

// ---------------------------------------------------------------------------------------------
// Create, update

/// Creates a collection from a `POST /api/collections` body.
pub async fn create(db: &Database, body: Value) -> Result<Collection> {
    db.write(move |conn| create_in(conn, &body)).await
}

/// [`create`] on the writer's connection.
pub fn create_in(conn: &Connection, body: &Value) -> Result<Collection> {
    let all = load_all(conn)?;
    let mut new =
        Collection::from_create_body(body).map_err(|e| bad_body(CREATE_FAILED, "type", &e))?;
    number_generated_id(&mut new, body, &all);
    prepare_view(conn, &mut new, None, &all, CREATE_FAILED)?;
    let candidates = with_candidate(&all, &new);
    validate(&new, None, &candidates, CREATE_FAILED)?;
    apply_ddl(conn, None, &new).map_err(|f| f.into_error(CREATE_FAILED))?;
    write_row(conn, &new, true)?;
    Ok(new)
}

/// A generated id (`pbc_<crc32>`) another collection already has gets a number, as in
/// PocketBase (`pbc_<crc32>2`, `3`, ...), and the auth index names follow it. An id the body
/// gave is left for validation to judge.
fn number_generated_id(new: &mut Collection, body: &Value, all: &[Collection]) {
    let explicit = body
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|id| !id.is_empty());
    if explicit || !all.iter().any(|c| c.id == new.id) {
        return;
    }
    let base = new.id.clone();
    let mut id = base.clone();
    for n in 2..1000 {
        id = format!("{base}{n}");
        if !all.iter().any(|c| c.id == id) {
            break;
        }
    }
    for raw in &mut new.indexes {
        if let Some(mut index) = Index::parse(raw)
            && index.name.contains(&base)
        {
            index.name = index.name.replace(&base, &id);
            *raw = index.build();
        }
    }
    new.id = id;
}

/// Updates collection `id_or_name` with a `PATCH /api/collections/{c}` body.
pub async fn update(db: &Database, id_or_name: &str, patch: Value) -> Result<Collection> {
    let key = id_or_name.to_owned();
    db.write(move |conn| update_in(conn, &key, &patch)).await
}

/// [`update`] on the writer's connection.
pub fn update_in(conn: &Connection, id_or_name: &str, patch: &Value) -> Result<Collection> {
    let all = load_all(conn)?;
    let old = find(&all, id_or_name)
        .ok_or(CollectionError::NotFound)?
        .clone();
    let mut new = old
        .apply_patch(patch)
        .map_err(|e| bad_body(UPDATE_FAILED, "fields", &e))?;
    new.ensure_system_fields();
    finish_update(&old, &mut new);
    prepare_view(conn, &mut new, Some(&old), &all, UPDATE_FAILED)?;
    let candidates = with_candidate(&all, &new);
    validate(&new, Some(&old), &candidates, UPDATE_FAILED)?;
    apply_ddl(conn, Some(&old), &new).map_err(|f| f.into_error(UPDATE_FAILED))?;
    write_row(conn, &new, false)?;
    Ok(new)
}

/// What an update always does: a fresh `updated`, and indexes pointed at the (maybe renamed)
/// table in their normalised form.
fn finish_update(old: &Collection, new: &mut Collection) {
    new.updated = DateTime::now().format();
    if new.created.is_empty() {
        new.created.clone_from(&old.created);
    }
    normalize_index_tables(new);
}

fn normalize_index_tables(c: &mut Collection) {
    for raw in &mut c.indexes {
        if let Some(mut index) = Index::parse(raw)
            && !index.table.is_empty()
            && index.table != c.name
        {
            index.table.clone_from(&c.name);
            *raw = index.build();
        }
    }
}

/// A body that doesn't decode into a collection: PocketBase reports it under one key.
fn bad_body(message: &'static str, key: &str, e: &warren_schema::Error) -> CollectionError {
    tracing::debug!(error = %e, "collection body rejected");
    let text = e.to_string();
    if text.contains("unknown collection type") {
        return invalid(message, key, FieldError::in_invalid());
    }
    invalid(
        message,
        key,
        FieldError::new("validation_invalid_value", "Invalid value"),
    )
}

fn validate(
    new: &Collection,
    old: Option<&Collection>,
    candidates: &[Collection],
    message: &'static str,
) -> Result<()> {
    let checker = FilterRuleChecker::new(candidates);
    warren_schema::validate_collection(new, old, candidates, &checker)
        .map_err(|errors| CollectionError::Invalid { message, errors })
}

/// `all` with `new` added, or replacing the collection with its id.
fn with_candidate(all: &[Collection], new: &Collection) -> Vec<Collection> {
    let mut out: Vec<Collection> = all.iter().filter(|c| c.id != new.id).cloned().collect();
    out.push(new.clone());
    out
}

fn load_all(conn: &Connection) -> Result<Vec<Collection>> {
    Ok(Catalog::load(conn)?
        .entries()
        .iter()
        .map(|e| e.collection.clone())
        .collect())
}

fn find<'a>(all: &'a [Collection], id_or_name: &str) -> Option<&'a Collection> {
    all.iter()
        .find(|c| c.id == id_or_name)
        .or_else(|| all.iter().find(|c| c.name.eq_ignore_ascii_case(id_or_name)))
}

fn write_row(conn: &Connection, c: &Collection, insert: bool) -> Result<()> {
    let row = c.to_row();
    let mut values: Vec<_> = row.values().iter().map(sql::from_schema).collect();
    let columns = CollectionRow::COLUMNS;
    let statement = if insert {
        format!(
            "INSERT INTO `_collections` ({}) VALUES ({})",
            columns.map(|c| format!("`{c}`")).join(", "),
            vec!["?"; columns.len()].join(", ")
        )
    } else {
        values.push(warren_store::rusqlite::types::Value::Text(c.id.clone()));
        format!(
            "UPDATE `_collections` SET {} WHERE `id` = ?",
            columns.map(|c| format!("`{c}` = ?")).join(", ")
        )
    };
    conn.execute(&statement, params_from_iter(values))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// DDL

/// A failed schema statement, located so the API can report it under the right key.
#[derive(Debug)]
enum DdlFailure {
    /// Index number `.0` of the collection could not be created.
    Index(usize, String, String),
    /// The view's query was rejected.
    View(String),
    /// Anything else (a column migration).
    Other(String),
}

impl DdlFailure {
    fn into_error(self, message: &'static str) -> CollectionError {
        match self {
            DdlFailure::Index(i, name, raw) => {
                let mut nested = ValidationErrors::new();
                nested.add(
                    i.to_string(),
                    FieldError::new(
                        "validation_invalid_index_expression",
                        format!("Failed to create index {name} - {raw}"),
                    ),
                );
                let mut errors = ValidationErrors::new();
                errors.add_nested("indexes", nested);
                CollectionError::Invalid { message, errors }
            }
            DdlFailure::View(raw) => invalid(message, "viewQuery", view_query_error(&raw)),
            DdlFailure::Other(raw) => {
                CollectionError::Rejected(format!("{} Raw error: {raw}", message))
            }
        }
    }

    fn raw(&self) -> String {
        match self {
            DdlFailure::Index(_, name, raw) => format!("failed to create index {name} - {raw}"),
            DdlFailure::View(raw) | DdlFailure::Other(raw) => raw.clone(),
        }
    }
}

fn view_query_error(raw: &str) -> FieldError {
    FieldError::new(
        "validation_invalid_view_query",
        format!("Invalid query - {raw}"),
    )
}

/// Runs the statements that take the database from `old` to `new` (or create `new`). Each
/// statement is executed on its own so one holding several (a crafted view query) fails.
fn apply_ddl(
    conn: &Connection,
    old: Option<&Collection>,
    new: &Collection,
) -> std::result::Result<(), DdlFailure> {
    let statements = match old {
        Some(old) => ddl::migrate_statements(old, new),
        None => ddl::create_statements(new),
    };
    // The schema crate appends the new indexes last; run them here to know which one failed.
    let indexes: Vec<(usize, Index)> = new
        .indexes
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| Index::parse(raw).map(|index| (i, index)))
        .collect();
    let body = statements
        .len()
        .saturating_sub(if new.is_view() { 0 } else { indexes.len() });
    for statement in &statements[..body] {
        if let Err(e) = conn.execute(statement, []) {
            let raw = e.to_string();
            return Err(if new.is_view() && statement.starts_with("CREATE VIEW") {
                DdlFailure::View(raw)
            } else {
                DdlFailure::Other(raw)
            });
        }
    }
    if new.is_view() {
        return Ok(());
    }
    for (i, mut index) in indexes {
        index.table.clone_from(&new.name);
        if let Err(e) = conn.execute(&index.build(), []) {
            return Err(DdlFailure::Index(i, index.name.clone(), e.to_string()));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Views

static IDENT_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"^(?:[`"\[]?(\w+)[`"\]]?\s*\.\s*)?[`"\[]?(\w+)[`"\]]?$"#).ok());
static CAST_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?is)^cast\s*\(.*\bas\s+(\w+)\s*\)$").ok());

/// Checks a view's query with SQLite and infers its fields (kept ids for unchanged fields).
fn prepare_view(
    conn: &Connection,
    new: &mut Collection,
    old: Option<&Collection>,
    all: &[Collection],
    message: &'static str,
) -> Result<()> {
    let Some(query) = new.view_query().map(str::to_owned) else {
        return Ok(());
    };
    if query.trim().is_empty() {
        return Ok(()); // validation reports the missing query
    }
    let fields = infer_view_fields(conn, &query, all).map_err(|raw| {
        // PocketBase derives the fields from the query first: a query without an id leaves
        // fields without a primary key, one that does not run leaves no fields at all.
        let mut errors = ValidationErrors::new();
        if raw.starts_with(MISSING_VIEW_ID) {
            errors.add(
                "fields",
                FieldError::new(
                    "validation_missing_primary_key",
                    "Missing or invalid \"id\" PK field",
                ),
            );
        } else {
            errors.add("fields", FieldError::required());
        }
        errors.add("viewQuery", view_query_error(&raw));
        CollectionError::Invalid { message, errors }
    })?;
    new.fields = fields
        .into_iter()
        .map(|mut f| {
            if let Some(prev) = old.and_then(|o| o.field(&f.name))
                && prev.type_name() == f.type_name()
            {
                f.id.clone_from(&prev.id);
            }
            f
        })
        .collect();
    if let CollectionOptions::View { view_query } = &mut new.options {
        *view_query = query;
    }
    Ok(())
}

/// The start of the error for a view query without an `id` column.
const MISSING_VIEW_ID: &str = "missing required id column";

/// The fields of a view: SQLite names the result columns; the select list says where each
/// comes from. `id` becomes the primary key, a column taken straight from a collection field
/// clones that field, another collection's `id` becomes a relation, `count()`/`total()`/`CAST`
/// become numbers, texts or bools, and anything else a JSON field.
pub fn infer_view_fields(
    conn: &Connection,
    query: &str,
    collections: &[Collection],
) -> std::result::Result<Vec<Field>, String> {
    let columns = {
        let stmt = conn
            .prepare(&format!("SELECT * FROM ({query}) LIMIT 0"))
            .map_err(|e| e.to_string())?;
        stmt.column_names()
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let parsed = parse_select(query);
    if parsed.as_ref().is_some_and(|s| {
        s.columns
            .iter()
            .any(|c| c.expr == "*" || c.expr.ends_with(".*"))
    }) {
        return Err("wildcard columns (*) are not supported - manually type the collection field names you want the view query to have".into());
    }
    if !columns.iter().any(|c| c == "id") {
        return Err(format!(
            "{MISSING_VIEW_ID} (you can use `(ROW_NUMBER() OVER()) as id` if you don't have one)"
        ));
    }
    let select = parsed.filter(|s| s.columns.len() == columns.len());
    let mut fields = Vec::with_capacity(columns.len());
    for (i, name) in columns.iter().enumerate() {
        if name == "id" {
            fields.push(view_primary_key());
            continue;
        }
        let column = select.as_ref().map(|s| (&s.columns[i], &s.tables));
        let field = match column {
            Some((col, tables)) => infer_column(name, &col.expr, tables, collections),
            None => json_field(name),
        };
        fields.push(field);
    }
    Ok(fields)
}

fn view_primary_key() -> Field {
    Field::new(
        "id",
        FieldKind::Text(TextOptions {
            autogenerate_pattern: String::new(),
            max: 0,
            min: 0,
            pattern: "^[a-z0-9]+$".into(),
            primary_key: true,
        }),
    )
    .system()
    .required()
}

fn json_field(name: &str) -> Field {
    Field::new(name, FieldKind::Json(JsonOptions { max_size: 1 }))
}

fn number_field(name: &str, only_int: bool) -> Field {
    Field::new(
        name,
        FieldKind::Number(NumberOptions {
            max: None,
            min: None,
            only_int,
        }),
    )
}

fn infer_column(
    name: &str,
    expr: &str,
    tables: &[(String, String)],
    collections: &[Collection],
) -> Field {
    let by_table = |table: &str| {
        tables
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(table))
            .and_then(|(_, t)| collections.iter().find(|c| c.name.eq_ignore_ascii_case(t)))
    };
    if let Some(caps) = IDENT_RE.as_ref().and_then(|re| re.captures(expr)) {
        let column = caps.get(2).map_or("", |m| m.as_str());
        let source = match caps.get(1) {
            Some(table) => by_table(table.as_str()),
            None => tables
                .first()
                .and_then(|(alias, _)| by_table(alias))
                .filter(|c| c.field(column).is_some()),
        };
        if let Some(source) = source {
            if column == "id" {
                return Field::new(
                    name,
                    FieldKind::Relation(RelationOptions {
                        cascade_delete: false,
                        collection_id: source.id.clone(),
                        max_select: 1,
                        min_select: 0,
                    }),
                );
            }
            if let Some(field) = source.field(column) {
                let mut clone = field.clone();
                clone.id = format!("_clone_{}", id::random_string(4, id::ALPHANUMERIC));
                clone.name = name.to_owned();
                clone.system = false;
                return clone;
            }
        }
        return json_field(name);
    }
    let lower = expr.to_ascii_lowercase();
    if lower.starts_with("count(") {
        return number_field(name, true);
    }
    if lower.starts_with("total(") {
        return number_field(name, false);
    }
    if let Some(caps) = CAST_RE.as_ref().and_then(|re| re.captures(expr)) {
        let target = caps
            .get(1)
            .map_or(String::new(), |m| m.as_str().to_ascii_lowercase());
        return match target.as_str() {
            "int" | "integer" => number_field(name, true),
            "real" | "decimal" | "numeric" => number_field(name, false),
            "text" => Field::new(name, FieldKind::Text(TextOptions::default())),
            "bool" | "boolean" => Field::new(name, FieldKind::Bool),
            _ => json_field(name),
        };
    }
    json_field(name)
}

/// One result column of a select list: its expression without the alias.
#[derive(Debug)]
struct SelectColumn {
    expr: String,
}

/// The parts of a SELECT needed to trace columns back to tables.
#[derive(Debug)]
struct Select {
    columns: Vec<SelectColumn>,
    /// (alias or table name, table name) of each FROM/JOIN source, in order.
    tables: Vec<(String, String)>,
}

/// Splits `s` at top level (outside quotes and parentheses) wherever `at` says so; `at`
/// gets the remaining text and returns the length of the separator to cut.
fn split_top(s: &str, at: impl Fn(&str, &str) -> Option<usize>) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    let mut skip_until = 0;
    for (i, ch) in s.char_indices() {
        if i < skip_until {
            continue;
        }
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(ch),
            (None, '[') => quote = Some(']'),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, _) if depth == 0 => {
                if let Some(len) = at(&s[..i], &s[i..]) {
                    parts.push(s[start..i].to_owned());
                    start = i + len;
                    skip_until = start;
                }
            }
            _ => {}
        }
    }
    parts.push(s[start..].to_owned());
    parts
}

/// Matches keyword `kw` (case-insensitive, whole word) at the start of `rest`.
fn keyword_at(before: &str, rest: &str, kw: &str) -> Option<usize> {
    let boundary_before = before
        .chars()
        .next_back()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
    let head = rest.get(..kw.len())?;
    let boundary_after = rest[kw.len()..]
        .chars()
        .next()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    (boundary_before && boundary_after && head.eq_ignore_ascii_case(kw)).then_some(kw.len())
}

fn parse_select(query: &str) -> Option<Select> {
    let q = query.trim().trim_end_matches(';').trim();
    let rest = keyword_at("", q, "select").map(|n| q[n..].trim_start())?;
    let rest = keyword_at("", rest, "distinct")
        .map_or(rest, |n| rest[n..].trim_start())
        .to_owned();
    let mut halves = split_top(&rest, |b, r| keyword_at(b, r, "from"));
    if halves.len() < 2 {
        return None;
    }
    let from = halves.split_off(1).join(" from ");
    let columns = split_top(&halves[0], |_, r| r.starts_with(',').then_some(1))
        .into_iter()
        .map(|c| SelectColumn {
            expr: strip_alias(c.trim()),
        })
        .collect();

    // The FROM clause up to the first clause that ends it.
    let mut from = from;
    for kw in [
        "where", "group", "order", "limit", "having", "window", "union",
    ] {
        from = split_top(&from, |b, r| keyword_at(b, r, kw))
            .into_iter()
            .next()
            .unwrap_or_default();
    }
    let mut tables = Vec::new();
    let sources = split_top(&from, |b, r| {
        keyword_at(b, r, "join").or_else(|| r.starts_with(',').then_some(1))
    });
    for source in sources {
        let source = split_top(&source, |b, r| {
            keyword_at(b, r, "on").or_else(|| keyword_at(b, r, "using"))
        })
        .into_iter()
        .next()
        .unwrap_or_default();
        let words: Vec<&str> = source
            .split_whitespace()
            .filter(|w| {
                ![
                    "left", "right", "inner", "outer", "cross", "natural", "full", "as",
                ]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
            })
            .collect();
        let Some(table) = words.first() else { continue };
        if table.starts_with('(') {
            continue;
        }
        let table = unquote(table);
        let alias = words.get(1).map_or_else(|| table.clone(), |a| unquote(a));
        tables.push((alias, table));
    }
    Some(Select { columns, tables })
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| matches!(c, '`' | '"' | '[' | ']'))
        .to_owned()
}

/// `expr AS alias` → `expr` (the alias itself comes from SQLite's column names).
fn strip_alias(column: &str) -> String {
    let parts = split_top(column, |b, r| keyword_at(b, r, "as"));
    if parts.len() >= 2 {
        return parts[..parts.len() - 1].join(" as ").trim().to_owned();
    }
    // `expr alias` without AS: the last word is an alias when what precedes it is complete.
    if let Some((head, last)) = column.rsplit_once(char::is_whitespace) {
        let head = head.trim();
        let word = last.chars().all(|c| c.is_alphanumeric() || c == '_');
        let complete = head.ends_with(')')
            || IDENT_RE.as_ref().is_some_and(|re| re.is_match(head))
            || head.ends_with('\'');
        if word && complete && !head.is_empty() {
            return head.to_owned();
        }
    }
    column.to_owned()
}

// ---------------------------------------------------------------------------------------------
// Delete, truncate

/// Deletes collection `id_or_name`, its table or view and the auth rows pointing at it.
pub async fn delete(db: &Database, id_or_name: &str) -> Result<()> {
    let key = id_or_name.to_owned();
    db.write(move |conn| delete_in(conn, &key)).await
}

/// [`delete`] on the writer's connection.
pub fn delete_in(conn: &Connection, id_or_name: &str) -> Result<()> {
    let all = load_all(conn)?;
    let target = find(&all, id_or_name)
        .ok_or(CollectionError::NotFound)?
        .clone();
    if target.system {
        return Err(CollectionError::Rejected(
            "Failed to delete collection.".into(),
        ));
    }
    if let Some(referrer) = all
        .iter()
        .filter(|c| c.id != target.id)
        .find(|c| relation_fields(c, &target.id).next().is_some())
    {
        return Err(reference_error(&referrer.name));
    }
    for statement in ddl::drop_statements(&target) {
        conn.execute(&statement, [])?;
    }
    // A view selecting from the dropped table would be left broken (and would break later
    // migrations of the whole database), so such a table can't go.
    for view in all.iter().filter(|c| c.is_view() && c.id != target.id) {
        let probe = format!("SELECT 1 FROM {} LIMIT 0", ddl::quote(&view.name));
        if conn.prepare(&probe).is_err() {
            return Err(reference_error(&view.name));
        }
    }
    conn.execute(
        "DELETE FROM `_collections` WHERE `id` = ?1",
        [target.id.as_str()],
    )?;
    if target.is_auth() {
        for table in AUTH_REF_TABLES {
            conn.execute(
                &format!("DELETE FROM `{table}` WHERE `collectionRef` = ?1"),
                [target.id.as_str()],
            )?;
        }
    }
    Ok(())
}

fn reference_error(name: &str) -> CollectionError {
    CollectionError::Rejected(format!(
        "Failed to delete collection probably due to existing reference in {name}."
    ))
}

fn relation_fields<'a>(
    c: &'a Collection,
    target_id: &'a str,
) -> impl Iterator<Item = (&'a Field, &'a RelationOptions)> + 'a {
    c.fields.iter().filter_map(move |f| match &f.kind {
        FieldKind::Relation(o) if o.collection_id == target_id => Some((f, o)),
        _ => None,
    })
}

/// Deletes every record of collection `id_or_name`, handling relations that point at them
/// like record deletes do: cascading deletes, unset references, refused required ones.
pub async fn truncate(db: &Database, id_or_name: &str) -> Result<()> {
    let key = id_or_name.to_owned();
    db.write(move |conn| truncate_in(conn, &key)).await
}

/// [`truncate`] on the writer's connection.
pub fn truncate_in(conn: &Connection, id_or_name: &str) -> Result<()> {
    let all = load_all(conn)?;
    let target = find(&all, id_or_name).ok_or(CollectionError::NotFound)?;
    if target.is_view() {
        return Err(CollectionError::Rejected(
            "View collections cannot be truncated since they don't store their own records.".into(),
        ));
    }
    let ids: Vec<String> = {
        let mut stmt = conn.prepare(&format!("SELECT `id` FROM {}", ddl::quote(&target.name)))?;
        stmt.query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?
    };
    let mut deleted: HashMap<String, HashSet<String>> = HashMap::new();
    delete_records(conn, &all, target, ids, &mut deleted, 0)
}

/// Deletes `ids` of `target` after dealing with every relation that references them.
fn delete_records(
    conn: &Connection,
    all: &[Collection],
    target: &Collection,
    ids: Vec<String>,
    deleted: &mut HashMap<String, HashSet<String>>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_CASCADE_DEPTH {
        return Err(CollectionError::Rejected(
            "Failed to delete the records: too many nested cascade deletes.".into(),
        ));
    }
    let done = deleted.entry(target.id.clone()).or_default();
    let ids: Vec<String> = ids
        .into_iter()
        .filter(|id| done.insert(id.clone()))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
    for referrer in all.iter().filter(|c| !c.is_view()) {
        for (field, options) in relation_fields(referrer, &target.id) {
            let table = ddl::quote(&referrer.name);
            let column = ddl::quote(&field.name);
            let rows: Vec<(String, String)> = {
                let mut stmt = conn.prepare(&format!(
                    "SELECT `id`, CAST(IFNULL({column}, '') AS TEXT) FROM {table}"
                ))?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?
            };
            let mut cascade = Vec::new();
            for (row_id, raw) in rows {
                if deleted
                    .get(&referrer.id)
                    .is_some_and(|d| d.contains(&row_id))
                {
                    continue;
                }
                let values = relation_values(&raw);
                if !values.iter().any(|v| gone.contains(v.as_str())) {
                    continue;
                }
                let kept: Vec<String> = values
                    .into_iter()
                    .filter(|v| !gone.contains(v.as_str()))
                    .collect();
                if kept.is_empty() && options.cascade_delete {
                    cascade.push(row_id);
                } else if kept.is_empty() && field.required {
                    return Err(CollectionError::Rejected(format!(
                        "The record cannot be deleted because it is part of a required reference in {}.",
                        referrer.name
                    )));
                } else {
                    let value = if field.is_multiple() {
                        Value::from(kept.clone()).to_string()
                    } else {
                        kept.last().cloned().unwrap_or_default()
                    };
                    conn.execute(
                        &format!("UPDATE {table} SET {column} = ?1 WHERE `id` = ?2"),
                        [value.as_str(), row_id.as_str()],
                    )?;
                }
            }
            if !cascade.is_empty() {
                delete_records(conn, all, referrer, cascade, deleted, depth + 1)?;
            }
        }
    }
    let list = Value::from(ids).to_string();
    conn.execute(
        &format!(
            "DELETE FROM {} WHERE `id` IN (SELECT value FROM json_each(?1))",
            ddl::quote(&target.name)
        ),
        [list.as_str()],
    )?;
    if target.is_auth() {
        for table in AUTH_REF_TABLES {
            conn.execute(
                &format!(
                    "DELETE FROM `{table}` WHERE `collectionRef` = ?1 AND `recordRef` IN (SELECT value FROM json_each(?2))"
                ),
                [target.id.as_str(), list.as_str()],
            )?;
        }
    }
    Ok(())
}

/// The ids in a stored relation value (an id, or a JSON array of ids).
fn relation_values(raw: &str) -> Vec<String> {
    if raw.is_empty() {
        return Vec::new();
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.is_empty())
            .collect(),
        _ => vec![raw.to_owned()],
    }
}

// ---------------------------------------------------------------------------------------------
// Import

/// `PUT /api/collections/import`: creates or replaces (by id, then by name) every collection
/// of `body.collections`; with `deleteMissing` it also deletes the non-system collections the
/// list leaves out. All or nothing.
pub async fn import(db: &Database, body: Value) -> Result<()> {
    db.write(move |conn| import_in(conn, &body)).await
}

fn import_failure(raw: impl Into<String>) -> CollectionError {
    invalid(
        IMPORT_FAILED,
        "collections",
        FieldError::new(
            "validation_collections_import_failure",
            format!(
                "Failed to import the collections configuration. Raw error:\n{}",
                raw.into()
            ),
        ),
    )
}

/// [`import`] on the writer's connection.
pub fn import_in(conn: &Connection, body: &Value) -> Result<()> {
    let items = match body.get("collections") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => return Err(invalid(INVALID_DATA, "collections", FieldError::required())),
    };
    let delete_missing = body
        .get("deleteMissing")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let all = load_all(conn)?;

    // The planned (old, new) pairs, in the order given.
    let mut planned: Vec<(Option<Collection>, Collection)> = Vec::new();
    for raw in items {
        if !raw.is_object() {
            return Err(import_failure("every collection must be a JSON object"));
        }
        let by_id = raw
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .and_then(|id| all.iter().find(|c| c.id == id));
        let by_name = raw
            .get("name")
            .and_then(Value::as_str)
            .and_then(|name| all.iter().find(|c| c.name.eq_ignore_ascii_case(name)));
        let old = by_id.or(by_name).cloned();
        let new = match &old {
            Some(old) => {
                let mut patch = raw.clone();
                if let Some(obj) = patch.as_object_mut() {
                    obj.insert("id".into(), Value::String(old.id.clone()));
                }
                let mut new = old
                    .apply_patch(&patch)
                    .map_err(|e| import_failure(e.to_string()))?;
                finish_update(old, &mut new);
                new
            }
            None => Collection::from_create_body(raw).map_err(|e| import_failure(e.to_string()))?,
        };
        if planned.iter().any(|(_, p)| p.id == new.id) {
            return Err(import_failure(format!(
                "collection {} ({}) is listed twice",
                new.name, new.id
            )));
        }
        planned.push((old, new));
    }

    let listed: HashSet<&str> = planned.iter().map(|(_, n)| n.id.as_str()).collect();
    let removed: Vec<Collection> = if delete_missing {
        all.iter()
            .filter(|c| !c.system && !listed.contains(c.id.as_str()))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let removed_ids: HashSet<&str> = removed.iter().map(|c| c.id.as_str()).collect();
    let mut candidates: Vec<Collection> = all
        .iter()
        .filter(|c| !removed_ids.contains(c.id.as_str()) && !listed.contains(c.id.as_str()))
        .cloned()
        .collect();
    candidates.extend(planned.iter().map(|(_, n)| n.clone()));

    // Views go first out and last in: every table they read must exist when they are created.
    let old_views = planned
        .iter()
        .filter_map(|(o, _)| o.as_ref())
        .filter(|o| o.is_view());
    for old in removed.iter().filter(|c| c.is_view()).chain(old_views) {
        for statement in ddl::drop_statements(old) {
            conn.execute(&statement, [])?;
        }
    }
    for old in &removed {
        if !old.is_view() {
            for statement in ddl::drop_statements(old) {
                conn.execute(&statement, [])?;
            }
        }
        conn.execute(
            "DELETE FROM `_collections` WHERE `id` = ?1",
            [old.id.as_str()],
        )?;
    }

    let (views, tables): (Vec<_>, Vec<_>) = planned.into_iter().partition(|(_, n)| n.is_view());
    for (old, new) in tables.into_iter().chain(views) {
        import_one(conn, old.as_ref(), new, &candidates)?;
    }
    Ok(())
}

/// Validates, migrates and stores one imported collection against the import's final set.
/// A view's old version has already been dropped, so it is created from scratch.
fn import_one(
    conn: &Connection,
    old: Option<&Collection>,
    mut new: Collection,
    candidates: &[Collection],
) -> Result<()> {
    prepare_view(conn, &mut new, old, candidates, IMPORT_FAILED).map_err(|e| match e {
        CollectionError::Invalid { errors, .. } => validation_failure(&new, &errors),
        other => other,
    })?;
    let candidates = with_candidate(candidates, &new);
    let checker = FilterRuleChecker::new(&candidates);
    warren_schema::validate_collection(&new, old, &candidates, &checker)
        .map_err(|errors| validation_failure(&new, &errors))?;
    let ddl_old = if new.is_view() { None } else { old };
    apply_ddl(conn, ddl_old, &new).map_err(|f| {
        import_failure(format!(
            "failed to migrate collection {} ({}): {}",
            new.name,
            new.id,
            f.raw()
        ))
    })?;
    write_row(conn, &new, old.is_none())?;
    Ok(())
}

fn validation_failure(c: &Collection, errors: &ValidationErrors) -> CollectionError {
    let mut flat = Map::new();
    flatten(&errors.to_value(), String::new(), &mut flat);
    let details = serde_json::to_string_pretty(&Value::Object(flat)).unwrap_or_default();
    invalid(
        IMPORT_FAILED,
        "collections",
        FieldError::new(
            "validation_collections_import_failure",
            format!(
                "Data validations failed for collection \"{}\" ({}):\n{details}",
                c.name, c.id
            ),
        ),
    )
}

/// `{"a":{"0":{"code","message"}}}` → `{"a.0": "message"}`.
fn flatten(value: &Value, prefix: String, out: &mut Map<String, Value>) {
    let Value::Object(map) = value else { return };
    if let Some(Value::String(message)) = map.get("message")
        && map.contains_key("code")
    {
        out.insert(prefix, Value::String(message.clone()));
        return;
    }
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        flatten(v, key, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_store::Options;

    async fn tenant_db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("data.db"), Options::default())
            .await
            .unwrap();
        db.write(|conn| {
            let system = warren_schema::system::system_collections();
            for statement in warren_schema::system::init_statements(&system) {
                conn.execute_batch(&statement)?;
            }
            for c in &system {
                write_row(conn, c, true)?;
            }
            Ok::<_, CollectionError>(())
        })
        .await
        .unwrap();
        (dir, db)
    }

    async fn exec(db: &Database, sql: &'static str) {
        db.write(move |conn| conn.execute_batch(sql).map_err(CollectionError::from))
            .await
            .unwrap();
    }

    async fn strings(db: &Database, sql: &'static str) -> Vec<String> {
        db.read(move |conn| {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, CollectionError>(rows)
        })
        .await
        .unwrap()
    }

    fn code(err: &CollectionError, path: &str) -> String {
        match err {
            CollectionError::Invalid { errors, .. } => errors
                .get(path)
                .map(|e| e.code.clone())
                .unwrap_or_else(|| format!("no error at {path}: {errors}")),
            other => format!("not a validation error: {other}"),
        }
    }

    async fn posts(db: &Database) -> Collection {
        create(
            db,
            json!({"name": "posts", "listRule": "", "fields": [
                {"name": "title", "type": "text"},
                {"name": "views", "type": "number"},
                {"name": "draft", "type": "bool"},
            ]}),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn migrations_keep_data_across_renames_and_field_changes() {
        let (_dir, db) = tenant_db().await;
        let c = posts(&db).await;
        exec(&db, "INSERT INTO posts (id, title, views, draft) VALUES ('a', 'Hello', 3, 1), ('b', 'World', 5, 0)").await;

        let title = c.field("title").unwrap().id.clone();
        let views = c.field("views").unwrap().id.clone();
        let updated = update(
            &db,
            "POSTS",
            json!({"name": "articles", "fields": [
                {"id": "text3208210256", "name": "id", "type": "text", "system": true, "primaryKey": true,
                 "autogeneratePattern": "[a-z0-9]{15}", "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "required": true},
                {"id": title, "name": "headline", "type": "text"},
                {"id": views, "name": "views", "type": "number"},
                {"name": "body", "type": "editor"},
            ], "indexes": ["CREATE INDEX idx_headline ON posts (headline)"]}),
        )
        .await
        .unwrap();
        assert_eq!(updated.name, "articles");
        assert_eq!(updated.id, c.id);
        assert!(updated.field("draft").is_none());
        assert_eq!(
            updated.indexes,
            ["CREATE INDEX `idx_headline` ON `articles` (`headline`)"]
        );
        assert_eq!(
            strings(
                &db,
                "SELECT headline || ':' || views || ':' || body FROM articles ORDER BY id"
            )
            .await,
            ["Hello:3:", "World:5:"]
        );
        assert!(
            strings(&db, "SELECT name FROM sqlite_master WHERE name = 'posts'")
                .await
                .is_empty()
        );
        assert_eq!(
            strings(&db, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'articles' AND sql IS NOT NULL").await,
            ["idx_headline"]
        );
    }

    #[tokio::test]
    async fn unique_index_over_duplicates_fails_and_changes_nothing() {
        let (_dir, db) = tenant_db().await;
        posts(&db).await;
        exec(
            &db,
            "INSERT INTO posts (id, title) VALUES ('a', 'same'), ('b', 'same')",
        )
        .await;
        let err = update(
            &db,
            "posts",
            json!({"name": "renamed", "indexes": ["CREATE UNIQUE INDEX idx_title ON posts (title)"]}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            code(&err, "indexes.0"),
            "validation_invalid_index_expression"
        );
        // The rename ran before the index failed; the savepoint undid it.
        assert_eq!(
            strings(
                &db,
                "SELECT name FROM _collections WHERE name IN ('posts', 'renamed')"
            )
            .await,
            ["posts"]
        );
        assert_eq!(strings(&db, "SELECT title FROM posts").await.len(), 2);
        assert!(
            strings(
                &db,
                "SELECT name FROM sqlite_master WHERE name IN ('idx_title', 'renamed')"
            )
            .await
            .is_empty()
        );
    }

    #[tokio::test]
    async fn a_failing_migration_leaves_the_schema_intact() {
        let (_dir, db) = tenant_db().await;
        let c = posts(&db).await;
        create(
            &db,
            json!({"name": "titles", "type": "view", "viewQuery": "SELECT id, title FROM posts"}),
        )
        .await
        .unwrap();
        // Dropping a column a view reads fails inside SQLite.
        let mut fields: Vec<Value> = c.fields.iter().map(Field::to_value).collect();
        fields.retain(|f| f["name"] != "title");
        let err = update(
            &db,
            "posts",
            json!({"fields": fields, "listRule": "views > 1"}),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, CollectionError::Rejected(_)), "{err:?}");
        let rule = strings(
            &db,
            "SELECT IFNULL(listRule, 'null') FROM _collections WHERE name = 'posts'",
        )
        .await;
        assert_eq!(rule, [""]);
        assert_eq!(
            strings(
                &db,
                "SELECT name FROM pragma_table_info('posts') WHERE name = 'title'"
            )
            .await,
            ["title"]
        );
    }

    #[tokio::test]
    async fn rules_naming_unknown_fields_are_rejected() {
        let (_dir, db) = tenant_db().await;
        let err = create(
            &db,
            json!({"name": "posts", "listRule": "nope = 1", "fields": [{"name": "title", "type": "text"}]}),
        )
        .await
        .unwrap_err();
        assert_eq!(code(&err, "listRule"), "validation_invalid_rule");
        // A rule may use the collection's own new fields and other collections.
        let c = create(
            &db,
            json!({"name": "posts", "listRule": "title != '' && @collection.users.id ?= @request.auth.id",
                   "fields": [{"name": "title", "type": "text"}]}),
        )
        .await
        .unwrap();
        assert_eq!(
            c.list_rule.as_deref(),
            Some("title != '' && @collection.users.id ?= @request.auth.id")
        );
        let err = create(&db, json!({"name": "Posts"})).await.unwrap_err();
        assert_eq!(code(&err, "name"), "validation_collection_name_exists");
    }

    #[tokio::test]
    async fn referenced_and_system_collections_cannot_be_deleted() {
        let (_dir, db) = tenant_db().await;
        let p = posts(&db).await;
        create(
            &db,
            json!({"name": "comments", "fields": [
                {"name": "post", "type": "relation", "collectionId": p.id, "maxSelect": 1}]}),
        )
        .await
        .unwrap();
        let err = delete(&db, "posts").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Failed to delete collection probably due to existing reference in comments."
        );
        assert!(matches!(
            delete(&db, "_superusers").await,
            Err(CollectionError::Rejected(_))
        ));
        assert!(matches!(
            delete(&db, "nope").await,
            Err(CollectionError::NotFound)
        ));
        delete(&db, "comments").await.unwrap();
        delete(&db, p.id.as_str()).await.unwrap();
        assert!(
            strings(
                &db,
                "SELECT name FROM sqlite_master WHERE name IN ('posts', 'comments')"
            )
            .await
            .is_empty()
        );
        assert!(
            strings(
                &db,
                "SELECT name FROM _collections WHERE name IN ('posts', 'comments')"
            )
            .await
            .is_empty()
        );
    }

    #[tokio::test]
    async fn views_infer_their_fields_from_the_query() {
        let (_dir, db) = tenant_db().await;
        let p = posts(&db).await;
        let v = create(
            &db,
            json!({"name": "stats", "type": "view", "viewQuery":
                "SELECT p.id, p.title AS heading, p.id AS post, count(p.id) AS n, CAST(p.views AS REAL) total_views, p.views * 2 AS double FROM posts p GROUP BY p.id"}),
        )
        .await
        .unwrap();
        let kinds: Vec<(&str, &str)> = v
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.type_name()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("id", "text"),
                ("heading", "text"),
                ("post", "relation"),
                ("n", "number"),
                ("total_views", "number"),
                ("double", "json")
            ]
        );
        assert!(v.fields[0].is_primary_key());
        assert!(v.fields[1].id.starts_with("_clone_"));
        assert!(matches!(&v.fields[2].kind, FieldKind::Relation(o) if o.collection_id == p.id));

        for (query, expected) in [
            (
                "SELECT title FROM posts",
                "Invalid query - missing required id column",
            ),
            ("SELECT * FROM posts", "Invalid query - wildcard columns"),
            ("SELECT id FROM nope", "Invalid query - no such table: nope"),
            ("SELECT id FROM posts; DROP TABLE posts", "Invalid query - "),
        ] {
            let err = create(
                &db,
                json!({"name": "bad", "type": "view", "viewQuery": query}),
            )
            .await
            .unwrap_err();
            let CollectionError::Invalid { errors, .. } = &err else {
                panic!("{err:?}")
            };
            let message = &errors.get("viewQuery").unwrap().message;
            assert!(message.starts_with(expected), "{query}: {message}");
        }
        assert_eq!(
            strings(&db, "SELECT name FROM sqlite_master WHERE name = 'posts'").await,
            ["posts"]
        );
    }

    #[tokio::test]
    async fn truncate_follows_relations() {
        let (_dir, db) = tenant_db().await;
        let p = posts(&db).await;
        create(
            &db,
            json!({"name": "comments", "fields": [
                {"name": "post", "type": "relation", "collectionId": p.id, "maxSelect": 1, "cascadeDelete": true}]}),
        )
        .await
        .unwrap();
        create(
            &db,
            json!({"name": "likes", "fields": [
                {"name": "posts", "type": "relation", "collectionId": p.id, "maxSelect": 5}]}),
        )
        .await
        .unwrap();
        exec(
            &db,
            "INSERT INTO posts (id) VALUES ('p1'), ('p2');
                   INSERT INTO comments (id, post) VALUES ('c1', 'p1'), ('c2', '');
                   INSERT INTO likes (id, posts) VALUES ('l1', '[\"p1\",\"p2\"]')",
        )
        .await;
        truncate(&db, "posts").await.unwrap();
        assert!(strings(&db, "SELECT id FROM posts").await.is_empty());
        assert_eq!(strings(&db, "SELECT id FROM comments").await, ["c2"]);
        assert_eq!(strings(&db, "SELECT posts FROM likes").await, ["[]"]);
        let err = truncate(&db, "_superusers").await;
        assert!(err.is_ok());
        create(
            &db,
            json!({"name": "v", "type": "view", "viewQuery": "SELECT id FROM posts"}),
        )
        .await
        .unwrap();
        assert!(matches!(
            truncate(&db, "v").await,
            Err(CollectionError::Rejected(_))
        ));
    }

    #[tokio::test]
    async fn import_creates_replaces_and_deletes_missing() {
        let (_dir, db) = tenant_db().await;
        posts(&db).await;
        create(&db, json!({"name": "old"})).await.unwrap();
        import(
            &db,
            json!({"deleteMissing": true, "collections": [
                {"id": "pbc_tags", "name": "tags", "fields": [{"name": "label", "type": "text"}]},
                {"id": "pbc_1125843985", "name": "posts", "fields": [
                    {"id": "text3208210256", "name": "id", "type": "text", "system": true, "primaryKey": true, "required": true,
                     "autogeneratePattern": "[a-z0-9]{15}", "min": 15, "max": 15, "pattern": "^[a-z0-9]+$"},
                    {"name": "title", "type": "text"},
                    {"name": "tag", "type": "relation", "collectionId": "pbc_tags", "maxSelect": 1}]},
                {"name": "titles", "type": "view", "viewQuery": "SELECT id, title FROM posts"},
            ]}),
        )
        .await
        .unwrap();
        let names = strings(
            &db,
            "SELECT name FROM _collections WHERE system = 0 ORDER BY name",
        )
        .await;
        assert_eq!(names, ["posts", "tags", "titles"]);
        assert!(
            strings(
                &db,
                "SELECT name FROM sqlite_master WHERE name IN ('old', 'users')"
            )
            .await
            .is_empty()
        );
        assert_eq!(
            strings(
                &db,
                "SELECT name FROM pragma_table_info('posts') ORDER BY name"
            )
            .await,
            ["id", "tag", "title"]
        );

        let err = import(
            &db,
            json!({"collections": [{"name": "x", "listRule": "zzz = 1"}]}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            code(&err, "collections"),
            "validation_collections_import_failure"
        );
        let err = import(&db, json!({"collections": []})).await.unwrap_err();
        assert_eq!(code(&err, "collections"), "validation_required");
    }

    #[tokio::test]
    async fn lists_filter_sort_and_paginate() {
        let (_dir, db) = tenant_db().await;
        posts(&db).await;
        let page = list(
            &db,
            ListParams {
                filter: "system = false".into(),
                sort: "-name".into(),
                ..ListParams::default()
            },
        )
        .await
        .unwrap();
        let names: Vec<&str> = page.items.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["users", "posts"]);
        assert_eq!(
            (page.page, page.per_page, page.total_items, page.total_pages),
            (1, 30, 2, 1)
        );

        let all = list(&db, ListParams::default()).await.unwrap();
        assert_eq!(all.items.last().unwrap().name, "posts");
        let page = list(
            &db,
            ListParams {
                page: 2,
                per_page: 3,
                ..ListParams::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (page.items.len(), page.total_items, page.total_pages),
            (3, 7, 3)
        );
        assert_eq!(page.items[0].name, all.items[3].name);

        let err = list(
            &db,
            ListParams {
                filter: "fields ~ 'x'".into(),
                ..ListParams::default()
            },
        )
        .await;
        assert!(matches!(
            err,
            Err(CollectionError::Records(crate::Error::BadRequest(_)))
        ));
    }
}
