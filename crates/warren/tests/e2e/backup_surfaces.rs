//! Backup status where operators look: the operator API (`/v1/tenants/{slug}/backups/status`),
//! `/metrics` (bounded aggregate gauges, per-tenant series only for the stalest), scheduled
//! restore drills (`/v1/backups/drills`), and `warren backup restore --in-place` from the CLI
//! (refused while a server serves the data directory, a drain-free swap when none does).

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::backup::{add_note, backup_cli, host, start, target, tenant_with_notes, titles};
use crate::support::{Server, TOKEN, eventually, operator, send};

async fn metrics(server: &Server) -> String {
    let response = server
        .request(Method::GET, "localhost", "/metrics")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of the unlabelled series `name` in a metrics text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
}

async fn status(server: &Server, slug: &str) -> Value {
    let (code, body) = operator(
        server,
        Method::GET,
        &format!("/v1/tenants/{slug}/backups/status"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test]
async fn status_metrics_and_drills_show_each_tenants_backups() {
    let target = target();
    let Some(dir) = target.dir.clone() else {
        // The failing tenant below needs a directory target.
        return;
    };
    // No snapshot on first opening (WAL shipping's): `broken` must have none yet.
    let server = start(&target, &["--backup-every=0", "--backup-wal-every=0"]);
    tenant_with_notes(&server, "alpha").await;
    add_note(&server, "alpha", "one", Some(b"file body")).await;
    // `broken`'s backups cannot be stored: its directory in the target is a file.
    tenant_with_notes(&server, "broken").await;
    let (code, broken) = operator(&server, Method::GET, "/v1/tenants/broken", None).await;
    assert_eq!(code, 200, "{broken}");
    std::fs::write(dir.join(broken["id"].as_str().unwrap()), b"in the way").unwrap();
    // Now the schedule and the drills (same data directory).
    let flags = target.serve_flags(&[
        "--backup-every=1s",
        "--backup-drill-every=1s",
        "--backup-drill-sample=3",
        "--backup-wal-every=0",
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = server.crash_and_restart(&flags);

    // The schedule backs up alpha; broken fails, and its failure is reported with its error.
    let ok = eventually(Duration::from_secs(20), async || {
        let a = status(&server, "alpha").await;
        let b = status(&server, "broken").await;
        a["lastStatus"] == "complete" && b["lastStatus"] == "failed"
    })
    .await;
    assert!(ok, "the schedule never recorded both outcomes");
    let a = status(&server, "alpha").await;
    assert!(!a["lastSuccess"].as_str().unwrap().is_empty(), "{a}");
    assert!(!a["lastBackup"].as_str().unwrap().is_empty(), "{a}");
    let b = status(&server, "broken").await;
    assert_eq!(b["lastSuccess"], "", "{b}");
    assert!(!b["lastFailure"].as_str().unwrap().is_empty(), "{b}");
    assert!(!b["lastFailureError"].as_str().unwrap().is_empty(), "{b}");
    // The same status comes with the list of backups.
    let (code, listed) = operator(&server, Method::GET, "/v1/tenants/alpha/backups", None).await;
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed["status"]["lastBackup"], listed["items"][0]["id"]);
    let (code, _) = operator(
        &server,
        Method::GET,
        "/v1/tenants/nobody/backups/status",
        None,
    )
    .await;
    assert_eq!(code, 404);

    // /metrics: aggregate gauges, and a series for the stale tenant only (alpha may look
    // stale for a moment on a loaded machine, between its checkpoint and its next backup).
    let mut text = String::new();
    let stale = eventually(Duration::from_secs(30), async || {
        text = metrics(&server).await;
        gauge(&text, "warren_backup_tenants_stale") == Some(1.0)
            && text.contains("warren_backup_stale_seconds{tenant=\"broken\"}")
            && !text.contains("warren_backup_stale_seconds{tenant=\"alpha\"}")
            && gauge(&text, "warren_backup_tenants_failing") == Some(1.0)
    })
    .await;
    assert!(stale, "{text}");
    assert_eq!(gauge(&text, "warren_backup_enabled"), Some(1.0), "{text}");
    assert_eq!(
        gauge(&text, "warren_backup_tenants_backed_up"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        gauge(&text, "warren_backup_tenants_never_backed_up"),
        Some(1.0),
        "{text}"
    );
    assert!(
        gauge(&text, "warren_backup_oldest_success_age_seconds").is_some(),
        "{text}"
    );

    // Scheduled drills check alpha's latest backup; broken has none to drill.
    let drilled = eventually(Duration::from_secs(20), async || {
        let (_, body) = operator(
            &server,
            Method::GET,
            "/v1/backups/drills?tenant=alpha",
            None,
        )
        .await;
        body["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|d| d["kind"] == "drill" && d["status"] == "complete")
        })
    })
    .await;
    assert!(drilled, "no scheduled drill of alpha completed");
    let (code, drills) = operator(&server, Method::GET, "/v1/backups/drills?limit=500", None).await;
    assert_eq!(code, 200, "{drills}");
    assert!(drills["passed"].as_u64().unwrap() >= 1, "{drills}");
    assert_eq!(drills["failed"], 0, "{drills}");
    assert!(
        drills["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["slug"] == "alpha"),
        "{drills}"
    );
    let a = status(&server, "alpha").await;
    assert_eq!(a["lastDrillStatus"], "complete", "{a}");
    let text = metrics(&server).await;
    assert!(
        text.lines()
            .find_map(|l| l.strip_prefix("warren_backup_drills{result=\"ok\"} "))
            .is_some_and(|v| v.parse::<f64>().unwrap() >= 1.0),
        "{text}"
    );
    for bad in [
        "/v1/backups/drills?limit=x",
        "/v1/backups/drills?tenant=nobody",
    ] {
        let (code, body) = operator(&server, Method::GET, bad, None).await;
        assert!(code == 400 || code == 404, "{bad}: {code} {body}");
        assert!(body["message"].is_string(), "{body}");
    }
    let (code, _) = send(server.request(Method::GET, "localhost", "/v1/backups/drills")).await;
    assert_eq!(code, 401, "/v1/backups/drills without the operator token");
}

#[tokio::test]
async fn a_damaged_backup_fails_its_drill_and_shows_in_metrics() {
    let target = target();
    let Some(dir) = target.dir.clone() else {
        return;
    };
    let server = start(&target, &["--backup-every=0"]);
    tenant_with_notes(&server, "alpha").await;
    add_note(&server, "alpha", "one", None).await;
    let (code, made) = operator(&server, Method::POST, "/v1/tenants/alpha/backups", None).await;
    assert_eq!(code, 201, "{made}");
    let object = dir
        .join(made["tenantId"].as_str().unwrap())
        .join(made["id"].as_str().unwrap())
        .join("data.db.zst");
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    let (code, body) = operator(
        &server,
        Method::POST,
        "/v1/tenants/alpha/backups/verify",
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    let a = status(&server, "alpha").await;
    assert_eq!(a["lastDrillStatus"], "failed", "{a}");
    assert!(
        a["lastDrillError"].as_str().unwrap().contains("damaged"),
        "{a}"
    );
    let text = metrics(&server).await;
    assert_eq!(
        gauge(&text, "warren_backup_drill_tenants_failing"),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("warren_backup_drills{result=\"failed\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn the_cli_restores_in_place_only_when_no_server_serves_the_data() {
    let target = target();
    let mut server = start(&target, &["--backup-every=0"]);
    tenant_with_notes(&server, "alpha").await;
    add_note(&server, "alpha", "kept", None).await;
    let output = backup_cli(&server, &target, &["create", "alpha"]);
    assert!(output.status.success(), "{output:?}");
    // Not a terminal: no progress unless asked; only the note that the server holds the
    // tenant closed while its database is copied.
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "The server running on this data directory holds alpha closed meanwhile.",
        "{output:?}"
    );
    let made = String::from_utf8_lossy(&output.stdout).into_owned();
    let backup = made
        .strip_prefix("Backed up alpha as ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{made}"))
        .to_string();
    add_note(&server, "alpha", "later", None).await;

    // While the server runs, the CLI refuses and says how to do it.
    let output = backup_cli(&server, &target, &["restore", "alpha", "--in-place"]);
    assert!(!output.status.success(), "{output:?}");
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("/v1/tenants/alpha/backups/restore"),
        "{message}"
    );
    assert!(message.contains(&server.addr.to_string()), "{message}");
    assert_eq!(titles(&server, "alpha").await, ["kept", "later"]);
    // A second server cannot serve the same data directory either.
    let second = server.cli(&["serve", "--http", "127.0.0.1:0"]);
    assert!(!second.status.success(), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("in use"),
        "{second:?}"
    );

    // With the server stopped, the CLI swaps the tenant in place, with progress when asked
    // (the snapshot alone: "later" was shipped after it and a restore of the latest state would
    // bring it back).
    let _ = server.child.kill();
    let _ = server.child.wait();
    let output = backup_cli(
        &server,
        &target,
        &[
            "--progress",
            "restore",
            "alpha",
            "--in-place",
            "--backup",
            &backup,
        ],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("MiB"),
        "{output:?}"
    );
    let flags = target.serve_flags(&["--backup-every=0"]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    server = server.crash_and_restart(&flags);
    assert_eq!(titles(&server, "alpha").await, ["kept"]);
    let (status, _) = server.get(&host("alpha"), "/api/health").await;
    assert_eq!(status, 200);
}

/// Flags putting tenants' files in the platform's default bucket (the backup suite's S3).
fn file_bucket_flags() -> Option<Vec<String>> {
    let env = |n: &str| std::env::var(n).ok();
    Some(vec![
        format!("--s3-endpoint={}", env("WARREN_TEST_S3_ENDPOINT")?),
        format!("--s3-bucket={}", env("WARREN_TEST_S3_BUCKET")?),
        format!("--s3-access-key={}", env("WARREN_TEST_S3_ACCESS_KEY")?),
        format!("--s3-secret={}", env("WARREN_TEST_S3_SECRET")?),
    ])
}

async fn delete_note(server: &Server, slug: &str, token: &str, record: &Value) {
    let (code, body) = send(
        server
            .request(
                Method::DELETE,
                &host(slug),
                &format!(
                    "/api/collections/notes/records/{}",
                    record["id"].as_str().unwrap()
                ),
            )
            .header("Authorization", token),
    )
    .await;
    assert_eq!(code, 204, "{body}");
}

#[tokio::test]
#[ignore = "needs the S3 server that tests/suites/backup starts"]
async fn files_kept_in_s3_are_backed_up_and_put_back_by_restores() {
    let target = target();
    let bucket = file_bucket_flags().expect("WARREN_TEST_S3_* is not set: run tests/suites/backup");
    let mut extra: Vec<&str> = bucket.iter().map(String::as_str).collect();
    extra.push("--backup-every=0");
    let server = start(&target, &extra);
    let su = tenant_with_notes(&server, "alpha").await;
    let kept = add_note(&server, "alpha", "kept", Some(b"bytes in the bucket")).await;
    // The file is in the platform bucket, not on local disk.
    let (code, tenant) = operator(&server, Method::GET, "/v1/tenants/alpha", None).await;
    assert_eq!(code, 200);
    let storage = server
        .data_dir()
        .join("tenants")
        .join(tenant["id"].as_str().unwrap())
        .join("storage");
    let local_files = walkdir_count(&storage);
    assert_eq!(local_files, 0, "files went to local disk");

    let (code, made) = operator(&server, Method::POST, "/v1/tenants/alpha/backups", None).await;
    assert_eq!(code, 201, "{made}");
    let names: Vec<&str> = made["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"s3files"), "{made}");

    // Into a new slug: its files land under its own id in the bucket.
    let (code, restored) = operator(
        &server,
        Method::POST,
        "/v1/tenants/alpha/backups/restore",
        Some(serde_json::json!({ "to": "beta" })),
    )
    .await;
    assert_eq!(code, 201, "{restored}");
    assert_eq!(
        crate::backup::download(&server, "beta", &kept).await,
        (200, b"bytes in the bucket".to_vec())
    );
    // Deleting beta's record deletes beta's copy only; alpha keeps its file.
    delete_note(&server, "beta", &su, &kept).await;
    assert_eq!(
        crate::backup::download(&server, "alpha", &kept).await,
        (200, b"bytes in the bucket".to_vec())
    );

    // In place: the record and its file deleted from the bucket come back from the named
    // snapshot (without one, a restore brings back the latest shipped state, delete included).
    delete_note(&server, "alpha", &su, &kept).await;
    assert_eq!(
        crate::backup::download(&server, "alpha", &kept).await.0,
        404
    );
    let (code, body) = operator(
        &server,
        Method::POST,
        "/v1/tenants/alpha/backups/restore",
        Some(serde_json::json!({ "inPlace": true, "backup": made["id"] })),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(titles(&server, "alpha").await, ["kept"]);
    assert_eq!(
        crate::backup::download(&server, "alpha", &kept).await,
        (200, b"bytes in the bucket".to_vec())
    );
    // The drill checks the packed files too.
    let output = backup_cli(&server, &target, &["verify", "alpha"]);
    assert!(output.status.success(), "{output:?}");
}

fn walkdir_count(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                walkdir_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}
