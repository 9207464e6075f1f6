//! Batch requests: off until the settings allow them, all-or-nothing once they do.

use serde_json::{Value, json};

use crate::support::Api;

const POSTS: &str = "/api/collections/posts/records";

/// A blog whose settings allow batches of up to ten requests.
async fn blog_with_batches() -> Api {
    let api = Api::new().await;
    api.blog().await;
    let (status, body) = api
        .patch(
            "/api/settings",
            &api.root,
            json!({ "batch": { "enabled": true, "maxRequests": 10 } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    api
}

/// Sends a batch of `requests` as `token`.
async fn batch(api: &Api, token: &str, requests: Vec<Value>) -> (u16, Value) {
    api.post("/api/batch", token, json!({ "requests": requests }))
        .await
}

/// The posts' list as the superuser sees it.
async fn posts(api: &Api) -> Value {
    api.get(POSTS, &api.root).await.1
}

/// A request creating a post titled `title`.
fn create(title: &str) -> Value {
    json!({ "method": "POST", "url": POSTS, "body": { "title": title } })
}

#[tokio::test]
async fn batch_is_refused_until_enabled() {
    let api = Api::new().await;
    api.blog().await;
    let (status, body) = batch(&api, &api.root, vec![create("a")]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(posts(&api).await["totalItems"], 0);
}

#[tokio::test]
async fn a_batch_writes_every_request_and_answers_each() {
    let api = blog_with_batches().await;
    let (status, body) = batch(&api, &api.root, vec![create("a"), create("b")]).await;
    assert_eq!(status, 200, "{body}");
    let answers = body.as_array().unwrap();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["status"], 200);
    assert_eq!(answers[1]["body"]["title"], "b");
    assert_eq!(posts(&api).await["totalItems"], 2);
}

#[tokio::test]
async fn one_failing_request_rolls_the_whole_batch_back() {
    let api = blog_with_batches().await;
    let (status, body) = batch(&api, &api.root, vec![create("a"), create("")]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(posts(&api).await["totalItems"], 0);
}

#[tokio::test]
async fn a_batch_updates_and_deletes() {
    let api = blog_with_batches().await;
    let keep = api
        .create_record("posts", &api.root, json!({ "title": "keep" }))
        .await;
    let gone = api
        .create_record("posts", &api.root, json!({ "title": "gone" }))
        .await;
    let url = |record: &Value| format!("{POSTS}/{}", record["id"].as_str().unwrap());
    let requests = vec![
        json!({ "method": "PATCH", "url": url(&keep), "body": { "title": "kept" } }),
        json!({ "method": "DELETE", "url": url(&gone) }),
    ];
    let (status, body) = batch(&api, &api.root, requests).await;
    assert_eq!(status, 200, "{body}");
    let list = posts(&api).await;
    assert_eq!(list["totalItems"], 1);
    assert_eq!(list["items"][0]["title"], "kept");
}

#[tokio::test]
async fn a_batch_beyond_the_request_limit_is_refused() {
    let api = blog_with_batches().await;
    let requests = (0..11).map(|i| create(&format!("p{i}"))).collect();
    let (status, body) = batch(&api, &api.root, requests).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(posts(&api).await["totalItems"], 0);
}

#[tokio::test]
async fn batch_requests_obey_the_collection_rules() {
    let api = blog_with_batches().await;
    let (status, body) = batch(&api, "", vec![create("a")]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(posts(&api).await["totalItems"], 0);
}
