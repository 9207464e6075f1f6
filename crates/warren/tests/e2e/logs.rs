//! Request logs: every tenant request is logged into that tenant's `auxiliary.db`, and the
//! logs API (list, filter, view, hourly stats, truncate) shows superusers their own tenant's
//! logs only, shaped as PocketBase shows them.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, eventually, send};

async fn call(
    server: &Server,
    slug: &str,
    token: &str,
    method: Method,
    path: &str,
) -> (u16, Value) {
    let mut request = server.request(method, &format!("{slug}.localhost"), path);
    if !token.is_empty() {
        request = request.header("Authorization", token);
    }
    send(request).await
}

/// Waits (boundedly) until the logs list for `filter` has at least `min` items; returns it.
async fn wait_for_logs(server: &Server, slug: &str, token: &str, filter: &str, min: i64) -> Value {
    let path = format!("/api/logs?filter={}", urlencode(filter));
    let mut last = Value::Null;
    let found = eventually(Duration::from_secs(15), async || {
        let (status, body) = call(server, slug, token, Method::GET, &path).await;
        assert_eq!(status, 200, "{body}");
        let enough = body["totalItems"].as_i64().unwrap_or(0) >= min;
        last = body;
        enough
    })
    .await;
    assert!(found, "logs matching {filter} never appeared: {last}");
    last
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn requests_are_logged_and_listed_like_pocketbase() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("alpha").await;

    let (status, _) = send(
        server
            .request(Method::GET, "alpha.localhost", "/api/health?probe=1")
            .header("User-Agent", "logs-test/1")
            .header("Referer", "http://example.test/page"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &server,
        "alpha",
        "",
        Method::GET,
        "/api/collections/nope/records",
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&server, "alpha", &token, Method::GET, "/api/settings").await;
    assert_eq!(status, 200);

    let health = wait_for_logs(
        &server,
        "alpha",
        &token,
        "data.url = '/api/health?probe=1'",
        1,
    )
    .await;
    let log = &health["items"][0];
    assert_eq!(log["message"], "GET /api/health?probe=1");
    assert_eq!(log["level"], 0);
    let data = &log["data"];
    assert_eq!(data["type"], "request");
    assert_eq!(data["method"], "GET");
    assert_eq!(data["status"], 200);
    assert_eq!(data["userAgent"], "logs-test/1");
    assert_eq!(data["referer"], "http://example.test/page");
    assert_eq!(data["remoteIP"], "127.0.0.1");
    assert_eq!(data["userIP"], "127.0.0.1");
    assert_eq!(data["auth"], "");
    assert!(data["execTime"].as_f64().unwrap() >= 0.0);
    assert!(data.get("authId").is_none(), "logAuthId is off by default");
    let id = log["id"].as_str().unwrap();
    assert_eq!(id.len(), 15);
    let created = log["created"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");

    // A failed request is an error-level entry carrying the error message.
    let failed = wait_for_logs(&server, "alpha", &token, "data.status = 404", 1).await;
    let log = &failed["items"][0];
    assert_eq!(log["level"], 8);
    assert_eq!(log["data"]["error"], "Missing collection context.");
    assert!(log["data"]["details"].is_null());

    // The superuser's own request names the auth collection.
    wait_for_logs(
        &server,
        "alpha",
        &token,
        "data.auth = '_superusers' && data.url = '/api/settings'",
        1,
    )
    .await;

    // View by id, with a projection.
    let (status, one) = call(
        &server,
        "alpha",
        &token,
        Method::GET,
        &format!("/api/logs/{id}?fields=id,data.url"),
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        one,
        json!({"id": id, "data": {"url": "/api/health?probe=1"}})
    );
    let (status, missing) = call(&server, "alpha", &token, Method::GET, "/api/logs/missing").await;
    assert_eq!(status, 404);
    assert_eq!(missing["message"], "The requested resource wasn't found.");

    // Sorting, paging and hourly stats.
    let (status, page) = call(
        &server,
        "alpha",
        &token,
        Method::GET,
        "/api/logs?perPage=1&sort=-created",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["perPage"], 1);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["totalItems"].as_i64().unwrap() >= 3);
    let (status, stats) = call(
        &server,
        "alpha",
        &token,
        Method::GET,
        "/api/logs/stats?filter=data.status%3E%3D400",
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    let bucket = &stats[0];
    assert!(
        bucket["date"].as_str().unwrap().ends_with(":00:00.000Z"),
        "{stats}"
    );
    assert!(bucket["total"].as_i64().unwrap() >= 1);

    // Bad filters come out in PocketBase's envelope.
    let (status, body) = call(
        &server,
        "alpha",
        &token,
        Method::GET,
        "/api/logs?filter=bogus%3D1",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Something went wrong while processing your request."
    );
    let (status, body) = call(
        &server,
        "alpha",
        &token,
        Method::GET,
        "/api/logs/stats?filter=bad((",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Invalid filter format.");

    // Truncate empties the table.
    let (status, _) = call(&server, "alpha", &token, Method::DELETE, "/api/logs").await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &server,
        "alpha",
        &token,
        Method::GET,
        "/api/logs?filter=data.url%3D'/api/health?probe=1'",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["totalItems"], 0);
}

#[tokio::test]
async fn only_superusers_of_the_tenant_read_its_logs() {
    let server = Server::start(&[]);
    let alpha = server.tenant_with_superuser("alpha").await;
    let beta = server.tenant_with_superuser("beta").await;

    let (status, _) = call(
        &server,
        "alpha",
        "",
        Method::GET,
        "/api/health?only-alpha=1",
    )
    .await;
    assert_eq!(status, 200);
    wait_for_logs(
        &server,
        "alpha",
        &alpha,
        "data.url = '/api/health?only-alpha=1'",
        1,
    )
    .await;

    // Beta's logs never hold alpha's requests, and alpha's token means nothing on beta.
    let (status, body) = call(
        &server,
        "beta",
        &beta,
        Method::GET,
        "/api/logs?filter=data.url%3D'/api/health?only-alpha=1'",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["totalItems"], 0);
    let (status, body) = call(&server, "beta", &alpha, Method::GET, "/api/logs").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = call(&server, "alpha", "", Method::GET, "/api/logs").await;
    assert_eq!(status, 401);
    assert_eq!(
        body["message"],
        "The request requires valid record authorization token."
    );
    let (status, _) = call(&server, "alpha", "", Method::DELETE, "/api/logs").await;
    assert_eq!(status, 401);
    let (status, _) = call(&server, "alpha", "", Method::GET, "/api/logs/stats").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn settings_turn_logging_off_and_drop_ips() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("alpha").await;
    let patch = |body: Value| {
        server
            .request(Method::PATCH, "alpha.localhost", "/api/settings")
            .header("Authorization", &token)
            .json(&body)
    };
    let (status, body) = send(patch(json!({"logs": {"logIP": false, "logAuthId": true}}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&server, "alpha", &token, Method::GET, "/api/health?no-ip=1").await;
    assert_eq!(status, 200);
    let list = wait_for_logs(
        &server,
        "alpha",
        &token,
        "data.url = '/api/health?no-ip=1'",
        1,
    )
    .await;
    let data = &list["items"][0]["data"];
    assert!(
        data.get("remoteIP").is_none() && data.get("userIP").is_none(),
        "{data}"
    );
    assert_eq!(data["auth"], "_superusers");
    assert!(
        data["authId"].as_str().is_some_and(|id| !id.is_empty()),
        "{data}"
    );

    // maxDays = 0: nothing more is written.
    let (status, _) = send(patch(json!({"logs": {"maxDays": 0}}))).await;
    assert_eq!(status, 200);
    let (status, _) = call(&server, "alpha", "", Method::GET, "/api/health?while-off=1").await;
    assert_eq!(status, 200);
    // A marker logged after logging is back on proves the earlier request had its chance.
    let (status, _) = send(patch(json!({"logs": {"maxDays": 5}}))).await;
    assert_eq!(status, 200);
    let (status, _) = call(&server, "alpha", "", Method::GET, "/api/health?marker=1").await;
    assert_eq!(status, 200);
    wait_for_logs(
        &server,
        "alpha",
        &token,
        "data.url = '/api/health?marker=1'",
        1,
    )
    .await;
    let (status, body) = call(
        &server,
        "alpha",
        &token,
        Method::GET,
        "/api/logs?filter=data.url%3D'/api/health?while-off=1'",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["totalItems"], 0, "{body}");
}
