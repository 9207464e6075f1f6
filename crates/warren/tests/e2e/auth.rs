//! Authentication end to end: tokens never cross tenants, a login flood is turned away quickly
//! with 429s while the server keeps answering, password changes and token-key rotation revoke
//! old tokens at once, and imported bcrypt hashes become argon2id at the first login.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, send};

const EMAIL: &str = "root@example.com";
const PASSWORD: &str = "root-password-1";
/// A PocketBase 0.40.6 bcrypt hash of "password123".
const BCRYPT_PASSWORD123: &str = "$2a$10$TWp86sJ.eZp1r1ch2VLHjuE6BQvRrm5hfsuYPOo2dHsj1gt1jOZVy";

fn host(slug: &str) -> String {
    format!("{slug}.localhost")
}

async fn login(
    server: &Server,
    slug: &str,
    collection: &str,
    identity: &str,
    password: &str,
) -> (u16, Value) {
    send(
        server
            .request(
                Method::POST,
                &host(slug),
                &format!("/api/collections/{collection}/auth-with-password"),
            )
            .json(&json!({ "identity": identity, "password": password })),
    )
    .await
}

/// Creates tenants with a superuser each (when `superuser` says so) and returns their tokens.
async fn tenants(server: &Server, slugs: &[(&str, bool)]) -> Vec<Option<String>> {
    let mut tokens = Vec::new();
    for (slug, superuser) in slugs {
        let output = server.cli(&["tenant", "create", slug]);
        assert!(output.status.success(), "{output:?}");
        if !superuser {
            tokens.push(None);
            continue;
        }
        let output = server.cli(&["superuser", "upsert", slug, EMAIL, PASSWORD]);
        assert!(output.status.success(), "{output:?}");
        let (status, body) = login(server, slug, "_superusers", EMAIL, PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(Some(body["token"].as_str().unwrap().to_string()));
    }
    tokens
}

/// Creates a `users` record as the superuser.
async fn create_user(server: &Server, slug: &str, su: &str, body: Value) -> Value {
    let (status, record) = send(
        server
            .request(Method::POST, &host(slug), "/api/collections/users/records")
            .header("Authorization", su)
            .json(&body),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    record
}

/// The password hash stored for user `id` of tenant `slug`.
async fn stored_password(server: &Server, slug: &str, id: &str) -> String {
    server
        .with_tenant_db(slug, |db| stored_password_in(db, id))
        .await
}

fn stored_password_in(db: &warren_store::sql::Connection, id: &str) -> String {
    db.query_row("SELECT password FROM users WHERE id = ?1", [id], |row| {
        row.get(0)
    })
    .unwrap()
}

async fn refresh(server: &Server, slug: &str, token: &str) -> (u16, Value) {
    send(
        server
            .request(
                Method::POST,
                &host(slug),
                "/api/collections/users/auth-refresh",
            )
            .header("Authorization", token),
    )
    .await
}

#[tokio::test]
async fn tokens_of_one_tenant_are_nobody_in_another() {
    let server = Server::start(&[]);
    let tokens = tenants(&server, &[("alpha", true), ("beta", true)]).await;
    let (alpha_su, beta_su) = (tokens[0].clone().unwrap(), tokens[1].clone().unwrap());

    // The same user id in both tenants; beta's copy even gets alpha's token key.
    let id = "sameuserid00001";
    let alpha_user = json!({
        "id": id, "email": "u@example.com", "password": "user-password-1",
        "passwordConfirm": "user-password-1",
    });
    create_user(&server, "alpha", &alpha_su, alpha_user.clone()).await;
    create_user(&server, "beta", &beta_su, alpha_user).await;
    let token_key: String = server
        .with_tenant_db("alpha", |db| {
            db.query_row("SELECT tokenKey FROM users WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        })
        .await;
    server
        .with_tenant_db("beta", |db| {
            db.execute(
                "UPDATE users SET tokenKey = ?1 WHERE id = ?2",
                [&token_key, id],
            )
            .unwrap()
        })
        .await;
    let (status, auth) = login(
        &server,
        "alpha",
        "users",
        "u@example.com",
        "user-password-1",
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    let user_token = auth["token"].as_str().unwrap().to_string();

    let record_path = format!("/api/collections/users/records/{id}");
    let view = |slug: &'static str, token: String| {
        let request = server
            .request(Method::GET, &host(slug), &record_path)
            .header("Authorization", token);
        send(request)
    };
    // At home the user sees its own record (users' default view rule is the owner only).
    let (status, body) = view("alpha", user_token.clone()).await;
    assert_eq!((status, body["id"].as_str()), (200, Some(id)), "{body}");
    // In beta the token is a guest's: the same id is not found.
    let (status, body) = view("beta", user_token.clone()).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["status"], 404);
    let (status, body) = refresh(&server, "beta", &user_token).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = refresh(&server, "alpha", &user_token).await;
    assert_eq!(status, 200);

    // A user token is refused on superuser routes at home (403) and a guest's there (401).
    let collections = |slug: &'static str, token: String| {
        send(
            server
                .request(Method::GET, &host(slug), "/api/collections")
                .header("Authorization", token),
        )
    };
    let (status, body) = collections("alpha", user_token.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = collections("beta", user_token.clone()).await;
    assert_eq!(status, 401, "{body}");

    // Alpha's superuser token: everything on alpha, nothing on beta.
    let (status, _) = collections("alpha", alpha_su.clone()).await;
    assert_eq!(status, 200);
    for path in ["/api/collections", "/api/settings", "/api/logs"] {
        let (status, body) = send(
            server
                .request(Method::GET, &host("beta"), path)
                .header("Authorization", &alpha_su),
        )
        .await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(
            body,
            json!({"data": {}, "message": "The request requires valid record authorization token.", "status": 401}),
            "{path}"
        );
    }
    let (status, body) = view("beta", alpha_su.clone()).await;
    assert_eq!(status, 404, "{body}");
    let (_, body) = send(
        server
            .request(Method::GET, &host("beta"), "/api/health")
            .header("Authorization", &alpha_su),
    )
    .await;
    assert_eq!(body["data"], json!({}));
    let (status, body) = send(
        server
            .request(Method::DELETE, &host("beta"), &record_path)
            .header("Authorization", &alpha_su),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = view("beta", beta_su.clone()).await;
    assert_eq!(status, 200, "beta's record survives: {body}");

    // A superuser of gamma only: beta and gamma never share accounts.
    let gamma = tenants(&server, &[("gamma", false)]).await;
    assert!(gamma[0].is_none());
    let (status, body) = login(&server, "gamma", "_superusers", EMAIL, PASSWORD).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"data": {}, "message": "Failed to authenticate.", "status": 400})
        )
    );
}

#[tokio::test]
async fn a_login_flood_gets_quick_429s_while_the_server_keeps_answering() {
    let server = Arc::new(Server::start(&[]));
    let tokens = tenants(&server, &[("alpha", true), ("beta", true)]).await;
    let su = tokens[0].clone().unwrap();
    for k in 0..4 {
        create_user(
            &server,
            "alpha",
            &su,
            json!({"email": format!("user{k}@example.com"), "password": "user-password-1",
                   "passwordConfirm": "user-password-1"}),
        )
        .await;
    }
    let beta_su = tokens[1].clone().unwrap();
    create_user(
        &server,
        "beta",
        &beta_su,
        json!({"email": "b@example.com", "password": "user-password-1",
               "passwordConfirm": "user-password-1"}),
    )
    .await;

    // Health probes run on their own while the flood goes on.
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let prober = {
        let (server, flooding) = (Arc::clone(&server), Arc::clone(&flooding));
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut answered = 0;
            while flooding.load(std::sync::atomic::Ordering::Relaxed) || answered == 0 {
                let begun = Instant::now();
                let (status, _) = server.get("alpha.localhost", "/api/health").await;
                assert_eq!(status, 200);
                slowest = slowest.max(begun.elapsed());
                answered += 1;
                tokio::task::yield_now().await;
            }
            (answered, slowest)
        })
    };

    // 200 at once: half guess user0's password, half log in user1..3 correctly.
    let mut attempts = Vec::new();
    for k in 0..200 {
        let server = Arc::clone(&server);
        attempts.push(tokio::spawn(async move {
            let (identity, password) = if k % 2 == 0 {
                ("user0@example.com".to_string(), format!("guess-{k}"))
            } else {
                (
                    format!("user{}@example.com", 1 + k % 3),
                    "user-password-1".to_string(),
                )
            };
            let begun = Instant::now();
            let (status, body) = login(&server, "alpha", "users", &identity, &password).await;
            (k, status, body, begun.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    let (mut ok, mut throttled, mut slowest_429) = (0, 0, Duration::ZERO);
    for attempt in attempts {
        let (k, status, body, took) = attempt.await.unwrap();
        latencies.push(took);
        match status {
            200 => {
                assert_eq!(k % 2, 1, "a guess got in: {body}");
                ok += 1;
            }
            400 => assert_eq!(
                body,
                json!({"data": {}, "message": "Failed to authenticate.", "status": 400})
            ),
            429 => {
                assert_eq!(
                    body,
                    json!({"data": {}, "message": "Too Many Requests.", "status": 429})
                );
                throttled += 1;
                slowest_429 = slowest_429.max(took);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let (answered, slowest_health) = prober.await.unwrap();

    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100 - 1];
    eprintln!(
        "flood: {ok} ok, {throttled} 429, p99 {p99:?}, slowest 429 {slowest_429:?}, \
         {answered} health probes, slowest {slowest_health:?}"
    );
    // More than the per-client budget (120 per 10 s) was sent, so the excess is refused.
    assert!(throttled >= 80, "{throttled} throttled");
    assert!(ok >= 1, "no correct login got through");
    // Refusals come without queueing for the hasher; nothing waits for seconds.
    assert!(slowest_429 < Duration::from_millis(2500), "{slowest_429:?}");
    assert!(p99 < Duration::from_secs(4), "p99 {p99:?}");
    assert!(
        slowest_health < Duration::from_secs(2),
        "{slowest_health:?}"
    );

    // Other tenants keep their own budgets: beta logs in at once.
    let (status, body) = login(&server, "beta", "users", "b@example.com", "user-password-1").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn password_changes_and_token_key_rotation_revoke_old_tokens() {
    let server = Server::start(&[]);
    let tokens = tenants(&server, &[("alpha", true)]).await;
    let su = tokens[0].clone().unwrap();
    let body = |email: &str| json!({"email": email, "password": "old-password-1", "passwordConfirm": "old-password-1"});
    let user = create_user(&server, "alpha", &su, body("u@example.com")).await;
    create_user(&server, "alpha", &su, body("o@example.com")).await;
    let id = user["id"].as_str().unwrap().to_string();
    let user_login = async |password: &str| {
        let (status, auth) = login(&server, "alpha", "users", "u@example.com", password).await;
        (
            status,
            auth["token"].as_str().unwrap_or_default().to_string(),
        )
    };
    let (status, other_auth) =
        login(&server, "alpha", "users", "o@example.com", "old-password-1").await;
    assert_eq!(status, 200);
    let other_token = other_auth["token"].as_str().unwrap().to_string();

    // The user changes its own password: the token it used is dead at once.
    let (status, first) = user_login("old-password-1").await;
    assert_eq!(status, 200);
    assert_eq!(refresh(&server, "alpha", &first).await.0, 200);
    let (status, body) = send(
        server
            .request(
                Method::PATCH,
                "alpha.localhost",
                &format!("/api/collections/users/records/{id}"),
            )
            .header("Authorization", &first)
            .json(
                &json!({"oldPassword": "old-password-1", "password": "new-password-2",
                          "passwordConfirm": "new-password-2"}),
            ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(refresh(&server, "alpha", &first).await.0, 401);
    let (status, _) = server
        .get(
            "alpha.localhost",
            &format!("/api/collections/users/records/{id}"),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(user_login("old-password-1").await.0, 400);
    let (status, second) = user_login("new-password-2").await;
    assert_eq!(status, 200);
    assert_eq!(refresh(&server, "alpha", &second).await.0, 200);

    // A superuser resets it: the user's tokens die, the other user's live on.
    let (status, body) = send(
        server
            .request(
                Method::PATCH,
                "alpha.localhost",
                &format!("/api/collections/users/records/{id}"),
            )
            .header("Authorization", &su)
            .json(&json!({"password": "third-password-3", "passwordConfirm": "third-password-3"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(refresh(&server, "alpha", &second).await.0, 401);
    assert_eq!(refresh(&server, "alpha", &other_token).await.0, 200);
    let (status, third) = user_login("third-password-3").await;
    assert_eq!(status, 200);

    // Rotating the token key in the database (as an operator would) takes effect on the next
    // request: no cache keeps the old key alive.
    assert_eq!(refresh(&server, "alpha", &third).await.0, 200);
    server
        .with_tenant_db("alpha", |db| {
            db.execute(
                "UPDATE users SET tokenKey = 'rotatedtokenkeyrotatedtokenkeyrotatedkey12' WHERE id = ?1",
                [&id],
            )
            .unwrap()
        })
        .await;
    let (status, body) = refresh(&server, "alpha", &third).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(refresh(&server, "alpha", &other_token).await.0, 200);
    let (status, fourth) = user_login("third-password-3").await;
    assert_eq!(status, 200);
    assert_eq!(refresh(&server, "alpha", &fourth).await.0, 200);
}

#[tokio::test]
async fn imported_bcrypt_hashes_become_argon2id_at_the_first_login() {
    let server = Server::start(&[]);
    let tokens = tenants(&server, &[("alpha", true)]).await;
    let su = tokens[0].clone().unwrap();
    let mut ids = Vec::new();
    for email in ["imported@example.com", "untouched@example.com"] {
        let user = create_user(
            &server,
            "alpha",
            &su,
            json!({"email": email, "password": "placeholder-1", "passwordConfirm": "placeholder-1"}),
        )
        .await;
        ids.push(user["id"].as_str().unwrap().to_string());
    }
    server
        .with_tenant_db("alpha", |db| {
            for id in &ids {
                assert!(stored_password_in(db, id).starts_with("$argon2id$"));
                db.execute(
                    "UPDATE users SET password = ?1 WHERE id = ?2",
                    [BCRYPT_PASSWORD123, id],
                )
                .unwrap();
            }
        })
        .await;

    // A wrong password leaves the bcrypt hash alone.
    let (status, _) = login(
        &server,
        "alpha",
        "users",
        "untouched@example.com",
        "nope-123",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        stored_password(&server, "alpha", &ids[1]).await,
        BCRYPT_PASSWORD123
    );

    // The right one logs in and the stored hash is argon2id from then on.
    let (status, auth) = login(
        &server,
        "alpha",
        "users",
        "imported@example.com",
        "password123",
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    let rehashed = stored_password(&server, "alpha", &ids[0]).await;
    assert!(rehashed.starts_with("$argon2id$v=19$"), "{rehashed}");
    assert_eq!(
        stored_password(&server, "alpha", &ids[1]).await,
        BCRYPT_PASSWORD123
    );
    // The token issued at that login stays valid (rehashing does not rotate the token key).
    let token = auth["token"].as_str().unwrap();
    assert_eq!(refresh(&server, "alpha", token).await.0, 200);
    let (status, _) = login(
        &server,
        "alpha",
        "users",
        "imported@example.com",
        "password123",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stored_password(&server, "alpha", &ids[0]).await, rehashed);
    let (status, _) = login(
        &server,
        "alpha",
        "users",
        "imported@example.com",
        "password124",
    )
    .await;
    assert_eq!(status, 400);
}

async fn patch_settings(server: &Server, slug: &str, su: &str, body: Value) {
    let (status, answer) = send(
        server
            .request(Method::PATCH, &host(slug), "/api/settings")
            .header("Authorization", su)
            .json(&body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_tenants_rate_limit_rules_apply_to_it_alone_and_change_live() {
    let server = Server::start(&[]);
    let tokens = tenants(&server, &[("limited", true), ("free", true)]).await;
    let (limited, free) = (tokens[0].clone().unwrap(), tokens[1].clone().unwrap());
    let user = json!({"email": "ann@example.com", "password": "ann-password-1", "passwordConfirm": "ann-password-1"});
    create_user(&server, "limited", &limited, user.clone()).await;
    create_user(&server, "free", &free, user).await;
    // PocketBase's default rules: `*:auth` allows 2 attempts per 3 seconds and client IP.
    patch_settings(
        &server,
        "limited",
        &limited,
        json!({"rateLimits": {"enabled": true}}),
    )
    .await;
    let attempt = |slug: &'static str| {
        let server = &server;
        async move { login(server, slug, "users", "ann@example.com", "ann-password-1").await }
    };
    assert_eq!(attempt("limited").await.0, 200);
    assert_eq!(attempt("limited").await.0, 200);
    let (status, body) = attempt("limited").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body,
        json!({"data": {}, "message": "Too Many Requests.", "status": 429})
    );
    for _ in 0..4 {
        assert_eq!(
            attempt("free").await.0,
            200,
            "another tenant keeps its own budget"
        );
    }
    // Excluding the client's address lifts the limit at once.
    patch_settings(
        &server,
        "limited",
        &limited,
        json!({"rateLimits": {"excludedIPs": ["127.0.0.0/8"]}}),
    )
    .await;
    assert_eq!(attempt("limited").await.0, 200);
    patch_settings(
        &server,
        "limited",
        &limited,
        json!({"rateLimits": {"excludedIPs": [], "enabled": false}}),
    )
    .await;
    // The built-in brute-force limit still holds with the rules off: failed logins of one
    // identity are cut off after 10.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            login(
                &server,
                "limited",
                "users",
                "ann@example.com",
                "wrong-password",
            )
            .await
            .0,
        );
    }
    assert_eq!(&statuses[..10], &[400; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
}
