//! A tenant's cron jobs at `/api/crons`: PocketBase's system jobs listed for superusers only,
//! run on request, a backups cron validated on save, listed, and run by the node's scheduler
//! (ticked quickly with `--cron-minute`).

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, eventually, send};

const HOST: &str = "ticks.localhost";

async fn call(server: &Server, method: Method, path: &str, token: &str) -> (u16, Value) {
    let mut request = server.request(method, HOST, path);
    if !token.is_empty() {
        request = request.header("Authorization", token);
    }
    send(request).await
}

async fn patch_settings(server: &Server, token: &str, patch: Value) -> (u16, Value) {
    send(
        server
            .request(Method::PATCH, HOST, "/api/settings")
            .header("Authorization", token)
            .json(&patch),
    )
    .await
}

/// A regular user of the tenant, signed in: its token.
async fn user_token(server: &Server) -> String {
    let credentials = json!({ "email": "u@example.com", "password": "user-password-1",
        "passwordConfirm": "user-password-1" });
    let (status, body) = send(
        server
            .request(Method::POST, HOST, "/api/collections/users/records")
            .json(&credentials),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        server
            .request(
                Method::POST,
                HOST,
                "/api/collections/users/auth-with-password",
            )
            .json(&json!({ "identity": "u@example.com", "password": "user-password-1" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn crons_are_listed_and_run_for_superusers_only_as_pocketbase_answers() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("ticks").await;
    let user = user_token(&server).await;

    let (status, body) = call(&server, Method::GET, "/api/crons", "").await;
    assert_eq!((status, &body["data"]), (401, &json!({})), "{body}");
    let (status, body) = call(&server, Method::GET, "/api/crons", &user).await;
    assert_eq!((status, &body["data"]), (403, &json!({})), "{body}");
    let (status, body) = call(&server, Method::POST, "/api/crons/__pbDBOptimize__", "").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = call(&server, Method::POST, "/api/crons/__pbDBOptimize__", &user).await;
    assert_eq!(status, 403, "{body}");

    // PocketBase 0.40's own jobs, in its order.
    let system = json!([
        {"id": "__pbDBOptimize__", "expression": "0 0 * * *"},
        {"id": "__pbMFACleanup__", "expression": "0 * * * *"},
        {"id": "__pbOTPCleanup__", "expression": "0 * * * *"},
        {"id": "__pbLogsCleanup__", "expression": "0 */6 * * *"}
    ]);
    let (status, body) = call(&server, Method::GET, "/api/crons", &token).await;
    assert_eq!((status, &body), (200, &system));

    let (status, body) = call(&server, Method::POST, "/api/crons/missing", &token).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"status": 404, "message": "Missing or invalid cron job.", "data": {}})
        )
    );
    for id in ["__pbDBOptimize__", "__pbMFACleanup__", "__pbOTPCleanup__"] {
        let (status, body) = call(&server, Method::POST, &format!("/api/crons/{id}"), &token).await;
        assert_eq!(status, 204, "{id}: {body}");
    }

    // A bad backups cron is refused with PocketBase's code and message; a good one is listed.
    let (status, body) = patch_settings(
        &server,
        &token,
        json!({"backups": {"cron": "*/99 * * * *"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["backups"]["cron"],
        json!({"code": "validation_invalid_cron",
            "message": "Invalid segment step boundary - the step must be between 1 and the 59."})
    );
    let (status, body) = patch_settings(
        &server,
        &token,
        json!({"backups": {"cron": "@daily", "cronMaxKeep": 0}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["backups"]["cronMaxKeep"]["code"],
        "validation_required"
    );
    let (status, body) =
        patch_settings(&server, &token, json!({"backups": {"cron": "@daily"}})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&server, Method::GET, "/api/crons", &token).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 5, "{body}");
    assert_eq!(
        body[4],
        json!({"id": "__pbAutoBackup__", "expression": "0 0 * * *"})
    );
    // Cleared, the job is gone.
    let (status, _) = patch_settings(&server, &token, json!({"backups": {"cron": ""}})).await;
    assert_eq!(status, 200);
    let (_, body) = call(&server, Method::GET, "/api/crons", &token).await;
    assert_eq!(body, system);
}

#[tokio::test]
async fn running_the_logs_cleanup_deletes_logs_older_than_max_days() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("ticks").await;
    let found = eventually(Duration::from_secs(15), async || {
        let (_, body) = call(&server, Method::GET, "/api/logs", &token).await;
        body["totalItems"].as_i64().unwrap_or(0) > 0
    })
    .await;
    assert!(found, "no request was logged");
    // A log from long ago, written where the tenant keeps its logs.
    let aux = server.tenant_dir("ticks").await.join("auxiliary.db");
    let db = warren_store::sql::Connection::open(aux).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "INSERT INTO _logs (id, level, message, data, created)
         VALUES ('oldlogentry0001', 0, 'GET /api/old', '{}', '2001-01-01 00:00:00.000Z')",
        [],
    )
    .unwrap();
    drop(db);
    let (status, _) = call(&server, Method::GET, "/api/logs/oldlogentry0001", &token).await;
    assert_eq!(status, 200);

    let (status, body) = call(
        &server,
        Method::POST,
        "/api/crons/__pbLogsCleanup__",
        &token,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let gone = eventually(Duration::from_secs(15), async || {
        let (status, _) = call(&server, Method::GET, "/api/logs/oldlogentry0001", &token).await;
        status == 404
    })
    .await;
    assert!(gone, "the old log was not deleted");
    // Recent logs stay.
    let (_, body) = call(&server, Method::GET, "/api/logs", &token).await;
    assert!(body["totalItems"].as_i64().unwrap() > 0, "{body}");
}

/// The automatic backups among the tenant's backups.
async fn auto_backups(server: &Server, token: &str) -> Vec<String> {
    let (status, body) = call(server, Method::GET, "/api/backups", token).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["key"].as_str())
        .filter(|key| key.starts_with("@auto_pb_backup_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_backups_cron_makes_backups_as_the_scheduler_ticks_and_keeps_the_newest() {
    // Every 1.1 s counts as a minute: "* * * * *" is due at every tick (and backup names, to
    // the second, never collide).
    let server = Server::start(&["--cron-minute", "1100ms"]);
    let token = server.tenant_with_superuser("ticks").await;
    assert!(auto_backups(&server, &token).await.is_empty());
    let (status, body) = patch_settings(
        &server,
        &token,
        json!({"backups": {"cron": "* * * * *", "cronMaxKeep": 2}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Backups appear; older ones are replaced by newer. A new backup is complete before the
    // oldest is deleted (as PocketBase rotates), so a list taken between the two sees one more
    // than cronMaxKeep; never more than that.
    let mut seen = HashSet::new();
    let mut first = None;
    let rotated = eventually(Duration::from_secs(30), async || {
        let kept = auto_backups(&server, &token).await;
        assert!(
            kept.len() <= 3,
            "more automatic backups than cronMaxKeep and the one being made: {kept:?}"
        );
        seen.extend(kept.iter().cloned());
        if first.is_none() {
            first = kept.first().cloned();
        }
        first
            .as_ref()
            .is_some_and(|f| kept.len() == 2 && !kept.contains(f))
    })
    .await;
    assert!(
        rotated,
        "automatic backups were not made and rotated: {seen:?}"
    );
}
