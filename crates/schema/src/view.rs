//! The fields of a view collection, derived from its query and the result columns SQLite
//! reports for it: `id` becomes the primary key, a column taken straight from a collection field
//! clones that field, another collection's `id` becomes a relation, `count()`/`total()`/`CAST`
//! become numbers, texts or bools, and anything else a JSON field.

use crate::field::{JsonOptions, NumberOptions, RelationOptions, TextOptions};
use crate::select::{self, Select};
use crate::{Collection, Field, FieldKind, id};

/// The start of the error for a view query without an `id` column.
pub const MISSING_ID: &str = "missing required id column";

/// The fields of view `query`, whose result columns SQLite names `columns`; the error is the
/// message PocketBase gives for a query a view cannot have.
pub fn fields(
    query: &str,
    columns: &[String],
    collections: &[Collection],
) -> Result<Vec<Field>, String> {
    let parsed = select::parse(query);
    if parsed.as_ref().is_some_and(Select::has_wildcard) {
        return Err("wildcard columns (*) are not supported - manually type the collection field names you want the view query to have".into());
    }
    if !columns.iter().any(|c| c == "id") {
        return Err(format!(
            "{MISSING_ID} (you can use `(ROW_NUMBER() OVER()) as id` if you don't have one)"
        ));
    }
    let select = parsed.filter(|s| s.columns.len() == columns.len());
    let fields = columns
        .iter()
        .enumerate()
        .map(|(i, name)| match &select {
            _ if name == "id" => view_primary_key(),
            Some(select) => column_field(name, &select.columns[i], select, collections),
            None => json_field(name),
        })
        .collect();
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

/// The field of result column `name` computed by `expr` over the sources of `select`.
fn column_field(name: &str, expr: &str, select: &Select, collections: &[Collection]) -> Field {
    let by_table = |table: &str| {
        select
            .table(table)
            .and_then(|t| collections.iter().find(|c| c.name.eq_ignore_ascii_case(t)))
    };
    if let Some((table, column)) = select::column_ref(expr) {
        let source = match table {
            Some(table) => by_table(table),
            None => select
                .tables
                .first()
                .and_then(|(alias, _)| by_table(alias))
                .filter(|c| c.field(column).is_some()),
        };
        return source
            .and_then(|source| source_field(name, column, source))
            .unwrap_or_else(|| json_field(name));
    }
    let lower = expr.to_ascii_lowercase();
    if lower.starts_with("count(") {
        return number_field(name, true);
    }
    if lower.starts_with("total(") {
        return number_field(name, false);
    }
    match select::cast_target(expr).as_deref() {
        Some("int" | "integer") => number_field(name, true),
        Some("real" | "decimal" | "numeric") => number_field(name, false),
        Some("text") => Field::new(name, FieldKind::Text(TextOptions::default())),
        Some("bool" | "boolean") => Field::new(name, FieldKind::Bool),
        _ => json_field(name),
    }
}

/// A column taken straight from `source`: its `id` becomes a relation to it, another field
/// is cloned under the column's name.
fn source_field(name: &str, column: &str, source: &Collection) -> Option<Field> {
    if column == "id" {
        return Some(Field::new(
            name,
            FieldKind::Relation(RelationOptions {
                cascade_delete: false,
                collection_id: source.id.clone(),
                max_select: 1,
                min_select: 0,
            }),
        ));
    }
    let mut clone = source.field(column)?.clone();
    clone.id = format!("_clone_{}", id::random_string(4, id::ALPHANUMERIC));
    clone.name = name.to_owned();
    clone.system = false;
    Some(clone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CollectionType;

    fn posts() -> Collection {
        let mut c = Collection::scaffold(CollectionType::Base, "posts");
        c.fields
            .push(Field::new("title", FieldKind::Text(TextOptions::default())));
        c
    }

    fn names(columns: &[&str]) -> Vec<String> {
        columns.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn columns_trace_back_to_their_fields() {
        let all = [posts()];
        let query = "SELECT p.id, p.title AS heading, p.id AS post, count(*) AS n, \
                     CAST(1 AS TEXT) AS t, 1 + 1 AS other FROM posts p";
        let fields = fields(
            query,
            &names(&["id", "heading", "post", "n", "t", "other"]),
            &all,
        )
        .unwrap();
        let types: Vec<_> = fields.iter().map(Field::type_name).collect();
        assert_eq!(
            types,
            ["text", "text", "relation", "number", "text", "json"]
        );
        assert!(fields[0].is_primary_key());
        assert_eq!(fields[1].name, "heading");
        assert!(fields[1].id.starts_with("_clone_"));
    }

    #[test]
    fn a_view_needs_an_id_and_no_wildcards() {
        let all = [posts()];
        let missing = fields("SELECT title FROM posts", &names(&["title"]), &all).unwrap_err();
        assert!(missing.starts_with(MISSING_ID));
        let wildcard = fields("SELECT * FROM posts", &names(&["id", "title"]), &all).unwrap_err();
        assert!(wildcard.starts_with("wildcard columns"));
    }
}
