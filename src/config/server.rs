//! `[server]`: the client-facing listener and its limits.

use super::{ByteSize, ConfigError, Secs, invalid, nonzero};
use serde::Deserialize;
use std::{net::SocketAddr, time::Duration};

/// The client-facing listener and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where clients connect (default 127.0.0.1:8080).
    pub listen: SocketAddr,
    /// Where clients connect over TLS (HTTPS, HTTP/2 by ALPN), with the certificates of the
    /// sites' `tls_cert` / `tls_key`. Default: none (no TLS listener).
    pub listen_tls: Option<SocketAddr>,
    /// A client must finish its TLS handshake within this time, or its connection is closed
    /// (a slowloris of the handshake). Default: 10s.
    pub(crate) tls_handshake_timeout: Secs,
    /// TLS handshakes in progress at once; further connections wait in the kernel's accept
    /// queue until one finishes (a flood of handshakes costs CPU per connection, before any
    /// request limit sees it). Default: 1024.
    pub(crate) max_tls_handshakes: usize,
    /// Requests one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS):
    /// one client's share of the edge. Default: 128.
    pub(crate) http2_max_concurrent_streams: u32,
    /// Streams an HTTP/2 client may open and reset before the edge took them up, after which
    /// the connection is closed with ENHANCE_YOUR_CALM: the "rapid reset" flood
    /// (CVE-2023-44487), where requests cancelled at once cost the server work but never
    /// count against the stream limit. Default: 20.
    pub(crate) http2_max_pending_accept_reset_streams: usize,
    /// Streams the edge itself may reset for a client's protocol errors before the connection
    /// is closed (the same attack, provoked by bad frames instead). Default: 1024.
    pub(crate) http2_max_local_error_reset_streams: usize,
    /// 0: one work-stealing runtime serves every connection on all CPUs (the default: the best
    /// tail latency when the CPUs are shared with other busy processes). N: N event loops, one
    /// thread each with its own listening socket and `max_connections / N` (thread per core,
    /// like nginx's workers): less CPU per cache MISS, but a loop the OS preempts stalls its
    /// connections.
    pub threads: usize,
    /// Answered by the edge itself, never forwarded; empty string turns it off. Default:
    /// `/healthz`.
    pub(crate) health_path: String,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` and `X-Forwarded-Proto` are
    /// believed: for a connection from one of them, the client is the right-most address of
    /// `X-Forwarded-For` that is not itself a trusted proxy. From anyone else those headers
    /// change nothing, and the origin is sent the connection's own address. Default: none.
    pub(crate) trusted_proxies: Vec<super::Cidr>,
    /// Connections served at once; further ones wait in the kernel's accept queue. Default:
    /// 10000.
    pub(crate) max_connections: usize,
    /// Largest request head (request line + headers) a client may send. Default: 64KiB.
    pub(crate) max_header_bytes: ByteSize,
    /// Most header fields in one request. Default: 100.
    pub(crate) max_headers: usize,
    /// A client must send its whole request head within this time (slowloris guard). Default:
    /// 10s.
    pub(crate) header_read_timeout: Secs,
    /// A response write that makes no progress for this long (the client stopped reading)
    /// closes the connection. Default: 60s.
    pub(crate) send_timeout: Secs,
    /// The slowest a client may take a response, per second, averaged over the time writes
    /// wait on it (`min_send_rate_window`); a slower one is dropped. `send_timeout` alone is
    /// re-armed by every trickle. 0 turns it off. Default: 1KiB.
    pub(crate) min_send_rate: ByteSize,
    /// The time writes must have waited on a client before its rate is judged. Default: 30s.
    pub(crate) min_send_rate_window: Secs,
    /// Bytes of streamed response bodies queued for clients' sockets, all connections
    /// together: once they reach it, a connection that still has bytes queued gets no more
    /// until its client takes them (its fill then reads the origin no faster). Default: 32MiB.
    pub(crate) max_send_buffers: ByteSize,
    /// Largest request body forwarded to an origin (POST/PUT/...); 413 beyond. Default: 16MiB.
    pub(crate) max_request_body: ByteSize,
    /// On SIGTERM / Ctrl-C, in-flight requests get this long to finish. Default: 10s.
    pub(crate) drain_timeout: Secs,
}

/// More event loops than this is a typo, not a machine.
const MAX_THREADS: usize = 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            listen_tls: None,
            tls_handshake_timeout: Secs(Duration::from_secs(10)),
            max_tls_handshakes: 1024,
            http2_max_concurrent_streams: 128,
            http2_max_pending_accept_reset_streams: 20,
            http2_max_local_error_reset_streams: 1024,
            threads: 0,
            health_path: "/healthz".into(),
            trusted_proxies: Vec::new(),
            max_connections: 10_000,
            max_header_bytes: ByteSize(64 << 10),
            max_headers: 100,
            header_read_timeout: Secs(Duration::from_secs(10)),
            send_timeout: Secs(Duration::from_secs(60)),
            min_send_rate: ByteSize(1 << 10),
            min_send_rate_window: Secs(Duration::from_secs(30)),
            max_send_buffers: ByteSize(32 << 20),
            max_request_body: ByteSize(16 << 20),
            drain_timeout: Secs(Duration::from_secs(10)),
        }
    }
}

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.threads > MAX_THREADS {
            return Err(invalid(
                "server.threads",
                format!("at most {MAX_THREADS} (0 = one shared runtime)"),
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if self.max_header_bytes.0 < 1024 {
            return Err(invalid("server.max_header_bytes", "must be at least 1KiB"));
        }
        for (field, v) in [
            (
                "server.http2_max_concurrent_streams",
                self.http2_max_concurrent_streams as usize,
            ),
            (
                "server.http2_max_pending_accept_reset_streams",
                self.http2_max_pending_accept_reset_streams,
            ),
            (
                "server.http2_max_local_error_reset_streams",
                self.http2_max_local_error_reset_streams,
            ),
        ] {
            if v == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if self.max_tls_handshakes == 0 {
            return Err(invalid("server.max_tls_handshakes", "must be at least 1"));
        }
        nonzero(&[
            ("server.tls_handshake_timeout", self.tls_handshake_timeout),
            ("server.header_read_timeout", self.header_read_timeout),
            ("server.send_timeout", self.send_timeout),
            ("server.min_send_rate_window", self.min_send_rate_window),
        ])?;
        if self.max_send_buffers.0 < 64 << 10 {
            return Err(invalid("server.max_send_buffers", "must be at least 64KiB"));
        }
        if !self.health_path.is_empty() && !self.health_path.starts_with('/') {
            return Err(invalid("server.health_path", "must start with /"));
        }
        Ok(())
    }
}
