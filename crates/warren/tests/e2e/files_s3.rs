//! File storage in a real S3-compatible server (SeaweedFS, started by `tests/suites/s3`, which
//! passes its endpoint and credentials in `WARREN_TEST_S3_*`). Ignored in the plain test run;
//! the suite runs them with `--ignored` and they fail when the server is not there.

use reqwest::Method;
use serde_json::json;

use crate::support::{Server, send};

const EMAIL: &str = "root@example.com";
const PASSWORD: &str = "root-password-1";
const HOST: &str = "alpha.localhost";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run tests/suites/s3"))
}

#[tokio::test]
#[ignore = "needs the S3 server that tests/suites/s3 starts"]
async fn uploads_thumbs_and_deletes_go_through_the_tenants_bucket() {
    let server = Server::start(&[]);
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    assert!(
        server
            .cli(&["superuser", "upsert", "alpha", EMAIL, PASSWORD])
            .status
            .success()
    );
    let (_, auth) = send(
        server
            .request(
                Method::POST,
                HOST,
                "/api/collections/_superusers/auth-with-password",
            )
            .json(&json!({ "identity": EMAIL, "password": PASSWORD })),
    )
    .await;
    let token = auth["token"].as_str().unwrap().to_string();
    let (status, body) = send(
        server
            .request(Method::PATCH, HOST, "/api/settings")
            .header("Authorization", &token)
            .json(&json!({ "s3": {
                "enabled": true,
                "bucket": env("WARREN_TEST_S3_BUCKET"),
                "region": "us-east-1",
                "endpoint": env("WARREN_TEST_S3_ENDPOINT"),
                "accessKey": env("WARREN_TEST_S3_ACCESS_KEY"),
                "secret": env("WARREN_TEST_S3_SECRET"),
                "forcePathStyle": true
            }})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, docs) = send(
        server
            .request(Method::POST, HOST, "/api/collections")
            .header("Authorization", &token)
            .json(&json!({
                "name": "docs",
                "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
                "fields": [{"name": "files", "type": "file", "maxSelect": 3, "thumbs": ["4x4"]}]
            })),
    )
    .await;
    assert_eq!(status, 200, "{docs}");
    let collection_id = docs["id"].as_str().unwrap();

    let png = crate::files::png(1, 1);
    let (content_type, body) = crate::files::multipart(
        &[],
        &[
            ("files", "hello.txt", b"hello s3".as_slice()),
            ("files", "pic.png", &png),
        ],
    );
    let (status, record) = send(
        server
            .request(Method::POST, HOST, "/api/collections/docs/records")
            .header("Content-Type", content_type)
            .body(body),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    let id = record["id"].as_str().unwrap();
    let text = record["files"][0].as_str().unwrap();
    let image = record["files"][1].as_str().unwrap();
    // Nothing on local disk: the bytes are in the bucket.
    assert!(crate::files::stored(&server, collection_id).is_empty());

    let get = |path: String| {
        let request = server.request(Method::GET, HOST, &path);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            (status, headers, response.bytes().await.unwrap().to_vec())
        }
    };
    let (status, headers, bytes) = get(format!("/api/files/docs/{id}/{text}")).await;
    assert_eq!((status, bytes.as_slice()), (200, b"hello s3".as_slice()));
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    let (status, _, bytes) = server
        .request(Method::GET, HOST, &format!("/api/files/docs/{id}/{text}"))
        .header("Range", "bytes=6-7")
        .send()
        .await
        .map(|r| (r.status().as_u16(), (), r))
        .unwrap();
    assert_eq!(status, 206);
    assert_eq!(bytes.bytes().await.unwrap().as_ref(), b"s3");
    let (status, _, thumb) = get(format!("/api/files/docs/{id}/{image}?thumb=4x4")).await;
    assert_eq!(status, 200);
    assert_eq!(&thumb[16..24], &[0, 0, 0, 4, 0, 0, 0, 4], "a 4x4 thumb");

    // Removing a file deletes it (and its thumbs) from the bucket.
    let (status, updated) = send(
        server
            .request(
                Method::PATCH,
                HOST,
                &format!("/api/collections/docs/records/{id}"),
            )
            .json(&json!({ "files-": [image] })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(get(format!("/api/files/docs/{id}/{image}")).await.0, 404);

    // Deleting the record empties its prefix: re-adding the name through the database cannot
    // bring the bytes back.
    let (status, _) = send(server.request(
        Method::DELETE,
        HOST,
        &format!("/api/collections/docs/records/{id}"),
    ))
    .await;
    assert_eq!(status, 204);
    assert_eq!(get(format!("/api/files/docs/{id}/{text}")).await.0, 404);
}

#[tokio::test]
#[ignore = "needs the S3 server that tests/suites/s3 starts"]
async fn the_platform_bucket_holds_files_of_tenants_without_their_own() {
    let (endpoint, bucket) = (env("WARREN_TEST_S3_ENDPOINT"), env("WARREN_TEST_S3_BUCKET"));
    let (access, secret) = (
        env("WARREN_TEST_S3_ACCESS_KEY"),
        env("WARREN_TEST_S3_SECRET"),
    );
    let server = Server::start(&[
        "--s3-endpoint",
        &endpoint,
        "--s3-bucket",
        &bucket,
        "--s3-access-key",
        &access,
        "--s3-secret",
        &secret,
    ]);
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    assert!(
        server
            .cli(&["superuser", "upsert", "alpha", EMAIL, PASSWORD])
            .status
            .success()
    );
    let (_, auth) = send(
        server
            .request(
                Method::POST,
                HOST,
                "/api/collections/_superusers/auth-with-password",
            )
            .json(&json!({ "identity": EMAIL, "password": PASSWORD })),
    )
    .await;
    let token = auth["token"].as_str().unwrap().to_string();
    let (status, docs) = send(
        server
            .request(Method::POST, HOST, "/api/collections")
            .header("Authorization", &token)
            .json(&json!({
                "name": "docs", "listRule": "", "viewRule": "", "createRule": "",
                "fields": [{"name": "files", "type": "file", "maxSelect": 1}]
            })),
    )
    .await;
    assert_eq!(status, 200, "{docs}");
    let (content_type, body) = crate::files::multipart(
        &[],
        &[("files", "note.txt", b"in the platform bucket".as_slice())],
    );
    let (status, record) = send(
        server
            .request(Method::POST, HOST, "/api/collections/docs/records")
            .header("Content-Type", content_type)
            .body(body),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    // No tenant S3 settings, yet nothing on local disk: the file went to the platform bucket.
    assert!(crate::files::stored(&server, docs["id"].as_str().unwrap()).is_empty());
    let path = format!(
        "/api/files/docs/{}/{}",
        record["id"].as_str().unwrap(),
        record["files"].as_str().unwrap()
    );
    let response = server
        .request(Method::GET, HOST, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        b"in the platform bucket"
    );
}
