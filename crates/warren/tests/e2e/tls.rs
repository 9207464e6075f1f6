//! HTTPS with the operator's own wildcard certificate (no CA): SNI decides the certificate,
//! unknown names fail the handshake, ALPN offers HTTP/2, plain HTTP redirects except for ACME
//! challenges, and a replaced certificate file is picked up while serving.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

use crate::support::{TOKEN, eventually};

pub const DOMAIN: &str = "warren.test";

/// A running `warren serve --https`, killed on drop.
pub struct TlsServer {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub child: Child,
    pub data_dir: std::path::PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsServer {
    /// Starts `warren serve` on `data_dir` with `args` and waits for both listening lines.
    pub fn start(data_dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--domain", DOMAIN, "serve"])
            .args(args)
            .env("WARREN_OPERATOR_TOKEN", TOKEN)
            .env(
                "RUST_LOG",
                std::env::var("WARREN_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut http, mut https) = (None, None);
        while http.is_none() || https.is_none() {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            let addr = |rest: &str| rest.split_whitespace().next().unwrap().parse().unwrap();
            if let Some(rest) = line.strip_prefix("Warren listening on http://") {
                http = Some(addr(rest));
            } else if let Some(rest) = line.strip_prefix("Warren listening on https://") {
                https = Some(addr(rest));
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Self {
            http: http.unwrap(),
            https: https.unwrap(),
            child,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Runs a CLI command on the same data directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_warren"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--domain", DOMAIN])
            .args(args)
            .output()
            .unwrap()
    }

    /// `GET path` over a fresh HTTPS connection with SNI and Host `host`, trusting `root`.
    pub async fn get(&self, root: &[u8], host: &str, path: &str) -> Result<Fetched, String> {
        https_get(self.https, root, host, path).await
    }

    /// A TLS handshake with SNI `name`: the negotiated ALPN protocol, or the error.
    pub async fn handshake(&self, root: &[u8], name: &str) -> Result<Option<Vec<u8>>, String> {
        handshake(self.https, root, name).await
    }
}

/// A client configuration (ring) trusting only `root` (PEM), offering h2 and http/1.1.
pub fn client_config(root: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A TLS handshake to `addr` with SNI `name` trusting `root`: the ALPN protocol, or the error.
pub async fn handshake(
    addr: SocketAddr,
    root: &[u8],
    name: &str,
) -> Result<Option<Vec<u8>>, String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(root)));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(server_name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
}

/// An HTTPS response.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub version: hyper::Version,
    pub body: String,
}

/// `GET path` on a new TLS connection to `addr` with SNI `host`, over the HTTP version ALPN
/// chose.
pub async fn https_get(
    addr: SocketAddr,
    root: &[u8],
    host: &str,
    path: &str,
) -> Result<Fetched, String> {
    https_send(addr, root, host, "GET", path, None).await
}

/// A request with an optional JSON body and the operator token, on a new TLS connection.
pub async fn https_send(
    addr: SocketAddr,
    root: &[u8],
    host: &str,
    method: &str,
    path: &str,
    json: Option<&serde_json::Value>,
) -> Result<Fetched, String> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(root)));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(server_name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let body = json.map(|v| v.to_string()).unwrap_or_default();
    let request = |uri: String| {
        let mut builder = hyper::Request::builder().method(method).uri(uri);
        if host == DOMAIN {
            builder = builder.header("authorization", format!("Bearer {TOKEN}"));
        }
        if !h2 {
            builder = builder.header("host", host);
        }
        if json.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        builder
            .body(Full::new(bytes::Bytes::from(body.clone())))
            .unwrap()
    };
    let response = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let uri = format!("https://{host}{path}");
        sender.send_request(request(uri)).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(request(path.to_string())).await
    }
    .map_err(|e| e.to_string())?;
    let (status, version) = (response.status().as_u16(), response.version());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Fetched {
        status,
        version,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A self-signed certificate for `names`: (chain PEM, key PEM).
fn self_signed(names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn the_operators_wildcard_serves_tenants_by_sni_over_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(&["*.warren.test"]);
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let data = dir.path().join("data");
    let server = TlsServer::start(
        &data,
        &[
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
            "--no-acme",
        ],
    );
    assert!(server.cli(&["tenant", "create", "alpha"]).status.success());
    let host = "alpha.warren.test";
    let mut reached = false;
    for _ in 0..100 {
        if let Ok(response) = server.get(cert.as_bytes(), host, "/api/health").await
            && response.status == 200
        {
            assert_eq!(response.version, hyper::Version::HTTP_2);
            assert!(
                response.body.contains("API is healthy"),
                "{}",
                response.body
            );
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reached, "the tenant never answered over HTTPS");
    assert_eq!(
        server
            .handshake(cert.as_bytes(), host)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"h2"[..])
    );

    // Names that are not live tenants fail the handshake: no other tenant's certificate.
    for name in ["nobody.warren.test", "a.b.warren.test", "alpha.example.org"] {
        assert!(
            server.handshake(cert.as_bytes(), name).await.is_err(),
            "{name}"
        );
    }

    // Plain HTTP: 308 to the same host and path on HTTPS, except ACME challenges.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = plain
        .get(format!("http://{}/api/health?x=1", server.http))
        .header("host", format!("{host}:{}", server.http.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("https://{host}:{}/api/health?x=1", server.https.port()).as_str()
    );
    let response = plain
        .get(format!(
            "http://{}/.well-known/acme-challenge/unknown",
            server.http
        ))
        .header("host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // A replaced certificate is served without a restart; the old one is no longer trusted.
    let (cert2, key2) = self_signed(&["*.warren.test"]);
    std::fs::write(&key_path, &key2).unwrap();
    std::fs::write(&cert_path, &cert2).unwrap();
    let reloaded = eventually(Duration::from_secs(15), async || {
        server.handshake(cert2.as_bytes(), host).await.is_ok()
    })
    .await;
    assert!(reloaded, "the new certificate was never served");
    assert!(server.handshake(cert.as_bytes(), host).await.is_err());
}
