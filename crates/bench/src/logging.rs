//! The `logging` pair: view by id as a user on two tenants of one Warren server, seeded alike,
//! one with request logs on (default settings) and one with them off (`logs.maxDays = 0`, set
//! through the settings API), in alternating rounds; the ratio on/off is what logging costs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::load::{Bounds, OpError};
use crate::report::{Cell, Line};
use crate::scenarios::{self, Measured};
use crate::seed::Dataset;
use crate::server;
use crate::target::{Target, client, drain, json_ok};

/// The tenant created beside the first target with its request logs turned off.
pub const OFF_TENANT: &str = "bench-nologs";

/// The scenario's name in `--scenarios` and on its line.
pub const NAME: &str = "logging";

/// Sizes of the seed and the load, as `compare` was given them.
#[derive(Debug, Clone, Copy)]
pub struct PairConfig {
    pub bounds: Bounds,
    pub rounds: usize,
    pub users: usize,
    pub records: usize,
}

/// Runs the pair on `on` (a seeded Warren tenant, `data` its seed): creates [`OFF_TENANT`] on
/// the same server, seeds it alike, turns its logs off, then measures both in A B B A rounds.
/// A step that fails makes both cells say why.
pub async fn pair(
    name: &str,
    seeded: Result<(&Target, &Dataset), String>,
    cfg: PairConfig,
) -> Line {
    let labels = [format!("{name} logs on"), format!("{name} logs off")];
    let cells = match measure(seeded, cfg).await {
        Ok(results) => labels
            .into_iter()
            .zip(results)
            .map(|(target, (measured, rss_kib))| Cell {
                target,
                result: Ok(measured),
                rss_kib,
            })
            .collect(),
        Err(reason) => labels
            .into_iter()
            .map(|target| Cell {
                target,
                result: Err(reason.clone()),
                rss_kib: None,
            })
            .collect(),
    };
    Line {
        scenario: NAME.into(),
        cells,
    }
}

type Side = (Measured, Option<u64>);

async fn measure(
    seeded: Result<(&Target, &Dataset), String>,
    cfg: PairConfig,
) -> Result<[Side; 2], String> {
    let (on, on_data) = seeded?;
    let on_data = on_data.clone();
    let off = on
        .tenant(OFF_TENANT)
        .map_err(|e| format!("addressing {OFF_TENANT}: {e:#}"))?;
    let off_data = prepare_off(&off, cfg)
        .await
        .map_err(|e| format!("preparing {OFF_TENANT}: {e}"))?;
    let on_settings = logs_settings(on).await.map_err(|e| e.message)?;
    if on_settings["maxDays"].as_i64().unwrap_or(0) <= 0 {
        return Err(format!(
            "the logs-on tenant has logging off: logs = {on_settings}"
        ));
    }
    let sides = [(on, &on_data), (&off, &off_data)];
    let warm = Bounds {
        duration: cfg.bounds.duration.min(Duration::from_secs(2)),
        ..cfg.bounds
    };
    for (k, (target, data)) in sides.iter().enumerate() {
        eprintln!("{NAME}: warming logs {}", ["on", "off"][k]);
        scenarios::run("view", target, Some(data), warm, 0).await?;
    }
    let mut cells: [Option<Cell>; 2] = [None, None];
    // Server CPU seconds and requests served, per side.
    let mut cpu = [(0.0f64, 0u64); 2];
    for round in 0..cfg.rounds.max(1) {
        let order = crate::load::paired_order(round);
        let mut rates = [0.0f64; 2];
        for k in order {
            let (target, data) = sides[k];
            eprintln!("{NAME}: round {} logs {}", round + 1, ["on", "off"][k]);
            let before = target.pid.and_then(server::cpu_seconds);
            let measured = scenarios::run("view", target, Some(data), cfg.bounds, 0).await?;
            let after = target.pid.and_then(server::cpu_seconds);
            if let (Some(before), Some(after)) = (before, after) {
                cpu[k].0 += after - before;
                cpu[k].1 += measured.stats.ok;
            }
            rates[k] += measured.stats.throughput();
            let rss = target.rss_kib();
            Cell::add_round(&mut cells[k], "", Ok(measured), rss);
        }
        eprintln!(
            "{NAME}: round {} on/off ×{:.3}",
            round + 1,
            rates[0] / rates[1].max(f64::MIN_POSITIVE)
        );
    }
    let per_request = |(seconds, requests): (f64, u64)| seconds * 1e6 / requests.max(1) as f64;
    if cpu.iter().all(|(_, requests)| *requests > 0) {
        let (on_us, off_us) = (per_request(cpu[0]), per_request(cpu[1]));
        println!(
            "{NAME}: server CPU per view, logs on {on_us:.1} µs, off {off_us:.1} µs (off/on ×{:.3})",
            off_us / on_us
        );
    }
    check_logged(on, &off).await?;
    let [Some(a), Some(b)] = cells else {
        return Err("no round ran".into());
    };
    let side = |cell: Cell| cell.result.map(|m| (m, cell.rss_kib));
    Ok([side(a)?, side(b)?])
}

/// Creates the logs-off tenant with the first target's superuser, seeds it like the first and
/// turns its request logs off as PocketBase does, with `logs.maxDays = 0`.
async fn prepare_off(off: &Target, cfg: PairConfig) -> Result<Dataset, OpError> {
    let port = off.port().map_err(|e| OpError::other(format!("{e:#}")))?;
    let http = client().map_err(|e| OpError::other(format!("{e:#}")))?;
    if let Err(e) = server::create_tenant(&http, port, OFF_TENANT).await
        && e.status != Some(409)
    {
        return Err(e);
    }
    server::put_superuser(&http, port, OFF_TENANT, &off.superuser).await?;
    eprintln!(
        "seeding {OFF_TENANT}: {} users, {} records",
        cfg.users, cfg.records
    );
    let (dataset, _) =
        crate::seed::seed(off, cfg.users, cfg.records, cfg.bounds.concurrency).await?;
    let su = off.superuser_token().await?;
    let resp = off
        .client
        .patch(off.url("/api/settings"))
        .header("Authorization", &su)
        .json(&json!({ "logs": { "maxDays": 0 } }))
        .send()
        .await?;
    drain(resp).await?;
    let settings = logs_settings(off).await?;
    if settings["maxDays"].as_i64() != Some(0) {
        return Err(OpError::other(format!(
            "logs.maxDays did not become 0: logs = {settings}"
        )));
    }
    Ok(dataset)
}

/// The `logs` section of a target's settings.
async fn logs_settings(target: &Target) -> Result<Value, OpError> {
    let su = target.superuser_token().await?;
    let resp = target
        .client
        .get(target.url("/api/settings"))
        .header("Authorization", su)
        .send()
        .await?;
    let json = json_ok(resp).await?;
    Ok(json.get("logs").cloned().unwrap_or(Value::Null))
}

/// Stored request-log entries of record views on `target`.
async fn logged_views(target: &Target) -> Result<u64, OpError> {
    let su = target.superuser_token().await?;
    let resp = target
        .client
        .get(target.url("/api/logs"))
        .query(&[
            ("filter", "data.url ~ '/api/collections/posts/records/p'"),
            ("perPage", "1"),
        ])
        .header("Authorization", su)
        .send()
        .await?;
    let json = json_ok(resp).await?;
    Ok(json["totalItems"].as_u64().unwrap_or(0))
}

/// That the views were logged on the logs-on tenant (written within 15 s) and not on the other.
async fn check_logged(on: &Target, off: &Target) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let on_count = loop {
        let n = logged_views(on).await.map_err(|e| e.message)?;
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let off_count = logged_views(off).await.map_err(|e| e.message)?;
    eprintln!("{NAME}: views logged with logs on {on_count}, off {off_count}");
    if on_count == 0 || off_count != 0 {
        return Err(format!(
            "logging did not run as set up: {on_count} views logged with logs on, {off_count} off"
        ));
    }
    Ok(())
}
