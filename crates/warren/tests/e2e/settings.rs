//! Settings that act: `trustedProxy` names the client for rate limits and logs (only from
//! peers the operator trusts, when `--trusted-proxies` is set), `superuserIPs` keeps superusers
//! out from elsewhere, `batch` bounds batches (enabled, size, body, timeout), rate limits count
//! each batch item, and `logs.maxDataSize` cuts what a log entry keeps. Every change applies to
//! the next request.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, eventually, send};

const EMAIL: &str = "root@example.com";
const PASSWORD: &str = "root-password-1";
const FORWARDED: &str = "X-Client-IP";

/// A tenant with a superuser and a `posts` collection anyone may write; returns its token.
async fn tenant(server: &Server, slug: &str) -> String {
    let token = server.tenant_with_superuser(slug).await;
    let open = json!({
        "name": "posts", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}]
    });
    let (status, body) = send(
        server
            .request(Method::POST, &host(slug), "/api/collections")
            .header("Authorization", &token)
            .json(&open),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    token
}

fn host(slug: &str) -> String {
    format!("{slug}.localhost")
}

async fn patch_settings(server: &Server, slug: &str, token: &str, patch: Value) -> Value {
    let (status, body) = send(
        server
            .request(Method::PATCH, &host(slug), "/api/settings")
            .header("Authorization", token)
            .json(&patch),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A client whose connections come from `local` (any 127.0.0.0/8 address reaches the server).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Creates a post through `client`, with `headers`; returns the status.
async fn create_post(
    server: &Server,
    client: &reqwest::Client,
    slug: &str,
    headers: &[(&str, &str)],
) -> u16 {
    let mut request = client
        .post(format!(
            "http://{}/api/collections/posts/records",
            server.addr
        ))
        .header("Host", format!("{}:{}", host(slug), server.addr.port()))
        .json(&json!({"title": "hello"}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request).await.0
}

fn limited(rules: Value) -> Value {
    json!({ "rateLimits": { "enabled": true, "rules": rules } })
}

#[tokio::test]
async fn rate_limits_count_the_client_a_trusted_proxy_header_names() {
    let server = Server::start(&[]);
    let token = tenant(&server, "proxied").await;
    let mut settings =
        limited(json!([{"label": "posts:create", "maxRequests": 1, "duration": 60}]));
    settings["trustedProxy"] = json!({ "headers": [FORWARDED], "useLeftmostIP": false });
    patch_settings(&server, "proxied", &token, settings).await;
    let client = &server.client;
    let from = |ip| [(FORWARDED, ip)];

    // Two forwarded clients behind the same peer get a bucket each.
    assert_eq!(
        create_post(&server, client, "proxied", &from("10.0.0.1")).await,
        200
    );
    assert_eq!(
        create_post(&server, client, "proxied", &from("10.0.0.1")).await,
        429
    );
    assert_eq!(
        create_post(&server, client, "proxied", &from("10.0.0.2")).await,
        200
    );
    // The rightmost valid address of a list counts (the one the nearest proxy appended).
    let list = [(FORWARDED, "10.0.0.2, 10.0.0.3")];
    assert_eq!(create_post(&server, client, "proxied", &list).await, 200);
    // A header the tenant does not trust is ignored: both count as the peer itself.
    let other = |ip| [("X-Forwarded-For", ip)];
    assert_eq!(
        create_post(&server, client, "proxied", &other("10.0.0.4")).await,
        200
    );
    assert_eq!(
        create_post(&server, client, "proxied", &other("10.0.0.5")).await,
        429
    );

    // `useLeftmostIP` takes the first address of the list instead.
    patch_settings(
        &server,
        "proxied",
        &token,
        json!({"trustedProxy": {"useLeftmostIP": true}}),
    )
    .await;
    let list = [(FORWARDED, "10.0.0.6, 10.0.0.1")];
    assert_eq!(create_post(&server, client, "proxied", &list).await, 200);

    // Without trusted headers the header means nothing, at once.
    patch_settings(
        &server,
        "proxied",
        &token,
        json!({"trustedProxy": {"headers": []}}),
    )
    .await;
    assert_eq!(
        create_post(&server, client, "proxied", &from("10.0.0.9")).await,
        429
    );

    // The request log keeps both addresses: the peer and the client it forwarded for.
    let path = "/api/logs?filter=data.userIP%3D%2710.0.0.2%27";
    let mut last = Value::Null;
    let logged = eventually(Duration::from_secs(15), async || {
        let (status, body) = send(
            server
                .request(Method::GET, &host("proxied"), path)
                .header("Authorization", &token),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        last = body;
        last["totalItems"].as_i64() >= Some(1)
    })
    .await;
    assert!(logged, "no log entry for the forwarded client: {last}");
    assert_eq!(last["items"][0]["data"]["remoteIP"], "127.0.0.1");
}

#[tokio::test]
async fn only_peers_in_trusted_proxies_may_name_the_client() {
    let server = Server::start(&["--trusted-proxies", "127.0.0.1/32"]);
    let token = tenant(&server, "fronted").await;
    let mut settings =
        limited(json!([{"label": "posts:create", "maxRequests": 1, "duration": 60}]));
    settings["trustedProxy"] = json!({ "headers": [FORWARDED] });
    patch_settings(&server, "fronted", &token, settings).await;
    let trusted = client_from("127.0.0.1");
    let untrusted = client_from("127.0.0.2");

    // The trusted proxy's clients are told apart.
    assert_eq!(
        create_post(&server, &trusted, "fronted", &[(FORWARDED, "10.1.0.1")]).await,
        200
    );
    assert_eq!(
        create_post(&server, &trusted, "fronted", &[(FORWARDED, "10.1.0.2")]).await,
        200
    );
    // Another peer's header is ignored: whatever it claims, it is one client, itself.
    assert_eq!(
        create_post(&server, &untrusted, "fronted", &[(FORWARDED, "10.1.0.3")]).await,
        200
    );
    assert_eq!(
        create_post(&server, &untrusted, "fronted", &[(FORWARDED, "10.1.0.4")]).await,
        429
    );
    // ... so it cannot spend a trusted client's budget either, nor dodge its own.
    assert_eq!(
        create_post(&server, &trusted, "fronted", &[(FORWARDED, "10.1.0.4")]).await,
        200
    );

    // The superuser check sees the same address: an untrusted peer cannot claim an allowed one.
    patch_settings(
        &server,
        "fronted",
        &token,
        json!({"superuserIPs": ["10.9.0.0/16", "127.0.0.1"]}),
    )
    .await;
    let health = |client: &reqwest::Client, ip: &str| {
        client
            .get(format!("http://{}/api/health", server.addr))
            .header("Host", format!("fronted.localhost:{}", server.addr.port()))
            .header("Authorization", &token)
            .header(FORWARDED, ip.to_string())
    };
    let (status, body) = send(health(&trusted, "10.9.1.1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["realIP"], "10.9.1.1");
    let (status, body) = send(health(&untrusted, "10.9.1.1")).await;
    assert_eq!(status, 403, "{body}");

    let refused = Server::start_output(&["--trusted-proxies", "10.0.0.0/33"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("10.0.0.0/33"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn superusers_outside_superuser_ips_are_refused() {
    let server = Server::start(&[]);
    let token = tenant(&server, "locked").await;
    let outside = [(FORWARDED, "10.30.0.1")];
    let inside = [(FORWARDED, "10.20.0.5")];
    let call = |method: Method, path: &str, headers: &[(&str, &str)], auth: bool| {
        let mut request = server.request(method, &host("locked"), path);
        if auth {
            request = request.header("Authorization", &token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
    };
    // Malformed lists are refused as PocketBase refuses them.
    let (status, body) = send(
        call(Method::PATCH, "/api/settings", &[], true)
            .json(&json!({"superuserIPs": ["nope", ""]})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"]["superuserIPs"],
        json!({
            "0": {"code": "validation_invlaid_ip_or_subnet", "message": "Invalid IP or CIDR subnet."},
            "1": {"code": "validation_required", "message": "Cannot be blank."}
        })
    );
    patch_settings(
        &server,
        "locked",
        &token,
        json!({"trustedProxy": {"headers": [FORWARDED]}, "superuserIPs": ["127.0.0.1", "10.20.0.0/16"]}),
    )
    .await;

    let forbidden = json!({"data": {}, "message": "You are not allowed to perform this request.", "status": 403});
    for path in [
        "/api/health",
        "/api/settings",
        "/api/collections/posts/records",
        "/api/nowhere",
    ] {
        let (status, body) = send(call(Method::GET, path, &outside, true)).await;
        assert_eq!((status, &body), (403, &forbidden), "{path}");
    }
    let (status, body) = send(call(Method::GET, "/api/settings", &inside, true)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(call(Method::GET, "/api/health", &[], true)).await;
    assert_eq!(
        (status, body["data"]["realIP"].as_str()),
        (200, Some("127.0.0.1"))
    );
    // Guests and other callers are not concerned.
    let (status, _) = send(call(
        Method::GET,
        "/api/collections/posts/records",
        &outside,
        false,
    ))
    .await;
    assert_eq!(status, 200);
    // Signing in from outside is refused too, and a wrong password still fails as such.
    let login = |headers: &[(&str, &str)], password: &str| {
        call(
            Method::POST,
            "/api/collections/_superusers/auth-with-password",
            headers,
            false,
        )
        .json(&json!({"identity": EMAIL, "password": password}))
    };
    let (status, body) = send(login(&outside, PASSWORD)).await;
    assert_eq!((status, &body), (403, &forbidden));
    let (status, _) = send(login(&outside, "wrong-password")).await;
    assert_eq!(status, 400);
    let (status, body) = send(login(&inside, PASSWORD)).await;
    assert_eq!(status, 200, "{body}");

    // Emptying the list lets the superuser in from anywhere at the next request.
    let (status, body) = send(
        call(Method::PATCH, "/api/settings", &inside, true).json(&json!({"superuserIPs": []})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(call(Method::GET, "/api/settings", &outside, true)).await;
    assert_eq!(status, 200);
}

/// Posts a batch body as JSON text; returns status and body.
async fn batch(server: &Server, slug: &str, body: String) -> (u16, Value) {
    send(
        server
            .request(Method::POST, &host(slug), "/api/batch")
            .header("Content-Type", "application/json")
            .body(body),
    )
    .await
}

fn creates(url: &str, n: usize, body: impl Fn(usize) -> Value) -> String {
    let requests: Vec<Value> = (0..n)
        .map(|i| json!({"method": "POST", "url": url, "body": body(i)}))
        .collect();
    json!({ "requests": requests }).to_string()
}

async fn count(server: &Server, slug: &str, token: &str, collection: &str) -> i64 {
    let (status, body) = send(
        server
            .request(
                Method::GET,
                &host(slug),
                &format!("/api/collections/{collection}/records?perPage=1"),
            )
            .header("Authorization", token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["totalItems"].as_i64().unwrap()
}

#[tokio::test]
async fn batch_settings_bound_requests_bodies_and_time() {
    let server = Server::start(&[]);
    let token = tenant(&server, "batches").await;
    let posts = "/api/collections/posts/records";
    let title = |i: usize| json!({"title": format!("post {i}")});

    let (status, body) = batch(&server, "batches", creates(posts, 1, title)).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (403, Some("Batch requests are not allowed."))
    );

    patch_settings(
        &server,
        "batches",
        &token,
        json!({"batch": {"enabled": true, "maxRequests": 2, "timeout": 3, "maxBodySize": 300}}),
    )
    .await;
    let (status, body) = batch(&server, "batches", creates(posts, 2, title)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = batch(&server, "batches", creates(posts, 3, title)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"]["requests"]["code"],
        "validation_length_too_long"
    );
    // The body limit is the tenant's: 413 before anything is read.
    let long = |_| json!({"title": "x".repeat(400)});
    let (status, body) = batch(&server, "batches", creates(posts, 1, long)).await;
    assert_eq!(
        (status, body),
        (
            413,
            json!({"data": {}, "message": "Request entity too large.", "status": 413})
        )
    );
    let (status, body) = batch(&server, "batches", "{\"requests\": {}}".into()).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Failed to read the submitted batch data."))
    );

    // A batch that outlasts `timeout` fails as a whole and writes nothing. Hashing two
    // hundred passwords takes well over a second on any machine, idle or loaded.
    let members = json!({"name": "members", "type": "auth", "createRule": ""});
    let (status, body) = send(
        server
            .request(Method::POST, &host("batches"), "/api/collections")
            .header("Authorization", &token)
            .json(&members),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    patch_settings(
        &server,
        "batches",
        &token,
        json!({"batch": {"maxRequests": 200, "timeout": 1, "maxBodySize": 0}}),
    )
    .await;
    let member = |i: usize| json!({"email": format!("m{i}@example.com"), "password": "password-123", "passwordConfirm": "password-123"});
    let started = Instant::now();
    let (status, body) = batch(
        &server,
        "batches",
        creates("/api/collections/members/records", 200, member),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        (status, body),
        (
            400,
            json!({"data": {}, "message": "Batch transaction failed.", "status": 400})
        )
    );
    assert!(
        took < Duration::from_secs(3),
        "the batch ran on for {took:?}"
    );
    assert_eq!(count(&server, "batches", &token, "members").await, 0);
    // Within its time the same kind of batch commits.
    patch_settings(
        &server,
        "batches",
        &token,
        json!({"batch": {"timeout": 60}}),
    )
    .await;
    let (status, body) = batch(
        &server,
        "batches",
        creates("/api/collections/members/records", 2, member),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&server, "batches", &token, "members").await, 2);
}

#[tokio::test]
async fn rate_limits_count_each_batch_item_on_its_own_counter() {
    let server = Server::start(&[]);
    let token = tenant(&server, "items").await;
    let posts = "/api/collections/posts/records";
    let title = |i: usize| json!({"title": format!("post {i}")});
    let mut settings = limited(json!([
        {"label": "posts:create", "maxRequests": 2, "duration": 60},
        {"label": "/api/batch", "maxRequests": 100, "duration": 60}
    ]));
    settings["batch"] = json!({"enabled": true});
    patch_settings(&server, "items", &token, settings).await;

    // The third create of one batch is over the rule: the whole batch fails at that item.
    let (status, body) = batch(&server, "items", creates(posts, 3, title)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["requests"]["2"],
        json!({
            "code": "batch_request_failed",
            "message": "Batch request failed.",
            "response": {"data": {}, "message": "Too Many Requests.", "status": 429}
        })
    );
    assert_eq!(count(&server, "items", &token, "posts").await, 0);
    // The items used up the batch counter, not the route's own.
    let client = &server.client;
    assert_eq!(create_post(&server, client, "items", &[]).await, 200);
    assert_eq!(create_post(&server, client, "items", &[]).await, 200);
    assert_eq!(create_post(&server, client, "items", &[]).await, 429);
    let (status, body) = batch(&server, "items", creates(posts, 1, title)).await;
    assert_eq!(status, 400, "{body}");
    // Superusers are never limited, in a batch either.
    let (status, body) = send(
        server
            .request(Method::POST, &host("items"), "/api/batch")
            .header("Authorization", &token)
            .json(&serde_json::from_str::<Value>(&creates(posts, 3, title)).unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn log_data_is_cut_to_max_data_size() {
    let server = Server::start(&[]);
    let token = tenant(&server, "logged").await;
    patch_settings(
        &server,
        "logged",
        &token,
        json!({"logs": {"maxDataSize": 200}}),
    )
    .await;
    let long = format!("/api/collections/posts/records?filter={}", "a".repeat(300));
    let (status, _) = server.get(&host("logged"), &long).await;
    assert_eq!(status, 400);
    let mut last = Value::Null;
    let logged = eventually(Duration::from_secs(15), async || {
        let (status, body) = send(
            server
                .request(
                    Method::GET,
                    &host("logged"),
                    "/api/logs?filter=data.status%3D400",
                )
                .header("Authorization", &token),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        last = body;
        last["totalItems"].as_i64() >= Some(1)
    })
    .await;
    assert!(logged, "the request was never logged: {last}");
    let item = &last["items"][0];
    assert_eq!(item["data"]["__pb_truncated__"], true, "{item}");
    assert_eq!(item["data"]["method"], "GET");
    assert!(item["data"].get("userAgent").is_none(), "{item}");
    assert_eq!(item["message"], format!("GET {long}"));
}
