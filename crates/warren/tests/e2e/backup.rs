//! Backups end to end: a tenant restored into a new slug is the same tenant through the API
//! (records, files, users and their old tokens), in-place restores, damaged backups refused
//! whole, a backup killed mid-upload never listed, writes flowing during a snapshot, and the
//! schedule with retention.
//!
//! The target is a local directory by default; `tests/suites/backup` runs the same tests
//! against SeaweedFS by setting `WARREN_TEST_S3_*`, including the heavy and timing-sensitive
//! ones that the plain test run leaves out (the timing one alone, so other tests do not skew it).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::files::multipart;
use crate::support::{Server, TOKEN, eventually, operator, send};

/// `serve` flags of tests that count and damage snapshots: no WAL shipping, so no snapshot is
/// taken on a tenant's first opening to start its WAL generation.
const SNAPSHOTS_ONLY: &[&str] = &["--backup-wal-every=0"];

/// Where this test's backups go: flags for `serve` and for `warren backup`.
pub(crate) struct Target {
    pub(crate) flags: Vec<String>,
    /// The local directory (file targets only), for damaging objects.
    pub(crate) dir: Option<PathBuf>,
    _keep: Option<tempfile::TempDir>,
}

pub(crate) fn target() -> Target {
    match std::env::var("WARREN_TEST_S3_ENDPOINT") {
        Ok(endpoint) => {
            let env = |n: &str| std::env::var(n).unwrap_or_else(|_| panic!("{n} is not set"));
            let prefix = format!("backups-{:016x}", rand_u64());
            Target {
                flags: vec![
                    format!(
                        "--backup-url=s3://{}/{prefix}",
                        env("WARREN_TEST_S3_BUCKET")
                    ),
                    format!("--backup-s3-endpoint={endpoint}"),
                    format!(
                        "--backup-s3-access-key={}",
                        env("WARREN_TEST_S3_ACCESS_KEY")
                    ),
                    format!("--backup-s3-secret={}", env("WARREN_TEST_S3_SECRET")),
                ],
                dir: None,
                _keep: None,
            }
        }
        Err(_) => {
            let dir = tempfile::tempdir().unwrap();
            Target {
                flags: vec![format!("--backup-url=file://{}", dir.path().display())],
                dir: Some(dir.path().to_path_buf()),
                _keep: Some(dir),
            }
        }
    }
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    t ^ (std::process::id() as u64).rotate_left(32)
}

impl Target {
    pub(crate) fn serve_flags(&self, extra: &[&str]) -> Vec<String> {
        let mut flags = self.flags.clone();
        flags.extend(extra.iter().map(|s| s.to_string()));
        flags
    }
}

pub(crate) fn start(target: &Target, extra: &[&str]) -> Server {
    let flags = target.serve_flags(extra);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start(&flags)
}

/// Runs `warren backup <args>` with the target's flags.
pub(crate) fn backup_cli(server: &Server, target: &Target, args: &[&str]) -> std::process::Output {
    let mut all = vec!["backup"];
    all.extend(target.flags.iter().map(String::as_str));
    all.extend(args);
    server.cli(&all)
}

pub(crate) fn host(slug: &str) -> String {
    format!("{slug}.localhost")
}

/// Tenant `slug` with collection `notes` (text + file) and a superuser; returns its token.
pub(crate) async fn tenant_with_notes(server: &Server, slug: &str) -> String {
    let token = server.tenant_with_superuser(slug).await;
    let (status, body) = send(
        server
            .request(Method::POST, &host(slug), "/api/collections")
            .header("Authorization", &token)
            .json(&json!({
                "name": "notes",
                "listRule": "", "viewRule": "", "createRule": "",
                "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 100000}
                ]
            })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    token
}

pub(crate) async fn add_note(
    server: &Server,
    slug: &str,
    title: &str,
    file: Option<&[u8]>,
) -> Value {
    let files: Vec<(&str, &str, &[u8])> = file.map(|f| ("doc", "doc.txt", f)).into_iter().collect();
    let (content_type, body) = multipart(&[("title", title)], &files);
    let (status, record) = send(
        server
            .request(Method::POST, &host(slug), "/api/collections/notes/records")
            .header("Content-Type", content_type)
            .body(body),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    record
}

pub(crate) async fn titles(server: &Server, slug: &str) -> Vec<String> {
    // Every page: a busy tenant holds more notes than one page.
    let mut all = Vec::new();
    for page in 1.. {
        let (status, body) = server
            .get(
                &host(slug),
                &format!("/api/collections/notes/records?sort=title&perPage=500&page={page}"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().unwrap();
        all.extend(
            items
                .iter()
                .map(|r| r["title"].as_str().unwrap().to_string()),
        );
        if items.len() < 500 {
            break;
        }
    }
    all
}

pub(crate) async fn download(server: &Server, slug: &str, record: &Value) -> (u16, Vec<u8>) {
    let path = format!(
        "/api/files/notes/{}/{}",
        record["id"].as_str().unwrap(),
        record["doc"].as_str().unwrap()
    );
    server.download(&host(slug), &path).await
}

#[tokio::test]
async fn a_tenant_restored_into_a_new_slug_is_the_same_through_the_api() {
    let target = target();
    let server = start(&target, SNAPSHOTS_ONLY);
    let su = tenant_with_notes(&server, "alpha").await;
    let first = add_note(&server, "alpha", "first", Some(b"hello file")).await;
    add_note(&server, "alpha", "second", None).await;
    let (status, user) = send(
        server
            .request(
                Method::POST,
                &host("alpha"),
                "/api/collections/users/records",
            )
            .header("Authorization", &su)
            .json(&json!({
                "email": "u@example.com", "password": "user-password-1",
                "passwordConfirm": "user-password-1", "name": "U"
            })),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    let (status, login) = send(
        server
            .request(
                Method::POST,
                &host("alpha"),
                "/api/collections/users/auth-with-password",
            )
            .json(&json!({ "identity": "u@example.com", "password": "user-password-1" })),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let user_token = login["token"].as_str().unwrap().to_string();
    // The tenant's static site is part of what a restore brings back.
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "<p>alpha site</p>").unwrap();
    let out = server.cli(&[
        "tenant",
        "deploy",
        "alpha",
        "--public",
        site.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");

    let (status, made) = operator(&server, Method::POST, "/v1/tenants/alpha/backups", None).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["counts"]["notes"], 2);
    let (status, listed) = operator(&server, Method::GET, "/v1/tenants/alpha/backups", None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["totalItems"], 1);
    assert_eq!(listed["items"][0]["id"], made["id"]);
    assert_eq!(listed["status"]["lastStatus"], "complete");

    let (status, restored) = operator(
        &server,
        Method::POST,
        "/v1/tenants/alpha/backups/restore",
        Some(json!({ "to": "beta" })),
    )
    .await;
    assert_eq!(status, 201, "{restored}");
    assert_eq!(restored["slug"], "beta");
    assert_ne!(restored["id"], made["tenantId"]);
    let (status, page) = server.download(&host("beta"), "/").await;
    assert_eq!((status, page.as_slice()), (200, &b"<p>alpha site</p>"[..]));

    // Same records (ids, fields, timestamps), same collections, same files.
    for path in [
        "/api/collections/notes/records?sort=title",
        "/api/collections/users/records",
        "/api/collections?sort=name&perPage=100",
    ] {
        let (_, a) = send(
            server
                .request(Method::GET, &host("alpha"), path)
                .header("Authorization", &su),
        )
        .await;
        let (status, b) = send(
            server
                .request(Method::GET, &host("beta"), path)
                .header("Authorization", &su),
        )
        .await;
        assert_eq!(status, 200, "{b}");
        assert_eq!(a, b, "{path}");
    }
    assert_eq!(
        download(&server, "beta", &first).await,
        (200, b"hello file".to_vec())
    );
    // The old user token still works, and so does the password.
    let (status, body) = send(
        server
            .request(
                Method::POST,
                &host("beta"),
                "/api/collections/users/auth-refresh",
            )
            .header("Authorization", &user_token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        server
            .request(
                Method::POST,
                &host("beta"),
                "/api/collections/users/auth-with-password",
            )
            .json(&json!({ "identity": "u@example.com", "password": "user-password-1" })),
    )
    .await;
    assert_eq!(status, 200);

    // The CLI sees the same backup and its drill passes.
    let output = backup_cli(&server, &target, &["list", "alpha"]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains(made["id"].as_str().unwrap()));
    let output = backup_cli(&server, &target, &["verify", "alpha"]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("is sound"));
    // A slug that exists is refused.
    let (status, _) = operator(
        &server,
        Method::POST,
        "/v1/tenants/alpha/backups/restore",
        Some(json!({ "to": "beta" })),
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn restore_at_a_moment_and_in_place() {
    let target = target();
    let server = start(&target, &[]);
    tenant_with_notes(&server, "alpha").await;
    let early = add_note(&server, "alpha", "early", Some(b"early file")).await;
    let output = backup_cli(&server, &target, &["create", "alpha"]);
    assert!(output.status.success(), "{output:?}");
    next_second().await;
    let between = time_now();
    next_second().await;
    add_note(&server, "alpha", "late", Some(b"late file")).await;
    let output = backup_cli(&server, &target, &["create", "alpha"]);
    assert!(output.status.success(), "{output:?}");

    let output = backup_cli(
        &server,
        &target,
        &["restore", "alpha", "--at", &between, "--to", "past"],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(titles(&server, "past").await, ["early"]);
    assert_eq!(download(&server, "past", &early).await.1, b"early file");
    let output = backup_cli(&server, &target, &["restore", "alpha", "--to", "now"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(titles(&server, "now").await, ["early", "late"]);

    // In place, through the operator API: alpha goes back to the moment between.
    add_note(&server, "alpha", "later", None).await;
    let (status, body) = operator(
        &server,
        Method::POST,
        "/v1/tenants/alpha/backups/restore",
        Some(json!({ "at": between, "inPlace": true })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(titles(&server, "alpha").await, ["early"]);
    add_note(&server, "alpha", "after", None).await;
    assert_eq!(titles(&server, "alpha").await, ["after", "early"]);
    // The CLI sends in-place restores to the server.
    let output = backup_cli(&server, &target, &["restore", "alpha", "--in-place"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("operator API"));
}

/// Waits for the wall clock to enter its next second, so that moments taken before and after
/// are apart in any resolution the backups keep.
async fn next_second() {
    let second = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = second();
    while second() == start {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn time_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Rewrites one object of the latest backup of the tenant in `dir` (file targets), or through
/// the S3 API.
async fn damage(target: &Target, server: &Server, slug: &str, object: &str, how: fn(&mut Vec<u8>)) {
    let (_, tenant) = operator(server, Method::GET, &format!("/v1/tenants/{slug}"), None).await;
    let (_, listed) = operator(
        server,
        Method::GET,
        &format!("/v1/tenants/{slug}/backups"),
        None,
    )
    .await;
    let key = format!(
        "{}/{}/{object}",
        tenant["id"].as_str().unwrap(),
        listed["items"][0]["id"].as_str().unwrap()
    );
    match &target.dir {
        Some(dir) => {
            let path = dir.join(&key);
            let mut bytes = std::fs::read(&path).unwrap();
            how(&mut bytes);
            std::fs::write(&path, bytes).unwrap();
        }
        None => crate::backup_s3::rewrite(&target.flags, &key, how).await,
    }
}

#[tokio::test]
async fn damaged_backups_are_refused_whole() {
    let target = target();
    let server = start(&target, SNAPSHOTS_ONLY);
    tenant_with_notes(&server, "alpha").await;
    for i in 0..20 {
        add_note(&server, "alpha", &format!("note {i}"), Some(b"some file")).await;
    }
    let output = backup_cli(&server, &target, &["create", "alpha"]);
    assert!(output.status.success(), "{output:?}");
    let tenants_dir = server.data_dir().join("tenants");
    let before = std::fs::read_dir(&tenants_dir).unwrap().count();

    let flip: fn(&mut Vec<u8>) = |b| {
        let middle = b.len() / 2;
        b[middle] ^= 0x55;
    };
    let truncate: fn(&mut Vec<u8>) = |b| b.truncate(b.len() / 2);
    for (object, how) in [
        ("data.db.zst", flip),
        ("storage.tar.zst", truncate),
        ("data.db.zst", truncate),
    ] {
        damage(&target, &server, "alpha", object, how).await;
        let output = backup_cli(&server, &target, &["restore", "alpha", "--to", "copy"]);
        assert!(!output.status.success(), "{object}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("damaged"), "{stderr}");
        let (status, body) = operator(
            &server,
            Method::POST,
            "/v1/tenants/alpha/backups/restore",
            Some(json!({ "inPlace": true })),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert!(body["message"].as_str().unwrap().contains("damaged"));
        // Nothing was half-applied: no new tenant, no staging left, alpha unchanged.
        assert_eq!(std::fs::read_dir(&tenants_dir).unwrap().count(), before);
        let (status, _) = operator(&server, Method::GET, "/v1/tenants/copy", None).await;
        assert_eq!(status, 404);
        assert_eq!(titles(&server, "alpha").await.len(), 20);
        let output = backup_cli(&server, &target, &["verify", "alpha"]);
        assert!(!output.status.success());
    }
    // A damaged manifest makes the backup unlisted rather than restorable.
    damage(&target, &server, "alpha", "manifest.json", truncate).await;
    let (_, listed) = operator(&server, Method::GET, "/v1/tenants/alpha/backups", None).await;
    assert_eq!(listed["totalItems"], 0);
}

/// Fills tenant `slug` with about `mib` MiB of incompressible rows.
pub(crate) async fn fill(server: &Server, slug: &str, mib: usize) {
    server
        .with_tenant_db(slug, |db| {
            db.execute_batch("CREATE TABLE IF NOT EXISTS ballast (b BLOB)")
                .unwrap();
            for _ in 0..mib {
                db.execute_batch(
                    "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 16)
                     INSERT INTO ballast SELECT randomblob(65536) FROM n; COMMIT;",
                )
                .unwrap();
            }
        })
        .await;
}

#[tokio::test]
#[ignore = "heavy (48 MiB tenant): tests/suites/backup runs it"]
async fn a_backup_killed_mid_upload_is_never_listed_and_the_next_run_completes() {
    let target = target();
    let server = start(&target, SNAPSHOTS_ONLY);
    tenant_with_notes(&server, "alpha").await;
    add_note(&server, "alpha", "kept", None).await;
    let output = backup_cli(&server, &target, &["create", "alpha"]);
    assert!(output.status.success(), "{output:?}");
    fill(&server, "alpha", 48).await;

    // Kill the backup as soon as it reports uploading the database.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("--data-dir")
        .arg(server.data_dir())
        .arg("backup")
        .args(&target.flags)
        .args(["--progress", "create", "alpha"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut killed = false;
    for line in lines.by_ref() {
        if line.unwrap().contains("upload") {
            child.kill().unwrap();
            killed = true;
            break;
        }
    }
    assert!(killed);
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the backup finished before it was killed"
    );

    let (_, listed) = operator(&server, Method::GET, "/v1/tenants/alpha/backups", None).await;
    assert_eq!(listed["totalItems"], 1, "{listed}");
    // Every listed backup restores.
    let output = backup_cli(&server, &target, &["restore", "alpha", "--to", "older"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(titles(&server, "older").await, ["kept"]);
    // The next run completes and restores with the ballast.
    let output = backup_cli(&server, &target, &["create", "alpha"]);
    assert!(output.status.success(), "{output:?}");
    let output = backup_cli(&server, &target, &["verify", "alpha"]);
    assert!(output.status.success(), "{output:?}");
    let (_, listed) = operator(&server, Method::GET, "/v1/tenants/alpha/backups", None).await;
    assert_eq!(listed["totalItems"], 2, "{listed}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::test]
#[ignore = "timing: tests/suites/backup runs it alone"]
async fn writes_keep_flowing_during_a_snapshot() {
    let target = target();
    let server = start(&target, SNAPSHOTS_ONLY);
    tenant_with_notes(&server, "alpha").await;
    fill(&server, "alpha", 24).await;
    let writes = |until: Instant| {
        let client = server.client.clone();
        let url = format!("http://{}/api/collections/notes/records", server.addr);
        let host = format!("alpha.localhost:{}", server.addr.port());
        async move {
            let mut latencies = Vec::new();
            while Instant::now() < until || latencies.len() < 20 {
                let started = Instant::now();
                let response = client
                    .post(&url)
                    .header("Host", &host)
                    .json(&json!({ "title": "w" }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                latencies.push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies.sort();
            latencies
        }
    };
    let baseline = writes(Instant::now() + Duration::from_secs(2)).await;
    let started = Instant::now();
    let backup = {
        let client = server.client.clone();
        let url = format!("http://{}/v1/tenants/alpha/backups", server.addr);
        tokio::spawn(async move {
            client
                .post(url)
                .header("Host", "localhost")
                .bearer_auth(TOKEN)
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let mut during = Vec::new();
    while !backup.is_finished() {
        during.extend(writes(Instant::now() + Duration::from_millis(500)).await);
    }
    assert_eq!(backup.await.unwrap(), 201);
    let took = started.elapsed();
    during.sort();
    let (p99_base, p99_during) = (percentile(&baseline, 0.99), percentile(&during, 0.99));
    let worst = *during.last().unwrap();
    let worst_base = *baseline.last().unwrap();
    eprintln!(
        "snapshot took {took:?}; {} writes during it: p99 {p99_during:?} (without: {p99_base:?}), worst {worst:?} (without: {worst_base:?})",
        during.len()
    );
    // Commits fsync, so on a loaded test machine a write takes tens of milliseconds even
    // without a backup: the bounds are relative to the same server's writes without one.
    assert!(
        p99_during <= p99_base * 2 + Duration::from_millis(10),
        "p99 {p99_during:?} vs {p99_base:?}"
    );
    assert!(
        worst < worst_base + Duration::from_millis(100),
        "a write took {worst:?} (without a backup at most {worst_base:?})"
    );
}

#[tokio::test]
async fn the_schedule_backs_up_changed_tenants_and_keeps_the_newest() {
    let target = target();
    let server = start(&target, &["--backup-every=1s", "--backup-keep=2"]);
    tenant_with_notes(&server, "alpha").await;
    let listed = async || {
        operator(&server, Method::GET, "/v1/tenants/alpha/backups", None)
            .await
            .1
    };
    assert!(
        eventually(Duration::from_secs(20), async || {
            listed().await["items"][0]["counts"]["notes"] == 0
        })
        .await
    );
    let first = listed().await["items"][0]["id"].clone();
    // Unchanged tenants are not backed up again: once the set-up's writes (and their request
    // logs) are in a backup, the latest backup stays the same although one is due every second.
    assert!(
        eventually(Duration::from_secs(30), async || {
            let before = listed().await["items"][0]["id"].clone();
            // The behaviour under test: no new backup within three due times.
            tokio::time::sleep(Duration::from_secs(3)).await;
            listed().await["items"][0]["id"] == before
        })
        .await
    );
    for i in 0..3 {
        add_note(&server, "alpha", &format!("n{i}"), None).await;
        let want = i + 1;
        assert!(
            eventually(Duration::from_secs(20), async || {
                listed().await["items"][0]["counts"]["notes"] == want
            })
            .await
        );
    }
    // Pruning follows each backup.
    assert!(
        eventually(
            Duration::from_secs(10),
            async || listed().await["totalItems"] == 2
        )
        .await
    );
    let items = listed().await;
    let status = operator(&server, Method::GET, "/v1/tenants/alpha/backups", None)
        .await
        .1;
    // The request logs of the last writes may have started one more run meanwhile.
    assert_ne!(status["status"]["lastStatus"], "failed");
    assert!(!status["status"]["lastSuccess"].as_str().unwrap().is_empty());
    assert!(
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["id"] != first)
    );
}

// ---- Continuous WAL shipping and point-in-time restore ----

/// The id of tenant `slug`.
pub(crate) async fn tenant_id(server: &Server, slug: &str) -> String {
    let (status, tenant) =
        operator(server, Method::GET, &format!("/v1/tenants/{slug}"), None).await;
    assert_eq!(status, 200, "{tenant}");
    tenant["id"].as_str().unwrap().to_string()
}

/// Keys of the target under `prefix` (relative to the target), sorted.
async fn target_keys(target: &Target, prefix: &str) -> Vec<String> {
    match &target.dir {
        Some(dir) => {
            let mut keys = Vec::new();
            let mut stack = vec![dir.join(prefix)];
            while let Some(path) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&path) else {
                    continue;
                };
                for entry in entries.flatten() {
                    if entry.file_type().unwrap().is_dir() {
                        stack.push(entry.path());
                    } else {
                        let rel = entry.path().strip_prefix(dir).unwrap().to_path_buf();
                        keys.push(rel.to_string_lossy().into_owned());
                    }
                }
            }
            keys.sort();
            keys
        }
        None => crate::backup_s3::list(&target.flags, prefix).await,
    }
}

/// Rewrites (or, with `None`, deletes) object `key` of the target.
async fn rewrite_key(target: &Target, key: &str, how: Option<fn(&mut Vec<u8>)>) {
    match (&target.dir, how) {
        (Some(dir), Some(how)) => {
            let mut bytes = std::fs::read(dir.join(key)).unwrap();
            how(&mut bytes);
            std::fs::write(dir.join(key), bytes).unwrap();
        }
        (Some(dir), None) => std::fs::remove_file(dir.join(key)).unwrap(),
        (None, Some(how)) => crate::backup_s3::rewrite(&target.flags, key, how).await,
        (None, None) => crate::backup_s3::delete(&target.flags, key).await,
    }
}

/// Waits for the snapshot that starts tenant `slug`'s WAL generation (taken on its first
/// opening); returns the backup id.
pub(crate) async fn wal_generation(server: &Server, slug: &str) -> String {
    let mut id = String::new();
    let found = eventually(Duration::from_secs(60), async || {
        let (_, listed) = operator(
            server,
            Method::GET,
            &format!("/v1/tenants/{slug}/backups"),
            None,
        )
        .await;
        match listed["items"].as_array().and_then(|items| items.last()) {
            Some(latest) => {
                id = latest["id"].as_str().unwrap_or_default().to_string();
                true
            }
            None => false,
        }
    })
    .await;
    assert!(found, "no snapshot started the WAL generation of {slug}");
    id
}

/// Restores `slug` as of `at` into `to` through the operator API; returns status and body.
async fn restore_at(server: &Server, slug: &str, at: &str, to: &str) -> (u16, Value) {
    operator(
        server,
        Method::POST,
        &format!("/v1/tenants/{slug}/backups/restore"),
        Some(json!({ "at": at, "to": to })),
    )
    .await
}

/// Waits until a restore of `slug` as of now holds a note titled `title`: the WAL with it
/// has been shipped. Probes restore into throwaway slugs.
async fn shipped(server: &Server, slug: &str, title: &str) {
    let mut probe = 0;
    let found = eventually(Duration::from_secs(60), async || {
        probe += 1;
        let to = format!("probe-{slug}-{probe}");
        let (status, body) = restore_at(server, slug, &time_now(), &to).await;
        assert_eq!(status, 201, "{body}");
        titles(server, &to).await.iter().any(|t| t == title)
    })
    .await;
    assert!(found, "{title:?} of {slug} was never shipped");
}

/// Stored files of the tenant in `slug`'s directory (names only).
async fn stored_names(server: &Server, slug: &str) -> Vec<String> {
    let id = tenant_id(server, slug).await;
    let mut names = Vec::new();
    let mut stack = vec![server.data_dir().join("tenants").join(id).join("storage")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    names
}

#[tokio::test]
async fn point_in_time_restores_replay_the_shipped_wal_with_files() {
    let target = target();
    let server = start(&target, &[]);
    let su = tenant_with_notes(&server, "pitr").await;
    wal_generation(&server, "pitr").await;
    let (status, user) = send(
        server
            .request(
                Method::POST,
                &host("pitr"),
                "/api/collections/users/records",
            )
            .header("Authorization", &su)
            .json(&json!({
                "email": "u@example.com", "password": "user-password-1",
                "passwordConfirm": "user-password-1", "name": "U"
            })),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    let one = add_note(&server, "pitr", "one", Some(b"file one")).await;
    next_second().await;
    let after_one = time_now();
    next_second().await;
    let two = add_note(&server, "pitr", "two", Some(b"file two")).await;
    next_second().await;
    let after_two = time_now();
    next_second().await;
    let three = add_note(&server, "pitr", "three", Some(b"file three")).await;
    shipped(&server, "pitr", "three").await;

    // The CLI: between one and two, exactly one is there, with its file, and the user.
    let output = backup_cli(
        &server,
        &target,
        &["restore", "pitr", "--at", &after_one, "--to", "pitr-one"],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(titles(&server, "pitr-one").await, ["one"]);
    assert_eq!(
        download(&server, "pitr-one", &one).await,
        (200, b"file one".to_vec())
    );
    let names = stored_names(&server, "pitr-one").await;
    let file_of = |r: &Value| r["doc"].as_str().unwrap().to_string();
    assert!(names.contains(&file_of(&one)), "{names:?}");
    assert!(!names.contains(&file_of(&two)), "{names:?}");
    assert!(!names.contains(&file_of(&three)), "{names:?}");
    let (status, login) = send(
        server
            .request(
                Method::POST,
                &host("pitr-one"),
                "/api/collections/users/auth-with-password",
            )
            .json(&json!({ "identity": "u@example.com", "password": "user-password-1" })),
    )
    .await;
    assert_eq!(status, 200, "{login}");

    // The operator API: between two and three.
    let (status, body) = restore_at(&server, "pitr", &after_two, "pitr-two").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(titles(&server, "pitr-two").await, ["one", "two"]);
    assert_eq!(
        download(&server, "pitr-two", &two).await,
        (200, b"file two".to_vec())
    );
    let names = stored_names(&server, "pitr-two").await;
    assert!(!names.contains(&file_of(&three)), "{names:?}");
    // A moment that is not a time, or one the shipped WAL cannot reach yet, is refused
    // against the `at` field, and nothing is restored.
    let (status, body) = restore_at(&server, "pitr", "yesterday", "pitr-bad").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["data"]["at"]["code"], "validation_invalid", "{body}");
    let future = "2999-01-01T00:00:00Z";
    let (status, body) = restore_at(&server, "pitr", future, "pitr-future").await;
    assert_eq!(status, 400, "{body}");
    let reason = body["data"]["at"]["message"].as_str().unwrap_or_default();
    assert!(reason.contains("complete only up to"), "{body}");
    for slug in ["pitr-bad", "pitr-future"] {
        let (status, _) =
            operator(&server, Method::GET, &format!("/v1/tenants/{slug}"), None).await;
        assert_eq!(status, 404, "{slug} was created");
    }
    // And now: everything.
    let (status, body) = restore_at(&server, "pitr", &time_now(), "pitr-now").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(titles(&server, "pitr-now").await, ["one", "three", "two"]);
    assert_eq!(
        download(&server, "pitr-now", &three).await,
        (200, b"file three".to_vec())
    );
}

#[tokio::test]
async fn damaged_or_missing_wal_segments_are_refused() {
    let target = target();
    let server = start(&target, &[]);
    tenant_with_notes(&server, "segs").await;
    let generation = wal_generation(&server, "segs").await;
    let id = tenant_id(&server, "segs").await;
    let segments = async || -> Vec<String> {
        target_keys(&target, &format!("wal/{id}/{generation}/"))
            .await
            .into_iter()
            .filter(|k| k.ends_with(".wal.zst"))
            .collect()
    };
    // One segment per note: each is written once the previous one was shipped.
    for i in 0..3 {
        let before = segments().await.len();
        add_note(&server, "segs", &format!("note {i}"), None).await;
        assert!(
            eventually(Duration::from_secs(30), async || segments().await.len()
                > before)
            .await,
            "note {i} was never shipped"
        );
    }
    shipped(&server, "segs", "note 2").await;
    let segments = segments().await;
    assert!(segments.len() >= 3, "{segments:?}");
    let key = segments[1].clone();
    let original = match &target.dir {
        Some(dir) => std::fs::read(dir.join(&key)).unwrap(),
        None => crate::backup_s3::read(&target.flags, &key).await,
    };
    let put_back = |bytes: Vec<u8>| {
        let target = &target;
        let key = key.clone();
        async move {
            match &target.dir {
                Some(dir) => std::fs::write(dir.join(&key), bytes).unwrap(),
                None => crate::backup_s3::write(&target.flags, &key, bytes).await,
            }
        }
    };
    let tenants_dir = server.data_dir().join("tenants");
    let before = std::fs::read_dir(&tenants_dir).unwrap().count();
    let flip: fn(&mut Vec<u8>) = |b| {
        let middle = b.len() / 2;
        b[middle] ^= 0x55;
    };
    let truncate: fn(&mut Vec<u8>) = |b| b.truncate(b.len() / 2);
    for (what, how) in [
        ("flipped", Some(flip)),
        ("truncated", Some(truncate)),
        ("missing", None),
    ] {
        rewrite_key(&target, &key, how).await;
        let output = backup_cli(
            &server,
            &target,
            &["restore", "segs", "--at", &time_now(), "--to", "segs-copy"],
        );
        assert!(!output.status.success(), "{what}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("damaged"), "{what}: {stderr}");
        let (status, body) = restore_at(&server, "segs", &time_now(), "segs-copy").await;
        assert_eq!(status, 422, "{what}: {body}");
        // Nothing half-applied: no new tenant, no staging left.
        assert_eq!(
            std::fs::read_dir(&tenants_dir).unwrap().count(),
            before,
            "{what}"
        );
        let (status, _) = operator(&server, Method::GET, "/v1/tenants/segs-copy", None).await;
        assert_eq!(status, 404, "{what}");
        put_back(original.clone()).await;
    }
    // Put back whole, the WAL restores again.
    let (status, body) = restore_at(&server, "segs", &time_now(), "segs-copy").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        titles(&server, "segs-copy").await,
        ["note 0", "note 1", "note 2"]
    );
}

#[tokio::test]
async fn a_kill_during_shipping_leaves_a_consistent_restore() {
    let target = target();
    let server = start(&target, &[]);
    tenant_with_notes(&server, "crash").await;
    let generation = wal_generation(&server, "crash").await;
    let id = tenant_id(&server, "crash").await;
    let shipped_segments = async || {
        target_keys(&target, &format!("wal/{id}/{generation}/"))
            .await
            .iter()
            .filter(|k| k.ends_with(".wal.zst"))
            .count()
    };
    let before = shipped_segments().await;
    // Steady writes, with files, while the server is killed.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let (addr, client) = (server.addr, server.client.clone());
        let acked = acked.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let title = format!("w{i:04}");
                let (content_type, body) =
                    multipart(&[("title", title.as_str())], &[("doc", "d.txt", b"data")]);
                let sent = client
                    .post(format!("http://{addr}/api/collections/notes/records"))
                    .header(
                        reqwest::header::HOST,
                        format!("crash.localhost:{}", addr.port()),
                    )
                    .header("Content-Type", content_type)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => acked.lock().unwrap().push(title),
                    _ => break,
                }
                // Steady, not flat out: how much WAL the restores below replay must not grow
                // with how fast the server writes.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // Kill once the writes are being shipped: some acknowledged, and at least two segments
    // of them out, so the kill lands while shipping goes on.
    assert!(
        eventually(Duration::from_secs(30), async || {
            acked.lock().unwrap().len() > 3 && shipped_segments().await >= before + 2
        })
        .await,
        "the writes were never shipped"
    );
    let flags = target.serve_flags(&[]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = server.crash_and_restart(&flags);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 3,
        "too few writes before the kill: {}",
        acked.len()
    );
    add_note(&server, "crash", "after restart", Some(b"late")).await;
    shipped(&server, "crash", "after restart").await;
    let live = titles(&server, "crash").await;
    for title in &acked {
        assert!(live.contains(title), "acknowledged {title} is gone");
    }
    let output = backup_cli(
        &server,
        &target,
        &[
            "restore",
            "crash",
            "--at",
            &time_now(),
            "--to",
            "crash-copy",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(titles(&server, "crash-copy").await, live);
    let (status, _) = server
        .get(
            &host("crash-copy"),
            "/api/collections/notes/records?perPage=1",
        )
        .await;
    assert_eq!(status, 200);
}

/// Runs `warren backup restore slug <args>`; returns its stdout.
fn restore_cli(server: &Server, target: &Target, slug: &str, args: &[&str]) -> String {
    let mut all = vec!["restore", slug];
    all.extend(args);
    let output = backup_cli(server, target, &all);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_restore_without_a_moment_brings_back_the_latest_shipped_state() {
    let target = target();
    let server = start(&target, &[]);
    tenant_with_notes(&server, "latest").await;
    wal_generation(&server, "latest").await;
    add_note(&server, "latest", "in the snapshot", None).await;
    let (status, snapshot) =
        operator(&server, Method::POST, "/v1/tenants/latest/backups", None).await;
    assert_eq!(status, 201, "{snapshot}");
    let snapshot = snapshot["id"].as_str().unwrap().to_string();
    let late = add_note(&server, "latest", "shipped 1", Some(b"late file")).await;
    add_note(&server, "latest", "shipped 2", None).await;
    let written = time_now();
    let all = ["in the snapshot", "shipped 1", "shipped 2"];

    // The CLI is another process: it sees only what the server has shipped. Restores without
    // a moment are probed until one holds the later notes, which then came from the WAL.
    let mut probe = 0;
    let mut answer = String::new();
    let found = eventually(Duration::from_secs(60), async || {
        probe += 1;
        let to = format!("latest-cli-{probe}");
        answer = restore_cli(&server, &target, "latest", &["--to", &to]);
        titles(&server, &to).await == all
    })
    .await;
    assert!(found, "the later notes were never shipped: {answer}");
    assert!(answer.contains("the latest shipped state"), "{answer}");
    assert!(answer.contains(&snapshot), "{answer}");
    let restored = format!("latest-cli-{probe}");
    assert_eq!(
        download(&server, &restored, &late).await,
        (200, b"late file".to_vec())
    );

    // The operator API says which state it restored, from which snapshot, up to when.
    let (status, body) = operator(
        &server,
        Method::POST,
        "/v1/tenants/latest/backups/restore",
        Some(json!({ "to": "latest-api" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["restored"], "latest shipped state", "{body}");
    assert_eq!(body["backup"], snapshot.as_str(), "{body}");
    assert!(body["transactions"].as_u64().unwrap() >= 2, "{body}");
    let through = body["through"].as_str().unwrap();
    assert!(through >= written.as_str(), "{body}");
    assert_eq!(titles(&server, "latest-api").await, all);

    // Naming the snapshot restores it alone, through either door.
    let (status, body) = operator(
        &server,
        Method::POST,
        "/v1/tenants/latest/backups/restore",
        Some(json!({ "backup": snapshot, "to": "snapshot-api" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["restored"], "snapshot", "{body}");
    assert_eq!(body["backup"], snapshot.as_str(), "{body}");
    assert_eq!(body["transactions"], 0, "{body}");
    assert_eq!(titles(&server, "snapshot-api").await, ["in the snapshot"]);
    let answer = restore_cli(
        &server,
        &target,
        "latest",
        &["--backup", &snapshot, "--to", "snapshot-cli"],
    );
    assert!(
        answer.contains(&format!("snapshot {snapshot} alone")),
        "{answer}"
    );
    assert_eq!(titles(&server, "snapshot-cli").await, ["in the snapshot"]);
}
