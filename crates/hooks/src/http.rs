//! `$http.send` of tenants' code: `http`/`https` only, a bounded time, request and response
//! sizes, a few redirects each checked again, and no loopback, private, link-local or other
//! special address unless the operator allows them. Names are checked after resolution: the
//! resolver hands the connector only allowed addresses (the only ones it connects to), so a
//! name that resolves differently later (DNS rebinding) gains nothing, and the peer each
//! response came from is checked once more.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{HttpConnector, HttpInfo};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use warren_netguard::{Allow, Resolver};

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

/// Whether `ip` may be reached: public, or anything when the operator allows private networks.
fn reachable(ip: IpAddr, allow_private: bool) -> bool {
    allow(allow_private).admits(ip)
}

fn allow(allow_private: bool) -> Allow {
    Allow {
        loopback: false,
        private: allow_private,
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
    let mut http = HttpConnector::new_with_resolver(Resolver {
        allow: allow(allow_private),
    });
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
