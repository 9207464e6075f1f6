//! Mail without a relay: the outbox keeps the console's and tenants' mail, the log prints the
//! link it carries, the operator reads it with the token; with a relay none of it is exposed.
//! Also the startup banner and `warren account verify`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, TOKEN, encode, eventually, send};

const WAIT: Duration = Duration::from_secs(10);

/// `GET` on the platform host with the operator token.
async fn operator(server: &Server, path: &str) -> (u16, Value) {
    send(
        server
            .request(Method::GET, "localhost", path)
            .bearer_auth(TOKEN),
    )
    .await
}

/// Kept messages, newest first, as the operator API lists them.
async fn kept(server: &Server) -> Vec<Value> {
    let (status, body) = operator(server, "/v1/outbox?perPage=200").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// Waits for a kept message to `to` and returns it.
async fn wait_for_mail(server: &Server, to: &str) -> Value {
    let mut found = None;
    let arrived = eventually(WAIT, async || {
        found = kept(server).await.into_iter().find(|m| m["to"] == to);
        found.is_some()
    })
    .await;
    assert!(arrived, "no mail to {to} in the outbox");
    found.unwrap()
}

/// Creates tenant `slug` and a `users` record with `email`, then asks for its verification.
async fn request_verification(server: &Server, slug: &str, email: &str) {
    let host = format!("{slug}.localhost");
    let (status, body) = send(
        server
            .request(Method::POST, &host, "/api/collections/users/records")
            .json(&json!({
                "email": email,
                "password": "user-password-1",
                "passwordConfirm": "user-password-1",
            })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        server
            .request(
                Method::POST,
                &host,
                "/api/collections/users/request-verification",
            )
            .json(&json!({ "email": email })),
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

fn create_tenant(server: &Server, slug: &str) {
    let output = server.cli(&["tenant", "create", slug]);
    assert!(output.status.success(), "{output:?}");
}

/// Signs up `email` in the console (a browser's two requests: the form, then the post).
async fn sign_up(server: &Server, email: &str) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{}{path}", server.addr);
    let host = format!("localhost:{}", server.addr.port());
    let form = client
        .get(url("/signup"))
        .header("host", &host)
        .send()
        .await
        .unwrap();
    let nonce = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.split(';')
                .next()
                .filter(|p| p.starts_with("warren_csrf="))
        })
        .unwrap()
        .to_string();
    let html = form.text().await.unwrap();
    let csrf = csrf_of(&html);
    let posted = client
        .post(url("/signup"))
        .header("host", &host)
        .header("cookie", nonce)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", "console-password-1"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 303, "{}", posted.text().await.unwrap());
}

fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    let end = html[start..].find('"').unwrap();
    html[start..start + end].to_string()
}

#[tokio::test]
async fn a_tenants_verification_mail_is_kept_labelled_with_the_tenant() {
    let server = Server::start(&[]);
    create_tenant(&server, "shop");
    request_verification(&server, "shop", "ann@example.com").await;
    let mail = wait_for_mail(&server, "ann@example.com").await;
    assert_eq!(mail["label"], "shop");
    assert_eq!(mail["tenant"], "shop");
    let link = mail["links"][0].as_str().unwrap();
    assert!(link.contains("/auth/confirm-verification/"), "{link}");
    assert!(mail.get("html").is_none(), "lists carry no bodies");

    let id = mail["id"].as_str().unwrap();
    let (status, full) = operator(&server, &format!("/v1/outbox/{id}")).await;
    assert_eq!(status, 200, "{full}");
    assert!(
        full["html"]
            .as_str()
            .unwrap()
            .contains("confirm-verification")
    );

    // The token inside the link verifies the user, as a mailed link would.
    let token = link.rsplit('/').next().unwrap();
    let (status, body) = send(
        server
            .request(
                Method::POST,
                "shop.localhost",
                "/api/collections/users/confirm-verification",
            )
            .json(&json!({ "token": token })),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    // Private files, written whole.
    use std::os::unix::fs::PermissionsExt;
    let files: Vec<_> = std::fs::read_dir(server.data_dir().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(files.len(), 1);
    let mode = files[0].metadata().unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(files[0].file_name().to_string_lossy().ends_with(".json"));

    let (status, body) = operator(&server, "/v1/outbox/0000000000000-00000000").await;
    assert_eq!((status, body["status"].as_u64()), (404, Some(404)));
    let (status, _) = operator(&server, "/v1/outbox/..%2Fcontrol.db").await;
    assert_eq!(status, 404);
    let (status, body) = operator(&server, "/v1/outbox?perPage=0").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn the_outbox_needs_the_operator_token() {
    let server = Server::start(&[]);
    sign_up(&server, "dev@example.com").await;
    let mail = wait_for_mail(&server, "dev@example.com").await;
    assert_eq!(mail["label"], "console");
    assert_eq!(mail["tenant"], Value::Null);

    for auth in [None, Some("Bearer wrong-token"), Some(TOKEN)] {
        let mut request = server.request(Method::GET, "localhost", "/v1/outbox");
        if let Some(value) = auth {
            request = request.header("authorization", value);
        }
        let (status, body) = send(request).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert_eq!(body["status"], 401);
    }

    // The page: a sign-in form until the token is given; the cookie never holds the token.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{}{path}", server.addr);
    let host = format!("localhost:{}", server.addr.port());
    let page = client
        .get(url("/outbox"))
        .header("host", &host)
        .send()
        .await
        .unwrap();
    let nonce = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.split(';')
                .next()
                .filter(|p| p.starts_with("warren_csrf="))
        })
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    assert!(html.contains("Operator token"), "{html}");
    assert!(!html.contains("dev@example.com"));
    let csrf = csrf_of(&html);
    let sign_in = |token: &'static str, csrf: String, cookie: String| {
        client
            .post(url("/outbox/login"))
            .header("host", &host)
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&[("csrf", csrf.as_str()), ("token", token)]))
            .send()
    };
    let wrong = sign_in("wrong-token", csrf.clone(), nonce.clone())
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let forged = sign_in(TOKEN, "forged".into(), nonce.clone())
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let signed = sign_in(TOKEN, csrf, nonce.clone()).await.unwrap();
    assert_eq!(signed.status(), 303);
    let set = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("warren_operator="))
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(TOKEN), "{set}");
    let operator_cookie = set.split(';').next().unwrap().to_string();
    let page = client
        .get(url("/outbox"))
        .header("host", &host)
        .header("cookie", format!("{nonce}; {operator_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("dev@example.com"), "{html}");
    assert!(html.contains("/verify?token="), "{html}");
    let id = mail["id"].as_str().unwrap();
    let message = client
        .get(url(&format!("/outbox/{id}")))
        .header("host", &host)
        .header("cookie", operator_cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(message.status(), 200);
    assert!(message.text().await.unwrap().contains("Verify your email"));
    // A tampered cookie is no sign-in.
    let tampered = operator_cookie.replace("warren_operator=", "warren_operator=1");
    let page = client
        .get(url(&format!("/outbox/{id}")))
        .header("host", &host)
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
}

#[tokio::test]
async fn with_a_relay_nothing_of_the_outbox_is_exposed() {
    // Nothing listens on the relay's port: delivery fails, and still nothing is kept.
    let server = Server::start(&["--smtp-url", "smtp://127.0.0.1:9"]);
    sign_up(&server, "dev@example.com").await;
    for path in ["/v1/outbox", "/v1/outbox/0000000000000-00000000"] {
        let (status, body) = operator(&server, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        let (status, _) = server.get("localhost", path).await;
        assert_eq!(status, 404, "{path} without a token");
    }
    for path in ["/outbox", "/outbox/0000000000000-00000000"] {
        let (status, _) = send_raw(&server, Method::GET, path).await;
        assert_eq!(status, 404, "{path}");
    }
    for path in ["/outbox/login", "/outbox/logout"] {
        let (status, _) = send_raw(&server, Method::POST, path).await;
        assert_eq!(status, 404, "{path}");
    }
    assert!(!server.data_dir().join("outbox").exists());
}

async fn send_raw(server: &Server, method: Method, path: &str) -> (u16, String) {
    let response = server
        .request(method, "localhost", path)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_outbox_keeps_only_the_newest_messages() {
    let server = Server::start(&["--outbox-keep", "3"]);
    create_tenant(&server, "shop");
    let emails: Vec<String> = (0..5).map(|i| format!("user{i}@example.com")).collect();
    for email in &emails {
        request_verification(&server, "shop", email).await;
        wait_for_mail(&server, email).await;
    }
    let (status, body) = operator(&server, "/v1/outbox").await;
    assert_eq!(status, 200);
    assert_eq!(body["totalItems"], 3, "{body}");
    let to: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap())
        .collect();
    assert_eq!(to, [&emails[4], &emails[3], &emails[2]]);
    let files = std::fs::read_dir(server.data_dir().join("outbox"))
        .unwrap()
        .count();
    assert_eq!(files, 3);
}

#[tokio::test]
async fn accounts_are_verified_from_the_command_line_by_email_or_id() {
    let server = Server::start(&[]);
    sign_up(&server, "ann@example.com").await;
    sign_up(&server, "bob@example.com").await;
    let account = |email: &'static str| {
        let server = &server;
        async move {
            let (status, body) = operator(server, &format!("/v1/accounts?email={email}")).await;
            assert_eq!(status, 200, "{body}");
            body["items"][0].clone()
        }
    };
    assert_eq!(account("ann@example.com").await["verified"], false);

    let output = server.cli(&["account", "verify", "ANN@example.com"]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ann@example.com") && stdout.contains("verified"),
        "{stdout}"
    );
    assert_eq!(account("ann@example.com").await["verified"], true);

    let bob = account("bob@example.com").await;
    let output = server.cli(&["account", "verify", bob["id"].as_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(account("bob@example.com").await["verified"], true);

    for unknown in ["nobody@example.com", "nosuchid"] {
        let output = server.cli(&["account", "verify", unknown]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("there is no account"), "{stderr}");
        assert!(stderr.contains(unknown), "{stderr}");
    }
}

/// A server with its stdout and stderr captured (`RUST_LOG=info`), for the banner and logs.
struct Watched {
    child: std::process::Child,
    stdout: Vec<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    _data_dir: tempfile::TempDir,
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `warren serve` with `flags` and reads stdout through the banner's mail line.
fn start_watched(flags: &[&str]) -> Watched {
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .args(flags)
        .env_remove("WARREN_OPERATOR_TOKEN")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let sink = stderr.clone();
    let errors = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(errors).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.trim_start().starts_with("Mail:");
        stdout.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Watched {
        child,
        stdout,
        stderr,
        _data_dir: data_dir,
    }
}

#[tokio::test]
async fn the_banner_says_where_console_api_and_mail_are_and_the_log_shows_links() {
    let watched = start_watched(&["--domain", "localhost"]);
    let out = &watched.stdout;
    let listening = out
        .iter()
        .find_map(|l| l.strip_prefix("Warren listening on http://"))
        .expect("the listening line");
    let addr: std::net::SocketAddr = listening
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let base = format!("http://localhost:{}", addr.port());
    let dir = watched._data_dir.path().display().to_string();
    assert!(
        out.contains(&format!("  Console:      {base}/")),
        "{out:#?}"
    );
    assert!(
        out.contains(&format!(
            "  Operator API: {base}/v1/ (Authorization: Bearer <the token in {dir}/operator-token>)"
        )),
        "{out:#?}"
    );
    assert!(
        out.contains(&format!(
            "  Mail:         no relay: mail is kept in {dir}/outbox, read it at {base}/outbox"
        )),
        "{out:#?}"
    );

    // A console mail's link is on one log line.
    let client = reqwest::Client::new();
    let host = format!("localhost:{}", addr.port());
    let form = client
        .get(format!("http://{addr}/signup"))
        .header("host", &host)
        .send()
        .await
        .unwrap();
    let nonce = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.split(';')
                .next()
                .filter(|p| p.starts_with("warren_csrf="))
        })
        .unwrap()
        .to_string();
    let csrf = csrf_of(&form.text().await.unwrap());
    let posted = client
        .post(format!("http://{addr}/signup"))
        .header("host", &host)
        .header("cookie", nonce)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("csrf", csrf.as_str()),
            ("email", "dev@example.com"),
            ("password", "console-password-1"),
        ]))
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success() || posted.status().is_redirection());
    let expected = format!("link {base}/verify?token=");
    let logged = eventually(WAIT, async || {
        watched.stderr.lock().unwrap().iter().any(|l| {
            l.contains("mail kept in the outbox (console) to dev@example.com")
                && l.contains(&expected)
        })
    })
    .await;
    assert!(logged, "{:#?}", watched.stderr.lock().unwrap());

    let relayed = start_watched(&["--smtp-url", "smtp://user:secret@127.0.0.1:2525"]);
    let mail = relayed.stdout.last().unwrap();
    assert_eq!(
        mail,
        "  Mail:         sent through the relay smtp://127.0.0.1:2525"
    );
    assert!(!relayed.stdout.iter().any(|l| l.contains("secret")));
}
