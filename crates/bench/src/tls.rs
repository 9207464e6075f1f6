//! `warren-bench tls`: the cost of HTTPS. Keep-alive `GET /api/health` and view-by-id over
//! HTTPS as a ratio of plain HTTP against the same tenant in the same run, full TLS handshakes
//! per second (ECDSA P-256, no resumption), and the memory of the certificate store with many
//! certificates loaded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::server::{OPERATOR_TOKEN, free_port, rss_kib};

const DOMAIN: &str = "bench.test";
const HOST: &str = "bench.bench.test";
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "benchpassword123";

/// Knobs of the TLS benchmark.
pub struct TlsBench {
    pub warren: PathBuf,
    pub duration: Duration,
    pub concurrency: usize,
    pub rounds: usize,
    pub certs: usize,
}

/// One server run: plain or HTTPS.
struct Run {
    child: tokio::process::Child,
    pid: u32,
    http: SocketAddr,
    https: Option<SocketAddr>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn warren(bin: &Path, data: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--data-dir")
        .arg(data)
        .args(["--domain", DOMAIN])
        .env("WARREN_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("RUST_LOG", "warn");
    cmd
}

async fn start(bin: &Path, dir: &Path, https: bool) -> anyhow::Result<Run> {
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let mut cmd = warren(bin, &dir.join("data"));
    cmd.args(["serve", "--http", &http.to_string()]);
    let secure = if https {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        cmd.args(["--https", &addr.to_string(), "--no-acme", "--tls-cert"])
            .arg(dir.join("cert.pem"))
            .arg("--tls-key")
            .arg(dir.join("key.pem"));
        Some(addr)
    } else {
        None
    };
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting warren")?;
    let pid = child.id().context("warren has no pid")?;
    let run = Run {
        child,
        pid,
        http,
        https: secure,
    };
    let ready = secure.unwrap_or(http);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(ready).await.is_err() {
        if Instant::now() > deadline {
            bail!("warren did not start listening on {ready}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(run)
}

/// A client configuration trusting `root`, without session resumption.
fn client_config(root: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn connect(
    addr: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> anyhow::Result<Box<dyn Io>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(match tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = ServerName::try_from(HOST)?;
            Box::new(
                tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await?,
            )
        }
    })
}

/// Keep-alive GETs of `path` on `concurrency` connections for `duration`: requests per second.
async fn keep_alive(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    path: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(f64, u64)> {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ok, errors, tls, path) = (ok.clone(), errors.clone(), tls.clone(), path.to_string());
        tasks.push(tokio::spawn(async move {
            let io = connect(addr, tls.as_ref()).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let request = hyper::Request::get(path.as_str())
                    .header("host", HOST)
                    .body(Empty::<bytes::Bytes>::new())?;
                let response = sender.send_request(request).await?;
                let good = response.status() == 200;
                response.into_body().collect().await?;
                if good { &ok } else { &errors }.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let start = Instant::now();
    for task in tasks {
        task.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        errors.load(Ordering::Relaxed),
    ))
}

/// Full handshakes (no resumption) on `concurrency` tasks for `duration`: handshakes per second.
async fn handshakes(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (done, tls) = (done.clone(), tls.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                connect(addr, Some(&tls)).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let start = Instant::now();
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// Creates tenant `bench`, its superuser, and a public collection with one record; returns the
/// record's view path.
async fn seed(bin: &Path, dir: &Path, run: &Run) -> anyhow::Result<String> {
    let data = dir.join("data");
    for args in [
        vec!["tenant", "create", "bench"],
        vec!["superuser", "upsert", "bench", EMAIL, PASSWORD],
    ] {
        let out = warren(bin, &data).args(&args).output().await?;
        if !out.status.success() {
            bail!("warren {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let http = reqwest::Client::builder().resolve(HOST, run.http).build()?;
    let base = format!("http://{HOST}:{}", run.http.port());
    let auth: serde_json::Value = http
        .post(format!(
            "{base}/api/collections/_superusers/auth-with-password"
        ))
        .json(&serde_json::json!({ "identity": EMAIL, "password": PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    let token = auth["token"]
        .as_str()
        .context("no superuser token")?
        .to_string();
    http.post(format!("{base}/api/collections"))
        .header("authorization", &token)
        .json(&serde_json::json!({
            "name": "posts", "type": "base", "viewRule": "", "listRule": "",
            "fields": [{ "name": "title", "type": "text" }]
        }))
        .send()
        .await?
        .error_for_status()?;
    let record: serde_json::Value = http
        .post(format!("{base}/api/collections/posts/records"))
        .header("authorization", &token)
        .json(&serde_json::json!({ "title": "hello over tls" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = record["id"].as_str().context("no record id")?;
    Ok(format!("/api/collections/posts/records/{id}"))
}

/// The resident memory the certificate store takes for `count` loaded certificates, in KiB.
async fn store_memory(dir: &Path, count: usize) -> anyhow::Result<(u64, usize)> {
    let certs = dir.join("store");
    {
        let store = warren_edge::CertStore::open(&certs, DOMAIN)?;
        for i in 0..count {
            let host = format!("t{i}.{DOMAIN}");
            let key = rcgen::KeyPair::generate()?;
            let cert = rcgen::CertificateParams::new(vec![host.clone()])?.self_signed(&key)?;
            store
                .save(&host, &cert.pem(), &key.serialize_pem())
                .map_err(anyhow::Error::msg)?;
        }
    }
    let before = rss_kib(std::process::id()).unwrap_or_default();
    let store = Arc::new(warren_edge::CertStore::open(&certs, DOMAIN)?);
    for i in 0..count {
        store.load(&format!("t{i}.{DOMAIN}")).await;
    }
    let after = rss_kib(std::process::id()).unwrap_or_default();
    Ok((after.saturating_sub(before), store.loaded()))
}

/// Runs the TLS benchmark and prints its figures.
pub async fn run(bench: TlsBench) -> anyhow::Result<()> {
    if !bench.warren.is_file() {
        bail!("warren binary not found at {}", bench.warren.display());
    }
    let dir = tempfile::Builder::new().prefix("bench-tls-").tempdir()?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec![format!("*.{DOMAIN}")])?.self_signed(&key)?;
    std::fs::write(dir.path().join("cert.pem"), cert.pem())?;
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem())?;
    let root = cert.pem().into_bytes();
    let tls = client_config(&root)?;

    let first = start(&bench.warren, dir.path(), false).await?;
    let view = seed(&bench.warren, dir.path(), &first).await?;
    drop(first);

    let (c, d) = (bench.concurrency.max(1), bench.duration);
    let mut sums = [[0f64; 2]; 2]; // [health, view] × [plain, https]
    let mut errors = 0;
    let mut handshake_rates = Vec::new();
    let mut https_rss = 0;
    for round in 0..bench.rounds.max(1) {
        for secure in [false, true] {
            let run = start(&bench.warren, dir.path(), secure).await?;
            let (addr, config) = match run.https {
                Some(addr) => (addr, Some(tls.clone())),
                None => (run.http, None),
            };
            for (i, path) in ["/api/health", view.as_str()].iter().enumerate() {
                let (rate, failed) = keep_alive(addr, config.clone(), path, c, d).await?;
                sums[i][secure as usize] += rate;
                errors += failed;
                println!(
                    "round {} {:5} {:<12} {:>10.0} req/s",
                    round + 1,
                    if secure { "https" } else { "plain" },
                    if i == 0 { "health" } else { "view-by-id" },
                    rate
                );
            }
            if secure {
                let rate = handshakes(addr, tls.clone(), c, d).await?;
                println!("round {} https full handshakes {rate:>10.0} /s", round + 1);
                handshake_rates.push(rate);
                https_rss = https_rss.max(rss_kib(run.pid).unwrap_or_default());
            }
        }
    }
    let rounds = bench.rounds.max(1) as f64;
    let (memory, loaded) = store_memory(dir.path(), bench.certs).await?;
    println!();
    println!(
        "HTTPS / plain, keep-alive GET /api/health: {:.1}%",
        100.0 * sums[0][1] / sums[0][0]
    );
    println!(
        "HTTPS / plain, keep-alive view-by-id:      {:.1}%",
        100.0 * sums[1][1] / sums[1][0]
    );
    println!(
        "full TLS handshakes (ECDSA P-256):          {:.0} /s",
        handshake_rates.iter().sum::<f64>() / rounds
    );
    println!(
        "certificate store, {loaded} certificates loaded: {:.1} MiB",
        memory as f64 / 1024.0
    );
    println!(
        "warren RSS after the HTTPS round:           {:.1} MiB",
        https_rss as f64 / 1024.0
    );
    println!("failed requests:                            {errors}");
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}
