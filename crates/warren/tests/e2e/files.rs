//! File uploads under hostile input: oversized bodies and files, lying content types, client
//! names carrying paths and control characters, decompression bombs and truncated images. Each
//! gets a clear answer and leaves nothing half-written; one tenant never reaches another's files.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, send};

const HOST: &str = "alpha.localhost";

/// A multipart body with text fields and files (`(key, filename, bytes)`).
pub(crate) fn multipart(
    texts: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> (String, Vec<u8>) {
    let boundary = "warren-test-boundary-7d1f";
    let mut body = Vec::new();
    for (key, value) in texts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (key, filename, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A 1×1 RGB PNG made by hand (stored deflate block); other sizes only patch the IHDR, so
/// they make a header that lies about the pixel data.
pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    fn crc(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn adler(bytes: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in bytes {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut typed = kind.to_vec();
        typed.extend_from_slice(data);
        out.extend_from_slice(&typed);
        out.extend_from_slice(&crc(&typed).to_be_bytes());
    }
    let raw = [0u8, 200, 10, 10]; // filter byte + one RGB pixel
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    zlib.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&adler(&raw).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

struct Setup {
    server: Server,
    token: String,
    collection_id: String,
}

/// Tenants `alpha` and `beta`; alpha has collection `docs` with file fields.
async fn setup() -> Setup {
    let server = Server::start(&[]);
    let mut tokens = Vec::new();
    for slug in ["alpha", "beta"] {
        tokens.push(server.tenant_with_superuser(slug).await);
    }
    let token = tokens.swap_remove(0);
    let (status, docs) = send(
        server
            .request(Method::POST, HOST, "/api/collections")
            .header("Authorization", &token)
            .json(&json!({
                "name": "docs",
                "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
                "fields": [
                    {"name": "title", "type": "text", "max": 5},
                    {"name": "files", "type": "file", "maxSelect": 3, "maxSize": 1000, "thumbs": ["8x8"]},
                    {"name": "image", "type": "file", "maxSelect": 1, "mimeTypes": ["image/png"], "thumbs": ["8x8"]}
                ]
            })),
    )
    .await;
    assert_eq!(status, 200, "{docs}");
    Setup {
        server,
        token,
        collection_id: docs["id"].as_str().unwrap().to_string(),
    }
}

async fn upload(
    server: &Server,
    texts: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> (u16, Value) {
    let (content_type, body) = multipart(texts, files);
    send(
        server
            .request(Method::POST, HOST, "/api/collections/docs/records")
            .header("Content-Type", content_type)
            .body(body),
    )
    .await
}

/// Sends a multipart upload over a plain socket and returns the response's status and head.
/// The server may answer (413) and close before the body is fully sent, so the body is written
/// from another task and write errors are ignored.
async fn raw_upload(server: &Server, files: &[(&str, &str, &[u8])]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (content_type, body) = multipart(&[], files);
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /api/collections/docs/records HTTP/1.1\r\nHost: {HOST}:{}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        server.addr.port(),
        body.len()
    );
    let sender = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
    });
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
        }
    }
    sender.abort();
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Stored files of collection `id` anywhere in the data directory.
pub(crate) fn stored(server: &Server, collection_id: &str) -> Vec<PathBuf> {
    files_under(server.data_dir())
        .into_iter()
        .filter(|p| {
            p.components()
                .any(|c| c.as_os_str() == std::ffi::OsStr::new(collection_id))
        })
        .collect()
}

#[tokio::test]
async fn oversized_and_mislabelled_uploads_are_refused_and_leave_nothing() {
    let s = setup().await;
    let big = vec![b'x'; 1001];
    let (status, body) = upload(&s.server, &[], &[("files", "big.txt", &big)]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["data"]["files"]["code"], "validation_file_size_limit");
    assert_eq!(
        body["data"]["files"]["params"],
        json!({"file": "big.txt", "maxSize": 1000})
    );

    let (status, body) = upload(
        &s.server,
        &[],
        &[("image", "fake.png", b"GIF89a not a png")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["image"]["code"],
        "validation_invalid_mime_type"
    );

    // A body past the route's limit (32 MiB + each file field's maxSize × maxSelect) is cut
    // off with 413.
    let huge = vec![b'y'; 40 << 20];
    let (status, head) = raw_upload(&s.server, &[("files", "huge.bin", &huge)]).await;
    assert_eq!(status, 413, "{head}");
    // The client is told the connection closes, so it sends nothing more on it.
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{head}"
    );

    // A valid upload on an otherwise invalid record is taken back out.
    let (status, body) = upload(
        &s.server,
        &[("title", "far too long")],
        &[("files", "ok.txt", b"fine")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["title"]["code"],
        "validation_max_text_constraint"
    );

    assert!(stored(&s.server, &s.collection_id).is_empty());
    let spool_leftovers: Vec<_> = files_under(s.server.data_dir())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".uploads"))
        .collect();
    assert!(spool_leftovers.is_empty(), "{spool_leftovers:?}");
}

#[tokio::test]
async fn client_file_names_never_choose_the_storage_path() {
    let s = setup().await;
    let names = [
        "../../../../etc/passwd",
        "..\\..\\windows\\evil.txt",
        "/abs/path.txt",
        "ctl\u{1}\u{7f}name.txt",
        "..",
    ];
    let files: Vec<(&str, &str, &[u8])> = names
        .iter()
        .take(3)
        .map(|n| ("files", *n, b"data".as_slice()))
        .collect();
    let (status, record) = upload(&s.server, &[], &files).await;
    assert_eq!(status, 200, "{record}");
    let mut all: Vec<String> = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // Control characters in the part header are malformed multipart: refused whole.
    let (status, body) = upload(&s.server, &[], &[("files", names[3], b"data")]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "Something went wrong while processing your request."
    );
    let (status, dots) = upload(&s.server, &[], &[("files", names[4], b"data")]).await;
    assert_eq!(status, 200, "{dots}");
    all.push(dots["files"][0].as_str().unwrap().to_string());
    for name in &all {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'),
            "{name:?}"
        );
        assert!(!name.starts_with('.') && !name.contains(".."), "{name:?}");
    }
    assert!(all[0].starts_with("passwd_"), "{all:?}");
    assert!(all[1].starts_with("evil_"), "{all:?}");
    // Every stored file sits in <storage>/<collection>/<record>/.
    for path in stored(&s.server, &s.collection_id) {
        let parts: Vec<_> = path.components().rev().take(4).collect();
        assert_eq!(parts[3].as_os_str(), "storage", "{path:?}");
    }
    // Names with path pieces are refused at download time too.
    let id = record["id"].as_str().unwrap();
    for bad in ["..%2F..%2Fdata.db", "%2E%2E", "a%00b"] {
        let (status, _) = s
            .server
            .download(HOST, &format!("/api/files/docs/{id}/{bad}"))
            .await;
        assert_eq!(status, 404, "{bad}");
    }
}

#[tokio::test]
async fn bombs_and_truncated_images_are_served_as_originals_without_thumbs() {
    let s = setup().await;
    let bomb = png(100_000, 100_000);
    let good = png(1, 1);
    let truncated = &good[..good.len() - 20];
    for (label, bytes) in [("bomb.png", bomb.as_slice()), ("cut.png", truncated)] {
        let (status, record) = upload(&s.server, &[], &[("image", label, bytes)]).await;
        assert_eq!(status, 200, "{label}: {record}");
        let id = record["id"].as_str().unwrap();
        let name = record["image"].as_str().unwrap();
        let path = format!("/api/files/docs/{id}/{name}?thumb=8x8");
        let (status, served) = s.server.download(HOST, &path).await;
        assert_eq!(status, 200, "{label}");
        assert_eq!(served, bytes, "{label}: the original is served");
        assert!(
            !stored(&s.server, &s.collection_id)
                .iter()
                .any(|p| p.to_string_lossy().contains("thumbs_")),
            "{label}: no thumb was written"
        );
    }
    // A real image gets its thumb, made once even when asked for concurrently.
    let (status, record) = upload(&s.server, &[], &[("image", "ok.png", &good)]).await;
    assert_eq!(status, 200, "{record}");
    let path = format!(
        "/api/files/docs/{}/{}?thumb=8x8",
        record["id"].as_str().unwrap(),
        record["image"].as_str().unwrap()
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(s.server.download(HOST, &path));
    }
    let results = futures_join(tasks).await;
    for (status, bytes) in &results {
        assert_eq!(*status, 200);
        assert_eq!(bytes, &results[0].1);
        assert_eq!(&bytes[16..24], &[0, 0, 0, 8, 0, 0, 0, 8], "an 8x8 png");
    }
    let thumbs: Vec<_> = stored(&s.server, &s.collection_id)
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("thumbs_") && !p.to_string_lossy().ends_with(".attrs")
        })
        .collect();
    assert_eq!(thumbs.len(), 1, "{thumbs:?}");
}

/// Runs the futures concurrently on this task.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn files_of_one_tenant_are_unreachable_from_another() {
    let s = setup().await;
    let (status, record) = upload(&s.server, &[], &[("files", "mine.txt", b"alpha only")]).await;
    assert_eq!(status, 200, "{record}");
    let path = format!(
        "/api/files/{}/{}/{}",
        s.collection_id,
        record["id"].as_str().unwrap(),
        record["files"][0].as_str().unwrap()
    );
    let (status, bytes) = s.server.download(HOST, &path).await;
    assert_eq!((status, bytes.as_slice()), (200, b"alpha only".as_slice()));
    let (status, _) = s.server.download("beta.localhost", &path).await;
    assert_eq!(status, 404);

    // Deleting the record deletes its directory.
    let (status, _) = send(
        s.server
            .request(
                Method::DELETE,
                HOST,
                &format!(
                    "/api/collections/docs/records/{}",
                    record["id"].as_str().unwrap()
                ),
            )
            .header("Authorization", &s.token),
    )
    .await;
    assert_eq!(status, 204);
    assert!(stored(&s.server, &s.collection_id).is_empty());
}
