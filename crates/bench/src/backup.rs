//! The Warren-only `backup` scenario: a tenant of a given size (rows written straight into its
//! database, then records through the API), write throughput and latency without and during a
//! snapshot, snapshot time and upload throughput, and the time to restore it into a new tenant.

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
}

const SLUG: &str = "big";

/// Starts Warren with a backup target, runs the scenario, stops Warren.
pub async fn run(warren: &Path, cfg: &BackupConfig) -> anyhow::Result<BackupReport> {
    let local = tempfile::Builder::new()
        .prefix("bench-backups-")
        .tempdir()?;
    let url = cfg
        .backup_url
        .clone()
        .unwrap_or_else(|| format!("file://{}", local.path().display()));
    let flags = vec![
        format!("--backup-url={url}"),
        "--backup-every=0".to_string(),
    ];
    let server = server::start_warren_with(warren, &WarrenOptions::default(), &flags).await?;
    let result = measure(warren, &server, cfg).await;
    server.stop().await;
    result
}

async fn measure(
    warren: &Path,
    server: &server::Server,
    cfg: &BackupConfig,
) -> anyhow::Result<BackupReport> {
    let port = server.port;
    let http = client()?;
    server::create_tenant(&http, port, SLUG)
        .await
        .map_err(|e| anyhow::anyhow!("creating tenant {SLUG}: {e}"))?;
    let su = Superuser::default();
    let out = tokio::process::Command::new(warren)
        .args([
            "superuser",
            "upsert",
            SLUG,
            &su.email,
            &su.password,
            "--data-dir",
        ])
        .arg(server.data_dir())
        .output()
        .await?;
    if !out.status.success() {
        bail!("superuser upsert: {}", String::from_utf8_lossy(&out.stderr));
    }
    let base = format!("http://{SLUG}.localhost:{port}");
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
    tokio::task::spawn_blocking(move || fill(&fill_path, size_mib)).await??;

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
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;
         CREATE TABLE IF NOT EXISTS ballast (id INTEGER PRIMARY KEY, body TEXT)",
    )?;
    let want = mib * 1048576;
    let size = |conn: &rusqlite::Connection| -> anyhow::Result<u64> {
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
    vec![
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
        "WAL shipping lag: not measured (continuous WAL shipping is not implemented yet)".into(),
    ]
}
