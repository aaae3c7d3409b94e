//! Serving a router on a TCP listener until SIGTERM or SIGINT or a given future, and the JSON 404 every unknown
//! path gets.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
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
///
/// HTTP/1.1 with half-closed connections served: a request whose sender shut its write side
/// (or died) after sending it is still answered, as Kafka's socket server handles a request
/// that was received whole. A fetch of a previous incarnation that a slow link delivers after
/// its sender was killed therefore reaches the replica code, which must refuse it by its broker
/// epoch (docs/replication.md, B2) — hyper's default would drop it on the EOF and hide the rule.
pub async fn serve_until(
    listen: SocketAddr,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!("listening on {}", listener.local_addr()?);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.half_close(true).timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: wait a little rather than spin, as axum::serve does.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        // Without TCP_NODELAY a response's last small segment waits, under Nagle's algorithm,
        // for the client's delayed ACK (40 ms on Linux): that was the 40 ms p99 of acks=all
        // produces and of follower fetches carrying batches (BENCHMARKS.md).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY on an accepted connection: {e}");
        }
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}
