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
