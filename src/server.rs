//! The accept loop: hyper with the limits axum's `serve` does not expose (head size, header
//! count, head read timeout, connection cap) and a graceful drain bounded by a timeout.

use crate::{config::ServerConfig, proxy::Edge};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::Semaphore};

/// Serves `edge` on `listener` until `shutdown` completes, then stops accepting and gives
/// in-flight requests up to `drain_timeout` to finish. Requests go straight to
/// [`crate::proxy::handle`]: a router in front (every path is the edge's) cost 5 % of a HIT.
pub async fn serve(
    listener: TcpListener,
    edge: Arc<Edge>,
    cfg: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout.0)
        .max_buf_size(
            usize::try_from(cfg.max_header_bytes.0)
                .unwrap_or(usize::MAX)
                .max(8192),
        )
        .max_headers(cfg.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes.0).unwrap_or(u32::MAX));
    // HTTP/2 connections are pinged when idle and dropped when the peer stops answering.
    builder
        .http2()
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let head_timeout = cfg.header_read_timeout.0;
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let edge = edge.clone();
        let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let edge = edge.clone();
            async move {
                let req = req.map(axum::body::Body::new);
                Ok::<_, Infallible>(crate::proxy::handle(edge, Some(peer), req).await)
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper's head timeout starts only once it has sniffed the protocol version: a
            // client that connects and sends nothing would hold its permit forever.
            let mut first = [0u8; 1];
            match tokio::time::timeout(head_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return drop(permit),
            }
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(cfg.drain_timeout.0) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}
