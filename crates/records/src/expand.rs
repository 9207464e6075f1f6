//! `expand`: relations and back-relations of a batch of records, fetched level by level with
//! one query per relation (not per record), each under the related collection's view rule.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;
use warren_filter::{Access, Query, RequestContext, parse_expand};
use warren_schema::record::{Expanded, RecordData, RecordJson};
use warren_schema::{FieldKind, Visibility};
use warren_store::sql::Connection;

use crate::catalog::{Catalog, Entry};
use crate::read::columns;
use crate::{Caller, Result, sql};

/// Most records a back-relation expands to per record.
const BACK_RELATION_LIMIT: usize = 1000;

/// A tree of expand paths: relation name → deeper paths.
#[derive(Debug, Default)]
pub(crate) struct Tree(BTreeMap<String, Tree>);

impl Tree {
    /// Parses the `expand` parameter. Malformed input expands nothing, as PocketBase never
    /// fails a request over an expand.
    pub(crate) fn parse(param: &str) -> Option<Tree> {
        if param.trim().is_empty() {
            return None;
        }
        let mut tree = Tree::default();
        for path in parse_expand(param).unwrap_or_default() {
            let mut node = &mut tree;
            for segment in path {
                node = node.0.entry(segment).or_default();
            }
        }
        Some(tree)
    }
}

/// Where the records read for one key of `expand` come from.
struct Source {
    /// Related collection.
    target: Arc<Entry>,
    /// The related records by parent id, in the order they belong.
    by_parent: HashMap<String, Vec<RecordData>>,
    /// One record (object) or a list.
    single: bool,
}

/// Renders `rows` for `caller`, expanding `tree` (when given).
pub(crate) fn render_rows(
    conn: &Connection,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    caller: &Caller,
    ctx: &RequestContext,
    rows: Vec<RecordData>,
    tree: Option<&Tree>,
) -> Result<Vec<RecordJson>> {
    let may_manage = crate::form::may_manage(caller, entry);
    // A caller the manage rule admits sees the account's email, as a superuser does.
    let visibility = |data: &RecordData| -> Result<Visibility> {
        let id = data.get("id").and_then(Value::as_str).unwrap_or_default();
        Ok(
            if may_manage && crate::write::admitted_by_manage_rule(conn, catalog, entry, ctx, id)? {
                Visibility {
                    show_hidden: false,
                    show_email: true,
                }
            } else {
                crate::read::visibility(caller, entry, data)
            },
        )
    };
    let Some(tree) = tree else {
        // Nothing to expand: the rows are not needed afterwards and become the JSON.
        return rows
            .into_iter()
            .map(|data| {
                let who = visibility(&data)?;
                Ok(RecordJson::build_owned(&entry.collection, data, who))
            })
            .collect();
    };
    let mut out: Vec<RecordJson> = Vec::with_capacity(rows.len());
    for data in &rows {
        out.push(RecordJson::build(
            &entry.collection,
            data,
            visibility(data)?,
        ));
    }
    let mut expansions: Vec<BTreeMap<String, Expanded>> = vec![BTreeMap::new(); rows.len()];
    for (key, subtree) in &tree.0 {
        let Some(source) = fetch(conn, catalog, entry, caller, ctx, &rows, key)? else {
            continue;
        };
        // Render every related record once, with its own nested expand.
        let mut related_rows = Vec::new();
        let mut slots: Vec<(usize, usize)> = Vec::new();
        for (i, data) in rows.iter().enumerate() {
            let id = data.get("id").and_then(Value::as_str).unwrap_or_default();
            if let Some(list) = source.by_parent.get(id) {
                for related in list {
                    slots.push((i, related_rows.len()));
                    related_rows.push(related.clone());
                }
            }
        }
        let nested = if subtree.0.is_empty() {
            None
        } else {
            Some(subtree)
        };
        let rendered = render_rows(
            conn,
            catalog,
            &source.target,
            caller,
            ctx,
            related_rows,
            nested,
        )?;
        let mut grouped: Vec<Vec<RecordJson>> = vec![Vec::new(); rows.len()];
        for (parent, index) in slots {
            grouped[parent].push(rendered[index].clone());
        }
        for (parent, mut list) in grouped.into_iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let value = if source.single {
                Expanded::One(Box::new(list.remove(0)))
            } else {
                Expanded::Many(list)
            };
            expansions[parent].insert(key.clone(), value);
        }
    }
    for (record, expand) in out.iter_mut().zip(expansions) {
        record.set_expand(expand);
    }
    Ok(out)
}

/// Reads the records behind one expand key for all `rows`, or `None` when the key names no
/// relation or the caller may not view the related collection.
fn fetch(
    conn: &Connection,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    caller: &Caller,
    ctx: &RequestContext,
    rows: &[RecordData],
    key: &str,
) -> Result<Option<Source>> {
    let parent_ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
        .collect();
    if let Some(field) = entry.collection.field(key)
        && let FieldKind::Relation(options) = &field.kind
    {
        let Some(target) = catalog.get(&options.collection_id).cloned() else {
            return Ok(None);
        };
        let single = !field.is_multiple();
        let mut wanted: Vec<String> = Vec::new();
        let mut per_parent: Vec<(String, Vec<String>)> = Vec::new();
        for data in rows {
            let ids = ids_of(data.get(key));
            wanted.extend(ids.iter().cloned());
            per_parent.push((
                data.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                ids,
            ));
        }
        wanted.sort();
        wanted.dedup();
        let Some(found) = select_visible(conn, catalog, &target, caller, ctx, None, &wanted)?
        else {
            return Ok(None);
        };
        let by_id: HashMap<&str, &RecordData> = found
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(|id| (id, r)))
            .collect();
        let mut by_parent = HashMap::new();
        for (parent, ids) in per_parent {
            let list: Vec<RecordData> = ids
                .iter()
                .filter_map(|id| by_id.get(id.as_str()).map(|r| (*r).clone()))
                .collect();
            by_parent.insert(parent, list);
        }
        return Ok(Some(Source {
            target,
            by_parent,
            single,
        }));
    }
    // A back-relation: `<collection>_via_<field>`.
    let Some((collection, field_name)) = key.split_once("_via_") else {
        return Ok(None);
    };
    let Some(target) = catalog.get(collection).cloned() else {
        return Ok(None);
    };
    let Some(field) = target.collection.field(field_name) else {
        return Ok(None);
    };
    let FieldKind::Relation(options) = &field.kind else {
        return Ok(None);
    };
    if options.collection_id != entry.collection.id {
        return Ok(None);
    }
    let single = !field.is_multiple() && target.info.unique_fields.iter().any(|f| f == field_name);
    let Some(found) = select_visible(
        conn,
        catalog,
        &target,
        caller,
        ctx,
        Some(field_name),
        &parent_ids,
    )?
    else {
        return Ok(None);
    };
    let mut by_parent: HashMap<String, Vec<RecordData>> = HashMap::new();
    for record in found {
        for parent in ids_of(record.get(field_name)) {
            let list = by_parent.entry(parent).or_default();
            if list.len() < BACK_RELATION_LIMIT {
                list.push(record.clone());
            }
        }
    }
    Ok(Some(Source {
        target,
        by_parent,
        single,
    }))
}

/// Records of `target` the caller may view whose `id` (or relation `via`, when given) is one
/// of `keys`. `None` when the view rule is `null` for a non-superuser.
fn select_visible(
    conn: &Connection,
    catalog: &Catalog,
    target: &Arc<Entry>,
    caller: &Caller,
    ctx: &RequestContext,
    via: Option<&str>,
    keys: &[String],
) -> Result<Option<Vec<RecordData>>> {
    if keys.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let mut q = Query::for_collection(target.info.clone());
    if !caller.is_superuser() {
        match &target.rules.view {
            None => return Ok(None),
            Some(rule) if rule.expr().is_some() => {
                // A rule that fails to compile hides the records, it never fails the request.
                if q.and_where(catalog, ctx, rule, Access::Trusted).is_err() {
                    return Ok(None);
                }
            }
            Some(_) => {}
        }
    }
    let sqlf = q.to_sql();
    let column_list = columns(target);
    let mut params = sql::params(&sqlf.params);
    let mut out = Vec::new();
    // Bounded IN lists keep each statement well under SQLite's parameter limit.
    for chunk in keys.chunks(500) {
        let placeholders = vec!["?"; chunk.len()].join(", ");
        let condition = match via {
            None => format!("{}.\"id\" IN ({placeholders})", sqlf.table),
            Some(field) => {
                let column = format!("{}.{}", sqlf.table, sql::quote(field));
                format!(
                    "({column} IN ({placeholders}) OR EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({column}) THEN {column} ELSE '[]' END) WHERE value IN ({placeholders})))"
                )
            }
        };
        let statement = format!("{} AND {condition}", sqlf.select(column_list));
        let mut bound = params.clone();
        let repeat = if via.is_some() { 2 } else { 1 };
        for _ in 0..repeat {
            bound.extend(chunk.iter().map(|k| k.clone().into()));
        }
        let mut stmt = conn.prepare_cached(&statement)?;
        let mut rows = stmt.query(sql::bind(&bound).as_slice())?;
        while let Some(row) = rows.next()? {
            out.push(sql::read_record(row, &target.collection)?);
        }
    }
    params.clear();
    Ok(Some(out))
}

/// The ids stored in a relation value (a string or an array of strings).
fn ids_of(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}
