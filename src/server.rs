//! The accept loop: hyper with the limits axum's `serve` does not expose (head size, header
//! count, head read timeout, connection cap) and a graceful drain bounded by a timeout.
//!
//! By default the binary runs one loop on a work-stealing runtime. With `server.threads = N` it
//! runs N loops instead, each on its own thread with a single-threaded runtime and its own
//! listening socket (see [`bind`] and [`Loops`]), the way nginx runs one worker process per
//! core: a connection, the fill it starts and the origin connection it uses (each loop has its
//! own pool, chosen by `proxy::Client::event_loop`) stay on one thread, with no
//! cross-thread wake-ups or work-stealing between them.

pub(crate) mod tls;

use crate::{
    config::ServerConfig,
    proxy::LiveEdge,
    sendbuf::{Metered, SendBuffers, SendMeter},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use std::{convert::Infallible, future::Future, io, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::{Semaphore, watch},
    time::Instant,
};

/// Serves `edge` on `listener` until `shutdown` completes, then stops accepting and gives
/// in-flight requests up to `drain_timeout` to finish. Requests go straight to
/// [`crate::proxy::handle`]: every path is the edge's, so a router in front would only add
/// work to every HIT.
///
/// With `tls`, its listener serves HTTPS beside: the same edge, the same cap on connections
/// (`server.max_connections` counts both), the same drain.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<(TcpListener, Arc<tls::Certs>)>,
    edge: Arc<LiveEdge>,
    cfg: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let tls = match tls {
        Some((l, certs)) => Some((l, tls::Accept::new(certs, cfg, cfg.max_tls_handshakes)?)),
        None => None,
    };
    let buffers = SendBuffers::new(cfg.max_send_buffers.0);
    serve_both(listener, tls, edge, cfg, (permits, buffers), 0, shutdown).await;
    Ok(())
}

/// Serves `listener` and, given one, a TLS listener beside it on the same event loop, under
/// one connection cap, one limit of send buffers and one shutdown.
async fn serve_both(
    listener: TcpListener,
    tls: Option<(TcpListener, tls::Accept)>,
    edge: Arc<LiveEdge>,
    cfg: &ServerConfig,
    limits: (Arc<Semaphore>, Arc<SendBuffers>),
    event_loop: usize,
    shutdown: impl Future<Output = ()>,
) {
    use futures_util::FutureExt;
    let Some((tls_listener, handshake)) = tls else {
        return serve_with(listener, None, edge, cfg, limits, event_loop, shutdown).await;
    };
    let shutdown = shutdown.shared();
    let plain = serve_with(
        listener,
        None,
        edge.clone(),
        cfg,
        limits.clone(),
        event_loop,
        shutdown.clone(),
    );
    let secure = serve_with(
        tls_listener,
        Some(handshake),
        edge,
        cfg,
        limits,
        event_loop,
        shutdown,
    );
    tokio::join!(plain, secure);
}

/// [`serve`] of one listener, with the connection cap and the send buffers' limit given (an
/// event loop's share of them); `tls` when the listener speaks TLS.
async fn serve_with(
    listener: TcpListener,
    tls: Option<tls::Accept>,
    edge: Arc<LiveEdge>,
    cfg: &ServerConfig,
    (permits, buffers): (Arc<Semaphore>, Arc<SendBuffers>),
    event_loop: usize,
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
        .max_header_list_size(u32::try_from(cfg.max_header_bytes.0).unwrap_or(u32::MAX))
        // One client's share of the edge, and the rapid-reset flood (CVE-2023-44487): streams
        // reset before they were taken up, or reset by the edge for the client's errors, close
        // the connection past these.
        .max_concurrent_streams(cfg.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(cfg.http2_max_pending_accept_reset_streams)
        .max_local_error_reset_streams(cfg.http2_max_local_error_reset_streams);
    // HTTP/2 connections are pinged when idle and dropped when the peer stops answering.
    builder
        .http2()
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let head_timeout = cfg.header_read_timeout.0;
    let send_timeout = cfg.send_timeout.0;
    let min_rate = MinRate::of(cfg);
    let graceful = GracefulShutdown::new();
    // Connections still open when the drain is over are closed (their tasks aborted), not
    // left running: a set of their tasks, reaped as they end, rather than a signal each would
    // poll at every wake-up.
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        // A handshake slot is taken before the accept: beyond the cap, connections wait in the
        // kernel's queue.
        let slot = match &tls {
            Some(h) => Some(tokio::select! {
                p = h.slots.clone().acquire_owned() => p.expect("semaphore never closed"),
                () = &mut shutdown => break,
            }),
            None => None,
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
        // Whether the peer is a trusted proxy, by the config of now (a request checks again if a
        // reload changed the list).
        let trusted = edge.load().settings.trusts(peer.ip().to_canonical());
        let client = crate::proxy::Client::new(peer, event_loop, trusted).over_tls(tls.is_some());
        // Kept across reloads: the counters of this connection's handshake.
        let metrics = tls.as_ref().map(|_| edge.load().metrics.clone());
        let meter = SendMeter::new(buffers.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        while connections.try_join_next().is_some() {}
        let tls = tls.clone();
        connections.spawn(async move {
            let stream = SendTimeout::new(stream, send_timeout)
                .min_rate(min_rate)
                .meter(meter.clone());
            match tls {
                None => {
                    if !version_known(stream.get_ref(), Instant::now() + head_timeout).await {
                        return drop(permit);
                    }
                    let svc = service(edge, client, meter);
                    serve_connection(TokioIo::new(stream), &builder, svc, watcher).await;
                }
                Some(h) => {
                    let Some(stream) = h.handshake(stream, slot, metrics.as_deref()).await else {
                        return drop(permit);
                    };
                    let client = client.with_sni(stream.get_ref().1.server_name());
                    let svc = service(edge, client, meter);
                    // ALPN decides the version, so hyper need not sniff for the HTTP/2 preface
                    // (RFC 9113 section 3.2: over TLS, `h2` is negotiated, never guessed);
                    // without ALPN, HTTP/1.1.
                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        let deadline = Instant::now() + head_timeout;
                        let Some(stream) = tls::read_preface(stream, deadline).await else {
                            return drop(permit);
                        };
                        let builder = builder.http2_only();
                        serve_connection(TokioIo::new(stream), &builder, svc, watcher).await;
                    } else {
                        let builder = builder.http1_only();
                        serve_connection(TokioIo::new(stream), &builder, svc, watcher).await;
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(cfg.drain_timeout.0) => {
            tracing::warn!("drain timeout reached; closing remaining connections");
            connections.abort_all();
        }
    }
}

/// A streamed body (one of unknown length: a fill's, a pass-through's) hands its chunks on only
/// as the connection's client takes them (see `sendbuf`). A body of known length is
/// a stored object's, already counted against the cache's budget: it goes as it is.
fn metered(
    res: http::Response<axum::body::Body>,
    meter: Arc<SendMeter>,
) -> http::Response<axum::body::Body> {
    use http_body::Body as _;
    if res.body().size_hint().exact().is_some() {
        return res;
    }
    res.map(|b| axum::body::Body::new(Metered::new(b, meter)))
}

/// What serves the requests of `client`'s connection: [`crate::proxy::handle`], each request
/// whole by the config current when it arrived, its streamed bodies metered by `meter`.
fn service(
    edge: Arc<LiveEdge>,
    client: crate::proxy::Client,
    meter: Arc<SendMeter>,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<axum::body::Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<axum::body::Body>, Infallible>> + Send,
> + Send
+ 'static {
    hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let edge = edge.load();
        let client = client.clone();
        // HTTP/1 only: one response at a time, so one body waits on the meter. HTTP/2's
        // streams are held to their flow-control windows instead.
        let meter = (req.version() < http::Version::HTTP_2).then(|| meter.clone());
        async move {
            let req = req.map(axum::body::Body::new);
            let res = crate::proxy::handle(edge, Some(client), req).await;
            Ok::<_, Infallible>(match meter {
                Some(m) => metered(res, m),
                None => res,
            })
        }
    })
}

/// Serves one connection's requests with `svc` until it closes or the drain ends it.
async fn serve_connection<I, S>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    svc: S,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<Incoming>,
            Response = http::Response<axum::body::Body>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(io, svc).into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The HTTP/2 connection preface (RFC 9113 section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits, until `deadline`, for enough of the first bytes to tell HTTP/1 from HTTP/2. hyper's
/// head timeout starts only once its own sniffing is done, and that waits for as long as the
/// bytes so far could still begin the HTTP/2 preface: a client that sends nothing, or only
/// `P`, would hold its connection slot forever. False if the deadline passes or the client
/// goes away first.
async fn version_known(stream: &tokio::net::TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        if n == buf.len() || buf[..n] != H2_PREFACE[..n] {
            return true;
        }
        // A prefix of the preface: wait for more. Peeking again at once would find the same
        // bytes ready and spin; real clients send the preface whole, so this path is rare.
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep_until(deadline.min(Instant::now() + Duration::from_millis(10))).await;
    }
}

/// A connection whose writes fail once the client has taken nothing for `timeout`: a client
/// that stops reading (or a vanished one the kernel still retransmits to) must not hold its
/// slot, its response and the object it pins forever. The clock runs only while a write is
/// blocked, and restarts whenever the client takes some bytes (nginx's `send_timeout`).
///
/// That alone is re-armed by every trickle: a client that takes a few bytes a minute keeps
/// its response, and what it pins, for as long as it likes. So it also enforces a minimum
/// rate: once writes have been blocked on the client for `MinRate::window` in all, the bytes
/// it took meanwhile must come to `MinRate::bytes_per_sec` over that time, or the connection
/// is dropped. Only time spent blocked counts: an idle keep-alive connection, or a client that
/// reads as fast as the edge writes, never accumulates any.
pub(crate) struct SendTimeout<S> {
    /// The connection the response is written to.
    inner: S,
    /// How long a blocked write may wait for the client to take some bytes (`server.send_timeout`).
    timeout: Duration,
    /// `server.min_send_rate` over `server.min_send_rate_window`; `None`: not enforced.
    min_rate: Option<MinRate>,
    /// The clock, made the first time a write blocks and reused after that.
    clock: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// Since when a write has been blocked, if one is.
    blocked_since: Option<Instant>,
    /// When the blocked write fails for want of progress (`timeout` after it blocked).
    stall_deadline: Instant,
    /// Time writes spent blocked in the current rate window, up to `blocked_since`.
    blocked: Duration,
    /// Bytes the client took in the current rate window.
    taken: u64,
    /// What the client took and the writer handed on, for the response bodies that wait on it.
    meter: Option<Arc<SendMeter>>,
}

/// The slowest a client may take a response, averaged over the time writes wait on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MinRate {
    /// `server.min_send_rate`, per second.
    pub(crate) bytes_per_sec: u64,
    /// `server.min_send_rate_window`: blocked time over which the rate is averaged.
    pub(crate) window: Duration,
}

impl MinRate {
    /// What `server.min_send_rate` and its window ask for; `None` when it is off.
    fn of(cfg: &ServerConfig) -> Option<Self> {
        (cfg.min_send_rate.0 > 0).then_some(MinRate {
            bytes_per_sec: cfg.min_send_rate.0,
            window: cfg.min_send_rate_window.0,
        })
    }
}

impl<S> SendTimeout<S> {
    /// The connection underneath.
    fn get_ref(&self) -> &S {
        &self.inner
    }

    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            min_rate: None,
            clock: None,
            blocked_since: None,
            stall_deadline: Instant::now(),
            blocked: Duration::ZERO,
            taken: 0,
            meter: None,
        }
    }

    /// Also drops a client that takes less than `rate` (see the type's docs).
    pub(crate) fn min_rate(mut self, rate: Option<MinRate>) -> Self {
        self.min_rate = rate.filter(|r| r.bytes_per_sec > 0 && !r.window.is_zero());
        self
    }

    /// Reports the bytes the client takes to `meter`.
    pub(crate) fn meter(mut self, meter: Arc<SendMeter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// When the current rate window is over, if a write stays blocked until then.
    fn window_end(&self, since: Instant) -> Option<Instant> {
        let r = self.min_rate?;
        Some(since + r.window.saturating_sub(self.blocked))
    }

    /// Closes the rate window that is over at `now`: an error if the client took too little
    /// in it, else a new window starts.
    fn judge_window(&mut self, now: Instant) -> io::Result<()> {
        let Some(r) = self.min_rate else {
            return Ok(());
        };
        if let Some(since) = self.blocked_since.replace(now) {
            self.blocked += now.saturating_duration_since(since);
        }
        if self.blocked < r.window {
            return Ok(());
        }
        let owed = (r.bytes_per_sec as f64 * self.blocked.as_secs_f64()) as u64;
        if self.taken < owed {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client took its response below server.min_send_rate",
            ));
        }
        self.blocked = Duration::ZERO;
        self.taken = 0;
        Ok(())
    }

    /// Records the outcome of a write: progress disarms the clock, a blocked write arms it
    /// (once) and fails when it runs out or the client is found below the minimum rate.
    fn check<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        r: std::task::Poll<io::Result<T>>,
        written: impl FnOnce(&T) -> usize,
    ) -> std::task::Poll<io::Result<T>> {
        use std::task::Poll;
        if let Poll::Ready(r) = r {
            if let Ok(v) = &r {
                let n = written(v);
                self.taken += n as u64;
                if let Some(m) = &self.meter {
                    m.took(n);
                }
            }
            if self.blocked_since.is_some() {
                let now = Instant::now();
                if let Err(e) = self.judge_window(now) {
                    return Poll::Ready(Err(e));
                }
                self.blocked_since = None;
            }
            return Poll::Ready(r);
        }
        if self.blocked_since.is_none() {
            let now = Instant::now();
            self.blocked_since = Some(now);
            self.stall_deadline = now + self.timeout;
        }
        loop {
            let since = self.blocked_since.expect("set above");
            let wake = self
                .window_end(since)
                .map_or(self.stall_deadline, |w| w.min(self.stall_deadline));
            let clock = self
                .clock
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(wake)));
            if clock.deadline() != wake {
                clock.as_mut().reset(wake);
            }
            if clock.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if now >= self.stall_deadline {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client took no data within server.send_timeout",
                )));
            }
            if let Err(e) = self.judge_window(now) {
                return Poll::Ready(Err(e));
            }
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for SendTimeout<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for SendTimeout<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, r, |n| *n)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = std::pin::Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, r, |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = std::pin::Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, r, |_| 0)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
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

/// Event loops serving one edge, one thread each. Each takes an equal share of
/// `max_connections` (as nginx's workers each take `worker_connections`): a shared cap would
/// let a loop hold a permit while its own socket is empty and the others' queues fill.
pub struct Loops {
    /// One per loop, joined by `Loops::shutdown`; their number is `Loops::count`.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// `Some(deadline)` once the loops are to stop accepting and drain.
    stop: watch::Sender<Option<Instant>>,
    /// Loops still serving or draining; a loop's runtime (and the fills, refreshes and origin
    /// connections spawned on it, which other loops' requests may be waiting on) lives until
    /// this reaches 0 or the drain deadline passes.
    running: Arc<watch::Sender<usize>>,
    /// Loops that ended, however (normally, in a panic, or failing to start).
    ended: Arc<watch::Sender<usize>>,
    /// How long the loops' in-flight requests get to finish once shutdown starts
    /// (`server.drain_timeout`).
    drain_timeout: Duration,
}

/// Counts a loop in `running` until it stops serving, or in `ended` once its thread ends, on
/// every way out, panics included.
struct Counted(Arc<watch::Sender<usize>>, isize);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_add_signed(self.1));
    }
}

impl Loops {
    /// Starts one loop per listener (from [`bind`]).
    ///
    /// With `tls` (listeners from [`bind`] of `server.listen_tls`, as many, and the
    /// certificates), each loop serves one of them too, with its share of
    /// `max_tls_handshakes`.
    pub(crate) fn start(
        listeners: Vec<std::net::TcpListener>,
        tls: Option<(Vec<std::net::TcpListener>, Arc<tls::Certs>)>,
        edge: Arc<LiveEdge>,
        cfg: &ServerConfig,
    ) -> io::Result<Self> {
        let n = listeners.len();
        let mut tls_listeners: Vec<Option<(std::net::TcpListener, tls::Accept)>> = match tls {
            Some((ls, certs)) => {
                if ls.len() != n {
                    return Err(io::Error::other("as many TLS listeners as plain ones"));
                }
                let slots = cfg.max_tls_handshakes.div_ceil(n.max(1));
                ls.into_iter()
                    .map(|l| Ok(Some((l, tls::Accept::new(certs.clone(), cfg, slots)?))))
                    .collect::<io::Result<_>>()?
            }
            None => (0..n).map(|_| None).collect(),
        };
        let (stop, _) = watch::channel(None);
        let running = Arc::new(watch::Sender::new(n));
        let ended = Arc::new(watch::Sender::new(0));
        let mut loops = Self {
            threads: Vec::with_capacity(n),
            stop,
            running,
            ended,
            drain_timeout: cfg.drain_timeout.0,
        };
        let share = cfg.max_connections.div_ceil(n.max(1));
        let buffers_share = cfg.max_send_buffers.0.div_ceil(n.max(1) as u64);
        for (i, l) in listeners.into_iter().enumerate() {
            let (edge, cfg) = (edge.clone(), cfg.clone());
            let tls = tls_listeners[i].take();
            let stop = loops.stop.subscribe();
            let mut others = loops.running.subscribe();
            let serving = Counted(loops.running.clone(), -1);
            let end = Counted(loops.ended.clone(), 1);
            let t = std::thread::Builder::new()
                .name(format!("edgecache-io-{i}"))
                .spawn(move || {
                    let _end = end;
                    // Built here, not by the caller: a runtime must not be dropped inside
                    // another one if this thread never starts.
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => return tracing::error!(error = %e, "cannot build a runtime"),
                    };
                    rt.block_on(async move {
                        let listener = match TcpListener::from_std(l) {
                            Ok(l) => l,
                            Err(e) => return tracing::error!(error = %e, "cannot adopt listener"),
                        };
                        let tls = match tls.map(|(l, h)| TcpListener::from_std(l).map(|l| (l, h))) {
                            None => None,
                            Some(Ok(pair)) => Some(pair),
                            Some(Err(e)) => {
                                return tracing::error!(error = %e, "cannot adopt TLS listener");
                            }
                        };
                        let mut stopped = stop.clone();
                        let shutdown = async move {
                            let _ = stopped.wait_for(Option::is_some).await;
                        };
                        let permits = Arc::new(Semaphore::new(share));
                        let buffers = SendBuffers::new(buffers_share);
                        serve_both(listener, tls, edge, &cfg, (permits, buffers), i, shutdown)
                            .await;
                        drop(serving);
                        let deadline = stop.borrow().unwrap_or_else(Instant::now);
                        let _ =
                            tokio::time::timeout_at(deadline, others.wait_for(|n| *n == 0)).await;
                    });
                });
            match t {
                Ok(t) => loops.threads.push(t),
                Err(e) => {
                    // The loops already started stop with `loops` as it drops.
                    loops.stop.send_replace(Some(Instant::now()));
                    return Err(e);
                }
            }
        }
        Ok(loops)
    }

    /// How many loops run.
    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// Completes if a loop ends before [`Loops::shutdown`]: it panicked or could not start.
    pub async fn failed(&self) {
        let mut ended = self.ended.subscribe();
        let _ = ended.wait_for(|n| *n > 0).await;
    }

    /// Stops accepting on every loop, lets them drain (bounded by `drain_timeout`) and waits for
    /// their threads. Errs if a loop had ended early or in a panic.
    pub async fn shutdown(self) -> Result<(), LoopFailed> {
        let early = *self.ended.borrow();
        self.stop
            .send_replace(Some(Instant::now() + self.drain_timeout));
        let threads = self.threads;
        let panicked = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| t.join())
                .filter(Result::is_err)
                .count()
        })
        .await
        .unwrap_or(1);
        match (early, panicked) {
            (0, 0) => Ok(()),
            (early, panicked) => Err(LoopFailed { early, panicked }),
        }
    }
}

/// Some event loops did not run to the end.
#[derive(Debug, thiserror::Error)]
#[error("{early} event loop(s) ended before shutdown, {panicked} in a panic")]
pub struct LoopFailed {
    /// Loops that ended before shutdown was asked for (they panicked or could not start).
    pub(crate) early: usize,
    /// Loop threads whose join reported a panic, early or during the drain.
    pub(crate) panicked: usize,
}

#[cfg(test)]
mod tests {
    use super::{MinRate, SendTimeout};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_is_kept_while_it_reads_and_dropped_once_it_stops() {
        let (edge, mut client) = tokio::io::duplex(1024);
        let mut w = SendTimeout::new(edge, Duration::from_millis(500));
        let writer = tokio::spawn(async move { w.write_all(&[7u8; 64 * 1024]).await });
        // 1 KiB every 300 ms: every read lets the blocked writer on before the clock runs out.
        let (mut buf, mut got) = ([0u8; 1024], 0);
        while got < 64 * 1024 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            match client.read(&mut buf).await.unwrap() {
                0 => break, // the writer gave up
                n => got += n,
            }
        }
        writer
            .await
            .unwrap()
            .expect("a reader that keeps reading is served to the end");

        let (edge, _client) = tokio::io::duplex(1024);
        let mut w = SendTimeout::new(edge, Duration::from_millis(500));
        let err = w.write_all(&[7u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_trickles_below_the_minimum_rate_is_dropped() {
        // 1 KiB every 300 ms, some 3.4 KiB/s: every read lets the blocked writer on before
        // send_timeout (500 ms) runs out, so only the rate can catch it.
        for (min, kept) in [(8 << 10, false), (2 << 10, true)] {
            let (edge, mut client) = tokio::io::duplex(1024);
            let rate = MinRate {
                bytes_per_sec: min,
                window: Duration::from_secs(2),
            };
            let mut w = SendTimeout::new(edge, Duration::from_millis(500)).min_rate(Some(rate));
            let writer = tokio::spawn(async move { w.write_all(&[7u8; 32 * 1024]).await });
            let started = tokio::time::Instant::now();
            let (mut buf, mut got) = ([0u8; 1024], 0);
            while got < 32 * 1024 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            let r = writer.await.unwrap();
            if kept {
                r.expect("a client above the minimum rate is served to the end");
                assert_eq!(got, 32 * 1024);
            } else {
                let e = r.unwrap_err();
                assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
                assert!(e.to_string().contains("min_send_rate"), "{e}");
                let took = started.elapsed();
                assert!(took < Duration::from_secs(4), "dropped after {took:?}");
            }
        }
    }
}
