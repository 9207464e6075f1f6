//! The Warren-only `tenants` scenario: provision N tenants through the operator API, touch each
//! once, then reopen tenants the LRU cap has closed; report latencies, RSS and open fds.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::load::{self, Bounds, Summary};
use crate::server::{self, WarrenOptions, create_tenant, open_fds, rss_kib};
use crate::target::{Superuser, Target, client, client_with_pool, drain};

/// Settings of one tenants run.
#[derive(Debug, Clone)]
pub struct TenantsConfig {
    /// Tenants to provision.
    pub tenants: usize,
    /// Concurrent clients while provisioning and touching.
    pub concurrency: usize,
    /// `--max-open-tenants` given to Warren, so most tenants are closed when touched.
    pub max_open_tenants: usize,
    /// Length of the health run against one tenant afterwards (0 skips it).
    pub health_duration: Duration,
    /// Use every tenant once (a records list, which opens its database) before the
    /// first-request pass.
    pub used: bool,
}

/// Everything the scenario measured.
#[derive(Debug, Serialize)]
pub struct TenantsReport {
    pub tenants: usize,
    pub max_open_tenants: usize,
    /// `POST /v1/tenants` latencies.
    pub provision: Summary,
    /// With `used`: `GET /api/collections/users/records?perPage=1` on each tenant after
    /// provisioning, which opens its database (new connection each).
    pub use_pass: Option<Summary>,
    /// First `GET /api/health` on each tenant after provisioning (or after the use pass,
    /// once the LRU cap has closed it again; new connection each).
    pub first_request: Summary,
    /// `GET /api/health` on tenants that the LRU cap closed since their first request.
    pub reopen_closed: Summary,
    /// Warren's RSS after provisioning, before any tenant was touched.
    pub rss_kib_after_provision: Option<u64>,
    /// Warren's RSS with all tenants created and idle, after the touch passes.
    pub rss_kib_idle: Option<u64>,
    /// Open fds of Warren with all tenants created and idle.
    pub open_fds_idle: Option<usize>,
    /// A short health run against one tenant.
    pub health: Option<Summary>,
}

fn slug(i: u64) -> String {
    format!("t{i:06}")
}

/// Starts Warren, runs the scenario, stops Warren.
pub async fn run(warren: &Path, cfg: &TenantsConfig) -> anyhow::Result<TenantsReport> {
    let opts = WarrenOptions {
        max_open_tenants: Some(cfg.max_open_tenants),
        ..WarrenOptions::default()
    };
    let server = server::start_warren(warren, &opts).await?;
    let result = measure(&server, cfg).await;
    server.stop().await;
    result
}

async fn measure(server: &server::Server, cfg: &TenantsConfig) -> anyhow::Result<TenantsReport> {
    let port = server.port;
    let pid = server.pid;
    let http = client()?;
    let n = cfg.tenants as u64;
    let long = Duration::from_secs(24 * 3600);

    let h = http.clone();
    let provision = load::run(
        Bounds {
            concurrency: cfg.concurrency,
            duration: long,
            max_ops: n,
        },
        "tenants/s",
        move |_, i| {
            let h = h.clone();
            async move { create_tenant(&h, port, &slug(i)).await }
        },
    )
    .await;
    let rss_kib_after_provision = rss_kib(pid);

    // One connection per request: each tenant is its own host, and pooled idle connections to
    // 10,000 hosts would stay open on the server.
    let touch_http = client_with_pool(0)?;
    let touch_path = |count: u64, first: u64, path: &'static str| {
        let h = touch_http.clone();
        load::run(
            Bounds {
                concurrency: cfg.concurrency,
                duration: long,
                max_ops: count,
            },
            "req/s",
            move |_, i| {
                let h = h.clone();
                async move {
                    let url = format!("http://{}.localhost:{port}{path}", slug(first + i));
                    drain(h.get(url).send().await?).await
                }
            },
        )
    };
    let touch = |count: u64, first: u64| touch_path(count, first, "/api/health");
    let use_pass = match cfg.used {
        true => {
            let path = "/api/collections/users/records?perPage=1";
            Some(touch_path(n, 0, path).await.summary())
        }
        false => None,
    };
    let first_request = touch(n, 0).await;
    // The LRU cap holds at most `max_open_tenants` open: the first tenants touched are closed
    // again by now. Reopen up to 1,000 of them (never ones that may still be open).
    let closed = n.saturating_sub(2 * cfg.max_open_tenants as u64).min(1000);
    let reopen_closed = touch(closed, 0).await;

    drop(touch_http);
    drop(http);
    let open_fds_idle = settled_fds(pid).await;
    let rss_kib_idle = rss_kib(pid);

    let health = if cfg.health_duration.is_zero() || n == 0 {
        None
    } else {
        let base = format!("http://{}.localhost:{port}", slug(0));
        let target = Target::new(&base, Some(pid), Superuser::default())?;
        let bounds = Bounds {
            concurrency: cfg.concurrency,
            duration: cfg.health_duration,
            max_ops: u64::MAX,
        };
        let target = Arc::new(target);
        let stats = load::run(bounds, "req/s", move |_, _| {
            let t = Arc::clone(&target);
            async move { drain(t.client.get(t.url("/api/health")).send().await?).await }
        })
        .await;
        Some(stats.summary())
    };

    Ok(TenantsReport {
        tenants: cfg.tenants,
        max_open_tenants: cfg.max_open_tenants,
        provision: provision.summary(),
        use_pass,
        first_request: first_request.summary(),
        reopen_closed: reopen_closed.summary(),
        rss_kib_after_provision,
        rss_kib_idle,
        open_fds_idle,
        health,
    })
}

/// The server's open fds once they stop changing: closed tenants' databases close, and the
/// request logs they left in the backlog are written, for some seconds after the last request
/// (checked every 500 ms; settled after four looks within 2% of each other, or at 30 s).
async fn settled_fds(pid: u32) -> Option<usize> {
    let mut last = open_fds(pid);
    let mut steady = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = open_fds(pid);
        match (now, last) {
            (Some(n), Some(l)) if n.abs_diff(l) * 50 > l.max(1) => steady = 0,
            _ => steady += 1,
        }
        last = now;
        if steady >= 4 {
            break;
        }
    }
    last
}

/// One summary as a report line: `label`, count, throughput, p50/p99/max, errors.
pub(crate) fn summary_line(label: &str, s: &Summary) -> String {
    let mut text = format!(
        "{label:<28} n={} {:.0} {} p50 {:.2} ms p99 {:.2} ms max {:.2} ms err {}",
        s.ok, s.throughput, s.unit, s.p50_ms, s.p99_ms, s.max_ms, s.errors
    );
    if let Some(first) = &s.first_error {
        text.push_str(&format!(" (first error: {first})"));
    }
    text
}

/// Human-readable report lines.
pub fn format(report: &TenantsReport) -> Vec<String> {
    let mib = |k: Option<u64>| {
        k.map_or("n/a".to_string(), |k| {
            format!("{:.1} MiB", k as f64 / 1024.0)
        })
    };
    let mut lines = vec![
        format!(
            "tenants: {} provisioned (warren --max-open-tenants {})",
            report.tenants, report.max_open_tenants
        ),
        summary_line("provision (POST /v1/tenants)", &report.provision),
    ];
    if let Some(use_pass) = &report.use_pass {
        lines.push(summary_line("use (list, closed)", use_pass));
    }
    let label = match report.use_pass {
        Some(_) => "first request after use",
        None => "first request (closed)",
    };
    lines.extend([
        summary_line(label, &report.first_request),
        summary_line("reopen (LRU-closed)", &report.reopen_closed),
        format!(
            "{:<28} after provisioning {}, all {} idle {}",
            "server RSS",
            mib(report.rss_kib_after_provision),
            report.tenants,
            mib(report.rss_kib_idle)
        ),
        format!(
            "{:<28} {}",
            "open fds (idle)",
            report.open_fds_idle.map_or("n/a".into(), |n| n.to_string())
        ),
    ]);
    if let Some(health) = &report.health {
        lines.push(summary_line("health (one tenant)", health));
    }
    lines
}
