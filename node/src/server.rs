//! Serving a router on a TCP listener until SIGTERM or SIGINT or a given future, and the JSON 404 every unknown
//! path gets.

use axum::serve::ListenerExt;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;

use crate::api::{ApiError, ErrorCode};

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no endpoint {}", uri.path()))
}

/// Resolves when the process is asked to stop.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Serves `router` on `listen` until SIGTERM or SIGINT (the controller's way to stop).
pub async fn serve(listen: SocketAddr, router: Router) -> anyhow::Result<()> {
    serve_until(listen, router, shutdown_signal()).await
}

/// Serves `router` on `listen` until `stop` resolves, then lets the requests in flight finish.
/// A broker stops this way: it must keep serving through its controlled shutdown, after the
/// first signal.
pub async fn serve_until(
    listen: SocketAddr,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!("listening on {}", listener.local_addr()?);
    // Without TCP_NODELAY a response's last small segment waits, under Nagle's algorithm, for
    // the client's delayed ACK (40 ms on Linux): that was the 40 ms p99 of acks=all produces
    // and of follower fetches carrying batches (BENCHMARKS.md).
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY on an accepted connection: {e}");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}
