//! Forwarding a request to the node that owns its tenant: HTTP/1.1 with pooled connections,
//! bodies streamed both ways (uploads, SSE), and upgraded connections (WebSocket) tunnelled.
//!
//! The Host header travels unchanged, so the owner dispatches the request as if it had
//! received it first. A forwarded request is marked; a node never forwards a marked request
//! again, so a routing table that is briefly out of date cannot make a loop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Marks a request forwarded by another node; its value is that node's id.
pub const FORWARDED_BY: &str = "x-warren-forwarded-by";

/// The cluster secret a forwarding node shows, so the owner can tell a peer from a client.
pub const CLUSTER_SECRET: &str = "x-warren-cluster-secret";

/// Headers that belong to one connection, never passed on (RFC 9110, 7.6.1).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Forwards requests to other nodes. Cheap to clone; connections are pooled per node.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Body>,
    node: HeaderValue,
    secret: Option<HeaderValue>,
}

impl Forwarder {
    /// A forwarder for this node (`node` is its id, sent along so loops are cut).
    pub fn new(node: &str) -> Result<Self, String> {
        let node = HeaderValue::from_str(node).map_err(|_| format!("node id {node:?}"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(Self {
            client,
            node,
            secret: None,
        })
    }

    /// The same forwarder, showing the cluster `secret` on every request it sends.
    pub fn with_secret(self, secret: &str) -> Result<Self, String> {
        let mut secret = HeaderValue::from_str(secret)
            .map_err(|_| "the cluster secret is not a valid header value".to_string())?;
        secret.set_sensitive(true);
        Ok(Self {
            secret: Some(secret),
            ..self
        })
    }

    /// Whether `headers` show the cluster `secret` (compared in constant time).
    pub fn shows_secret(headers: &HeaderMap, secret: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        headers
            .get(CLUSTER_SECRET)
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(secret.as_bytes())))
    }

    /// Removes the marks a peer puts on a forwarded request (from a request that is not a
    /// peer's, so they count for nothing).
    pub fn strip_marks(headers: &mut HeaderMap) {
        headers.remove(FORWARDED_BY);
        headers.remove(CLUSTER_SECRET);
    }

    /// Whether `request` was already forwarded by a node (so it must be served here).
    pub fn was_forwarded(request: &Request<Body>) -> bool {
        request.headers().contains_key(FORWARDED_BY)
    }

    /// Sends `request` to the node at `to` (`host:port`) and streams its answer back.
    pub async fn forward(&self, to: &str, mut request: Request<Body>) -> Response<Body> {
        if Self::was_forwarded(&request) {
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The project is moving between servers; try again shortly.",
            );
        }
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let uri: Uri = match format!("http://{to}{path}").parse() {
            Ok(uri) => uri,
            Err(_) => {
                return refusal(StatusCode::BAD_GATEWAY, "The project's server is misnamed.");
            }
        };
        let client_upgrade = upgrade_protocol(request.headers())
            .map(|protocol| (protocol, hyper::upgrade::on(&mut request)));
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let (mut parts, body) = request.into_parts();
        parts.uri = uri;
        parts.version = axum::http::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        if let Some((protocol, _)) = &client_upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        if let Some(ip) = peer {
            append_forwarded_for(&mut parts.headers, ip);
        }
        parts.headers.insert(FORWARDED_BY, self.node.clone());
        match &self.secret {
            Some(secret) => parts.headers.insert(CLUSTER_SECRET, secret.clone()),
            None => parts.headers.remove(CLUSTER_SECRET),
        };
        let outgoing = Request::from_parts(parts, body);

        let mut response = match self.client.request(outgoing).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(to, error = %e, "forwarding failed");
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The project's server cannot be reached; try again shortly.",
                );
            }
        };

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some((_, client_side)) = client_upgrade else {
                return refusal(StatusCode::BAD_GATEWAY, "Unexpected protocol switch.");
            };
            let owner_side = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                let (Ok(client_side), Ok(owner_side)) = tokio::join!(client_side, owner_side)
                else {
                    return;
                };
                let mut client_side = TokioIo::new(client_side);
                let mut owner_side = TokioIo::new(owner_side);
                let _ = tokio::io::copy_bidirectional(&mut client_side, &mut owner_side).await;
            });
            let (mut parts, _) = response.into_parts();
            let protocol = parts.headers.get(header::UPGRADE).cloned();
            strip_hop_by_hop(&mut parts.headers);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(protocol) = protocol {
                parts.headers.insert(header::UPGRADE, protocol);
            }
            return Response::from_parts(parts, Body::empty());
        }

        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Response::from_parts(parts, Body::new(body))
    }
}

/// The protocol a request asks to upgrade to, when it does.
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if asks {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Drops the headers that belong to one connection, including those `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, ip: std::net::IpAddr) {
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(before) => format!("{before}, {ip}"),
        None => ip.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
}

/// An answer in PocketBase's error envelope.
fn refusal(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "status": status.as_u16(), "message": message, "data": {} });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn serve(router: Router) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        addr
    }

    /// An owner with an echo route, an event stream and a raw upgrade that echoes bytes.
    async fn owner() -> SocketAddr {
        let router = Router::new()
            .route(
                "/echo",
                axum::routing::any(|request: Request<Body>| async move {
                    let headers = request.headers().clone();
                    let pick = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let query = request.uri().query().unwrap_or("").to_string();
                    let method = request.method().to_string();
                    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                        .await
                        .unwrap();
                    axum::Json(serde_json::json!({
                        "method": method,
                        "query": query,
                        "host": pick("host"),
                        "by": pick(FORWARDED_BY),
                        "for": pick("x-forwarded-for"),
                        "keepAlive": pick("keep-alive"),
                        "body": String::from_utf8_lossy(&body),
                    }))
                }),
            )
            .route(
                "/events",
                get(|| async {
                    let stream = futures_util::stream::unfold(0u32, |n| async move {
                        if n == 3 {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Some((
                            Ok::<_, std::convert::Infallible>(format!("data: {n}\n\n")),
                            n + 1,
                        ))
                    });
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/event-stream")
                        .body(Body::from_stream(stream))
                        .unwrap()
                }),
            )
            .route(
                "/upgrade",
                get(|mut request: Request<Body>| async move {
                    let upgrade = hyper::upgrade::on(&mut request);
                    tokio::spawn(async move {
                        let Ok(upgraded) = upgrade.await else { return };
                        let mut io = TokioIo::new(upgraded);
                        let mut buf = [0u8; 64];
                        while let Ok(n) = io.read(&mut buf).await {
                            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                    Response::builder()
                        .status(StatusCode::SWITCHING_PROTOCOLS)
                        .header(header::CONNECTION, "upgrade")
                        .header(header::UPGRADE, "echo")
                        .body(Body::empty())
                        .unwrap()
                }),
            );
        serve(router).await
    }

    async fn front(to: SocketAddr) -> SocketAddr {
        let forwarder = Forwarder::new("node-a").unwrap();
        let to = to.to_string();
        let router = Router::new().fallback(move |request: Request<Body>| {
            let forwarder = forwarder.clone();
            let to = to.clone();
            async move { forwarder.forward(&to, request).await }
        });
        serve(router).await
    }

    #[tokio::test]
    async fn a_request_reaches_the_owner_with_its_host_body_and_query() {
        let front = front(owner().await).await;
        let answer: serde_json::Value = reqwest_like(
            front,
            "POST /echo?filter=a%3D1 HTTP/1.1\r\nHost: app.example.test\r\nKeep-Alive: 5\r\nConnection: keep-alive, close\r\nContent-Length: 5\r\n\r\nhello",
        )
        .await;
        assert_eq!(answer["method"], "POST");
        assert_eq!(answer["query"], "filter=a%3D1");
        assert_eq!(answer["host"], "app.example.test");
        assert_eq!(answer["by"], "node-a");
        assert_eq!(answer["for"], "127.0.0.1");
        assert_eq!(answer["keepAlive"], "", "hop-by-hop headers stay behind");
        assert_eq!(answer["body"], "hello");
    }

    #[tokio::test]
    async fn a_forwarded_request_is_never_forwarded_again() {
        let front = front(owner().await).await;
        let raw = raw(
            front,
            "GET /echo HTTP/1.1\r\nHost: a.test\r\nx-warren-forwarded-by: node-b\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(raw.starts_with("HTTP/1.1 503"), "{raw}");
        assert!(raw.contains("\"status\":503"), "{raw}");
    }

    #[tokio::test]
    async fn an_unreachable_owner_gets_an_envelope() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let front = front(closed).await;
        let raw = raw(
            front,
            "GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(raw.starts_with("HTTP/1.1 503"), "{raw}");
        assert!(raw.contains("cannot be reached"), "{raw}");
    }

    #[tokio::test]
    async fn an_event_stream_arrives_as_it_is_written() {
        let front = front(owner().await).await;
        let mut s = TcpStream::connect(front).await.unwrap();
        s.write_all(b"GET /events HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let start = std::time::Instant::now();
        let mut seen = String::new();
        let mut firsts = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.contains("data: 2") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream ended early: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            for k in 0..3 {
                if firsts.len() == k && seen.contains(&format!("data: {k}")) {
                    firsts.push(start.elapsed());
                }
            }
        }
        // Each event arrives on its own, not all at the end.
        assert!(
            firsts[1] - firsts[0] >= Duration::from_millis(50),
            "{firsts:?}"
        );
    }

    #[tokio::test]
    async fn an_upgraded_connection_is_tunnelled_both_ways() {
        let front = front(owner().await).await;
        let mut s = TcpStream::connect(front).await.unwrap();
        s.write_all(b"GET /upgrade HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: echo"), "{head}");
        for word in ["ping", "pong"] {
            s.write_all(word.as_bytes()).await.unwrap();
            let mut back = [0u8; 4];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, word.as_bytes());
        }
    }

    async fn raw(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn reqwest_like(addr: SocketAddr, request: &str) -> serde_json::Value {
        let raw = raw(addr, request).await;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
        // The owner answers with a fixed length (no chunking for a JSON body).
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }
}
