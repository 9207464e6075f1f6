//! The console: signup and sessions, CSRF on every form, rate limits, project ownership across
//! accounts, and the operator's account routes.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;

use crate::support::{Server, TOKEN, encode, send};

/// A browser-like client of the console: keeps cookies, never follows redirects.
pub(crate) struct Visitor<'a> {
    server: &'a Server,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

/// A response: status, `Location`, raw `Set-Cookie` values and body.
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) set_cookies: Vec<String>,
    pub(crate) body: String,
}

impl Page {
    /// The first CSRF token in the page's forms.
    pub(crate) fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }
}

impl<'a> Visitor<'a> {
    pub(crate) fn new(server: &'a Server) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            server,
            client,
            cookies: HashMap::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut request = self
            .client
            .request(method, format!("http://{}{}", self.server.addr, path))
            .header("host", format!("localhost:{}", self.server.addr.port()));
        if !cookie.is_empty() {
            request = request.header("cookie", cookie.join("; "));
        }
        request
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let set_cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for cookie in &set_cookies {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || cookie.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let body = response.text().await.unwrap();
        Page {
            status,
            location,
            set_cookies,
            body,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let request = self.request(Method::GET, path);
        self.send(request).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self
            .request(Method::POST, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(form));
        self.send(request).await
    }

    /// Loads `page_path` for its CSRF token, then posts `form` with it to `path`.
    pub(crate) async fn submit(
        &mut self,
        page_path: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> Page {
        let csrf = self.get(page_path).await.csrf();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    async fn signup(&mut self, email: &str, password: &str) -> Page {
        self.submit(
            "/signup",
            "/signup",
            &[("email", email), ("password", password)],
        )
        .await
    }

    async fn login(&mut self, email: &str, password: &str) -> Page {
        self.submit(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    pub(crate) async fn create_project(&mut self, slug: &str) -> Page {
        self.submit("/projects", "/projects", &[("slug", slug)])
            .await
    }
}

async fn operator(server: &Server, method: Method, path: &str) -> (u16, Value) {
    send(server.request(method, "localhost", path).bearer_auth(TOKEN)).await
}

/// The id of the account with `email`, from the operator API.
async fn account_id(server: &Server, email: &str) -> String {
    let path = format!("/v1/accounts?email={}", email.replace('@', "%40"));
    let (status, body) = operator(server, Method::GET, &path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalItems"], 1, "{body}");
    assert_eq!(body["items"][0]["email"], email);
    body["items"][0]["id"].as_str().unwrap().to_string()
}

/// `GET path` on `host`: status and body text.
async fn send_raw(server: &Server, host: &str, path: &str) -> (u16, String) {
    let response = server
        .request(Method::GET, host, path)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Signs up `email` and has the operator mark it verified (the mail path is covered by the
/// browser suite with a real SMTP sink).
pub(crate) async fn verified<'a>(server: &'a Server, email: &str) -> (Visitor<'a>, String) {
    let mut visitor = Visitor::new(server);
    let page = visitor.signup(email, "correct-horse-1").await;
    assert_eq!(page.status, 303, "{}", page.body);
    let id = account_id(server, email).await;
    let (status, _) = operator(server, Method::POST, &format!("/v1/accounts/{id}/verify")).await;
    assert_eq!(status, 200);
    (visitor, id)
}

/// The project id from a creation redirect (`/projects/{id}?created=1`).
pub(crate) fn project_id(page: &Page) -> String {
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.as_deref().unwrap();
    let rest = location.strip_prefix("/projects/").unwrap();
    rest.split('?').next().unwrap().to_string()
}

#[tokio::test]
async fn signup_signs_in_with_safe_cookies_and_logout_ends_the_session() {
    let server = Server::start(&[]);
    let mut visitor = Visitor::new(&server);

    // The console answers on the platform host and on console.<domain>, not on tenant hosts.
    let (status, _) = send_raw(&server, "console.localhost", "/signup").await;
    assert_eq!(status, 200);
    let (status, _) = send_raw(&server, "some-app.localhost", "/signup").await;
    assert_eq!(status, 404);

    let page = visitor.get("/signup").await;
    assert_eq!(page.status, 200);
    let nonce = page
        .set_cookies
        .iter()
        .find(|c| c.starts_with("warren_csrf="))
        .expect("a CSRF nonce cookie");
    assert!(nonce.contains("HttpOnly") && nonce.contains("SameSite=Strict"));

    let page = visitor.signup("Ann@Example.com", "correct-horse-1").await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/projects"));
    let session = page
        .set_cookies
        .iter()
        .find(|c| c.starts_with("warren_session="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(session.contains(flag), "{session} lacks {flag}");
    }
    // Plain http: no Secure flag, or browsers would drop the cookie.
    assert!(!session.contains("Secure"), "{session}");

    // Only a hash of the session token is stored.
    let secret = visitor.cookies["warren_session"].clone();
    let db = warren_store::sql::Connection::open(server.data_dir().join("control.db")).unwrap();
    let stored: Vec<String> = db
        .prepare("SELECT token_hash FROM account_sessions")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], secret);
    drop(db);

    let page = visitor.get("/projects").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("ann@example.com"));
    assert!(page.body.contains("Confirm your email"));
    // Security headers on every page.
    let response = visitor
        .request(Method::GET, "/projects")
        .send()
        .await
        .unwrap();
    let headers = response.headers();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    let page = visitor.submit("/projects", "/logout", &[]).await;
    assert_eq!(page.status, 303);
    assert!(!visitor.cookies.contains_key("warren_session"));
    // The old token no longer signs anyone in.
    visitor.cookies.insert("warren_session".into(), secret);
    let page = visitor.get("/projects").await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/login"))
    );

    // Wrong password, then the right one.
    visitor.cookies.remove("warren_session");
    let page = visitor.login("ann@example.com", "wrong-password").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Wrong email or password."));
    let page = visitor.login("ann@example.com", "wrong-password-").await;
    assert_eq!(page.status, 400);
    let page = visitor.login("nobody@example.com", "correct-horse-1").await;
    assert_eq!(page.status, 400);
    let page = visitor.login("ANN@example.com", "correct-horse-1").await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(visitor.get("/projects").await.status, 200);
}

#[tokio::test]
async fn posts_without_a_valid_csrf_token_are_refused() {
    let server = Server::start(&[]);
    let (mut owner, _) = verified(&server, "owner@example.com").await;
    let project = project_id(&owner.create_project("guarded").await);

    let superuser = format!("/projects/{project}/superuser");
    let delete = format!("/projects/{project}/delete");
    let add_domain = format!("/projects/{project}/domains");
    let check_domain = format!("/projects/{project}/domains/check");
    let remove_domain = format!("/projects/{project}/domains/remove");
    let page = owner
        .submit(
            &format!("/projects/{project}"),
            &add_domain,
            &[("domain", "kept.example.com")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let posts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (&add_domain, vec![("domain", "sneaky.example.com")]),
        (&check_domain, vec![("domain", "kept.example.com")]),
        (&remove_domain, vec![("domain", "kept.example.com")]),
        ("/projects", vec![("slug", "sneaky")]),
        (
            &superuser,
            vec![("email", "x@example.com"), ("password", "password123")],
        ),
        (&delete, vec![("confirm", "guarded")]),
        ("/verify/resend", vec![]),
        ("/logout", vec![]),
    ];
    let good = owner.get("/projects").await.csrf();
    for (path, form) in &posts {
        // No token at all.
        let page = owner.post(path, form).await;
        assert_eq!(page.status, 403, "{path} without a token");
        // A forged token.
        let mut forged = vec![("csrf", "0".repeat(64))];
        forged.extend(form.iter().map(|(k, v)| (*k, v.to_string())));
        let fields: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = owner.post(path, &fields).await;
        assert_eq!(page.status, 403, "{path} with a forged token");
        // The right token sent from another site.
        let mut fields = vec![("csrf", good.as_str())];
        fields.extend_from_slice(form);
        let request = owner
            .request(Method::POST, path)
            .header(
                "origin",
                format!("http://evil.localhost:{}", server.addr.port()),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&fields));
        let page = owner.send(request).await;
        assert_eq!(page.status, 403, "{path} from another origin");
    }
    // Nothing happened: still signed in, the project exists, no other was created.
    let page = owner.get("/projects").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("guarded") && !page.body.contains("sneaky"));
    let (status, _) = server.get("guarded.localhost", "/api/health").await;
    assert_eq!(status, 200);
    let (_, domains) = operator(&server, Method::GET, "/v1/tenants/guarded/domains").await;
    assert_eq!(domains["totalItems"], 1, "{domains}");
    assert_eq!(domains["items"][0]["domain"], "kept.example.com");

    // Forms shown before signing in: a token without its nonce cookie, or of another nonce,
    // is refused.
    let mut stranger = Visitor::new(&server);
    let csrf = stranger.get("/signup").await.csrf();
    let mut other = Visitor::new(&server);
    let form = [
        ("csrf", csrf.as_str()),
        ("email", "csrf@example.com"),
        ("password", "correct-horse-1"),
    ];
    assert_eq!(other.post("/signup", &form).await.status, 403);
    other.get("/signup").await;
    assert_eq!(other.post("/signup", &form).await.status, 403);
    for path in ["/login", "/reset", "/reset/confirm", "/signup"] {
        assert_eq!(stranger.post(path, &[]).await.status, 403, "{path}");
    }
    let (_, body) = operator(&server, Method::GET, "/v1/accounts").await;
    assert_eq!(body["totalItems"], 1, "{body}");
}

#[tokio::test]
async fn an_account_cannot_see_or_touch_another_accounts_projects() {
    let server = Server::start(&[]);
    let (mut alice, alice_id) = verified(&server, "alice@example.com").await;
    let (mut bob, bob_id) = verified(&server, "bob@example.com").await;
    let bobs = project_id(&bob.create_project("bobs-app").await);
    let alices = project_id(&alice.create_project("alices-app").await);
    let page = bob
        .submit(
            &format!("/projects/{bobs}"),
            &format!("/projects/{bobs}/domains"),
            &[("domain", "bobs.example.com")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (_, listed) = operator(&server, Method::GET, "/v1/tenants/bobs-app/domains").await;
    let bobs_token = listed["items"][0]["verification"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(page.body.contains(&bobs_token));

    // Bob's project is nowhere in Alice's console.
    let list = alice.get("/projects").await;
    assert!(list.body.contains("alices-app"));
    assert!(!list.body.contains("bobs-app") && !list.body.contains(&bobs));

    // Every project route with Bob's id answers as if it did not exist.
    let page = alice.get(&format!("/projects/{bobs}")).await;
    assert_eq!(page.status, 404);
    assert!(!page.body.contains("bobs-app"));
    let page = alice
        .submit(
            "/projects",
            &format!("/projects/{bobs}/superuser"),
            &[
                ("email", "mallory@example.com"),
                ("password", "password123"),
            ],
        )
        .await;
    assert_eq!(page.status, 404);
    let page = alice
        .submit(
            "/projects",
            &format!("/projects/{bobs}/delete"),
            &[("confirm", "bobs-app")],
        )
        .await;
    assert_eq!(page.status, 404);
    // Nor Bob's domains: not through his project, not through hers.
    for route in ["domains", "domains/check", "domains/remove"] {
        for (project, domain) in [
            (&bobs, "bobs.example.com"),
            (&bobs, "alice.example.com"),
            (&alices, "bobs.example.com"),
        ] {
            let page = alice
                .submit(
                    "/projects",
                    &format!("/projects/{project}/{route}"),
                    &[("domain", domain)],
                )
                .await;
            let expected = if route == "domains" && project == &alices {
                409 // the name is claimed, by nobody she can see
            } else {
                404
            };
            assert_eq!(page.status, expected, "{route} {project} {domain}");
            assert!(!page.body.contains(&bobs_token), "{route}");
            assert!(!page.body.contains("bobs-app"), "{route}");
        }
    }
    let page = alice.get(&format!("/projects/{alices}")).await;
    assert!(!page.body.contains("bobs.example.com") && !page.body.contains(&bobs_token));
    let (_, listed) = operator(&server, Method::GET, "/v1/tenants/bobs-app/domains").await;
    assert_eq!(listed["totalItems"], 1, "{listed}");
    assert_eq!(
        listed["items"][0]["verification"]["value"],
        bobs_token.as_str()
    );
    let (_, listed) = operator(&server, Method::GET, "/v1/tenants/alices-app/domains").await;
    assert_eq!(listed["totalItems"], 0, "{listed}");
    // Not even by slug, or a malformed id.
    for id in ["bobs-app", "..%2F..%2Fx", "AAAAAAAAAAAAAAA"] {
        assert_eq!(alice.get(&format!("/projects/{id}")).await.status, 404);
    }

    // Bob's project is untouched: live, and no superuser was planted.
    let (status, _) = server.get("bobs-app.localhost", "/api/health").await;
    assert_eq!(status, 200);
    let login = server
        .request(
            Method::POST,
            "bobs-app.localhost",
            "/api/collections/_superusers/auth-with-password",
        )
        .json(&serde_json::json!({"identity": "mallory@example.com", "password": "password123"}));
    assert_eq!(send(login).await.0, 400);
    assert_eq!(bob.get(&format!("/projects/{bobs}")).await.status, 200);

    // A console session is no operator credential: every /v1 route refuses it.
    let v1: Vec<(Method, String)> = vec![
        (Method::GET, "/v1/tenants".into()),
        (Method::GET, "/v1/tenants/bobs-app".into()),
        (Method::DELETE, "/v1/tenants/bobs-app".into()),
        (Method::GET, "/v1/accounts".into()),
        (Method::GET, format!("/v1/accounts/{bob_id}")),
        (Method::POST, format!("/v1/accounts/{bob_id}/disable")),
        (Method::POST, format!("/v1/accounts/{bob_id}/enable")),
        (Method::POST, format!("/v1/accounts/{alice_id}/verify")),
        (Method::PATCH, format!("/v1/accounts/{alice_id}")),
        (Method::POST, "/v1/tenants".into()),
        (Method::GET, "/v1/tenants/bobs-app/domains".into()),
    ];
    for (method, path) in v1 {
        let page = alice.send(alice.request(method.clone(), &path)).await;
        assert_eq!(page.status, 401, "{method} {path}");
        let body: Value = serde_json::from_str(&page.body).unwrap();
        assert_eq!(body["status"], 401);
    }

    // The same for every operation the operator API documents, with Bob's ids filled in.
    let (status, doc) = send(server.request(Method::GET, "localhost", "/v1/openapi.json")).await;
    assert_eq!(status, 200);
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            if operation.get("security").is_none() {
                continue; // health and the document itself are public
            }
            let uri = path
                .replace("{slug}", "bobs-app")
                .replace("{id}", &bob_id)
                .replace("{name}", "default")
                .replace("{domain}", "bobs.example.com");
            let request = alice
                .request(method.clone(), &uri)
                .header("content-type", "application/json")
                .body(r#"{"plan":"free","status":"suspended","slug":"x","account":"y"}"#);
            let page = alice.send(request).await;
            assert_eq!(page.status, 401, "{method} {uri}");
            tried += 1;
        }
    }
    assert!(tried >= 30, "{tried} operations tried");
    let (_, tenant) = operator(&server, Method::GET, "/v1/tenants/bobs-app").await;
    assert_eq!(
        (tenant["status"].as_str(), tenant["plan"].as_str()),
        (Some("active"), Some("default"))
    );
    let (_, account) = operator(&server, Method::GET, &format!("/v1/accounts/{bob_id}")).await;
    assert_eq!(
        (account["disabled"].as_bool(), account["plan"].as_str()),
        (Some(false), Some("default"))
    );

    // Alice's own project works for her and can be deleted by typing its name.
    let page = alice
        .submit(
            &format!("/projects/{alices}"),
            &format!("/projects/{alices}/superuser"),
            &[
                ("email", "alice-admin@example.com"),
                ("password", "password123"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("alice-admin@example.com"));
    assert!(
        !page.body.contains("password123"),
        "the password is never shown"
    );
    let page = alice
        .submit(
            &format!("/projects/{alices}"),
            &format!("/projects/{alices}/delete"),
            &[("confirm", "alices-ap")],
        )
        .await;
    assert_eq!(page.status, 400);
    let page = alice
        .submit(
            &format!("/projects/{alices}"),
            &format!("/projects/{alices}/delete"),
            &[("confirm", "alices-app")],
        )
        .await;
    assert_eq!(page.status, 303);
    let (status, _) = server.get("alices-app.localhost", "/api/health").await;
    assert_eq!(status, 404);
    // Bob can still not be deleted by Alice's leftover session.
    assert_eq!(bob.get(&format!("/projects/{bobs}")).await.status, 200);
}

#[tokio::test]
async fn signups_are_rate_limited_per_ip_and_per_email() {
    let server = Server::start(&["--signup-limit-ip", "3", "--signup-limit-email", "1"]);
    let mut visitor = Visitor::new(&server);
    assert_eq!(
        visitor
            .signup("one@example.com", "correct-horse-1")
            .await
            .status,
        303
    );
    // The same email again: over its limit before anything else is checked.
    let mut again = Visitor::new(&server);
    let page = again.signup("ONE@example.com", "correct-horse-1").await;
    assert_eq!(page.status, 429);
    let mut other = Visitor::new(&server);
    assert_eq!(
        other
            .signup("two@example.com", "correct-horse-1")
            .await
            .status,
        303
    );
    // Three signups from this IP so far: the fourth is refused, whatever the email.
    let mut fourth = Visitor::new(&server);
    let csrf = fourth.get("/signup").await.csrf();
    let response = fourth
        .request(Method::POST, "/signup")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("csrf", csrf.as_str()),
            ("email", "three@example.com"),
            ("password", "correct-horse-1"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = operator(&server, Method::GET, "/v1/accounts").await;
    assert_eq!(body["totalItems"], 2, "{body}");
}

#[tokio::test]
async fn projects_need_a_verified_email_a_good_name_and_room_in_the_plan() {
    let server = Server::start(&[]);
    let mut visitor = Visitor::new(&server);
    visitor.signup("cap@example.com", "correct-horse-1").await;
    let page = visitor.create_project("early").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("Confirm your email"));
    let (_, tenants) = operator(&server, Method::GET, "/v1/tenants").await;
    assert_eq!(tenants["totalItems"], 0);

    let id = account_id(&server, "cap@example.com").await;
    operator(&server, Method::POST, &format!("/v1/accounts/{id}/verify")).await;
    for (slug, status) in [("Bad Name", 400), ("www", 400), ("ab", 400)] {
        let page = visitor.create_project(slug).await;
        assert_eq!(page.status, status, "{slug}");
    }
    let page = visitor.create_project("first").await;
    let first = project_id(&page);
    let page = visitor.get(page.location.as_deref().unwrap()).await;
    assert!(
        page.body
            .contains(&format!("http://first.localhost:{}", server.addr.port()))
    );
    assert!(page.body.contains("is live at"));
    let (status, _) = server.get("first.localhost", "/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(visitor.create_project("first").await.status, 409);
    project_id(&visitor.create_project("second").await);
    project_id(&visitor.create_project("third").await);
    let page = visitor.create_project("fourth").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("allows 3 projects"));
    // Deleting one makes room again.
    visitor
        .submit(
            &format!("/projects/{first}"),
            &format!("/projects/{first}/delete"),
            &[("confirm", "first")],
        )
        .await;
    project_id(&visitor.create_project("fourth").await);

    // The cap is the default plan's maxProjects, read at each creation.
    let plan = server
        .request(Method::PATCH, "localhost", "/v1/plans/default")
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "maxProjects": 4 }));
    assert_eq!(send(plan).await.0, 200);
    project_id(&visitor.create_project("fifth").await);
    let page = visitor.create_project("sixth").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("allows 4 projects"));
}

#[tokio::test]
async fn the_console_shows_a_projects_usage() {
    let server = Server::start(&["--metering-interval", "100ms"]);
    let (mut visitor, _) = verified(&server, "usage@example.com").await;
    let id = project_id(&visitor.create_project("metered").await);
    for _ in 0..5 {
        assert_eq!(server.get("metered.localhost", "/api/health").await.0, 200);
    }
    let shown = crate::support::eventually(std::time::Duration::from_secs(10), async || {
        let page = visitor.get(&format!("/projects/{id}")).await;
        let list = visitor.get("/projects").await;
        page.body
            .contains(r#"<tr><th>Requests</th><td class="num">5</td></tr>"#)
            && list.body.contains(r#"<td class="num">5</td>"#)
    })
    .await;
    assert!(shown, "the console never showed 5 requests");
}

#[tokio::test]
async fn the_operator_lists_gets_disables_and_enables_accounts() {
    let server = Server::start(&[]);
    for n in 0..3 {
        let mut visitor = Visitor::new(&server);
        visitor
            .signup(&format!("user{n}@example.com"), "correct-horse-1")
            .await;
    }
    let (mut dora, dora_id) = verified(&server, "dora@example.com").await;
    project_id(&dora.create_project("doras").await);

    let (status, page1) = operator(&server, Method::GET, "/v1/accounts?page=1&perPage=3").await;
    assert_eq!(status, 200);
    assert_eq!(page1["totalItems"], 4);
    assert_eq!(page1["totalPages"], 2);
    assert_eq!(page1["items"].as_array().unwrap().len(), 3);
    let (_, page2) = operator(&server, Method::GET, "/v1/accounts?page=2&perPage=3").await;
    let (_, none) = operator(
        &server,
        Method::GET,
        "/v1/accounts?email=nobody%40example.com",
    )
    .await;
    assert_eq!(
        (
            none["totalItems"].as_u64(),
            none["items"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    assert_eq!(page2["items"][0]["email"], "dora@example.com");
    assert!(page2["items"][0].get("password").is_none());
    for bad in ["?perPage=0", "?page=0", "?perPage=abc", "?perPage=100000"] {
        let (status, body) = operator(&server, Method::GET, &format!("/v1/accounts{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["status"], 400);
    }

    let (status, body) = operator(&server, Method::GET, &format!("/v1/accounts/{dora_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["verified"], true);
    assert_eq!(body["projects"][0]["slug"], "doras");
    let (status, body) = operator(&server, Method::GET, "/v1/accounts/nosuchaccount00").await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], 404);
    let (status, _) = operator(
        &server,
        Method::POST,
        "/v1/accounts/nosuchaccount00/disable",
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = send(server.request(Method::GET, "localhost", "/v1/accounts")).await;
    assert_eq!((status, body["status"].as_u64()), (401, Some(401)));

    // Disabling signs Dora out at once and keeps her out.
    let (status, body) = operator(
        &server,
        Method::POST,
        &format!("/v1/accounts/{dora_id}/disable"),
    )
    .await;
    assert_eq!((status, body["disabled"].as_bool()), (200, Some(true)));
    let page = dora.get("/projects").await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/login"))
    );
    let page = dora.login("dora@example.com", "correct-horse-1").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("disabled"));

    let output = server.cli(&["account", "list"]);
    assert!(output.status.success(), "{output:?}");
    let listed = String::from_utf8_lossy(&output.stdout);
    let line = listed
        .lines()
        .find(|l| l.contains("dora@example.com"))
        .unwrap();
    assert!(line.starts_with(&dora_id) && line.contains("disabled") && line.ends_with("\t1"));
    assert!(line.ends_with("\tdefault\t1"), "{line}");
    assert_eq!(listed.lines().count(), 4);

    let (status, body) = operator(
        &server,
        Method::POST,
        &format!("/v1/accounts/{dora_id}/enable"),
    )
    .await;
    assert_eq!((status, body["disabled"].as_bool()), (200, Some(false)));
    assert_eq!(
        dora.login("dora@example.com", "correct-horse-1")
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn password_reset_requests_do_not_tell_who_has_an_account() {
    let server = Server::start(&[]);
    let mut visitor = Visitor::new(&server);
    visitor.signup("known@example.com", "correct-horse-1").await;
    let mut stranger = Visitor::new(&server);
    let known = stranger
        .submit("/reset", "/reset", &[("email", "known@example.com")])
        .await;
    let unknown = stranger
        .submit("/reset", "/reset", &[("email", "unknown@example.com")])
        .await;
    assert_eq!((known.status, unknown.status), (200, 200));
    assert_eq!(known.body, unknown.body);
    // A made-up link is refused.
    let page = stranger.get("/reset/confirm?token=madeup").await;
    assert_eq!(page.status, 400);
    let page = stranger
        .submit(
            "/reset",
            "/reset/confirm",
            &[("token", "madeup"), ("password", "new-password-1")],
        )
        .await;
    assert_eq!(page.status, 400);
    let page = stranger.get("/verify?token=madeup").await;
    assert_eq!(page.status, 400);
}

#[tokio::test]
async fn login_attempts_are_limited_per_ip() {
    let server = Server::start(&[]);
    let mut visitor = Visitor::new(&server);
    let csrf = visitor.get("/login").await.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("email", "guess@example.com"),
        ("password", "guess-password"),
    ];
    for attempt in 0..30 {
        assert_eq!(
            visitor.post("/login", &form).await.status,
            400,
            "attempt {attempt}"
        );
    }
    let response = visitor
        .request(Method::POST, "/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&form))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "900");
}

#[tokio::test]
async fn an_accounts_plan_caps_its_projects_in_the_console_and_the_api() {
    let server = Server::start(&[]);
    let (mut ann, ann_id) = verified(&server, "ann@example.com").await;
    let path = format!("/v1/accounts/{ann_id}");

    // A new account is on the default plan, whose cap (3) the account view shows.
    let (status, body) = operator(&server, Method::GET, &path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["plan"].as_str(), body["maxProjects"].as_u64()),
        (Some("default"), Some(3))
    );
    assert!(
        ann.get("/projects")
            .await
            .body
            .contains("Plan: <strong>default</strong>")
    );

    // The operator puts Ann on a one-project plan.
    let solo = server
        .request(Method::POST, "localhost", "/v1/plans")
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "name": "solo", "maxProjects": 1 }));
    assert_eq!(send(solo).await.0, 201);
    let change = |plan: &str| {
        server
            .request(Method::PATCH, "localhost", &path)
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "plan": plan }))
    };
    let (status, body) = send(change("solo")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["plan"].as_str(), body["maxProjects"].as_u64()),
        (Some("solo"), Some(1))
    );
    for (plan, expected) in [("nosuch", 400u16), ("Bad Plan", 400)] {
        let (status, body) = send(change(plan)).await;
        assert_eq!(
            (status, body["status"].as_u64()),
            (expected, Some(u64::from(expected))),
            "{plan}"
        );
    }
    let (status, body) = send(
        server
            .request(Method::PATCH, "localhost", "/v1/accounts/nosuchaccount00")
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "plan": "solo" })),
    )
    .await;
    assert_eq!((status, body["status"].as_u64()), (404, Some(404)));
    let (status, _) = send(
        server
            .request(Method::PATCH, "localhost", &path)
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "plan": "solo", "disabled": true })),
    )
    .await;
    assert_eq!(status, 400, "unknown fields are refused");

    // The console enforces the account's cap; the project starts on the account's plan.
    let page = ann.get("/projects").await;
    assert!(
        page.body.contains("0 of 1 projects used")
            && page.body.contains("Plan: <strong>solo</strong>")
    );
    project_id(&ann.create_project("anns-one").await);
    let page = ann.create_project("anns-two").await;
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("Your plan allows 1 project."),
        "{}",
        page.body
    );
    let (_, tenant) = operator(&server, Method::GET, "/v1/tenants/anns-one").await;
    assert_eq!(tenant["plan"], "solo");

    // So does the operator API when it creates a tenant for the account.
    let create = |slug: &str, account: &str| {
        server
            .request(Method::POST, "localhost", "/v1/tenants")
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "slug": slug, "account": account }))
    };
    let (status, body) = send(create("anns-api", &ann_id)).await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (403, Some(403)),
        "{body}"
    );
    let (status, body) = send(create("nobodys", "nosuchaccount00")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["account"].is_object(), "{body}");
    let (_, tenants) = operator(&server, Method::GET, "/v1/tenants").await;
    assert_eq!(tenants["totalItems"], 1, "{tenants}");

    // Back on the default plan: the cap rises, her project moves along, and the API creates
    // a project she owns, live at once.
    let (status, _) = send(change("default")).await;
    assert_eq!(status, 200);
    let (status, body) = send(create("anns-api", &ann_id)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["plan"], "default");
    assert_eq!(server.get("anns-api.localhost", "/api/health").await.0, 200);
    let (_, tenant) = operator(&server, Method::GET, "/v1/tenants/anns-one").await;
    assert_eq!(tenant["plan"], "default");
    assert!(ann.get("/projects").await.body.contains("anns-api"));
    let (_, body) = operator(&server, Method::GET, &path).await;
    assert_eq!(body["projects"].as_array().map(Vec::len), Some(2), "{body}");

    // A plan change of the account reaches its projects' quotas live: one request a second.
    let slow = server
        .request(Method::POST, "localhost", "/v1/plans")
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "name": "slow", "requestsPerSecond": 1, "requestBurst": 1 }));
    assert_eq!(send(slow).await.0, 201);
    assert_eq!(send(change("slow")).await.0, 200);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(server.get("anns-one.localhost", "/api/health").await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");

    // The CLI sets the plan too; a running server applies it.
    let output = server.cli(&["account", "plan", &ann_id, "default"]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("plan default"));
    let lifted = crate::support::eventually(std::time::Duration::from_secs(10), async || {
        let mut ok = true;
        for _ in 0..3 {
            ok &= server.get("anns-one.localhost", "/api/health").await.0 == 200;
        }
        ok
    })
    .await;
    assert!(lifted, "the CLI's plan change never lifted the rate limit");
    let output = server.cli(&["account", "plan", &ann_id, "nosuch"]);
    assert!(!output.status.success());
    let output = server.cli(&["account", "plan", "nosuchaccount00", "default"]);
    assert!(!output.status.success());
}

#[tokio::test]
async fn the_console_shows_a_projects_backups_to_its_owner_only() {
    let backups = tempfile::tempdir().unwrap();
    let url = format!("--backup-url=file://{}", backups.path().display());
    // Snapshots only when asked: with WAL shipping on, the project's first opening would take
    // one of its own and race the operator's backup on the page.
    let server = Server::start(&[url.as_str(), "--backup-every=0", "--backup-wal-every=0"]);
    let (mut visitor, _) = verified(&server, "backups@example.com").await;
    let id = project_id(&visitor.create_project("saved").await);
    let page = visitor.get(&format!("/projects/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(r#"<td id="backup-success">never</td>"#),
        "{}",
        page.body
    );
    let (status, made) = operator(&server, Method::POST, "/v1/tenants/saved/backups").await;
    assert_eq!(status, 201, "{made}");
    let (_, state) = operator(&server, Method::GET, "/v1/tenants/saved/backups/status").await;
    let success = state["lastSuccess"].as_str().unwrap().to_string();
    let page = visitor.get(&format!("/projects/{id}")).await;
    assert!(
        page.body
            .contains(&format!(r#"<td id="backup-success">{success}</td>"#)),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<span class="badge active">ok</span>"#)
    );
    // The operator's target never shows on the page.
    assert!(!page.body.contains(&backups.path().display().to_string()));
    // Another account sees nothing of it.
    let (mut other, _) = verified(&server, "other@example.com").await;
    let page = other.get(&format!("/projects/{id}")).await;
    assert_eq!(page.status, 404);
    assert!(!page.body.contains("backup-success"));
}

#[tokio::test]
async fn the_console_says_when_backups_are_not_configured() {
    let server = Server::start(&[]);
    let (mut visitor, _) = verified(&server, "nobackup@example.com").await;
    let id = project_id(&visitor.create_project("plain").await);
    let page = visitor.get(&format!("/projects/{id}")).await;
    assert!(
        page.body
            .contains("Backups are not configured on this server."),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn custom_domains_are_added_checked_and_removed_on_the_project_page() {
    // A resolver port with nothing behind it: a check fails at once and says why.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver = closed.local_addr().unwrap().to_string();
    drop(closed);
    let server = Server::start(&["--dns-resolver", &resolver]);
    let (mut dev, _) = verified(&server, "domains@example.com").await;
    let id = project_id(&dev.create_project("domained").await);
    let here = format!("/projects/{id}");
    let (add, check, remove) = (
        format!("/projects/{id}/domains"),
        format!("/projects/{id}/domains/check"),
        format!("/projects/{id}/domains/remove"),
    );
    assert!(dev.get(&here).await.body.contains("No custom domains yet."));

    // Adding shows the TXT record to create, with the token the operator API knows.
    let page = dev
        .submit(&here, &add, &[("domain", " App.Example.COM ")])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Added app.example.com"), "{}", page.body);
    let (_, listed) = operator(&server, Method::GET, "/v1/tenants/domained/domains").await;
    let token = listed["items"][0]["verification"]["value"]
        .as_str()
        .unwrap();
    assert!(
        page.body
            .contains(r#"<code class="txt-name">_warren.app.example.com</code>"#)
    );
    assert!(
        page.body
            .contains(&format!(r#"<code class="txt-value">{token}</code>"#))
    );
    assert!(
        page.body
            .contains(r#"<span class="badge pending">pending</span>"#)
    );
    assert!(page.body.contains("After verification"));
    let long = format!("{}.com", "a".repeat(300));
    for (domain, status, says) in [
        ("not a domain", 400, "DNS name"),
        ("x.localhost", 400, "platform"),
        ("app.example.com", 409, "already claimed"),
        ("", 400, "Enter a domain"),
        (long.as_str(), 400, "Enter a domain"),
    ] {
        let page = dev.submit(&here, &add, &[("domain", domain)]).await;
        assert_eq!(page.status, status, "{domain}");
        assert!(page.body.contains(says), "{domain}: {}", page.body);
    }

    // A check without the TXT record keeps it pending, says why, and it does not route.
    let page = dev
        .submit(&here, &check, &[("domain", "app.example.com")])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("app.example.com is not verified yet"));
    assert!(page.body.contains(r#"<span class="domain-error">"#));
    assert!(
        page.body
            .contains(r#"<span class="badge pending">pending</span>"#)
    );
    assert_eq!(
        send_raw(&server, "app.example.com", "/api/health").await.0,
        404
    );
    let page = dev
        .submit(&here, &check, &[("domain", "other.example.com")])
        .await;
    assert_eq!(page.status, 404);

    // The certificate state as the edge records it.
    let db = warren_control_plane::open_control_db(server.data_dir())
        .await
        .unwrap();
    warren_control_plane::certificates::record(
        &db,
        warren_control_plane::certificates::CertificateRecord {
            host: "app.example.com".into(),
            issuer: "Test CA".into(),
            not_after: 1_800_000_000,
            orders: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let page = dev.get(&here).await;
    assert!(
        page.body
            .contains("Issued by Test CA, valid until 2027-01-15"),
        "{}",
        page.body
    );

    // Removing it.
    let page = dev
        .submit(&here, &remove, &[("domain", "APP.example.com")])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Removed app.example.com"));
    assert!(page.body.contains("No custom domains yet."));
    let (_, listed) = operator(&server, Method::GET, "/v1/tenants/domained/domains").await;
    assert_eq!(listed["totalItems"], 0, "{listed}");
    let page = dev
        .submit(&here, &remove, &[("domain", "app.example.com")])
        .await;
    assert_eq!(page.status, 404);
}

#[tokio::test]
async fn new_accounts_start_on_the_signup_plan() {
    let server = Server::start(&["--signup-plan", "free"]);
    let (mut fay, fay_id) = verified(&server, "fay@example.com").await;
    let (_, body) = operator(&server, Method::GET, &format!("/v1/accounts/{fay_id}")).await;
    assert_eq!(
        (body["plan"].as_str(), body["maxProjects"].as_u64()),
        (Some("free"), Some(1))
    );
    let page = fay.get("/projects").await;
    assert!(
        page.body.contains("0 of 1 projects used")
            && page.body.contains("Plan: <strong>free</strong>")
    );
    project_id(&fay.create_project("fays").await);
    let (_, tenant) = operator(&server, Method::GET, "/v1/tenants/fays").await;
    assert_eq!(tenant["plan"], "free");
    assert_eq!(fay.create_project("fays-two").await.status, 403);
    drop(fay);

    // A plan that does not exist leaves new accounts on the default plan.
    let server = Server::start(&["--signup-plan", "nosuch"]);
    let (_, gil_id) = verified(&server, "gil@example.com").await;
    let (_, body) = operator(&server, Method::GET, &format!("/v1/accounts/{gil_id}")).await;
    assert_eq!(body["plan"], "default", "{body}");
}

#[tokio::test]
async fn a_projects_import_and_export_belong_to_its_owner_only() {
    let server = Server::start(&[]);
    let (mut owner, _) = verified(&server, "owner@example.com").await;
    let id = project_id(&owner.create_project("mine").await);
    let (mut other, _) = verified(&server, "other@example.com").await;
    let page = format!("/projects/{id}");

    // The owner downloads the export with the form's token; without it the post is refused.
    let refused = owner
        .post(&format!("{page}/export"), &[("csrf", "nope")])
        .await;
    assert_eq!(refused.status, 403);
    let csrf = owner.get(&page).await.csrf();
    let request = owner
        .request(Method::POST, &format!("{page}/export"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", csrf.as_str())]));
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let zip = response.bytes().await.unwrap().to_vec();
    assert_eq!(&zip[..2], b"PK");

    // An upload whose first part is not a valid token is refused before the file is read.
    let (content_type, body) =
        crate::files::multipart(&[("csrf", "nope")], &[("file", "x.zip", &zip)]);
    let upload = owner
        .request(Method::POST, &format!("{page}/import"))
        .header("content-type", content_type)
        .body(body);
    assert_eq!(owner.send(upload).await.status, 403);

    // Another account finds neither the pages nor the forms of the project.
    assert_eq!(other.get(&format!("{page}/import")).await.status, 404);
    let theirs = other.get("/projects").await.csrf();
    let export = other
        .post(&format!("{page}/export"), &[("csrf", &theirs)])
        .await;
    assert_eq!(export.status, 404);
    let (content_type, body) =
        crate::files::multipart(&[("csrf", &theirs)], &[("file", "x.zip", &zip)]);
    let upload = other
        .request(Method::POST, &format!("{page}/import"))
        .header("content-type", content_type)
        .body(body);
    assert_eq!(other.send(upload).await.status, 404);

    // The owner's own upload of the export goes through to the progress page.
    let (content_type, body) =
        crate::files::multipart(&[("csrf", &csrf)], &[("file", "x.zip", &zip)]);
    let upload = owner
        .request(Method::POST, &format!("{page}/import"))
        .header("content-type", content_type)
        .body(body);
    let started = owner.send(upload).await;
    assert_eq!(started.status, 303, "{}", started.body);
    assert_eq!(
        started.location.as_deref(),
        Some(format!("{page}/import").as_str())
    );
    let status = owner.get(&format!("{page}/import")).await;
    assert_eq!(status.status, 200);
    assert!(
        status.body.contains(r#"id="import-status""#),
        "{}",
        status.body
    );
}

#[tokio::test]
async fn secrets_are_set_listed_by_name_and_removed_on_the_project_page() {
    let server = Server::start(&[]);
    let (mut dev, _) = verified(&server, "secrets@example.com").await;
    let id = project_id(&dev.create_project("secretive").await);
    let here = format!("/projects/{id}");
    let (set, remove) = (
        format!("/projects/{id}/secrets"),
        format!("/projects/{id}/secrets/remove"),
    );
    assert!(dev.get(&here).await.body.contains("No secrets set."));

    // Set: the name is listed, the value never appears, and the operator sees the same store.
    let value = "sk_live_do-not-echo-me";
    let page = dev
        .submit(&here, &set, &[("name", "STRIPE_KEY"), ("value", value)])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Set STRIPE_KEY."), "{}", page.body);
    assert!(page.body.contains("<code>STRIPE_KEY</code>"));
    assert!(!page.body.contains(value));
    assert!(!dev.get(&here).await.body.contains(value));
    let (status, names) = operator(&server, Method::GET, "/v1/tenants/secretive/secrets").await;
    assert_eq!(
        (status, names),
        (200, serde_json::json!({"names": ["STRIPE_KEY"]}))
    );

    // Bad names and values are refused with the reason; nothing is stored.
    let big = "x".repeat(9 << 10);
    for (name, value, says) in [
        ("1BAD", "v", "not starting with a digit"),
        ("", "v", "not starting with a digit"),
        ("A-B", "v", "not starting with a digit"),
        ("BIG", big.as_str(), "at most"),
    ] {
        let page = dev
            .submit(&here, &set, &[("name", name), ("value", value)])
            .await;
        assert_eq!(page.status, 400, "{name}: {}", page.body);
        assert!(page.body.contains(says), "{name}: {}", page.body);
    }
    let (_, names) = operator(&server, Method::GET, "/v1/tenants/secretive/secrets").await;
    assert_eq!(names, serde_json::json!({"names": ["STRIPE_KEY"]}));

    // Another account can neither set nor remove this project's secrets.
    let (mut stranger, _) = verified(&server, "stranger-secrets@example.com").await;
    let csrf = stranger.get("/projects").await.csrf();
    for (path, fields) in [
        (
            &set,
            vec![("csrf", csrf.as_str()), ("name", "X"), ("value", "y")],
        ),
        (
            &remove,
            vec![("csrf", csrf.as_str()), ("name", "STRIPE_KEY")],
        ),
    ] {
        let page = stranger.post(path, &fields).await;
        assert_eq!(page.status, 404, "{}", page.body);
    }
    // A post without the session's CSRF token is refused.
    let page = dev
        .post(&set, &[("csrf", "forged"), ("name", "X"), ("value", "y")])
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    let (_, names) = operator(&server, Method::GET, "/v1/tenants/secretive/secrets").await;
    assert_eq!(names, serde_json::json!({"names": ["STRIPE_KEY"]}));

    // Remove: gone from the page and the store; removing again says so.
    let page = dev.submit(&here, &remove, &[("name", "STRIPE_KEY")]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Removed STRIPE_KEY."));
    assert!(page.body.contains("No secrets set."));
    let (_, names) = operator(&server, Method::GET, "/v1/tenants/secretive/secrets").await;
    assert_eq!(names, serde_json::json!({"names": []}));
    let page = dev.submit(&here, &remove, &[("name", "STRIPE_KEY")]).await;
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(page.body.contains("no such secret"));
}
