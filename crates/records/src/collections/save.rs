//! Creating and updating one collection: decode, validate, migrate, store the row.

use serde_json::Value;
use warren_schema::datetime::DateTime;
use warren_schema::{Collection, FieldError, Index};
use warren_store::Database;
use warren_store::sql::Connection;

use super::ddl::apply_ddl;
use super::rules::FilterRuleChecker;
use super::view::prepare_view;
use super::{
    CREATE_FAILED, CollectionError, Result, UPDATE_FAILED, find, invalid, load_all, with_candidate,
    write_row,
};

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
pub(super) fn number_generated_id(new: &mut Collection, body: &Value, all: &[Collection]) {
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
pub(super) fn finish_update(old: &Collection, new: &mut Collection) {
    new.updated = DateTime::now().format();
    if new.created.is_empty() {
        new.created.clone_from(&old.created);
    }
    normalize_index_tables(new);
}

pub(super) fn normalize_index_tables(c: &mut Collection) {
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
pub(super) fn bad_body(
    message: &'static str,
    key: &str,
    e: &warren_schema::Error,
) -> CollectionError {
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

pub(super) fn validate(
    new: &Collection,
    old: Option<&Collection>,
    candidates: &[Collection],
    message: &'static str,
) -> Result<()> {
    let checker = FilterRuleChecker::new(candidates);
    warren_schema::validate_collection(new, old, candidates, &checker)
        .map_err(|errors| CollectionError::Invalid { message, errors })
}
