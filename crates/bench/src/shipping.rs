//! The Warren-only `shipping` scenario: create latency (p50/p99) and throughput of one tenant
//! with its WAL shipped asynchronously (acknowledged at the local commit) against
//! synchronously (acknowledged once the segment holding the commit is stored in the backup
//! target), at each concurrency asked for, alternating the modes round by round.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;

use crate::backup::{notes_tenant, write_load};
use crate::load::Summary;
use crate::server::{self, OPERATOR_TOKEN, WarrenOptions};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct ShippingConfig {
    /// Concurrent writers, one measurement per value and mode.
    pub concurrency: Vec<usize>,
    /// Seconds of writes per measurement.
    pub seconds: u64,
    /// Backup target URL; a fresh local directory when absent.
    pub backup_url: Option<String>,
    /// The node's asynchronous shipping interval (`--backup-wal-every`).
    pub interval: String,
}

/// One concurrency's figures.
#[derive(Debug, Serialize)]
pub struct ShippingRow {
    pub concurrency: usize,
    pub asynchronous: Summary,
    pub synchronous: Summary,
}

/// Everything measured.
#[derive(Debug, Serialize)]
pub struct ShippingReport {
    pub target: String,
    pub interval: String,
    pub rows: Vec<ShippingRow>,
}

const SLUG: &str = "shipped";

/// Starts Warren with a backup target, measures, stops it.
pub async fn run(warren: &Path, cfg: &ShippingConfig) -> anyhow::Result<ShippingReport> {
    let (_local, url) = server::backup_target(cfg.backup_url.as_deref(), "bench-shipping-")?;
    let flags = vec![
        format!("--backup-url={url}"),
        "--backup-every=0".to_string(),
        format!("--backup-wal-every={}", cfg.interval),
    ];
    let server = server::start_warren_with(warren, &WarrenOptions::default(), &flags).await?;
    let result = measure(warren, &server, cfg).await;
    server.stop().await;
    Ok(ShippingReport {
        target: if cfg.backup_url.is_some() {
            url
        } else {
            "local directory".into()
        },
        interval: cfg.interval.clone(),
        rows: result?,
    })
}

async fn operator(
    http: &reqwest::Client,
    port: u16,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let answer = http
        .request(method, format!("http://localhost:{port}{path}"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{path}: {status} {body}");
    }
    Ok(body)
}

async fn measure(
    warren: &Path,
    server: &server::Server,
    cfg: &ShippingConfig,
) -> anyhow::Result<Vec<ShippingRow>> {
    let port = server.port;
    let (http, base) = notes_tenant(warren, server, SLUG).await?;
    operator(
        &http,
        port,
        reqwest::Method::POST,
        "/v1/plans",
        json!({ "name": "sync", "shipping": "sync" }),
    )
    .await?;
    // The snapshot the tenant's WAL chain follows (taken at its first opening).
    let mut chained = false;
    for _ in 0..600 {
        let listed: serde_json::Value = http
            .get(format!("http://localhost:{port}/v1/tenants/{SLUG}/backups"))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        if listed["items"].as_array().is_some_and(|i| !i.is_empty()) {
            chained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(chained, "no snapshot started the WAL chain");
    let seconds = Duration::from_secs(cfg.seconds.max(1));
    let mut rows = Vec::new();
    for &concurrency in &cfg.concurrency {
        let mut summaries = Vec::new();
        for plan in ["default", "sync"] {
            operator(
                &http,
                port,
                reqwest::Method::PATCH,
                &format!("/v1/tenants/{SLUG}"),
                json!({ "plan": plan }),
            )
            .await?;
            eprintln!("{concurrency} writers, plan {plan}");
            // A short warm-up at the new mode, then the measurement.
            write_load(&http, &base, concurrency, Duration::from_millis(300)).await;
            summaries.push(
                write_load(&http, &base, concurrency, seconds)
                    .await
                    .summary(),
            );
        }
        let synchronous = summaries.pop().context("no sync run")?;
        let asynchronous = summaries.pop().context("no async run")?;
        rows.push(ShippingRow {
            concurrency,
            asynchronous,
            synchronous,
        });
    }
    Ok(rows)
}

/// The report as lines for the terminal.
pub fn format(report: &ShippingReport) -> Vec<String> {
    let mut lines = vec![format!(
        "creates, WAL shipped to {} (async interval {}):",
        report.target, report.interval
    )];
    lines.push("writers  mode   creates/s    p50 ms    p99 ms  errors".to_string());
    for row in &report.rows {
        for (mode, s) in [("async", &row.asynchronous), ("sync", &row.synchronous)] {
            lines.push(format!(
                "{:>7}  {mode:<5} {:>10.0} {:>9.2} {:>9.2} {:>7}",
                row.concurrency, s.throughput, s.p50_ms, s.p99_ms, s.errors
            ));
        }
    }
    lines
}
