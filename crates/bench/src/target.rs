//! A PocketBase-compatible base URL on loopback, the HTTP client that reaches it, and small
//! request helpers shared by every scenario.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;

use crate::load::OpError;

/// Credentials of the superuser that seeds a target.
#[derive(Debug, Clone)]
pub struct Superuser {
    pub email: String,
    pub password: String,
}

impl Default for Superuser {
    fn default() -> Self {
        Self {
            email: "bench@example.com".into(),
            password: "benchpassword123".into(),
        }
    }
}

/// One system under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL without a trailing slash, e.g. `http://bench.localhost:8090`.
    pub base: String,
    /// A client that only ever connects to loopback.
    pub client: Client,
    /// The server's process id, when known, for RSS and fd readings.
    pub pid: Option<u32>,
    /// The superuser used to seed.
    pub superuser: Superuser,
}

impl Target {
    /// A target for `base`, which must name a loopback address or a `*.localhost` host.
    pub fn new(base: &str, pid: Option<u32>, superuser: Superuser) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        ensure_loopback(&base)?;
        Ok(Self {
            base,
            client: client()?,
            pid,
            superuser,
        })
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The port of the target URL, which must name one.
    pub fn port(&self) -> anyhow::Result<u16> {
        self.base
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .context("the target URL has no explicit port")
    }

    /// The same server addressed as its platform host (`localhost`, where Warren serves `/v1`).
    pub fn platform(&self) -> anyhow::Result<Self> {
        Ok(Self {
            base: format!("http://localhost:{}", self.port()?),
            ..self.clone()
        })
    }

    /// Another Warren tenant of the same server (`<slug>.localhost`), with the same superuser.
    pub fn tenant(&self, slug: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: format!("http://{slug}.localhost:{}", self.port()?),
            ..self.clone()
        })
    }

    /// Resident set size of the server, in KiB, when its pid is known.
    pub fn rss_kib(&self) -> Option<u64> {
        self.pid.and_then(crate::server::rss_kib)
    }

    /// Authenticates the superuser and returns its token.
    pub async fn superuser_token(&self) -> Result<String, OpError> {
        let body = serde_json::json!({
            "identity": self.superuser.email,
            "password": self.superuser.password,
        });
        let resp = self
            .client
            .post(self.url("/api/collections/_superusers/auth-with-password"))
            .json(&body)
            .send()
            .await?;
        let json = json_ok(resp).await?;
        token_of(&json)
    }
}

/// Extracts `token` from an auth response.
pub fn token_of(json: &Value) -> Result<String, OpError> {
    json.get("token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| OpError::other("auth response has no token"))
}

/// A reqwest client whose resolver maps `localhost` and `*.localhost` to 127.0.0.1 and refuses
/// every other name, so the harness cannot be pointed at a remote machine by accident.
pub fn client() -> anyhow::Result<Client> {
    client_with_pool(4096)
}

/// Like [`client`], keeping at most `idle_per_host` idle connections per host. Zero closes each
/// connection after its request: needed when touching thousands of tenant hosts, or the pool
/// would keep one idle socket per tenant open on the server and skew its RSS and fd count.
pub fn client_with_pool(idle_per_host: usize) -> anyhow::Result<Client> {
    Client::builder()
        .dns_resolver(Arc::new(LoopbackResolver))
        .no_proxy()
        .pool_max_idle_per_host(idle_per_host)
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// Like [`client`], but connecting from the loopback source address `local`.
pub fn client_from(local: IpAddr) -> anyhow::Result<Client> {
    Client::builder()
        .dns_resolver(Arc::new(LoopbackResolver))
        .no_proxy()
        .local_address(local)
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// The loopback source address of client `worker`: 127.0.0.10 upwards (wrapping within /8).
pub fn worker_address(worker: usize) -> IpAddr {
    let n = 10 + (worker % 16_000_000) as u32;
    IpAddr::V4(Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8))
}

/// Resolves `localhost` and `*.localhost` to 127.0.0.1; everything else is an error.
struct LoopbackResolver;

impl Resolve for LoopbackResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            if is_localhost_name(&host) {
                let addrs: Addrs = Box::new(std::iter::once(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    0,
                )));
                Ok(addrs)
            } else {
                Err(format!("refusing to resolve non-loopback host {host}").into())
            }
        })
    }
}

fn is_localhost_name(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost")
}

/// Fails unless `base` is an `http://` URL on a loopback address or a `*.localhost` name.
pub fn ensure_loopback(base: &str) -> anyhow::Result<()> {
    let rest = base
        .strip_prefix("http://")
        .with_context(|| format!("{base}: only plain http:// loopback targets are supported"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.to_ascii_lowercase();
    if is_localhost_name(&host) {
        return Ok(());
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(()),
        _ => bail!("{base}: refusing a non-loopback target (use 127.0.0.1, ::1 or *.localhost)"),
    }
}

/// The socket address to connect to for `base` (an `http://` loopback URL) and the authority
/// to send as `Host`: `*.localhost` names resolve to 127.0.0.1 here, everything that is not
/// loopback is refused, and the port defaults to 80.
pub fn loopback_endpoint(base: &str) -> anyhow::Result<(SocketAddr, String)> {
    ensure_loopback(base)?;
    let rest = base.strip_prefix("http://").unwrap_or(base);
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').context("unclosed [ in the URL")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .with_context(|| format!("{base}: bad port"))?,
        None => 80,
    };
    let ip = if is_localhost_name(&host.to_ascii_lowercase()) {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>()
            .with_context(|| format!("{base}: not an address"))?
    };
    if !ip.is_loopback() {
        bail!("{base}: refusing a non-loopback target");
    }
    Ok((SocketAddr::new(ip, port), authority.to_string()))
}

/// Sends a request and fails on any non-2xx status, keeping the start of the body as message.
pub async fn send_ok(req: RequestBuilder) -> Result<Response, OpError> {
    let resp = req.send().await?;
    ok(resp).await
}

/// Fails on any non-2xx status, keeping the start of the body as message.
pub async fn ok(resp: Response) -> Result<Response, OpError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let url = resp.url().path().to_string();
    let body = resp.text().await.unwrap_or_default();
    let snippet: String = body.chars().take(200).collect();
    Err(OpError {
        status: Some(status.as_u16()),
        message: format!("{} {url}: {}", status.as_u16(), snippet.trim()),
    })
}

/// Sends nothing more: reads a 2xx response fully and discards it.
pub async fn drain(resp: Response) -> Result<(), OpError> {
    let resp = ok(resp).await?;
    resp.bytes().await?;
    Ok(())
}

/// Reads a 2xx JSON response.
pub async fn json_ok(resp: Response) -> Result<Value, OpError> {
    let resp = ok(resp).await?;
    resp.json::<Value>()
        .await
        .map_err(|e| OpError::other(format!("bad JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_addresses_are_distinct_loopback_addresses() {
        let addrs: Vec<IpAddr> = (0..300).map(worker_address).collect();
        assert_eq!(addrs[0], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10)));
        assert_eq!(addrs[250], IpAddr::V4(Ipv4Addr::new(127, 0, 1, 4)));
        assert!(addrs.iter().all(IpAddr::is_loopback));
        let unique: std::collections::HashSet<_> = addrs.iter().collect();
        assert_eq!(unique.len(), addrs.len());
    }

    #[test]
    fn loopback_targets_are_accepted() {
        for base in [
            "http://127.0.0.1:8090",
            "http://127.0.0.2:1/",
            "http://[::1]:8090",
            "http://localhost:8090",
            "http://bench.localhost:8090/",
        ] {
            assert!(ensure_loopback(base).is_ok(), "{base}");
        }
    }

    #[test]
    fn endpoints_resolve_to_loopback_and_keep_the_authority() {
        let (addr, host) = loopback_endpoint("http://bench.localhost:8090").unwrap();
        assert_eq!(addr, "127.0.0.1:8090".parse().unwrap());
        assert_eq!(host, "bench.localhost:8090");
        let (addr, host) = loopback_endpoint("http://[::1]:81/x").unwrap();
        assert_eq!(addr, "[::1]:81".parse().unwrap());
        assert_eq!(host, "[::1]:81");
        let (addr, _) = loopback_endpoint("http://127.0.0.2").unwrap();
        assert_eq!(addr, "127.0.0.2:80".parse().unwrap());
        assert!(loopback_endpoint("http://example.com:80").is_err());
        assert!(loopback_endpoint("http://localhost:port").is_err());
    }

    #[test]
    fn remote_targets_are_refused() {
        for base in [
            "http://10.0.0.1:8090",
            "http://example.com",
            "https://127.0.0.1:8090",
            "http://localhost.example.com:80",
        ] {
            assert!(ensure_loopback(base).is_err(), "{base}");
        }
    }
}
