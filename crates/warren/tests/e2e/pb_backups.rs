//! A tenant's own PocketBase-style backups at `/api/backups`: every route for superusers only,
//! names and keys checked, damaged uploads refused, and a create → download → delete → upload
//! → restore round trip that brings the tenant's data back.

use std::io::Write;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::files::multipart;
use crate::support::{Server, eventually, operator, send};

const HOST: &str = "keep.localhost";

/// A zip holding `entries` (`(name, bytes)`).
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

async fn call(server: &Server, method: Method, path: &str, token: &str) -> (u16, Value) {
    let mut request = server.request(method, HOST, path);
    if !token.is_empty() {
        request = request.header("Authorization", token);
    }
    send(request).await
}

async fn upload(server: &Server, token: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    let (content_type, body) = multipart(&[], &[("file", name, bytes)]);
    send(
        server
            .request(Method::POST, HOST, "/api/backups/upload")
            .header("Authorization", token)
            .header("Content-Type", content_type)
            .body(body),
    )
    .await
}

async fn file_token(server: &Server, token: &str) -> String {
    let (status, body) = call(server, Method::POST, "/api/files/token", token).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn keys(server: &Server, token: &str) -> Vec<String> {
    let (status, body) = call(server, Method::GET, "/api/backups", token).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|b| b["key"].as_str().unwrap().to_string())
        .collect()
}

/// A `notes` collection with one note `text`.
async fn notes(server: &Server, token: &str) {
    let (status, body) = send(
        server
            .request(Method::POST, HOST, "/api/collections")
            .header("Authorization", token)
            .json(&json!({ "name": "notes", "type": "base", "listRule": "",
                "fields": [{ "name": "text", "type": "text" }] })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    add_note(server, token, "before").await;
}

async fn add_note(server: &Server, token: &str, text: &str) {
    let (status, body) = send(
        server
            .request(Method::POST, HOST, "/api/collections/notes/records")
            .header("Authorization", token)
            .json(&json!({ "text": text })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn note_texts(server: &Server) -> Option<Vec<String>> {
    let (status, body) = server
        .get(HOST, "/api/collections/notes/records?sort=text")
        .await;
    (status == 200).then(|| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["text"].as_str().unwrap().to_string())
            .collect()
    })
}

/// A regular user of tenant `keep`, signed in: its token.
async fn user_token(server: &Server) -> String {
    let credentials = json!({ "email": "u@example.com", "password": "user-password-1",
        "passwordConfirm": "user-password-1" });
    let (status, body) = send(
        server
            .request(Method::POST, HOST, "/api/collections/users/records")
            .json(&credentials),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        server
            .request(
                Method::POST,
                HOST,
                "/api/collections/users/auth-with-password",
            )
            .json(&json!({ "identity": "u@example.com", "password": "user-password-1" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_backup_route_refuses_guests_users_and_other_tenants_superusers() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("keep").await;
    let other = server.tenant_with_superuser("other").await;
    let user = user_token(&server).await;
    let (status, _) = call(&server, Method::POST, "/api/backups", &token).await;
    assert_eq!(status, 204);
    let key = keys(&server, &token).await.remove(0);
    let routes = [
        (Method::GET, "/api/backups".to_string()),
        (Method::POST, "/api/backups".to_string()),
        (Method::POST, "/api/backups/upload".to_string()),
        (Method::DELETE, format!("/api/backups/{key}")),
        (Method::POST, format!("/api/backups/{key}/restore")),
    ];
    for (method, path) in &routes {
        for (who, caller, expected) in [
            ("guest", "", 401),
            ("user", &user, 403),
            ("other", &other, 401),
        ] {
            let (status, body) = call(&server, method.clone(), path, caller).await;
            assert_eq!(status, expected, "{who} {method} {path}: {body}");
            assert_eq!(body["data"], json!({}), "{body}");
        }
    }
    // Downloads take a superuser file token of this tenant and nothing else.
    let user_file = file_token(&server, &user).await;
    let download = format!("/api/backups/{key}");
    for (who, query, auth) in [
        ("nothing", String::new(), ""),
        ("auth header", String::new(), token.as_str()),
        ("auth token", format!("?token={token}"), ""),
        ("user file token", format!("?token={user_file}"), ""),
    ] {
        let (status, body) = call(&server, Method::GET, &format!("{download}{query}"), auth).await;
        assert_eq!(status, 403, "{who}: {body}");
        assert_eq!(
            body["message"],
            "Insufficient permissions to access the resource."
        );
    }
    let theirs = send(
        server
            .request(Method::POST, "other.localhost", "/api/files/token")
            .header("Authorization", &other),
    )
    .await
    .1["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = call(
        &server,
        Method::GET,
        &format!("{download}?token={theirs}"),
        "",
    )
    .await;
    assert_eq!(status, 403, "another tenant's superuser file token");
    // Nothing was created, deleted or restored by the refused calls.
    assert_eq!(keys(&server, &token).await, [key]);
    // `superuserIPs` holds for downloads too, whose token comes in the query.
    let file = file_token(&server, &token).await;
    let (status, body) = send(
        server
            .request(Method::PATCH, HOST, "/api/settings")
            .header("Authorization", &token)
            .json(&json!({ "superuserIPs": ["10.9.0.1"] })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(
        &server,
        Method::GET,
        &format!("{download}?token={file}"),
        "",
    )
    .await;
    assert_eq!(status, 403, "a superuser outside superuserIPs");
}

#[tokio::test]
async fn names_and_keys_are_checked_and_never_leave_the_backups_directory() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("keep").await;
    let create = async |body: Value| {
        send(
            server
                .request(Method::POST, HOST, "/api/backups")
                .header("Authorization", &token)
                .json(&body),
        )
        .await
    };
    for (name, code) in [
        ("!test.zip", "validation_match_invalid"),
        ("../escape.zip", "validation_match_invalid"),
        ("Upper.zip", "validation_match_invalid"),
        ("plain", "validation_match_invalid"),
        (
            &format!("{}.zip", "a".repeat(150)),
            "validation_length_out_of_range",
        ),
    ] {
        let (status, body) = create(json!({ "name": name })).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["data"]["name"]["code"], code, "{name}: {body}");
    }
    let (status, body) = create(json!({ "name": "mine.zip" })).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = create(json!({ "name": "mine.zip" })).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"]["name"]["code"],
        "validation_backup_name_exists"
    );
    // A generated name, as PocketBase makes it.
    let (status, body) = create(json!({})).await;
    assert_eq!(status, 204, "{body}");
    let listed = keys(&server, &token).await;
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().any(|k| k.starts_with("pb_backup_")),
        "{listed:?}"
    );
    let (status, body) = call(&server, Method::GET, "/api/backups", &token).await;
    assert_eq!(status, 200);
    let first = &body[0];
    assert!(first["size"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(first["modified"].as_str().unwrap().len(), 24, "{body}");

    // Traversal and unknown keys: 404 for downloads, 400 for deletes and restores.
    let file = file_token(&server, &token).await;
    for key in [
        "..%2F..%2Fcontrol.db",
        "..%2Fdata.db",
        "missing.zip",
        "%2Fetc%2Fpasswd",
    ] {
        let path = format!("/api/backups/{key}?token={file}");
        let (status, _) = call(&server, Method::GET, &path, "").await;
        assert_eq!(status, 404, "download {key}");
        let path = format!("/api/backups/{key}");
        let (status, body) = call(&server, Method::DELETE, &path, &token).await;
        assert_eq!(status, 400, "delete {key}: {body}");
        let (status, body) = call(&server, Method::POST, &format!("{path}/restore"), &token).await;
        assert_eq!(status, 400, "restore {key}: {body}");
        assert_eq!(body["message"], "Missing or invalid backup file.");
    }
    assert!(server.tenant_dir("keep").await.join("data.db").exists());
    assert_eq!(keys(&server, &token).await.len(), 2);
}

#[tokio::test]
async fn damaged_uploads_are_refused_with_a_reason_and_change_nothing() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("keep").await;
    notes(&server, &token).await;
    let no_data = zip_of(&[("readme.txt", b"hello")]);
    let bad_db = zip_of(&[("data.db", &[7u8; 8192])]);
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "text.zip",
            b"this is not a zip",
            "validation_invalid_mime_type",
        ),
        (
            "truncated.zip",
            &bad_db[..bad_db.len() / 2],
            "validation_invalid_backup",
        ),
        ("nodata.zip", &no_data, "validation_invalid_backup"),
        ("baddb.zip", &bad_db, "validation_invalid_backup"),
    ];
    for (name, bytes, code) in cases {
        let (status, body) = upload(&server, &token, name, bytes).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["data"]["file"]["code"], code, "{name}: {body}");
        assert!(!body["data"]["file"]["message"].as_str().unwrap().is_empty());
    }
    let (_, body) = upload(&server, &token, "baddb.zip", &bad_db).await;
    assert!(
        body["data"]["file"]["message"]
            .as_str()
            .unwrap()
            .contains("SQLite"),
        "{body}"
    );
    let (status, body) = send(
        server
            .request(Method::POST, HOST, "/api/backups/upload")
            .header("Authorization", &token),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["data"]["file"]["code"], "validation_required");
    // A zip with an unusable name is refused too.
    let (_, good) = {
        call(&server, Method::POST, "/api/backups", &token).await;
        let key = keys(&server, &token).await.remove(0);
        let file = file_token(&server, &token).await;
        server
            .download(HOST, &format!("/api/backups/{key}?token={file}"))
            .await
    };
    let (status, body) = upload(&server, &token, "../up.zip", &good).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(keys(&server, &token).await.len(), 1);
    assert_eq!(note_texts(&server).await.unwrap(), ["before"]);
    let scratch: Vec<_> = std::fs::read_dir(server.data_dir().join("tenants"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(scratch.is_empty(), "scratch left: {scratch:?}");
}

#[tokio::test]
async fn a_backup_round_trip_restores_the_tenant_and_disconnects_realtime_clients() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("keep").await;
    notes(&server, &token).await;
    let (status, body) = send(
        server
            .request(Method::POST, HOST, "/api/backups")
            .header("Authorization", &token)
            .json(&json!({ "name": "first.zip" })),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let file = file_token(&server, &token).await;
    let response = server
        .request(
            Method::GET,
            HOST,
            &format!("/api/backups/first.zip?token={file}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let zip = response.bytes().await.unwrap().to_vec();
    let names: Vec<String> = zip::ZipArchive::new(std::io::Cursor::new(&zip))
        .unwrap()
        .file_names()
        .map(|n| n.unwrap().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "data.db"), "{names:?}");

    add_note(&server, &token, "after").await;
    let (status, _) = call(&server, Method::DELETE, "/api/backups/first.zip", &token).await;
    assert_eq!(status, 204);
    assert!(keys(&server, &token).await.is_empty());
    let (status, body) = upload(&server, &token, "first.zip", &zip).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(keys(&server, &token).await, ["first.zip"]);
    let (status, body) = upload(&server, &token, "first.zip", &zip).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"]["file"]["code"],
        "validation_backup_name_exists"
    );

    let mut realtime = server
        .request(Method::GET, HOST, "/api/realtime")
        .send()
        .await
        .unwrap();
    assert_eq!(realtime.status(), 200);
    assert!(realtime.chunk().await.unwrap().is_some(), "PB_CONNECT");
    assert_eq!(note_texts(&server).await.unwrap(), ["after", "before"]);
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/backups/first.zip/restore",
        &token,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // The realtime stream ends (the tenant was drained), then the restored data answers.
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        while let Ok(Some(_)) = realtime.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the realtime client was not disconnected");
    let restored = eventually(Duration::from_secs(10), async || {
        note_texts(&server).await == Some(vec!["before".to_string()])
    })
    .await;
    assert!(restored, "{:?}", note_texts(&server).await);
    // The backups survive the restore, and the superuser's token still works.
    assert_eq!(keys(&server, &token).await, ["first.zip"]);
}

#[tokio::test]
async fn the_plan_bounds_how_many_backups_are_kept() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("keep").await;
    let (status, body) = operator(
        &server,
        Method::PATCH,
        "/v1/plans/default",
        Some(json!({ "maxBackups": 1 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["maxBackups"], 1);
    let (status, _) = call(&server, Method::POST, "/api/backups", &token).await;
    assert_eq!(status, 204);
    let (status, body) = call(&server, Method::POST, "/api/backups", &token).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 1 backups"),
        "{body}"
    );
    let key = keys(&server, &token).await.remove(0);
    let file = file_token(&server, &token).await;
    let (_, zip) = server
        .download(HOST, &format!("/api/backups/{key}?token={file}"))
        .await;
    let (status, body) = upload(&server, &token, "second.zip", &zip).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = operator(
        &server,
        Method::PATCH,
        "/v1/plans/default",
        Some(json!({ "maxBackups": 0, "maxBackupBytes": 10 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = upload(&server, &token, "second.zip", &zip).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(keys(&server, &token).await.len(), 1);
    // A new backup larger than the bytes left is made, found too large, and not kept.
    let path = format!("/api/backups/{key}");
    assert_eq!(call(&server, Method::DELETE, &path, &token).await.0, 204);
    let (status, body) = call(&server, Method::POST, "/api/backups", &token).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("10 bytes"),
        "{body}"
    );
    assert!(keys(&server, &token).await.is_empty());
}
