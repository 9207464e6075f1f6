//! A node's death and the backup target: after kill -9 of a server under concurrent writers,
//! the tenant's latest state is restored from the target into a fresh data directory (as a
//! cluster's new owner does). With synchronous shipping every acknowledged write is there;
//! with asynchronous shipping the writes lost are counted, printed, and must all have been
//! acknowledged within the last shipping interval before the kill. A synchronous write the
//! target does not take is a 503 and stays committed on the node.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::backup::{Target, host, start, tenant_id, tenant_with_notes, wal_generation};
use crate::support::{Server, operator};

/// Concurrent writers.
const WRITERS: usize = 8;

/// The test's target as the backup crate opens it.
fn backup_target(target: &Target) -> warren_backup::Target {
    if let Some(dir) = &target.dir {
        return warren_backup::Target::Dir(dir.clone());
    }
    let url = target
        .flags
        .iter()
        .find_map(|f| f.strip_prefix("--backup-url="))
        .unwrap();
    let env = |n: &str| std::env::var(n).unwrap_or_default();
    let settings = warren_backup::S3Settings {
        endpoint: env("WARREN_TEST_S3_ENDPOINT"),
        region: "us-east-1".into(),
        access_key: env("WARREN_TEST_S3_ACCESS_KEY"),
        secret: env("WARREN_TEST_S3_SECRET"),
    };
    warren_backup::Target::from_url(url, &settings).unwrap()
}

/// Acknowledged writes: title and when the answer came.
type Acked = Arc<Mutex<Vec<(String, Instant)>>>;

/// Starts `WRITERS` clients creating notes in `slug` until the server stops answering.
fn writers(server: &Server, slug: &str) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let acked: Acked = Arc::default();
    let handles = (0..WRITERS)
        .map(|w| {
            let (addr, client, acked) = (server.addr, server.client.clone(), acked.clone());
            let host = format!("{}:{}", host(slug), addr.port());
            tokio::spawn(async move {
                for i in 0.. {
                    let title = format!("w{w}-{i:05}");
                    let sent = client
                        .post(format!("http://{addr}/api/collections/notes/records"))
                        .header(reqwest::header::HOST, &host)
                        .json(&json!({ "title": title }))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            acked.lock().unwrap().push((title, Instant::now()))
                        }
                        Ok(r) if r.status() == 503 => continue,
                        _ => break,
                    }
                }
            })
        })
        .collect();
    (acked, handles)
}

/// Runs writers against a tenant on a plan with `shipping` until `enough` says so (given the
/// acknowledged writes and how long the writers have run), kills the
/// server with SIGKILL, restores the latest state from the target into a fresh data
/// directory, and returns the acknowledged writes, the moment of the kill and the titles
/// restored.
async fn write_kill_restore(
    shipping: &str,
    flags: &[&str],
    enough: impl Fn(&[(String, Instant)], Duration) -> bool,
) -> (Vec<(String, Instant)>, Instant, Vec<String>) {
    let target = crate::backup::target();
    let mut server = start(&target, flags);
    let slug = format!("kill-{shipping}");
    tenant_with_notes(&server, &slug).await;
    let (status, plan) = operator(
        &server,
        Method::POST,
        "/v1/plans",
        Some(json!({ "name": shipping, "shipping": shipping })),
    )
    .await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["shipping"], shipping);
    let (status, body) = operator(
        &server,
        Method::PATCH,
        &format!("/v1/tenants/{slug}"),
        Some(json!({ "plan": shipping })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The chain the writes extend exists (its snapshot was taken at the first opening).
    wal_generation(&server, &slug).await;
    let id = tenant_id(&server, &slug).await;

    let (acked, handles) = writers(&server, &slug);
    let writing = Instant::now();
    let deadline = writing + Duration::from_secs(60);
    while !enough(&acked.lock().unwrap(), writing.elapsed()) {
        assert!(Instant::now() < deadline, "the writers stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = server.child.kill();
    let killed = Instant::now();
    let _ = server.child.wait();
    for handle in handles {
        handle.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let fresh = tempfile::tempdir().unwrap();
    let root = fresh.path().join("tenants");
    let stored = backup_target(&target);
    // What the target held before the restore adds a chain, shown if the restore falls short.
    let chains = describe_chains(&stored, &id).await;
    let handoff = warren_tenant::handoff::restore_latest(&root, &id, &stored, 1)
        .await
        .unwrap();
    assert_eq!(handoff.chain.ownership_generation, 1);
    let db = warren_tenant::tenant_dir(&root, &id).join("data.db");
    let conn = warren_store::sql::Connection::open(&db).unwrap();
    let mut titles = match conn.prepare("SELECT title FROM notes") {
        Ok(statement) => statement,
        Err(e) => panic!(
            "the restore from {} ({} transactions replayed) has no notes: {e}\n{chains}",
            handoff.from.id, handoff.transactions
        ),
    };
    let restored: Vec<String> = titles
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (acked, killed, restored)
}

/// Tenant `id`'s snapshots in `target` (id, moment held, WAL start, ownership) and its keys.
async fn describe_chains(target: &warren_backup::Target, id: &str) -> String {
    let mut out = String::from("snapshots:\n");
    for m in warren_backup::restore::list(target, id)
        .await
        .unwrap_or_default()
    {
        let wal = m.wal.map(|w| (w.salt1, w.frames, w.time_ms));
        out += &format!(
            "  {} created {} finished {} wal {wal:?} ownership {}\n",
            m.id, m.created, m.finished, m.ownership_generation
        );
    }
    out += "keys:\n";
    for key in target.list(&format!("{id}/")).await.unwrap_or_default() {
        out += &format!("  {key}\n");
    }
    out
}

#[tokio::test]
async fn synchronous_shipping_loses_no_acknowledged_write_when_the_node_dies() {
    const N: usize = 200;
    let (acked, _, restored) = write_kill_restore("sync", &[], |acked, _| acked.len() >= N).await;
    assert!(acked.len() >= N, "{}", acked.len());
    let restored: std::collections::HashSet<_> = restored.into_iter().collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|(title, _)| !restored.contains(title))
        .collect();
    println!(
        "sync shipping: {} acknowledged writes, {} lost after kill -9",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}

#[tokio::test]
async fn asynchronous_shipping_loses_at_most_the_last_intervals_writes() {
    let interval = Duration::from_secs(1);
    // Writes for 6 s: those acknowledged before the last interval plus 3 s (one shipping pass
    // and its upload, with slack for a loaded machine) must all be restored.
    let (acked, killed, restored) =
        write_kill_restore("async", &["--backup-wal-every=1s"], |_, writing| {
            writing > Duration::from_secs(6)
        })
        .await;
    let restored: std::collections::HashSet<_> = restored.into_iter().collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|(title, _)| !restored.contains(title))
        .collect();
    let window = interval + Duration::from_secs(3);
    let in_window = acked
        .iter()
        .filter(|(_, at)| killed.duration_since(*at) <= window)
        .count();
    println!(
        "async shipping (interval {interval:?}): {} acknowledged writes, {} lost after kill -9 \
         ({in_window} acknowledged in the last {window:?})",
        acked.len(),
        lost.len()
    );
    assert!(acked.len() > 50, "too few writes: {}", acked.len());
    assert!(in_window < acked.len(), "no write before the window");
    for (title, at) in &lost {
        let before = killed.duration_since(*at);
        assert!(
            before <= window,
            "{title} was acknowledged {before:?} before the kill and lost"
        );
    }
}

/// With synchronous shipping and a target that stops taking objects, a write is answered 503
/// (PocketBase's envelope) after the bounded wait: it is committed on the node, not
/// acknowledged. Once the target is back, the pending commit ships and writes are acknowledged
/// again.
#[tokio::test]
async fn a_synchronous_write_the_target_does_not_take_is_a_503_and_stays_committed() {
    let target = crate::backup::target();
    // A directory target only: it is broken by putting a file in its place.
    let Some(dir) = target.dir.clone() else {
        return;
    };
    let server = start(&target, &[]);
    let slug = "sync-down";
    tenant_with_notes(&server, slug).await;
    // The tenant's own setting over its plan's (the default plan ships asynchronously).
    let (status, body) = operator(
        &server,
        Method::PATCH,
        &format!("/v1/tenants/{slug}"),
        Some(json!({ "shipping": "fast" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = operator(
        &server,
        Method::PATCH,
        &format!("/v1/tenants/{slug}"),
        Some(json!({ "shipping": "sync" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limits"]["shipping"], "sync", "{body}");
    assert_eq!(body["plan"], "default", "{body}");
    wal_generation(&server, slug).await;
    // The server's wait (10 s) is the client's default timeout: this one waits longer.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let create = async |title: &str| {
        crate::support::send(
            client
                .post(format!(
                    "http://{}/api/collections/notes/records",
                    server.addr
                ))
                .header(
                    reqwest::header::HOST,
                    format!("{}:{}", host(slug), server.addr.port()),
                )
                .json(&json!({ "title": title })),
        )
        .await
    };
    let (status, body) = create("shipped").await;
    assert_eq!(status, 200, "{body}");

    let away = dir.with_extension("away");
    std::fs::rename(&dir, &away).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let asked = Instant::now();
    let (status, body) = create("unacknowledged").await;
    let waited = asked.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], 503);
    assert!(
        body["message"].as_str().unwrap().contains("backup target"),
        "{body}"
    );
    assert!(body["data"].is_object(), "{body}");
    assert!(waited >= Duration::from_secs(9), "{waited:?}");
    // Committed on the node all the same.
    let (status, list) = server
        .get(
            &host(slug),
            "/api/collections/notes/records?filter=(title='unacknowledged')",
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["totalItems"], 1, "{list}");

    // The target is back: the shipper's retry ships the pending commit, and writes are
    // acknowledged again.
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&away, &dir).unwrap();
    let (status, body) = create("after").await;
    assert_eq!(status, 200, "{body}");

    // Back to the plan's mode.
    let (status, body) = operator(
        &server,
        Method::PATCH,
        &format!("/v1/tenants/{slug}"),
        Some(json!({ "shipping": "plan" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limits"]["shipping"], "async", "{body}");
}
