//! The `import` scenario: a large PocketBase data directory (a `posts` collection of PocketBase
//! 0.40's layout with many records, a file field and many stored files) is generated, then
//! `warren tenant import` of it is timed while its peak memory (VmHWM) is sampled from /proc.
//!
//! The directory is made fast: Warren provisions a tenant and creates the collection through
//! the API (so `_collections` is exactly what Warren and PocketBase read), then the records are
//! inserted with SQL in large transactions and the files written straight into `storage/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::server::{self, WarrenOptions};
use crate::target::Superuser;

/// What to generate.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Records in `posts`.
    pub records: u64,
    /// Stored files (one per record, on the first records).
    pub files: u64,
    /// Bytes of each file.
    pub file_bytes: u64,
    /// Bytes of each record's `body` text.
    pub body_bytes: u64,
}

/// The figures.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub records: u64,
    pub files: u64,
    /// Size of the generated data directory (database and files).
    pub data_bytes: u64,
    pub generate_seconds: f64,
    /// Wall time of `warren tenant import`.
    pub import_seconds: f64,
    /// Peak RSS (VmHWM) of the import process, KiB.
    pub peak_rss_kib: u64,
    /// Progress lines the import printed.
    pub progress_lines: usize,
    /// The last progress line before the summary.
    pub last_progress: String,
    /// Records and files found in the imported tenant.
    pub imported_records: u64,
    pub imported_files: u64,
}

/// VmHWM (peak resident memory) of a process in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The one tenant directory under `data/tenants`.
fn tenant_dir(data: &Path) -> anyhow::Result<PathBuf> {
    let mut dirs = std::fs::read_dir(data.join("tenants"))
        .with_context(|| format!("reading {}", data.display()))?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path());
    let dir = dirs.next().context("no tenant directory")?;
    anyhow::ensure!(dirs.next().is_none(), "more than one tenant directory");
    Ok(dir)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Deterministic filler that does not compress away.
fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect()
}

/// A PocketBase record id (15 characters of `a-z0-9`) for `i`.
fn record_id(i: u64) -> String {
    format!("r{i:014}")
}

/// Generates the data directory under `work`; returns its path.
async fn generate(warren: &Path, work: &Path, cfg: &ImportConfig) -> anyhow::Result<PathBuf> {
    let su = Superuser {
        email: "bench@example.com".into(),
        password: "bench-password-1".into(),
    };
    let server = server::start_warren(warren, &WarrenOptions::default()).await?;
    let http = crate::target::client()?;
    server::create_tenant(&http, server.port, "seed")
        .await
        .map_err(|e| anyhow::anyhow!("creating the seed tenant: {e}"))?;
    server::upsert_superuser(warren, &server, "seed", &su).await?;
    let base = format!("http://seed.localhost:{}", server.port);
    let auth: serde_json::Value = http
        .post(format!(
            "{base}/api/collections/_superusers/auth-with-password"
        ))
        .json(&json!({"identity": su.email, "password": su.password}))
        .send()
        .await?
        .json()
        .await?;
    let token = auth["token"].as_str().context("no superuser token")?;
    let created = http
        .post(format!("{base}/api/collections"))
        .header("Authorization", token)
        .json(&json!({
            "name": "posts",
            "listRule": "",
            "viewRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "body", "type": "text"},
                {"name": "n", "type": "number"},
                {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 100000000},
            ],
        }))
        .send()
        .await?;
    if !created.status().is_success() {
        bail!("creating posts: {}", created.text().await?);
    }
    // A consistent copy of the seed tenant's database while the server still runs (its data
    // directory goes away with the server), the tenant held closed meanwhile.
    let source = tenant_dir(&server.data_dir())?;
    let dest = work.join("pb_data");
    std::fs::create_dir_all(dest.join("storage"))?;
    let held = server::hold(warren, &server, "seed").await?;
    let copy = warren_store::sql::Connection::open(source.join("data.db"))?;
    copy.execute("VACUUM INTO ?1", [dest.join("data.db").to_string_lossy()])?;
    drop(copy);
    held.release().await?;
    server.stop().await;
    let (dir, cfg) = (dest.clone(), cfg.clone());
    tokio::task::spawn_blocking(move || fill(&dir, &cfg)).await??;
    Ok(dest)
}

/// Inserts the records and writes the files into the data directory `dir`.
fn fill(dir: &Path, cfg: &ImportConfig) -> anyhow::Result<()> {
    let conn = warren_store::sql::Connection::open(dir.join("data.db"))?;
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;")?;
    let collection: String = conn.query_row(
        "SELECT id FROM _collections WHERE name = 'posts'",
        [],
        |r| r.get(0),
    )?;
    let body = String::from_utf8(filler(7, cfg.body_bytes as usize))?;
    let mut i = 0;
    while i < cfg.records {
        let tx = conn.unchecked_transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO posts (id, title, body, n, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let end = (i + 50_000).min(cfg.records);
            while i < end {
                let doc = if i < cfg.files {
                    format!("doc_{i}.bin")
                } else {
                    String::new()
                };
                // Each body differs a little so pages do not repeat.
                let text = format!("{i:08}{}", &body[8.min(body.len())..]);
                insert.execute(warren_store::sql::params![
                    record_id(i),
                    format!("post {i}"),
                    text,
                    i as i64,
                    doc
                ])?;
                i += 1;
            }
        }
        tx.commit()?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(conn);
    let content = filler(11, cfg.file_bytes as usize);
    for i in 0..cfg.files {
        let folder = dir.join("storage").join(&collection).join(record_id(i));
        std::fs::create_dir_all(&folder)?;
        let mut bytes = content.clone();
        let stamp = format!("{i:08}");
        let n = stamp.len().min(bytes.len());
        bytes[..n].copy_from_slice(&stamp.as_bytes()[..n]);
        std::fs::write(folder.join(format!("doc_{i}.bin")), bytes)?;
    }
    Ok(())
}

/// Generates the data directory, imports it with `warren tenant import` and measures.
pub async fn run(warren: &Path, cfg: &ImportConfig) -> anyhow::Result<ImportReport> {
    let work = tempfile::Builder::new().prefix("bench-import-").tempdir()?;
    let started = Instant::now();
    let source = generate(warren, work.path(), cfg).await?;
    let generate_seconds = started.elapsed().as_secs_f64();
    let data_bytes = dir_bytes(&source);
    eprintln!(
        "generated {:.0} MiB ({} records, {} files) in {generate_seconds:.1} s",
        data_bytes as f64 / 1048576.0,
        cfg.records,
        cfg.files
    );

    let data = work.path().join("data");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(warren)
        .arg("--data-dir")
        .arg(&data)
        .args(["tenant", "import", "big", "--progress", "--from"])
        .arg(&source)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting warren tenant import")?;
    let pid = child.id().context("no pid")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let reading = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("  import: {line}");
            // Only progress lines count; the CLI also prints notes (e.g. that no server runs).
            let progress = ["unpack:", "database:", "files:", "swap:"];
            if progress.iter().any(|step| line.starts_with(step)) {
                seen.push(line);
            }
        }
        seen
    });
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_kib(pid) {
            peak = peak.max(kib);
        }
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    let import_seconds = started.elapsed().as_secs_f64();
    let lines = reading.await?;
    if !status.success() {
        bail!("warren tenant import failed: {}", lines.join("\n"));
    }
    let imported = tenant_dir(&data)?;
    let conn = warren_store::sql::Connection::open(imported.join("data.db"))?;
    let imported_records: i64 = conn.query_row("SELECT COUNT(*) FROM posts", [], |r| r.get(0))?;
    let imported_records = imported_records.max(0) as u64;
    let imported_files = {
        let mut count = 0;
        let mut pending = vec![imported.join("storage")];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(entry.path());
                } else {
                    count += 1;
                }
            }
        }
        count
    };
    Ok(ImportReport {
        records: cfg.records,
        files: cfg.files,
        data_bytes,
        generate_seconds,
        import_seconds,
        peak_rss_kib: peak,
        progress_lines: lines.len(),
        last_progress: lines.last().cloned().unwrap_or_default(),
        imported_records,
        imported_files,
    })
}

/// The report as lines for the terminal.
pub fn format(report: &ImportReport) -> Vec<String> {
    vec![
        format!(
            "import of {:.0} MiB ({} records, {} files): {:.1} s, {:.0} MiB/s",
            report.data_bytes as f64 / 1048576.0,
            report.records,
            report.files,
            report.import_seconds,
            report.data_bytes as f64 / 1048576.0 / report.import_seconds.max(0.001)
        ),
        format!(
            "peak RSS of the import process: {:.1} MiB",
            report.peak_rss_kib as f64 / 1024.0
        ),
        format!(
            "progress lines: {}; imported: {} records, {} files",
            report.progress_lines, report.imported_records, report.imported_files
        ),
    ]
}
