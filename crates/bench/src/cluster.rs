//! The Warren-only `cluster` scenario: three `warren serve` nodes over one etcd member on
//! loopback with a shared directory backup target; the extra latency of a request forwarded by a
//! node that does not own the tenant, the time of planned moves under a polling reader, many
//! small tenants moved from one node to another (per-tenant unavailability), and the time from
//! a kill -9 of the owner to the first answer with the data through a survivor.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::backup::notes_tenant;
use crate::load::{self, Bounds, OpError, Stats, Summary};
use crate::server::{self, OPERATOR_TOKEN, Server, WarrenOptions, free_port};
use crate::target::{client, drain};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The etcd binary.
    pub etcd: PathBuf,
    /// Concurrent clients of the second forwarding measurement (the first has one).
    pub concurrency: usize,
    /// Seconds per forwarding measurement.
    pub seconds: u64,
    /// Rounds of forwarding measurements (direct and forwarded alternate within each; 0: none).
    pub rounds: usize,
    /// Planned moves of the tenant.
    pub moves: usize,
    /// Small tenants moved from the first node to the second, [`BULK_AT_ONCE`] at a time (0:
    /// none).
    pub tenants: usize,
    /// Whether to end with the owner's kill -9 and time the failover.
    pub failover: bool,
    /// The nodes' lease TTL in seconds (`--cluster-lease-ttl`).
    pub lease_ttl: u64,
}

/// Direct and forwarded figures of one request at one concurrency.
#[derive(Debug, Serialize)]
pub struct ForwardRow {
    pub request: &'static str,
    pub concurrency: usize,
    pub direct: Summary,
    pub forwarded: Summary,
    pub extra_p50_ms: f64,
    pub extra_p99_ms: f64,
}

/// One planned move.
#[derive(Debug, Serialize)]
pub struct MoveRow {
    pub to: String,
    /// The operator call (`POST /v1/tenants/{slug}/move`).
    pub call_ms: f64,
    /// From the call to the first answer of the new owner on the tenant's health route.
    pub served_ms: f64,
    /// The reader's longest time between two successful answers around the move.
    pub reader_gap_ms: f64,
    /// The reader's refused answers (503) during the move.
    pub reader_refused: u64,
}

/// Many small tenants moved from one node to another.
#[derive(Debug, Serialize)]
pub struct BulkRow {
    pub tenants: usize,
    pub from: String,
    pub to: String,
    pub at_once: usize,
    /// Creating the tenants and waiting for each one's first snapshot in the backup target.
    pub setup_s: f64,
    /// From the first move call to the last tenant served by the target.
    pub total_s: f64,
    /// Per tenant: from its move call to the target's first answer on its health route (an
    /// upper bound of the time it answered nothing but 503); a refused move, or a tenant the
    /// target did not serve within 30 s, is an error.
    pub unavailable: Summary,
}

/// Moves of the bulk measurement running at once (as the rebalancer runs them).
pub const BULK_AT_ONCE: usize = 4;

/// The failover after the owner's kill -9.
#[derive(Debug, Serialize)]
pub struct FailoverRow {
    pub killed: String,
    pub served_by: String,
    pub ms: f64,
}

/// Everything measured.
#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub etcd_members: usize,
    pub lease_ttl_s: u64,
    pub forwarding: Vec<ForwardRow>,
    pub moves: Vec<MoveRow>,
    pub move_call: Summary,
    pub move_served: Summary,
    pub move_gap: Summary,
    pub bulk: Option<BulkRow>,
    pub failover: Option<FailoverRow>,
}

const SLUG: &str = "clustered";
const CLUSTER_NAME: &str = "bench";

/// One etcd member on loopback ports in a temporary directory, killed when dropped.
struct Etcd {
    _child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start_etcd(bin: &Path) -> anyhow::Result<Etcd> {
    if !bin.is_file() {
        bail!(
            "etcd not found at {} (install etcd-server or pass --etcd PATH)",
            bin.display()
        );
    }
    let dir = tempfile::Builder::new().prefix("bench-etcd-").tempdir()?;
    let (client_port, peer_port) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(dir.path().join("etcd.log"))?;
    let child = Command::new(bin)
        .args(["--name", "m0", "--data-dir"])
        .arg(dir.path().join("m0"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("m0={peer}")])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let etcd = Etcd {
        _child: child,
        url,
        _dir: dir,
    };
    let http = reqwest::Client::builder().no_proxy().build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{}/health", etcd.url)).send().await
            && r.status().is_success()
        {
            return Ok(etcd);
        }
        if Instant::now() >= deadline {
            bail!("etcd not healthy at {} after 30 s", etcd.url);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts node `id` of the cluster.
async fn start_node(
    warren: &Path,
    id: &str,
    etcd: &Etcd,
    backup: &Path,
    lease_ttl: u64,
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let flags = vec![
        format!("--cluster-etcd={}", etcd.url),
        format!("--node-id={id}"),
        format!("--advertise=127.0.0.1:{port}"),
        format!("--cluster-name={CLUSTER_NAME}"),
        format!("--cluster-lease-ttl={lease_ttl}"),
        format!("--backup-url=file://{}", backup.display()),
        "--backup-wal-every=1s".to_string(),
        // Tenants are provisioned on the leader (n1) and move only when the benchmark moves them.
        "--cluster-rebalance=false".to_string(),
        "--cluster-place-new=false".to_string(),
    ];
    server::start_warren_on(warren, port, &WarrenOptions::default(), &flags)
        .await
        .with_context(|| format!("starting node {id}"))
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
async fn until(
    limit: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() >= deadline {
            bail!("{what}: not within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The status of a GET, `None` on a transport error.
async fn status_of(http: &reqwest::Client, url: &str) -> Option<u16> {
    let resp = http.get(url).send().await.ok()?;
    let status = resp.status().as_u16();
    resp.bytes().await.ok()?;
    Some(status)
}

/// Starts etcd and the three nodes, measures, stops them.
pub async fn run(warren: &Path, cfg: &ClusterConfig) -> anyhow::Result<ClusterReport> {
    let etcd = start_etcd(&cfg.etcd).await?;
    let backup = tempfile::Builder::new()
        .prefix("bench-cluster-")
        .tempdir()?;
    let http = client()?;
    // n1 first, leading the control plane (and so provisioning the tenant) before the others.
    let n1 = start_node(warren, "n1", &etcd, backup.path(), cfg.lease_ttl).await?;
    let tenants = format!("http://localhost:{}/v1/tenants", n1.port);
    until(Duration::from_secs(30), "n1 leads", async || {
        http.get(&tenants)
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await?;
    let n2 = start_node(warren, "n2", &etcd, backup.path(), cfg.lease_ttl).await?;
    let n3 = start_node(warren, "n3", &etcd, backup.path(), cfg.lease_ttl).await?;
    let mut nodes = vec![("n1", n1), ("n2", n2), ("n3", n3)];
    let result = measure(warren, &http, &mut nodes, cfg).await;
    for (_, node) in nodes {
        node.stop().await;
    }
    drop(etcd);
    result
}

fn tenant_url(node: &Server, path: &str) -> String {
    format!("http://{SLUG}.localhost:{}{path}", node.port)
}

async fn measure(
    warren: &Path,
    http: &reqwest::Client,
    nodes: &mut Vec<(&'static str, Server)>,
    cfg: &ClusterConfig,
) -> anyhow::Result<ClusterReport> {
    let (_, base) = notes_tenant(warren, &nodes[0].1, SLUG).await?;
    let created = crate::target::json_ok(
        http.post(format!("{base}/api/collections/notes/records"))
            .json(&json!({ "title": "forwarded", "body": "x".repeat(200) }))
            .send()
            .await?,
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating the record: {e}"))?;
    let record = created["id"].as_str().context("no record id")?.to_string();
    // The snapshot starting the tenant's WAL chain, which a move or a failover restores from.
    let backups = format!(
        "http://localhost:{}/v1/tenants/{SLUG}/backups",
        nodes[0].1.port
    );
    until(Duration::from_secs(60), "the first snapshot", async || {
        let Ok(r) = http.get(&backups).bearer_auth(OPERATOR_TOKEN).send().await else {
            return false;
        };
        r.json::<serde_json::Value>()
            .await
            .is_ok_and(|b| b["items"].as_array().is_some_and(|i| !i.is_empty()))
    })
    .await?;
    for (_, node) in nodes.iter() {
        let url = tenant_url(node, "/api/health");
        until(
            Duration::from_secs(30),
            "every node serves the tenant",
            async || status_of(http, &url).await == Some(200),
        )
        .await?;
    }

    // 1. Forwarding: n1 owns the tenant, n2 forwards to it.
    let view = format!("/api/collections/notes/records/{record}");
    let mut forwarding = Vec::new();
    let measured = if cfg.rounds == 0 {
        Vec::new()
    } else {
        vec![("health", "/api/health"), ("view", view.as_str())]
    };
    for (request, path) in measured {
        let mut levels = vec![1, cfg.concurrency.max(1)];
        levels.dedup();
        for concurrency in levels {
            let mut direct = Stats::new("req/s");
            let mut forwarded = Stats::new("req/s");
            for round in 0..cfg.rounds {
                eprintln!(
                    "forwarding: {request}, {concurrency} clients, round {}",
                    round + 1
                );
                for (stats, node) in [(&mut direct, &nodes[0].1), (&mut forwarded, &nodes[1].1)] {
                    let url = tenant_url(node, path);
                    get_load(http, &url, concurrency, Duration::from_millis(300)).await;
                    let measured = get_load(
                        http,
                        &url,
                        concurrency,
                        Duration::from_secs(cfg.seconds.max(1)),
                    )
                    .await;
                    stats.merge(&measured);
                }
            }
            let (direct, forwarded) = (direct.summary(), forwarded.summary());
            forwarding.push(ForwardRow {
                request,
                concurrency,
                extra_p50_ms: forwarded.p50_ms - direct.p50_ms,
                extra_p99_ms: forwarded.p99_ms - direct.p99_ms,
                direct,
                forwarded,
            });
        }
    }

    // 2. Planned moves between n1 and n2, a reader polling through n3 all along.
    let mut moves = Vec::new();
    let mut call = Stats::new("moves/s");
    let mut served = Stats::new("moves/s");
    let mut gaps = Stats::new("moves/s");
    let reader_url = tenant_url(&nodes[2].1, &view);
    for k in 0..cfg.moves {
        let (to, target) = if k % 2 == 0 {
            ("n2", &nodes[1].1)
        } else {
            ("n1", &nodes[0].1)
        };
        eprintln!("move {} of {}: to {to}", k + 1, cfg.moves);
        let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let reader = tokio::spawn(read_until(
            http.clone(),
            reader_url.clone(),
            reading.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let moved = one_move(http, nodes[2].1.port, to, target, &reader_url).await;
        reading.store(false, std::sync::atomic::Ordering::Relaxed);
        let (gap, refused) = reader.await.context("the reader")?;
        let (answered, up) = moved.with_context(|| format!("move {} to {to}", k + 1))?;
        call.record(answered);
        served.record(up);
        gaps.record(gap);
        moves.push(MoveRow {
            to: to.to_string(),
            call_ms: answered.as_secs_f64() * 1000.0,
            served_ms: up.as_secs_f64() * 1000.0,
            reader_gap_ms: gap.as_secs_f64() * 1000.0,
            reader_refused: refused,
        });
    }
    let owner = if cfg.moves % 2 == 1 { 1 } else { 0 };

    // 3. Many small tenants, provisioned on n1 (the leader), moved to n2.
    let bulk = if cfg.tenants > 0 {
        Some(bulk_moves(http, nodes, cfg.tenants).await?)
    } else {
        None
    };

    // 4. Failover: the owner is killed, the survivors are asked for the record.
    let failover = if cfg.failover {
        eprintln!("failover: kill -9 of {}", nodes[owner].0);
        let (killed, node) = nodes.remove(owner);
        node.stop().await;
        let begun = Instant::now();
        let urls: Vec<(&str, String)> = nodes
            .iter()
            .map(|(id, node)| (*id, tenant_url(node, &view)))
            .collect();
        let deadline = begun + Duration::from_secs(60);
        let mut served_by = None;
        'wait: while Instant::now() < deadline {
            for (id, url) in &urls {
                if status_of(http, url).await == Some(200) {
                    served_by = Some(*id);
                    break 'wait;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = begun.elapsed();
        let served_by = served_by.context("no survivor served the tenant within 60 s")?;
        Some(FailoverRow {
            killed: killed.to_string(),
            served_by: served_by.to_string(),
            ms: took.as_secs_f64() * 1000.0,
        })
    } else {
        None
    };

    Ok(ClusterReport {
        etcd_members: 1,
        lease_ttl_s: cfg.lease_ttl,
        forwarding,
        moves,
        move_call: call.summary(),
        move_served: served.summary(),
        move_gap: gaps.summary(),
        bulk,
        failover,
    })
}

/// Creates `count` small tenants on n1 (each opened once, so it ships its first snapshot),
/// then moves them all to n2 through the operator API on n3, [`BULK_AT_ONCE`] at a time, each
/// timed from its call to n2's first answer for it.
async fn bulk_moves(
    http: &reqwest::Client,
    nodes: &[(&'static str, Server)],
    count: usize,
) -> anyhow::Result<BulkRow> {
    use futures_util::StreamExt;
    let (n1, n2, n3) = (&nodes[0].1, &nodes[1].1, &nodes[2].1);
    let begun = Instant::now();
    let slugs: Vec<String> = (0..count).map(|i| format!("bulk{i:05}")).collect();
    eprintln!("bulk: creating {count} tenants");
    let created: Vec<anyhow::Result<()>> = futures_util::stream::iter(&slugs)
        .map(|slug| async move {
            let resp = http
                .post(format!("http://localhost:{}/v1/tenants", n1.port))
                .bearer_auth(OPERATOR_TOKEN)
                .json(&json!({ "slug": slug }))
                .send()
                .await?;
            anyhow::ensure!(
                resp.status().as_u16() == 201,
                "creating {slug}: {}",
                resp.status()
            );
            let health = format!("http://{slug}.localhost:{}/api/health", n1.port);
            until(
                Duration::from_secs(30),
                "the new tenant answers",
                async || status_of(http, &health).await == Some(200),
            )
            .await
        })
        .buffer_unordered(4)
        .collect()
        .await;
    created.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    eprintln!("bulk: waiting for {count} first snapshots");
    let mut pending: Vec<&String> = slugs.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(60 + count as u64 / 10);
    while !pending.is_empty() {
        if Instant::now() >= deadline {
            bail!(
                "{} tenants have no snapshot in the backup target",
                pending.len()
            );
        }
        let mut left = Vec::new();
        for slug in pending {
            let url = format!("http://localhost:{}/v1/tenants/{slug}/backups", n1.port);
            let shipped = match http.get(&url).bearer_auth(OPERATOR_TOKEN).send().await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|b| b["items"].as_array().is_some_and(|i| !i.is_empty())),
                Err(_) => false,
            };
            if !shipped {
                left.push(slug);
            }
        }
        pending = left;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let setup = begun.elapsed();

    eprintln!("bulk: moving {count} tenants n1 -> n2, {BULK_AT_ONCE} at a time");
    let moving = Instant::now();
    let timed: Vec<anyhow::Result<Duration>> = futures_util::stream::iter(&slugs)
        .map(|slug| async move {
            let start = Instant::now();
            let resp = http
                .post(format!(
                    "http://localhost:{}/v1/tenants/{slug}/move",
                    n3.port
                ))
                .bearer_auth(OPERATOR_TOKEN)
                .json(&json!({ "node": "n2" }))
                .send()
                .await?;
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            anyhow::ensure!(status.as_u16() == 200, "moving {slug}: {status} {body}");
            let health = format!("http://{slug}.localhost:{}/api/health", n2.port);
            until(
                Duration::from_secs(30),
                "n2 serves the moved tenant",
                async || status_of(http, &health).await == Some(200),
            )
            .await?;
            Ok(start.elapsed())
        })
        .buffer_unordered(BULK_AT_ONCE)
        .collect()
        .await;
    let total = moving.elapsed();
    let mut unavailable = Stats::new("moves/s");
    for t in timed {
        match t {
            Ok(took) => unavailable.record(took),
            Err(e) => unavailable.record_error(&OpError::other(format!("{e:#}"))),
        }
    }
    unavailable.elapsed = total;
    Ok(BulkRow {
        tenants: count,
        from: "n1".to_string(),
        to: "n2".to_string(),
        at_once: BULK_AT_ONCE,
        setup_s: setup.as_secs_f64(),
        total_s: total.as_secs_f64(),
        unavailable: unavailable.summary(),
    })
}

/// Moves the tenant to node `to` (`target`) through the operator API on `mover_port`, waits
/// until the target serves it, then until `reader_url` answers again; returns the time of the
/// operator call and the time until the target served.
async fn one_move(
    http: &reqwest::Client,
    mover_port: u16,
    to: &str,
    target: &Server,
    reader_url: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let begun = Instant::now();
    let asked = http
        .post(format!(
            "http://localhost:{mover_port}/v1/tenants/{SLUG}/move"
        ))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({ "node": to }))
        .send()
        .await;
    let answered = begun.elapsed();
    match asked {
        Ok(resp) => drain(resp).await,
        Err(e) => Err(OpError::from(e)),
    }
    .map_err(|e| anyhow::anyhow!("the operator call: {e}"))?;
    let health = tenant_url(target, "/api/health");
    until(
        Duration::from_secs(30),
        "the new owner serves",
        async || status_of(http, &health).await == Some(200),
    )
    .await?;
    let up = begun.elapsed();
    // The reader goes on a little, so its gap closes after the move.
    let settle = Instant::now() + Duration::from_secs(5);
    tokio::time::sleep(Duration::from_millis(200)).await;
    while Instant::now() < settle && status_of(http, reader_url).await != Some(200) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok((answered, up))
}

/// GETs of `url` from `concurrency` clients sharing one keep-alive pool, for `duration`.
async fn get_load(
    http: &reqwest::Client,
    url: &str,
    concurrency: usize,
    duration: Duration,
) -> Stats {
    let (http, url) = (http.clone(), url.to_string());
    load::run(
        Bounds {
            concurrency,
            duration,
            max_ops: u64::MAX,
        },
        "req/s",
        move |_, _| {
            let (http, url) = (http.clone(), url.clone());
            async move { drain(http.get(&url).send().await?).await }
        },
    )
    .await
}

/// GETs `url` every 2 ms until `reading` turns false; returns the longest time between two
/// successful answers and the count of the others.
async fn read_until(
    http: reqwest::Client,
    url: String,
    reading: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (Duration, u64) {
    let mut last_ok = Instant::now();
    let mut longest = Duration::ZERO;
    let mut refused = 0;
    while reading.load(std::sync::atomic::Ordering::Relaxed) {
        if status_of(&http, &url).await == Some(200) {
            longest = longest.max(last_ok.elapsed());
            last_ok = Instant::now();
        } else {
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (longest, refused)
}

/// The report as lines for the terminal.
pub fn format(report: &ClusterReport) -> Vec<String> {
    let mut lines = vec![format!(
        "three nodes on loopback, {} etcd member (enough for a benchmark; production runs three), \
         lease TTL {} s, shared directory backup target",
        report.etcd_members, report.lease_ttl_s
    )];
    if !report.forwarding.is_empty() {
        lines.push("request  clients  route        req/s    p50 ms    p99 ms  errors".to_string());
    }
    for row in &report.forwarding {
        for (route, s) in [("direct", &row.direct), ("forwarded", &row.forwarded)] {
            lines.push(format!(
                "{:<7} {:>8}  {route:<9} {:>8.0} {:>9.3} {:>9.3} {:>7}",
                row.request, row.concurrency, s.throughput, s.p50_ms, s.p99_ms, s.errors
            ));
        }
        lines.push(format!(
            "{:<7} {:>8}  forwarding adds p50 {:+.3} ms, p99 {:+.3} ms",
            row.request, row.concurrency, row.extra_p50_ms, row.extra_p99_ms
        ));
    }
    if !report.moves.is_empty() {
        lines.push(format!(
            "{} moves (reader through the third node):        p50 ms    p99 ms    max ms",
            report.moves.len()
        ));
        for (what, s) in [
            ("operator call", &report.move_call),
            ("until the new owner serves", &report.move_served),
            ("reader's longest gap", &report.move_gap),
        ] {
            lines.push(format!(
                "  {what:<44} {:>9.1} {:>9.1} {:>9.1}",
                s.p50_ms, s.p99_ms, s.max_ms
            ));
        }
        let refused: u64 = report.moves.iter().map(|m| m.reader_refused).sum();
        lines.push(format!(
            "  reader's refused answers (503) over all moves: {refused}"
        ));
    }
    if let Some(b) = &report.bulk {
        lines.push(format!(
            "{} small tenants moved {} -> {}, {} at a time: {:.1} s in all ({:.1} moves/s; set up in {:.1} s)",
            b.tenants,
            b.from,
            b.to,
            b.at_once,
            b.total_s,
            b.tenants as f64 / b.total_s.max(0.001),
            b.setup_s
        ));
        lines.push(format!(
            "  per-tenant unavailability (move call to the new owner's first answer): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            b.unavailable.p50_ms, b.unavailable.p99_ms, b.unavailable.max_ms
        ));
        lines.push(format!(
            "  moved {}, failed {}{}",
            b.unavailable.ok,
            b.unavailable.errors,
            b.unavailable
                .first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ));
    }
    if let Some(f) = &report.failover {
        lines.push(format!(
            "failover: kill -9 of {} to the first answer with the record through {}: {:.0} ms",
            f.killed, f.served_by, f.ms
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p50_ms: f64, p99_ms: f64) -> Summary {
        let mut stats = Stats::new("req/s");
        stats.record(Duration::from_secs_f64(p50_ms / 1000.0));
        stats.elapsed = Duration::from_secs(1);
        let mut s = stats.summary();
        s.p99_ms = p99_ms;
        s
    }

    #[test]
    fn the_report_prints_forwarding_extra_moves_and_failover() {
        let report = ClusterReport {
            etcd_members: 1,
            lease_ttl_s: 2,
            forwarding: vec![ForwardRow {
                request: "health",
                concurrency: 1,
                direct: summary(0.1, 0.2),
                forwarded: summary(0.25, 0.4),
                extra_p50_ms: 0.15,
                extra_p99_ms: 0.2,
            }],
            moves: vec![MoveRow {
                to: "n2".into(),
                call_ms: 9.0,
                served_ms: 30.0,
                reader_gap_ms: 25.0,
                reader_refused: 7,
            }],
            move_call: summary(9.0, 9.0),
            move_served: summary(30.0, 30.0),
            move_gap: summary(25.0, 25.0),
            bulk: Some(BulkRow {
                tenants: 1000,
                from: "n1".into(),
                to: "n2".into(),
                at_once: 4,
                setup_s: 40.0,
                total_s: 50.0,
                unavailable: summary(180.0, 600.0),
            }),
            failover: Some(FailoverRow {
                killed: "n1".into(),
                served_by: "n3".into(),
                ms: 2100.0,
            }),
        };
        let text = format(&report).join("\n");
        assert!(text.contains("1 etcd member"), "{text}");
        assert!(
            text.contains("forwarding adds p50 +0.150 ms, p99 +0.200 ms"),
            "{text}"
        );
        assert!(text.contains("1 moves"), "{text}");
        assert!(text.contains("over all moves: 7"), "{text}");
        assert!(
            text.contains("1000 small tenants moved n1 -> n2, 4 at a time"),
            "{text}"
        );
        assert!(text.contains("50.0 s in all (20.0 moves/s"), "{text}");
        assert!(text.contains("p99 600.0 ms"), "{text}");
        assert!(text.contains("moved 1, failed 0"), "{text}");
        assert!(
            text.contains("kill -9 of n1 to the first answer with the record through n3: 2100 ms"),
            "{text}"
        );
    }
}
