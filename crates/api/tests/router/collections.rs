//! The collections API: superusers create, change, list, empty and delete collections; bad
//! definitions are refused with field errors; nobody else gets in.

use serde_json::{Value, json};

use crate::support::{Api, names};

fn posts() -> Value {
    json!({
        "name": "posts",
        "listRule": "",
        "fields": [
            {"name": "title", "type": "text", "required": true},
            {"name": "views", "type": "number"},
        ],
    })
}

#[tokio::test]
async fn superusers_create_view_update_and_delete_a_collection() {
    let api = Api::new().await;
    let created = api.create_collection(posts()).await;
    assert_eq!(created["name"], "posts");
    assert_eq!(created["type"], "base");
    assert_eq!(created["listRule"], "");
    assert_eq!(created["viewRule"], Value::Null);

    let (status, viewed) = api.get("/api/collections/posts", &api.root).await;
    assert_eq!(status, 200);
    assert_eq!(viewed["id"], created["id"]);
    let id = created["id"].as_str().unwrap();
    let (status, by_id) = api.get(&format!("/api/collections/{id}"), &api.root).await;
    assert_eq!(status, 200);
    assert_eq!(by_id["name"], "posts");

    let (status, updated) = api
        .patch(
            "/api/collections/posts",
            &api.root,
            json!({ "name": "articles", "viewRule": "" }),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "articles");
    assert_eq!(updated["viewRule"], "");
    assert_eq!(api.get("/api/collections/posts", &api.root).await.0, 404);

    let (status, body) = api.delete("/api/collections/articles", &api.root).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(api.get("/api/collections/articles", &api.root).await.0, 404);
}

#[tokio::test]
async fn the_list_holds_system_and_new_collections_and_filters() {
    let api = Api::new().await;
    api.create_collection(posts()).await;
    let (status, list) = api.get("/api/collections?perPage=100", &api.root).await;
    assert_eq!(status, 200);
    let all = names(&list);
    assert!(all.contains(&"users"), "{all:?}");
    assert!(all.contains(&"_superusers"), "{all:?}");
    assert!(all.contains(&"posts"), "{all:?}");
    let (status, list) = api
        .get("/api/collections?filter=name%3D%27posts%27", &api.root)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(names(&list), ["posts"]);
    assert_eq!(list["totalItems"], 1);
}

#[tokio::test]
async fn a_collection_without_a_name_is_refused_with_a_field_error() {
    let api = Api::new().await;
    let (status, body) = api
        .post("/api/collections", &api.root, json!({ "fields": [] }))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["name"]["code"].is_string(), "{body}");
}

#[tokio::test]
async fn a_taken_name_is_refused() {
    let api = Api::new().await;
    api.create_collection(posts()).await;
    let (status, body) = api.post("/api/collections", &api.root, posts()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["name"]["code"].is_string(), "{body}");
    let (status, body) = api
        .post("/api/collections", &api.root, json!({ "name": "users" }))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn an_unknown_field_type_or_a_bad_rule_is_refused() {
    let api = Api::new().await;
    let (status, body) = api
        .post(
            "/api/collections",
            &api.root,
            json!({ "name": "things", "fields": [{"name": "x", "type": "teleporter"}] }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api
        .post(
            "/api/collections",
            &api.root,
            json!({ "name": "things", "listRule": "nosuchfield = 1" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["listRule"]["code"].is_string(), "{body}");
    let (_, list) = api.get("/api/collections?perPage=100", &api.root).await;
    assert!(!names(&list).contains(&"things"));
}

#[tokio::test]
async fn system_collections_cannot_be_deleted() {
    let api = Api::new().await;
    let (status, body) = api.delete("/api/collections/_superusers", &api.root).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        api.get("/api/collections/_superusers", &api.root).await.0,
        200
    );
}

#[tokio::test]
async fn truncate_empties_a_collection_and_keeps_it() {
    let api = Api::new().await;
    api.create_collection(posts()).await;
    for title in ["a", "b", "c"] {
        api.create_record("posts", &api.root, json!({ "title": title }))
            .await;
    }
    let (status, body) = api
        .delete("/api/collections/posts/truncate", &api.root)
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, list) = api.get("/api/collections/posts/records", "").await;
    assert_eq!(status, 200);
    assert_eq!(list["totalItems"], 0);
}

#[tokio::test]
async fn guests_and_users_are_kept_out_of_the_collections_api() {
    let api = Api::new().await;
    api.blog().await;
    let (_, user) = api.user("ann@example.com").await;
    let (status, body) = api.get("/api/collections", "").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = api.get("/api/collections", &user).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = api.post("/api/collections", &user, posts()).await;
    assert_eq!(status, 403);
    let (status, _) = api.delete("/api/collections/posts", "").await;
    assert_eq!(status, 401);
    assert_eq!(api.get("/api/collections/posts", &api.root).await.0, 200);
}

#[tokio::test]
async fn a_new_field_is_added_and_kept_by_an_update() {
    let api = Api::new().await;
    let created = api.create_collection(posts()).await;
    let mut fields = created["fields"].as_array().unwrap().clone();
    fields.push(json!({"name": "summary", "type": "text"}));
    let (status, updated) = api
        .patch(
            "/api/collections/posts",
            &api.root,
            json!({ "fields": fields }),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let record = api
        .create_record(
            "posts",
            &api.root,
            json!({ "title": "t", "summary": "short" }),
        )
        .await;
    assert_eq!(record["summary"], "short");
}

#[tokio::test]
async fn scaffolds_describe_each_collection_type() {
    let api = Api::new().await;
    let (status, body) = api.get("/api/collections/meta/scaffolds", &api.root).await;
    assert_eq!(status, 200, "{body}");
    for kind in ["base", "auth", "view"] {
        assert_eq!(body[kind]["type"], kind, "{body}");
    }
}
