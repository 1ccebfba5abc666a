//! The accept loop: hyper with the limits axum's `serve` does not expose (head size, header
//! count, head read timeout, connection cap) and a graceful drain bounded by a timeout.
//!
//! The binary runs one such loop per core, each on its own thread with a single-threaded
//! runtime and its own listening socket (see [`bind`] and [`Loops`]), the way nginx runs one
//! worker process per core: a connection, the fill it starts and the origin connection it uses
//! then live on one thread, and a request pays no cross-thread wake-ups or work-stealing.

use crate::{config::ServerConfig, proxy::Edge};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use std::{convert::Infallible, future::Future, io, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::{Semaphore, watch},
};

/// Serves `edge` on `listener` until `shutdown` completes, then stops accepting and gives
/// in-flight requests up to `drain_timeout` to finish. Requests go straight to
/// [`crate::proxy::handle`]: a router in front (every path is the edge's) cost 5 % of a HIT.
pub async fn serve(
    listener: TcpListener,
    edge: Arc<Edge>,
    cfg: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    serve_with(listener, edge, cfg, permits, shutdown).await;
}

/// [`serve`], with a connection cap shared with other loops.
async fn serve_with(
    listener: TcpListener,
    edge: Arc<Edge>,
    cfg: &ServerConfig,
    permits: Arc<Semaphore>,
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

/// Binds `n` listening sockets to `addr` with `SO_REUSEPORT`, one per event loop: the kernel
/// spreads new connections across them by address hash. Runs inside a runtime (tokio registers
/// a socket when it listens); the sockets come back unregistered, for the loops to adopt.
pub async fn bind(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    // With SO_REUSEPORT a second edgecache could bind the same port and silently take half of
    // the connections: claim the address alone first, so that a busy port is an error.
    let addr = std::net::TcpListener::bind(addr)?.local_addr()?;
    (0..n.max(1))
        .map(|_| {
            let s = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            s.set_reuseaddr(true)?;
            s.set_reuseport(true)?;
            s.bind(addr)?;
            s.listen(1024)?.into_std()
        })
        .collect()
}

/// Event loops serving one edge, one thread each, sharing the connection cap.
pub struct Loops {
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Loops {
    /// Starts one loop per listener (from [`bind`]).
    pub fn start(
        listeners: Vec<std::net::TcpListener>,
        edge: Arc<Edge>,
        cfg: &ServerConfig,
    ) -> io::Result<Self> {
        let (stop, _) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(cfg.max_connections));
        let mut threads = Vec::with_capacity(listeners.len());
        for (i, l) in listeners.into_iter().enumerate() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (edge, cfg, permits) = (edge.clone(), cfg.clone(), permits.clone());
            let mut rx = stop.subscribe();
            let t = std::thread::Builder::new()
                .name(format!("edgecache-io-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        let listener = match TcpListener::from_std(l) {
                            Ok(l) => l,
                            Err(e) => return tracing::error!(error = %e, "cannot adopt listener"),
                        };
                        let shutdown = async move {
                            let _ = rx.wait_for(|stop| *stop).await;
                        };
                        serve_with(listener, edge, &cfg, permits, shutdown).await;
                    });
                })?;
            threads.push(t);
        }
        Ok(Self { threads, stop })
    }

    /// How many loops run.
    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// Stops accepting on every loop, lets each drain (bounded by `drain_timeout`) and waits
    /// for their threads.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let threads = self.threads;
        let joined = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| t.join())
                .filter(Result::is_err)
                .count()
        })
        .await;
        if !matches!(joined, Ok(0)) {
            tracing::error!("an event loop ended in a panic");
        }
    }
}
