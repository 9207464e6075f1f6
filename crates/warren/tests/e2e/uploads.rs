//! Imports and exports through the operator API: a project exported as a zip imports into a
//! new, empty project whose records, users and files answer, and unzips to a data directory
//! that imports again; damaged, unsafe and oversized zips are refused with a clear message and
//! change nothing.

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use zip::write::SimpleFileOptions;

use crate::files::multipart;
use crate::support::{Server, TOKEN, send};

const EMAIL: &str = "root@example.com";
const PASSWORD: &str = "root-password-1";

/// An operator API call on the platform host.
fn operator(server: &Server, method: Method, path: &str) -> reqwest::RequestBuilder {
    server
        .request(method, "localhost", path)
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(60))
}

async fn superuser_token(server: &Server, host: &str) -> String {
    let (status, body) = send(
        server
            .request(
                Method::POST,
                host,
                "/api/collections/_superusers/auth-with-password",
            )
            .json(&json!({"identity": EMAIL, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// A project `slug` with a `notes` collection holding one record with a file, and a user.
/// Returns the record.
async fn project_with_data(server: &Server, slug: &str) -> Value {
    assert!(server.cli(&["tenant", "create", slug]).status.success());
    let out = server.cli(&["superuser", "upsert", slug, EMAIL, PASSWORD]);
    assert!(out.status.success(), "{out:?}");
    let host = format!("{slug}.localhost");
    let token = superuser_token(server, &host).await;
    let (status, body) = send(
        server
            .request(Method::POST, &host, "/api/collections")
            .header("Authorization", &token)
            .json(&json!({
                "name": "notes",
                "listRule": "@request.auth.id != ''",
                "viewRule": "@request.auth.id != ''",
                "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 1000000},
                ],
            })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (content_type, form) = multipart(
        &[("title", "moved along")],
        &[("doc", "hello.txt", b"hello from the old server")],
    );
    let (status, record) = send(
        server
            .request(Method::POST, &host, "/api/collections/notes/records")
            .header("Authorization", &token)
            .header("Content-Type", content_type)
            .body(form),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    let (status, body) = send(
        server
            .request(Method::POST, &host, "/api/collections/users/records")
            .json(&json!({"email": "ann@example.com", "password": "ann-password-1", "passwordConfirm": "ann-password-1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    record
}

async fn export(server: &Server, slug: &str) -> Vec<u8> {
    let response = operator(server, Method::GET, &format!("/v1/tenants/{slug}/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("{slug}-pb_data.zip"))
    );
    response.bytes().await.unwrap().to_vec()
}

async fn import(server: &Server, slug: &str, zip: Vec<u8>) -> (u16, Value) {
    send(
        operator(server, Method::POST, &format!("/v1/tenants/{slug}/import"))
            .header("Content-Type", "application/zip")
            .body(zip),
    )
    .await
}

async fn create(server: &Server, slug: &str) {
    let (status, body) =
        send(operator(server, Method::POST, "/v1/tenants").json(&json!({"slug": slug}))).await;
    assert_eq!(status, 201, "{body}");
}

/// The record `id` of `notes` on `host`, read as the imported user, and its file's bytes.
async fn read_as_user(server: &Server, host: &str, id: &str) -> (Value, Vec<u8>) {
    let (status, auth) = send(
        server
            .request(
                Method::POST,
                host,
                "/api/collections/users/auth-with-password",
            )
            .json(&json!({"identity": "ann@example.com", "password": "ann-password-1"})),
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    let token = auth["token"].as_str().unwrap();
    let (status, record) = send(
        server
            .request(
                Method::GET,
                host,
                &format!("/api/collections/notes/records/{id}"),
            )
            .header("Authorization", token),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    let file = record["doc"].as_str().unwrap();
    let response = server
        .request(Method::GET, host, &format!("/api/files/notes/{id}/{file}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    (record, response.bytes().await.unwrap().to_vec())
}

/// The names of the tenants root's entries that are not tenant directories (scratch files).
fn scratch_left(server: &Server) -> Vec<String> {
    std::fs::read_dir(server.data_dir().join("tenants"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[tokio::test]
async fn an_exported_zip_imports_into_an_empty_project_and_unzips_to_a_data_directory() {
    let server = Server::start(&[]);
    let record = project_with_data(&server, "source").await;
    let id = record["id"].as_str().unwrap();
    let zip = export(&server, "source").await;
    let names: Vec<String> = {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.clone())).unwrap();
        (0..archive.len())
            .map(|i| archive.by_index(i).unwrap().name().unwrap().to_string())
            .collect()
    };
    assert!(names.contains(&"data.db".to_string()), "{names:?}");
    assert!(names.contains(&"auxiliary.db".to_string()), "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("storage/") && n.ends_with(".txt")),
        "{names:?}"
    );

    // Without the operator token nothing is imported or exported.
    let (status, _) =
        send(server.request(Method::GET, "localhost", "/v1/tenants/source/export")).await;
    assert_eq!(status, 401);

    create(&server, "target").await;
    let (status, job) = import(&server, "target", zip.clone()).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "done");
    assert!(job["files"].as_u64().unwrap() >= 1, "{job}");
    assert_eq!(job["uploadBytes"], zip.len());
    let (status, latest) = send(operator(&server, Method::GET, "/v1/tenants/target/import")).await;
    assert_eq!(status, 200);
    assert_eq!(latest["id"], job["id"]);
    let (copied, bytes) = read_as_user(&server, "target.localhost", id).await;
    assert_eq!(copied["title"], "moved along");
    assert_eq!(bytes, b"hello from the old server");
    // The source's superuser came along with its password.
    superuser_token(&server, "target.localhost").await;

    // A project with data is never overwritten.
    let (status, body) = import(&server, "target", zip.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("not empty"),
        "{body}"
    );
    let (status, body) = import(&server, "nosuch", zip.clone()).await;
    assert_eq!(status, 404, "{body}");

    // `?background=true` answers 202 once the zip is checked; `GET .../import` follows the job.
    create(&server, "later").await;
    let background = |zip: Vec<u8>, query: &str| {
        operator(
            &server,
            Method::POST,
            &format!("/v1/tenants/later/import?{query}"),
        )
        .header("Content-Type", "application/zip")
        .body(zip)
    };
    let (status, body) = send(background(zip.clone(), "background=maybe")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(background(b"no zip".to_vec(), "background=true")).await;
    assert_eq!(status, 400, "refused before it starts: {body}");
    let (status, started) = send(background(zip.clone(), "background=true")).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["uploadBytes"], zip.len());
    let done = Instant::now();
    let job = loop {
        let (status, job) = send(operator(&server, Method::GET, "/v1/tenants/later/import")).await;
        assert_eq!(status, 200, "{job}");
        assert_eq!(job["id"], started["id"]);
        if job["status"] != "running" {
            break job;
        }
        assert!(done.elapsed() < Duration::from_secs(30), "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "done", "{job}");
    let (copied, _) = read_as_user(&server, "later.localhost", id).await;
    assert_eq!(copied["title"], "moved along");

    // The target's export unzips to a pb_data directory that imports again, records and all.
    let again = export(&server, "target").await;
    let work = tempfile::tempdir().unwrap();
    let pb_data = work.path().join("pb_data");
    zip::ZipArchive::new(std::io::Cursor::new(again))
        .unwrap()
        .extract(&pb_data)
        .unwrap();
    let out = server.cli(&[
        "tenant",
        "import",
        "third",
        "--from",
        pb_data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let (copied, bytes) = read_as_user(&server, "third.localhost", id).await;
    assert_eq!(copied["title"], "moved along");
    assert_eq!(bytes, b"hello from the old server");

    // The CLI imports the zip itself too, showing its progress.
    let zip_file = work.path().join("export.zip");
    std::fs::write(&zip_file, export(&server, "target").await).unwrap();
    let out = server.cli(&[
        "tenant",
        "import",
        "fourth",
        "--progress",
        "--from",
        zip_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let progress = String::from_utf8_lossy(&out.stderr);
    for step in ["unpack: ", "database: copied", "files: "] {
        assert!(progress.contains(step), "{step} in {progress}");
    }
    let (copied, _) = read_as_user(&server, "fourth.localhost", id).await;
    assert_eq!(copied["title"], "moved along");
    assert_eq!(scratch_left(&server), Vec::<String>::new());
}

/// A zip of `(name, content)` entries.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in entries {
        writer
            .start_file(*name, SimpleFileOptions::default())
            .unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[tokio::test]
async fn damaged_unsafe_and_oversized_zips_are_refused_and_change_nothing() {
    let server = Server::start(&[]);
    project_with_data(&server, "source").await;
    let good = export(&server, "source").await;
    create(&server, "empty").await;
    let started = Instant::now();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "not a readable zip",
        ),
        (
            "not a zip",
            b"hello, I am a text file".to_vec(),
            "not a readable zip",
        ),
        (
            "climbing",
            zip_of(&[("data.db", b"x"), ("../evil.txt", b"x")]),
            "..",
        ),
        (
            "absolute",
            zip_of(&[("data.db", b"x"), ("/tmp/evil.txt", b"x")]),
            "absolute",
        ),
        ("no data", zip_of(&[("notes.txt", b"x")]), "data.db"),
        (
            "not sqlite",
            zip_of(&[("pb_data/data.db", b"not a database")]),
            "SQLite",
        ),
    ];
    for (case, zip, says) in cases {
        let (status, body) = import(&server, "empty", zip).await;
        assert_eq!(status, 400, "{case}: {body}");
        assert_eq!(body["status"], 400, "{case}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(says), "{case}: {message}");
        assert!(
            !message.contains(server.data_dir().to_str().unwrap()),
            "{case}: {message}"
        );
    }
    // Nothing changed: the project has no notes, and nothing is left in scratch space.
    let (status, _) = server
        .get("empty.localhost", "/api/collections/notes/records")
        .await;
    assert_eq!(status, 404);
    assert_eq!(scratch_left(&server), Vec::<String>::new());

    // Over the plan's upload limit: 413 with the limit named, before anything is unpacked.
    let (status, body) = send(
        operator(&server, Method::POST, "/v1/plans")
            .json(&json!({"name": "tiny", "maxUploadBytes": 1000})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        send(operator(&server, Method::PATCH, "/v1/tenants/empty").json(&json!({"plan": "tiny"})))
            .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = import(&server, "empty", good.clone()).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("1000 bytes"),
        "{body}"
    );

    // Back on a plan without limits, the same project takes a good zip: it was left empty.
    let (status, _) = send(
        operator(&server, Method::PATCH, "/v1/tenants/empty").json(&json!({"plan": "default"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, job) = import(&server, "empty", good).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(scratch_left(&server), Vec::<String>::new());
    eprintln!("refusals took {:?}", started.elapsed());
}
