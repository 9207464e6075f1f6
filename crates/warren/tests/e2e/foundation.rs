//! The foundation: tenants created by CLI and API, dispatched by hostname, isolated, deleted,
//! closed when idle and reopened on demand.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, TOKEN, eventually, send};

async fn create_by_api(server: &Server, slug: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = server
        .request(Method::POST, "localhost", "/v1/tenants")
        .json(&json!({ "slug": slug }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

async fn login(server: &Server, host: &str, email: &str, password: &str) -> (u16, Value) {
    let request = server
        .request(
            Method::POST,
            host,
            "/api/collections/_superusers/auth-with-password",
        )
        .json(&json!({ "identity": email, "password": password }));
    send(request).await
}

#[tokio::test]
async fn tenants_are_created_by_cli_and_api_and_reached_by_hostname() {
    let server = Server::start(&[]);

    // One tenant from the CLI while the server runs, one from the operator API.
    let output = server.cli(&["tenant", "create", "alpha"]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("http://alpha.localhost"));
    let (status, body) = create_by_api(&server, "beta", Some(TOKEN)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["slug"], "beta");
    assert_eq!(body["status"], "active");
    assert_eq!(
        body["url"],
        format!("http://beta.localhost:{}", server.addr.port())
    );

    for host in ["alpha.localhost", "beta.localhost", "ALPHA.localhost"] {
        let (status, body) = server.get(host, "/api/health").await;
        assert_eq!(status, 200, "{host}");
        assert_eq!(
            body,
            json!({"message": "API is healthy.", "code": 200, "data": {}})
        );
    }

    // Both are listed by the operator API.
    let (status, body) = send(
        server
            .request(Method::GET, "localhost", "/v1/tenants")
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let slugs: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["alpha", "beta"]);
    let (status, body) = send(
        server
            .request(Method::GET, "localhost", "/v1/tenants/alpha")
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!((status, body["slug"].as_str()), (200, Some("alpha")));
}

#[tokio::test]
async fn unknown_hosts_bad_slugs_and_wrong_tokens_are_refused() {
    let server = Server::start(&[]);
    let not_found =
        json!({"data": {}, "message": "The requested resource wasn't found.", "status": 404});
    for host in [
        "nobody.localhost",
        "example.com",
        "a.b.localhost",
        "127.0.0.1",
    ] {
        let (status, body) = server.get(host, "/api/health").await;
        assert_eq!((status, &body), (404, &not_found), "{host}");
    }

    for slug in [
        "ab",
        "Upper",
        "has space",
        "under_score",
        "-dash",
        "www",
        "console",
        "admin",
        &"x".repeat(64),
    ] {
        let (status, body) = create_by_api(&server, slug, Some(TOKEN)).await;
        assert_eq!(status, 400, "{slug}: {body}");
        assert!(
            body["data"]["slug"]["message"].as_str().unwrap().len() > 10,
            "{body}"
        );
    }
    let (status, body) = send(
        server
            .request(Method::POST, "localhost", "/v1/tenants")
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, _) = create_by_api(&server, "gamma", Some("wrong-token")).await;
    assert_eq!(status, 401);
    let (status, body) = create_by_api(&server, "gamma", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], 401);
    let (status, _) = send(
        server
            .request(Method::GET, "localhost", "/v1/tenants")
            .bearer_auth(""),
    )
    .await;
    assert_eq!(status, 401);
    // Nothing was created by the refused requests.
    assert!(server.cli(&["tenant", "list"]).stdout.is_empty());

    let output = server.cli(&["tenant", "create", "Not_Valid"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("lowercase"));

    let (status, _) = create_by_api(&server, "gamma", Some(TOKEN)).await;
    assert_eq!(status, 201);
    let (status, body) = create_by_api(&server, "gamma", Some(TOKEN)).await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_data_or_tokens() {
    let server = Server::start(&[]);
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    assert!(server.cli(&["tenant", "create", "beta"]).status.success());

    // A superuser through the CLI, and one written straight into alpha's database with a
    // PocketBase bcrypt hash (as an import would).
    let output = server.cli(&[
        "superuser",
        "upsert",
        "alpha",
        "root@example.com",
        "alpha-password",
    ]);
    assert!(output.status.success(), "{output:?}");
    server
        .with_tenant_db("alpha", |db| {
            db.execute(
                "INSERT INTO _superusers (id, email, password, tokenKey, verified, created, updated)
                 VALUES ('importedsuperus', 'imported@example.com',
                         '$2a$10$TWp86sJ.eZp1r1ch2VLHjuE6BQvRrm5hfsuYPOo2dHsj1gt1jOZVy',
                         'importedtokenkeyimportedtokenkeyimportedtokenkey12', 1, '', '')",
                [],
            )
            .unwrap()
        })
        .await;

    let (status, alpha_auth) = login(
        &server,
        "alpha.localhost",
        "root@example.com",
        "alpha-password",
    )
    .await;
    assert_eq!(status, 200, "{alpha_auth}");
    assert_eq!(alpha_auth["record"]["collectionName"], "_superusers");
    assert!(
        alpha_auth["record"].get("password").is_none()
            && alpha_auth["record"].get("tokenKey").is_none()
    );
    let (status, imported) = login(
        &server,
        "alpha.localhost",
        "imported@example.com",
        "password123",
    )
    .await;
    assert_eq!(status, 200, "{imported}");

    // Beta knows neither account, and answers exactly as for any wrong password.
    let failed = json!({"data": {}, "message": "Failed to authenticate.", "status": 400});
    for (email, password) in [
        ("root@example.com", "alpha-password"),
        ("imported@example.com", "password123"),
    ] {
        let (status, body) = login(&server, "beta.localhost", email, password).await;
        assert_eq!((status, body), (400, failed.clone()));
    }
    let (status, body) = login(
        &server,
        "alpha.localhost",
        "root@example.com",
        "wrong-password",
    )
    .await;
    assert_eq!((status, body), (400, failed.clone()));

    // Alpha's token makes its holder a superuser on alpha and a guest on beta.
    let token = alpha_auth["token"].as_str().unwrap();
    let health = |host: &'static str| {
        send(
            server
                .request(Method::GET, host, "/api/health")
                .header("Authorization", token),
        )
    };
    let (_, on_alpha) = health("alpha.localhost").await;
    assert_eq!(on_alpha["data"]["canBackup"], true);
    let (_, on_beta) = health("beta.localhost").await;
    assert_eq!(on_beta["data"], json!({}));

    // Even with the same record id and token key in beta, alpha's token does not verify there:
    // the collection secret differs per tenant.
    let claims_id = imported["record"]["id"].as_str().unwrap().to_string();
    server
        .with_tenant_db("beta", |db| {
            db.execute(
                "INSERT INTO _superusers (id, email, password, tokenKey, created, updated)
                 VALUES (?1, 'imported@example.com', 'x', 'importedtokenkeyimportedtokenkeyimportedtokenkey12', '', '')",
                [&claims_id],
            )
            .unwrap()
        })
        .await;
    let imported_token = imported["token"].as_str().unwrap();
    let (_, on_beta) = send(
        server
            .request(Method::GET, "beta.localhost", "/api/health")
            .bearer_auth(imported_token),
    )
    .await;
    assert_eq!(on_beta["data"], json!({}));
    let (_, on_alpha) = send(
        server
            .request(Method::GET, "alpha.localhost", "/api/health")
            .bearer_auth(imported_token),
    )
    .await;
    assert_eq!(on_alpha["data"]["canBackup"], true);
}

#[tokio::test]
async fn deleting_a_tenant_stops_its_host_and_removes_its_data() {
    let server = Server::start(&[]);
    for slug in ["alpha", "beta"] {
        assert_eq!(create_by_api(&server, slug, Some(TOKEN)).await.0, 201);
        assert_eq!(
            server
                .get(&format!("{slug}.localhost"), "/api/health")
                .await
                .0,
            200
        );
    }
    let beta_dir = server.tenant_dir("beta").await;
    let alpha_dir = server.tenant_dir("alpha").await;

    // Through the operator API: effective at once.
    let (status, _) = send(
        server
            .request(Method::DELETE, "localhost", "/v1/tenants/beta")
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(server.get("beta.localhost", "/api/health").await.0, 404);
    assert!(!beta_dir.exists());
    let (status, _) = send(
        server
            .request(Method::DELETE, "localhost", "/v1/tenants/beta")
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 404);

    // Through the CLI while the server runs: effective as soon as the server sees the change.
    let output = server.cli(&["tenant", "delete", "alpha"]);
    assert!(output.status.success(), "{output:?}");
    assert!(!alpha_dir.exists());
    let gone = eventually(Duration::from_secs(5), async || {
        server.get("alpha.localhost", "/api/health").await.0 == 404
    })
    .await;
    assert!(gone, "alpha still answers after deletion");
    let closed = eventually(Duration::from_secs(5), async || {
        !server.open_tenant_dirs().contains(&alpha_dir)
    })
    .await;
    assert!(closed, "the deleted tenant's database is still open");

    // The slug can be used again, and the new tenant starts empty.
    assert_eq!(create_by_api(&server, "alpha", Some(TOKEN)).await.0, 201);
    let (status, _) = login(
        &server,
        "alpha.localhost",
        "root@example.com",
        "alpha-password",
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn idle_tenants_close_and_reopen_transparently() {
    let server = Server::start(&["--idle-timeout", "1"]);
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    assert!(
        server
            .cli(&[
                "superuser",
                "upsert",
                "alpha",
                "root@example.com",
                "alpha-password"
            ])
            .status
            .success()
    );
    let dir = server.tenant_dir("alpha").await;

    assert_eq!(
        login(
            &server,
            "alpha.localhost",
            "root@example.com",
            "alpha-password"
        )
        .await
        .0,
        200
    );
    assert!(server.open_tenant_dirs().contains(&dir));
    let closed = eventually(Duration::from_secs(10), async || {
        !server.open_tenant_dirs().contains(&dir)
    })
    .await;
    assert!(closed, "the idle tenant was not closed");

    // The next request reopens it, data intact.
    assert_eq!(
        login(
            &server,
            "alpha.localhost",
            "root@example.com",
            "alpha-password"
        )
        .await
        .0,
        200
    );
    assert!(server.open_tenant_dirs().contains(&dir));
}

#[tokio::test]
async fn the_lru_cap_bounds_open_tenants() {
    let server = Server::start(&["--max-open-tenants", "3"]);
    for i in 0..8 {
        let slug = format!("tenant-{i}");
        assert_eq!(create_by_api(&server, &slug, Some(TOKEN)).await.0, 201);
        assert_eq!(
            server
                .get(&format!("{slug}.localhost"), "/api/health")
                .await
                .0,
            200
        );
        // A closed tenant's files stay open until its last in-flight work (a request, a log
        // flush) lets go of it: bounded by the cap once that settles.
        let bounded = eventually(Duration::from_secs(3), async || {
            server.open_tenant_dirs().len() <= 3
        })
        .await;
        assert!(bounded, "{:?}", server.open_tenant_dirs());
    }
    // Every tenant still answers, reopened on demand.
    for i in 0..8 {
        assert_eq!(
            server
                .get(&format!("tenant-{i}.localhost"), "/api/health")
                .await
                .0,
            200
        );
    }
    let bounded = eventually(Duration::from_secs(3), async || {
        server.open_tenant_dirs().len() <= 3
    })
    .await;
    assert!(bounded, "{:?}", server.open_tenant_dirs());
}

#[tokio::test]
async fn pocketbase_headers_and_errors_are_served() {
    let server = Server::start(&[]);
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    let response = server
        .request(Method::GET, "alpha.localhost", "/api/health")
        .header("Origin", "http://example.com")
        .send()
        .await
        .unwrap();
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
    assert_eq!(headers["cross-origin-opener-policy"], "same-origin");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["content-type"], "application/json");

    let preflight = server
        .request(Method::OPTIONS, "alpha.localhost", "/api/health")
        .header("Origin", "http://example.com")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-headers"],
        "authorization,content-type"
    );

    // Unknown routes and wrong methods are PocketBase's 404; malformed bodies its 400.
    assert_eq!(
        server.get("alpha.localhost", "/api/nothing-here").await.0,
        404
    );
    let (status, _) = send(server.request(Method::PUT, "alpha.localhost", "/api/health")).await;
    assert_eq!(status, 404);
    let (status, body) = send(
        server
            .request(
                Method::POST,
                "alpha.localhost",
                "/api/collections/_superusers/auth-with-password",
            )
            .header("content-type", "application/json")
            .body("{\"identity\": "),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            400,
            Some("Something went wrong while processing your request.")
        )
    );
    let (status, body) = send(
        server
            .request(
                Method::POST,
                "alpha.localhost",
                "/api/collections/_superusers/auth-with-password",
            )
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["identity"]["code"], "validation_required");
    let (status, _) = send(
        server
            .request(
                Method::POST,
                "alpha.localhost",
                "/api/collections/nope/auth-with-password",
            )
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 404);
}
