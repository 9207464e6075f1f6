//! The lean HTTP/1.1 path for long-lived event streams: a connection whose first request is
//! `GET /api/realtime` is read and answered here, so an open SSE stream holds no HTTP
//! connection buffers; every other connection, and this one once its stream ends, is served
//! by hyper exactly as before.
//!
//! The request still goes through the whole application (host dispatch, suspension, quotas,
//! metering); only the byte-level HTTP/1.1 framing of its response is written here. Anything
//! unusual about the request (another method or path, HTTP/1.0, a body, an upgrade, an
//! oversized or malformed head) hands the connection, with every byte read so far, to hyper
//! before the application sees the request.
//!
//! Given a streams runtime, an open stream moves there (request handling stays where it was),
//! and its connection comes back to hyper on the server's runtime once the stream ends.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use axum::serve::Listener;
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

use crate::App;

/// The request line prefix that selects the lean path (then a space or `?`).
const PREFIX: &[u8] = b"GET /api/realtime";
/// How long a new connection may take to send its first bytes, and a lean one its head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head read here; a larger one goes to hyper (which answers it).
const MAX_HEAD: usize = 16 << 10;
/// Headers parsed here at most; more go to hyper.
const MAX_HEADERS: usize = 64;
/// Bytes a client may send while its stream is open (a pipelined request) before it is cut.
const MAX_PIPELINED: usize = 16 << 10;
/// Queued stream frames sent in one write at most.
const MAX_BATCH: usize = 64;
/// Largest ordinary (non-stream) response body written here.
const MAX_BODY: usize = 1 << 20;

/// What lean connections share with the listener.
struct Shared {
    app: App,
    /// Connections handed (back) to hyper.
    to_hyper: mpsc::UnboundedSender<Handed>,
    /// Where open streams run, when not on the listener's runtime.
    streams: Option<Handle>,
    /// Becomes `true` when the server stops; open streams end then.
    stopping: watch::Receiver<bool>,
    /// Subscribed by every lean connection; the server waits for all of them to be dropped.
    open: watch::Sender<()>,
}

/// A TCP listener that keeps lean connections to itself and yields the rest to axum.
pub(crate) struct LeanListener {
    tcp: TcpListener,
    shared: Arc<Shared>,
    from_lean: mpsc::UnboundedReceiver<Handed>,
}

/// A connection for hyper, with the bytes already read from it.
struct Handed {
    socket: Socket,
    read: Vec<u8>,
    addr: SocketAddr,
}

/// A socket registered with the listener's runtime, or one coming back from the streams
/// runtime (registered again when hyper takes it).
enum Socket {
    Here(TcpStream),
    Away(std::net::TcpStream),
}

/// Ends lean streams and waits for their connections when the server stops.
pub(crate) struct Stopper {
    stopping: watch::Sender<bool>,
    shared: Arc<Shared>,
}

impl Stopper {
    /// Tells open streams to end.
    pub(crate) fn stop(&self) {
        let _ = self.stopping.send(true);
    }

    /// Waits until every lean connection is gone.
    pub(crate) async fn drained(&self) {
        self.shared.open.closed().await;
    }
}

impl LeanListener {
    /// Open streams run on `streams` when given, else on the caller's runtime.
    pub(crate) fn new(tcp: TcpListener, app: App, streams: Option<Handle>) -> (Self, Stopper) {
        let (to_hyper, from_lean) = mpsc::unbounded_channel();
        let (stopping_tx, stopping) = watch::channel(false);
        let (open, _) = watch::channel(());
        let shared = Arc::new(Shared {
            app,
            to_hyper,
            streams,
            stopping,
            open,
        });
        let stopper = Stopper {
            stopping: stopping_tx,
            shared: shared.clone(),
        };
        let listener = Self {
            tcp,
            shared,
            from_lean,
        };
        (listener, stopper)
    }
}

impl Listener for LeanListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            tokio::select! {
                Some(Handed { socket, read, addr }) = self.from_lean.recv() => {
                    let stream = match socket {
                        Socket::Here(stream) => stream,
                        Socket::Away(stream) => match TcpStream::from_std(stream) {
                            Ok(stream) => stream,
                            Err(e) => {
                                accept_error(e).await;
                                continue;
                            }
                        },
                    };
                    return (Conn::new(stream, read), addr);
                }
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, addr)) => {
                        tokio::spawn(sort(stream, addr, self.shared.clone()));
                    }
                    Err(e) => accept_error(e).await,
                },
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Like axum's listener: connection errors are the peer's; others (out of descriptors) pause.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept error");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Looks at a new connection's first bytes (without reading them) and serves it lean or hands
/// it to hyper untouched.
async fn sort(stream: TcpStream, addr: SocketAddr, shared: Arc<Shared>) {
    let open = shared.open.subscribe();
    let is_lean = tokio::select! {
        is_lean = starts_lean(&stream) => is_lean,
        _ = stopped(&shared) => return,
    };
    if is_lean {
        lean(stream, addr, shared, open).await;
    } else {
        let _ = shared.to_hyper.send(Handed {
            socket: Socket::Here(stream),
            read: Vec::new(),
            addr,
        });
    }
}

/// Whether the connection's first bytes are `GET /api/realtime` then a space or `?`.
async fn starts_lean(stream: &TcpStream) -> bool {
    let mut buf = [0u8; PREFIX.len() + 1];
    let peek = async {
        loop {
            let n = stream.peek(&mut buf).await.ok()?;
            if n == 0 || !PREFIX.starts_with(&buf[..n.min(PREFIX.len())]) {
                return Some(false);
            }
            if n == buf.len() {
                return Some(matches!(buf[PREFIX.len()], b' ' | b'?'));
            }
            // A partial first segment: wait for the rest.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    matches!(
        tokio::time::timeout(HEAD_TIMEOUT, peek).await,
        Ok(Some(true))
    )
}

/// One lean connection: the head, the application, the response; then hyper for the rest. `open`
/// is held until the connection leaves this path.
async fn lean(
    mut stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    open: watch::Receiver<()>,
) {
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut buf));
    let head_end = tokio::select! {
        head = head => match head {
            Ok(Ok(Some(end))) => end,
            Ok(Ok(None)) => return hand_over(stream, buf, addr, &shared),
            Ok(Err(_)) | Err(_) => return,
        },
        _ = stopped(&shared) => return,
    };
    let Some((request, close)) = parse(&buf[..head_end], addr) else {
        return hand_over(stream, buf, addr, &shared);
    };
    let rest = buf.split_off(head_end);
    drop(buf);
    // Events are small writes each meant to leave at once; Nagle's algorithm would hold one
    // back until the client acknowledges the previous (up to its delayed-ACK timer).
    let _ = stream.set_nodelay(true);
    let response = match shared.app.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let keep_alive = !close && !has_token(response.headers(), "close");
    let streaming = response.status() == StatusCode::OK
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut rest = rest;
    if !streaming {
        let written = write_whole(&mut stream, response).await;
        return finish(stream, written, keep_alive, rest, addr, &shared, false).await;
    }
    let Some(streams) = shared.streams.clone() else {
        let written = write_stream(&mut stream, response, &mut rest, &shared).await;
        return finish(stream, written, keep_alive, rest, addr, &shared, false).await;
    };
    // Moved to the streams runtime: deregistered here, registered there.
    let Ok(away) = stream.into_std() else {
        return;
    };
    streams.spawn(async move {
        let _open = open;
        let Ok(mut stream) = TcpStream::from_std(away) else {
            return;
        };
        let written = write_stream(&mut stream, response, &mut rest, &shared).await;
        finish(stream, written, keep_alive, rest, addr, &shared, true).await;
    });
}

/// After a lean response, hyper serves the connection on when the response was written
/// whole, neither side asked to close and the server is not stopping; otherwise it is shut
/// (or dropped, when broken). A connection `away` on the streams runtime goes back to the
/// listener's runtime.
async fn finish(
    mut stream: TcpStream,
    written: io::Result<bool>,
    keep_alive: bool,
    rest: Vec<u8>,
    addr: SocketAddr,
    shared: &Shared,
    away: bool,
) {
    match written {
        Ok(true) if keep_alive && !*shared.stopping.borrow() => {
            let socket = if away {
                match stream.into_std() {
                    Ok(stream) => Socket::Away(stream),
                    Err(_) => return,
                }
            } else {
                Socket::Here(stream)
            };
            let _ = shared.to_hyper.send(Handed {
                socket,
                read: rest,
                addr,
            });
        }
        Ok(_) => {
            let _ = stream.shutdown().await;
        }
        Err(_) => {}
    }
}

/// Completes when the server stops.
async fn stopped(shared: &Shared) {
    let _ = shared.stopping.clone().wait_for(|s| *s).await;
}

fn hand_over(stream: TcpStream, read: Vec<u8>, addr: SocketAddr, shared: &Shared) {
    let _ = shared.to_hyper.send(Handed {
        socket: Socket::Here(stream),
        read,
        addr,
    });
}

/// Reads until the end of the request head; `Ok(Some(end))` is the index after it, `Ok(None)`
/// a head too large (or a closed connection) for this path.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(at + 4));
        }
        if buf.len() >= MAX_HEAD {
            return Ok(None);
        }
        buf.reserve(1024);
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// The request for the application, and whether the client asked to close after it; `None` when
/// hyper should handle it instead.
fn parse(head: &[u8], addr: SocketAddr) -> Option<(Request<Body>, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = parsed.parse(head).ok()? else {
        return None;
    };
    let path = parsed.path?;
    if parsed.method? != "GET"
        || parsed.version? != 1
        || !(path == "/api/realtime" || path.starts_with("/api/realtime?"))
    {
        return None;
    }
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(path)
        .version(Version::HTTP_11);
    let mut close = false;
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(h.value).ok()?;
        if name == header::CONTENT_LENGTH && value.as_bytes() != b"0"
            || name == header::TRANSFER_ENCODING
            || name == header::UPGRADE
            || name == header::EXPECT
        {
            return None;
        }
        if name == header::CONNECTION {
            let tokens = value.to_str().unwrap_or("");
            if tokens
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            {
                return None;
            }
            close |= tokens
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
        builder = builder.header(name, value);
    }
    let mut request = builder.body(Body::empty()).ok()?;
    request.extensions_mut().insert(ConnectInfo(addr));
    Some((request, close))
}

/// Whether a `Connection` header of `headers` lists `token`.
fn has_token(headers: &axum::http::HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// The status line and headers as hyper writes them, with `framing` (`transfer-encoding` or
/// `content-length`) and a `date`.
fn head(response: &Response<Body>, framing: (&str, &str)) -> Vec<u8> {
    let status = response.status();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        status
            .canonical_reason()
            .unwrap_or("<unknown status code>")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    let mut dated = false;
    for (name, value) in response.headers() {
        if name == header::TRANSFER_ENCODING || name == header::CONTENT_LENGTH {
            continue;
        }
        dated |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let (name, value) = framing;
    if !name.is_empty() {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !dated {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        out.extend_from_slice(format!("date: {date}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Writes a response whose body is collected first (errors: not found, suspended, quota).
/// `Ok(false)` when the connection must close after it.
async fn write_whole(stream: &mut TcpStream, response: Response<Body>) -> io::Result<bool> {
    let status = response.status();
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let (parts, body) = response.into_parts();
    let collected = tokio::time::timeout(
        HEAD_TIMEOUT,
        http_body_util::Limited::new(body, MAX_BODY).collect(),
    )
    .await;
    let Ok(Ok(body)) = collected else {
        return Ok(false);
    };
    let body = body.to_bytes();
    let response = Response::from_parts(parts, Body::empty());
    let length = body.len().to_string();
    let mut out = head(
        &response,
        if no_body {
            ("", "")
        } else {
            ("content-length", &length)
        },
    );
    if !no_body {
        out.extend_from_slice(&body);
    }
    stream.write_all(&out).await?;
    Ok(true)
}

/// Streams an event-stream response with chunked framing until it ends, the client goes
/// away or the server stops. Bytes the client sends meanwhile are kept in `rest` (for the
/// next request). `Ok(false)` when the connection must close after it.
async fn write_stream(
    stream: &mut TcpStream,
    response: Response<Body>,
    rest: &mut Vec<u8>,
    shared: &Shared,
) -> io::Result<bool> {
    stream
        .write_all(&head(&response, ("transfer-encoding", "chunked")))
        .await?;
    let mut body = response.into_body();
    let mut stopping = shared.stopping.clone();
    loop {
        if *stopping.borrow_and_update() {
            break;
        }
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    let mut ready = Vec::new();
                    if let Ok(data) = frame.into_data() {
                        ready.push(data);
                    }
                    // Events already queued behind this one leave in the same write: a client
                    // that fell behind costs one syscall per batch, not one per event.
                    let mut ended = false;
                    while ready.len() < MAX_BATCH {
                        match body.frame().now_or_never() {
                            Some(Some(Ok(frame))) => {
                                if let Ok(data) = frame.into_data() {
                                    ready.push(data);
                                }
                            }
                            Some(Some(Err(_))) => return Ok(false),
                            Some(None) => {
                                ended = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    write_chunk(stream, &ready).await?;
                    if ended {
                        break;
                    }
                }
                // An aborted body ends the connection without the last chunk, as in hyper.
                Some(Err(_)) => return Ok(false),
                None => break,
            },
            ready = stream.readable() => {
                ready?;
                let mut scratch = [0u8; 512];
                match stream.try_read(&mut scratch) {
                    // The client went away: nobody reads the stream any more.
                    Ok(0) => return Ok(false),
                    Ok(n) => {
                        rest.extend_from_slice(&scratch[..n]);
                        if rest.len() > MAX_PIPELINED {
                            return Ok(false);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            },
            _ = stopping.changed() => {}
        }
    }
    stream.write_all(b"0\r\n\r\n").await?;
    Ok(true)
}

/// Body frames as one chunk of a chunked body, written with one vectored write where the
/// socket takes it all (no copy of the data).
async fn write_chunk(stream: &mut TcpStream, frames: &[Bytes]) -> io::Result<()> {
    let len: usize = frames.iter().map(Bytes::len).sum();
    if len == 0 {
        return Ok(());
    }
    let size = format!("{len:X}\r\n");
    let mut parts = Vec::with_capacity(frames.len() + 2);
    parts.push(io::IoSlice::new(size.as_bytes()));
    parts.extend(frames.iter().map(|f| io::IoSlice::new(f)));
    parts.push(io::IoSlice::new(b"\r\n"));
    send_all(stream, &mut parts).await
}

/// Writes all of `parts` with `sendmsg(2)`: a socket write without the per-call work of the
/// file layer (position lock, permission and notification hooks) that `writev(2)` goes
/// through, which shows when one event goes to thousands of sockets.
async fn send_all(stream: &TcpStream, mut parts: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
    while !parts.is_empty() {
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            let mut control = SendAncillaryBuffer::default();
            Ok(sendmsg(stream, parts, &mut control, SendFlags::NOSIGNAL)?)
        });
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A connection served by hyper: bytes already read from it come first.
pub struct Conn {
    read: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl Conn {
    fn new(inner: TcpStream, read: Vec<u8>) -> Self {
        Self { read, at: 0, inner }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.read.len() {
            let n = (this.read.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.read[this.at..this.at + n]);
            this.at += n;
            if this.at == this.read.len() {
                this.read = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::Router;
    use axum::routing::get;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Events sent to the open stream, and how many streams were opened.
    #[derive(Clone, Default)]
    struct Events {
        senders: Arc<Mutex<Vec<mpsc::UnboundedSender<String>>>>,
        /// The runtime each stream event was produced on.
        runtimes: Arc<Mutex<Vec<tokio::runtime::Id>>>,
    }

    async fn start() -> (SocketAddr, Events, tokio::sync::oneshot::Sender<()>) {
        start_with(None).await
    }

    /// A streams runtime apart from the test's, alive for the whole test process.
    fn streams() -> Handle {
        static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
        RUNTIME
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap()
            })
            .handle()
            .clone()
    }

    async fn start_with(
        streams: Option<Handle>,
    ) -> (SocketAddr, Events, tokio::sync::oneshot::Sender<()>) {
        let events = Events::default();
        let opened = events.clone();
        let app = Router::new()
            .route(
                "/api/realtime",
                get(move |uri: axum::http::Uri| {
                    let opened = opened.clone();
                    async move {
                        if uri.query() == Some("refuse") {
                            return Response::builder()
                                .status(StatusCode::TOO_MANY_REQUESTS)
                                .body(Body::from("refused"))
                                .unwrap();
                        }
                        let (tx, rx) = mpsc::unbounded_channel::<String>();
                        opened.senders.lock().unwrap().push(tx);
                        let runtimes = opened.runtimes.clone();
                        let stream = futures_util::stream::unfold(rx, move |mut rx| {
                            let runtimes = runtimes.clone();
                            async move {
                                let event = rx.recv().await?;
                                runtimes.lock().unwrap().push(Handle::current().id());
                                Some((Ok::<_, std::convert::Infallible>(event), rx))
                            }
                        });
                        Response::builder()
                            .header(header::CONTENT_TYPE, "text/event-stream")
                            .body(Body::from_stream(stream))
                            .unwrap()
                    }
                }),
            )
            .route("/api/health", get(|| async { "healthy" }));
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(crate::serve_with_streams(
            tcp,
            App::new(app),
            streams,
            async move {
                let _ = stopped.await;
            },
        ));
        (addr, events, stop)
    }

    /// Reads until `needle` has arrived (bounded), returning everything read.
    async fn read_until(socket: &mut TcpStream, seen: &mut Vec<u8>, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !String::from_utf8_lossy(seen).contains(needle) {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, socket.read(&mut buf))
                .await
                .expect("timed out")
                .unwrap();
            assert!(
                n > 0,
                "closed before {needle:?}: {}",
                String::from_utf8_lossy(seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(seen).into_owned()
    }

    /// Opens a stream on a new connection; the connection and the stream's event sender.
    async fn open_stream(
        addr: SocketAddr,
        events: &Events,
    ) -> (TcpStream, mpsc::UnboundedSender<String>) {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(b"GET /api/realtime HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        wait_streams(events, 1).await;
        let tx = events.senders.lock().unwrap()[0].clone();
        (socket, tx)
    }

    /// The complete chunks of a chunked response's body (`text` from the status line on).
    fn dechunk(text: &str) -> String {
        let mut rest = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let mut body = String::new();
        while let Some(line_end) = rest.find("\r\n") {
            let size = usize::from_str_radix(&rest[..line_end], 16).unwrap();
            let start = line_end + 2;
            if rest.len() < start + size + 2 {
                break;
            }
            body.push_str(&rest[start..start + size]);
            assert_eq!(&rest[start + size..start + size + 2], "\r\n");
            rest = &rest[start + size + 2..];
        }
        body
    }

    async fn wait_streams(events: &Events, n: usize) {
        for _ in 0..500 {
            if events.senders.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("stream {n} never opened");
    }

    #[tokio::test]
    async fn a_stream_is_chunked_and_the_connection_serves_on_after_it() {
        let started = start().await;
        let runtimes = started.1.runtimes.clone();
        stream_then_request(started).await;
        let runtimes = runtimes.lock().unwrap().clone();
        assert_eq!(runtimes, vec![Handle::current().id()]);
    }

    #[tokio::test]
    async fn a_stream_on_a_streams_runtime_serves_on_after_it_on_the_listeners() {
        let started = start_with(Some(streams())).await;
        let runtimes = started.1.runtimes.clone();
        stream_then_request(started).await;
        let runtimes = runtimes.lock().unwrap().clone();
        assert_eq!(runtimes, vec![streams().id()]);
    }

    async fn stream_then_request(
        (addr, events, _stop): (SocketAddr, Events, tokio::sync::oneshot::Sender<()>),
    ) {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(b"GET /api/realtime HTTP/1.1\r\nhost: a.localhost\r\n\r\n")
            .await
            .unwrap();
        wait_streams(&events, 1).await;
        let tx = events.senders.lock().unwrap()[0].clone();
        tx.send("data:one\n\n".into()).unwrap();
        let mut seen = Vec::new();
        let text = read_until(&mut socket, &mut seen, "data:one\n\n\r\n").await;
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains("content-type: text/event-stream\r\n"),
            "{text}"
        );
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
        assert!(text.contains("\r\n\r\nA\r\ndata:one\n\n\r\n"), "{text}");
        // The stream ends with the last chunk; the next request is served on this connection.
        events.senders.lock().unwrap().clear();
        drop(tx);
        socket
            .write_all(b"GET /api/health HTTP/1.1\r\nhost: a.localhost\r\n\r\n")
            .await
            .unwrap();
        let text = read_until(&mut socket, &mut seen, "healthy").await;
        assert!(text.contains("0\r\n\r\nHTTP/1.1 200 OK\r\n"), "{text}");
    }

    #[tokio::test]
    async fn queued_events_arrive_in_order_whatever_the_batching() {
        let (addr, events, _stop) = start().await;
        let (mut socket, tx) = open_stream(addr, &events).await;
        for n in 0..200 {
            tx.send(format!("data:{n}\n\n")).unwrap();
        }
        let mut seen = Vec::new();
        let text = read_until(&mut socket, &mut seen, "data:199\n\n").await;
        // Strip the chunk framing and compare the event stream itself.
        let expected: String = (0..200).map(|n| format!("data:{n}\n\n")).collect();
        assert_eq!(dechunk(&text), expected);
    }

    #[tokio::test]
    async fn a_stream_larger_than_the_socket_buffers_arrives_whole_and_in_order() {
        let (addr, events, _stop) = start().await;
        let (mut socket, tx) = open_stream(addr, &events).await;
        // 16 MiB queued before the client reads a byte: writes find full buffers and wait.
        let filler = "x".repeat(8 << 10);
        for n in 0..2048 {
            tx.send(format!("data:{n} {filler}\n\n")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut body = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let last = format!("data:2047 {filler}\n\n\r\n");
        while !body.ends_with(last.as_bytes()) {
            let mut buf = vec![0u8; 64 << 10];
            let n = tokio::time::timeout_at(deadline, socket.read(&mut buf))
                .await
                .expect("timed out")
                .unwrap();
            assert!(n > 0, "closed early");
            body.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(body).unwrap();
        let events_text = dechunk(&text);
        let expected: String = (0..2048)
            .map(|n| format!("data:{n} {filler}\n\n"))
            .collect();
        assert!(
            events_text == expected,
            "events arrived out of order or damaged"
        );
    }

    #[tokio::test]
    async fn other_responses_keep_the_connection_alive_and_other_requests_go_to_hyper() {
        let (addr, _events, _stop) = start().await;
        let mut socket = TcpStream::connect(addr).await.unwrap();
        // A refused stream, then two pipelined requests, all on one connection.
        socket
            .write_all(
                b"GET /api/realtime?refuse HTTP/1.1\r\nhost: a\r\n\r\nGET /nope HTTP/1.1\r\nhost: a\r\n\r\nGET /api/health HTTP/1.1\r\nhost: a\r\n\r\n",
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        let text = read_until(&mut socket, &mut seen, "healthy").await;
        assert_eq!(text.matches("HTTP/1.1 ").count(), 3, "{text}");
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(text.contains("content-length: 7\r\n"), "{text}");
        assert!(text.contains("HTTP/1.1 404 Not Found\r\n"), "{text}");
        // HTTP/1.0 and bodies are hyper's.
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(b"GET /api/realtime HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let text = read_until(&mut socket, &mut seen, "\r\n\r\n").await;
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    }

    #[tokio::test]
    async fn a_closed_client_ends_its_stream_and_shutdown_ends_open_ones() {
        close_and_shutdown(start().await).await;
    }

    #[tokio::test]
    async fn streams_on_a_streams_runtime_end_when_their_client_closes_or_at_shutdown() {
        close_and_shutdown(start_with(Some(streams())).await).await;
    }

    async fn close_and_shutdown(
        (addr, events, stop): (SocketAddr, Events, tokio::sync::oneshot::Sender<()>),
    ) {
        let mut first = TcpStream::connect(addr).await.unwrap();
        first
            .write_all(b"GET /api/realtime HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        second
            .write_all(b"GET /api/realtime HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        wait_streams(&events, 2).await;
        drop(first);
        // The server notices the closed client and drops its stream (the sender sees it).
        let tx = events.senders.lock().unwrap()[0].clone();
        for _ in 0..500 {
            if tx.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            tx.is_closed(),
            "the stream of a closed client was not dropped"
        );
        stop.send(()).unwrap();
        let mut seen = Vec::new();
        let text = read_until(&mut second, &mut seen, "0\r\n\r\n").await;
        assert!(text.ends_with("0\r\n\r\n"), "{text}");
        let mut rest = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "the connection closes at shutdown");
    }
}
