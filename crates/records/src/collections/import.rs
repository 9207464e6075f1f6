//! Importing a whole collections configuration at once, all or nothing.

use std::collections::HashSet;

use serde_json::{Map, Value};
use warren_schema::{Collection, FieldError, ValidationErrors, ddl};
use warren_store::Database;
use warren_store::sql::Connection;

use super::ddl::apply_ddl;
use super::rules::FilterRuleChecker;
use super::save::finish_update;
use super::view::prepare_view;
use super::{
    CollectionError, IMPORT_FAILED, INVALID_DATA, Result, invalid, load_all, with_candidate,
    write_row,
};

/// `PUT /api/collections/import`: creates or replaces (by id, then by name) every collection
/// of `body.collections`; with `deleteMissing` it also deletes the non-system collections the
/// list leaves out. All or nothing.
pub async fn import(db: &Database, body: Value) -> Result<()> {
    db.write(move |conn| import_in(conn, &body)).await
}

pub(super) fn import_failure(raw: impl Into<String>) -> CollectionError {
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
pub(super) fn import_one(
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

pub(super) fn validation_failure(c: &Collection, errors: &ValidationErrors) -> CollectionError {
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
pub(super) fn flatten(value: &Value, prefix: String, out: &mut Map<String, Value>) {
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
