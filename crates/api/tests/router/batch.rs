//! Batch requests: off until the settings allow them, all-or-nothing once they do.

use serde_json::{Value, json};

use crate::support::Api;

async fn enable_batch(api: &Api) {
    let (status, body) = api
        .patch(
            "/api/settings",
            &api.root,
            json!({ "batch": { "enabled": true, "maxRequests": 10 } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn create(title: Value) -> Value {
    json!({ "method": "POST", "url": "/api/collections/posts/records", "body": { "title": title } })
}

#[tokio::test]
async fn batch_is_refused_until_enabled() {
    let api = Api::new().await;
    api.blog().await;
    let (status, body) = api
        .post(
            "/api/batch",
            &api.root,
            json!({ "requests": [create(json!("a"))] }),
        )
        .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn a_batch_writes_every_request_and_answers_each() {
    let api = Api::new().await;
    api.blog().await;
    enable_batch(&api).await;
    let (status, body) = api
        .post(
            "/api/batch",
            &api.root,
            json!({ "requests": [create(json!("a")), create(json!("b"))] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answers = body.as_array().unwrap();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["status"], 200);
    assert_eq!(answers[1]["body"]["title"], "b");
    let (_, list) = api.get("/api/collections/posts/records", &api.root).await;
    assert_eq!(list["totalItems"], 2);
}

#[tokio::test]
async fn one_failing_request_rolls_the_whole_batch_back() {
    let api = Api::new().await;
    api.blog().await;
    enable_batch(&api).await;
    let (status, body) = api
        .post(
            "/api/batch",
            &api.root,
            json!({ "requests": [create(json!("a")), create(json!(""))] }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, list) = api.get("/api/collections/posts/records", &api.root).await;
    assert_eq!(list["totalItems"], 0);
}

#[tokio::test]
async fn a_batch_updates_and_deletes() {
    let api = Api::new().await;
    api.blog().await;
    enable_batch(&api).await;
    let keep = api
        .create_record("posts", &api.root, json!({ "title": "keep" }))
        .await;
    let gone = api
        .create_record("posts", &api.root, json!({ "title": "gone" }))
        .await;
    let (status, body) = api
        .post(
            "/api/batch",
            &api.root,
            json!({ "requests": [
                { "method": "PATCH", "url": format!("/api/collections/posts/records/{}", keep["id"].as_str().unwrap()), "body": { "title": "kept" } },
                { "method": "DELETE", "url": format!("/api/collections/posts/records/{}", gone["id"].as_str().unwrap()) },
            ] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = api.get("/api/collections/posts/records", &api.root).await;
    assert_eq!(list["totalItems"], 1);
    assert_eq!(list["items"][0]["title"], "kept");
}

#[tokio::test]
async fn a_batch_beyond_the_request_limit_is_refused() {
    let api = Api::new().await;
    api.blog().await;
    enable_batch(&api).await;
    let requests: Vec<Value> = (0..11).map(|i| create(json!(format!("p{i}")))).collect();
    let (status, body) = api
        .post("/api/batch", &api.root, json!({ "requests": requests }))
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, list) = api.get("/api/collections/posts/records", &api.root).await;
    assert_eq!(list["totalItems"], 0);
}

#[tokio::test]
async fn batch_requests_obey_the_collection_rules() {
    let api = Api::new().await;
    api.blog().await;
    enable_batch(&api).await;
    let (status, body) = api
        .post(
            "/api/batch",
            "",
            json!({ "requests": [create(json!("a"))] }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, list) = api.get("/api/collections/posts/records", &api.root).await;
    assert_eq!(list["totalItems"], 0);
}
