use super::*;
use serde_json::{Value, json};
use warren_schema::{Field, FieldKind};
use warren_store::{Database, Options};

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
