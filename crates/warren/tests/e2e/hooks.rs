//! Tenants' own JavaScript (`pb_hooks`): custom routes with middlewares, record hooks that
//! change or refuse writes, `$app` reads, and the sandbox holding runaway code to its tenant.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, eventually, send};

const MAIN: &str = r#"
routerAdd("GET", "/api/hello/{name}", (e) => {
  const util = require("./lib/util.js");
  return e.json(200, { message: "Hello " + e.request.pathValue("name"), double: util.double(21) });
});

routerAdd("GET", "/api/me", (e) => {
  return e.json(200, { id: e.auth.id, collection: e.auth.collection().name });
}, $apis.requireAuth());

routerAdd("GET", "/api/admin-only", (e) => e.string(200, "ok"), $apis.requireSuperuserAuth());

routerAdd("POST", "/api/echo", (e) => {
  const info = e.requestInfo();
  return e.json(201, { body: info.body, q: info.query.q, custom: info.headers.x_custom, url: e.request.url.query().get("q") });
});

routerAdd("GET", "/api/refuse", (e) => { throw new BadRequestError("not today"); });
routerAdd("GET", "/api/plain-throw", (e) => { throw new Error("internal detail"); });
routerAdd("GET", "/api/escape", (e) => e.json(200, require("../data.db")));
routerAdd("GET", "/api/html", (e) => e.html(200, "<p>hi</p>"));
routerAdd("GET", "/api/nothing", (e) => e.noContent(204));
routerAdd("GET", "/api/away", (e) => e.redirect(307, "/api/hello/there"));
routerAdd("GET", "/api/missing-method", (e) => e.json(200, $app.noSuchMethod()));

// The built-in route keeps precedence over this one.
routerAdd("GET", "/api/health", (e) => e.json(200, { hijacked: true }));

routerAdd("GET", "/api/notes-summary", (e) => {
  const first = $app.findFirstRecordByFilter("notes", "title = {:t}", { t: "Hello World" });
  const all = $app.findRecordsByFilter("notes", "", "-title", 10, 0);
  return e.json(200, {
    count: $app.countRecords("notes"),
    firstSlug: first.get("slug"),
    titles: all.map((r) => r.getString("title")),
    byId: $app.findRecordById("notes", first.id).get("title"),
  });
});

routerAdd("POST", "/api/notes-made-here", (e) => {
  const record = new Record($app.findCollectionByNameOrId("notes"), { title: "Made Here" });
  $app.save(record);
  return e.json(200, { id: record.id, slug: record.get("slug") });
});

routerAdd("GET", "/api/loop", (e) => { for (;;) {} });
routerAdd("GET", "/api/bomb", (e) => { const a = []; for (;;) a.push("x".repeat(1 << 20) + a.length); });
routerAdd("GET", "/api/recurse", (e) => { const f = (n) => f(n + 1) + 1; return e.json(200, f(0)); });
routerAdd("GET", "/api/huge", (e) => e.string(200, "x".repeat(9 << 20)));
routerAdd("GET", "/api/pollute", (e) => { Object.prototype.polluted = "yes"; globalThis.leak = 1; return e.json(200, {}); });
routerAdd("GET", "/api/polluted", (e) => e.json(200, { polluted: ({}).polluted || null, leak: typeof leak }));

onRecordCreate((e) => {
  const title = e.record.getString("title");
  if (title === "forbidden") {
    throw new BadRequestError("Titles like that are refused.");
  }
  e.record.set("slug", title.toLowerCase().replace(/ /g, "-"));
  console.log("slugged", title);
  e.next();
}, "notes");

onRecordAfterCreateSuccess((e) => {
  console.log("created", e.record.id);
  e.next();
}, "notes");
"#;

const UTIL: &str = "module.exports = { double: (n) => n * 2 };";

fn write_hooks(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join("pb_hooks").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
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

/// Tenant `slug` with a superuser, a `notes` collection anyone may create in, and `files`
/// in its pb_hooks; the superuser's token.
async fn tenant_with_hooks(server: &Server, slug: &str, files: &[(&str, &str)]) -> String {
    let token = server.tenant_with_superuser(slug).await;
    let notes = json!({
        "name": "notes",
        "createRule": "",
        "listRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "slug", "type": "text"}],
    });
    let host = format!("{slug}.localhost");
    let (status, body) = call(
        server,
        &host,
        &token,
        Method::POST,
        "/api/collections",
        Some(notes),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server.deploy_hooks(slug, files).await;
    token
}

fn envelope(status: u16, message: &str) -> Value {
    json!({ "status": status, "message": message, "data": {} })
}

#[tokio::test]
async fn a_tenants_routes_and_record_hooks_answer_as_pocketbase_does() {
    let server = Server::start(&[]);
    let token = tenant_with_hooks(
        &server,
        "hooka",
        &[("main.pb.js", MAIN), ("lib/util.js", UTIL)],
    )
    .await;
    let host = "hooka.localhost";
    let get = |path: &'static str| call(&server, host, "", Method::GET, path, None);

    assert_eq!(
        get("/api/hello/world").await,
        (200, json!({"message": "Hello world", "double": 42}))
    );
    assert_eq!(
        get("/api/me").await,
        (
            401,
            envelope(
                401,
                "The request requires valid record authorization token."
            )
        )
    );
    let (status, me) = call(&server, host, &token, Method::GET, "/api/me", None).await;
    assert_eq!(
        (status, me["collection"].as_str()),
        (200, Some("_superusers")),
        "{me}"
    );
    assert_eq!(get("/api/admin-only").await.0, 401);
    let admin = server
        .request(Method::GET, host, "/api/admin-only")
        .header("Authorization", &token);
    let admin = admin.send().await.unwrap();
    assert_eq!(admin.status(), 200);
    assert_eq!(admin.text().await.unwrap(), "ok");

    let echo = server
        .request(Method::POST, host, "/api/echo?q=search%20me")
        .header("X-Custom", "yes")
        .json(&json!({"a": [1, 2]}));
    assert_eq!(
        send(echo).await,
        (
            201,
            json!({"body": {"a": [1, 2]}, "q": "search me", "custom": "yes", "url": "search me"})
        )
    );

    assert_eq!(get("/api/refuse").await, (400, envelope(400, "Not today.")));
    assert_eq!(
        get("/api/plain-throw").await,
        (
            400,
            envelope(400, "Something went wrong while processing your request.")
        )
    );
    assert_eq!(
        get("/api/escape").await,
        (
            400,
            envelope(400, "Something went wrong while processing your request.")
        )
    );
    assert_eq!(get("/api/missing-method").await.0, 400);
    let (status, health) = get("/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["message"], "API is healthy.", "{health}");
    let html = server
        .request(Method::GET, host, "/api/html")
        .send()
        .await
        .unwrap();
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(html.text().await.unwrap(), "<p>hi</p>");
    assert_eq!(get("/api/nothing").await, (204, Value::Null));
    let away = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{}/api/away", server.addr))
        .header("Host", format!("{host}:{}", server.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(away.status(), 307);
    assert_eq!(away.headers()["location"], "/api/hello/there");
    assert_eq!(get("/api/nowhere").await.0, 404);

    // Record hooks: one fills a field, one refuses and nothing is written.
    let records = "/api/collections/notes/records";
    let (status, created) = call(
        &server,
        host,
        "",
        Method::POST,
        records,
        Some(json!({"title": "Hello World"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["slug"], "hello-world");
    let (status, refused) = call(
        &server,
        host,
        "",
        Method::POST,
        records,
        Some(json!({"title": "forbidden"})),
    )
    .await;
    assert_eq!(
        (status, refused),
        (400, envelope(400, "Titles like that are refused."))
    );
    let enable =
        json!({"batch": {"enabled": true, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}});
    let (status, body) = call(
        &server,
        host,
        &token,
        Method::PATCH,
        "/api/settings",
        Some(enable),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let batch = json!({"requests": [
        {"method": "POST", "url": records, "body": {"title": "fine"}},
        {"method": "POST", "url": records, "body": {"title": "forbidden"}},
    ]});
    let (status, _) = call(
        &server,
        host,
        &token,
        Method::POST,
        "/api/batch",
        Some(batch),
    )
    .await;
    assert_eq!(status, 400);
    let (_, list) = call(&server, host, "", Method::GET, records, None).await;
    assert_eq!(list["totalItems"], 1, "{list}");

    // $app reads and writes through the tenant's records, hooks included.
    let (status, made) = call(
        &server,
        host,
        "",
        Method::POST,
        "/api/notes-made-here",
        None,
    )
    .await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["id"].as_str().unwrap().len(), 15, "{made}");
    let (status, summary) = get("/api/notes-summary").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["count"], 2);
    assert_eq!(summary["firstSlug"], "hello-world");
    assert_eq!(summary["titles"], json!(["Made Here", "Hello World"]));
    assert_eq!(summary["byId"], "Hello World");

    // console.log and the refused calls land in the tenant's logs.
    let logged = eventually(Duration::from_secs(5), async || {
        let text = logs_text(&server, host, &token).await;
        text.contains("slugged Hello World") && text.contains("internal detail")
    })
    .await;
    assert!(
        logged,
        "console output and the plain error are in the tenant's logs"
    );

    // Another tenant has none of these routes.
    server.tenant_with_superuser("hookb").await;
    assert_eq!(
        call(
            &server,
            "hookb.localhost",
            "",
            Method::GET,
            "/api/hello/world",
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn runaway_code_is_stopped_and_other_tenants_keep_answering() {
    let server = Server::start(&[]);
    let token = tenant_with_hooks(
        &server,
        "busy",
        &[("main.pb.js", MAIN), ("lib/util.js", UTIL)],
    )
    .await;
    tenant_with_hooks(
        &server,
        "calm",
        &[("main.pb.js", MAIN), ("lib/util.js", UTIL)],
    )
    .await;
    let busy = "busy.localhost";
    let calm = "calm.localhost";
    let generic = envelope(500, "Something went wrong while processing your request.");

    // Warm both tenants' code.
    assert_eq!(
        call(&server, calm, "", Method::GET, "/api/hello/x", None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, busy, "", Method::GET, "/api/hello/x", None)
            .await
            .0,
        200
    );

    // Endless loops, memory bombs and deep recursion on the busy tenant (they share its
    // runtimes: a few seconds in all) while the calm tenant's route is timed.
    let runaway = |path: &'static str| {
        let request = server.request(Method::GET, busy, path);
        tokio::spawn(async move {
            let started = Instant::now();
            let (status, body) = send(request).await;
            (status, body, started.elapsed())
        })
    };
    let loops: Vec<_> = (0..3).map(|_| runaway("/api/loop")).collect();
    let others: Vec<_> = ["/api/bomb", "/api/recurse", "/api/bomb", "/api/recurse"]
        .into_iter()
        .map(runaway)
        .collect();
    let mut latencies = Vec::new();
    let until = Instant::now() + Duration::from_millis(2000);
    while Instant::now() < until {
        let started = Instant::now();
        let (status, _) = call(&server, calm, "", Method::GET, "/api/hello/calm", None).await;
        assert_eq!(status, 200);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    assert!(latencies.len() > 20, "only {} requests", latencies.len());
    println!(
        "calm tenant while the busy one runs away: p50 {:?}, p99 {p99:?} over {} requests",
        latencies[latencies.len() / 2],
        latencies.len()
    );
    // A calm request queued behind a loop would take a second; shared CI cores add noise.
    assert!(p99 < Duration::from_millis(300), "calm tenant p99 {p99:?}");
    let mut fastest = Duration::MAX;
    for handle in loops {
        let (status, body, took) = handle.await.unwrap();
        assert_eq!((status, &body), (500, &generic));
        fastest = fastest.min(took);
    }
    assert!(
        fastest < Duration::from_millis(2000),
        "first loop stopped after {fastest:?}"
    );
    for handle in others {
        let (status, body, _) = handle.await.unwrap();
        assert!(status == 500 || status == 400, "{status} {body}");
        assert_eq!(body["data"], json!({}));
    }

    // A response past the 8 MiB limit is refused with the generic envelope.
    assert_eq!(
        call(&server, busy, "", Method::GET, "/api/huge", None).await,
        (500, generic.clone())
    );

    // A memory bomb and deep recursion are stopped; the tenant answers afterwards.
    assert_eq!(
        call(&server, busy, "", Method::GET, "/api/bomb", None).await,
        (500, generic.clone())
    );
    assert_eq!(
        call(&server, busy, "", Method::GET, "/api/recurse", None)
            .await
            .0,
        400
    );
    assert_eq!(
        call(&server, busy, "", Method::GET, "/api/hello/again", None)
            .await
            .0,
        200
    );

    // Prototypes and globals changed by one tenant stay in its sandbox.
    assert_eq!(
        call(&server, busy, "", Method::GET, "/api/pollute", None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, busy, "", Method::GET, "/api/polluted", None)
            .await
            .1,
        json!({"polluted": "yes", "leak": "number"})
    );
    assert_eq!(
        call(&server, calm, "", Method::GET, "/api/polluted", None)
            .await
            .1,
        json!({"polluted": null, "leak": "undefined"})
    );

    let logged = eventually(Duration::from_secs(5), async || {
        let text = logs_text(&server, busy, &token).await;
        text.contains("CPU limit")
            && text.contains("memory limit")
            && text.contains("the response is larger than 8 MiB")
    })
    .await;
    assert!(logged, "the interrupted calls are in the tenant's logs");
}

/// A request of the oracle test: method, path, headers, JSON body.
type Case = (
    Method,
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<Value>,
);

/// Written after PocketBase's JSVM documentation examples; PocketBase 0.40.6 loads it as is.
const ORACLE: &str = r#"
routerAdd("GET", "/api/hello/{name}", (e) => e.json(200, { message: "Hello " + e.request.pathValue("name") }));
routerAdd("GET", "/api/me", (e) => e.json(200, { id: e.auth.id }), $apis.requireAuth());
routerAdd("GET", "/api/admin-only", (e) => e.string(200, "ok"), $apis.requireSuperuserAuth());
routerAdd("POST", "/api/echo", (e) => {
  const info = e.requestInfo();
  return e.json(201, { body: info.body, q: info.query.q, custom: info.headers.x_custom });
});
routerAdd("GET", "/api/refuse", (e) => { throw new BadRequestError("not today"); });
routerAdd("GET", "/api/refuse-data", (e) => {
  throw new BadRequestError("bad", { title: new ValidationError("x_code", "too short") });
});
routerAdd("GET", "/api/notfound", (e) => { throw new NotFoundError(); });
routerAdd("GET", "/api/forbidden", (e) => { throw new ForbiddenError("no"); });
routerAdd("GET", "/api/apierr", (e) => { throw new ApiError(418, "teapot"); });
routerAdd("GET", "/api/plain-throw", (e) => { throw new Error("internal detail"); });
routerAdd("GET", "/api/html", (e) => e.html(200, "<p>hi</p>"));
routerAdd("GET", "/api/nothing", (e) => e.noContent(204));
routerAdd("GET", "/api/string", (e) => e.string(200, "plain"));
routerAdd("GET", "/api/noreturn", (e) => {});
routerAdd("GET", "/api/files/{path...}", (e) => e.string(200, e.request.pathValue("path")));
routerUse((e) => {
  if (e.request.header.get("X-Block") === "yes") {
    throw new ForbiddenError("blocked by a middleware");
  }
  return e.next();
});
"#;

#[tokio::test]
async fn the_same_hooks_answer_alike_on_pocketbase_and_warren() {
    use crate::transfer::PocketBase;

    let dir = tempfile::tempdir().unwrap();
    write_hooks(dir.path(), &[("main.pb.js", ORACLE)]);
    let data = dir.path().join("pb_data");
    PocketBase::upsert_superuser(&data);
    let pocketbase = PocketBase::start(&data).await;
    let server = Server::start(&[]);
    server.tenant_with_superuser("oracle").await;
    server
        .deploy_hooks("oracle", &[("main.pb.js", ORACLE)])
        .await;

    let cases: &[Case] = &[
        (Method::GET, "/api/hello/world", &[], None),
        (Method::GET, "/api/me", &[], None),
        (Method::GET, "/api/admin-only", &[], None),
        (
            Method::POST,
            "/api/echo?q=a%20b",
            &[("X-Custom", "yes")],
            Some(json!({"a": [1, {"b": null}]})),
        ),
        (Method::GET, "/api/refuse", &[], None),
        (Method::GET, "/api/refuse-data", &[], None),
        (Method::GET, "/api/notfound", &[], None),
        (Method::GET, "/api/forbidden", &[], None),
        (Method::GET, "/api/apierr", &[], None),
        (Method::GET, "/api/plain-throw", &[], None),
        (Method::GET, "/api/html", &[], None),
        (Method::GET, "/api/nothing", &[], None),
        (Method::GET, "/api/string", &[], None),
        (Method::GET, "/api/noreturn", &[], None),
        (Method::GET, "/api/files/a/b%20c.txt", &[], None),
        (
            Method::GET,
            "/api/hello/blocked",
            &[("X-Block", "yes")],
            None,
        ),
    ];
    for (method, path, headers, body) in cases {
        let mut answers = Vec::new();
        for on_pocketbase in [true, false] {
            let mut request = if on_pocketbase {
                pocketbase.request(method.clone(), path, "")
            } else {
                server.request(method.clone(), "oracle.localhost", path)
            };
            for (name, value) in *headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            let text = response.text().await.unwrap();
            let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
            answers.push((status, content_type, body));
        }
        assert_eq!(
            answers[0], answers[1],
            "{method} {path}: PocketBase, then Warren"
        );
    }
}

/// The tenant's last 200 log entries as one JSON text, read as its superuser.
async fn logs_text(server: &Server, host: &str, token: &str) -> String {
    let path = "/api/logs?perPage=200";
    let (_, logs) = call(server, host, token, Method::GET, path, None).await;
    logs.to_string()
}
