//! The Warren-only `churn` scenario: `GET /api/health` spread in rotation over many tenants with
//! Warren's default cap on open tenants, against the same requests over a set that fits under
//! the cap; reports both throughputs and their ratio. Every tenant is opened once before either
//! phase (that first pass is reported too), so the churn phase measures what a platform's
//! traffic does in its steady state: reopening tenants the cap closed, not first opens after
//! provisioning. After each phase the scenario waits until the server is quiet and counts
//! that time in: a phase's ratio is of sustained rates (requests over the phase and the work it
//! left, such as the request logs of the tenants it closed). The same two phases run again with a request that reads the tenant's data (a
//! guest's list of `users`, which its rule leaves empty): health needs only what a tenant's
//! last close left, a list opens a read connection and runs a query.

use std::time::Duration;

use serde::Serialize;

use crate::load::{self, Bounds, Summary};
use crate::server::{self, WarrenOptions, cpu_seconds, create_tenant, rss_kib};
use crate::target::{client, drain};
use crate::tenants::summary_line;

/// Settings of one churn run.
#[derive(Debug, Clone)]
pub struct ChurnConfig {
    /// Tenants the requests rotate over in the churn phase (more than the cap).
    pub tenants: usize,
    /// Tenants the requests rotate over in the reference phase (all fit under the cap).
    pub fitting: usize,
    /// `--max-open-tenants` given to Warren (`None`: Warren's default).
    pub max_open_tenants: Option<usize>,
    /// Concurrent clients (each on its own keep-alive connection).
    pub concurrency: usize,
    /// Length of each measured phase.
    pub duration: Duration,
}

/// Everything the scenario measured.
#[derive(Debug, Serialize)]
pub struct ChurnReport {
    pub tenants: usize,
    pub fitting: usize,
    pub max_open_tenants: Option<usize>,
    /// One health request to each of the `tenants` tenants, right after provisioning: every
    /// request is a tenant's first open.
    pub first_open: Summary,
    /// Health requests rotating over `fitting` tenants, all open after a first pass.
    pub fitting_health: Phase,
    /// Health requests rotating over `tenants` tenants: most requests open a closed tenant
    /// and close another.
    pub churn_health: Phase,
    /// `churn_health` sustained throughput over `fitting_health`'s.
    pub ratio: f64,
    /// A guest's list of `users` rotating over `fitting` tenants, all open.
    pub fitting_list: Phase,
    /// The same list rotating over `tenants` tenants.
    pub churn_list: Phase,
    /// `churn_list` sustained throughput over `fitting_list`'s.
    pub list_ratio: f64,
    /// Warren's RSS at the end of the churn phase.
    pub rss_kib: Option<u64>,
}

fn slug(i: u64) -> String {
    format!("c{i:06}")
}

/// Starts Warren, runs the scenario, stops Warren.
pub async fn run(warren: &std::path::Path, cfg: &ChurnConfig) -> anyhow::Result<ChurnReport> {
    let opts = WarrenOptions {
        max_open_tenants: cfg.max_open_tenants,
        ..WarrenOptions::default()
    };
    let server = server::start_warren(warren, &opts).await?;
    let result = measure(&server, cfg).await;
    server.stop().await;
    result
}

async fn measure(server: &server::Server, cfg: &ChurnConfig) -> anyhow::Result<ChurnReport> {
    let port = server.port;
    let http = client()?;
    let n = cfg.tenants.max(cfg.fitting) as u64;
    let h = http.clone();
    let provisioned = load::run(
        Bounds {
            concurrency: cfg.concurrency,
            duration: Duration::from_secs(24 * 3600),
            max_ops: n,
        },
        "tenants/s",
        move |_, i| {
            let h = h.clone();
            async move { create_tenant(&h, port, &slug(i)).await }
        },
    )
    .await;
    if provisioned.errors > 0 {
        anyhow::bail!(
            "provisioning failed: {}",
            provisioned.first_error.unwrap_or_default()
        );
    }

    // Every request goes to 127.0.0.1 and names its tenant in the Host header, so the clients
    // keep one connection each whatever the tenant: what is measured is the server's work.
    let request = |path: &'static str, count: u64, duration: Duration, max_ops: u64| {
        let h = http.clone();
        load::run(
            Bounds {
                concurrency: cfg.concurrency,
                duration,
                max_ops,
            },
            "req/s",
            move |_, i| {
                let h = h.clone();
                async move {
                    let host = format!("{}.localhost:{port}", slug(i % count));
                    let url = format!("http://127.0.0.1:{port}{path}");
                    drain(h.get(url).header("host", host).send().await?).await
                }
            },
        )
    };
    let health = |count, duration, max_ops| request(HEALTH, count, duration, max_ops);
    let all = cfg.tenants.max(1) as u64;
    // Every tenant opened (and most closed again by the cap) once before measuring: the churn
    // phase then measures reopens, not first opens after provisioning.
    let first_open = without_errors(
        health(all, Duration::from_secs(24 * 3600), all).await,
        "the first pass",
    )?
    .summary();
    let fitting = cfg.fitting.max(1) as u64;
    // A pass opens the fitting set, so the reference phase measures open tenants.
    without_errors(
        health(fitting, Duration::from_secs(24 * 3600), fitting).await,
        "warming up",
    )?;
    let pid = server.pid;
    // What those passes left to do (the request logs of the tenants they closed) is done
    // before the first measured phase, not during it.
    settle(pid).await;
    phase("health over the open set");
    let fitting_health = Phase::after(health(fitting, cfg.duration, u64::MAX).await, pid).await;
    phase("health over every tenant");
    let churn_health = Phase::after(health(all, cfg.duration, u64::MAX).await, pid).await;
    let rss_kib = rss_kib(pid);
    without_errors(
        request(LIST, fitting, Duration::from_secs(24 * 3600), fitting).await,
        "warming up for lists",
    )?;
    settle(pid).await;
    phase("lists over the open set");
    let fitting_list = Phase::after(
        without_errors(
            request(LIST, fitting, cfg.duration, u64::MAX).await,
            "the lists over open tenants",
        )?,
        pid,
    )
    .await;
    phase("lists over every tenant");
    let churn_list = Phase::after(
        without_errors(
            request(LIST, all, cfg.duration, u64::MAX).await,
            "the lists over all tenants",
        )?,
        pid,
    )
    .await;
    let ratio = churn_health.sustained / fitting_health.sustained.max(f64::MIN_POSITIVE);
    let list_ratio = churn_list.sustained / fitting_list.sustained.max(f64::MIN_POSITIVE);
    Ok(ChurnReport {
        tenants: cfg.tenants,
        fitting: cfg.fitting,
        max_open_tenants: cfg.max_open_tenants,
        first_open,
        fitting_health,
        churn_health,
        ratio,
        fitting_list,
        churn_list,
        list_ratio,
        rss_kib,
    })
}

/// One measured phase, and the work it left the server once its requests were answered.
#[derive(Debug, Serialize)]
pub struct Phase {
    #[serde(flatten)]
    pub summary: Summary,
    /// Seconds the server stayed busy after the last answer (request-log batches of the
    /// tenants the phase closed, their log databases closing): until its CPU stayed under a
    /// tenth of a core for half a second.
    pub settle_s: f64,
    /// Requests over the phase and its settling: what the server sustains with that work done.
    pub sustained: f64,
}

impl Phase {
    /// The phase measured by `stats`, once server `pid` has settled (the next phase then
    /// starts on a quiet server).
    async fn after(stats: load::Stats, pid: u32) -> Self {
        let summary = stats.summary();
        let settle_s = settle(pid).await.as_secs_f64();
        let sustained = summary.ok as f64 / (summary.seconds + settle_s).max(f64::MIN_POSITIVE);
        Self {
            summary,
            settle_s,
            sustained,
        }
    }
}

/// A quiet window: the server's CPU under `QUIET_CPU` seconds over `QUIET`.
const QUIET: Duration = Duration::from_millis(500);
const QUIET_CPU: f64 = 0.05;
/// Quiet windows in a row that make a server settled: longer than the server waits before
/// doing deferred work (it writes closed tenants' request logs after a second without
/// closes), so a lull before that work is not taken for the end of it.
const QUIET_WINDOWS: u32 = 5;
/// Longest wait for a server to settle.
const SETTLE_MAX: Duration = Duration::from_secs(120);

/// Waits until server `pid` is quiet; returns how long it stayed busy (the quiet windows that
/// ended the wait not counted).
async fn settle(pid: u32) -> Duration {
    let started = std::time::Instant::now();
    let mut last = cpu_seconds(pid);
    let mut busy = Duration::ZERO;
    let mut quiet_run = 0;
    loop {
        tokio::time::sleep(QUIET).await;
        let now = cpu_seconds(pid);
        let quiet = matches!((last, now), (Some(a), Some(b)) if b - a < QUIET_CPU);
        last = now;
        if quiet {
            quiet_run += 1;
        } else {
            quiet_run = 0;
            busy = started.elapsed();
        }
        if quiet_run >= QUIET_WINDOWS || now.is_none() || started.elapsed() >= SETTLE_MAX {
            return busy;
        }
    }
}

/// The request of the health phases.
const HEALTH: &str = "/api/health";
/// The request of the list phases: reads the tenant's data (its rule leaves a guest nothing).
const LIST: &str = "/api/collections/users/records?perPage=1&skipTotal=1";

/// Says on stderr which phase starts (for a profiler attached to the server meanwhile).
fn phase(name: &str) {
    eprintln!("churn: {name}");
}

/// A preparatory pass's stats, or why it failed.
fn without_errors(stats: load::Stats, pass: &str) -> anyhow::Result<load::Stats> {
    if stats.errors > 0 {
        anyhow::bail!("{pass} failed: {}", stats.first_error.unwrap_or_default());
    }
    Ok(stats)
}

/// How long the server stayed busy after a phase, and the rate it sustained.
fn sustained_line(phase: &Phase) -> String {
    format!(
        "{:<28} settled in {:.1} s, {:.0} req/s sustained",
        "", phase.settle_s, phase.sustained
    )
}

/// Human-readable report lines.
pub fn format(report: &ChurnReport) -> Vec<String> {
    let cap = report
        .max_open_tenants
        .map_or("Warren's default".to_string(), |n| n.to_string());
    vec![
        format!("churn: /api/health in rotation, open-tenant cap {cap}"),
        summary_line(
            &format!("first opens of {}", report.tenants),
            &report.first_open,
        ),
        summary_line(
            &format!("over {} tenants", report.fitting),
            &report.fitting_health.summary,
        ),
        sustained_line(&report.fitting_health),
        summary_line(
            &format!("over {} tenants", report.tenants),
            &report.churn_health.summary,
        ),
        sustained_line(&report.churn_health),
        format!(
            "{:<28} {:.1}% ({} tenants against {})",
            "ratio",
            report.ratio * 100.0,
            report.tenants,
            report.fitting
        ),
        summary_line(
            &format!("list, over {} tenants", report.fitting),
            &report.fitting_list.summary,
        ),
        sustained_line(&report.fitting_list),
        summary_line(
            &format!("list, over {} tenants", report.tenants),
            &report.churn_list.summary,
        ),
        sustained_line(&report.churn_list),
        format!(
            "{:<28} {:.1}% ({} tenants against {})",
            "list ratio",
            report.list_ratio * 100.0,
            report.tenants,
            report.fitting
        ),
        format!(
            "{:<28} {}",
            "server RSS",
            report
                .rss_kib
                .map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        ),
    ]
}
