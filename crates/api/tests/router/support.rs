//! A tenant in a temporary directory and its API router, answering requests in-process.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use warren_api::ApiState;
use warren_secrets::Passwords;
use warren_tenant::{Registry, RegistryConfig, Tenant};

pub const EMAIL: &str = "root@example.com";
pub const PASSWORD: &str = "root-password-1";

/// One tenant with a superuser, and the router that serves it.
pub struct Api {
    /// The tenant's directory; removed when the test ends.
    _dir: tempfile::TempDir,
    /// Keeps the tenant open for the test's length.
    _registry: Registry,
    /// The tenant every request is for.
    pub tenant: Tenant,
    /// The tenant API router.
    router: Router,
    /// A superuser's token (`root@example.com`).
    pub root: String,
}

impl Api {
    /// A fresh tenant `test` with superuser [`EMAIL`], signed in.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        warren_tenant::provision(dir.path(), "test").await.unwrap();
        let registry = Registry::new(RegistryConfig {
            root: dir.path().to_path_buf(),
            max_open: 4,
            idle_timeout: Duration::from_secs(600),
        });
        let tenant = registry.get("test").await.unwrap();
        let passwords = Passwords::default();
        warren_tenant::superusers::upsert(tenant.db(), &passwords, EMAIL, PASSWORD)
            .await
            .unwrap();
        let mut api = Self {
            _dir: dir,
            _registry: registry,
            tenant,
            router: warren_api::router(ApiState::new(passwords, None)),
            root: String::new(),
        };
        api.root = api.login("_superusers", EMAIL, PASSWORD).await;
        api
    }

    /// Sends `method path` with an optional token and JSON body; status and JSON answer
    /// (Null when the body is empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if !token.is_empty() {
            request = request.header(header::AUTHORIZATION, token);
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    /// Sends a raw request for this tenant (from a loopback peer); status and JSON answer.
    pub async fn send(&self, mut request: Request<Body>) -> (u16, Value) {
        request.extensions_mut().insert(self.tenant.clone());
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, body)
    }

    /// `GET path` as `token`.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, token, None).await
    }

    /// `POST path` with `body` as `token`.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// `PATCH path` with `body` as `token`.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    /// `DELETE path` as `token`.
    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Signs `identity` in to auth collection `collection`; its token.
    pub async fn login(&self, collection: &str, identity: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                &format!("/api/collections/{collection}/auth-with-password"),
                "",
                json!({ "identity": identity, "password": password }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Creates a collection as the superuser; its JSON.
    pub async fn create_collection(&self, body: Value) -> Value {
        let (status, body) = self.post("/api/collections", &self.root, body).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Creates a record in `collection` as `token`; its JSON.
    pub async fn create_record(&self, collection: &str, token: &str, body: Value) -> Value {
        let (status, body) = self
            .post(
                &format!("/api/collections/{collection}/records"),
                token,
                body,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Collection `posts` (title, views, published, author; anyone lists and views published
    /// posts, signed-in users create, authors alone change and delete). Every tenant has
    /// auth collection `users` from the start.
    pub async fn blog(&self) {
        self.create_collection(json!({
            "name": "posts",
            "listRule": "published = true || author = @request.auth.id",
            "viewRule": "published = true || author = @request.auth.id",
            "createRule": "@request.auth.id != ''",
            "updateRule": "author = @request.auth.id",
            "deleteRule": "author = @request.auth.id",
            "fields": [
                {"name": "title", "type": "text", "required": true, "max": 50},
                {"name": "views", "type": "number", "onlyInt": true},
                {"name": "published", "type": "bool"},
                {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
            ],
        }))
        .await;
    }

    /// Creates user `email` (password [`PASSWORD`]) in `users` and signs it in: id and token.
    pub async fn user(&self, email: &str) -> (String, String) {
        let user = self
            .create_record(
                "users",
                "",
                json!({ "email": email, "password": PASSWORD, "passwordConfirm": PASSWORD }),
            )
            .await;
        let token = self.login("users", email, PASSWORD).await;
        (user["id"].as_str().unwrap().to_string(), token)
    }
}

/// The `name`s of a list answer's items.
pub fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect()
}

/// The `field` of each of a list answer's items.
pub fn column<'a>(list: &'a Value, field: &str) -> Vec<&'a Value> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| &item[field])
        .collect()
}
