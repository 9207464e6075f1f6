//! The collections API: superusers create, change, empty, import and delete collections of
//! their own tenant; guests and auth records are turned away.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, send};

/// A server with tenants `alpha` and `beta`, each with a superuser; returns their tokens.
async fn setup() -> (Server, String, String) {
    let server = Server::start(&[]);
    let mut tokens = Vec::new();
    for slug in ["alpha", "beta"] {
        tokens.push(server.tenant_with_superuser(slug).await);
    }
    let beta = tokens.pop().unwrap();
    let alpha = tokens.pop().unwrap();
    (server, alpha, beta)
}

async fn call(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.request(method, "alpha.localhost", path);
    if !token.is_empty() {
        request = request.header("Authorization", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn superusers_manage_collections_with_every_field_type() {
    let (server, token, beta) = setup().await;

    // Every field type, rules and a unique index.
    let (status, posts) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections",
        Some(json!({
            "name": "posts",
            "listRule": "",
            "viewRule": "published = true",
            "fields": [
                {"name": "title", "type": "text", "required": true, "max": 100},
                {"name": "body", "type": "editor"},
                {"name": "views", "type": "number", "onlyInt": true},
                {"name": "published", "type": "bool"},
                {"name": "contact", "type": "email"},
                {"name": "link", "type": "url"},
                {"name": "due", "type": "date"},
                {"name": "status", "type": "select", "values": ["draft", "live"], "maxSelect": 1},
                {"name": "cover", "type": "file", "maxSelect": 1},
                {"name": "meta", "type": "json"},
                {"name": "where", "type": "geoPoint"},
                {"name": "created", "type": "autodate", "onCreate": true},
                {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true},
            ],
            "indexes": ["CREATE UNIQUE INDEX idx_title ON posts (title)"],
        })),
    )
    .await;
    assert_eq!(status, 200, "{posts}");
    assert_eq!(posts["id"], "pbc_1125843985");
    assert_eq!(posts["type"], "base");
    assert_eq!(posts["viewRule"], "published = true");
    assert_eq!(posts["deleteRule"], Value::Null);
    let types: Vec<&str> = posts["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "text", "text", "editor", "number", "bool", "email", "url", "date", "select", "file",
            "json", "geoPoint", "autodate", "autodate"
        ]
    );
    let keys: Vec<&String> = posts.as_object().unwrap().keys().collect();
    assert!(keys.contains(&&"indexes".to_string()));

    // Relations and an auth collection (no token secrets in the output).
    let (status, members) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections",
        Some(json!({"name": "members", "type": "auth", "fields": [{"name": "nick", "type": "text"}]})),
    )
    .await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["authToken"], json!({"duration": 432000}));
    assert!(!members.to_string().contains("secret"));
    let (status, comments) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections",
        Some(json!({"name": "comments", "createRule": "@request.auth.id != ''", "fields": [
            {"name": "post", "type": "relation", "collectionId": posts["id"], "maxSelect": 1, "cascadeDelete": true},
            {"name": "author", "type": "relation", "collectionId": members["id"], "maxSelect": 1},
            {"name": "text", "type": "text"},
        ]})),
    )
    .await;
    assert_eq!(status, 200, "{comments}");

    // View, list and scaffolds.
    let (status, view) = call(&server, &token, Method::GET, "/api/collections/POSTS", None).await;
    assert_eq!((status, &view["name"]), (200, &json!("posts")));
    let (status, list) = call(
        &server,
        &token,
        Method::GET,
        "/api/collections?filter=system%3Dfalse&sort=-name&perPage=2",
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(names(&list), ["users", "posts"]);
    assert_eq!(
        (
            &list["page"],
            &list["perPage"],
            &list["totalItems"],
            &list["totalPages"]
        ),
        (&json!(1), &json!(2), &json!(4), &json!(2))
    );
    let (status, _) = call(
        &server,
        &token,
        Method::GET,
        "/api/collections?filter=fields~'x'",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, scaffolds) = call(
        &server,
        &token,
        Method::GET,
        "/api/collections/meta/scaffolds",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(scaffolds["base"]["id"], "");
    assert_eq!(scaffolds["auth"]["type"], "auth");
    assert_eq!(scaffolds["view"]["fields"], json!([]));

    // Records land in the new table (through the records API).
    for title in ["one", "two"] {
        let (status, body) = call(
            &server,
            &token,
            Method::POST,
            "/api/collections/posts/records",
            Some(json!({"title": title, "views": 3})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    // Rename the collection and a field; data stays.
    let mut fields = posts["fields"].as_array().unwrap().clone();
    fields[1]["name"] = json!("headline");
    let (status, renamed) = call(
        &server,
        &token,
        Method::PATCH,
        "/api/collections/posts",
        Some(json!({"name": "articles", "fields": fields, "indexes": [
            "CREATE UNIQUE INDEX idx_title ON posts (headline)"]})),
    )
    .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "articles");
    assert_eq!(renamed["id"], posts["id"]);
    assert_eq!(
        renamed["indexes"],
        json!(["CREATE UNIQUE INDEX `idx_title` ON `articles` (`headline`)"])
    );
    let (status, records) = call(
        &server,
        &token,
        Method::GET,
        "/api/collections/articles/records?sort=headline",
        None,
    )
    .await;
    assert_eq!(status, 200, "{records}");
    let headlines: Vec<&str> = records["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["headline"].as_str().unwrap())
        .collect();
    assert_eq!(headlines, ["one", "two"]);
    let (status, _) = call(&server, &token, Method::GET, "/api/collections/posts", None).await;
    assert_eq!(status, 404);

    // A unique index over duplicate data fails and changes nothing.
    let (status, body) = call(
        &server,
        &token,
        Method::PATCH,
        "/api/collections/articles",
        Some(json!({"indexes": ["CREATE UNIQUE INDEX idx_views ON articles (views)"]})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Failed to update collection.");
    assert_eq!(
        body["data"]["indexes"]["0"]["code"],
        "validation_invalid_index_expression"
    );
    let (_, still) = call(
        &server,
        &token,
        Method::GET,
        "/api/collections/articles",
        None,
    )
    .await;
    assert_eq!(still["indexes"], renamed["indexes"]);

    // Rules naming unknown fields and taken names are field errors.
    let (status, body) = call(
        &server,
        &token,
        Method::PATCH,
        "/api/collections/articles",
        Some(json!({"listRule": "nope = 1"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["listRule"]["code"], "validation_invalid_rule");
    let (status, body) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections",
        Some(json!({"name": "ARTICLES"})),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Failed to create collection."))
    );
    assert_eq!(
        body["data"]["name"]["code"],
        "validation_collection_name_exists"
    );

    // Truncate cascades; a referenced collection can't be deleted.
    let (status, _) = call(
        &server,
        &token,
        Method::DELETE,
        "/api/collections/articles/truncate",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, records) = call(
        &server,
        &token,
        Method::GET,
        "/api/collections/articles/records",
        None,
    )
    .await;
    assert_eq!(records["totalItems"], 0);
    let (status, body) = call(
        &server,
        &token,
        Method::DELETE,
        "/api/collections/articles",
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Failed to delete collection probably due to existing reference in comments."
    );
    let (status, body) = call(
        &server,
        &token,
        Method::DELETE,
        "/api/collections/_superusers",
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Failed to delete collection."))
    );
    for name in ["comments", "articles"] {
        let path = format!("/api/collections/{name}");
        let (status, _) = call(&server, &token, Method::DELETE, &path, None).await;
        assert_eq!(status, 204, "{name}");
        let (status, _) = call(&server, &token, Method::GET, &path, None).await;
        assert_eq!(status, 404, "{name}");
    }

    // Tenant beta never saw any of it.
    let (status, list) = send(
        server
            .request(
                Method::GET,
                "beta.localhost",
                "/api/collections?filter=system%3Dfalse",
            )
            .header("Authorization", &beta),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(names(&list), ["users"]);
    // And alpha's token means nothing there.
    let (status, _) = send(
        server
            .request(Method::GET, "beta.localhost", "/api/collections/members")
            .header("Authorization", &token),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send(
        server
            .request(Method::GET, "beta.localhost", "/api/collections/members")
            .header("Authorization", &beta),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn views_are_read_only_collections_with_inferred_fields() {
    let (server, token, _) = setup().await;
    let (status, _) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections",
        Some(json!({"name": "posts", "fields": [{"name": "title", "type": "text"}, {"name": "views", "type": "number"}]})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, view) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections",
        Some(json!({"name": "popular", "type": "view", "listRule": "",
                    "viewQuery": "SELECT p.id, p.title, count(p.id) AS n FROM posts p GROUP BY p.id"})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    let fields: Vec<(&str, &str)> = view["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(fields, [("id", "text"), ("title", "text"), ("n", "number")]);
    assert_eq!(
        view["viewQuery"],
        "SELECT p.id, p.title, count(p.id) AS n FROM posts p GROUP BY p.id"
    );

    let (status, body) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections",
        Some(json!({"name": "bad", "type": "view", "viewQuery": "SELECT title FROM posts"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"]["viewQuery"]["code"],
        "validation_invalid_view_query"
    );
    let (status, body) = call(
        &server,
        &token,
        Method::DELETE,
        "/api/collections/popular/truncate",
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "View collections cannot be truncated since they don't store their own records."
    );
}

#[tokio::test]
async fn import_replaces_the_schema_in_one_step() {
    let (server, token, _) = setup().await;
    let (status, _) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections",
        Some(json!({"name": "legacy"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &server,
        &token,
        Method::PUT,
        "/api/collections/import",
        Some(json!({"deleteMissing": true, "collections": [
            {"id": "pbc_tags", "name": "tags", "fields": [{"name": "label", "type": "text"}]},
            {"name": "notes", "listRule": "", "fields": [
                {"name": "text", "type": "text"},
                {"name": "tag", "type": "relation", "collectionId": "pbc_tags", "maxSelect": 1}]},
        ]})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, list) = call(
        &server,
        &token,
        Method::GET,
        "/api/collections?filter=system%3Dfalse&sort=name",
        None,
    )
    .await;
    assert_eq!(names(&list), ["notes", "tags"]);
    let (status, _) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections/notes/records",
        Some(json!({"text": "hi"})),
    )
    .await;
    assert_eq!(status, 200);

    // A failing import changes nothing.
    let (status, body) = call(
        &server,
        &token,
        Method::PUT,
        "/api/collections/import",
        Some(json!({"deleteMissing": true, "collections": [
            {"name": "fresh"},
            {"name": "broken", "listRule": "zzz = 1"},
        ]})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Failed to import collections.");
    assert_eq!(
        body["data"]["collections"]["code"],
        "validation_collections_import_failure"
    );
    let (_, list) = call(
        &server,
        &token,
        Method::GET,
        "/api/collections?filter=system%3Dfalse&sort=name",
        None,
    )
    .await;
    assert_eq!(names(&list), ["notes", "tags"]);

    let (status, body) = call(
        &server,
        &token,
        Method::PUT,
        "/api/collections/import",
        Some(json!({"collections": []})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["collections"]["code"], "validation_required");
}

#[tokio::test]
async fn only_superusers_reach_the_collections_api() {
    let (server, token, _) = setup().await;
    let routes = [
        (Method::GET, "/api/collections"),
        (Method::POST, "/api/collections"),
        (Method::GET, "/api/collections/users"),
        (Method::PATCH, "/api/collections/users"),
        (Method::DELETE, "/api/collections/users"),
        (Method::DELETE, "/api/collections/users/truncate"),
        (Method::PUT, "/api/collections/import"),
        (Method::GET, "/api/collections/meta/scaffolds"),
    ];
    for (method, path) in &routes {
        let (status, body) = call(&server, "", method.clone(), path, Some(json!({}))).await;
        assert_eq!(status, 401, "{method} {path}");
        assert_eq!(
            body,
            json!({"data": {}, "message": "The request requires valid record authorization token.", "status": 401})
        );
        let (status, _) = call(&server, "not-a-token", method.clone(), path, None).await;
        assert_eq!(status, 401, "{method} {path}");
    }

    // A regular user of the tenant is authenticated but not allowed.
    let (status, body) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections/users/records",
        Some(json!({"email": "u@example.com", "password": "user-password", "passwordConfirm": "user-password"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        server
            .request(
                Method::POST,
                "alpha.localhost",
                "/api/collections/users/auth-with-password",
            )
            .json(&json!({"identity": "u@example.com", "password": "user-password"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user = body["token"].as_str().unwrap().to_string();
    for (method, path) in &routes {
        let (status, body) = call(&server, &user, method.clone(), path, Some(json!({}))).await;
        assert_eq!(status, 403, "{method} {path}");
        assert_eq!(
            body["message"],
            "The authorized record is not allowed to perform this action."
        );
    }

    // Superusers get 404 for a missing collection and 400 for a bad body.
    let (status, body) = call(&server, &token, Method::GET, "/api/collections/nope", None).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"data": {}, "message": "The requested resource wasn't found.", "status": 404})
        )
    );
    let (status, _) = call(
        &server,
        &token,
        Method::PATCH,
        "/api/collections/nope",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = call(
        &server,
        &token,
        Method::POST,
        "/api/collections",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["name"]["code"], "validation_required");
}
