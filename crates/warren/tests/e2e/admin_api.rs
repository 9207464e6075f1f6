//! The admin API behind the dashboard: the SQL console (and what it refuses), test emails, the
//! S3 connection test and a view query's dry run; every route superuser-only.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, TOKEN, send};

fn host(slug: &str) -> String {
    format!("{slug}.localhost")
}

/// `POST path` on tenant `slug` with a JSON body and an optional token.
async fn post(
    server: &Server,
    slug: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = server.request(Method::POST, &host(slug), path).json(&body);
    if let Some(token) = token {
        request = request.header("Authorization", token);
    }
    send(request).await
}

async fn sql(server: &Server, slug: &str, token: &str, query: &str) -> (u16, Value) {
    post(
        server,
        slug,
        "/api/sql",
        Some(token),
        json!({ "query": query }),
    )
    .await
}

/// A `users` record of tenant `slug`, signed in; its token.
async fn user_token(server: &Server, slug: &str) -> String {
    let (status, body) = post(
        server,
        slug,
        "/api/collections/users/records",
        None,
        json!({"email": "user@example.com", "password": "user-password-1",
               "passwordConfirm": "user-password-1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        server,
        slug,
        "/api/collections/users/auth-with-password",
        None,
        json!({"identity": "user@example.com", "password": "user-password-1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// Every admin route with a body it would accept.
fn admin_routes() -> Vec<(Method, &'static str, Value)> {
    vec![
        (Method::POST, "/api/sql", json!({"query": "select 1"})),
        (
            Method::POST,
            "/api/settings/test/email",
            json!({"email": "x@example.com", "template": "verification"}),
        ),
        (
            Method::POST,
            "/api/settings/test/s3",
            json!({"filesystem": "storage"}),
        ),
        (
            Method::POST,
            "/api/collections/meta/dry-run-view",
            json!({"query": "select 1 as id"}),
        ),
        (Method::GET, "/api/collections/meta/scaffolds", Value::Null),
        (
            Method::GET,
            "/api/collections/meta/oauth2-providers",
            Value::Null,
        ),
    ]
}

#[tokio::test]
async fn admin_routes_refuse_guests_users_and_other_tenants_superusers() {
    let server = Server::start(&[]);
    server.tenant_with_superuser("adm-a").await;
    let user = user_token(&server, "adm-a").await;
    let foreign = server.tenant_with_superuser("adm-b").await;
    for (method, path, body) in admin_routes() {
        for (token, expected) in [(None, 401), (Some(&user), 403), (Some(&foreign), 401)] {
            let mut request = server.request(method.clone(), &host("adm-a"), path);
            if !body.is_null() {
                request = request.json(&body);
            }
            if let Some(token) = token {
                request = request.header("Authorization", token.as_str());
            }
            let (status, answer) = send(request).await;
            assert_eq!(status, expected, "{method} {path}: {answer}");
            assert_eq!(answer["data"], json!({}), "{path}");
        }
    }
}

#[tokio::test]
async fn admin_routes_keep_superusers_outside_superuser_ips_out() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("adm-ips").await;
    let (status, body) = send(
        server
            .request(Method::PATCH, &host("adm-ips"), "/api/settings")
            .header("Authorization", &token)
            .json(&json!({"superuserIPs": ["10.1.2.3"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (method, path, body) in admin_routes() {
        let mut request = server
            .request(method.clone(), &host("adm-ips"), path)
            .header("Authorization", &token);
        if !body.is_null() {
            request = request.json(&body);
        }
        let (status, answer) = send(request).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
}

#[tokio::test]
async fn the_sql_console_reads_writes_in_one_transaction_and_reloads_the_catalog() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("sql-rw").await;
    let (status, body) = sql(&server, "sql-rw", &token, "select 1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["affectedRows"], 0);
    assert_eq!(
        body["columns"],
        json!([{"name": "1", "type": "", "nullable": true}])
    );
    assert_eq!(body["rows"], json!([["1"]]));
    assert!(body["execTime"].is_u64());

    let (status, body) = sql(
        &server,
        "sql-rw",
        &token,
        "create table notes(id int primary key, body text); insert into notes values (1, 'a')",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["affectedRows"], 1);
    assert_eq!(body["columns"], json!([]));
    assert_eq!(body["rows"], json!([]));
    let (_, body) = sql(&server, "sql-rw", &token, "select id, body from notes; ").await;
    assert_eq!(
        body["columns"][1],
        json!({"name": "body", "type": "TEXT", "nullable": true})
    );
    assert_eq!(body["rows"], json!([["1", "a"]]));

    // A failing statement rolls back those before it.
    let (status, body) = sql(
        &server,
        "sql-rw",
        &token,
        "create table gone(id int); insert into gone values (1); invalid",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["data"], json!({}));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to execute query. Raw error:\n"),
        "{body}"
    );
    let (status, body) = sql(&server, "sql-rw", &token, "select * from gone").await;
    assert_eq!(status, 400, "{body}");

    // A change to the collections table reaches the next request.
    let (status, body) = sql(
        &server,
        "sql-rw",
        &token,
        "update _collections set listRule = 'id != \"\"' where name = 'users'",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, users) = send(
        server
            .request(Method::GET, &host("sql-rw"), "/api/collections/users")
            .header("Authorization", &token),
    )
    .await;
    assert_eq!(users["listRule"], "id != \"\"", "{users}");

    // PocketBase's limits: a query is required and at most 5000 characters; 1000 rows.
    let (status, body) = sql(&server, "sql-rw", &token, "").await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["query"]["code"], "validation_required");
    let long = format!("select '{}' as id", "a".repeat(4985));
    assert_eq!(long.len(), 5000);
    assert_eq!(sql(&server, "sql-rw", &token, &long).await.0, 200);
    let (status, body) = sql(&server, "sql-rw", &token, &format!("{long} ")).await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["query"]["code"], "validation_length_too_long");
    let (status, body) = sql(
        &server,
        "sql-rw",
        &token,
        "with recursive c(x) as (select 1 union all select x + 1 from c limit 1500) select x from c",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 1000);
}

#[tokio::test]
async fn the_sql_console_cannot_reach_other_files_or_load_extensions() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("sql-own").await;
    server.tenant_with_superuser("sql-other").await;
    let other = server.tenant_dir("sql-other").await.join("data.db");
    let copy = server.data_dir().join("stolen.db");
    let refused = [
        format!("ATTACH '{}' AS other", other.display()),
        format!(
            "ATTACH 'file:{}?mode=ro' AS other; select * from other._superusers",
            other.display()
        ),
        "DETACH main".to_string(),
        "select load_extension('/usr/lib/x86_64-linux-gnu/libm.so.6')".to_string(),
        format!("VACUUM INTO '{}'", copy.display()),
        "PRAGMA journal_mode = DELETE".to_string(),
        "PRAGMA writable_schema = ON".to_string(),
        "BEGIN; select 1; COMMIT".to_string(),
        "create temp trigger t after insert on users begin select 1; end".to_string(),
    ];
    for query in &refused {
        let (status, body) = sql(&server, "sql-own", &token, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("not allowed"),
            "{query}: {body}"
        );
    }
    assert!(!copy.exists());
    // Read-only PRAGMAs still answer.
    let (status, body) = sql(&server, "sql-own", &token, "PRAGMA table_info(users)").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body["rows"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_runaway_query_is_interrupted_and_the_tenant_keeps_answering() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("sql-slow").await;
    let started = Instant::now();
    let (status, body) = sql(
        &server,
        "sql-slow",
        &token,
        "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("stopped after"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let (status, body) = sql(&server, "sql-slow", &token, "select 2").await;
    assert_eq!((status, &body["rows"]), (200, &json!([["2"]])));

    // A runaway write is stopped and undone whole, while other writes go on.
    let runaway = "create table big(x); insert into big with recursive c(x) as \
                   (select 1 union all select x + 1 from c) select x from c";
    let write = sql(&server, "sql-slow", &token, runaway);
    let other = post(
        &server,
        "sql-slow",
        "/api/collections/users/records",
        None,
        json!({"email": "during@example.com", "password": "user-password-1",
               "passwordConfirm": "user-password-1"}),
    );
    let ((status, body), (created, record)) = tokio::join!(write, other);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("stopped after"),
        "{body}"
    );
    assert_eq!(created, 200, "{record}");
    let (status, body) = sql(
        &server,
        "sql-slow",
        &token,
        "select (select count(*) from sqlite_master where name = 'big'), \
                (select count(*) from users where email = 'during@example.com')",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([["0", "1"]]));
}

/// Kept messages of the outbox, as the operator API lists them.
async fn kept_to(server: &Server, to: &str) -> Vec<Value> {
    let (status, body) = send(
        server
            .request(Method::GET, "localhost", "/v1/outbox?perPage=200")
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["to"] == to)
        .cloned()
        .collect()
}

#[tokio::test]
async fn test_emails_check_their_form_and_arrive_for_every_template() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("mail-t").await;
    let path = "/api/settings/test/email";
    let (status, body) = post(&server, "mail-t", path, Some(&token), json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Failed to send the test email.");
    assert_eq!(body["data"]["email"]["code"], "validation_required");
    assert_eq!(body["data"]["template"]["code"], "validation_required");
    let (status, body) = post(
        &server,
        "mail-t",
        path,
        Some(&token),
        json!({"email": "not-an-address", "template": "welcome", "collection": "nope"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["email"]["code"], "validation_is_email");
    assert_eq!(body["data"]["template"]["code"], "validation_in_invalid");
    assert_eq!(
        body["data"]["collection"]["code"],
        "validation_invalid_auth_collection"
    );

    let templates = [
        "verification",
        "password-reset",
        "email-change",
        "otp",
        "login-alert",
    ];
    for (i, template) in templates.iter().enumerate() {
        let to = format!("probe{i}@example.com");
        let collection = if i % 2 == 0 { "users" } else { "" };
        let (status, body) = post(
            &server,
            "mail-t",
            path,
            Some(&token),
            json!({"email": to, "template": template, "collection": collection}),
        )
        .await;
        assert_eq!(status, 204, "{template}: {body}");
        // The message is kept before the answer; nothing to wait for.
        let kept = kept_to(&server, &to).await;
        assert_eq!(kept.len(), 1, "{template}");
        assert_eq!(kept[0]["label"], "mail-t");
    }
    let reset = &kept_to(&server, "probe1@example.com").await[0];
    assert!(
        reset["links"]
            .to_string()
            .contains("/_/#/auth/confirm-password-reset/"),
        "{reset}"
    );
    let otp = &kept_to(&server, "probe3@example.com").await[0];
    assert_eq!(otp["code"], "123456", "{otp}");
}

#[tokio::test]
async fn the_s3_test_needs_s3_enabled_and_reports_what_failed() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("s3-t").await;
    let path = "/api/settings/test/s3";
    let (status, body) = post(&server, "s3-t", path, Some(&token), json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Failed to test the S3 filesystem.");
    assert_eq!(body["data"]["filesystem"]["code"], "validation_required");
    let (status, body) = post(
        &server,
        "s3-t",
        path,
        Some(&token),
        json!({"filesystem": "other"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["filesystem"]["code"], "validation_in_invalid");
    for filesystem in ["storage", "backups"] {
        let (status, body) = post(
            &server,
            "s3-t",
            path,
            Some(&token),
            json!({ "filesystem": filesystem }),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            body["message"],
            "Failed to test the S3 filesystem. Raw error: \nS3 storage filesystem is not enabled."
        );
    }
    // Enabled, but nothing listens at the endpoint: the upload step fails.
    let (status, body) = send(
        server
            .request(Method::PATCH, &host("s3-t"), "/api/settings")
            .header("Authorization", &token)
            .json(&json!({"backups": {"s3": {
                "enabled": true, "bucket": "b", "region": "us-east-1",
                "endpoint": "http://127.0.0.1:9", "accessKey": "k", "secret": "s"
            }}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &server,
        "s3-t",
        path,
        Some(&token),
        json!({"filesystem": "backups"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("failed to upload a test file"),
        "{body}"
    );
}

#[tokio::test]
#[ignore = "needs the S3 server that tests/suites/s3 starts"]
async fn the_s3_test_passes_against_a_real_bucket() {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("s3-ok").await;
    let (status, body) = send(
        server
            .request(Method::PATCH, &host("s3-ok"), "/api/settings")
            .header("Authorization", &token)
            .json(&json!({"s3": {
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
    let (status, body) = post(
        &server,
        "s3-ok",
        "/api/settings/test/s3",
        Some(&token),
        json!({"filesystem": "storage"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test]
async fn a_view_query_dry_run_answers_fields_and_a_sample_without_saving() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("dry").await;
    let path = "/api/collections/meta/dry-run-view";
    let (status, body) = post(
        &server,
        "dry",
        path,
        Some(&token),
        json!({"query": "select 1 as id"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fields"][0]["name"], "id");
    assert_eq!(body["fields"][0]["type"], "text");
    assert_eq!(body["sample"][0]["id"], "1");
    let (status, body) = post(
        &server,
        "dry",
        path,
        Some(&token),
        json!({"query": "select id, email from users"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fields"][1]["type"], "email", "{body}");
    assert_eq!(body["sample"], json!([]));
    for query in [
        "(select 1 as id union all select 1 as id)",
        "(select 1 as id union select '' as id)",
        "CREATE TABLE t1(x INT)",
        "select 'a' as id; select 'b' as id",
        "select load_extension('/tmp/x.so') as id",
    ] {
        let (status, body) = post(
            &server,
            "dry",
            path,
            Some(&token),
            json!({ "query": query }),
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["data"], json!({}));
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid view query. Raw error: \n"),
            "{body}"
        );
    }
    let (status, body) = post(&server, "dry", path, Some(&token), json!({"query": ""})).await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["query"]["code"], "validation_required");
    // Nothing was saved.
    let (_, list) = send(
        server
            .request(
                Method::GET,
                &host("dry"),
                "/api/collections?filter=type='view'",
            )
            .header("Authorization", &token),
    )
    .await;
    assert_eq!(list["totalItems"], 0, "{list}");
}

async fn app_url(server: &Server, slug: &str, token: &str) -> Value {
    let (status, body) = send(
        server
            .request(Method::GET, &host(slug), "/api/settings")
            .header("Authorization", token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["meta"]["appURL"].clone()
}

async fn set_app_url(server: &Server, slug: &str, token: &str, url: &str) -> Value {
    let (status, body) = send(
        server
            .request(Method::PATCH, &host(slug), "/api/settings")
            .header("Authorization", token)
            .json(&json!({"meta": {"appURL": url}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["meta"]["appURL"].clone()
}

#[tokio::test]
async fn a_new_tenants_app_url_is_its_own_url_and_mail_links_reach_its_pages() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("url-new").await;
    let own = format!("http://url-new.localhost:{}", server.addr.port());
    assert_eq!(app_url(&server, "url-new", &token).await, own);
    let (status, body) = post(
        &server,
        "url-new",
        "/api/settings/test/email",
        Some(&token),
        json!({"email": "links@example.com", "template": "verification"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let mail = &kept_to(&server, "links@example.com").await[0];
    assert!(
        mail["links"]
            .to_string()
            .contains(&format!("{own}/_/#/auth/confirm-verification/")),
        "{mail}"
    );
}

#[tokio::test]
async fn a_hand_set_app_url_is_kept_and_the_shown_one_keeps_following() {
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("url-set").await;
    let own = format!("http://url-set.localhost:{}", server.addr.port());
    // Saving the form unchanged keeps following the tenant's URL.
    assert_eq!(set_app_url(&server, "url-set", &token, &own).await, own);
    let pinned = "https://www.pinned-example.com";
    assert_eq!(
        set_app_url(&server, "url-set", &token, pinned).await,
        pinned
    );
    assert_eq!(app_url(&server, "url-set", &token).await, pinned);

    // A custom domain verified later changes nothing for a chosen URL...
    let (status, body) = crate::support::operator(
        &server,
        Method::POST,
        "/v1/tenants/url-set/domains",
        Some(json!({"domain": "shop.example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let control =
        warren_store::sql::Connection::open(server.data_dir().join("control.db")).unwrap();
    control
        .execute(
            "UPDATE domains SET status = 'verified' WHERE domain = 'shop.example.com'",
            [],
        )
        .unwrap();
    let custom = format!("http://shop.example.com:{}", server.addr.port());
    let routed = crate::support::eventually(Duration::from_secs(10), async || {
        send(
            server
                .request(Method::GET, "shop.example.com", "/api/health")
                .header("Authorization", &token),
        )
        .await
        .0 == 200
    })
    .await;
    assert!(routed, "the verified domain does not reach the tenant");
    assert_eq!(app_url(&server, "url-set", &token).await, pinned);

    // ...while a tenant that follows its URL takes the custom domain.
    assert_eq!(
        set_app_url(&server, "url-set", &token, &custom).await,
        custom
    );
    assert_eq!(app_url(&server, "url-set", &token).await, custom);
    // Following means it moves with the domain: removed, it is the platform host again.
    let (status, body) = crate::support::operator(
        &server,
        Method::DELETE,
        "/v1/tenants/url-set/domains/shop.example.com",
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    assert_eq!(app_url(&server, "url-set", &token).await, own);
}

#[tokio::test]
async fn behind_an_https_proxy_the_app_url_is_the_public_https_url() {
    let server = Server::start(&["--public-url", "https://localhost:8443"]);
    let token = server.tenant_with_superuser("url-tls").await;
    assert_eq!(
        app_url(&server, "url-tls", &token).await,
        "https://url-tls.localhost:8443"
    );
}
