//! Deleting and truncating collections, with the cascades their relations ask for.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use warren_schema::field::RelationOptions;
use warren_schema::{Collection, Field, FieldKind, ddl};
use warren_store::Database;
use warren_store::sql::Connection;

use super::{AUTH_REF_TABLES, CollectionError, Result, find, load_all};

/// Deepest chain of cascading deletes followed while truncating.
const MAX_CASCADE_DEPTH: usize = 16;

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

pub(super) fn reference_error(name: &str) -> CollectionError {
    CollectionError::Rejected(format!(
        "Failed to delete collection probably due to existing reference in {name}."
    ))
}

pub(super) fn relation_fields<'a>(
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
pub(super) fn delete_records(
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
pub(super) fn relation_values(raw: &str) -> Vec<String> {
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
