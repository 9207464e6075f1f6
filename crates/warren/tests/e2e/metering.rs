//! Metering and quotas on the real server: exact usage for a known workload, what a crash
//! loses, request rate, storage and upload limits, realtime connection limits, plan changes and
//! suspension applied live, and the metrics text.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, TOKEN, eventually, operator, send};

const EMAIL: &str = "root@example.com";
const PASSWORD: &str = "root-password-1";
/// Flush interval of these tests' servers.
const INTERVAL: &str = "150ms";

/// The tenant's usage totals as of the last flush.
async fn totals(server: &Server, slug: &str) -> Value {
    let (status, body) = operator(
        server,
        Method::GET,
        &format!("/v1/tenants/{slug}/usage"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["totals"].clone()
}

/// Waits until the stored request count of `slug` is `requests`; returns the totals.
async fn settled(server: &Server, slug: &str, requests: u64) -> Value {
    let mut last = Value::Null;
    let held = eventually(Duration::from_secs(10), async || {
        last = totals(server, slug).await;
        last["requests"] == requests
    })
    .await;
    assert!(
        held,
        "usage of {slug} never reached {requests} requests: {last}"
    );
    last
}

/// What the tenant API was sent and answered, as counted by the client.
#[derive(Debug, Default, Clone, Copy)]
struct Traffic {
    requests: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Traffic {
    /// Sends `body` (JSON text) and counts both bodies; returns status and the parsed answer.
    async fn send(
        &mut self,
        request: reqwest::RequestBuilder,
        body: Option<String>,
    ) -> (u16, Value) {
        let request = match body {
            Some(body) => {
                self.bytes_in += body.len() as u64;
                request
                    .header("Content-Type", "application/json")
                    .body(body)
            }
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        // Counting keeps the response's length known to the client.
        let length = response.content_length();
        let bytes = response.bytes().await.unwrap();
        assert_eq!(length, Some(bytes.len() as u64));
        self.requests += 1;
        self.bytes_out += bytes.len() as u64;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// Creates tenant `slug` with a superuser and a `notes` collection anyone may list, view and
/// create in; returns the tenant traffic that took.
async fn tenant_with_notes(server: &Server, slug: &str) -> Traffic {
    assert!(server.cli(&["tenant", "create", slug]).status.success());
    assert!(
        server
            .cli(&["superuser", "upsert", slug, EMAIL, PASSWORD])
            .status
            .success()
    );
    let host = format!("{slug}.localhost");
    let mut traffic = Traffic::default();
    let login = json!({ "identity": EMAIL, "password": PASSWORD }).to_string();
    let (status, body) = traffic
        .send(
            server.request(
                Method::POST,
                &host,
                "/api/collections/_superusers/auth-with-password",
            ),
            Some(login),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let notes = json!({
        "name": "notes",
        "fields": [{"name": "title", "type": "text"}],
        "listRule": "", "viewRule": "", "createRule": "", "deleteRule": ""
    });
    let (status, body) = traffic
        .send(
            server
                .request(Method::POST, &host, "/api/collections")
                .header("Authorization", token),
            Some(notes.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    traffic
}

async fn create_note(server: &Server, slug: &str, title: &str) -> (u16, Value) {
    send(
        server
            .request(
                Method::POST,
                &format!("{slug}.localhost"),
                "/api/collections/notes/records",
            )
            .json(&json!({ "title": title })),
    )
    .await
}

async fn set_plan(server: &Server, slug: &str, plan: &str) {
    let (status, body) = operator(
        server,
        Method::PATCH,
        &format!("/v1/tenants/{slug}"),
        Some(json!({ "plan": plan })),
    )
    .await;
    assert_eq!((status, body["plan"].as_str()), (200, Some(plan)), "{body}");
}

async fn create_plan(server: &Server, plan: Value) {
    let (status, body) = operator(server, Method::POST, "/v1/plans", Some(plan)).await;
    assert_eq!(status, 201, "{body}");
}

fn as_u64(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test]
async fn usage_is_exact_for_a_known_workload() {
    let server = Server::start(&["--metering-interval", INTERVAL]);
    let mut traffic = tenant_with_notes(&server, "meter").await;

    // N creates with bodies of known size and N reads; every byte both ways is counted.
    let n = 25;
    for i in 0..n {
        let body = json!({ "title": format!("note number {i} {}", "x".repeat(i)) }).to_string();
        let create = server.request(
            Method::POST,
            "meter.localhost",
            "/api/collections/notes/records",
        );
        assert_eq!(traffic.send(create, Some(body)).await.0, 200);
        let list = server.request(
            Method::GET,
            "meter.localhost",
            "/api/collections/notes/records?perPage=1",
        );
        assert_eq!(traffic.send(list, None).await.0, 200);
    }
    // The stored totals reach exactly what the client sent and received (a flush may land
    // between a request being counted and its response body being sent, so poll).
    let mut after = Value::Null;
    let exact = eventually(Duration::from_secs(10), async || {
        after = totals(&server, "meter").await;
        after["requests"] == traffic.requests
            && after["bytesIn"] == traffic.bytes_in
            && after["bytesOut"] == traffic.bytes_out
    })
    .await;
    assert!(exact, "stored {after}, client counted {traffic:?}");
    assert_eq!(after["recordsWritten"], n as u64);
    assert!(as_u64(&after["storageBytes"]) > 0, "{after}");

    // The hourly row and the CLI say the same.
    let output = server.cli(&["usage", "meter"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let total = text.lines().find(|l| l.starts_with("total")).unwrap();
    assert_eq!(
        total.split('\t').nth(1),
        Some(traffic.requests.to_string().as_str())
    );

    // Bad bounds are refused in the envelope; a range in the past is empty.
    let (status, body) = operator(
        &server,
        Method::GET,
        "/v1/tenants/meter/usage?from=yesterday",
        None,
    )
    .await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (400, Some(400)),
        "{body}"
    );
    let (status, body) = operator(
        &server,
        Method::GET,
        "/v1/tenants/meter/usage?from=2001-01-01&to=2001-01-02",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["items"], json!([]));
}

#[tokio::test]
async fn a_crash_loses_at_most_one_flush_interval() {
    let flags = ["--metering-interval", "300ms"];
    let server = Server::start(&flags);
    assert!(server.cli(&["tenant", "create", "crashy"]).status.success());
    for _ in 0..20 {
        assert_eq!(server.get("crashy.localhost", "/api/health").await.0, 200);
    }
    settled(&server, "crashy", 20).await;

    // Counted after the last flush and lost to SIGKILL: at most one interval's worth.
    for _ in 0..15 {
        assert_eq!(server.get("crashy.localhost", "/api/health").await.0, 200);
    }
    let server = server.crash_and_restart(&flags);
    let kept = as_u64(&totals(&server, "crashy").await["requests"]);
    assert!((20..=35).contains(&kept), "{kept}");

    // Requests older than one interval are never lost.
    for _ in 0..10 {
        assert_eq!(server.get("crashy.localhost", "/api/health").await.0, 200);
    }
    settled(&server, "crashy", kept + 10).await;
    let server = server.crash_and_restart(&flags);
    assert_eq!(
        as_u64(&totals(&server, "crashy").await["requests"]),
        kept + 10
    );

    // Without waiting for the database to show them: requests made a few intervals before the
    // crash are stored, because every interval flushes.
    for _ in 0..10 {
        assert_eq!(server.get("crashy.localhost", "/api/health").await.0, 200);
    }
    // The behaviour under test: four intervals pass unobserved, and each one flushed.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let server = server.crash_and_restart(&flags);
    assert_eq!(
        as_u64(&totals(&server, "crashy").await["requests"]),
        kept + 20
    );
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_and_recovers_and_a_plan_change_lifts_it() {
    let server = Server::start(&["--metering-interval", INTERVAL]);
    assert!(server.cli(&["tenant", "create", "busy"]).status.success());
    create_plan(
        &server,
        json!({"name": "tight", "requestsPerSecond": 2, "requestBurst": 3}),
    )
    .await;
    set_plan(&server, "busy", "tight").await;

    for _ in 0..3 {
        assert_eq!(server.get("busy.localhost", "/api/health").await.0, 200);
    }
    let response = server
        .request(Method::GET, "busy.localhost", "/api/health")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 429);
    assert_eq!(body["data"], json!({}));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Too many requests")
    );

    // The bucket refills at 2 per second.
    assert!(
        eventually(Duration::from_secs(3), async || {
            server.get("busy.localhost", "/api/health").await.0 == 200
        })
        .await
    );

    // Raising the plan's rate applies at the next request, without a restart.
    let (status, body) = operator(
        &server,
        Method::PATCH,
        "/v1/plans/tight",
        Some(json!({"requestsPerSecond": 0})),
    )
    .await;
    assert_eq!(
        (status, body["requestsPerSecond"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    for _ in 0..30 {
        assert_eq!(server.get("busy.localhost", "/api/health").await.0, 200);
    }
}

#[tokio::test]
async fn over_storage_writes_fail_with_the_envelope_while_reads_work() {
    let server = Server::start(&["--metering-interval", INTERVAL]);
    let setup = tenant_with_notes(&server, "full").await;
    let (status, note) = create_note(&server, "full", "kept").await;
    assert_eq!(status, 200, "{note}");
    let usage = settled(&server, "full", setup.requests + 1).await;
    let stored = as_u64(&usage["storageBytes"]);
    assert!(stored > 10_000, "{usage}");

    create_plan(
        &server,
        json!({"name": "small", "storageBytes": stored / 2, "maxUploadBytes": 4096}),
    )
    .await;
    set_plan(&server, "full", "small").await;
    let (status, body) = create_note(&server, "full", "refused").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["status"], 403);
    assert!(
        body["message"].as_str().unwrap().contains("storage"),
        "{body}"
    );
    // Reads keep working.
    let (status, body) = server
        .get("full.localhost", "/api/collections/notes/records")
        .await;
    assert_eq!(
        (status, body["totalItems"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let path = format!(
        "/api/collections/notes/records/{}",
        note["id"].as_str().unwrap()
    );
    assert_eq!(server.get("full.localhost", &path).await.0, 200);

    // A larger plan lifts the limit at once; the upload limit still holds.
    let (status, _) = operator(
        &server,
        Method::PATCH,
        "/v1/plans/small",
        Some(json!({"storageBytes": stored * 100})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(create_note(&server, "full", "accepted").await.0, 200);
    let (status, body) = create_note(&server, "full", &"x".repeat(5000)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["status"], 413);
}

#[tokio::test]
async fn realtime_connections_are_limited_by_the_plan_and_metered() {
    let server = Server::start(&["--metering-interval", INTERVAL]);
    assert!(server.cli(&["tenant", "create", "live"]).status.success());
    create_plan(
        &server,
        json!({"name": "one-stream", "maxRealtimeConnections": 1}),
    )
    .await;
    set_plan(&server, "live", "one-stream").await;

    // Opens a stream; dropping the response closes it.
    let stream = || async {
        server
            .request(Method::GET, "live.localhost", "/api/realtime")
            .send()
            .await
            .unwrap()
    };
    let mut first = stream().await;
    assert_eq!(first.status(), 200);
    // The connect frame arrives, so the stream is open.
    assert!(first.chunk().await.unwrap().is_some());
    // The plan reaches the tenant's requests once the server's directory has it, a moment
    // after the operator call: a second stream opened before that is closed again.
    assert!(
        eventually(Duration::from_secs(5), async || stream().await.status()
            == 429)
        .await
    );
    let (status, body) = server.get("live.localhost", "/api/realtime").await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (429, Some(429)),
        "{body}"
    );

    drop(first);
    assert!(
        eventually(Duration::from_secs(5), async || stream().await.status()
            == 200)
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), async || {
            as_u64(&totals(&server, "live").await["realtimePeak"]) == 1
        })
        .await
    );
}

#[tokio::test]
async fn suspension_applies_live_from_the_api_and_the_cli() {
    let server = Server::start(&[]);
    for slug in ["sleepy", "awake", "other"] {
        assert!(server.cli(&["tenant", "create", slug]).status.success());
    }
    let (status, body) = operator(&server, Method::POST, "/v1/tenants/sleepy/suspend", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("suspended")),
        "{body}"
    );
    for path in ["/api/health", "/api/collections", "/api/nope"] {
        let (status, body) = server.get("sleepy.localhost", path).await;
        assert_eq!(
            (status, body["status"].as_u64()),
            (503, Some(503)),
            "{path}: {body}"
        );
    }
    assert_eq!(server.get("awake.localhost", "/api/health").await.0, 200);

    // Filters and paging of the tenant list.
    let (_, body) = operator(&server, Method::GET, "/v1/tenants?status=suspended", None).await;
    assert_eq!(body["totalItems"], 1);
    assert_eq!(body["items"][0]["slug"], "sleepy");
    let (_, body) = operator(&server, Method::GET, "/v1/tenants?perPage=2&page=2", None).await;
    assert_eq!(
        (body["totalItems"].as_u64(), body["totalPages"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(body["items"][0]["slug"], "sleepy");
    let (_, body) = operator(
        &server,
        Method::GET,
        "/v1/tenants?slugPrefix=aw&plan=default",
        None,
    )
    .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["slug"], "awake");
    let (status, _) = operator(&server, Method::GET, "/v1/tenants?page=x", None).await;
    assert_eq!(status, 400);

    let (status, _) = operator(&server, Method::POST, "/v1/tenants/sleepy/resume", None).await;
    assert_eq!(status, 200);
    assert_eq!(server.get("sleepy.localhost", "/api/health").await.0, 200);

    // The CLI writes the control database; the server notices without a restart.
    let output = server.cli(&["tenant", "suspend", "awake"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        eventually(Duration::from_secs(5), async || {
            server.get("awake.localhost", "/api/health").await.0 == 503
        })
        .await
    );
    assert!(server.cli(&["tenant", "resume", "awake"]).status.success());
    assert!(
        eventually(Duration::from_secs(5), async || {
            server.get("awake.localhost", "/api/health").await.0 == 200
        })
        .await
    );
    let output = server.cli(&["tenant", "plan", "awake", "free"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        !server
            .cli(&["tenant", "plan", "awake", "nope"])
            .status
            .success()
    );
    let output = server.cli(&["plan", "list"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("\nfree\t"));
}

#[tokio::test]
async fn metrics_need_the_operator_token_and_bound_tenant_series() {
    let server = Server::start(&[]);
    assert!(server.cli(&["tenant", "create", "seen"]).status.success());
    assert_eq!(server.get("seen.localhost", "/api/health").await.0, 200);
    let response = server
        .request(Method::GET, "localhost", "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let text = server
        .request(Method::GET, "localhost", "/metrics")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "warren_process_resident_memory_bytes ",
        "warren_process_open_fds ",
        "warren_open_tenants 1\n",
        "warren_tenant_requests_total{status=\"2xx\"} 1\n",
        "warren_tenant_request_duration_seconds_count 1\n",
        "warren_tenant_requests{tenant=\"seen\"} 1\n",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
}
