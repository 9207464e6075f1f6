//! The index advisor: slow lists without an index become one proposal per index, listed for
//! the tenant's superusers only, logged once, and created with `--auto-index`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, encode, eventually, send};

const SUGGESTIONS: &str = "/api/warren/indexes/suggestions";

fn host(slug: &str) -> String {
    format!("{slug}.localhost")
}

async fn call(
    server: &Server,
    slug: &str,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.request(method, &host(slug), path);
    if let Some(token) = token {
        request = request.header("Authorization", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

/// Creates `notes` (public list rule, no index) holding `rows` records.
async fn seed_notes(server: &Server, slug: &str, token: &str, rows: usize) {
    let collection = json!({
        "name": "notes",
        "type": "base",
        "listRule": "",
        "viewRule": "",
        "fields": [
            { "name": "title", "type": "text" },
            { "name": "number", "type": "number" },
            { "name": "public", "type": "bool" },
            { "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false },
        ],
    });
    let (status, body) = call(
        server,
        slug,
        Some(token),
        Method::POST,
        "/api/collections",
        Some(collection),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let query = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
         INSERT INTO notes (id, title, number, public, created) \
         SELECT printf('n%014d', i), 'Note ' || i, i % 1000, i % 2, \
         printf('2026-01-01 00:00:%02d.%03dZ', i % 60, i % 1000) FROM n"
    );
    let (status, body) = call(
        server,
        slug,
        Some(token),
        Method::POST,
        "/api/sql",
        Some(json!({ "query": query })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// A filtered, sorted page of `notes` as a guest (the list rule is public); its ids.
async fn slow_list(server: &Server, slug: &str, min: u32) -> Vec<String> {
    let query = encode(&[
        ("filter", format!("public = true && number >= {min}")),
        ("sort", "-created".to_string()),
        ("page", "3".to_string()),
        ("skipTotal", "1".to_string()),
    ]);
    let (status, body) = call(
        server,
        slug,
        None,
        Method::GET,
        &format!("/api/collections/notes/records?{query}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 30, "{body}");
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn suggestions(server: &Server, slug: &str, token: Option<&str>) -> (u16, Value) {
    call(server, slug, token, Method::GET, SUGGESTIONS, None).await
}

/// The tenant's logs written by the advisor.
async fn advisor_logs(server: &Server, slug: &str, token: &str) -> Vec<Value> {
    let filter = encode(&[("filter", "data.type = 'indexAdvisor'")]);
    let (status, body) = call(
        server,
        slug,
        Some(token),
        Method::GET,
        &format!("/api/logs?{filter}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_slow_sorted_list_gets_one_proposal_seen_by_its_superusers_only() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("alpha").await;
    let other = server.tenant_with_superuser("beta").await;
    seed_notes(&server, "alpha", &token, 20_000).await;
    seed_notes(&server, "beta", &other, 10).await;

    // Nothing slow yet: nothing proposed.
    let (status, body) = suggestions(&server, "alpha", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], json!([]));

    let mut pages = Vec::new();
    for min in [10, 20, 30] {
        pages.push(slow_list(&server, "alpha", min).await);
    }
    // The page kept in memory is SQLite's own, ties on `created` included (its values repeat).
    let query = "SELECT id FROM notes WHERE public = TRUE AND number >= 10 \
                 ORDER BY created DESC LIMIT 30 OFFSET 60";
    let (status, body) = call(
        &server,
        "alpha",
        Some(&token),
        Method::POST,
        "/api/sql",
        Some(json!({ "query": query })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let want: Vec<String> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pages[0], want);
    let (status, body) = suggestions(&server, "alpha", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    let item = &items[0];
    assert_eq!(item["collection"], "notes");
    assert_eq!(item["columns"], json!(["created"]));
    assert_eq!(item["sorted"], json!(["created"]));
    assert_eq!(item["filtered"], json!(["public", "number"]));
    assert_eq!(item["count"], 3);
    assert_eq!(
        item["index"],
        "CREATE INDEX `idx_notes_created` ON `notes` (`created`)"
    );
    assert!(item["maxMs"].as_f64().unwrap() >= 1.0, "{item}");
    // The same for one collection, by name; another collection has none.
    let (status, one) = call(
        &server,
        "alpha",
        Some(&token),
        Method::GET,
        &format!("{SUGGESTIONS}?collection=notes"),
        None,
    )
    .await;
    assert_eq!((status, one["items"].as_array().unwrap().len()), (200, 1));
    let (status, none) = call(
        &server,
        "alpha",
        Some(&token),
        Method::GET,
        &format!("{SUGGESTIONS}?collection=users"),
        None,
    )
    .await;
    assert_eq!((status, none["items"].clone()), (200, json!([])));

    // Guests and users are refused; another tenant's superuser sees only its own (none).
    let (status, body) = suggestions(&server, "alpha", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.get("items").is_none());
    let (status, body) = call(
        &server,
        "alpha",
        None,
        Method::POST,
        "/api/collections/users/records",
        Some(
            json!({"email": "u@example.com", "password": "user-password-1",
                    "passwordConfirm": "user-password-1"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &server,
        "alpha",
        None,
        Method::POST,
        "/api/collections/users/auth-with-password",
        Some(json!({"identity": "u@example.com", "password": "user-password-1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user = body["token"].as_str().unwrap().to_string();
    let (status, body) = suggestions(&server, "alpha", Some(&user)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.get("items").is_none());
    let (status, body) = suggestions(&server, "beta", Some(&other)).await;
    assert_eq!((status, body["items"].clone()), (200, json!([])));
    // alpha's token means nothing on beta.
    let (status, _) = suggestions(&server, "beta", Some(&token)).await;
    assert_eq!(status, 401);

    // One log line for the proposal, not one per slow list.
    assert!(
        eventually(Duration::from_secs(10), async || {
            advisor_logs(&server, "alpha", &token).await.len() == 1
        })
        .await
    );
    let logs = advisor_logs(&server, "alpha", &token).await;
    assert_eq!(logs[0]["data"]["collection"], "notes");
    assert_eq!(logs[0]["data"]["columns"], json!(["created"]));
    assert!(advisor_logs(&server, "beta", &other).await.is_empty());

    // Once the index exists (the dashboard's "Add index" is this collection update), the
    // proposal is no longer listed and the same list is not noted again.
    let (status, body) = call(
        &server,
        "alpha",
        Some(&token),
        Method::PATCH,
        "/api/collections/notes",
        Some(json!({ "indexes": [item["index"]] })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    slow_list(&server, "alpha", 10).await;
    let (status, body) = suggestions(&server, "alpha", Some(&token)).await;
    assert_eq!((status, body["items"].clone()), (200, json!([])));
}

#[tokio::test]
async fn auto_index_creates_the_proposed_index_after_repeated_slow_lists() {
    let server = Server::start(&["--auto-index"]);
    let token = server.tenant_with_superuser("alpha").await;
    seed_notes(&server, "alpha", &token, 20_000).await;
    for min in [10, 20, 30] {
        slow_list(&server, "alpha", min).await;
    }
    let created = eventually(Duration::from_secs(10), async || {
        let (status, body) = call(
            &server,
            "alpha",
            Some(&token),
            Method::GET,
            "/api/collections/notes",
            None,
        )
        .await;
        status == 200
            && body["indexes"] == json!(["CREATE INDEX `idx_notes_created` ON `notes` (`created`)"])
    })
    .await;
    assert!(created, "the proposed index was not created");
    assert!(
        eventually(Duration::from_secs(10), async || {
            advisor_logs(&server, "alpha", &token)
                .await
                .iter()
                .any(|l| l["message"] == "Auto-index: created idx_notes_created")
        })
        .await
    );
    slow_list(&server, "alpha", 10).await;
    let (_, body) = suggestions(&server, "alpha", Some(&token)).await;
    assert_eq!(body["items"], json!([]));
}
