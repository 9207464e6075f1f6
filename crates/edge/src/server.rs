//! Serving HTTP on an already-bound listener until a shutdown signal, then draining.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

/// Serves `app` on `listener` (HTTP/1.1 and cleartext HTTP/2) until `shutdown` completes, then
/// stops accepting and waits for in-flight requests to finish. Handlers see the peer address
/// as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves `app` over HTTPS (HTTP/1.1 and HTTP/2 as negotiated by ALPN) on `listener` until
/// `shutdown` completes, then drains like [`serve`].
pub async fn serve_tls(
    listener: crate::TlsListener,
    app: Router,
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
