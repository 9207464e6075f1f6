//! Records across tenants: the same collection name, record id and credentials in two tenants
//! never reach each other's data; hostile bodies and filters write nothing and leak nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, send};

const EMAIL: &str = "root@example.com";
const PASSWORD: &str = "root-password-1";

struct Tenant {
    host: String,
    superuser: String,
}

async fn tenant(server: &Server, slug: &str) -> Tenant {
    Tenant {
        host: format!("{slug}.localhost"),
        superuser: server.tenant_with_superuser(slug).await,
    }
}

async fn call(
    server: &Server,
    host: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.request(method, host, path);
    if !token.is_empty() {
        request = request.header("Authorization", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

/// Both tenants get a `notes` collection readable by its owner only, and a user `u@example.com`
/// with the same id and password.
async fn setup(server: &Server, t: &Tenant) {
    let users = json!({"listRule": "", "viewRule": "", "createRule": ""});
    let (status, body) = call(
        server,
        &t.host,
        &t.superuser,
        Method::PATCH,
        "/api/collections/users",
        Some(users),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let notes = json!({
        "name": "notes",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}
        ],
        "listRule": "owner = @request.auth.id",
        "viewRule": "owner = @request.auth.id",
        "createRule": "@request.auth.id != ''",
        "updateRule": "owner = @request.auth.id",
        "deleteRule": "owner = @request.auth.id"
    });
    let (status, body) = call(
        server,
        &t.host,
        &t.superuser,
        Method::POST,
        "/api/collections",
        Some(notes),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user = json!({"id": "sameuserid00001", "email": "u@example.com", "password": "user-password-1", "passwordConfirm": "user-password-1"});
    let (status, body) = call(
        server,
        &t.host,
        "",
        Method::POST,
        "/api/collections/users/records",
        Some(user),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn user_token(server: &Server, host: &str) -> String {
    let (status, body) = call(
        server,
        host,
        "",
        Method::POST,
        "/api/collections/users/auth-with-password",
        Some(json!({"identity": "u@example.com", "password": "user-password-1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn count(server: &Server, t: &Tenant) -> i64 {
    let (status, body) = call(
        server,
        &t.host,
        &t.superuser,
        Method::GET,
        "/api/collections/notes/records",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["totalItems"].as_i64().unwrap()
}

#[tokio::test]
async fn a_tenant_never_reaches_another_tenants_records_or_users() {
    let server = Server::start(&[]);
    let alpha = tenant(&server, "alpha").await;
    let beta = tenant(&server, "beta").await;
    setup(&server, &alpha).await;
    setup(&server, &beta).await;
    let alpha_user = user_token(&server, &alpha.host).await;

    let note =
        json!({"id": "alphanote00001a", "title": "alpha secret", "owner": "sameuserid00001"});
    let (status, body) = call(
        &server,
        &alpha.host,
        &alpha_user,
        Method::POST,
        "/api/collections/notes/records",
        Some(note),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Alpha's user token is a guest in beta, even though beta has a user with the same id.
    let path = "/api/collections/notes/records/alphanote00001a";
    let (status, _) = call(&server, &beta.host, &alpha_user, Method::GET, path, None).await;
    assert_eq!(status, 404);
    let (status, body) = call(
        &server,
        &beta.host,
        &alpha_user,
        Method::GET,
        "/api/collections/notes/records",
        None,
    )
    .await;
    assert_eq!((status, body["totalItems"].as_i64()), (200, Some(0)));
    // Beta's superuser does not see alpha's record either.
    let (status, _) = call(
        &server,
        &beta.host,
        &beta.superuser,
        Method::GET,
        path,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &server,
        &beta.host,
        &beta.superuser,
        Method::DELETE,
        path,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &server,
        &beta.host,
        &alpha.superuser,
        Method::PATCH,
        path,
        Some(json!({"title": "x"})),
    )
    .await;
    assert!(status == 403 || status == 404, "{status}");
    // Alpha's superuser token cannot use beta's superuser-only APIs.
    let (status, _) = call(
        &server,
        &beta.host,
        &alpha.superuser,
        Method::GET,
        "/api/collections",
        None,
    )
    .await;
    assert_eq!(status, 401);
    // A relation in beta cannot point at alpha's record.
    let beta_user = user_token(&server, &beta.host).await;
    let (_, notes) = call(
        &server,
        &beta.host,
        &beta.superuser,
        Method::GET,
        "/api/collections/notes",
        None,
    )
    .await;
    let relation = json!({"name": "links", "fields": [{"name": "note", "type": "relation", "collectionId": notes["id"], "maxSelect": 1}], "createRule": ""});
    let (status, body) = call(
        &server,
        &beta.host,
        &beta.superuser,
        Method::POST,
        "/api/collections",
        Some(relation),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &server,
        &beta.host,
        &beta_user,
        Method::POST,
        "/api/collections/links/records",
        Some(json!({"note": "alphanote00001a"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["note"]["code"],
        "validation_missing_rel_records"
    );

    // Alpha still has exactly its one record, beta none.
    assert_eq!(count(&server, &alpha).await, 1);
    assert_eq!(count(&server, &beta).await, 0);
    let (status, body) = call(&server, &alpha.host, &alpha_user, Method::GET, path, None).await;
    assert_eq!(
        (status, body["title"].as_str()),
        (200, Some("alpha secret"))
    );
}

#[tokio::test]
async fn hostile_bodies_and_filters_write_nothing() {
    let server = Server::start(&[]);
    let alpha = tenant(&server, "alpha").await;
    setup(&server, &alpha).await;
    let user = user_token(&server, &alpha.host).await;
    let records = "/api/collections/notes/records";

    for raw in [
        "{\"title\": ",
        "[1,2]",
        "null",
        "\"text\"",
        "{\"title\": \"\\ud800\"}",
    ] {
        let response = server
            .request(Method::POST, &alpha.host, records)
            .header("Authorization", &user)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{raw}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["message"], "Something went wrong while processing your request.",
            "{raw}"
        );
    }
    let response = server
        .request(Method::POST, &alpha.host, records)
        .header("Authorization", &user)
        .header("content-type", "text/plain")
        .body("title=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(33 << 20));
    // Its own connection: the server answers 413 without reading the rest and closes it.
    let response = reqwest::Client::new()
        .post(format!("http://{}{records}", server.addr))
        .header(
            reqwest::header::HOST,
            format!("{}:{}", alpha.host, server.addr.port()),
        )
        .header("Authorization", &user)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    if let Ok(response) = response {
        assert_eq!(response.status(), 413);
    }

    // A filter that looks like SQL is a plain string comparison or a 400, never SQL.
    for filter in [
        "title = \"x'; DROP TABLE notes; --\"",
        "1=1) OR (1=1",
        "title = '' OR 1=1 --",
        "owner.password != ''",
    ] {
        let path = format!("{records}?filter={}", urlencode(filter));
        let (status, body) = call(&server, &alpha.host, &user, Method::GET, &path, None).await;
        assert!(status == 200 || status == 400, "{filter}: {status} {body}");
        if status == 200 {
            assert_eq!(body["totalItems"], 0, "{filter}");
        } else {
            assert_eq!(body["data"], json!({}), "{filter}");
        }
    }
    // A hidden field can't be probed by a client filter or sort.
    let (status, _) = call(
        &server,
        &alpha.host,
        &user,
        Method::GET,
        "/api/collections/users/records?filter=password%21%3D%27%27",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &server,
        &alpha.host,
        &user,
        Method::GET,
        "/api/collections/users/records?sort=tokenKey",
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(count(&server, &alpha).await, 0);
    let (status, body) = call(
        &server,
        &alpha.host,
        &alpha.superuser,
        Method::GET,
        "/api/collections/users/records",
        None,
    )
    .await;
    assert_eq!((status, body["totalItems"].as_i64()), (200, Some(1)));
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn acknowledged_writes_survive_a_crash() {
    let server = Server::start(&[]);
    let alpha = tenant(&server, "alpha").await;
    setup(&server, &alpha).await;
    let user = user_token(&server, &alpha.host).await;

    // Many concurrent creates, so the writer commits them in groups; the server is killed
    // with SIGKILL while more are in flight.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..16 {
        let (client, addr, host, user, acknowledged) = (
            server.client.clone(),
            server.addr,
            alpha.host.clone(),
            user.clone(),
            acknowledged.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in 0..400 {
                let id = format!("crash{w:02}x{i:07}");
                let request = client
                    .post(format!("http://{addr}/api/collections/notes/records"))
                    .header(reqwest::header::HOST, format!("{host}:{}", addr.port()))
                    .header("Authorization", &user)
                    .json(&json!({"id": id, "title": "t", "owner": "sameuserid00001"}));
                match request.send().await {
                    Ok(response) if response.status() == 200 => {
                        acknowledged.lock().unwrap().push(id)
                    }
                    _ => return,
                }
            }
        }));
    }
    // Crash once a good number of writes are acknowledged (bounded wait).
    let started = std::time::Instant::now();
    while acknowledged.lock().unwrap().len() < 300
        && started.elapsed() < std::time::Duration::from_secs(30)
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let server = server.crash_and_restart(&[]);
    for writer in writers {
        let _ = writer.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 300,
        "only {} writes were acknowledged",
        acknowledged.len()
    );

    // Every acknowledged record is there after the restart.
    let (status, body) = send(
        server
            .request(
                Method::POST,
                &alpha.host,
                "/api/collections/_superusers/auth-with-password",
            )
            .json(&json!({ "identity": EMAIL, "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let superuser = body["token"].as_str().unwrap().to_string();
    let mut stored = std::collections::HashSet::new();
    for page in 1.. {
        let path = format!(
            "/api/collections/notes/records?perPage=1000&page={page}&skipTotal=1&fields=id"
        );
        let (status, body) = call(&server, &alpha.host, &superuser, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().unwrap();
        stored.extend(items.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        if items.len() < 1000 {
            break;
        }
    }
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
}
