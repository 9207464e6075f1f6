//! DDL for collection tables and views, and the ordered statements that migrate a tenant
//! database from one version of a collection to the next inside one transaction.
//!
//! Columns are laid out like PocketBase's: one per field, in byte order of their names, with
//! the same declared types and defaults, so a database stays openable by stock PocketBase.

use std::collections::BTreeMap;

use crate::collection::Collection;
use crate::field::{Field, FieldKind};
use crate::index::Index;

/// Quotes an identifier with backquotes (doubling embedded ones).
pub fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// The column definition of a field, e.g. `TEXT DEFAULT '' NOT NULL`.
pub fn column_definition(field: &Field) -> &'static str {
    match &field.kind {
        FieldKind::Text(o) if o.primary_key => {
            "TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL"
        }
        FieldKind::Number(_) => "NUMERIC DEFAULT 0 NOT NULL",
        FieldKind::Bool => "BOOLEAN DEFAULT FALSE NOT NULL",
        FieldKind::Json(_) => "JSON DEFAULT NULL",
        FieldKind::GeoPoint => "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL",
        FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_)
            if field.is_multiple() =>
        {
            "JSON DEFAULT '[]' NOT NULL"
        }
        _ => "TEXT DEFAULT '' NOT NULL",
    }
}

fn sorted_fields(c: &Collection) -> Vec<&Field> {
    let mut fields: Vec<&Field> = c.fields.iter().collect();
    fields.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    fields
}

/// `CREATE TABLE` for a base/auth collection.
pub fn create_table(c: &Collection) -> String {
    table_ddl(&c.name, c)
}

fn table_ddl(table: &str, c: &Collection) -> String {
    let cols: Vec<String> = sorted_fields(c)
        .into_iter()
        .map(|f| format!("{} {}", quote(&f.name), column_definition(f)))
        .collect();
    format!("CREATE TABLE {} ({})", quote(table), cols.join(", "))
}

/// `CREATE VIEW` for a view collection.
pub fn create_view(c: &Collection) -> String {
    format!(
        "CREATE VIEW {} AS SELECT * FROM ({})",
        quote(&c.name),
        c.view_query().unwrap_or_default()
    )
}

/// The collection's indexes as normalised statements, pointed at the collection's table.
/// Unparsable entries are skipped (validation reports them).
pub fn index_statements(c: &Collection) -> Vec<String> {
    c.indexes
        .iter()
        .filter_map(|raw| Index::parse(raw))
        .map(|mut i| {
            i.table.clone_from(&c.name);
            i.build()
        })
        .collect()
}

/// Everything that creates a collection: the table (or view) and its indexes.
pub fn create_statements(c: &Collection) -> Vec<String> {
    if c.is_view() {
        return vec![create_view(c)];
    }
    let mut out = vec![create_table(c)];
    out.extend(index_statements(c));
    out
}

/// Everything that drops a collection's table or view (its indexes go with it).
pub fn drop_statements(c: &Collection) -> Vec<String> {
    if c.is_view() {
        vec![format!("DROP VIEW IF EXISTS {}", quote(&c.name))]
    } else {
        vec![format!("DROP TABLE IF EXISTS {}", quote(&c.name))]
    }
}

fn index_names(c: &Collection) -> Vec<String> {
    c.indexes
        .iter()
        .filter_map(|raw| Index::parse(raw))
        .map(|i| i.name)
        .collect()
}

/// SQL expression converting the old column `col` of `old` into what `new` stores.
fn convert_expr(col: &str, old: &Field, new: &Field) -> String {
    let c = quote(col);
    let old_def = column_definition(old);
    let new_def = column_definition(new);
    let old_multi = old.is_multiple();
    if old_def == new_def && old.type_name() == new.type_name() {
        return c;
    }
    match &new.kind {
        FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_) if new.is_multiple() => {
            format!(
                "(CASE WHEN IFNULL({c}, '') = '' THEN '[]' WHEN json_valid({c}) AND json_type({c}) = 'array' THEN {c} ELSE json_array(CAST({c} AS TEXT)) END)"
            )
        }
        FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_) if old_multi => {
            format!(
                "(CASE WHEN json_valid({c}) AND json_type({c}) = 'array' THEN IFNULL(CAST(json_extract({c}, '$[#-1]') AS TEXT), '') ELSE IFNULL(CAST({c} AS TEXT), '') END)"
            )
        }
        FieldKind::Number(_) => format!("IFNULL(CAST({c} AS NUMERIC), 0)"),
        FieldKind::Bool => {
            format!("(CASE WHEN LOWER(CAST({c} AS TEXT)) IN ('1', 'true', 't') THEN 1 ELSE 0 END)")
        }
        FieldKind::Json(_) => format!(
            "(CASE WHEN {c} IS NULL THEN NULL WHEN json_valid({c}) THEN {c} ELSE json_quote({c}) END)"
        ),
        FieldKind::GeoPoint => format!(
            "(CASE WHEN json_valid({c}) AND json_type({c}) = 'object' THEN {c} ELSE '{{\"lon\":0,\"lat\":0}}' END)"
        ),
        _ if old_multi => format!(
            "(CASE WHEN json_valid({c}) AND json_type({c}) = 'array' THEN IFNULL(CAST(json_extract({c}, '$[#-1]') AS TEXT), '') ELSE IFNULL(CAST({c} AS TEXT), '') END)"
        ),
        _ => format!("IFNULL(CAST({c} AS TEXT), '')"),
    }
}

/// The ordered statements migrating `old` to `new` (same collection id), to run in one
/// transaction: drop the old indexes, rename the table, then either alter columns in place
/// (drop removed, rename renamed — via temporary names so swaps work — add new) or, when a
/// kept field's column changes type or single/multiple shape, rebuild the table copying and
/// converting every row; finally create the new indexes. Views are dropped and recreated.
pub fn migrate_statements(old: &Collection, new: &Collection) -> Vec<String> {
    let mut out = Vec::new();
    if old.is_view() || new.is_view() {
        out.extend(drop_statements(old));
        if new.is_view() {
            out.push(create_view(new));
        } else {
            out.extend(create_statements(new));
        }
        return out;
    }

    for name in index_names(old) {
        out.push(format!("DROP INDEX IF EXISTS {}", quote(&name)));
    }
    let table = quote(&new.name);
    if old.name != new.name {
        out.push(format!(
            "ALTER TABLE {} RENAME TO {table}",
            quote(&old.name)
        ));
    }

    // Fields of the new definition that already have a column, keyed by field id.
    let kept: BTreeMap<&str, (&Field, &Field)> = new
        .fields
        .iter()
        .filter_map(|nf| old.field_by_id(&nf.id).map(|of| (nf.id.as_str(), (of, nf))))
        .collect();
    let needs_rebuild = kept.values().any(|(of, nf)| {
        column_definition(of) != column_definition(nf) || of.type_name() != nf.type_name()
    });

    if needs_rebuild {
        let tmp = quote(&format!("_warren_new_{}", new.name));
        out.push(table_ddl(&format!("_warren_new_{}", new.name), new));
        let mut cols = Vec::new();
        let mut exprs = Vec::new();
        for nf in sorted_fields(new) {
            if let Some((of, _)) = kept.get(nf.id.as_str()) {
                cols.push(quote(&nf.name));
                exprs.push(convert_expr(&of.name, of, nf));
            }
        }
        if !cols.is_empty() {
            out.push(format!(
                "INSERT INTO {tmp} ({}) SELECT {} FROM {table}",
                cols.join(", "),
                exprs.join(", ")
            ));
        }
        out.push(format!("DROP TABLE {table}"));
        out.push(format!("ALTER TABLE {tmp} RENAME TO {table}"));
    } else {
        for of in &old.fields {
            if new.field_by_id(&of.id).is_none() {
                out.push(format!(
                    "ALTER TABLE {table} DROP COLUMN {}",
                    quote(&of.name)
                ));
            }
        }
        let renamed: Vec<(&Field, &Field)> = kept
            .values()
            .filter(|(of, nf)| of.name != nf.name)
            .copied()
            .collect();
        for (of, nf) in &renamed {
            out.push(format!(
                "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                quote(&of.name),
                quote(&format!("_warren_tmp_{}", nf.id))
            ));
        }
        for (_, nf) in &renamed {
            out.push(format!(
                "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                quote(&format!("_warren_tmp_{}", nf.id)),
                quote(&nf.name)
            ));
        }
        for nf in sorted_fields(new) {
            if !kept.contains_key(nf.id.as_str()) {
                out.push(format!(
                    "ALTER TABLE {table} ADD COLUMN {} {}",
                    quote(&nf.name),
                    column_definition(nf)
                ));
            }
        }
    }
    out.extend(index_statements(new));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::CollectionType;
    use crate::field::*;
    use crate::system::system_collections;
    use warren_store::sql::Connection;

    fn apply(conn: &Connection, stmts: &[String]) {
        let tx = conn.unchecked_transaction().unwrap();
        for s in stmts {
            tx.execute_batch(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        tx.commit().unwrap();
    }

    fn reference_sql() -> BTreeMap<String, String> {
        let text = include_str!("../tests/fixtures/pocketbase-schema.sql");
        text.split(";\n")
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let name = s.split('`').nth(1).unwrap_or_default().to_owned();
                (name, s.trim().to_owned())
            })
            .collect()
    }

    #[test]
    fn system_tables_match_a_fresh_pocketbase_database() {
        let reference = reference_sql();
        for c in system_collections() {
            for stmt in create_statements(&c) {
                let name = stmt.split('`').nth(1).unwrap().to_owned();
                assert_eq!(Some(&stmt), reference.get(&name), "{name}");
            }
        }
        assert_eq!(
            reference.get("_params"),
            Some(&crate::system::PARAMS_DDL.to_owned())
        );
        assert_eq!(
            reference.get("_collections"),
            Some(&crate::system::COLLECTIONS_DDL.to_owned())
        );
    }

    #[test]
    fn init_statements_run_on_sqlite() {
        let conn = Connection::open_in_memory().unwrap();
        apply(
            &conn,
            &crate::system::init_statements(&system_collections()),
        );
        conn.execute("INSERT INTO users (id, email) VALUES ('u1', 'a@b.co')", [])
            .unwrap();
        let verified: i64 = conn
            .query_row("SELECT verified FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(verified, 0);
    }

    fn posts() -> Collection {
        let mut c = Collection::new(CollectionType::Base, "posts");
        c.fields
            .push(Field::new("title", FieldKind::Text(TextOptions::default())));
        c.fields.push(Field::new(
            "views",
            FieldKind::Number(NumberOptions::default()),
        ));
        c.fields.push(Field::new(
            "tags",
            FieldKind::Select(SelectOptions {
                max_select: 1,
                values: vec!["a".into(), "b".into()],
            }),
        ));
        c.fields
            .push(Field::new("gone", FieldKind::Text(TextOptions::default())));
        c.indexes
            .push("CREATE UNIQUE INDEX idx_title ON posts (title)".into());
        c
    }

    fn seed(conn: &Connection, c: &Collection) {
        apply(conn, &create_statements(c));
        for i in 0..3 {
            conn.execute(
                "INSERT INTO posts (id, title, views, tags, gone) VALUES (?1, ?2, ?3, 'a', 'x')",
                warren_store::sql::params![format!("id{i}"), format!("t{i}"), i],
            )
            .unwrap();
        }
    }

    #[test]
    fn columns_are_added_renamed_and_dropped_in_place() {
        let conn = Connection::open_in_memory().unwrap();
        let old = posts();
        seed(&conn, &old);
        let mut new = old.clone();
        new.name = "articles".into();
        new.fields.retain(|f| f.name != "gone");
        new.fields[1].name = "headline".into();
        new.fields.push(Field::new("published", FieldKind::Bool));
        new.indexes = vec!["CREATE INDEX idx_views ON posts (views)".into()];
        let stmts = migrate_statements(&old, &new);
        assert!(!stmts.iter().any(|s| s.contains("_warren_new_")));
        apply(&conn, &stmts);
        let rows: Vec<(String, String, i64, i64)> = conn
            .prepare("SELECT id, headline, views, published FROM articles ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            vec![
                ("id0".into(), "t0".into(), 0, 0),
                ("id1".into(), "t1".into(), 1, 0),
                ("id2".into(), "t2".into(), 2, 0),
            ]
        );
        let idx: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(idx, vec!["idx_views".to_owned()]);
        let create = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'articles'",
                [],
                |r| r.get::<_, String>(0),
            )
            .unwrap();
        assert!(create.contains("`published` BOOLEAN DEFAULT FALSE NOT NULL"));
    }

    #[test]
    fn swapped_names_survive_renames() {
        let conn = Connection::open_in_memory().unwrap();
        let old = posts();
        seed(&conn, &old);
        let mut new = old.clone();
        new.fields[1].name = "gone".into();
        new.fields[4].name = "title".into();
        new.indexes.clear();
        apply(&conn, &migrate_statements(&old, &new));
        let (t, g): (String, String) = conn
            .query_row("SELECT title, gone FROM posts WHERE id = 'id1'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((t.as_str(), g.as_str()), ("x", "t1"));
    }

    #[test]
    fn shape_and_type_changes_rebuild_the_table_without_losing_rows() {
        let conn = Connection::open_in_memory().unwrap();
        let old = posts();
        seed(&conn, &old);
        let mut multi = old.clone();
        if let FieldKind::Select(o) = &mut multi.fields[3].kind {
            o.max_select = 3;
        }
        // views becomes a text column.
        multi.fields[2].kind = FieldKind::Text(TextOptions::default());
        let stmts = migrate_statements(&old, &multi);
        assert!(
            stmts
                .iter()
                .any(|s| s.starts_with("INSERT INTO `_warren_new_posts`"))
        );
        apply(&conn, &stmts);
        let tags: Vec<String> = conn
            .prepare("SELECT tags FROM posts ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(tags, vec![r#"["a"]"#; 3]);
        let count: i64 = conn
            .query_row("SELECT count(*) FROM posts WHERE gone = 'x'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(count, 3);
        let views: String = conn
            .query_row("SELECT views FROM posts WHERE id = 'id2'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(views, "2");
        let idx: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'idx_title'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(idx, 1);

        // And back to single: the last element is kept.
        conn.execute(
            r#"UPDATE posts SET tags = '["a","b"]' WHERE id = 'id0'"#,
            [],
        )
        .unwrap();
        let mut single = multi.clone();
        single.fields[3] = old.fields[3].clone();
        apply(&conn, &migrate_statements(&multi, &single));
        let tag: String = conn
            .query_row("SELECT tags FROM posts WHERE id = 'id0'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tag, "b");
    }

    #[test]
    fn views_are_recreated() {
        let conn = Connection::open_in_memory().unwrap();
        seed(&conn, &posts());
        let mut v = Collection::new(CollectionType::View, "titles");
        v.options = crate::collection::CollectionOptions::View {
            view_query: "SELECT id, title FROM posts".into(),
        };
        apply(&conn, &create_statements(&v));
        let mut v2 = v.clone();
        v2.options = crate::collection::CollectionOptions::View {
            view_query: "SELECT id, views FROM posts".into(),
        };
        apply(&conn, &migrate_statements(&v, &v2));
        let n: i64 = conn
            .query_row("SELECT sum(views) FROM titles", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }
}
