//! The HTTP front: picks the site, sends cacheable requests through the cache and the rest
//! straight to the origin, and logs one line per request when its body is done.

pub mod admission;
mod cached;
mod data;
mod error;
mod fill_task;
mod forward;
mod pass;
pub mod respond;
pub(crate) mod site;

use crate::{
    cache::{
        Object, Store,
        fill::Fills,
        key::VaryValues,
        status::{CacheStatus, Outcome},
    },
    origin::ServedBy,
    telemetry::{
        access::{self, AccessRecord, LoggedBody},
        metrics::outcome_index,
    },
};
use axum::body::Body;
use error::ProxyError;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use site::{Authority, Site, Sites};
use std::{net::SocketAddr, sync::Arc, time::Duration};

/// Timeouts and limits the request path needs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How long a request waits for a fill's response head before giving up with 504
    /// (`cache.fill_wait_timeout`).
    pub(crate) fill_wait_timeout: Duration,
    /// Longest pause within a body, from the origin or for a reader waiting on a fill
    /// (`origin.body_idle_timeout`).
    pub(crate) body_idle_timeout: Duration,
    /// How long a URL whose answer could not be stored skips coalescing (`cache.hit_for_miss`).
    pub(crate) hit_for_miss: Duration,
    /// Largest request body read for a data route or forwarded to an origin; 413 beyond
    /// (`server.max_request_body`).
    pub(crate) max_request_body: u64,
    /// A path the edge answers `ok` itself, never forwarded; empty turns it off
    /// (`server.health_path`).
    pub(crate) health_path: String,
    /// Write one access log line per request, once its body is done (`log.access_log`).
    pub(crate) access_log: bool,
    /// How access lines are written: key=value text, JSON fields, or Apache combined.
    pub(crate) access_format: access::LineFormat,
    /// Who may send `PURGE` (`admin.purge_from`).
    pub(crate) purge_from: Vec<crate::config::Cidr>,
    /// Whose `X-Forwarded-For` is believed (`server.trusted_proxies`).
    pub(crate) trusted_proxies: Vec<crate::config::Cidr>,
    /// The port of `server.listen_tls`, which `redirect_http` sends clients to (left out of
    /// the URL when 443).
    pub(crate) https_port: Option<u16>,
}

impl Settings {
    /// The request path's settings in `cfg`.
    pub(crate) fn new(cfg: &crate::config::Config) -> Self {
        Self {
            fill_wait_timeout: cfg.cache.fill_wait_timeout.0,
            body_idle_timeout: cfg.origin.body_idle_timeout.0,
            hit_for_miss: cfg.cache.hit_for_miss.0,
            max_request_body: cfg.server.max_request_body.0,
            health_path: cfg.server.health_path.clone(),
            access_log: cfg.log.access_log,
            access_format: access::LineFormat::of(&cfg.log),
            purge_from: cfg.admin.purge_from.clone(),
            trusted_proxies: cfg.server.trusted_proxies.clone(),
            https_port: cfg.server.listen_tls.map(|a| a.port()),
        }
    }

    /// Is a connection from `ip` one of the trusted proxies?
    pub(crate) fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|r| r.contains(ip))
    }
}

/// Shared state of the edge: sites, the store, the fills in progress.
pub struct Edge {
    /// The configured sites in match order: the first whose host and path prefix fit a request
    /// serves it.
    pub(crate) sites: Sites,
    /// Data routes (cache-aside over a database), matched before sites.
    pub data: Option<Arc<crate::data::routes::DataApi>>,
    /// The one store every site's responses and the data routes' values live in.
    pub(crate) store: Store,
    /// What the edge counts, for `/metrics` and `/stats`.
    pub(crate) metrics: Arc<crate::telemetry::metrics::Metrics>,
    /// HTTP fills in progress, by key and variant: joining one is how concurrent misses coalesce.
    pub(crate) fills: Arc<Fills<FillMeta>>,
    /// Second-hit admission's memory of recent misses, shared by every site and config.
    pub(crate) doorkeeper: Arc<crate::cache::admission::Doorkeeper>,
    /// The request path's timeouts and limits, from the config.
    pub(crate) settings: Settings,
    /// Requests the sites' `allow` / `deny` lists and rate limits refused, for the metrics
    /// (shared by every config a reload brings).
    pub(crate) access_counts: Arc<admission::AccessCounts>,
}

/// The edge as it is configured now: what the server and the admin API hold. A reload builds
/// a new [`Edge`] (sites, data routes, settings; the same store, fills and counters) and swaps
/// it in; a request keeps the one it started with to its end, so none is dropped or sees two
/// configs. Reading it costs a request what cloning an `Arc` did before.
pub struct LiveEdge(arc_swap::ArcSwap<Edge>);

impl LiveEdge {
    /// The edge `edge`, until a reload replaces it.
    pub(crate) fn new(edge: Arc<Edge>) -> Self {
        Self(arc_swap::ArcSwap::new(edge))
    }

    /// The current edge.
    pub fn load(&self) -> Arc<Edge> {
        self.0.load_full()
    }

    /// Serves `edge` from now on.
    pub(crate) fn replace(&self, edge: Arc<Edge>) {
        self.0.store(edge);
    }
}

impl Edge {
    /// Requests refused with 403 by a site's `allow` / `deny` since start.
    pub(crate) fn acl_refused(&self) -> u64 {
        self.access_counts.acl_refused()
    }
}

/// What a fill's leader learned, handed to every reader with the head.
#[derive(Debug)]
pub(crate) struct FillMeta {
    /// What the cache did (miss, expired, revalidated, stale on error): `X-Cache` and the
    /// `Cache-Status` hit/fwd parameters.
    pub(crate) outcome: Outcome,
    /// The origin's status, when it was asked: `Cache-Status`'s `fwd-status`.
    pub(crate) fwd_status: Option<u16>,
    /// The answer is stored (or a stored copy renewed), said only once it is sure: `Cache-Status`'s
    /// `stored`.
    pub(crate) stored: bool,
    /// Seconds of freshness the stored answer has left: `Cache-Status`'s `ttl`.
    pub(crate) ttl: Option<i64>,
    /// Why the answer was not stored, when it is known: `Cache-Status`'s `detail`.
    pub(crate) detail: Option<&'static str>,
    /// The variant this response answers; `None` when it varies on `*`.
    pub(crate) vary: Option<VaryValues>,
    /// Set when the answer is a whole stored object (revalidated, or stale on error).
    pub(crate) object: Option<Arc<Object>>,
    /// How long the origin took to send the response head, for the leader's access log line.
    pub(crate) origin_ms: Option<f64>,
    /// Which server of the pool answered, and whether on a retry, for the same line.
    pub(crate) served_by: Option<ServedBy>,
}

/// The client end of a connection, its address already in text: formatted once per connection
/// rather than for every request's `X-Forwarded-For` and log line (`Ipv4Addr`'s `Display`
/// costs more than the rest of a log line).
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// The client's IP address alone; an IPv4 client of a dual-stack socket as plain IPv4.
    /// Behind a trusted proxy, the address it forwarded for.
    pub(crate) ip: HeaderValue,
    /// Set when the connection comes from a trusted proxy (`server.trusted_proxies`): its
    /// own address, which the origin's `X-Forwarded-For` ends with. Kept out of line: this
    /// struct is copied with every request's state, and most connections come from clients.
    pub(crate) proxy: Option<Arc<HeaderValue>>,
    /// The event loop serving the connection: its requests to origins use that loop's
    /// connection pool (see `server`), so a fill never crosses threads.
    pub(crate) event_loop: usize,
    /// The connection's own address, for a reload that changes `trusted_proxies`.
    peer: std::net::IpAddr,
    /// The connection came in on the TLS listener: its requests are https.
    pub(crate) tls: bool,
    /// The SNI name of its TLS handshake, lower case: its requests must be for a site that
    /// name belongs to. `None` over plain HTTP or without SNI.
    pub(crate) sni: Option<Arc<str>>,
}

impl Client {
    pub(crate) fn new(addr: SocketAddr, event_loop: usize, trusted: bool) -> Self {
        let canonical = addr.ip().to_canonical();
        let ip = HeaderValue::try_from(canonical.to_string())
            .expect("an IP address is a valid header value");
        Self {
            proxy: trusted.then(|| Arc::new(ip.clone())),
            ip,
            event_loop,
            peer: canonical,
            tls: false,
            sni: None,
        }
    }

    /// The same client, on a connection of the TLS listener when `tls`.
    pub(crate) fn over_tls(self, tls: bool) -> Self {
        Self { tls, ..self }
    }

    /// The same client, whose TLS handshake sent SNI `name`.
    pub(crate) fn with_sni(self, name: Option<&str>) -> Self {
        let sni = name.map(|n| Arc::from(n.strip_suffix('.').unwrap_or(n).to_ascii_lowercase()));
        Self { sni, ..self }
    }

    /// The same connection under `settings`' list of trusted proxies, which a reload may have
    /// changed since it was accepted (most configs have none: nothing to look at).
    fn under(self, settings: &Settings) -> Self {
        if settings.trusted_proxies.is_empty() && self.proxy.is_none() {
            return self;
        }
        let trusted = settings.trusts(self.peer);
        if trusted == self.proxy.is_some() {
            return self;
        }
        let ip = HeaderValue::try_from(self.peer.to_string())
            .expect("an IP address is a valid header value");
        Self {
            proxy: trusted.then(|| Arc::new(ip.clone())),
            ip,
            ..self
        }
    }

    /// The connection's own address: the proxy's, or the client's.
    pub(crate) fn peer(&self) -> &HeaderValue {
        self.proxy.as_deref().unwrap_or(&self.ip)
    }

    /// The client's address (for access rules; parsed from its text, which only rare
    /// requests need).
    pub(crate) fn addr(&self) -> Option<std::net::IpAddr> {
        self.ip.to_str().ok()?.parse().ok()
    }

    /// Behind a trusted proxy: the client is the right-most address of `X-Forwarded-For` (or
    /// of `Forwarded`'s `for=`) that is not a trusted proxy itself (the left of the list is
    /// whatever the client said).
    /// A list with nothing usable leaves the proxy as the client.
    fn behind_proxy(mut self, headers: &http::HeaderMap, settings: &Settings) -> Self {
        // RFC 7239 `Forwarded` only when the proxy sent no `X-Forwarded-For`: the two are one
        // list in two spellings, and a proxy that sends both keeps the older one current.
        let forwarded = if headers.contains_key(forward::X_FORWARDED_FOR) {
            None
        } else {
            forward::forwarded_for(headers)
        };
        let client = headers
            .get_all(forward::X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .chain(forwarded.as_deref())
            .rev()
            .flat_map(|v| v.rsplit(','))
            .map(|a| a.trim().parse::<std::net::IpAddr>())
            .take_while(Result::is_ok)
            .filter_map(Result::ok)
            .map(|a| a.to_canonical())
            .find(|a| !settings.trusts(*a));
        if let Some(a) = client {
            self.ip = HeaderValue::try_from(a.to_string())
                .expect("an IP address is a valid header value");
        }
        self
    }
}

/// Per-request facts gathered for the response and the access log.
pub(crate) struct RequestCtx {
    /// The connection's client (address, event loop); `None` when no connection is behind the
    /// request.
    pub(crate) client: Option<Client>,
    /// Lower-case host without port: what sites match on.
    pub(crate) host: String,
    /// Host and non-default port: what the cache key records and the origin is sent.
    pub(crate) authority: String,
    /// The Host value forwarded upstream.
    pub(crate) host_value: HeaderValue,
    /// Path and query as received.
    pub(crate) target: String,
    /// The client spoke https (to the TLS listener, or to a trusted proxy that says so): the
    /// origin is told `X-Forwarded-Proto: https` and the cache key says https.
    pub(crate) https: bool,
    /// What the cache did, once known: the access log's `cache` word.
    pub(crate) cache: Option<CacheStatus>,
    /// Time to the origin's response head, when this request asked the origin itself (a follower of
    /// another's fill did not).
    pub(crate) origin_ms: Option<f64>,
    /// The pool's server that answered this request's origin request, and whether on a retry.
    pub(crate) served_by: Option<ServedBy>,
    /// Whose counters the request is counted in, once known.
    pub(crate) counted: Counted,
}

/// Whose counters a request is counted in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counted {
    /// No site took it (no Host, an unknown one, a malformed path).
    Unmatched,
    /// A data route's.
    Data,
    /// The site at this index of [`Edge::sites`].
    Site(usize),
}

impl RequestCtx {
    /// The cache key of this request's URL at `site`.
    pub(crate) fn cache_key(&self, site: &Site) -> crate::cache::CacheKey {
        crate::cache::CacheKey::with_scheme(self.https, site.name, &self.authority, &self.target)
    }

    /// The keys of this request's URL under both schemes: what a purge or an invalidation
    /// removes (the content changed for https and plain HTTP alike).
    pub(crate) fn url_keys(&self, site: &Site) -> [crate::cache::CacheKey; 2] {
        crate::cache::CacheKey::both_schemes(site.name, &self.authority, &self.target)
    }

    /// The client connection, for the forwarding headers.
    pub(crate) fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    /// The event loop this request runs on (see [`Client::event_loop`]).
    pub(crate) fn event_loop(&self) -> usize {
        self.client.as_ref().map_or(0, |c| c.event_loop)
    }
}

/// Serves one request from `client`: the whole request path, called by the server loop for every
/// request (there is no router in front: every path is the edge's).
pub(crate) async fn handle(
    edge: Arc<Edge>,
    client: Option<Client>,
    req: Request<Body>,
) -> Response<Body> {
    let started = tokio::time::Instant::now();
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    // Only a trusted proxy's word on who the client is counts.
    let client = client
        .map(|c| c.under(&edge.settings))
        .map(|c| match c.proxy {
            Some(_) => c.behind_proxy(&parts.headers, &edge.settings),
            None => c,
        });
    let https = forward::is_https(&parts.headers, client.as_ref());
    let mut ctx = RequestCtx {
        https,
        client,
        host: String::new(),
        authority: String::new(),
        host_value: HeaderValue::from_static(""),
        target,
        cache: None,
        origin_ms: None,
        served_by: None,
        counted: Counted::Unmatched,
    };
    let res = route(&edge, &parts, body, &mut ctx).await;
    let expected = access::expected_body_len(
        &parts.method,
        res.status(),
        res.headers(),
        http_body::Body::size_hint(res.body()).exact(),
    );
    let site = match ctx.counted {
        Counted::Site(i) => edge.sites.get(i),
        _ => None,
    };
    let stats = match (ctx.counted, site) {
        (_, Some(s)) => &s.stats,
        (Counted::Data, _) => &edge.metrics.data,
        _ => &edge.metrics.unmatched,
    };
    stats.record(
        res.status().as_u16(),
        ctx.cache.as_ref(),
        expected.unwrap_or(0),
    );
    if !matches!(ctx.counted, Counted::Unmatched) && crate::telemetry::metrics::TopUrls::sampled() {
        let mut url = String::with_capacity(ctx.authority.len() + ctx.target.len());
        url.push_str(&ctx.authority);
        url.push_str(&ctx.target);
        edge.metrics.top_urls.count(&url, expected.unwrap_or(0));
    }
    // A body of unknown length is counted as it goes out.
    let late_bytes = expected
        .is_none()
        .then(|| (stats.clone(), outcome_index(ctx.cache.as_ref())));
    if !edge.settings.access_log && late_bytes.is_none() {
        return res;
    }
    let fwd_status = ctx.cache.as_ref().and_then(|c| c.fwd_status);
    // Why an answer a site's origin gave was not stored; a hit's detail is another story.
    let not_stored = site
        .and(ctx.cache.as_ref())
        .filter(|c| !c.stored && c.fwd_status.is_some())
        .and_then(|c| c.detail);
    // The client's own words for the log, in one pass over its headers (two lookups cost a
    // HIT more), and only when there is a line to write.
    let (user_agent, referer) = if edge.settings.access_log {
        client_words(&parts.headers)
    } else {
        (None, None)
    };
    let record = Box::new(AccessRecord {
        log: edge.settings.access_log,
        late_bytes,
        started,
        client: ctx.client.map(|c| c.ip),
        method: parts.method,
        version: parts.version,
        target: ctx.target,
        host: ctx.host,
        site: site.map(|s| s.name),
        status: res.status().as_u16(),
        cache: ctx.cache.map(|c| c.outcome.x_cache()),
        fwd_status,
        not_stored,
        origin_ms: ctx.origin_ms,
        served_by: ctx.served_by,
        user_agent,
        referer,
        format: edge.settings.access_format,
    });
    res.map(|b| Body::new(LoggedBody::new(b, record, expected)))
}

/// The request's `User-Agent` and `Referer`, for the access log.
fn client_words(h: &http::HeaderMap) -> (Option<HeaderValue>, Option<HeaderValue>) {
    let (mut ua, mut referer) = (None, None);
    for (name, value) in h {
        if *name == header::USER_AGENT {
            ua.get_or_insert_with(|| value.clone());
        } else if *name == header::REFERER {
            referer.get_or_insert_with(|| value.clone());
        }
    }
    (ua, referer)
}

async fn route(
    edge: &Arc<Edge>,
    parts: &http::request::Parts,
    body: Body,
    ctx: &mut RequestCtx,
) -> Response<Body> {
    let path = parts.uri.path();
    if !edge.settings.health_path.is_empty() && path == edge.settings.health_path {
        let mut r = Response::new(Body::from("ok\n"));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    if !path.starts_with('/') {
        return ProxyError::NotAPath.into_response(None);
    }
    if has_dot_segment(path) {
        // An origin (or `Url::set_path` on the way to it) would resolve `..` and could leave the
        // site's `path_prefix` or the origin's base path; browsers never send them.
        return ProxyError::DotSegment.into_response(None);
    }
    if let Some(data) = edge.data.as_ref().filter(|d| d.owns(path)) {
        ctx.counted = Counted::Data;
        return Box::pin(data::serve(edge, data, parts, body, ctx)).await;
    }
    // The authority of an absolute-form target wins over Host (RFC 9112 section 3.2.2); either
    // only selects among configured sites, never where the request goes.
    let host_value = match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => parts.headers.get(header::HOST).cloned(),
    };
    let Some(host_value) = host_value.filter(|h| !h.is_empty()) else {
        return ProxyError::NoHost.into_response(None);
    };
    let Some(authority) = host_value.to_str().ok().and_then(Authority::parse) else {
        return ProxyError::BadHost.into_response(None);
    };
    ctx.authority = authority.canonical_for(ctx.https);
    ctx.host = authority.host;
    let Some((index, site)) = edge.sites.find_at(&ctx.host, path) else {
        return ProxyError::NoSite.into_response(None);
    };
    ctx.counted = Counted::Site(index);
    if let Some(name) = ctx.client.as_ref().and_then(|c| c.sni.as_deref())
        && !site.hosts.iter().any(|h| h.matches(name))
    {
        return ProxyError::OtherName.into_response(None);
    }
    // The site's lists come before anything else it does.
    if let Some(rules) = &site.access {
        let client = ctx.client.as_ref().and_then(Client::addr);
        if let Err(e) = rules.check(client, &edge.access_counts) {
            return e.into_response(None);
        }
    }
    // Usually the client already sent the canonical form: share its bytes.
    ctx.host_value = if host_value.as_bytes() == ctx.authority.as_bytes() {
        host_value
    } else {
        HeaderValue::from_str(&ctx.authority).expect("validated above")
    };
    if parts.method.as_str() == "PURGE" {
        return purge(edge, site, ctx);
    }
    if site.redirect_http && !ctx.https {
        return to_https(&ctx.host, edge.settings.https_port, &ctx.target);
    }
    match parts.method {
        Method::GET | Method::HEAD => cached::serve(edge, site, parts, ctx).await,
        _ => {
            let bypass = Outcome::Bypass("method");
            // A request that came without a body goes on without one: a stream, even empty,
            // would go out chunked, which some origins refuse on DELETE or TRACE.
            let body = (!http_body::Body::is_end_stream(&body)).then_some(body);
            Box::pin(pass::serve(edge, site, parts, body, ctx, bypass)).await
        }
    }
}

/// `308 Permanent Redirect` to the same URL over https (`redirect_http`): same host, the TLS
/// listener's port unless it is 443, path and query kept. 308 rather than 301: the method and
/// body are kept too.
fn to_https(host: &str, port: Option<u16>, target: &str) -> Response<Body> {
    let mut url = String::with_capacity(host.len() + target.len() + 14);
    url.push_str("https://");
    url.push_str(host);
    if let Some(p) = port.filter(|p| *p != 443) {
        url.push(':');
        crate::numfmt::push_u64(&mut url, u64::from(p));
    }
    url.push_str(target);
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
    match HeaderValue::try_from(url) {
        Ok(v) => r.headers_mut().insert(header::LOCATION, v),
        // Host and target were header values already: not reached.
        Err(_) => return ProxyError::BadHost.into_response(None),
    };
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

/// `PURGE` of one URL (every variant), from the addresses of `admin.purge_from` only; 405 for
/// anyone else, as for a method the edge does not take. Answers `{"purged": N}`.
fn purge(edge: &Arc<Edge>, site: &Site, ctx: &RequestCtx) -> Response<Body> {
    let allowed = ctx
        .client
        .as_ref()
        .and_then(Client::addr)
        .is_some_and(|a| edge.settings.purge_from.iter().any(|r| r.contains(a)));
    let (status, body) = if allowed {
        let now = edge.store.clock().now();
        let n = ctx
            .url_keys(site)
            .iter()
            .map(|k| edge.store.purge(k, false, now))
            .sum::<usize>();
        tracing::info!(purged = n, url = %ctx.target, "PURGE");
        let url = format!("http://{}{}", ctx.authority, ctx.target);
        edge.metrics
            .purged(3, &url, false, n, edge.store.clock().now());
        (StatusCode::OK, format!("{{\"purged\": {n}}}\n"))
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "{\"error\": \"PURGE is not allowed from this address\"}\n".to_string(),
        )
    };
    let mut r = Response::new(Body::from(body));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        // RFC 9110 section 15.5.6: a 405 says what the resource does take.
        r.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
    }
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Does the path have a `.` or `..` segment, once percent-decoded, with a backslash also taken as a
/// separator (as URL parsers and some origins do)?
fn has_dot_segment(path: &str) -> bool {
    // One pass decides for almost every path: a dot segment needs a `.` right after a `/`, a
    // percent-encoded byte, or a backslash.
    let mut after_slash = false;
    let suspect = path.bytes().any(|c| {
        let hit = c == b'%' || c == b'\\' || (after_slash && c == b'.');
        after_slash = c == b'/';
        hit
    });
    if !suspect {
        return false;
    }
    let decoded: std::borrow::Cow<'_, [u8]> = percent_encoding::percent_decode_str(path).into();
    decoded
        .split(|b| *b == b'/' || *b == b'\\')
        // Some origins (Tomcat, Spring) read `..;x` as `..`: parameters are not part of it.
        .map(|seg| seg.split(|b| *b == b';').next().unwrap_or(seg))
        .any(|seg| seg == b"." || seg == b"..")
}

#[cfg(test)]
mod tests {
    use super::{Client, has_dot_segment};

    #[test]
    fn dot_segments_are_found_however_they_are_spelled() {
        for p in [
            "/..",
            "/a/../b",
            "/a/./b",
            "/%2e%2e/private",
            "/a/.%2E/b",
            "/a/..%2fb",
            "/a/..\\b",
            "/a/%2e%2e%5cb",
            "/a/..;/b",
            "/a/..;x=1/b",
        ] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in [
            "/",
            "/a.b",
            "/.well-known/x",
            "/a/...",
            "/a/..b",
            "/%41",
            "/a/b.",
        ] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }

    #[test]
    fn a_client_address_is_written_as_its_plain_ip() {
        let ip = |a: &str| Client::new(a.parse().unwrap(), 0, false).ip;
        assert_eq!(ip("10.0.0.1:5000"), "10.0.0.1");
        assert_eq!(ip("[2001:db8::1]:5000"), "2001:db8::1");
        // An IPv4 client of a dual-stack listener reads as IPv4, in logs and X-Forwarded-For.
        assert_eq!(ip("[::ffff:10.0.0.1]:5000"), "10.0.0.1");
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_address() {
        let settings = super::Settings {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..super::Settings::new(&crate::config::Config::from_toml("").unwrap())
        };
        let behind = |h: &[(&str, &str)]| {
            Client::new("10.0.0.1:5000".parse().unwrap(), 0, true)
                .behind_proxy(&crate::test_util::headers(h), &settings)
                .ip
        };
        assert_eq!(
            behind(&[("x-forwarded-for", "6.6.6.6, 192.0.2.7, 10.1.1.1")]),
            "192.0.2.7"
        );
        assert_eq!(
            behind(&[("forwarded", "for=6.6.6.6, for=\"192.0.2.8:80\";proto=https")]),
            "192.0.2.8"
        );
        assert_eq!(
            behind(&[("forwarded", "for=\"[2001:db8::9]\"")]),
            "2001:db8::9"
        );
        // Both: X-Forwarded-For is the one read.
        assert_eq!(
            behind(&[
                ("x-forwarded-for", "192.0.2.1"),
                ("forwarded", "for=192.0.2.2")
            ]),
            "192.0.2.1"
        );
        // A node that is not an address stops the walk: the proxy stays the client.
        assert_eq!(
            behind(&[("forwarded", "for=192.0.2.3, for=unknown")]),
            "10.0.0.1"
        );
        assert_eq!(behind(&[]), "10.0.0.1");
    }
}
