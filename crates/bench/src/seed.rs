//! The `seed` scenario: the same collections, users and records on every target, with ids
//! derived from their index so every later scenario can address them without a lookup.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::load::{self, Bounds, OpError, Stats};
use crate::target::{Target, drain, json_ok, send_ok, token_of};

/// Password of every seeded user.
pub const USER_PASSWORD: &str = "benchpassword123";
/// How many users hold a pre-fetched token for the scenarios.
const TOKEN_USERS: usize = 64;
/// Records per `POST /api/batch` request.
const RECORDS_PER_BATCH: usize = 500;

/// Id of the `i`-th seeded user (15 chars of `[a-z0-9]`, PocketBase's default id shape).
pub fn user_id(i: usize) -> String {
    format!("u{i:014}")
}

/// Email of the `i`-th seeded user.
pub fn user_email(i: usize) -> String {
    format!("user{i}@bench.test")
}

/// Id of the `i`-th seeded post.
pub fn post_id(i: usize) -> String {
    format!("p{i:014}")
}

/// The body of the `i`-th seeded post; post `i` belongs to user `i % users`, even posts are public.
pub fn post_body(i: usize, users: usize) -> Value {
    let day = 1 + i % 28;
    json!({
        "id": post_id(i),
        "owner": user_id(i % users),
        "title": format!("Post number {i}"),
        "body": format!("Body of post {i}. Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua."),
        "number": i % 1000,
        "public": i.is_multiple_of(2),
        "published": format!("2025-01-{day:02} 12:00:00.000Z"),
    })
}

/// What the seed left on a target, shared by every scenario.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Seeded users.
    pub users: usize,
    /// Seeded posts.
    pub records: usize,
    /// Tokens of users `0..tokens.len()`.
    pub tokens: Arc<Vec<String>>,
    /// Posts seeded into the unindexed `plain` collection (0 when not seeded).
    pub plain: usize,
}

impl Dataset {
    /// The token a worker uses, and the index of its user.
    pub fn worker_user(&self, worker: usize) -> (usize, &str) {
        let u = worker % self.tokens.len();
        (u, &self.tokens[u])
    }
}

/// Seeds `target` (or reuses an earlier seed of the same size) and returns the dataset with the
/// records-insert statistics. Errors mean the target cannot be seeded (reported as unsupported).
pub async fn seed(
    target: &Target,
    users: usize,
    records: usize,
    concurrency: usize,
) -> Result<(Dataset, Stats), OpError> {
    let users = users.max(1);
    let su = target
        .superuser_token()
        .await
        .map_err(|e| tagged("superuser auth", e))?;
    let existing = count(target, &su, "posts").await.unwrap_or(0);
    let mut stats = Stats::new("rec/s");
    if existing < records {
        let users_collection = ensure_users_collection(target, &su).await?;
        create_collections(target, &su, &users_collection).await?;
        seed_users(target, &su, users, concurrency).await?;
        let batch = enable_batch(target, &su).await;
        stats = seed_posts(target, "posts", &su, users, records, concurrency, batch).await;
        if stats.errors > 0 {
            return Err(OpError::other(format!(
                "seeding posts: {} of {} inserts failed, first: {}",
                stats.errors,
                stats.errors + stats.ok,
                stats.first_error.clone().unwrap_or_default()
            )));
        }
    }
    let mut tokens = Vec::new();
    for u in 0..users.min(TOKEN_USERS) {
        let resp = target
            .client
            .post(target.url("/api/collections/users/auth-with-password"))
            .json(&json!({ "identity": user_email(u), "password": USER_PASSWORD }))
            .send()
            .await?;
        let json = json_ok(resp).await.map_err(|e| tagged("user auth", e))?;
        tokens.push(token_of(&json)?);
    }
    let dataset = Dataset {
        users,
        records,
        tokens: Arc::new(tokens),
        plain: 0,
    };
    Ok((dataset, stats))
}

fn tagged(step: &str, err: OpError) -> OpError {
    OpError {
        status: err.status,
        message: format!("{step}: {}", err.message),
    }
}

pub(crate) async fn count(target: &Target, su: &str, collection: &str) -> Result<usize, OpError> {
    let resp = target
        .client
        .get(target.url(&format!("/api/collections/{collection}/records")))
        .query(&[("perPage", "1")])
        .header("Authorization", su)
        .send()
        .await?;
    let json = json_ok(resp).await?;
    Ok(json.get("totalItems").and_then(Value::as_u64).unwrap_or(0) as usize)
}

/// Returns the id of the `users` auth collection, creating it when the target has none.
pub(crate) async fn ensure_users_collection(target: &Target, su: &str) -> Result<String, OpError> {
    let resp = target
        .client
        .get(target.url("/api/collections/users"))
        .header("Authorization", su)
        .send()
        .await?;
    // Any signed-in user may see other users, so `expand=owner` resolves for every post.
    let rules = json!({
        "listRule": "@request.auth.id != ''",
        "viewRule": "@request.auth.id != ''",
    });
    let json = if resp.status().as_u16() == 404 {
        let body = json!({
            "name": "users",
            "type": "auth",
            "listRule": rules["listRule"],
            "viewRule": rules["viewRule"],
            "createRule": "",
            "updateRule": "id = @request.auth.id",
            "deleteRule": "id = @request.auth.id",
            "fields": [{ "name": "name", "type": "text" }],
        });
        let resp = target
            .client
            .post(target.url("/api/collections"))
            .header("Authorization", su)
            .json(&body)
            .send()
            .await?;
        json_ok(resp)
            .await
            .map_err(|e| tagged("creating users collection", e))?
    } else {
        drain(resp)
            .await
            .map_err(|e| tagged("reading users collection", e))?;
        let resp = target
            .client
            .patch(target.url("/api/collections/users"))
            .header("Authorization", su)
            .json(&rules)
            .send()
            .await?;
        json_ok(resp)
            .await
            .map_err(|e| tagged("setting users rules", e))?
    };
    json.get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| OpError::other("users collection has no id"))
}

pub(crate) async fn create_collection(
    target: &Target,
    su: &str,
    body: Value,
) -> Result<(), OpError> {
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let exists = target
        .client
        .get(target.url(&format!("/api/collections/{name}")))
        .header("Authorization", su)
        .send()
        .await?;
    if exists.status().is_success() {
        return Ok(());
    }
    let resp = target
        .client
        .post(target.url("/api/collections"))
        .header("Authorization", su)
        .json(&body)
        .send()
        .await?;
    drain(resp)
        .await
        .map_err(|e| tagged(&format!("creating collection {name}"), e))
}

/// The body that creates a posts-shaped collection `name` — owner relation to `users`, the
/// per-user list/view rule, owner-only writes — with `indexes`.
pub(crate) fn posts_collection(name: &str, users_id: &str, indexes: &[String]) -> Value {
    let visible = "@request.auth.id != '' && (public = true || owner = @request.auth.id)";
    json!({
        "name": name,
        "type": "base",
        "listRule": visible,
        "viewRule": visible,
        "createRule": "@request.auth.id != '' && owner = @request.auth.id",
        "updateRule": "owner = @request.auth.id",
        "deleteRule": "owner = @request.auth.id",
        "fields": [
            { "name": "owner", "type": "relation", "collectionId": users_id, "maxSelect": 1, "required": true },
            { "name": "title", "type": "text", "required": true, "max": 200 },
            { "name": "body", "type": "text" },
            { "name": "number", "type": "number" },
            { "name": "public", "type": "bool" },
            { "name": "published", "type": "date" },
            { "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false },
            { "name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true },
        ],
        "indexes": indexes,
    })
}

async fn create_collections(target: &Target, su: &str, users_id: &str) -> Result<(), OpError> {
    let indexes = [
        "CREATE INDEX idx_posts_owner ON posts (owner)",
        "CREATE INDEX idx_posts_public_number ON posts (public, number)",
        "CREATE INDEX idx_posts_created ON posts (created)",
    ]
    .map(String::from);
    let posts = posts_collection("posts", users_id, &indexes);
    create_collection(target, su, posts).await?;
    let docs = json!({
        "name": "docs",
        "type": "base",
        "listRule": "",
        "viewRule": "",
        "createRule": "@request.auth.id != ''",
        "updateRule": null,
        "deleteRule": null,
        "fields": [
            { "name": "title", "type": "text" },
            { "name": "file", "type": "file", "maxSelect": 1, "maxSize": 5_242_880, "thumbs": ["100x100"] },
            { "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false },
        ],
    });
    create_collection(target, su, docs).await
}

/// Creates the users with parallel single creates: each one hashes a password, which is the
/// expensive part and parallelises across cores (a batch would serialise it in one transaction).
async fn seed_users(
    target: &Target,
    su: &str,
    users: usize,
    concurrency: usize,
) -> Result<(), OpError> {
    let existing = count(target, su, "users").await.unwrap_or(0);
    if existing >= users {
        return Ok(());
    }
    let target2 = target.clone();
    let su = su.to_string();
    let bounds = Bounds {
        concurrency: concurrency.max(4),
        duration: Duration::from_secs(3600),
        max_ops: users as u64,
    };
    let stats = load::run(bounds, "users/s", move |_, seq| {
        let target = target2.clone();
        let su = su.clone();
        async move {
            let i = seq as usize;
            let body = json!({
                "id": user_id(i),
                "email": user_email(i),
                "emailVisibility": true,
                "password": USER_PASSWORD,
                "passwordConfirm": USER_PASSWORD,
                "name": format!("User {i}"),
            });
            let req = target
                .client
                .post(target.url("/api/collections/users/records"))
                .query(&[("fields", "id")])
                .header("Authorization", su.as_str())
                .json(&body);
            match send_ok(req).await {
                Ok(resp) => {
                    resp.bytes().await?;
                    Ok(())
                }
                // A re-run over a partly seeded target: the user already exists.
                Err(err) if err.status == Some(400) && err.message.contains("not_unique") => Ok(()),
                Err(err) => Err(err),
            }
        }
    })
    .await;
    if stats.errors > 0 {
        return Err(OpError::other(format!(
            "seeding users: {} failed, first: {}",
            stats.errors,
            stats.first_error.unwrap_or_default()
        )));
    }
    Ok(())
}

/// Turns on the batch API (PocketBase ships it disabled). Returns whether batching is usable.
pub(crate) async fn enable_batch(target: &Target, su: &str) -> bool {
    let body = json!({ "batch": { "enabled": true, "maxRequests": 1000, "timeout": 60, "maxBodySize": 0 } });
    let req = target
        .client
        .patch(target.url("/api/settings"))
        .header("Authorization", su)
        .json(&body);
    match send_ok(req).await {
        Ok(resp) => resp.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// Inserts posts `0..records` into `collection` (`posts` or `plain`).
pub(crate) async fn seed_posts(
    target: &Target,
    collection: &'static str,
    su: &str,
    users: usize,
    records: usize,
    concurrency: usize,
    batch: bool,
) -> Stats {
    let target = target.clone();
    let su: Arc<str> = su.into();
    if batch {
        let batches = records.div_ceil(RECORDS_PER_BATCH) as u64;
        let bounds = Bounds {
            concurrency: concurrency.clamp(1, 2),
            duration: Duration::from_secs(3600),
            max_ops: batches,
        };
        let mut stats = load::run(bounds, "rec/s", move |_, seq| {
            let target = target.clone();
            let su = Arc::clone(&su);
            async move {
                let start = seq as usize * RECORDS_PER_BATCH;
                let end = (start + RECORDS_PER_BATCH).min(records);
                let requests: Vec<Value> = (start..end)
                    .map(|i| {
                        json!({
                            "method": "PUT",
                            "url": format!("/api/collections/{collection}/records?fields=id"),
                            "body": post_body(i, users),
                        })
                    })
                    .collect();
                let req = target
                    .client
                    .post(target.url("/api/batch"))
                    .header("Authorization", &*su)
                    .json(&json!({ "requests": requests }));
                let resp = send_ok(req).await?;
                resp.bytes().await?;
                Ok(())
            }
        })
        .await;
        stats.items_per_op = RECORDS_PER_BATCH as f64;
        stats
    } else {
        let bounds = Bounds {
            concurrency: concurrency.max(8),
            duration: Duration::from_secs(3600),
            max_ops: records as u64,
        };
        load::run(bounds, "rec/s", move |_, seq| {
            let target = target.clone();
            let su = Arc::clone(&su);
            async move {
                let req = target
                    .client
                    .post(target.url(&format!("/api/collections/{collection}/records")))
                    .query(&[("fields", "id")])
                    .header("Authorization", &*su)
                    .json(&post_body(seq as usize, users));
                let resp = send_ok(req).await?;
                resp.bytes().await?;
                Ok(())
            }
        })
        .await
    }
}
