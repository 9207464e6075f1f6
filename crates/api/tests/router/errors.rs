//! PocketBase's error envelope on unknown routes, bad input and refused callers.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::json;

use crate::support::Api;

#[tokio::test]
async fn health_answers_everyone() {
    let api = Api::new().await;
    let (status, body) = api.get("/api/health", "").await;
    assert_eq!(status, 200);
    assert_eq!(body["message"], "API is healthy.");
    assert_eq!(body["data"], json!({}));
    let (_, body) = api.get("/api/health", &api.root).await;
    assert_eq!(body["data"]["canBackup"], true);
}

#[tokio::test]
async fn unknown_routes_are_a_404_envelope() {
    let api = Api::new().await;
    let (status, body) = api.get("/api/nothing-here", "").await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], 404);
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(body["data"], json!({}));
}

#[tokio::test]
async fn a_method_a_route_does_not_have_is_a_404_envelope() {
    let api = Api::new().await;
    let (status, body) = api.call(Method::PUT, "/api/health", "", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["status"], 404);
}

#[tokio::test]
async fn malformed_json_is_a_400_envelope() {
    let api = Api::new().await;
    api.blog().await;
    let (_, token) = api.user("ann@example.com").await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/collections/posts/records")
        .header(header::AUTHORIZATION, &token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"title\": "))
        .unwrap();
    let (status, body) = api.send(request).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], 400);
    assert!(body["message"].is_string());
    assert!(body["data"].is_object());
}

#[tokio::test]
async fn a_garbage_token_is_a_guest() {
    let api = Api::new().await;
    api.blog().await;
    let (status, body) = api
        .get("/api/collections/posts/records", "not-a-token")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalItems"], 0);
}

#[tokio::test]
async fn unknown_collections_are_a_404_envelope() {
    let api = Api::new().await;
    for path in [
        "/api/collections/nope/records",
        "/api/collections/nope/records/abc",
        "/api/collections/nope",
    ] {
        let (status, body) = api.get(path, &api.root).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["status"], 404);
        assert_eq!(body["data"], json!({}));
    }
}

#[tokio::test]
async fn a_bad_filter_is_a_400_envelope() {
    let api = Api::new().await;
    api.blog().await;
    let (status, body) = api
        .get("/api/collections/posts/records?filter=title%20~~~", "")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], 400);
    let (status, body) = api
        .get("/api/collections/posts/records?sort=nosuchfield", &api.root)
        .await;
    assert_eq!(status, 400, "{body}");
}
