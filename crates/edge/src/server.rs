//! Serving HTTP on an already-bound listener until a shutdown signal, then draining.

use std::future::Future;
use std::net::SocketAddr;

use axum::ServiceExt;
use tokio::net::TcpListener;

use crate::App;

/// Serves `app` on `listener` (HTTP/1.1 and cleartext HTTP/2) until `shutdown` completes, then
/// stops accepting and waits for in-flight requests to finish. Handlers see the peer address
/// as `ConnectInfo<SocketAddr>`. Connections that open with `GET /api/realtime` stream their
/// events without HTTP connection buffers (see `lean`); their streams end at shutdown.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_streams(listener, app, None, shutdown).await
}

/// [`serve`], with open event streams running on the `streams` runtime when given (requests
/// are handled on the caller's runtime either way).
pub async fn serve_with_streams(
    listener: TcpListener,
    app: App,
    streams: Option<tokio::runtime::Handle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (listener, stopper) = crate::lean::LeanListener::new(listener, app.clone(), streams);
    let stopper = std::sync::Arc::new(stopper);
    let stop = stopper.clone();
    let shutdown = async move {
        shutdown.await;
        stop.stop();
    };
    use axum::serve::ListenerExt;
    // `tap_io` gives the listener axum's `ConnectInfo<SocketAddr>` support.
    let served = axum::serve(
        listener.tap_io(|_| {}),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    stopper.drained().await;
    served
}

/// Serves `app` over HTTPS (HTTP/1.1 and HTTP/2 as negotiated by ALPN) on `listener` until
/// `shutdown` completes, then drains like [`serve`].
pub async fn serve_tls(
    listener: crate::TlsListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // `tap_io` gives the listener axum's `ConnectInfo<SocketAddr>` support.
    axum::serve(
        listener.tap_io(|_| {}),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
