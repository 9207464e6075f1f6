//! `warren-bench metering`: what metering and quotas cost. Two Warren servers run side by side
//! with the same seeded tenant: one meters every request and puts the tenant on a plan whose
//! limits (request rate, storage, upload size, realtime connections) are all set but never hit,
//! the other runs with `--no-metering` (no counters, no quota checks). After a short warm-up of
//! each, view-by-id throughput is measured on both in rounds ordered A B B A, B A A B… so drift
//! hits both alike, and the report is the metered server's throughput as a ratio of the bare
//! one's (goal ≥ 0.97).

use std::path::Path;

use anyhow::bail;
use serde::Serialize;
use serde_json::json;

use crate::load::{Bounds, Summary};
use crate::report::{Cell, Line};
use crate::scenarios;
use crate::seed::Dataset;
use crate::server::{self, OPERATOR_TOKEN, Server, WarrenOptions};
use crate::target::{Superuser, Target, client};

/// The plan the metered tenant runs on: every quota set, none reached by the benchmark.
const PLAN: &str = "bench-limits";

/// Settings of one metering run.
#[derive(Debug, Clone)]
pub struct MeteringConfig {
    /// Rounds; each measures both servers twice (A B B A, then B A A B).
    pub rounds: usize,
    /// Load bounds of one measurement.
    pub bounds: Bounds,
    /// Posts to seed.
    pub records: usize,
    /// Users to seed.
    pub users: usize,
}

/// The figures of one run.
#[derive(Debug, Serialize)]
pub struct MeteringReport {
    /// Metering and quotas on.
    pub metered: Summary,
    /// `--no-metering`.
    pub bare: Summary,
    /// Metered throughput / bare throughput.
    pub ratio: f64,
    /// The ratio of each round, to see the spread.
    pub round_ratios: Vec<f64>,
}

/// Starts Warren with `extra` flags, creates tenant `bench` and its superuser.
async fn start(bin: &Path, su: &Superuser, extra: &[&str]) -> anyhow::Result<(Server, Target)> {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let server = server::start_warren_with(bin, &WarrenOptions::default(), &extra).await?;
    let http = client()?;
    server::create_tenant(&http, server.port, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("creating tenant bench: {e}"))?;
    server::upsert_superuser(bin, &server, "bench", su).await?;
    let base = format!("http://bench.localhost:{}", server.port);
    let target = Target::new(&base, Some(server.pid), su.clone())?;
    Ok((server, target))
}

/// Creates [`PLAN`] on `server` and moves tenant `bench` onto it.
async fn limit(server: &Server) -> anyhow::Result<()> {
    let http = client()?;
    let base = format!("http://localhost:{}", server.port);
    let plan = json!({
        "name": PLAN,
        "requestsPerSecond": 1_000_000,
        "requestBurst": 1_000_000,
        "storageBytes": 1u64 << 40,
        "maxUploadBytes": 64u64 << 20,
        "maxRealtimeConnections": 100_000,
        "maxProjects": 100,
    });
    let response = http
        .post(format!("{base}/v1/plans"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&plan)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("creating plan {PLAN}: {}", response.text().await?);
    }
    let response = http
        .patch(format!("{base}/v1/tenants/bench"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({ "plan": PLAN }))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("moving bench to plan {PLAN}: {}", response.text().await?);
    }
    Ok(())
}

/// Requests in tenant `bench`'s stored usage; with `wait`, polls until some are flushed
/// (at most 15 s).
async fn metered_requests(server: &Server, wait: bool) -> anyhow::Result<u64> {
    let http = client()?;
    let url = format!("http://localhost:{}/v1/tenants/bench/usage", server.port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let body: serde_json::Value = http
            .get(&url)
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let requests = body["totals"]["requests"].as_u64().unwrap_or(0);
        if requests > 0 || !wait || std::time::Instant::now() > deadline {
            return Ok(requests);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn seed(name: &str, target: &Target, cfg: &MeteringConfig) -> anyhow::Result<Dataset> {
    eprintln!(
        "seeding {name}: {} users, {} records",
        cfg.users, cfg.records
    );
    let (dataset, _) = crate::seed::seed(target, cfg.users, cfg.records, cfg.bounds.concurrency)
        .await
        .map_err(|e| anyhow::anyhow!("seeding {name}: {}", e.message))?;
    Ok(dataset)
}

/// Runs the benchmark: both servers, seeded alike, view-by-id in A B B A rounds.
pub async fn run(warren: &Path, cfg: &MeteringConfig) -> anyhow::Result<MeteringReport> {
    let su = Superuser::default();
    let (metered_server, metered) = start(warren, &su, &[]).await?;
    limit(&metered_server).await?;
    let (bare_server, bare) = start(warren, &su, &["--no-metering"]).await?;
    let metered_data = seed("metered", &metered, cfg).await?;
    let bare_data = seed("bare", &bare, cfg).await?;

    let sides = [
        ("metered", &metered, &metered_data),
        ("bare", &bare, &bare_data),
    ];
    // Warm both servers' caches with a short unmeasured run each.
    let warm = Bounds {
        duration: cfg.bounds.duration.min(std::time::Duration::from_secs(2)),
        ..cfg.bounds
    };
    for (name, target, data) in sides {
        eprintln!("view: warming {name}");
        scenarios::run("view", target, Some(data), warm, 0)
            .await
            .map_err(|reason| anyhow::anyhow!("view on {name}: {reason}"))?;
    }
    let mut cells: [Option<Cell>; 2] = [None, None];
    let mut round_ratios = Vec::new();
    for round in 0..cfg.rounds.max(1) {
        let order = crate::load::paired_order(round);
        let mut rates = [0.0f64; 2];
        for k in order {
            let (name, target, data) = sides[k];
            eprintln!("view: round {} on {name}", round + 1);
            let measured = scenarios::run("view", target, Some(data), cfg.bounds, 0)
                .await
                .map_err(|reason| anyhow::anyhow!("view on {name}: {reason}"))?;
            rates[k] += measured.stats.throughput();
            let rss = target.rss_kib();
            Cell::add_round(&mut cells[k], name, Ok(measured), rss);
        }
        let ratio = rates[0] / rates[1];
        println!("round {}: metered / bare view-by-id ×{ratio:.3}", round + 1);
        round_ratios.push(ratio);
    }
    // The gate really ran on one side only: usage reaches the control database (at the next
    // flush, within the default 10 s) on the metered server and never on the bare one.
    let counted = metered_requests(&metered_server, true).await?;
    let uncounted = metered_requests(&bare_server, false).await?;
    metered_server.stop().await;
    bare_server.stop().await;
    if counted == 0 || uncounted != 0 {
        bail!(
            "metering did not run as set up: metered server counted {counted} requests, bare {uncounted}"
        );
    }

    let line = Line {
        scenario: "view".into(),
        cells: cells.into_iter().flatten().collect(),
    };
    println!("{}", crate::report::format_line(&line));
    let summary = |cell: &Cell| -> anyhow::Result<Summary> {
        let measured = cell.result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(measured.stats.summary())
    };
    let (metered, bare) = (summary(&line.cells[0])?, summary(&line.cells[1])?);
    let errors = metered.errors + bare.errors;
    let report = MeteringReport {
        ratio: metered.throughput / bare.throughput,
        metered,
        bare,
        round_ratios,
    };
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(report)
}

/// The report as lines of text.
pub fn format(report: &MeteringReport) -> Vec<String> {
    vec![
        format!(
            "metered (metering + quotas set, not hit): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            report.metered.throughput, report.metered.p50_ms, report.metered.p99_ms
        ),
        format!(
            "bare (--no-metering):                     {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            report.bare.throughput, report.bare.p50_ms, report.bare.p99_ms
        ),
        format!(
            "metered / bare view-by-id throughput:     ×{:.3} (goal ≥ 0.97)",
            report.ratio
        ),
    ]
}
