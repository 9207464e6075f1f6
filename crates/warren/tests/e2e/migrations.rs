//! Tenants' `pb_migrations` and `$app.runInTransaction`: migrations applied whole at deploy (a
//! failing one refuses the deploy with nothing changed and the old code running), as a tenant
//! opens with files copied in by hand, transactions that commit or roll back while other
//! requests write, and the same migrations and hooks answering alike on PocketBase 0.40.6.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, TOKEN, send};

/// The migrations PocketBase 0.40.6's automigrate wrote for a `posts` collection created and
/// then updated through its API, a data migration, one using the typed field classes, and
/// automigrate's file for an auth collection.
const CREATED: &str = include_str!("fixtures/migrations/1796398982_created_posts.js");
const UPDATED: &str = include_str!("fixtures/migrations/1796398983_updated_posts.js");
const SEED: &str = include_str!("fixtures/migrations/1796398990_seed_posts.js");
const TAGS: &str = include_str!("fixtures/migrations/1796398995_tags.js");
const MEMBERS: &str = include_str!("fixtures/migrations/1796398996_created_members.js");

fn migrations() -> Vec<(String, String)> {
    [
        ("1796398982_created_posts.js", CREATED),
        ("1796398983_updated_posts.js", UPDATED),
        ("1796398990_seed_posts.js", SEED),
        ("1796398995_tags.js", TAGS),
        ("1796398996_created_members.js", MEMBERS),
    ]
    .into_iter()
    .map(|(name, text)| (format!("pb_migrations/{name}"), text.to_string()))
    .collect()
}

/// A later migration that changes data, then one that fails after creating a collection and
/// a record: the whole run must be undone.
const BUMP: &str = r#"migrate((app) => {
  app.db().newQuery("UPDATE posts SET views = views + 100").execute();
}, (app) => {});"#;
const BAD: &str = r#"migrate((app) => {
  app.save(new Collection({ name: "doomed", fields: [{ name: "x", type: "text" }] }));
  const record = new Record(app.findCollectionByNameOrId("doomed"));
  record.set("x", "y");
  app.save(record);
  throw new Error("boom in the bad migration");
}, (app) => {});"#;

fn version_hook(version: &str) -> (String, String) {
    (
        "pb_hooks/main.pb.js".into(),
        format!(
            "routerAdd(\"GET\", \"/api/version\", (e) => e.json(200, {{ version: \"{version}\" }}));\n"
        ),
    )
}

fn tar_gz(files: &[(String, String)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, name, text.as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

async fn deploy(server: &Server, slug: &str, files: &[(String, String)]) -> (u16, Value) {
    send(
        server
            .request(
                Method::PUT,
                "localhost",
                &format!("/v1/tenants/{slug}/code"),
            )
            .bearer_auth(TOKEN)
            .header("content-type", "application/gzip")
            .body(tar_gz(files)),
    )
    .await
}

async fn call(
    server: &Server,
    slug: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.request(method, &format!("{slug}.localhost"), path);
    if !token.is_empty() {
        request = request.header("Authorization", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

async fn get(server: &Server, slug: &str, token: &str, path: &str) -> (u16, Value) {
    call(server, slug, token, Method::GET, path, None).await
}

/// The applied migrations of the tenant's own (`17…`) files.
async fn applied(server: &Server, slug: &str, token: &str) -> Vec<String> {
    let query =
        json!({"query": "SELECT file FROM _migrations WHERE file LIKE '1796%' ORDER BY file"});
    let (status, body) = call(server, slug, token, Method::POST, "/api/sql", Some(query)).await;
    assert_eq!(status, 200, "{body}");
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_str().unwrap().to_string())
        .collect()
}

fn field_names(collection: &Value) -> Vec<String> {
    collection["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn views(list: &Value) -> Vec<(String, i64)> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["title"].as_str().unwrap().to_string(),
                r["views"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn deployed_migrations_run_whole_and_a_failing_one_refuses_the_deploy() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("mig").await;
    let mut files = migrations();
    files.push(version_hook("v1"));
    let (status, body) = deploy(&server, "mig", &files).await;
    assert_eq!(status, 200, "{body}");

    let (status, posts) = get(&server, "mig", &token, "/api/collections/posts").await;
    assert_eq!(status, 200, "{posts}");
    assert_eq!(posts["id"], "pbc_1125843985");
    assert_eq!(
        field_names(&posts),
        ["id", "title", "views", "status", "created", "body"]
    );
    assert_eq!(posts["viewRule"], "");
    assert_eq!(posts["listRule"], "");
    assert_eq!(
        posts["indexes"],
        json!(["CREATE INDEX idx_title ON posts (title)"])
    );
    let list = "/api/collections/posts/records?sort=title";
    let (_, records) = get(&server, "mig", "", list).await;
    assert_eq!(
        views(&records),
        [("First".to_string(), 1), ("Second".to_string(), 2)]
    );
    let (status, tags) = get(&server, "mig", &token, "/api/collections/tags").await;
    assert_eq!(status, 200, "{tags}");
    assert_eq!(
        field_names(&tags),
        ["id", "label", "weight", "pinned", "color"]
    );
    let (_, tag_records) = get(
        &server,
        "mig",
        "",
        "/api/collections/tags/records?sort=label",
    )
    .await;
    let labels: Vec<&str> = tag_records["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["nested", "sql"]);
    let all = [
        "1796398982_created_posts.js",
        "1796398983_updated_posts.js",
        "1796398990_seed_posts.js",
        "1796398995_tags.js",
        "1796398996_created_members.js",
    ];
    assert_eq!(applied(&server, "mig", &token).await, all);
    let (_, version) = get(&server, "mig", "", "/api/version").await;
    assert_eq!(version["version"], "v1");

    // Deployed again with two new files, the second failing: nothing of either stands, the
    // applied ones do not run again, and the old hooks keep answering.
    let mut files = migrations();
    files.push(("pb_migrations/1796399000_bump.js".into(), BUMP.into()));
    files.push(("pb_migrations/1796399001_bad.js".into(), BAD.into()));
    files.push(version_hook("v2"));
    let (status, body) = deploy(&server, "mig", &files).await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("failed to apply migration 1796399001_bad.js")
            && message.contains("boom in the bad migration"),
        "{message}"
    );
    let (status, _) = get(&server, "mig", &token, "/api/collections/doomed").await;
    assert_eq!(status, 404);
    let (_, records) = get(&server, "mig", "", list).await;
    assert_eq!(
        views(&records),
        [("First".to_string(), 1), ("Second".to_string(), 2)]
    );
    assert_eq!(applied(&server, "mig", &token).await, all);
    let (_, version) = get(&server, "mig", "", "/api/version").await;
    assert_eq!(version["version"], "v1");
    let dir = server.tenant_dir("mig").await;
    assert!(!dir.join("pb_migrations/1796399001_bad.js").exists());

    // Without the bad file the bump applies once, and the new hooks go live.
    files.retain(|(name, _)| !name.ends_with("_bad.js"));
    let (status, body) = deploy(&server, "mig", &files).await;
    assert_eq!(status, 200, "{body}");
    let (_, records) = get(&server, "mig", "", list).await;
    assert_eq!(
        views(&records),
        [("First".to_string(), 101), ("Second".to_string(), 102)]
    );
    let (_, version) = get(&server, "mig", "", "/api/version").await;
    assert_eq!(version["version"], "v2");
}

#[tokio::test]
async fn migrations_copied_in_by_hand_run_when_the_tenant_opens() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("byhand").await;
    let dir = server.tenant_dir("byhand").await;
    write_files(&dir, &migrations());
    let server = server.crash_and_restart(&[]);
    let (status, posts) = get(&server, "byhand", &token, "/api/collections/posts").await;
    assert_eq!(status, 200, "{posts}");
    let (_, records) = get(&server, "byhand", "", "/api/collections/posts/records").await;
    assert_eq!(records["totalItems"], 2);
}

fn write_files(dir: &Path, files: &[(String, String)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Routes whose transactions commit, roll back, nest, and hold the writer for a while.
const TX_HOOKS: &str = r#"
routerAdd("POST", "/api/tx/commit", (e) => {
  let seen = 0;
  $app.runInTransaction((txApp) => {
    const notes = txApp.findCollectionByNameOrId("notes");
    for (const title of ["a", "b"]) {
      const record = new Record(notes);
      record.set("title", title);
      txApp.save(record);
    }
    const first = txApp.findFirstRecordByData("notes", "title", "a");
    first.set("title", "a2");
    txApp.save(first);
    seen = txApp.countRecords("notes");
  });
  return e.json(200, { seen, after: $app.countRecords("notes") });
});

routerAdd("POST", "/api/tx/rollback", (e) => {
  $app.runInTransaction((txApp) => {
    const record = new Record(txApp.findCollectionByNameOrId("notes"));
    record.set("title", "never");
    txApp.save(record);
    txApp.delete(txApp.findFirstRecordByData("notes", "title", "b"));
    throw new BadRequestError("changed my mind");
  });
  return e.json(200, {});
});

routerAdd("POST", "/api/tx/nested", (e) => {
  $app.runInTransaction((outer) => {
    const record = new Record(outer.findCollectionByNameOrId("notes"));
    record.set("title", "outer");
    outer.save(record);
    outer.runInTransaction((inner) => {
      const other = new Record(inner.findCollectionByNameOrId("notes"));
      other.set("title", "inner");
      inner.save(other);
    });
  });
  return e.json(200, { count: $app.countRecords("notes") });
});

routerAdd("POST", "/api/tx/invalid", (e) => {
  $app.runInTransaction((txApp) => {
    const record = new Record(txApp.findCollectionByNameOrId("notes"));
    record.set("title", "x".repeat(50));
    txApp.save(record);
  });
  return e.json(200, {});
});

routerAdd("POST", "/api/tx/settings", (e) => {
  $app.runInTransaction((txApp) => {
    const settings = txApp.settings();
    settings.meta.appName = "Renamed in a transaction";
    txApp.save(settings);
  });
  const settings = $app.settings();
  settings.meta.senderName = "Outside";
  $app.save(settings);
  return e.json(200, { name: $app.settings().meta.appName });
});

routerAdd("POST", "/api/tx/hold", (e) => {
  let before = 0, after = 0;
  $app.runInTransaction((txApp) => {
    before = txApp.countRecords("notes");
    const record = new Record(txApp.findCollectionByNameOrId("notes"));
    record.set("title", "held");
    txApp.save(record);
    const until = Date.now() + 100;
    while (Date.now() < until) {}
    after = txApp.countRecords("notes") - 1;
  });
  return e.json(200, { before, after });
});
"#;

#[tokio::test]
async fn transactions_commit_roll_back_and_hold_other_writes_back() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("txn").await;
    let notes = json!({
        "name": "notes",
        "createRule": "",
        "listRule": "",
        "fields": [{"name": "title", "type": "text", "max": 20}],
    });
    let (status, body) = call(
        &server,
        "txn",
        &token,
        Method::POST,
        "/api/collections",
        Some(notes),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let files = [("pb_hooks/tx.pb.js".to_string(), TX_HOOKS.to_string())];
    let (status, body) = deploy(&server, "txn", &files).await;
    assert_eq!(status, 200, "{body}");

    let titles = async |server: &Server| -> Vec<String> {
        let (_, list) = get(
            server,
            "txn",
            "",
            "/api/collections/notes/records?sort=title",
        )
        .await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = call(&server, "txn", "", Method::POST, "/api/tx/commit", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"seen": 2, "after": 2}));
    assert_eq!(titles(&server).await, ["a2", "b"]);

    let (status, body) = call(&server, "txn", "", Method::POST, "/api/tx/rollback", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "Changed my mind.");
    assert_eq!(titles(&server).await, ["a2", "b"]);

    let (status, body) = call(&server, "txn", "", Method::POST, "/api/tx/invalid", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(titles(&server).await, ["a2", "b"]);

    let (status, body) = call(&server, "txn", "", Method::POST, "/api/tx/nested", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 4);

    let (status, body) = call(&server, "txn", "", Method::POST, "/api/tx/settings", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Renamed in a transaction");
    let (_, settings) = get(&server, "txn", &token, "/api/settings").await;
    assert_eq!(settings["meta"]["appName"], "Renamed in a transaction");
    assert_eq!(settings["meta"]["senderName"], "Outside");

    // Creates through the API while a transaction holds the writer: none slips into it (it
    // counts the same before and after spinning), none is lost, nothing deadlocks.
    let create = |title: &'static str| {
        call(
            &server,
            "txn",
            "",
            Method::POST,
            "/api/collections/notes/records",
            Some(json!({ "title": title })),
        )
    };
    let held = call(&server, "txn", "", Method::POST, "/api/tx/hold", None);
    let ((status, body), one, two, three) =
        tokio::join!(held, create("c1"), create("c2"), create("c3"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["before"], body["after"], "{body}");
    for (created, record) in [one, two, three] {
        assert_eq!(created, 200, "{record}");
    }
    let mut now = titles(&server).await;
    now.sort();
    assert_eq!(now, ["a2", "b", "c1", "c2", "c3", "held", "inner", "outer"]);
}

/// The same migrations and a route whose transaction writes, on PocketBase and on Warren.
const ORACLE_HOOKS: &str = r#"
routerAdd("POST", "/api/promote/{title}", (e) => {
  const title = e.request.pathValue("title");
  $app.runInTransaction((txApp) => {
    const record = txApp.findFirstRecordByData("posts", "title", title);
    record.set("views", record.getInt("views") + 10);
    record.set("status", "draft");
    txApp.save(record);
    const copy = new Record(txApp.findCollectionByNameOrId("posts"));
    copy.set("title", title + " (copy)");
    copy.set("views", record.getInt("views"));
    txApp.save(copy);
  });
  return e.json(200, { count: $app.countRecords("posts") });
});

routerAdd("POST", "/api/promote-fail/{title}", (e) => {
  const title = e.request.pathValue("title");
  $app.runInTransaction((txApp) => {
    const record = txApp.findFirstRecordByData("posts", "title", title);
    record.set("views", 999);
    txApp.save(record);
    throw new BadRequestError("not promoted");
  });
  return e.json(200, {});
});
"#;

/// What must agree of a collection: everything but timestamps.
fn comparable_collection(mut collection: Value) -> Value {
    let object = collection.as_object_mut().unwrap();
    object.remove("created");
    object.remove("updated");
    collection
}

/// What must agree of a record list: everything but ids and timestamps.
fn comparable_records(list: &Value) -> Vec<Value> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let object = r.as_object_mut().unwrap();
            for key in ["id", "created", "updated"] {
                object.remove(key);
            }
            r
        })
        .collect()
}

#[tokio::test]
async fn the_same_migrations_and_transactions_answer_alike_on_pocketbase_and_warren() {
    use crate::transfer::PocketBase;

    let dir = tempfile::tempdir().unwrap();
    let mut files = migrations();
    files.push(("pb_hooks/main.pb.js".into(), ORACLE_HOOKS.into()));
    write_files(dir.path(), &files);
    let data = dir.path().join("pb_data");
    PocketBase::upsert_superuser(&data);
    let pocketbase = PocketBase::start(&data).await;
    let login = json!({"identity": "root@example.com", "password": "root-password-1"});
    let (status, body) = send(
        pocketbase
            .request(
                Method::POST,
                "/api/collections/_superusers/auth-with-password",
                "",
            )
            .json(&login),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let pb_token = body["token"].as_str().unwrap().to_string();
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("oracle").await;
    let (status, body) = deploy(&server, "oracle", &files).await;
    assert_eq!(status, 200, "{body}");

    let mut statuses = Vec::new();
    let requests = [
        (Method::GET, "/api/collections/posts", true),
        (Method::GET, "/api/collections/tags", true),
        (Method::GET, "/api/collections/members", true),
        (
            Method::GET,
            "/api/collections/posts/records?sort=title",
            false,
        ),
        (
            Method::GET,
            "/api/collections/tags/records?sort=label",
            false,
        ),
        (Method::POST, "/api/promote/First", false),
        (Method::POST, "/api/promote-fail/Second", false),
        (
            Method::GET,
            "/api/collections/posts/records?sort=title",
            false,
        ),
    ];
    for (method, path, superuser) in requests {
        let (pb_status, pb_body) =
            send(pocketbase.request(method.clone(), path, if superuser { &pb_token } else { "" }))
                .await;
        let token = if superuser { token.as_str() } else { "" };
        let (status, body) = call(&server, "oracle", token, method.clone(), path, None).await;
        assert_eq!(pb_status, status, "{method} {path}: {pb_body} / {body}");
        statuses.push(status);
        if path.contains("/records") {
            assert_eq!(
                comparable_records(&pb_body),
                comparable_records(&body),
                "{method} {path}"
            );
        } else if path.starts_with("/api/collections/") {
            assert_eq!(
                comparable_collection(pb_body),
                comparable_collection(body),
                "{method} {path}"
            );
        } else {
            assert_eq!(pb_body, body, "{method} {path}");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 400, 200]);
}

#[tokio::test]
async fn the_cli_deploys_migrations_refuses_a_failing_one_and_reverts_with_migrate_down() {
    let server = Server::start(&[]);
    assert!(server.cli(&["tenant", "create", "clim"]).status.success());
    let code = tempfile::tempdir().unwrap();
    let mut files = migrations();
    files.truncate(3);
    files.push(("pb_migrations/1796399001_bad.js".into(), BAD.into()));
    write_files(code.path(), &files);
    let dir = code.path().join("pb_migrations");
    let dir = dir.to_str().unwrap();
    let out = server.cli(&["tenant", "deploy", "clim", "--migrations", dir]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("failed to apply migration 1796399001_bad.js"),
        "{stderr}"
    );
    std::fs::remove_file(code.path().join("pb_migrations/1796399001_bad.js")).unwrap();
    let out = server.cli(&["tenant", "deploy", "clim", "--migrations", dir]);
    assert!(out.status.success(), "{out:?}");
    let out = server.cli(&["tenant", "migrate", "clim", "down", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("Reverted 1796398990_seed_posts.js"),
        "{stdout}"
    );
    // Reverted, so `up` applies it again (a server opening the tenant would, too).
    let out = server.cli(&["tenant", "migrate", "clim"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "Applied 1796398990_seed_posts.js");
    let (status, records) = get(&server, "clim", "", "/api/collections/posts/records").await;
    assert_eq!(status, 200, "{records}");
    assert_eq!(records["totalItems"], 2);
}

#[tokio::test]
async fn an_imported_app_runs_only_the_migrations_pocketbase_had_not_applied() {
    use crate::transfer::PocketBase;

    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &migrations());
    let data = dir.path().join("pb_data");
    PocketBase::upsert_superuser(&data);
    // PocketBase applies the four migrations as it starts, then stops.
    drop(PocketBase::start(&data).await);
    let server = Server::start(&[]);

    // A new migration that fails refuses the import whole: no tenant is left behind.
    write_files(
        dir.path(),
        &[(
            "pb_migrations/1796399000_bump.js".into(),
            "migrate((app) => { throw new Error(\"not this release\"); }, (app) => {});".into(),
        )],
    );
    let out = server.cli(&["tenant", "import", "imp", "--from", data.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("not this release"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    let list = server.cli(&["tenant", "list"]);
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("imp"),
        "{list:?}"
    );

    write_files(
        dir.path(),
        &[("pb_migrations/1796399000_bump.js".into(), BUMP.into())],
    );
    let out = server.cli(&["tenant", "import", "imp", "--from", data.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("Applied 1796399000_bump.js"), "{stdout}");
    assert!(
        !stdout.contains("Applied 1796398990_seed_posts.js"),
        "{stdout}"
    );
    let list = "/api/collections/posts/records?sort=title";
    let (status, records) = get(&server, "imp", "", list).await;
    assert_eq!(status, 200, "{records}");
    assert_eq!(
        views(&records),
        [("First".to_string(), 101), ("Second".to_string(), 102)]
    );
}
