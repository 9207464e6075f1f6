//! The Warren-only `backup` scenario: a tenant of a given size (rows written straight into its
//! database, then records through the API), write throughput and latency without and during a
//! snapshot, snapshot time and upload throughput, and the time to restore it into a new tenant;
//! then continuous WAL shipping: the lag from a commit to the segment holding it being visible
//! in the target under steady writes, and write throughput and p99 with shipping on vs off.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;

use crate::load::{self, Bounds, Stats, Summary};
use crate::server::{self, OPERATOR_TOKEN, WarrenOptions};
use crate::target::{Superuser, client, drain};

/// Settings of one backup run.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// Size of the tenant's database, MiB.
    pub size_mib: u64,
    /// Seconds of the write run without a backup.
    pub write_seconds: u64,
    /// Concurrent writers.
    pub concurrency: usize,
    /// Backup target URL; a fresh local directory when absent. S3 settings come from the
    /// usual `WARREN_BACKUP_S3_*` / `AWS_*` environment, which Warren reads.
    pub backup_url: Option<String>,
    /// Steady write rate (writes/s) while the WAL shipping lag is measured.
    pub wal_rate: u64,
    /// Seconds of each WAL phase (steady writes; full-speed writes with shipping off and on).
    pub wal_seconds: u64,
}

/// Everything the scenario measured.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub size_mib: u64,
    /// Bytes of `data.db` when the snapshot started.
    pub database_bytes: u64,
    pub writes_without_backup: Summary,
    pub writes_during_backup: Summary,
    /// p99 during / p99 without.
    pub p99_ratio: f64,
    /// Write throughput during / without.
    pub throughput_ratio: f64,
    /// Seconds from `POST …/backups` to its answer (copy, compress, upload, manifest).
    pub snapshot_seconds: f64,
    /// Compressed bytes stored.
    pub backup_bytes: u64,
    /// Database MiB backed up per second of snapshot.
    pub snapshot_mib_per_s: f64,
    /// Seconds to restore the backup into a new tenant (download, check, unpack, integrity).
    pub restore_seconds: f64,
    /// Continuous WAL shipping.
    pub wal: Option<WalReport>,
}

/// WAL shipping lag and its cost to writes.
#[derive(Debug, Serialize)]
pub struct WalReport {
    /// Steady writes per second asked for.
    pub rate: u64,
    /// Commits found in the shipped segments of the steady phase.
    pub commits: u64,
    /// Segments shipped in the steady phase.
    pub segments: u64,
    /// Commit → its segment visible in the target, steady writes (ms).
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// The same lag while writes run at full speed (ms).
    pub full_speed_lag_p99_ms: f64,
    /// Full-speed writes with WAL shipping off and on.
    pub writes_shipping_off: Summary,
    pub writes_shipping_on: Summary,
    /// p99 on / off.
    pub p99_ratio: f64,
    /// Throughput on / off.
    pub throughput_ratio: f64,
}

const SLUG: &str = "big";

/// Starts Warren with a backup target, runs the scenario, stops Warren.
pub async fn run(warren: &Path, cfg: &BackupConfig) -> anyhow::Result<BackupReport> {
    let (_local, url) = server::backup_target(cfg.backup_url.as_deref(), "bench-backups-")?;
    let flags = vec![
        format!("--backup-url={url}"),
        "--backup-every=0".to_string(),
        // The snapshot phases measure snapshots alone; shipping is measured next.
        "--backup-wal-every=0".to_string(),
    ];
    let server = server::start_warren_with(warren, &WarrenOptions::default(), &flags).await?;
    let result = measure(warren, &server, cfg).await;
    server.stop().await;
    let mut report = result?;
    report.wal = Some(measure_wal(warren, &url, cfg).await?);
    Ok(report)
}

/// Creates tenant `slug` with a superuser and collection `notes`; returns its base URL.
pub(crate) async fn notes_tenant(
    _warren: &Path,
    server: &server::Server,
    slug: &str,
) -> anyhow::Result<(reqwest::Client, String)> {
    let port = server.port;
    let http = client()?;
    server::create_tenant(&http, port, slug)
        .await
        .map_err(|e| anyhow::anyhow!("creating tenant {slug}: {e}"))?;
    let su = Superuser::default();
    server::put_superuser(&http, port, slug, &su)
        .await
        .map_err(|e| anyhow::anyhow!("setting the superuser of {slug}: {e}"))?;
    let base = format!("http://{slug}.localhost:{port}");
    let auth: serde_json::Value = http
        .post(format!(
            "{base}/api/collections/_superusers/auth-with-password"
        ))
        .json(&json!({ "identity": su.email, "password": su.password }))
        .send()
        .await?
        .json()
        .await?;
    let token = auth["token"]
        .as_str()
        .context("no superuser token")?
        .to_string();
    let made = http
        .post(format!("{base}/api/collections"))
        .header("Authorization", &token)
        .json(&json!({
            "name": "notes", "listRule": "", "viewRule": "", "createRule": "",
            "fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "text"}]
        }))
        .send()
        .await?;
    if !made.status().is_success() {
        bail!("creating the collection: {}", made.text().await?);
    }
    Ok((http, base))
}

/// Full-speed writes to `base` for `duration`.
pub(crate) async fn write_load(
    http: &reqwest::Client,
    base: &str,
    concurrency: usize,
    duration: Duration,
) -> Stats {
    let (http, base) = (http.clone(), base.to_string());
    load::run(
        Bounds {
            concurrency: concurrency.max(1),
            duration,
            max_ops: u64::MAX,
        },
        "writes/s",
        move |_, i| {
            let http = http.clone();
            let url = format!("{base}/api/collections/notes/records");
            async move {
                drain(
                    http.post(url)
                        .json(&json!({ "title": format!("w{i}"), "body": "x".repeat(200) }))
                        .send()
                        .await?,
                )
                .await
            }
        },
    )
    .await
}

/// The backup target as the bench reads it (S3 settings from the same environment Warren
/// reads).
fn bench_target(url: &str) -> anyhow::Result<warren_backup::Target> {
    let env = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
            .unwrap_or_default()
    };
    let settings = warren_backup::S3Settings {
        endpoint: env(&[
            "WARREN_BACKUP_S3_ENDPOINT",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT_URL",
        ]),
        region: env(&[
            "WARREN_BACKUP_S3_REGION",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        ]),
        access_key: env(&["WARREN_BACKUP_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"]),
        secret: env(&["WARREN_BACKUP_S3_SECRET", "AWS_SECRET_ACCESS_KEY"]),
    };
    Ok(warren_backup::Target::from_url(url, &settings)?)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Watches a generation's prefix in the target: for every commit of every new segment, the
/// commit time and when the segment was first seen (both ms since the epoch).
async fn watch_segments(
    target: warren_backup::Target,
    prefix: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(Vec<(i64, i64)>, u64)> {
    let mut seen = std::collections::HashSet::new();
    let mut lags = Vec::new();
    loop {
        let last = *stop.borrow();
        for key in target.list(&prefix).await? {
            if !key.ends_with(".wal.zst") || !seen.insert(key.clone()) {
                continue;
            }
            let visible = now_ms();
            let bytes = target
                .get_bytes(&key, warren_backup::wal::MAX_SEGMENT)
                .await?;
            let segment = warren_backup::wal::Segment::open(&bytes)?;
            lags.extend(segment.commit_times.iter().map(|t| (*t, visible)));
        }
        if last {
            return Ok((lags, seen.len() as u64));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Steady writes with WAL shipping on (lag), then full-speed writes with shipping off and on.
async fn measure_wal(warren: &Path, url: &str, cfg: &BackupConfig) -> anyhow::Result<WalReport> {
    let seconds = Duration::from_secs(cfg.wal_seconds.max(1));
    let flags = |every: &str| {
        vec![
            format!("--backup-url={url}"),
            "--backup-every=0".to_string(),
            format!("--backup-wal-every={every}"),
        ]
    };
    eprintln!("writes with WAL shipping off");
    let off_server =
        server::start_warren_with(warren, &WarrenOptions::default(), &flags("0")).await?;
    let off = async {
        let (http, base) = notes_tenant(warren, &off_server, "walof").await?;
        Ok::<_, anyhow::Error>(write_load(&http, &base, cfg.concurrency, seconds).await)
    }
    .await;
    off_server.stop().await;
    let off = off?.summary();

    let on_server =
        server::start_warren_with(warren, &WarrenOptions::default(), &flags("1s")).await?;
    let on = measure_shipping(warren, &on_server, url, cfg, seconds).await;
    on_server.stop().await;
    let (lags, full_lags, segments, on) = on?;
    let mut sorted: Vec<f64> = lags.clone();
    sorted.sort_by(f64::total_cmp);
    let mut full: Vec<f64> = full_lags;
    full.sort_by(f64::total_cmp);
    Ok(WalReport {
        rate: cfg.wal_rate,
        commits: sorted.len() as u64,
        segments,
        lag_p50_ms: quantile(&sorted, 0.5),
        lag_p99_ms: quantile(&sorted, 0.99),
        lag_max_ms: sorted.last().copied().unwrap_or(0.0),
        full_speed_lag_p99_ms: quantile(&full, 0.99),
        p99_ratio: ratio(on.p99_ms, off.p99_ms),
        throughput_ratio: ratio(on.throughput, off.throughput),
        writes_shipping_off: off,
        writes_shipping_on: on,
    })
}

type Shipped = (Vec<f64>, Vec<f64>, u64, Summary);

async fn measure_shipping(
    warren: &Path,
    server: &server::Server,
    url: &str,
    cfg: &BackupConfig,
    seconds: Duration,
) -> anyhow::Result<Shipped> {
    let port = server.port;
    let (http, base) = notes_tenant(warren, server, "walon").await?;
    // The tenant's first opening takes the snapshot its WAL generation follows.
    let mut generation = String::new();
    for _ in 0..600 {
        let listed: serde_json::Value = http
            .get(format!("http://localhost:{port}/v1/tenants/walon/backups"))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        if let Some(id) = listed["items"]
            .as_array()
            .and_then(|i| i.last())
            .and_then(|b| b["id"].as_str())
        {
            generation = id.to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(
        !generation.is_empty(),
        "no snapshot started the WAL generation"
    );
    let tenant: serde_json::Value = http
        .get(format!("http://localhost:{port}/v1/tenants/walon"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let id = tenant["id"].as_str().context("no tenant id")?;
    let prefix = warren_backup::ship::generation_prefix(id, &generation);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch_segments(bench_target(url)?, prefix, stopped));

    eprintln!("steady writes at {}/s with WAL shipping on", cfg.wal_rate);
    let steady_start = now_ms();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / cfg.wal_rate.max(1) as f64));
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let deadline = Instant::now() + seconds;
    let mut i = 0u64;
    while Instant::now() < deadline {
        tick.tick().await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (http, url) = (
            http.clone(),
            format!("{base}/api/collections/notes/records"),
        );
        i += 1;
        tokio::spawn(async move {
            let _ = http
                .post(url)
                .json(&json!({ "title": format!("s{i}"), "body": "x".repeat(200) }))
                .send()
                .await;
            drop(permit);
        });
    }
    let _ = in_flight.acquire_many(64).await?;
    let steady_end = now_ms();

    eprintln!("full-speed writes with WAL shipping on");
    let on = write_load(&http, &base, cfg.concurrency, seconds)
        .await
        .summary();
    // Give the last segments time to land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop.send(true);
    let (lags, segments) = watcher.await??;
    let steady: Vec<f64> = lags
        .iter()
        .filter(|(t, _)| (steady_start..=steady_end).contains(t))
        .map(|(t, seen)| (seen - t) as f64)
        .collect();
    let full: Vec<f64> = lags
        .iter()
        .filter(|(t, _)| *t > steady_end)
        .map(|(t, seen)| (seen - t) as f64)
        .collect();
    Ok((steady, full, segments, on))
}

async fn measure(
    warren: &Path,
    server: &server::Server,
    cfg: &BackupConfig,
) -> anyhow::Result<BackupReport> {
    let port = server.port;
    let (http, base) = notes_tenant(warren, server, SLUG).await?;

    let tenant: serde_json::Value = http
        .get(format!("http://localhost:{port}/v1/tenants/{SLUG}"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let db = server
        .data_dir()
        .join("tenants")
        .join(tenant["id"].as_str().context("no tenant id")?)
        .join("data.db");
    eprintln!("filling {SLUG} to {} MiB", cfg.size_mib);
    let fill_path = db.clone();
    let size_mib = cfg.size_mib;
    let held = server::hold(warren, server, SLUG).await?;
    tokio::task::spawn_blocking(move || fill(&fill_path, size_mib)).await??;
    held.release().await?;

    let writes = |duration: Duration| {
        let http = http.clone();
        let base = base.clone();
        load::run(
            Bounds {
                concurrency: cfg.concurrency.max(1),
                duration,
                max_ops: u64::MAX,
            },
            "writes/s",
            move |_, i| {
                let http = http.clone();
                let url = format!("{base}/api/collections/notes/records");
                async move {
                    drain(
                        http.post(url)
                            .json(&json!({ "title": format!("w{i}"), "body": "x".repeat(200) }))
                            .send()
                            .await?,
                    )
                    .await
                }
            },
        )
    };
    let without = writes(Duration::from_secs(cfg.write_seconds.max(1))).await;

    let database_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    eprintln!("backing up {:.0} MiB", database_bytes as f64 / 1048576.0);
    let started = Instant::now();
    let backup = {
        let http = http.clone();
        tokio::spawn(async move {
            let response = http
                .post(format!("http://localhost:{port}/v1/tenants/{SLUG}/backups"))
                .bearer_auth(OPERATOR_TOKEN)
                .timeout(Duration::from_secs(24 * 3600))
                .send()
                .await?;
            let status = response.status();
            let body: serde_json::Value = response.json().await?;
            anyhow::ensure!(status.as_u16() == 201, "backup failed: {body}");
            Ok::<_, anyhow::Error>(body)
        })
    };
    let mut during = Stats::new("writes/s");
    while !backup.is_finished() {
        during.merge(&writes(Duration::from_millis(500)).await);
    }
    let manifest = backup.await??;
    let snapshot_seconds = started.elapsed().as_secs_f64();
    let backup_bytes = manifest["size"].as_u64().unwrap_or(0);

    eprintln!("restoring");
    let started = Instant::now();
    let restored = http
        .post(format!(
            "http://localhost:{port}/v1/tenants/{SLUG}/backups/restore"
        ))
        .bearer_auth(OPERATOR_TOKEN)
        .timeout(Duration::from_secs(24 * 3600))
        .json(&json!({ "to": format!("{SLUG}-restored") }))
        .send()
        .await?;
    if restored.status().as_u16() != 201 {
        bail!("restore failed: {}", restored.text().await?);
    }
    let restore_seconds = started.elapsed().as_secs_f64();

    let (without, during) = (without.summary(), during.summary());
    Ok(BackupReport {
        size_mib: cfg.size_mib,
        database_bytes,
        p99_ratio: ratio(during.p99_ms, without.p99_ms),
        throughput_ratio: ratio(during.throughput, without.throughput),
        writes_without_backup: without,
        writes_during_backup: during,
        snapshot_seconds,
        backup_bytes,
        snapshot_mib_per_s: database_bytes as f64 / 1048576.0 / snapshot_seconds.max(1e-9),
        restore_seconds,
        wal: None,
    })
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Adds rows of about 6 KiB (a third random hex, the rest repetitive, so the data compresses
/// like real records do) until the database file holds `mib` MiB. Fast enough for 1 GiB in
/// seconds: big transactions, generated inside SQLite, and no fsync per commit (a crash of the
/// benchmark loses only ballast).
fn fill(db: &Path, mib: u64) -> anyhow::Result<()> {
    const ROW: u64 = 6 << 10;
    let conn = warren_store::sql::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;
         CREATE TABLE IF NOT EXISTS ballast (id INTEGER PRIMARY KEY, body TEXT)",
    )?;
    let want = mib * 1048576;
    let size = |conn: &warren_store::sql::Connection| -> anyhow::Result<u64> {
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok((pages * page).max(0) as u64)
    };
    let started = Instant::now();
    loop {
        let have = size(&conn)?;
        if have >= want {
            break;
        }
        // At most 24 MiB per transaction.
        let rows = ((want - have) / ROW + 1).min(4096);
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO ballast (body)
             SELECT hex(randomblob(1024)) || printf('%.4096c', 'x') FROM n",
            [rows as i64],
        )?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    eprintln!(
        "filled {:.0} MiB in {:.1} s",
        size(&conn)? as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The report as lines for the terminal.
pub fn format(report: &BackupReport) -> Vec<String> {
    let w = |s: &Summary| {
        format!(
            "{:.0} writes/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} errors",
            s.throughput, s.p50_ms, s.p99_ms, s.max_ms, s.errors
        )
    };
    let mut lines = vec![
        format!(
            "tenant: {:.0} MiB database ({} MiB asked)",
            report.database_bytes as f64 / 1048576.0,
            report.size_mib
        ),
        format!(
            "snapshot: {:.1} s, {:.1} MiB/s of database, {:.1} MiB stored",
            report.snapshot_seconds,
            report.snapshot_mib_per_s,
            report.backup_bytes as f64 / 1048576.0
        ),
        format!(
            "writes without backup: {}",
            w(&report.writes_without_backup)
        ),
        format!("writes during backup:  {}", w(&report.writes_during_backup)),
        format!(
            "during/without: p99 x{:.2}, throughput x{:.2}",
            report.p99_ratio, report.throughput_ratio
        ),
        format!("restore into a new tenant: {:.1} s", report.restore_seconds),
    ];
    if let Some(wal) = &report.wal {
        lines.extend([
        format!(
            "WAL shipping lag at {}/s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} commits, {} segments); at full speed p99 {:.0} ms",
            wal.rate,
            wal.lag_p50_ms,
            wal.lag_p99_ms,
            wal.lag_max_ms,
            wal.commits,
            wal.segments,
            wal.full_speed_lag_p99_ms
        ),
        format!(
            "writes with WAL shipping off: {}",
            w(&wal.writes_shipping_off)
        ),
        format!(
            "writes with WAL shipping on:  {}",
            w(&wal.writes_shipping_on)
        ),
        format!(
            "shipping on/off: p99 x{:.2}, throughput x{:.2}",
            wal.p99_ratio, wal.throughput_ratio
        ),
        ]);
    }
    lines
}
