//! `warren-bench hooks`: the same `pb_hooks` file served by PocketBase (`--hooksDir`) and by a
//! Warren tenant (its `pb_hooks` folder): a `routerAdd` route answering JSON, and creates into
//! a collection with an `onRecordCreate` hook beside creates into one without.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::load::{self, Bounds, OpError};
use crate::report::{Cell, Line};
use crate::scenarios::Measured;
use crate::server::{self, OPERATOR_TOKEN};
use crate::target::{Superuser, Target, drain, json_ok, send_ok};

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

/// Default run length.
pub fn default_bounds(duration: u64, concurrency: usize) -> Bounds {
    Bounds {
        concurrency: concurrency.max(1),
        duration: Duration::from_secs(duration.max(1)),
        max_ops: u64::MAX,
    }
}
