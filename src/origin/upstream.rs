//! An upstream HTTP origin reached with reqwest. Redirects are passed to the client, bodies are
//! never decompressed, and no proxy from the environment is used: the edge talks only to the
//! origin named in its config.

use super::{
    BodyStream, OriginError, OriginRequest, OriginResponse, SetupError, headers::strip_hop_by_hop,
};
use crate::config::OriginConfig;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::BodyDataStream;
use std::{error::Error as _, net::SocketAddr, sync::Arc, time::Duration};

pub(crate) struct Upstream {
    /// One client, and so one connection pool, per event loop (`server.threads`; one in all with
    /// the default runtime): a pooled connection's task runs on the loop that dialled it, and a
    /// fill using another loop's connection would cross threads at every read.
    clients: Vec<reqwest::Client>,
    /// Scheme, authority and optional base path, parsed once: each request only sets its path
    /// and query, rather than parsing the whole URL, host and all, on every MISS.
    base_url: reqwest::Url,
    /// Overrides the Host header sent upstream.
    host: Option<http::HeaderValue>,
    /// How long the response head may take once the request, body included, is sent
    /// (`origin.first_byte_timeout`).
    first_byte_timeout: Duration,
    /// Bound on the whole exchange, body included (`origin.total_timeout`).
    total_timeout: Duration,
}

/// How an upstream is reached beyond its URL.
#[derive(Clone, Default)]
pub(crate) struct Link {
    /// Connect to this address for the URL's host instead of looking the host up (a pool
    /// member of a resolved name, or an address reached under its `origin_sni` name).
    pub(crate) pin: Option<(String, SocketAddr)>,
    /// Trust only these certificate authorities (`origin_ca_file`), not the system's.
    pub(crate) roots: Option<Arc<[reqwest::Certificate]>>,
}

impl Upstream {
    pub(crate) fn new(
        base: &str,
        host: Option<&str>,
        cfg: &OriginConfig,
        pools: usize,
        link: &Link,
    ) -> Result<Self, SetupError> {
        let clients = (0..pools.max(1))
            .map(|_| Self::client(cfg, link))
            .collect::<Result<_, _>>()?;
        let host = host
            .map(|h| h.parse().map_err(|_| SetupError::Host(h.to_string())))
            .transpose()?;
        let base = base.trim_end_matches('/');
        let base_url = reqwest::Url::parse(base).map_err(|e| SetupError::Url {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            clients,
            base_url,
            host,
            first_byte_timeout: cfg.first_byte_timeout.0,
            total_timeout: cfg.total_timeout.0,
        })
    }

    fn client(cfg: &OriginConfig, link: &Link) -> Result<reqwest::Client, SetupError> {
        let mut builder = reqwest::Client::builder();
        if let Some((name, addr)) = &link.pin {
            builder = builder.resolve(name, *addr);
        }
        if let Some(roots) = &link.roots {
            builder = builder.tls_certs_only(roots.iter().cloned());
        }
        builder
            .connect_timeout(cfg.connect_timeout.0)
            .pool_max_idle_per_host(cfg.max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            // Its default retries only HTTP/2 protocol refusals, which this HTTP/1 client never
            // sees; without it no retry budget is kept per request.
            .retry(reqwest::retry::never())
            .build()
            .map_err(SetupError::Client)
    }

    /// The URL of `path_and_query` on this upstream: under its base path, the query kept.
    fn url_for(&self, path_and_query: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let base_path = self.base_url.path().trim_end_matches('/');
        if base_path.is_empty() {
            url.set_path(path);
        } else {
            url.set_path(&format!("{base_path}{path}"));
        }
        url.set_query(query);
        url
    }

    /// A health check: GET `path` (with the site's `origin_host`, if any), answered within
    /// `timeout` with `status` (0: any 2xx or 3xx).
    pub(crate) async fn check(&self, path: &str, timeout: Duration, status: u16) -> bool {
        let mut rb = self.clients[0].get(self.url_for(path)).timeout(timeout);
        if let Some(h) = &self.host {
            rb = rb.header(http::header::HOST, h);
        }
        match rb.send().await {
            Ok(r) if status == 0 => r.status().is_success() || r.status().is_redirection(),
            Ok(r) => r.status().as_u16() == status,
            Err(_) => false,
        }
    }

    pub(crate) async fn fetch(&self, req: OriginRequest) -> Result<OriginResponse, OriginError> {
        let url = self.url_for(&req.path_and_query);
        let mut headers = req.headers;
        if let Some(h) = &self.host {
            headers.insert(http::header::HOST, h.clone());
        }
        let client = &self.clients[req.event_loop % self.clients.len()];
        // Built as a `Request` rather than through `RequestBuilder::headers`, which would copy
        // the map entry by entry: the headers are moved in.
        let mut request = reqwest::Request::new(req.method, url);
        *request.headers_mut() = headers;
        *request.timeout_mut() = Some(self.total_timeout);
        // The first-byte clock starts once the request body is sent: an upload may take longer
        // than an origin takes to answer (its time is bounded by `total_timeout`).
        let mut sent = None;
        if let Some(body) = req.body {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let signal = futures_util::stream::once(async move {
                let _ = tx.send(());
            })
            .filter_map(|()| async { None });
            *request.body_mut() = Some(reqwest::Body::wrap_stream(body.chain(signal)));
            sent = Some(rx);
        }
        let first_byte = self.first_byte_timeout;
        let deadline = async move {
            if let Some(sent) = sent {
                // A body that fails or is dropped unsent ends the wait too (`Err`).
                let _ = sent.await;
            }
            tokio::time::sleep(first_byte).await;
        };
        let res = tokio::select! {
            r = client.execute(request) => match r {
                // No answer was read: a connection that ended now was closed before one.
                Err(e) if !e.is_connect() && closed_before_answer(&e) => {
                    return Err(OriginError::Closed(root_cause(&e)));
                }
                Err(e) => return Err(classify(e)),
                Ok(r) => r,
            },
            () = deadline => return Err(OriginError::Timeout("first byte")),
        };
        // Taken apart rather than read through `headers()`: the map is moved, not copied.
        let (parts, body) = http::Response::from(res).into_parts();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        let body: BodyStream = BodyDataStream::new(body).map_err(classify).boxed();
        Ok(OriginResponse {
            status: parts.status,
            headers,
            body,
            served_by: None,
        })
    }
}

/// Maps reqwest's error to who is at fault and which status the client should see.
fn classify(e: reqwest::Error) -> OriginError {
    if e.is_timeout() {
        return OriginError::Timeout("total");
    }
    // A request body that failed came from the client, not the origin.
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(oe) = s.downcast_ref::<OriginError>() {
            return oe.clone();
        }
        src = s.source();
    }
    if e.is_connect() {
        OriginError::Connect(root_cause(&e))
    } else {
        OriginError::Protocol(root_cause(&e))
    }
}

/// Did a `send` fail because the connection ended: hyper's "connection closed before message
/// completed" (a keep-alive connection the server had closed as it was reused), or a reset?
/// Only asked of `send` errors, which come before any answer; a body cut later is a
/// `Protocol` error, never retried.
fn closed_before_answer(e: &reqwest::Error) -> bool {
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        src = s.source();
    }
    false
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
