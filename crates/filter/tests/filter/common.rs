//! Shared fixtures: a schema, an in-memory database with PocketBase's layout.

use serde_json::{Map, Value};
use warren_filter::*;
use warren_store::sql::Connection;
use warren_store::sql::Value as SqlParam;

pub fn to_param(v: &SqlValue) -> SqlParam {
    match v {
        SqlValue::Null => SqlParam::Null,
        SqlValue::Integer(i) => SqlParam::Integer(*i),
        SqlValue::Real(f) => SqlParam::Real(*f),
        SqlValue::Text(s) => SqlParam::Text(s.clone()),
    }
}

/// A schema with posts → users (single), posts → tags (multi), comments → posts.
pub fn schema() -> StaticSchema {
    let base =
        |id: &str, name: &str, fields: Vec<FieldInfo>, list_rule: Option<&str>| CollectionInfo {
            id: id.into(),
            name: name.into(),
            collection_type: CollectionType::Base,
            fields,
            list_rule: list_rule.map(String::from),
            unique_fields: vec![],
        };
    let mut users = base(
        "_pb_users_auth_",
        "users",
        vec![
            FieldInfo::new("id", FieldType::Text),
            FieldInfo::new("name", FieldType::Text),
            FieldInfo::new("email", FieldType::Email),
            FieldInfo::new("emailVisibility", FieldType::Bool),
            FieldInfo::new("password", FieldType::Password).hidden(),
            FieldInfo::new("role", FieldType::Text),
        ],
        Some("id = @request.auth.id"),
    );
    users.collection_type = CollectionType::Auth;
    StaticSchema::new([
        users,
        base(
            "pbc_tags",
            "tags",
            vec![
                FieldInfo::new("id", FieldType::Text),
                FieldInfo::new("name", FieldType::Text),
            ],
            Some(""),
        ),
        base(
            "pbc_posts",
            "posts",
            vec![
                FieldInfo::new("id", FieldType::Text),
                FieldInfo::new("title", FieldType::Text),
                FieldInfo::new("views", FieldType::Number),
                FieldInfo::new("published", FieldType::Bool),
                FieldInfo::new("status", FieldType::Select),
                FieldInfo::new("categories", FieldType::Select).multiple(),
                FieldInfo::relation("author", "_pb_users_auth_"),
                FieldInfo::relation("tags", "pbc_tags").multiple(),
                FieldInfo::new("meta", FieldType::Json),
                FieldInfo::new("location", FieldType::GeoPoint),
                FieldInfo::new("created", FieldType::Autodate),
                FieldInfo::new("secret", FieldType::Text).hidden(),
            ],
            Some(""),
        ),
        base(
            "pbc_comments",
            "comments",
            vec![
                FieldInfo::new("id", FieldType::Text),
                FieldInfo::relation("post", "pbc_posts"),
                FieldInfo::new("body", FieldType::Text),
            ],
            None,
        ),
    ])
}

/// Creates one table per collection, with PocketBase's column types.
pub fn create_tables(conn: &Connection, schema: &StaticSchema, names: &[&str]) {
    for name in names {
        let c = schema.collection(name).expect("collection");
        let cols: Vec<String> = c
            .fields
            .iter()
            .map(|f| format!("\"{}\" {}", f.name, column_type(f)))
            .collect();
        conn.execute_batch(&format!(
            "CREATE TABLE \"{}\" ({});",
            c.name,
            cols.join(", ")
        ))
        .expect("create table");
    }
}

pub fn insert(conn: &Connection, c: &CollectionInfo, record: &Map<String, Value>) {
    let names: Vec<String> = c.fields.iter().map(|f| format!("\"{}\"", f.name)).collect();
    let marks: Vec<&str> = c.fields.iter().map(|_| "?").collect();
    let values: Vec<SqlParam> = c
        .fields
        .iter()
        .map(|f| to_param(&storage_value(f, record.get(&f.name))))
        .collect();
    conn.execute(
        &format!(
            "INSERT INTO \"{}\" ({}) VALUES ({})",
            c.name,
            names.join(", "),
            marks.join(", ")
        ),
        warren_store::sql::params_from_iter(values),
    )
    .expect("insert");
}

/// Runs the query's SQL and returns the matching ids, sorted.
pub fn run(conn: &Connection, q: &Query) -> Result<Vec<String>, warren_store::sql::Error> {
    let sql = q.to_sql();
    let text = sql.select(&format!("{}.\"id\"", sql.table));
    let mut stmt = conn.prepare(&text)?;
    let rows = stmt.query_map(
        warren_store::sql::params_from_iter(sql.params.iter().map(to_param)),
        |r| r.get::<_, String>(0),
    )?;
    let mut ids: Vec<String> = rows.collect::<Result<_, _>>()?;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

pub fn request_at_fixed_time() -> RequestContext {
    let mut r = RequestContext::guest();
    r.now_millis = Some(1_767_225_600_000); // 2026-01-01 00:00:00 UTC
    r
}
