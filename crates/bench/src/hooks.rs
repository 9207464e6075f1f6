//! `warren-bench hooks`: the same `pb_hooks` file served by PocketBase (`--hooksDir`) and by a
//! Warren tenant (its `pb_hooks` folder): a `routerAdd` route answering JSON, and creates into
//! a collection with an `onRecordCreate` hook beside creates into one without. Then, Warren
//! only: the first request to each of many closed tenants carrying the same `pb_hooks`, and the
//! memory an open tenant with its hooks loaded takes beside an open tenant without code.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::load::Summary;
use crate::load::{self, Bounds, OpError};
use crate::report::{Cell, Line};
use crate::scenarios::Measured;
use crate::server::{self, OPERATOR_TOKEN, WarrenOptions, create_tenant, rss_kib};
use crate::target::{Superuser, Target, client, client_with_pool, drain, json_ok, send_ok};

/// The hooks both servers load.
const HOOKS: &str = r#"
routerAdd("GET", "/api/bench/hello/{name}", (e) => {
  return e.json(200, { message: "Hello " + e.request.pathValue("name"), n: 42 });
});

onRecordCreate((e) => {
  e.record.set("slug", e.record.getString("title").toLowerCase().replace(/ /g, "-"));
  e.next();
}, "hooked");
"#;

/// What the run measures.
pub struct HooksConfig {
    pub bounds: Bounds,
    pub rounds: usize,
    /// Closed tenants with hooks touched once each (and as many without, for memory).
    pub tenants: usize,
}

/// The Warren-only figures of tenants with hooks.
#[derive(Debug, serde::Serialize)]
pub struct ColdReport {
    pub tenants: usize,
    /// First request of each closed tenant to its `routerAdd` route (opens the tenant and
    /// loads its hooks), one at a time on a new connection.
    pub first_request: Summary,
    /// First `GET /api/health` of each closed tenant without code, the same way.
    pub first_request_plain: Summary,
    /// RSS growth per tenant opened by those requests, with hooks loaded and without.
    pub kib_per_tenant_with_hooks: Option<f64>,
    pub kib_per_tenant_plain: Option<f64>,
}

/// Starts both servers with the hooks, runs the scenarios alternately, returns the lines.
pub async fn run(pb_bin: &Path, warren_bin: &Path, cfg: &HooksConfig) -> anyhow::Result<Vec<Line>> {
    let su = Superuser::default();
    let hooks_dir = tempfile::Builder::new().prefix("bench-hooks-").tempdir()?;
    std::fs::write(hooks_dir.path().join("bench.pb.js"), HOOKS)?;
    let extra = vec![
        "--hooksDir".to_string(),
        hooks_dir.path().to_string_lossy().into_owned(),
    ];
    let (pb_server, pb) = server::start_pocketbase_with(pb_bin, &su, &extra).await?;
    let (warren_server, warren) = server::start_warren_tenant(warren_bin, &su).await?;
    let tenant_dir = tenant_dir(&warren, &warren_server).await?;
    std::fs::create_dir_all(tenant_dir.join("pb_hooks"))?;
    std::fs::write(tenant_dir.join("pb_hooks/bench.pb.js"), HOOKS)?;
    let targets = [
        ("warren".to_string(), warren),
        ("pocketbase".to_string(), pb),
    ];
    for (name, target) in &targets {
        prepare(target)
            .await
            .map_err(|e| anyhow::anyhow!("preparing {name}: {e}"))?;
    }
    let mut lines = Vec::new();
    for scenario in ["hooks-route", "create-unhooked", "create-hooked"] {
        let mut cells: Vec<Cell> = targets
            .iter()
            .map(|(name, _)| Cell {
                target: name.clone(),
                result: Err("not run".into()),
                rss_kib: None,
            })
            .collect();
        for round in 0..cfg.rounds.max(1) {
            for (i, (_, target)) in targets.iter().enumerate() {
                let stats = measure(scenario, target, cfg.bounds).await;
                let result = Ok(Measured {
                    stats,
                    bytes_per_conn: None,
                });
                if round == 0 {
                    cells[i].result = result;
                    cells[i].rss_kib = target.rss_kib();
                } else {
                    cells[i].merge(result, target.rss_kib());
                }
            }
        }
        lines.push(Line {
            scenario: scenario.to_string(),
            cells,
        });
    }
    warren_server.stop().await;
    pb_server.stop().await;
    Ok(lines)
}

/// The Warren tenant's directory (the operator API names its id).
async fn tenant_dir(
    warren: &Target,
    server: &server::Server,
) -> anyhow::Result<std::path::PathBuf> {
    let platform = warren.platform()?;
    let resp = platform
        .client
        .get(platform.url("/v1/tenants/bench"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await?;
    let body = json_ok(resp)
        .await
        .map_err(|e| anyhow::anyhow!("reading tenant bench: {e}"))?;
    let id = body["id"].as_str().context("tenant bench has no id")?;
    Ok(server.data_dir().join("tenants").join(id))
}

/// Creates the `hooked` and `unhooked` collections (anyone may create).
async fn prepare(target: &Target) -> Result<(), OpError> {
    let token = target.superuser_token().await?;
    for name in ["hooked", "unhooked"] {
        let body = json!({
            "name": name,
            "createRule": "",
            "fields": [{"name": "title", "type": "text"}, {"name": "slug", "type": "text"}],
        });
        let req = target
            .client
            .post(target.url("/api/collections"))
            .header("Authorization", &token)
            .json(&body);
        drain(send_ok(req).await?).await?;
    }
    // The first request loads the hooks; it is not part of the figures.
    drain(send_ok(target.client.get(target.url("/api/bench/hello/warm"))).await?).await
}

async fn measure(scenario: &'static str, target: &Target, bounds: Bounds) -> load::Stats {
    let target = Arc::new(target.clone());
    load::run(bounds, "req/s", move |worker, seq| {
        let target = Arc::clone(&target);
        async move {
            let req = match scenario {
                "hooks-route" => target
                    .client
                    .get(target.url(&format!("/api/bench/hello/w{worker}"))),
                collection => target
                    .client
                    .post(target.url(&format!(
                        "/api/collections/{}/records",
                        collection.trim_start_matches("create-")
                    )))
                    .json(&json!({ "title": format!("Bench Title {seq}") })),
            };
            drain(send_ok(req).await?).await
        }
    })
    .await
}

/// Provisions `cfg.tenants` tenants without code and as many with the hooks (all closed), then
/// touches each once: first the plain ones (`/api/health`), then the hooked ones (their route),
/// reading the server's RSS before and after each pass.
pub async fn cold(warren_bin: &Path, cfg: &HooksConfig) -> anyhow::Result<ColdReport> {
    let n = cfg.tenants.max(1);
    let opts = WarrenOptions {
        max_open_tenants: Some(2 * n + 16),
        ..WarrenOptions::default()
    };
    let server = server::start_warren(warren_bin, &opts).await?;
    let result = cold_on(&server, n).await;
    server.stop().await;
    result
}

async fn cold_on(server: &server::Server, n: usize) -> anyhow::Result<ColdReport> {
    let http = client()?;
    let port = server.port;
    for i in 0..2 * n {
        let slug = cold_slug(i);
        create_tenant(&http, port, &slug)
            .await
            .map_err(|e| anyhow::anyhow!("creating tenant {slug}: {e}"))?;
        if i >= n {
            let resp = http
                .get(format!("http://localhost:{port}/v1/tenants/{slug}"))
                .bearer_auth(OPERATOR_TOKEN)
                .send()
                .await?;
            let body = json_ok(resp)
                .await
                .map_err(|e| anyhow::anyhow!("reading tenant {slug}: {e}"))?;
            let id = body["id"].as_str().context("a tenant without an id")?;
            let dir = server.data_dir().join("tenants").join(id).join("pb_hooks");
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("bench.pb.js"), HOOKS)?;
        }
    }
    // One connection per request: each tenant is its own host.
    let touch_http = client_with_pool(0)?;
    let touch = |first: usize, path: &'static str| {
        let h = touch_http.clone();
        load::run(
            Bounds {
                concurrency: 1,
                duration: Duration::from_secs(24 * 3600),
                max_ops: n as u64,
            },
            "req/s",
            move |_, i| {
                let h = h.clone();
                async move {
                    let slug = cold_slug(first + i as usize);
                    let url = format!("http://{slug}.localhost:{port}{path}");
                    drain(send_ok(h.get(url)).await?).await
                }
            },
        )
    };
    let settle = || tokio::time::sleep(Duration::from_millis(500));
    settle().await;
    let before = rss_kib(server.pid);
    let plain = touch(0, "/api/health").await;
    settle().await;
    let middle = rss_kib(server.pid);
    let hooked = touch(n, "/api/bench/hello/cold").await;
    settle().await;
    let after = rss_kib(server.pid);
    let per =
        |from: Option<u64>, to: Option<u64>| Some(to?.saturating_sub(from?) as f64 / n as f64);
    Ok(ColdReport {
        tenants: n,
        first_request: hooked.summary(),
        first_request_plain: plain.summary(),
        kib_per_tenant_with_hooks: per(middle, after),
        kib_per_tenant_plain: per(before, middle),
    })
}

fn cold_slug(i: usize) -> String {
    format!("cold{i:05}")
}

/// The report's lines.
pub fn format_cold(report: &ColdReport) -> Vec<String> {
    let first = |s: &Summary| {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} ok, {} errors)",
            s.p50_ms, s.p99_ms, s.max_ms, s.ok, s.errors
        )
    };
    let kib = |v: Option<f64>| v.map_or("n/a".to_string(), |k| format!("{k:.0} KiB"));
    vec![
        format!(
            "first request to a closed tenant with hooks ({} tenants): {}",
            report.tenants,
            first(&report.first_request)
        ),
        format!(
            "first request to a closed tenant without code:         {}",
            first(&report.first_request_plain)
        ),
        format!(
            "memory per open tenant: with hooks loaded {}, without code {}",
            kib(report.kib_per_tenant_with_hooks),
            kib(report.kib_per_tenant_plain)
        ),
    ]
}

/// Default run length.
pub fn default_bounds(duration: u64, concurrency: usize) -> Bounds {
    Bounds {
        concurrency: concurrency.max(1),
        duration: Duration::from_secs(duration.max(1)),
        max_ops: u64::MAX,
    }
}
