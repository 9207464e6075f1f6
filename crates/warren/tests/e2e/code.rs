//! Tenant code: deploys through the operator API and the CLI, `pb_public` served at the tenant's
//! `/` as PocketBase serves it, hostile archives and paths refused, and code folders carried
//! through import and export (checked against stock PocketBase).

use std::io::{Read, Write};
use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use crate::support::{Server, TOKEN, send};

/// A tar.gz of `(name, content)` files; a name ending in `@link` becomes a symbolic link to
/// `/etc/passwd`. Names are written raw, as a hostile archiver would.
fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        let name = match name.strip_suffix("@link") {
            Some(name) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name("/etc/passwd").unwrap();
                name
            }
            None => {
                header.set_entry_type(tar::EntryType::Regular);
                name
            }
        };
        header.set_size(if header.entry_type().is_symlink() {
            0
        } else {
            data.len() as u64
        });
        header.set_mode(0o644);
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        let body: &[u8] = if header.entry_type().is_symlink() {
            b""
        } else {
            data
        };
        builder.append(&header, body).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

async fn deploy(server: &Server, slug: &str, archive: Vec<u8>) -> (u16, Value) {
    send(
        server
            .request(
                Method::PUT,
                "localhost",
                &format!("/v1/tenants/{slug}/code"),
            )
            .bearer_auth(TOKEN)
            .header("content-type", "application/gzip")
            .body(archive),
    )
    .await
}

/// Status line and body of a raw HTTP/1.1 GET, for paths an HTTP client would normalise.
fn raw_get(server: &Server, host: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}:{}\r\nConnection: close\r\n\r\n",
        server.addr.port()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

const INDEX: &str = "<!doctype html><title>alpha</title><h1>alpha home</h1>";

fn script() -> String {
    "console.log('alpha asset');\n".repeat(40)
}

/// A route beside the site: the tenant's routes go before its `pb_public` files.
const HOOKS: &str = "routerAdd(\"GET\", \"/hi\", (e) => e.string(200, \"from hooks\"));\n";

fn site() -> Vec<u8> {
    let script = script();
    tar_gz(&[
        ("pb_public/index.html", INDEX.as_bytes()),
        ("pb_public/assets/app.js", script.as_bytes()),
        ("pb_public/docs/index.html", b"<p>docs</p>"),
        ("pb_public/.env", b"SECRET=1"),
        ("pb_hooks/main.pb.js", HOOKS.as_bytes()),
    ])
}

#[tokio::test]
async fn a_deployed_site_is_served_at_the_tenant_root_beside_the_api() {
    let server = Server::start(&[]);
    for slug in ["alpha", "beta"] {
        assert!(server.cli(&["tenant", "create", slug]).status.success());
    }
    let (status, body) = deploy(&server, "alpha", site()).await;
    assert_eq!(status, 200, "{body}");
    let deployed: Vec<&str> = body["deployed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(deployed, ["pb_hooks", "pb_public"]);
    assert_eq!(body["deployed"][1]["files"], 4);

    let host = "alpha.localhost";
    let get = |path: &str| server.request(Method::GET, host, path);
    let response = get("/").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    assert!(headers.contains_key("last-modified"));
    assert_eq!(response.text().await.unwrap(), INDEX);

    // PocketBase's redirects: index.html named outright, a directory without its slash.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let raw = |path: &str| {
        no_redirects
            .get(format!("http://{}{path}", server.addr))
            .header("host", format!("{host}:{}", server.addr.port()))
    };
    let response = raw("/index.html").send().await.unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], "/");
    let response = raw("/docs").send().await.unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], "/docs/");
    assert_eq!(
        get("/docs/").send().await.unwrap().text().await.unwrap(),
        "<p>docs</p>"
    );
    // The tenant's own route answers before the site's fallback would.
    let response = get("/hi").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "from hooks");
    // A missing page falls back to the top index.html (single-page apps).
    let response = get("/app/settings/profile").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), INDEX);

    // A nested asset: its type, validators, 304, gzip and HEAD.
    let response = get("/assets/app.js").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "public, max-age=600");
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(response.text().await.unwrap(), script());
    let response = get("/assets/app.js")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"], etag.as_str());
    assert!(response.bytes().await.unwrap().is_empty());
    let response = get("/assets/app.js")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["vary"], "Accept-Encoding");
    let packed = response.bytes().await.unwrap();
    assert!(packed.len() < script().len() / 4, "{}", packed.len());
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_string(&mut unpacked)
        .unwrap();
    assert_eq!(unpacked, script());
    let response = server
        .request(Method::HEAD, host, "/assets/app.js")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        script().len().to_string().as_str()
    );
    assert!(response.bytes().await.unwrap().is_empty());

    // The API and the dashboard keep their paths; other methods get the JSON 404.
    let (status, health) = server.get(host, "/api/health").await;
    assert_eq!(
        (status, health["code"].clone()),
        (200, 200.into()),
        "{health}"
    );
    let (status, missing) = server.get(host, "/api/nothing-here").await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["status"], 404);
    let dashboard = get("/_/").send().await.unwrap();
    assert_eq!(dashboard.status(), 200);
    let text = dashboard.text().await.unwrap();
    assert!(!text.contains("alpha home"), "{text}");
    let (status, body) = send(server.request(Method::POST, host, "/")).await;
    assert_eq!((status, body["status"].clone()), (404, 404.into()));

    // Traversal, encoded dots and slashes, dotfiles: refused, never the index, never a file.
    for path in [
        "/../data.db",
        "/%2e%2e/data.db",
        "/assets/%2e%2e/%2e%2e/data.db",
        "/assets%2Fapp.js",
        "/assets%2F..%2F..%2Fdata.db",
        "/assets%5capp.js",
        "/.env",
    ] {
        let (status, body) = raw_get(&server, host, path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("wasn't found"), "{path}: {body}");
    }

    // Tenant B never sees tenant A's files.
    for path in ["/", "/assets/app.js", "/docs/"] {
        let (status, body) = server.get("beta.localhost", path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }

    // What is deployed, and the code back as a tar.gz.
    let (status, code) =
        crate::support::operator(&server, Method::GET, "/v1/tenants/alpha/code", None).await;
    assert_eq!(status, 200, "{code}");
    assert_eq!(code["folders"][1]["name"], "pb_public");
    assert_eq!(code["folders"][1]["files"], 4);
    assert!(
        code["folders"][1]["deployed"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let archive = server
        .request(Method::GET, "localhost", "/v1/tenants/alpha/code/archive")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(archive.status(), 200);
    assert_eq!(archive.headers()["content-type"], "application/gzip");
    let bytes = archive.bytes().await.unwrap();
    let mut names = Vec::new();
    let mut unpacked = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    for entry in unpacked.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            names.push(entry.path().unwrap().display().to_string());
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "pb_hooks/main.pb.js",
            "pb_public/.env",
            "pb_public/assets/app.js",
            "pb_public/docs/index.html",
            "pb_public/index.html"
        ]
    );
    // The downloaded archive deploys as it is (to another tenant).
    let (status, body) = deploy(&server, "beta", bytes.to_vec()).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.download("beta.localhost", "/assets/app.js").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_hostile_archive_is_refused_whole_and_the_old_code_stays() {
    let server = Server::start(&[]);
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    let (status, body) = deploy(&server, "alpha", site()).await;
    assert_eq!(status, 200, "{body}");
    let good: (&str, &[u8]) = ("pb_public/index.html", b"<p>new</p>");
    for hostile in [
        vec![good, ("pb_public/../../escape.txt", b"x")],
        vec![good, ("../escape.txt", b"x")],
        vec![good, ("/tmp/escape.txt", b"x")],
        vec![good, ("pb_public/passwd@link", b"")],
        vec![good, ("pb_data/data.db", b"x")],
    ] {
        let (status, body) = deploy(&server, "alpha", tar_gz(&hostile)).await;
        assert_eq!(status, 400, "{hostile:?}: {body}");
        assert_eq!(body["status"], 400);
        let (status, page) = server.download("alpha.localhost", "/").await;
        assert_eq!((status, page.as_slice()), (200, INDEX.as_bytes()));
    }
    let (status, body) = deploy(&server, "alpha", b"not a tar.gz".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = deploy(&server, "nosuch", site()).await;
    assert_eq!(status, 404, "{body}");
    // Nothing of the refused deploys is left in the tenant directory.
    let dir = server.tenant_dir("alpha").await;
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    names.sort();
    assert!(names.is_empty(), "{names:?}");
    assert!(!dir.parent().unwrap().join("escape.txt").exists());
}

#[tokio::test]
async fn the_cli_deploys_directories_and_refuses_links() {
    let server = Server::start(&[]);
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    let work = tempfile::tempdir().unwrap();
    let public = work.path().join("site");
    std::fs::create_dir_all(public.join("img")).unwrap();
    std::fs::write(public.join("index.html"), "<p>from the cli</p>").unwrap();
    std::fs::write(public.join("img/logo.svg"), "<svg/>").unwrap();
    let out = server.cli(&[
        "tenant",
        "deploy",
        "alpha",
        "--public",
        public.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pb_public to alpha: 2 files"));
    // The running server serves the new files at once.
    let (status, page) = server.download("alpha.localhost", "/").await;
    assert_eq!(
        (status, page.as_slice()),
        (200, &b"<p>from the cli</p>"[..])
    );
    let response = server
        .request(Method::GET, "alpha.localhost", "/img/logo.svg")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "image/svg+xml");

    let hostile = work.path().join("hostile");
    std::fs::create_dir_all(&hostile).unwrap();
    std::fs::write(hostile.join("index.html"), "<p>hostile</p>").unwrap();
    std::os::unix::fs::symlink("/etc", hostile.join("etc")).unwrap();
    let out = server.cli(&[
        "tenant",
        "deploy",
        "alpha",
        "--public",
        hostile.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("links"),
        "{out:?}"
    );
    let (_, page) = server.download("alpha.localhost", "/").await;
    assert_eq!(page.as_slice(), b"<p>from the cli</p>");
    let out = server.cli(&["tenant", "deploy", "alpha"]);
    assert!(!out.status.success());
}

/// Writes a PocketBase data directory at `<work>/pb_data` with a site and a hook beside it.
fn pocketbase_app(server: &Server, work: &Path) -> std::path::PathBuf {
    assert!(server.cli(&["tenant", "create", "origin"]).status.success());
    let data = work.join("pb_data");
    let out = server.cli(&["tenant", "export", "origin", "--to", data.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    std::fs::create_dir_all(work.join("pb_public/css")).unwrap();
    std::fs::write(work.join("pb_public/index.html"), "<p>pocketbase app</p>").unwrap();
    std::fs::write(work.join("pb_public/css/site.css"), "p { color: red }").unwrap();
    std::fs::create_dir_all(work.join("pb_hooks")).unwrap();
    std::fs::write(
        work.join("pb_hooks/main.pb.js"),
        "routerAdd(\"GET\", \"/hello\", (e) => e.string(200, \"hello from hooks\"))\n",
    )
    .unwrap();
    data
}

#[tokio::test]
async fn code_beside_a_data_directory_comes_in_with_an_import_and_goes_out_with_an_export() {
    let server = Server::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let data = pocketbase_app(&server, work.path());
    let out = server.cli(&["tenant", "import", "shop", "--from", data.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 code files"),
        "{out:?}"
    );
    let (status, page) = server.download("shop.localhost", "/").await;
    assert_eq!(
        (status, page.as_slice()),
        (200, &b"<p>pocketbase app</p>"[..])
    );
    let dir = server.tenant_dir("shop").await;
    assert!(dir.join("pb_hooks/main.pb.js").is_file());

    // Export: the code lands beside pb_data, and stock PocketBase runs the result.
    let out_dir = tempfile::tempdir().unwrap();
    let exported = out_dir.path().join("pb_data");
    let out = server.cli(&[
        "tenant",
        "export",
        "shop",
        "--to",
        exported.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("pb_public/css/site.css")).unwrap(),
        "p { color: red }"
    );
    let pb = crate::transfer::PocketBase::start(&exported).await;
    let served = pb.request(Method::GET, "/", "").send().await.unwrap();
    assert_eq!(served.text().await.unwrap(), "<p>pocketbase app</p>");
    let hello = pb.request(Method::GET, "/hello", "").send().await.unwrap();
    assert_eq!(hello.text().await.unwrap(), "hello from hooks");
    drop(pb);

    // A second export next to the now full code folders is refused before it writes.
    let again = out_dir.path().join("other").join("pb_data");
    std::fs::create_dir_all(out_dir.path().join("other/pb_public")).unwrap();
    std::fs::write(out_dir.path().join("other/pb_public/keep.txt"), "mine").unwrap();
    let out = server.cli(&["tenant", "export", "shop", "--to", again.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    assert!(!again.join("data.db").exists());

    // A link beside the data directory refuses the import whole.
    std::os::unix::fs::symlink("/etc/passwd", work.path().join("pb_public/passwd")).unwrap();
    let out = server.cli(&[
        "tenant",
        "import",
        "broken",
        "--from",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{out:?}");
}

/// A zip of `dir`'s tree (regular files), names relative to it.
fn zip_tree(dir: &Path) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    let mut pending = vec![std::path::PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in std::fs::read_dir(dir.join(&relative)).unwrap() {
            let entry = entry.unwrap();
            let path = relative.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                writer.start_file(path.to_str().unwrap(), options).unwrap();
                writer
                    .write_all(&std::fs::read(entry.path()).unwrap())
                    .unwrap();
            }
        }
    }
    writer.finish().unwrap().into_inner()
}

#[tokio::test]
async fn code_at_the_top_of_an_uploaded_zip_comes_in_with_the_import() {
    let server = Server::start(&[]);
    let work = tempfile::tempdir().unwrap();
    pocketbase_app(&server, work.path());
    let zip = zip_tree(work.path());
    assert!(server.cli(&["tenant", "create", "moved"]).status.success());
    let (status, job) = send(
        server
            .request(Method::POST, "localhost", "/v1/tenants/moved/import")
            .bearer_auth(TOKEN)
            .header("content-type", "application/zip")
            .body(zip),
    )
    .await;
    assert_eq!(status, 200, "{job}");
    let (status, page) = server.download("moved.localhost", "/").await;
    assert_eq!(
        (status, page.as_slice()),
        (200, &b"<p>pocketbase app</p>"[..])
    );
    let (status, code) =
        crate::support::operator(&server, Method::GET, "/v1/tenants/moved/code", None).await;
    assert_eq!(status, 200, "{code}");
    let names: Vec<&str> = code["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pb_hooks", "pb_public"]);
}

fn hooks(source: &str) -> Vec<u8> {
    tar_gz(&[("pb_hooks/main.pb.js", source.as_bytes())])
}

fn hello(answer: &str) -> String {
    format!("routerAdd(\"GET\", \"/hello\", (e) => e.string(200, \"{answer}\"));\n")
}

async fn get_hello(server: &Server, client: &reqwest::Client) -> (u16, String) {
    let url = format!("http://{}/hello", server.addr);
    let response = client
        .get(url)
        .header("host", "alpha.localhost")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn deployed_hooks_are_checked_and_answer_at_once_without_a_restart() {
    let server = Server::start(&[]);
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    // One client keeps its connection open across the deploys.
    let client = reqwest::Client::builder().build().unwrap();

    let (status, body) = deploy(&server, "alpha", hooks(&hello("v1"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_hello(&server, &client).await, (200, "v1".into()));

    let (status, body) = deploy(&server, "alpha", hooks(&hello("v2"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_hello(&server, &client).await, (200, "v2".into()));

    // A syntax error refuses the deploy, naming the file and the error; v2 keeps answering.
    let broken = "routerAdd(\"GET\", \"/hello\", (e) => {\n  e.string(200, \"v3\")\n";
    let (status, body) = deploy(&server, "alpha", hooks(broken)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], 400, "{body}");
    let message = body["message"].as_str().unwrap();
    // QuickJS names the file and the line where the source ends unfinished.
    assert!(message.contains("hooks were refused"), "{message}");
    assert!(message.contains("main.pb.js:3"), "{message}");
    assert!(message.contains("unexpected token"), "{message}");
    assert_eq!(get_hello(&server, &client).await, (200, "v2".into()));

    // An exception while loading refuses too, and the scratch load registered nothing.
    let throws = format!("{}throw new Error(\"not ready\");\n", hello("v4"));
    let (status, body) = deploy(&server, "alpha", hooks(&throws)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("not ready"),
        "{body}"
    );
    assert_eq!(get_hello(&server, &client).await, (200, "v2".into()));

    // The CLI refuses the same file, and leaves the deployed hooks as they were.
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("main.pb.js"), broken).unwrap();
    let out = server.cli(&[
        "tenant",
        "deploy",
        "alpha",
        "--hooks",
        work.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("main.pb.js:3") && stderr.contains("unexpected token"),
        "{stderr}"
    );
    let hooks_file = server.tenant_dir("alpha").await.join("pb_hooks/main.pb.js");
    assert_eq!(std::fs::read_to_string(hooks_file).unwrap(), hello("v2"));
    assert_eq!(get_hello(&server, &client).await, (200, "v2".into()));
}

const CRON_HOOKS: &str = r#"
cronAdd("writer", "* * * * *", () => {
  const notes = $app.findCollectionByNameOrId("notes");
  $app.save(new Record(notes, { title: "tick" }));
});
cronAdd("runaway", "0 0 1 1 *", () => { for (;;) {} });
cronAdd("gone", "* * * * *", () => {});
cronRemove("gone");
"#;

async fn as_superuser(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .request(method, "alpha.localhost", path)
        .header("Authorization", token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

async fn cron_ids(server: &Server, token: &str) -> Vec<String> {
    let (status, body) = as_superuser(server, token, Method::GET, "/api/crons", None).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn cron_jobs_of_the_hooks_register_when_the_tenant_opens_and_run_in_its_sandbox() {
    let server = Server::start(&["--cron-minute", "1s"]);
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    // Hooks on disk before the tenant first opens: opening it registers their jobs, though no
    // request needs the code.
    let hooks_dir = server.tenant_dir("alpha").await.join("pb_hooks");
    std::fs::create_dir_all(&hooks_dir).unwrap();
    std::fs::write(hooks_dir.join("jobs.pb.js"), CRON_HOOKS).unwrap();
    let token = server.superuser("alpha").await;
    let registered = crate::support::eventually(std::time::Duration::from_secs(10), async || {
        cron_ids(&server, &token)
            .await
            .contains(&"writer".to_string())
    })
    .await;
    assert!(registered, "{:?}", cron_ids(&server, &token).await);
    let ids = cron_ids(&server, &token).await;
    assert_eq!(
        ids,
        [
            "runaway",
            "writer",
            "__pbDBOptimize__",
            "__pbMFACleanup__",
            "__pbOTPCleanup__",
            "__pbLogsCleanup__"
        ]
    );

    // The writer saves a record each (accelerated) minute once its collection exists.
    let notes = serde_json::json!({
        "name": "notes",
        "listRule": "",
        "fields": [{"name": "title", "type": "text"}],
    });
    let (status, body) = as_superuser(
        &server,
        &token,
        Method::POST,
        "/api/collections",
        Some(notes),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let written = crate::support::eventually(std::time::Duration::from_secs(15), async || {
        let (_, body) = as_superuser(
            &server,
            &token,
            Method::GET,
            "/api/collections/notes/records",
            None,
        )
        .await;
        body["totalItems"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert!(written, "no record was written by the cron job");

    // A runaway job run on request is interrupted at the CPU limit and logged; the tenant
    // keeps answering.
    let (status, body) =
        as_superuser(&server, &token, Method::POST, "/api/crons/runaway", None).await;
    assert_eq!(status, 204, "{body}");
    let logged = crate::support::eventually(std::time::Duration::from_secs(15), async || {
        let (_, body) =
            as_superuser(&server, &token, Method::GET, "/api/logs?perPage=200", None).await;
        let text = body.to_string();
        text.contains("cron job runaway") && text.contains("CPU limit")
    })
    .await;
    assert!(logged, "the interrupted job was not logged");
    assert_eq!(
        as_superuser(&server, &token, Method::GET, "/api/health", None)
            .await
            .0,
        200
    );

    // A deploy replaces the code's jobs with the new code's.
    let next = "cronAdd(\"other\", \"*/5 * * * *\", () => {});\n";
    let (status, body) = deploy(&server, "alpha", hooks(next)).await;
    assert_eq!(status, 200, "{body}");
    let replaced = crate::support::eventually(std::time::Duration::from_secs(10), async || {
        let ids = cron_ids(&server, &token).await;
        ids.contains(&"other".to_string()) && !ids.contains(&"writer".to_string())
    })
    .await;
    assert!(replaced, "{:?}", cron_ids(&server, &token).await);
    // A bad expression refuses the deploy with the cron parser's message.
    let bad = "cronAdd(\"bad\", \"not a cron\", () => {});\n";
    let (status, body) = deploy(&server, "alpha", hooks(bad)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("failed to add new cron job"),
        "{body}"
    );
}

/// `warren tenant deploy` and `warren tenant migrate` on the data directory of a running
/// server: the server reloads the tenant it has open (its hooks and its collections) without
/// a restart, and keeps serving meanwhile.
#[tokio::test]
async fn cli_changes_reach_the_running_server() {
    let server = Server::start(&[]);
    server.tenant_with_superuser("live").await;
    let host = "live.localhost";
    assert_eq!(server.get(host, "/api/live").await.0, 404);
    assert_eq!(
        server.get(host, "/api/collections/notes/records").await.0,
        404
    );

    let work = tempfile::tempdir().unwrap();
    let hooks = work.path().join("hooks");
    let migrations = work.path().join("migrations");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        hooks.join("main.pb.js"),
        r#"routerAdd("GET", "/api/live", (e) => e.json(200, { release: 1 }));"#,
    )
    .unwrap();
    std::fs::write(
        migrations.join("1_notes.js"),
        r#"migrate((app) => {
  app.save(new Collection({ type: "base", name: "notes", listRule: "", fields: [{ name: "title", type: "text" }] }));
}, (app) => {
  app.delete(app.findCollectionByNameOrId("notes"));
});"#,
    )
    .unwrap();
    let out = server.cli(&[
        "tenant",
        "deploy",
        "live",
        "--hooks",
        hooks.to_str().unwrap(),
        "--migrations",
        migrations.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("The server running on this data directory reloads live."),
        "{stderr}"
    );
    assert!(
        crate::support::eventually(std::time::Duration::from_secs(5), async || {
            server.get(host, "/api/live").await.0 == 200
                && server.get(host, "/api/collections/notes/records").await.0 == 200
        })
        .await,
        "the running server kept the old code or collections"
    );

    // Reverting the migration from the CLI drops the collection on the running server too.
    let out = server.cli(&["tenant", "migrate", "live", "down"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        crate::support::eventually(std::time::Duration::from_secs(5), async || {
            server.get(host, "/api/collections/notes/records").await.0 == 404
        })
        .await,
        "the running server still lists the reverted collection"
    );
    assert_eq!(server.get(host, "/api/health").await.0, 200);
}
