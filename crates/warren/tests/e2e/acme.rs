//! Certificates from a real ACME CA (Pebble with real HTTP-01 and TLS-ALPN-01 validation and
//! `pebble-challtestsrv` as DNS, started by `tests/suites/acme`, which passes their addresses in
//! `WARREN_TEST_ACME_*`). Ignored in the plain test run; the suite runs them one at a time with
//! `--ignored` (they share the validation ports) and they fail when the CA is not there.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::tls::{DOMAIN, Fetched, TlsServer, handshake, https_send};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run tests/suites/acme"))
}

/// The roots of both test CAs (PEM).
fn root() -> Vec<u8> {
    let mut roots = std::fs::read(env("WARREN_TEST_ACME_ROOT")).unwrap();
    roots.extend(std::fs::read(env("WARREN_TEST_ACME_SHORT_ROOT")).unwrap());
    roots
}

/// Starts Warren on the ports the CA validates, against `directory`, with `extra` flags.
fn start(data: &Path, directory: &str, extra: &[&str]) -> TlsServer {
    let http = format!("127.0.0.1:{}", env("WARREN_TEST_ACME_HTTP_PORT"));
    let https = format!("127.0.0.1:{}", env("WARREN_TEST_ACME_HTTPS_PORT"));
    let (ca_root, dns) = (env("WARREN_TEST_ACME_CA_ROOT"), env("WARREN_TEST_DNS"));
    let mut args = vec![
        "--http",
        &http,
        "--https",
        &https,
        "--acme-directory",
        directory,
        "--acme-ca-root",
        &ca_root,
        "--dns-resolver",
        &dns,
        "--acme-renew-check",
        "1",
        "--acme-retry-base",
        "1",
    ];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TlsServer::start(data, &args)
}

/// Polls `GET path` on `host` over HTTPS until it answers 200 (the first handshakes ask for
/// the certificate and fail until it is issued).
async fn wait_served(server: &TlsServer, root: &[u8], host: &str, limit: Duration) -> Fetched {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        let path = if host == DOMAIN {
            "/v1/health"
        } else {
            "/api/health"
        };
        match server.get(root, host, path).await {
            Ok(fetched) if fetched.status == 200 => return fetched,
            Ok(fetched) => last = format!("{} {}", fetched.status, fetched.body),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{host} was never served over HTTPS: {last}");
}

/// An operator API call over HTTPS on the platform host.
async fn operator(
    server: &TlsServer,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let fetched = https_send(server.https, &root(), DOMAIN, method, path, body.as_ref())
        .await
        .unwrap();
    let value = serde_json::from_str(&fetched.body).unwrap_or(Value::Null);
    (fetched.status, value)
}

/// The operator's view of `host`'s certificate.
async fn certificate(server: &TlsServer, host: &str) -> Option<Value> {
    let (status, body) = operator(server, "GET", "/v1/certificates", None).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["host"] == host)
        .cloned()
}

/// Orders the CA has received (from Pebble's log).
fn ca_orders() -> usize {
    std::fs::read_to_string(env("WARREN_TEST_PEBBLE_LOG"))
        .unwrap()
        .matches("Added order")
        .count()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the ACME CA that tests/suites/acme starts"]
async fn http01_issues_for_a_new_tenant_serves_it_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let directory = env("WARREN_TEST_ACME_DIRECTORY");
    let flags = ["--acme-challenges", "http-01"];
    let server = start(dir.path(), &directory, &flags);
    let root = root();
    wait_served(&server, &root, DOMAIN, Duration::from_secs(60)).await;

    // A tenant created while Warren runs gets its certificate on its first handshakes.
    let (status, body) = operator(
        &server,
        "POST",
        "/v1/tenants",
        Some(json!({ "slug": "alpha" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://alpha.warren.test")
    );
    let host = "alpha.warren.test";
    let fetched = wait_served(&server, &root, host, Duration::from_secs(60)).await;
    assert!(fetched.body.contains("API is healthy"), "{}", fetched.body);
    let cert = certificate(&server, host)
        .await
        .expect("no status for the tenant host");
    assert_eq!(cert["challenge"], "http-01", "{cert}");
    assert!(
        cert["issuer"].as_str().unwrap().contains("Pebble"),
        "{cert}"
    );
    assert!(cert["notAfter"].as_i64().unwrap() > cert["nextRenewal"].as_i64().unwrap());
    assert_eq!(cert["lastError"], "");
    let key_mode = std::fs::metadata(dir.path().join("certs").join(host).join("key.pem"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(key_mode, 0o600);
    let account = std::fs::read_dir(dir.path().join("acme"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(&account.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // Plain HTTP redirects to HTTPS, except ACME challenges.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = plain
        .get(format!("http://{}/api/health", server.http))
        .header("host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("https://{host}:{}/api/health", server.https.port()).as_str()
    );
    let response = plain
        .get(format!(
            "http://{}/.well-known/acme-challenge/none",
            server.http
        ))
        .header("host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // The JS SDK works over HTTPS.
    let out = server.cli(&[
        "superuser",
        "upsert",
        "alpha",
        "root@example.com",
        "root-password-1",
    ]);
    assert!(out.status.success());
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk");
    if sdk.join("node_modules/pocketbase").exists() {
        let output = std::process::Command::new("node")
            .arg(sdk.join("https-smoke.mjs"))
            .env("PB_URL", format!("https://{host}:{}", server.https.port()))
            .env("PB_SUPERUSER_EMAIL", "root@example.com")
            .env("PB_SUPERUSER_PASSWORD", "root-password-1")
            .env("NODE_EXTRA_CA_CERTS", env("WARREN_TEST_ACME_ROOT"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    } else {
        panic!("tests/sdk/node_modules is missing: tests/suites/acme installs it");
    }

    // A restart serves the stored certificates without a new order.
    let orders = ca_orders();
    drop(server);
    let server = start(dir.path(), &directory, &flags);
    let fetched = server.get(&root, host, "/api/health").await.unwrap();
    assert_eq!(fetched.status, 200);
    server.get(&root, DOMAIN, "/v1/health").await.unwrap();
    // The behaviour under test: no order reaches the CA within two seconds of serving.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ca_orders(), orders, "a restart placed new orders");
}

#[tokio::test]
#[ignore = "needs the ACME CA that tests/suites/acme starts"]
async fn tls_alpn01_issues_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let directory = env("WARREN_TEST_ACME_DIRECTORY");
    let server = start(
        dir.path(),
        &directory,
        &["--acme-challenges", "tls-alpn-01"],
    );
    assert!(server.cli(&["tenant", "create", "beta"]).status.success());
    let root = root();
    let host = "beta.warren.test";
    wait_served(&server, &root, host, Duration::from_secs(60)).await;
    let cert = certificate(&server, host).await.unwrap();
    assert_eq!(cert["challenge"], "tls-alpn-01", "{cert}");
}

#[tokio::test]
#[ignore = "needs the ACME CA that tests/suites/acme starts"]
async fn a_custom_domain_is_verified_issued_served_and_dropped_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let directory = env("WARREN_TEST_ACME_DIRECTORY");
    let server = start(dir.path(), &directory, &[]);
    let root = root();
    wait_served(&server, &root, DOMAIN, Duration::from_secs(60)).await;
    assert!(server.cli(&["tenant", "create", "gamma"]).status.success());
    let out = server.cli(&[
        "superuser",
        "upsert",
        "gamma",
        "root@example.com",
        "root-password-1",
    ]);
    assert!(out.status.success());
    let domain = "app.customer-example.com";

    let (status, added) = operator(
        &server,
        "POST",
        "/v1/tenants/gamma/domains",
        Some(json!({ "domain": "App.Customer-Example.com" })),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["domain"], domain);
    assert_eq!(added["status"], "pending");
    assert_eq!(added["verification"]["name"], format!("_warren.{domain}"));
    let token = added["verification"]["value"].as_str().unwrap().to_string();
    let (status, _) = operator(
        &server,
        "POST",
        "/v1/tenants/gamma/domains",
        Some(json!({ "domain": "x" })),
    )
    .await;
    assert_eq!(status, 400);

    // Pending: no handshake, no order.
    let orders = ca_orders();
    assert!(handshake(server.https, &root, domain).await.is_err());
    let (status, checked) = operator(
        &server,
        "POST",
        &format!("/v1/tenants/gamma/domains/{domain}/verify"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["status"], "pending");
    assert!(
        checked["lastError"].as_str().unwrap().contains("TXT"),
        "{checked}"
    );
    // The behaviour under test: a pending domain places no order meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ca_orders(), orders);

    // The TXT record appears in DNS: verified, issued, served by the tenant.
    let set = reqwest::Client::new()
        .post(format!("{}/set-txt", env("WARREN_TEST_DNS_MANAGEMENT")))
        .json(&json!({ "host": format!("_warren.{domain}."), "value": token }))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
    let (status, checked) = operator(
        &server,
        "POST",
        &format!("/v1/tenants/gamma/domains/{domain}/verify"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["status"], "verified", "{checked}");
    wait_served(&server, &root, domain, Duration::from_secs(60)).await;
    let login = https_send(
        server.https,
        &root,
        domain,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        Some(&json!({ "identity": "root@example.com", "password": "root-password-1" })),
    )
    .await
    .unwrap();
    assert_eq!(
        login.status, 200,
        "the custom domain did not reach gamma: {}",
        login.body
    );
    let (_, listed) = operator(&server, "GET", "/v1/tenants/gamma/domains", None).await;
    let item = &listed["items"][0];
    assert_eq!(item["status"], "verified");
    assert!(
        item["certificate"]["notAfter"].as_i64().unwrap() > 0,
        "{item}"
    );
    assert!(!listed.to_string().contains("PRIVATE KEY"));

    // Deleted: the very next handshake fails.
    let (status, _) = operator(
        &server,
        "DELETE",
        &format!("/v1/tenants/gamma/domains/{domain}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert!(handshake(server.https, &root, domain).await.is_err());
    let (_, listed) = operator(&server, "GET", "/v1/tenants/gamma/domains", None).await;
    assert_eq!(listed["totalItems"], 0);
}

#[tokio::test]
#[ignore = "needs the ACME CA that tests/suites/acme starts"]
async fn a_flood_of_unknown_names_places_no_order_and_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let directory = env("WARREN_TEST_ACME_DIRECTORY");
    let server = start(dir.path(), &directory, &[]);
    let root = root();
    wait_served(&server, &root, DOMAIN, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let orders = ca_orders();
    let (_, before) = operator(&server, "GET", "/v1/certificates", None).await;
    let rss_before = rss_kib(server.child.id());
    let addr = server.https;
    let mut tasks = Vec::new();
    for worker in 0..50 {
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            for i in 0..20 {
                let n: u64 = rand_u64(worker * 1000 + i);
                let name = match i % 3 {
                    0 => format!("t{n:x}.warren.test"),
                    1 => format!("x{n:x}.example.org"),
                    _ => format!("a.b{n:x}.warren.test"),
                };
                if handshake(addr, &root, &name).await.is_err() {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for task in tasks {
        failed += task.await.unwrap();
    }
    assert_eq!(failed, 1000, "a random name got a certificate");
    // The behaviour under test: no order for a random name arrives late either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ca_orders(), orders, "random names reached the CA");
    let (_, after) = operator(&server, "GET", "/v1/certificates", None).await;
    assert_eq!(after["totals"]["orders"], before["totals"]["orders"]);
    assert_eq!(after["totalItems"], before["totalItems"]);
    let grown = rss_kib(server.child.id()).saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "memory grew by {grown} KiB");
    // Still serving.
    assert_eq!(
        server
            .get(&root, DOMAIN, "/v1/health")
            .await
            .unwrap()
            .status,
        200
    );
}

fn rand_u64(seed: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (seed ^ nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[tokio::test]
#[ignore = "needs the ACME CA that tests/suites/acme starts"]
async fn short_lived_certificates_renew_while_requests_flow() {
    let dir = tempfile::tempdir().unwrap();
    let directory = env("WARREN_TEST_ACME_SHORT_DIRECTORY");
    let root = root();
    let server = start(dir.path(), &directory, &[]);
    assert!(server.cli(&["tenant", "create", "delta"]).status.success());
    let host = "delta.warren.test";
    wait_served(&server, &root, host, Duration::from_secs(60)).await;
    let first = std::fs::read(dir.path().join("certs").join(host).join("cert.pem")).unwrap();
    // 30 s certificates renew after about 20 s: keep making requests on fresh connections
    // for 40 s; every one must succeed, and the certificate must have been replaced.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut requests = 0;
    while Instant::now() < deadline {
        let fetched = server.get(&root, host, "/api/health").await;
        match fetched {
            Ok(f) if f.status == 200 => requests += 1,
            other => panic!("request {requests} failed during renewal: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = std::fs::read(dir.path().join("certs").join(host).join("cert.pem")).unwrap();
    assert_ne!(first, now, "the certificate was never renewed");
    let cert = certificate(&server, host).await.unwrap();
    assert!(cert["renewals"].as_i64().unwrap() >= 1, "{cert}");
    assert!(requests > 100);
}

#[tokio::test]
#[ignore = "needs the ACME CA that tests/suites/acme starts"]
async fn a_failing_validation_or_a_dead_ca_leaves_other_hosts_serving_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let directory = env("WARREN_TEST_ACME_DIRECTORY");
    let server = start(dir.path(), &directory, &[]);
    let root = root();
    assert!(server.cli(&["tenant", "create", "good"]).status.success());
    assert!(server.cli(&["tenant", "create", "doomed"]).status.success());
    wait_served(&server, &root, "good.warren.test", Duration::from_secs(60)).await;

    // doomed.warren.test resolves elsewhere for the CA: every validation fails.
    let added = reqwest::Client::new()
        .post(format!("{}/add-a", env("WARREN_TEST_DNS_MANAGEMENT")))
        .json(&json!({ "host": "doomed.warren.test.", "addresses": ["127.0.0.2"] }))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    let deadline = Instant::now() + Duration::from_secs(12);
    while Instant::now() < deadline {
        assert!(
            handshake(server.https, &root, "doomed.warren.test")
                .await
                .is_err()
        );
        let fetched = server
            .get(&root, "good.warren.test", "/api/health")
            .await
            .unwrap();
        assert_eq!(fetched.status, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cert = certificate(&server, "doomed.warren.test").await.unwrap();
    let (orders, failures) = (
        cert["orders"].as_i64().unwrap(),
        cert["failures"].as_i64().unwrap(),
    );
    assert!(failures >= 1, "{cert}");
    assert!(!cert["lastError"].as_str().unwrap().is_empty(), "{cert}");
    // ~120 handshakes asked; backoff and the failed-validation limit keep the CA's load small.
    assert!(orders <= 6, "{orders} orders for a failing host: {cert}");
    assert!(cert["nextRenewal"].as_i64().unwrap() > now_unix(), "{cert}");

    // The CA goes away: stored certificates keep serving, new hosts fail and back off.
    drop(server);
    let server = start(dir.path(), "https://127.0.0.1:9/dir", &[]);
    assert!(server.cli(&["tenant", "create", "later"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let fetched = server
            .get(&root, "good.warren.test", "/api/health")
            .await
            .unwrap();
        assert_eq!(fetched.status, 200);
        assert!(
            handshake(server.https, &root, "later.warren.test")
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cert = certificate(&server, "later.warren.test").await.unwrap();
    let failures = cert["failures"].as_i64().unwrap();
    assert!(
        (1..=4).contains(&failures),
        "{failures} attempts in 6 s: {cert}"
    );
    assert!(
        cert["lastError"].as_str().unwrap().contains("ACME"),
        "{cert}"
    );
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
