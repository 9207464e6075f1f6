//! `$http.send` of tenants' code: `http`/`https` only, a bounded time, request and response
//! sizes, a few redirects each checked again, and no loopback, private, link-local or other
//! special address unless the operator allows them. Names are checked after resolution: the
//! resolver hands the connector only allowed addresses (the only ones it connects to), so a
//! name that resolves differently later (DNS rebinding) gains nothing, and the peer each
//! response came from is checked once more.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::{HttpConnector, HttpInfo};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// Time a request may take when the code gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time a request may be given.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request body.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Largest response body.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;
/// Redirects followed.
pub const MAX_REDIRECTS: usize = 5;
/// Most request headers.
pub const MAX_HEADERS: usize = 64;
/// Longest URL.
pub const MAX_URL: usize = 8 << 10;

/// What the code asks for (`$http.send({url, method, body, headers, timeout})`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Request {
    /// `http(s)://…`
    pub url: String,
    /// `GET` when empty.
    pub method: String,
    /// The body as text.
    pub body: String,
    /// Request headers.
    pub headers: BTreeMap<String, String>,
    /// Seconds (0: [`DEFAULT_TIMEOUT`]; at most [`MAX_TIMEOUT`]).
    pub timeout: f64,
}

/// The answer.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers in order as received (names lowercase).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Whether `ip` is an ordinary public address. Refused: loopback, private, link-local,
/// shared (CGNAT), unspecified, broadcast, multicast, reserved, documentation and benchmark
/// ranges, IPv6 unique-local, site-local and link-local, and every IPv6 form carrying an IPv4
/// address (mapped, compatible, NAT64, 6to4) whose IPv4 address is refused; Teredo outright.
pub fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) && !(s[5] == 0 && s[6] == 0) {
        return public_v4(embedded(s[6], s[7]));
    }
    // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48).
    if s[0] == 0x64 && s[1] == 0xff9b {
        return s[2..6] == [0; 4] && public_v4(embedded(s[6], s[7]));
    }
    // 6to4: 2002:aabb:ccdd::/48.
    if s[0] == 0x2002 {
        return public_v4(embedded(s[1], s[2]));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        || (s[0] == 0x2001 && s[1] == 0xdb8)
        || (s[0] == 0x2001 && s[1] == 0)
        || (s[0] == 0x100 && s[1..4] == [0; 3]))
}

/// Whether `ip` may be reached: public, or anything when the operator allows private networks.
fn reachable(ip: IpAddr, allow_private: bool) -> bool {
    allow_private || public(ip)
}

/// A resolver answering only with reachable addresses.
#[derive(Clone)]
struct Checked {
    allow_private: bool,
}

impl tower::Service<Name> for Checked {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| reachable(a.ip(), allow_private))
                .collect();
            if found.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{} resolves to no public address (private networks are not reachable)",
                    name.as_str()
                )));
            }
            Ok(found.into_iter())
        })
    }
}

/// Checks a URL before any request: scheme, length, and a literal address.
fn check_url(url: &str, allow_private: bool) -> Result<url::Url, String> {
    if url.len() > MAX_URL {
        return Err(format!("the URL is longer than {MAX_URL} bytes"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "only http and https URLs can be sent to, not {url:?}"
        ));
    }
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(format!("the URL {url:?} has no host")),
    };
    if let Some(ip) = literal
        && !reachable(ip, allow_private)
    {
        return Err(format!(
            "{ip} is a private, loopback or reserved address and not reachable"
        ));
    }
    Ok(parsed)
}

/// Sends `request`, following redirects, within `budget` (and the request's own timeout).
pub async fn send(
    request: &Request,
    allow_private: bool,
    budget: Duration,
) -> Result<Response, String> {
    let timeout = if request.timeout > 0.0 {
        Duration::from_secs_f64(request.timeout.min(MAX_TIMEOUT.as_secs_f64()))
    } else {
        DEFAULT_TIMEOUT
    }
    .min(budget);
    if request.body.len() > MAX_REQUEST_BYTES {
        return Err(format!(
            "the request body is larger than {} KiB",
            MAX_REQUEST_BYTES >> 10
        ));
    }
    if request.headers.len() > MAX_HEADERS {
        return Err(format!("more than {MAX_HEADERS} request headers"));
    }
    let method = if request.method.trim().is_empty() {
        http::Method::GET
    } else {
        http::Method::from_bytes(request.method.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("invalid method {:?}", request.method))?
    };
    let mut headers = http::HeaderMap::new();
    for (name, value) in &request.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value of header {name}"))?;
        headers.append(name, value);
    }
    let url = check_url(&request.url, allow_private)?;
    let body = Bytes::from(request.body.clone());
    tokio::time::timeout(timeout, follow(url, method, headers, body, allow_private))
        .await
        .map_err(|_| format!("the request timed out after {:.1}s", timeout.as_secs_f64()))?
}

async fn follow(
    mut url: url::Url,
    mut method: http::Method,
    headers: http::HeaderMap,
    mut body: Bytes,
    allow_private: bool,
) -> Result<Response, String> {
    let mut http = HttpConnector::new_with_resolver(Checked { allow_private });
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    for _ in 0..=MAX_REDIRECTS {
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str());
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        let outgoing = builder
            .body(Full::new(body.clone()))
            .map_err(|e| format!("invalid request: {e}"))?;
        let response = client
            .request(outgoing)
            .await
            .map_err(|e| format!("request to {url} failed: {}", cause(&e)))?;
        if let Some(info) = response.extensions().get::<HttpInfo>()
            && !reachable(info.remote_addr().ip(), allow_private)
        {
            return Err(format!(
                "{} is a private, loopback or reserved address and not reachable",
                info.remote_addr().ip()
            ));
        }
        let status = response.status();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status.is_redirection()
            && let Some(location) = location
        {
            let next = url
                .join(&location)
                .map_err(|e| format!("invalid redirect {location:?}: {e}"))?;
            url = check_url(next.as_str(), allow_private)?;
            let code = status.as_u16();
            if code == 303 || ((code == 301 || code == 302) && method == http::Method::POST) {
                method = http::Method::GET;
                body = Bytes::new();
            }
            continue;
        }
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!(
                        "the response is larger than {} MiB",
                        MAX_RESPONSE_BYTES >> 20
                    )
                } else {
                    format!("reading the response failed: {e}")
                }
            })?
            .to_bytes()
            .to_vec();
        return Ok(Response {
            status: status.as_u16(),
            headers,
            body,
        });
    }
    Err(format!("stopped after {MAX_REDIRECTS} redirects"))
}

/// The innermost cause of a client error (the resolver's refusal reads better than
/// "client error (Connect)").
fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "2002:a00:1::1",
            "2001:db8::1",
            "2001::1",
        ] {
            assert!(!public(ip.parse().unwrap()), "{ip} counted as public");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.0.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(public(ip.parse().unwrap()), "{ip} refused");
        }
    }

    #[test]
    fn urls_are_checked_before_any_request() {
        for url in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "http://127.0.0.1:9/",
            "http://10.0.0.1/",
            "http://[::1]:9/",
            "http://[::ffff:127.0.0.1]:9/",
            "http://[fe80::1]/",
            "http://0x7f000001/",
            "http://2130706433/",
        ] {
            assert!(check_url(url, false).is_err(), "{url} passed");
        }
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
        assert!(check_url("https://example.com/x?y=1", false).is_ok());
        assert!(
            check_url(
                &format!("https://example.com/{}", "x".repeat(MAX_URL)),
                false
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        let request = Request {
            url: "http://localhost:9/".into(),
            ..Request::default()
        };
        let refused = send(&request, false, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(refused.contains("no public address"), "{refused}");
    }

    #[tokio::test]
    async fn limits_are_checked_before_sending() {
        let big = Request {
            url: "https://example.com/".into(),
            body: "x".repeat(MAX_REQUEST_BYTES + 1),
            ..Request::default()
        };
        assert!(send(&big, false, Duration::from_secs(5)).await.is_err());
        let bad = Request {
            url: "https://example.com/".into(),
            method: "GE T".into(),
            ..Request::default()
        };
        assert!(send(&bad, false, Duration::from_secs(5)).await.is_err());
    }
}
