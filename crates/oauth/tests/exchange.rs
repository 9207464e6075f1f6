//! The code exchange and user reads against a local provider on 127.0.0.1: client credentials
//! moved to the form when the header is refused, the headers and GraphQL bodies providers
//! require, the email lookups, and the refusals of bad tokens and bad user answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use warren_oauth::providers::Config;
use warren_oauth::{Error, Keys, Provider};

/// One request the fake received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

/// An answer: status, content type, body.
type Answer = (u16, &'static str, String);

/// A fake provider: answers by path (the token path may refuse a Basic header), and records
/// every request.
struct Fake {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn start(routes: Vec<(&'static str, Answer)>, refuse_basic: bool) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let routes: Arc<HashMap<&'static str, Answer>> = Arc::new(routes.into_iter().collect());
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut socket).await else {
                    return;
                };
                let path = request.path.split('?').next().unwrap_or("").to_string();
                let basic = request
                    .headers
                    .get("authorization")
                    .is_some_and(|a| a.starts_with("Basic "));
                let (status, kind, body) = if path == "/token" && refuse_basic && basic {
                    (
                        401,
                        "application/json",
                        r#"{"error":"invalid_client"}"#.into(),
                    )
                } else {
                    routes.get(path.as_str()).cloned().unwrap_or((
                        404,
                        "application/json",
                        "{}".into(),
                    ))
                };
                log.lock().unwrap().push(request);
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    Fake { base, seen }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some(Seen {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&data[head_end..]).to_string(),
    })
}

fn token_answer(extra: Value) -> Answer {
    let mut answer = json!({"access_token": "at-1", "token_type": "bearer", "expires_in": 60, "refresh_token": "rt-1"});
    for (k, v) in extra.as_object().unwrap() {
        answer[k] = v.clone();
    }
    (200, "application/json", answer.to_string())
}

fn json_answer(value: Value) -> Answer {
    (200, "application/json", value.to_string())
}

fn provider(fake: &Fake, name: &str, user_path: &str) -> Provider {
    Provider::resolve(
        &Config {
            name: name.into(),
            client_id: "client id".into(),
            client_secret: "s3cret:&".into(),
            auth_url: format!("{}/authorize", fake.base),
            token_url: format!("{}/token", fake.base),
            user_info_url: format!("{}{user_path}", fake.base),
            ..Config::default()
        },
        true,
    )
    .unwrap()
}

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn credentials_move_to_the_form_when_the_header_is_refused() {
    let fake = start(
        vec![
            (
                "/token",
                token_answer(json!({"email": "vera@example.com", "user_id": 7})),
            ),
            (
                "/method/users.get",
                json_answer(
                    json!({"response": [{"id": 7, "first_name": "Vera", "last_name": "K", "screen_name": "vk7"}]}),
                ),
            ),
        ],
        true,
    )
    .await;
    let vk = provider(&fake, "vk", "/method/users.get?v=5.131");
    let user = warren_oauth::exchange(&vk, &Keys::default(), "code-1", "", "https://app/cb")
        .await
        .unwrap();
    assert_eq!(
        (user.id.as_str(), user.name.as_str(), user.email.as_str()),
        ("7", "Vera K", "vera@example.com")
    );
    assert_eq!(user.access_token, "at-1");
    assert!(user.expires_at.is_some());
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].headers["authorization"].starts_with("Basic "));
    let retry = form(&seen[1].body);
    assert_eq!(retry["client_id"], "client id");
    assert_eq!(retry["client_secret"], "s3cret:&");
    assert_eq!(retry["code"], "code-1");
    assert_eq!(retry["redirect_uri"], "https://app/cb");
    assert!(!retry.contains_key("code_verifier"));
    assert_eq!(seen[2].headers["authorization"], "Bearer at-1");
    assert_eq!(seen[2].path, "/method/users.get?v=5.131");
}

#[tokio::test]
async fn providers_get_the_headers_and_bodies_they_require() {
    let fake = start(
        vec![
            ("/token", token_answer(json!({}))),
            (
                "/helix/users",
                json_answer(json!({"data": [{"id": "t1", "login": "tw", "email": "t@x.co"}]})),
            ),
            (
                "/graphql",
                json_answer(json!({"data": {"viewer": {"id": "l1", "active": true}}})),
            ),
        ],
        false,
    )
    .await;
    let twitch = provider(&fake, "twitch", "/helix/users");
    let user = warren_oauth::exchange(&twitch, &Keys::default(), "c", "v", "")
        .await
        .unwrap();
    assert_eq!(user.username, "tw");
    let linear = provider(&fake, "linear", "/graphql");
    warren_oauth::exchange(&linear, &Keys::default(), "c", "", "")
        .await
        .unwrap();
    let seen = fake.seen.lock().unwrap().clone();
    let token = form(&seen[0].body);
    assert_eq!(token["code_verifier"], "v");
    assert!(!token.contains_key("redirect_uri"));
    assert_eq!(seen[1].headers["client-id"], "client id");
    assert_eq!(seen[3].method, "POST");
    assert_eq!(seen[3].headers["content-type"], "application/json");
    let query: Value = serde_json::from_str(&seen[3].body).unwrap();
    assert!(query["query"].as_str().unwrap().contains("viewer"));
}

#[tokio::test]
async fn gitee_and_github_read_the_email_lists() {
    let fake = start(
        vec![
            ("/token", token_answer(json!({}))),
            (
                "/api/v5/user",
                json_answer(json!({"id": 3, "login": "gi", "email": "hidden"})),
            ),
            (
                "/api/v5/emails",
                json_answer(
                    json!([{"email": "gi@example.com", "state": "confirmed", "scope": ["primary", "committed"]}]),
                ),
            ),
            (
                "/user",
                json_answer(json!({"id": 9, "login": "octo", "email": "public@example.com"})),
            ),
            ("/user/emails", (403, "application/json", "{}".into())),
        ],
        false,
    )
    .await;
    let gitee = provider(&fake, "gitee", "/api/v5/user");
    let user = warren_oauth::exchange(&gitee, &Keys::default(), "c", "", "")
        .await
        .unwrap();
    assert_eq!(user.email, "gi@example.com");
    let github = provider(&fake, "github", "/user");
    let user = warren_oauth::exchange(&github, &Keys::default(), "c", "", "")
        .await
        .unwrap();
    assert_eq!(
        user.email, "",
        "without the email scope there is no verified address"
    );
    assert_eq!(user.raw["email"], "public@example.com");
}

#[tokio::test]
async fn refused_tokens_and_unreadable_users_are_errors() {
    let fake = start(
        vec![
            (
                "/token",
                (
                    200,
                    "application/json",
                    r#"{"error":"bad_verification_code"}"#.into(),
                ),
            ),
            ("/user", json_answer(json!({"id": 1}))),
        ],
        false,
    )
    .await;
    let github = provider(&fake, "github", "/user");
    let err = warren_oauth::exchange(&github, &Keys::default(), "c", "", "").await;
    assert!(matches!(err, Err(Error::Token(_))), "{err:?}");

    let fake = start(
        vec![
            ("/token", token_answer(json!({}))),
            ("/user", (401, "application/json", "{}".into())),
            ("/me", json_answer(json!({"id": 1, "status": "inactive"}))),
        ],
        false,
    )
    .await;
    let github = provider(&fake, "github", "/user");
    let err = warren_oauth::exchange(&github, &Keys::default(), "c", "", "").await;
    assert!(matches!(err, Err(Error::User(_))), "{err:?}");
    let boxed = provider(&fake, "box", "/me");
    let err = warren_oauth::exchange(&boxed, &Keys::default(), "c", "", "").await;
    assert!(matches!(err, Err(Error::User(_))), "{err:?}");
}
