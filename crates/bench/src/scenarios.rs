//! The request scenarios run against any PocketBase-compatible target, each a closure over a
//! seeded [`Dataset`] handed to the load loop.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::load::{self, Bounds, OpError, OpResult, Stats, mix};
use crate::seed::{Dataset, USER_PASSWORD, post_id, user_email, user_id};
use crate::target::{Target, drain, json_ok, send_ok};

/// Every scenario name `--scenarios` accepts, in the order they run.
pub const ALL: &[&str] = &[
    "seed",
    "health",
    "health-pair",
    "view",
    "view-browser",
    "logging",
    "list",
    "list-skip-total",
    "list-again",
    "list-expand",
    "plain-view",
    "plain-list",
    "plain-list-indexed",
    "create",
    "update",
    "mixed",
    "plain-create",
    "plain-update",
    "auth",
    "auth-4",
    "auth-16",
    "auth-64",
    "realtime",
    "realtime-1k",
    "realtime-10k",
    "realtime-max",
    "files-upload",
    "files-thumb",
    "files-thumb-4mp-first",
    "files-thumb-4mp",
    "files-thumb-4mp-cached",
    "files-upload-10mb",
];

/// The file scenarios, which `--scenarios files` names together.
const FILES: &[&str] = &[
    "files-upload",
    "files-thumb",
    "files-thumb-4mp-first",
    "files-thumb-4mp",
    "files-thumb-4mp-cached",
    "files-upload-10mb",
];

/// The scenarios on the unindexed `plain` collection, which `--scenarios plain` names together.
const PLAIN: &[&str] = &[
    "plain-view",
    "plain-list",
    "plain-list-indexed",
    "plain-create",
    "plain-update",
];

/// The realtime scenario at fixed subscriber counts (not part of `all`: the largest holds
/// about 18,000 connections).
const REALTIME_SWEEP: &[&str] = &["realtime-1k", "realtime-10k", "realtime-max"];

/// Scenarios that run at a fixed client count whatever `--concurrency` says.
pub fn fixed_concurrency(name: &str) -> Option<usize> {
    match name {
        "auth-4" => Some(4),
        "auth-16" => Some(16),
        "auth-64" => Some(64),
        "files-thumb-4mp-first" => Some(1),
        _ => None,
    }
}

/// Expands the `--scenarios` list (`files` means every file scenario, `auth-sweep` the auth
/// scenario at 4, 16 and 64 clients, `realtime-sweep` the realtime scenario at 1,000, 10,000
/// and as many subscribers as the open-files limit allows, `all` everything).
pub fn parse_list(list: &str) -> anyhow::Result<Vec<&'static str>> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let names: Vec<&'static str> = match name {
            "all" => ALL
                .iter()
                .copied()
                .filter(|n| !REALTIME_SWEEP.contains(n))
                .collect(),
            "files" => FILES.to_vec(),
            "plain" => PLAIN.to_vec(),
            "auth-sweep" => vec!["auth-4", "auth-16", "auth-64"],
            "realtime-sweep" => REALTIME_SWEEP.to_vec(),
            other => match ALL.iter().find(|s| **s == other) {
                Some(found) => vec![*found],
                None => anyhow::bail!(
                    "unknown scenario {other:?} (known: {}, files, plain, auth-sweep, realtime-sweep, all)",
                    ALL.join(", ")
                ),
            },
        };
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    // Keep the canonical order so data-changing scenarios run after read-only ones.
    out.sort_by_key(|n| ALL.iter().position(|s| s == n));
    Ok(out)
}

/// Whether a scenario needs the seed.
pub fn needs_seed(name: &str) -> bool {
    !matches!(name, "seed" | "health" | "health-pair")
}

/// Whether a scenario needs the `plain` collection seeded.
pub fn needs_plain(name: &str) -> bool {
    name.starts_with("plain-")
}

/// The result of one scenario run against one target.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Throughput and latencies.
    pub stats: Stats,
    /// Server memory per realtime connection, in bytes (realtime only).
    pub bytes_per_conn: Option<u64>,
}

/// Runs one scenario once against one target. `Err` means the target does not support it.
pub async fn run(
    name: &str,
    target: &Target,
    data: Option<&Dataset>,
    bounds: Bounds,
    subscribers: usize,
) -> Result<Measured, String> {
    let bounds = Bounds {
        concurrency: fixed_concurrency(name).unwrap_or(bounds.concurrency),
        ..bounds
    };
    let subscribers = match name {
        "realtime-1k" => 1_000,
        "realtime-10k" => 10_000,
        "realtime-max" => crate::realtime::max_subscribers(),
        _ => subscribers,
    };
    if name.starts_with("realtime") {
        let data = data.ok_or_else(|| "needs the seed".to_string())?;
        let (stats, bytes_per_conn) =
            crate::realtime::run(target, data, bounds, subscribers).await?;
        return Ok(Measured {
            stats,
            bytes_per_conn,
        });
    }
    let stats = run_requests(name, target, data, bounds).await?;
    Ok(Measured {
        stats,
        bytes_per_conn: None,
    })
}

async fn run_requests(
    name: &str,
    target: &Target,
    data: Option<&Dataset>,
    bounds: Bounds,
) -> Result<Stats, String> {
    if name == "health" {
        return probe_then_run(bounds, health(target.clone())).await;
    }
    let data = data.ok_or_else(|| "needs the seed".to_string())?.clone();
    let t = target.clone();
    if let Some(kind) = name.strip_prefix("plain-") {
        return run_plain(kind, t, data, bounds).await;
    }
    match name {
        "view" => probe_then_run(bounds, view(t, data, "posts", &[])).await,
        "view-browser" => probe_then_run(bounds, view(t, data, "posts", BROWSER_HEADERS)).await,
        "list" => probe_then_run(bounds, list(t, data, "posts", false, false)).await,
        "list-skip-total" => probe_then_run(bounds, list(t, data, "posts", true, false)).await,
        "list-again" => probe_then_run(bounds, list_again(t, data)).await,
        "list-expand" => probe_then_run(bounds, list(t, data, "posts", false, true)).await,
        "create" => probe_then_run(bounds, create(t, data, "posts")).await,
        "update" => probe_then_run(bounds, update(t, data, "posts")).await,
        "mixed" => probe_then_run(bounds, mixed(t, data)).await,
        "auth" | "auth-4" | "auth-16" | "auth-64" => {
            let op = auth(t, data, bounds.concurrency).map_err(|e| format!("{e:#}"))?;
            probe_then_run(bounds, op).await
        }
        "files-thumb-4mp-first"
        | "files-thumb-4mp"
        | "files-thumb-4mp-cached"
        | "files-upload-10mb" => crate::photos::run(name, target, &data, bounds).await,
        "files-upload" => probe_then_run(bounds, upload(t, data)).await,
        "files-thumb" => {
            let files = upload_samples(target, &data, 16).await?;
            probe_then_run(bounds, thumb(t, files)).await
        }
        other => Err(format!("scenario {other} has no runner")),
    }
}

/// The `plain-*` scenarios: the `posts` operations on the unindexed `plain` collection; its
/// lists always skip the total, `plain-list` without any index, `plain-list-indexed` with one on
/// `created` (added or dropped before the run).
async fn run_plain(kind: &str, t: Target, data: Dataset, bounds: Bounds) -> Result<Stats, String> {
    if data.plain == 0 {
        return Err("the plain collection is not seeded".into());
    }
    let data = Dataset {
        records: data.plain,
        ..data
    };
    let plain = crate::plain::COLLECTION;
    if kind.starts_with("list") {
        crate::plain::set_created_index(&t, kind == "list-indexed")
            .await
            .map_err(|e| format!("setting the plain index: {e}"))?;
    }
    match kind {
        "view" => probe_then_run(bounds, view(t, data, plain, &[])).await,
        "list" | "list-indexed" => probe_then_run(bounds, list(t, data, plain, true, false)).await,
        "create" => probe_then_run(bounds, create(t, data, plain)).await,
        "update" => probe_then_run(bounds, update(t, data, plain)).await,
        other => Err(format!("scenario plain-{other} has no runner")),
    }
}

type Op = Arc<
    dyn Fn(usize, u64) -> std::pin::Pin<Box<dyn Future<Output = OpResult> + Send>> + Send + Sync,
>;

fn op<F, Fut>(f: F) -> Op
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = OpResult> + Send + 'static,
{
    Arc::new(move |w, s| Box::pin(f(w, s)))
}

/// One probe request first: a 404/405/501 means the target lacks the route (unsupported);
/// any other failure is counted as an error of the measured run instead.
async fn probe_then_run(bounds: Bounds, op: Op) -> Result<Stats, String> {
    if let Err(err) = op(0, u64::MAX / 2).await
        && err.is_unsupported()
    {
        return Err(err.message);
    }
    let unit = "req/s";
    let op2 = Arc::clone(&op);
    Ok(load::run(bounds, unit, move |w, s| op2(w, s)).await)
}

/// `GET /v1/health` on the platform's host of the target's server (Warren's own route, beside
/// its tenants): the other half of the `health-pair` line.
pub async fn platform_health(target: &Target, bounds: Bounds) -> Result<Measured, String> {
    let t = target.platform().map_err(|e| format!("{e:#}"))?;
    let op = op(move |_, _| {
        let t = t.clone();
        async move { drain(t.client.get(t.url("/v1/health")).send().await?).await }
    });
    let stats = probe_then_run(bounds, op).await?;
    Ok(Measured {
        stats,
        bytes_per_conn: None,
    })
}

fn health(t: Target) -> Op {
    op(move |_, _| {
        let t = t.clone();
        async move { drain(t.client.get(t.url("/api/health")).send().await?).await }
    })
}

/// A visible post for the worker's user: a public one (even index) or one it owns.
fn visible_post(data: &Dataset, worker: usize, seq: u64) -> usize {
    let r = mix(worker as u64, seq) as usize;
    if r.is_multiple_of(4) {
        let (u, _) = data.worker_user(worker);
        let owned = data.records.saturating_sub(u).div_ceil(data.users).max(1);
        (u + (r / 4 % owned) * data.users).min(data.records.saturating_sub(1))
    } else {
        (r / 4 % data.records.div_ceil(2).max(1)) * 2
    }
}

/// Views a record of `collection` the worker's user may see, sending `headers` too.
fn view(
    t: Target,
    data: Dataset,
    collection: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> Op {
    op(move |w, s| {
        let t = t.clone();
        let data = data.clone();
        async move {
            let i = visible_post(&data, w, s);
            let (_, token) = data.worker_user(w);
            let mut req = t
                .client
                .get(t.url(&format!(
                    "/api/collections/{collection}/records/{}",
                    post_id(i)
                )))
                .header("Authorization", token);
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            drain(req.send().await?).await
        }
    })
}

/// The headers Chromium sends with the JS SDK's `fetch` from a page served on another origin
/// (an app on its dev server calling its backend), besides `Host`, `Connection` and
/// `Authorization`.
const BROWSER_HEADERS: &[(&str, &str)] = &[
    (
        "sec-ch-ua",
        "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
    ),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Linux\""),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36",
    ),
    ("accept", "*/*"),
    ("origin", "http://localhost:5173"),
    ("sec-fetch-site", "cross-site"),
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-dest", "empty"),
    ("referer", "http://localhost:5173/"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-US,en;q=0.9"),
];

fn list(t: Target, data: Dataset, collection: &'static str, skip_total: bool, expand: bool) -> Op {
    op(move |w, s| {
        let t = t.clone();
        let data = data.clone();
        async move {
            let r = mix(w as u64, s);
            let min = (r % 900).to_string();
            let page = (1 + (r >> 16) % 10).to_string();
            let filter = format!("public = true && number >= {min}");
            let mut query: Vec<(&str, &str)> = vec![
                ("filter", &filter),
                ("sort", "-created,id"),
                ("page", &page),
                ("perPage", "30"),
            ];
            if skip_total {
                query.push(("skipTotal", "1"));
            }
            if expand {
                query.push(("expand", "owner"));
            }
            let (_, token) = data.worker_user(w);
            let req = t
                .client
                .get(t.url(&format!("/api/collections/{collection}/records")))
                .query(&query)
                .header("Authorization", token);
            let json = json_ok(req.send().await?).await?;
            let Some(items) = json.get("items").and_then(Value::as_array) else {
                return Err(OpError::other("list response has no items array"));
            };
            if expand
                && let Some(first) = items.first()
                && first.pointer("/expand/owner/id").is_none()
            {
                return Err(OpError::other("list-expand: items have no expand.owner"));
            }
            Ok(())
        }
    })
}

/// `list-again`: each client asks for the same counted first page of public posts over and
/// over, as a feed or a dashboard polls it between writes.
fn list_again(t: Target, data: Dataset) -> Op {
    op(move |w, _| {
        let t = t.clone();
        let data = data.clone();
        async move {
            let (_, token) = data.worker_user(w);
            let req = t
                .client
                .get(t.url("/api/collections/posts/records"))
                .query(&[
                    ("filter", "public = true"),
                    ("sort", "-created,id"),
                    ("page", "1"),
                    ("perPage", "30"),
                ])
                .header("Authorization", token);
            let json = json_ok(req.send().await?).await?;
            if json.get("totalItems").and_then(Value::as_i64).unwrap_or(0) <= 0 {
                return Err(OpError::other("list-again: the page has no totalItems"));
            }
            Ok(())
        }
    })
}

fn create(t: Target, data: Dataset, collection: &'static str) -> Op {
    op(move |w, s| {
        let t = t.clone();
        let data = data.clone();
        async move {
            let (u, token) = data.worker_user(w);
            let body = json!({
                "owner": user_id(u),
                "title": format!("Created by worker {w} seq {s}"),
                "body": "A post created during the create scenario.",
                "number": s % 1000,
                "public": true,
                "published": "2025-02-01 08:00:00.000Z",
            });
            let req = t
                .client
                .post(t.url(&format!("/api/collections/{collection}/records")))
                .header("Authorization", token)
                .json(&body);
            drain(req.send().await?).await
        }
    })
}

/// `mixed`: reads and writes together, as an app's signed-in users make them: each client views
/// three posts (as in `view`), then creates one (as in `create`), so a quarter of the requests
/// write while the others read.
fn mixed(t: Target, data: Dataset) -> Op {
    let view = view(t.clone(), data.clone(), "posts", &[]);
    let create = create(t, data, "posts");
    op(move |w, s| if s % 4 == 3 { create(w, s) } else { view(w, s) })
}

fn update(t: Target, data: Dataset, collection: &'static str) -> Op {
    op(move |w, s| {
        let t = t.clone();
        let data = data.clone();
        async move {
            let (u, token) = data.worker_user(w);
            let owned = data.records.saturating_sub(u).div_ceil(data.users).max(1);
            let k = mix(w as u64, s) as usize % owned;
            let i = u + k * data.users;
            let req = t
                .client
                .patch(t.url(&format!(
                    "/api/collections/{collection}/records/{}",
                    post_id(i)
                )))
                .header("Authorization", token)
                .json(&json!({ "title": format!("Updated {s}"), "number": s % 1000 }));
            drain(req.send().await?).await
        }
    })
}

/// Each client logs in from its own loopback address (127.0.0.10, .11, …), as distinct users
/// on distinct machines would: a server's per-address login limit then meters each client, not
/// the whole run. Refusals (429) are counted apart from other errors.
fn auth(t: Target, data: Dataset, clients: usize) -> anyhow::Result<Op> {
    let clients: Arc<Vec<reqwest::Client>> = Arc::new(
        (0..clients.max(1))
            .map(|w| crate::target::client_from(crate::target::worker_address(w)))
            .collect::<anyhow::Result<_>>()?,
    );
    Ok(op(move |w, s| {
        let t = t.clone();
        let users = data.users;
        let client = clients[w % clients.len()].clone();
        async move {
            let i = mix(w as u64, s) as usize % users;
            let req = client
                .post(t.url("/api/collections/users/auth-with-password"))
                .json(&json!({ "identity": user_email(i), "password": USER_PASSWORD }));
            let json = json_ok(req.send().await?).await?;
            crate::target::token_of(&json).map(|_| ())
        }
    }))
}

const BOUNDARY: &str = "----warren-bench-boundary-7MA4YWxkTrZu0gW";

/// A multipart body with a `title` text part and a `file` PNG part.
fn multipart(title: &str, png: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(png.len() + 512);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{title}\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"image.png\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(png);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_one(t: &Target, token: &str, title: &str, png: &[u8]) -> Result<Value, OpError> {
    let req = t
        .client
        .post(t.url("/api/collections/docs/records"))
        .header("Authorization", token)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(title, png));
    json_ok(req.send().await?).await
}

fn upload(t: Target, data: Dataset) -> Op {
    let png: Arc<[u8]> = crate::png::gradient(256).into();
    op(move |w, s| {
        let t = t.clone();
        let data = data.clone();
        let png = Arc::clone(&png);
        async move {
            let (_, token) = data.worker_user(w);
            let json = upload_one(&t, token, &format!("upload {w}-{s}"), &png).await?;
            match json.get("file").and_then(Value::as_str) {
                Some(name) if !name.is_empty() => Ok(()),
                _ => Err(OpError::other("upload response has no file name")),
            }
        }
    })
}

/// Uploads `n` images and returns `(record id, filename)` pairs for the thumb scenario.
async fn upload_samples(
    t: &Target,
    data: &Dataset,
    n: usize,
) -> Result<Arc<Vec<(String, String)>>, String> {
    let png = crate::png::gradient(256);
    let mut files = Vec::with_capacity(n);
    for k in 0..n {
        let (_, token) = data.worker_user(k);
        let json = upload_one(t, token, &format!("thumb sample {k}"), &png)
            .await
            .map_err(|e| format!("uploading thumb samples: {e}"))?;
        let id = json.get("id").and_then(Value::as_str).unwrap_or_default();
        let file = json.get("file").and_then(Value::as_str).unwrap_or_default();
        if id.is_empty() || file.is_empty() {
            return Err("upload response lacks id or file".into());
        }
        files.push((id.to_string(), file.to_string()));
    }
    Ok(Arc::new(files))
}

fn thumb(t: Target, files: Arc<Vec<(String, String)>>) -> Op {
    op(move |w, s| {
        let t = t.clone();
        let files = Arc::clone(&files);
        async move {
            let (id, file) = &files[mix(w as u64, s) as usize % files.len()];
            let req = t
                .client
                .get(t.url(&format!("/api/files/docs/{id}/{file}")))
                .query(&[("thumb", "100x100")]);
            let resp = send_ok(req).await?;
            let is_png = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("image/png"));
            let bytes = resp.bytes().await?;
            if !is_png || bytes.len() < 8 {
                return Err(OpError::other("thumb is not a PNG"));
            }
            Ok(())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_expands_to_every_file_scenario_in_canonical_order() {
        let list = parse_list("files,view,seed").unwrap();
        let mut expected = vec!["seed", "view"];
        expected.extend_from_slice(FILES);
        assert_eq!(list, expected);
    }

    #[test]
    fn the_auth_sweep_runs_at_4_16_and_64_clients() {
        let list = parse_list("auth-sweep").unwrap();
        let counts: Vec<_> = list.iter().map(|n| fixed_concurrency(n)).collect();
        assert_eq!(counts, vec![Some(4), Some(16), Some(64)]);
        assert_eq!(fixed_concurrency("auth"), None);
    }

    #[test]
    fn plain_names_every_unindexed_scenario_and_only_those_need_its_seed() {
        let list = parse_list("plain").unwrap();
        assert_eq!(list, PLAIN.to_vec());
        assert!(list.iter().all(|n| needs_plain(n) && needs_seed(n)));
        assert!(!needs_plain("list") && !needs_seed("health-pair"));
    }

    #[test]
    fn unknown_scenarios_are_rejected() {
        assert!(parse_list("view,nope").is_err());
    }
}
