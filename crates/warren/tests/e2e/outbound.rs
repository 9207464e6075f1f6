//! What tenants' code reaches outside its sandbox: mail through the tenant's SMTP settings and
//! its mail hooks (system mails included), `$http.send` (public addresses only unless the
//! operator allows private networks; time and size limits), and `$os.getenv` over the secrets
//! the operator sets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::support::{Server, eventually, operator, send};

const HOOKS: &str = r#"
routerAdd("POST", "/api/mail", (e) => {
  const body = e.requestInfo().body;
  const message = new MailerMessage({
    from: { address: "app@example.com", name: "App" },
    to: [{ address: body.to, name: "Reader" }],
    cc: [{ address: "copy@example.com" }],
    subject: body.subject,
    html: "<p>" + body.text + "</p>",
    text: body.text,
    headers: { "X-Tag": "hooks" },
  });
  e.app.newMailClient().send(message);
  return e.json(200, { sent: true });
});

routerAdd("POST", "/api/mail-bad", (e) => {
  try {
    $app.newMailClient().send(new MailerMessage({ to: [{ address: "not an address" }], subject: "x" }));
    return e.json(200, { sent: true });
  } catch (err) {
    return e.json(400, { error: String(err.message) });
  }
});

onMailerSend((e) => {
  if (e.message.subject.indexOf("drop me") >= 0) return;
  e.message.subject = "[tagged] " + e.message.subject;
  e.next();
});

onMailerRecordVerificationSend((e) => {
  e.message.html = e.message.html + "<p>hooked for " + e.record.email() + "</p>";
  e.next();
}, "users");

routerAdd("GET", "/api/secret", (e) => e.json(200, { key: $os.getenv("API_KEY"), path: $os.getenv("PATH"), bad: $os.getenv("../x") }));

routerAdd("POST", "/api/fetch", (e) => {
  const config = e.requestInfo().body;
  try {
    const r = $http.send(config);
    return e.json(200, {
      status: r.statusCode, json: r.json, size: r.raw.length, bytes: r.body.length,
      multi: r.headers["X-Multi"], type: r.headers["Content-Type"], cookie: r.cookies.sid ? r.cookies.sid.value : null,
    });
  } catch (err) {
    return e.json(502, { error: String(err.message) });
  }
});
"#;

/// A minimal SMTP sink on loopback: every message's raw text.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let kept = messages.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read);
                write.write_all(b"220 sink ready\r\n").await.ok();
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "DATA" => {
                            write.write_all(b"354 go on\r\n").await.ok();
                            let mut text = String::new();
                            loop {
                                line.clear();
                                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                text.push_str(&line);
                            }
                            kept.lock().unwrap().push(text);
                            b"250 kept\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.ok();
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.ok();
                }
            });
        }
    });
    (port, messages)
}

/// A small HTTP server on `bind`: `/json`, `/slow` (1.5 s), `/hang` (30 s), `/big` (9 MiB),
/// `/redirect` (to `/json`).
async fn web(bind: &str) -> SocketAddr {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                stream.read_exact(&mut body).await.ok();
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                let (status, extra, text) = match path.as_str() {
                    "/json" => (
                        "200 OK",
                        "Content-Type: application/json\r\nSet-Cookie: sid=abc; Path=/; HttpOnly\r\nX-Multi: one\r\nX-Multi: two\r\n",
                        json!({"ok": true, "got": String::from_utf8_lossy(&body)}).to_string(),
                    ),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                        ("200 OK", "", "{\"late\":true}".to_string())
                    }
                    "/hang" => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        ("200 OK", "", String::new())
                    }
                    "/big" => ("200 OK", "", "x".repeat(9 << 20)),
                    "/redirect" => ("302 Found", "Location: /json\r\n", String::new()),
                    _ => ("404 Not Found", "", String::new()),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                stream.write_all(answer.as_bytes()).await.ok();
            });
        }
    });
    addr
}

fn host(slug: &str) -> String {
    format!("{slug}.localhost")
}

/// Tenant `slug` with [`HOOKS`] and its mail going to the sink on `smtp_port`; the
/// superuser's token.
async fn tenant(server: &Server, slug: &str, smtp_port: u16) -> String {
    let token = server.tenant_with_superuser(slug).await;
    server.deploy_hooks(slug, &[("main.pb.js", HOOKS)]).await;
    let settings = json!({
        "smtp": {"enabled": true, "host": "127.0.0.1", "port": smtp_port, "tls": false},
        "meta": {"appName": "Acme", "appURL": "http://acme.example.com", "senderName": "Acme", "senderAddress": "noreply@example.com"},
    });
    let (status, body) = send(
        server
            .request(Method::PATCH, &host(slug), "/api/settings")
            .header("Authorization", &token)
            .json(&settings),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    token
}

async fn post(server: &Server, slug: &str, path: &str, body: Value) -> (u16, Value) {
    send(server.request(Method::POST, &host(slug), path).json(&body)).await
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let head = message.split("\r\n\r\n").next().unwrap_or("");
    head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    })
}

#[tokio::test]
async fn hooks_mail_through_the_tenants_settings_and_mail_hooks_change_every_mail() {
    let (smtp, messages) = smtp_sink().await;
    let server = Server::start(&[]);
    tenant(&server, "mailer", smtp).await;

    let (status, body) = post(
        &server,
        "mailer",
        "/api/mail",
        json!({"to": "reader@example.com", "subject": "Welcome", "text": "Hello there"}),
    )
    .await;
    assert_eq!((status, &body), (200, &json!({"sent": true})));
    let mail = messages.lock().unwrap().pop().expect("the route's mail");
    assert_eq!(header(&mail, "Subject"), Some("[tagged] Welcome"), "{mail}");
    assert_eq!(header(&mail, "From"), Some("App <app@example.com>"));
    assert_eq!(header(&mail, "To"), Some("Reader <reader@example.com>"));
    assert_eq!(header(&mail, "Cc"), Some("copy@example.com"));
    assert_eq!(header(&mail, "X-Tag"), Some("hooks"));
    assert!(mail.contains("<p>Hello there</p>") && mail.contains("multipart/alternative"));

    // onMailerSend may refuse a mail: nothing is sent and the route does not fail.
    let (status, _) = post(
        &server,
        "mailer",
        "/api/mail",
        json!({"to": "reader@example.com", "subject": "please drop me", "text": "x"}),
    )
    .await;
    assert_eq!(status, 200);
    // An invalid message is an exception in the code, not a 500.
    let (status, body) = post(&server, "mailer", "/api/mail-bad", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("failed to send the mail"),
        "{body}"
    );
    assert!(messages.lock().unwrap().is_empty());

    // A system mail passes the record mail's hook and onMailerSend.
    let user = json!({"email": "ann@example.com", "password": "ann-password-1", "passwordConfirm": "ann-password-1"});
    let (status, body) = post(&server, "mailer", "/api/collections/users/records", user).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(
        &server,
        "mailer",
        "/api/collections/users/request-verification",
        json!({"email": "ann@example.com"}),
    )
    .await;
    assert_eq!(status, 204);
    let arrived = eventually(Duration::from_secs(10), async || {
        !messages.lock().unwrap().is_empty()
    })
    .await;
    assert!(arrived, "no verification mail");
    let verification = messages.lock().unwrap().pop().unwrap();
    assert_eq!(
        header(&verification, "Subject"),
        Some("[tagged] Verify your Acme email"),
        "{verification}"
    );
    assert_eq!(header(&verification, "To"), Some("ann@example.com"));
    let body = verification.replace("=\r\n", "").replace("=3D", "=");
    assert!(
        body.contains("hooked for ann@example.com"),
        "{verification}"
    );
    assert!(
        body.contains("http://acme.example.com/_/#/auth/confirm-verification/"),
        "{body}"
    );
}

#[tokio::test]
async fn http_send_reaches_private_networks_only_when_the_operator_allows_it() {
    let local = web("127.0.0.1:0").await;
    let port = local.port();
    let six = web("[::1]:0").await;
    let closed = Server::start(&[]);
    tenant(&closed, "closed", 9).await;
    for url in [
        format!("http://127.0.0.1:{port}/json"),
        format!("http://10.0.0.1:{port}/json"),
        format!("http://[::1]:{}/json", six.port()),
        format!("http://[::ffff:127.0.0.1]:{port}/json"),
        format!("http://localhost:{port}/json"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://0.0.0.0:{port}/json"),
        "file:///etc/passwd".to_string(),
    ] {
        let (status, body) = post(&closed, "closed", "/api/fetch", json!({"url": url})).await;
        assert_eq!(status, 502, "{url}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("not reachable")
                || error.contains("no public address")
                || error.contains("only http and https"),
            "{url}: {error}"
        );
    }
    drop(closed);

    let open = Server::start(&[
        "--hooks-allow-private-network",
        "--metering-interval",
        "150ms",
    ]);
    tenant(&open, "open", 9).await;
    let fetch = |config: Value| post(&open, "open", "/api/fetch", config);
    let (status, body) = fetch(json!({
        "url": format!("http://localhost:{port}/json"), "method": "post", "body": "ping",
        "headers": {"X-Test": "1"},
    }))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 200);
    assert_eq!(body["json"], json!({"ok": true, "got": "ping"}));
    assert_eq!(body["multi"], json!(["one", "two"]));
    assert_eq!(body["type"], json!(["application/json"]));
    assert_eq!(body["cookie"], "abc");
    let (status, body) =
        fetch(json!({"url": format!("http://[::1]:{}/redirect", six.port())})).await;
    assert_eq!((status, &body["json"]["ok"]), (200, &json!(true)), "{body}");

    // Waiting on the network is not CPU time: 1.5 s of it passes the 1 s CPU limit.
    let started = Instant::now();
    let (status, body) = fetch(json!({"url": format!("http://127.0.0.1:{port}/slow")})).await;
    assert_eq!(
        (status, &body["json"]),
        (200, &json!({"late": true})),
        "{body}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    // The code's own timeout.
    let started = Instant::now();
    let (status, body) =
        fetch(json!({"url": format!("http://127.0.0.1:{port}/hang"), "timeout": 1})).await;
    assert_eq!(status, 502);
    assert!(
        body["error"].as_str().unwrap().contains("timed out"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Sizes.
    let (status, body) = fetch(json!({"url": format!("http://127.0.0.1:{port}/big")})).await;
    assert_eq!(status, 502);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("larger than 8 MiB"),
        "{body}"
    );
    let (status, body) = fetch(json!({
        "url": format!("http://127.0.0.1:{port}/json"), "method": "POST", "body": "x".repeat((1 << 20) + 1),
    }))
    .await;
    assert_eq!(status, 502);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("request body is larger"),
        "{body}"
    );

    // Each $http.send counts in the tenant's usage: a request, its body out, the answer in.
    let totals = async || {
        let (status, body) = operator(&open, Method::GET, "/v1/tenants/open/usage", None).await;
        assert_eq!(status, 200, "{body}");
        body["totals"].clone()
    };
    let mut before = totals().await;
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = totals().await;
        if now == before {
            break;
        }
        before = now;
    }
    let (status, _) = fetch(json!({
        "url": format!("http://127.0.0.1:{port}/json"), "method": "POST", "body": "y".repeat(1000),
    }))
    .await;
    assert_eq!(status, 200);
    let number = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let mut after = Value::Null;
    let counted = eventually(Duration::from_secs(10), async || {
        after = totals().await;
        number(&after, "requests") == number(&before, "requests") + 2
            && number(&after, "bytesOut") >= number(&before, "bytesOut") + 1000
            && number(&after, "bytesIn") >= number(&before, "bytesIn") + 1000
    })
    .await;
    assert!(counted, "before {before}, after {after}");
}

#[tokio::test]
async fn secrets_set_by_the_operator_reach_the_tenants_code_alone_and_at_once() {
    let server = Server::start(&[]);
    tenant(&server, "keeper", 9).await;
    tenant(&server, "other", 9).await;
    let secret = || async { server.get(&host("keeper"), "/api/secret").await };
    // Nothing of the host's environment is visible.
    assert_eq!(
        secret().await,
        (200, json!({"key": "", "path": "", "bad": ""}))
    );

    let out = server.cli(&["tenant", "secret", "keeper", "set", "API_KEY", "from-cli"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(secret().await.1["key"], "from-cli");
    let (status, _) = operator(
        &server,
        Method::PUT,
        "/v1/tenants/keeper/secrets/API_KEY",
        Some(json!({"value": "from-api"})),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(secret().await.1["key"], "from-api");
    assert_eq!(server.get(&host("other"), "/api/secret").await.1["key"], "");

    let (status, list) = operator(&server, Method::GET, "/v1/tenants/keeper/secrets", None).await;
    assert_eq!((status, list), (200, json!({"names": ["API_KEY"]})));
    let out = server.cli(&["tenant", "secret", "keeper", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "API_KEY\n");
    let out = server.cli(&["tenant", "secret", "nobody", "list"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no tenant \"nobody\""),
        "{out:?}"
    );

    for (name, body) in [
        ("1BAD", json!({"value": "v"})),
        ("BIG", json!({"value": "x".repeat(9 << 10)})),
    ] {
        let (status, answer) = operator(
            &server,
            Method::PUT,
            &format!("/v1/tenants/keeper/secrets/{name}"),
            Some(body),
        )
        .await;
        assert_eq!(status, 400, "{name}: {answer}");
    }
    let (status, _) = operator(
        &server,
        Method::PUT,
        "/v1/tenants/nobody/secrets/A",
        Some(json!({"value": "v"})),
    )
    .await;
    assert_eq!(status, 404);

    let out = server.cli(&["tenant", "secret", "keeper", "unset", "API_KEY"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(secret().await.1["key"], "");
    let (status, _) = operator(
        &server,
        Method::DELETE,
        "/v1/tenants/keeper/secrets/API_KEY",
        None,
    )
    .await;
    assert_eq!(status, 404);
}
