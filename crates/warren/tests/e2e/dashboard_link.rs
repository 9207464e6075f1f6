//! The console's "Open dashboard" button and the tenant's `/api/warren/*` routes: a one-time
//! code that signs the owner in once, only on its own project and only within its lifetime,
//! behind the console's CSRF check; and the usage route, for the project's superusers only.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::console::{Visitor, project_id, verified};
use crate::support::{Server, eventually, send};

/// Presses "Open dashboard" on project `id`: the code from the redirect to the dashboard.
async fn open_dashboard(
    server: &Server,
    visitor: &mut Visitor<'_>,
    id: &str,
    slug: &str,
) -> String {
    let path = format!("/projects/{id}");
    let page = visitor
        .submit(&path, &format!("{path}/dashboard"), &[])
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.unwrap();
    let prefix = format!("http://{slug}.localhost:{}/_/#/link/", server.addr.port());
    let code = location
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{location}"));
    assert!(
        code.len() >= 22 && code.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{code}"
    );
    code.to_string()
}

/// `POST /api/warren/dashboard-link` on `slug`.
async fn redeem(server: &Server, slug: &str, code: &str) -> (u16, Value) {
    send(
        server
            .request(
                Method::POST,
                &format!("{slug}.localhost"),
                "/api/warren/dashboard-link",
            )
            .json(&json!({ "code": code })),
    )
    .await
}

/// `GET path` on `slug` with `token` (none when empty).
async fn get_as(server: &Server, slug: &str, path: &str, token: &str) -> (u16, Value) {
    let mut request = server.request(Method::GET, &format!("{slug}.localhost"), path);
    if !token.is_empty() {
        request = request.header("authorization", token);
    }
    send(request).await
}

#[tokio::test]
async fn the_open_dashboard_button_signs_the_owner_in_once() {
    let server = Server::start(&[]);
    let (mut visitor, _) = verified(&server, "owner@example.com").await;
    let id = project_id(&visitor.create_project("linked").await);

    let code = open_dashboard(&server, &mut visitor, &id, "linked").await;
    let (status, body) = redeem(&server, "linked", &code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["email"], "owner@example.com");
    assert_eq!(body["record"]["collectionName"], "_superusers");
    let token = body["token"].as_str().unwrap().to_string();
    let (status, listed) = get_as(&server, "linked", "/api/collections", &token).await;
    assert_eq!(status, 200, "{listed}");

    // Used once: the same code is refused, with a message the dashboard can show.
    let (status, again) = redeem(&server, "linked", &code).await;
    assert_eq!(status, 400, "{again}");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("invalid, used or expired"),
        "{again}"
    );
    assert_eq!(
        again["data"]["code"]["code"], "validation_invalid",
        "{again}"
    );

    // A second link signs in the same superuser, which was made only once.
    let second = open_dashboard(&server, &mut visitor, &id, "linked").await;
    let (status, body2) = redeem(&server, "linked", &second).await;
    assert_eq!(status, 200, "{body2}");
    assert_eq!(body2["record"]["id"], body["record"]["id"]);

    // Unknown, empty and absurd codes.
    for code in ["", "nope", &"A".repeat(32), &"x".repeat(5000)] {
        let (status, body) = redeem(&server, "linked", code).await;
        assert_eq!(status, 400, "{code}: {body}");
    }
}

#[tokio::test]
async fn a_code_made_for_one_project_is_refused_on_another() {
    let server = Server::start(&[]);
    let (mut ann, _) = verified(&server, "ann@example.com").await;
    let alpha = project_id(&ann.create_project("alpha").await);
    let _beta = project_id(&ann.create_project("beta").await);
    let (mut bob, _) = verified(&server, "bob@example.com").await;
    let _gamma = project_id(&bob.create_project("gamma").await);

    let code = open_dashboard(&server, &mut ann, &alpha, "alpha").await;
    for other in ["beta", "gamma"] {
        let (status, body) = redeem(&server, other, &code).await;
        assert_eq!(status, 400, "{other}: {body}");
        let (status, _) = get_as(&server, other, "/api/collections", "").await;
        assert_eq!(status, 401);
    }
    // The refusal elsewhere does not use the code up on its own project.
    let (status, body) = redeem(&server, "alpha", &code).await;
    assert_eq!(status, 200, "{body}");
    // Its token is alpha's only.
    let token = body["token"].as_str().unwrap();
    let (status, _) = get_as(&server, "beta", "/api/collections", token).await;
    assert_ne!(status, 200);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let server = Server::start(&["--dashboard-link-ttl", "10ms"]);
    let (mut visitor, _) = verified(&server, "late@example.com").await;
    let id = project_id(&visitor.create_project("late").await);
    let code = open_dashboard(&server, &mut visitor, &id, "late").await;
    // The code's lifetime is a clock, not an event: wait it out.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, body) = redeem(&server, "late", &code).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn the_button_needs_the_owner_and_a_valid_csrf_token() {
    let server = Server::start(&[]);
    let (mut ann, _) = verified(&server, "ann@example.com").await;
    let id = project_id(&ann.create_project("guarded").await);
    let path = format!("/projects/{id}/dashboard");

    let page = ann.post(&path, &[("csrf", "forged")]).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.location.is_none());
    let page = ann.post(&path, &[]).await;
    assert_eq!(page.status, 403, "{}", page.body);

    // Another account, with its own valid token, does not find the project.
    let (mut bob, _) = verified(&server, "bob@example.com").await;
    let page = bob.submit("/projects", &path, &[]).await;
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(page.location.is_none());

    // Signed out: to the login page, no code.
    let mut stranger = Visitor::new(&server);
    let page = stranger.submit("/login", &path, &[]).await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/login"))
    );

    // The project page offers the button, and lets its form lead on to the project's host.
    let response = ann.get(&format!("/projects/{id}")).await;
    assert!(
        response
            .body
            .contains(&format!(r#"action="/projects/{id}/dashboard""#))
    );
    let csp = server
        .request(Method::GET, "localhost", "/")
        .send()
        .await
        .unwrap()
        .headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let host = format!("http://*.localhost:{}", server.addr.port());
    assert!(csp.contains(&format!("form-action 'self' {host}")), "{csp}");
}

#[tokio::test]
async fn the_usage_route_answers_the_projects_superusers_only() {
    let server = Server::start(&["--metering-interval", "100ms"]);
    let token = server.tenant_with_superuser("metered").await;
    let other = server.tenant_with_superuser("elsewhere").await;

    // A regular user of the same project.
    let (status, body) = send(
        server
            .request(Method::POST, "metered.localhost", "/api/collections/users/records")
            .header("authorization", &token)
            .json(&json!({ "email": "u@example.com", "password": "user-pass-123", "passwordConfirm": "user-pass-123" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        server
            .request(
                Method::POST,
                "metered.localhost",
                "/api/collections/users/auth-with-password",
            )
            .json(&json!({ "identity": "u@example.com", "password": "user-pass-123" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user = body["token"].as_str().unwrap().to_string();

    let path = "/api/warren/usage";
    assert_eq!(get_as(&server, "metered", path, "").await.0, 401);
    assert_eq!(get_as(&server, "metered", path, &user).await.0, 403);
    assert_eq!(get_as(&server, "metered", path, &other).await.0, 401);
    let (status, body) = get_as(
        &server,
        "metered",
        "/api/warren/usage?from=yesterday",
        &token,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let long = format!("{path}?to={}", "9".repeat(100));
    assert_eq!(get_as(&server, "metered", &long, &token).await.0, 400);

    let mut last = Value::Null;
    let counted = eventually(Duration::from_secs(10), async || {
        let (status, body) = get_as(&server, "metered", path, &token).await;
        assert_eq!(status, 200, "{body}");
        last = body;
        last["totals"]["requests"].as_u64().unwrap_or(0) >= 4
    })
    .await;
    assert!(counted, "usage never showed the requests: {last}");
    let hour = last["items"][0]["hour"].as_str().unwrap();
    assert!(hour.ends_with(":00:00Z"), "{hour}");
    let (status, body) = get_as(
        &server,
        "metered",
        "/api/warren/usage?from=2000-01-01&to=2000-01-02",
        &token,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], json!([]));
}

#[tokio::test]
async fn a_link_does_not_pass_the_projects_superuser_ips() {
    let server = Server::start(&[]);
    let (mut visitor, _) = verified(&server, "fenced@example.com").await;
    let id = project_id(&visitor.create_project("fenced").await);
    let code = open_dashboard(&server, &mut visitor, &id, "fenced").await;
    let (status, body) = redeem(&server, "fenced", &code).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let (status, body) = send(
        server
            .request(Method::PATCH, "fenced.localhost", "/api/settings")
            .header("authorization", token)
            .json(&json!({ "superuserIPs": ["10.9.0.0/16"] })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let code = open_dashboard(&server, &mut visitor, &id, "fenced").await;
    let (status, body) = redeem(&server, "fenced", &code).await;
    assert_eq!(status, 403, "{body}");
}
