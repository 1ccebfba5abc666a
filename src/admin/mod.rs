//! The admin API, on its own listener: an axum `Router` over the edge, guarded by a bearer
//! token. JSON in and out; every refusal is a 4xx with `{"error": "..."}`.
//!
//! - `POST /purge` with one of `{"url": "http://host/path?q"}` (every variant of that URL),
//!   `{"prefix": "http://host/path/"}` (every URL under it) or `{"tag": "name"}` (every object
//!   carrying that surrogate key), each optionally with `"soft": true` (marked stale from now
//!   rather than removed: revalidated, served within its own stale windows counted from the
//!   purge, or standing in on error). Answers
//!   `{"purged": N}`, N the number of stored objects (variants) purged: exact for a URL and a
//!   prefix, and for a tag those that carried it when it was purged.
//! - `GET /cache?url=...`: whether the URL is cached, and each variant's age, TTL left and
//!   stored headers.
//! - `GET /stats`: the store (entries, bytes used, the budget, evictions), and per site since
//!   start its requests, hit and byte-hit ratio (hits: fresh or stale from the store, over
//!   the lookups: hits, misses, expired and revalidated; bypasses left out), origin requests
//!   and errors; the requests the access rules refused (the sites' and this API's own); the
//!   last 15 minutes' totals, the top URLs (sampled), origin health and the recent purges,
//!   for the status page.
//! - `GET /metrics`: the same and more as Prometheus text.
//! - `POST /reload`: reads the config file again (as SIGHUP does) and answers what changed, or
//!   422 with check-config's message while the old config goes on.
//! - `GET /_edgecache/`: the status page for a browser, drawing `/stats` every 5 s (see
//!   `page.rs`). A browser may give the token as the basic-auth password or in the cookie
//!   `edgecache_admin`, which `GET /_edgecache/?token=...` sets (303 back to the page).
//!
//! `[admin] allow` / `deny` are checked before the token, on the connection's own address
//! (served with `ConnectInfo<SocketAddr>`; a request without it is refused when a list is set).

use crate::{
    app::Reloader,
    cache::CacheKey,
    config::Cidr,
    proxy::{
        Edge, LiveEdge,
        admission::{AccessCounts, Acl},
        site::Authority,
    },
    telemetry::metrics::{Handshake, SAMPLE_EVERY, SiteStats, TOP_SAMPLE, TopUrl},
};
use arc_swap::ArcSwap;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{ConnectInfo, Query, Request, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{net::SocketAddr, sync::Arc};

mod page;

/// What the admin API works on.
#[derive(Clone)]
pub struct AdminState {
    /// The edge as configured now (a reload swaps it).
    pub(crate) live: Arc<LiveEdge>,
    /// The bearer token requests must carry; `None` asks for none (loopback only, as the
    /// config enforces).
    pub(crate) token: Option<Arc<str>>,
    /// `[admin] allow` / `deny`: who may connect at all, checked before the token. Shared:
    /// the state is cloned for every request.
    pub(crate) acl: Arc<ArcSwap<Acl>>,
    /// Requests this API's lists refused, for the metrics.
    pub(crate) access_counts: Arc<AccessCounts>,
    /// What `POST /reload` runs; `None` when the edge has no config file to read again.
    pub(crate) reloader: Option<Arc<Reloader>>,
}

impl AdminState {
    /// The API over `edge`, asking for `token`, open to every address.
    pub fn new(live: Arc<LiveEdge>, token: Option<&str>) -> Self {
        Self {
            live,
            token: token.map(Arc::from),
            acl: Arc::default(),
            access_counts: Arc::default(),
            reloader: None,
        }
    }

    /// The edge being served now.
    pub(crate) fn edge(&self) -> Arc<Edge> {
        self.live.load()
    }

    /// The same, with `POST /reload` running `reloader`.
    pub fn with_reloader(self, reloader: Arc<Reloader>) -> Self {
        Self {
            reloader: Some(reloader),
            ..self
        }
    }

    /// The same, its lists read from `acl`, which a reload replaces.
    pub(crate) fn with_shared_acl(self, acl: Arc<ArcSwap<Acl>>) -> Self {
        Self { acl, ..self }
    }

    /// The same, answering only connections `allow` and `deny` admit (`[admin] allow`,
    /// `deny`: deny wins; an empty allow admits everyone not denied).
    pub fn with_acl(self, allow: Vec<Cidr>, deny: Vec<Cidr>) -> Self {
        Self {
            acl: Arc::new(ArcSwap::from_pointee(Acl::new(allow, deny))),
            ..self
        }
    }

    /// Requests refused with 403 by `[admin] allow` / `deny` since start.
    pub(crate) fn acl_refused(&self) -> u64 {
        self.access_counts.acl_refused()
    }
}

/// The admin API's routes.
pub fn app(state: AdminState) -> Router {
    Router::new()
        .route("/purge", post(purge))
        .route("/cache", get(cache))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/reload", post(reload))
        .merge(page::routes())
        .fallback(|| async { refuse(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// A refusal: its status and `{"error": why}`.
fn refuse(status: StatusCode, why: impl Into<String>) -> Response {
    Refusal(status, why.into()).into_response()
}

/// A refusal not yet turned into a response.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// Lets through only connections `[admin] allow` / `deny` admit, and of those only requests
/// with the configured token (compared in constant time): as a bearer token, or from a
/// browser as the basic-auth password, the cookie or the page's `?token=` (see `page.rs`).
/// Without a token, only requests for a loopback name: a web page of another origin that
/// rebinds its own name to 127.0.0.1 (DNS rebinding) sends its Host, and is refused.
async fn authorize(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let acl = st.acl.load();
    if !acl.is_empty() {
        // No ConnectInfo (a router served without it): the address is unknown, and a list
        // cannot admit it.
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip());
        if !acl.admits(peer) {
            st.access_counts.count_acl_refused();
            return refuse(
                StatusCode::FORBIDDEN,
                "the admin API is not open to this address",
            );
        }
    }
    let Some(token) = &st.token else {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(Authority::parse);
        let loopback = host.is_some_and(|a| {
            a.host == "localhost"
                || a.host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if !loopback {
            return refuse(
                StatusCode::FORBIDDEN,
                "without a token the admin API answers only requests for localhost",
            );
        }
        return next.run(req).await;
    };
    // The bearer token, or for a browser the basic-auth password, the cookie or the page's
    // `?token=` (see `page`). A page's refusal asks for basic auth, so the browser prompts.
    let on_page = page::is_page(req.uri().path());
    match page::verdict(&req, token) {
        page::Verdict::Right(proof) => page::admit(proof, token, req, next).await,
        page::Verdict::Missing if on_page => {
            page::challenge(refuse(StatusCode::UNAUTHORIZED, "a token is required"))
        }
        page::Verdict::Missing => {
            let mut r = refuse(StatusCode::UNAUTHORIZED, "a bearer token is required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"edgecache admin\""),
            );
            r
        }
        page::Verdict::Wrong if on_page => {
            page::challenge(refuse(StatusCode::UNAUTHORIZED, "wrong token"))
        }
        page::Verdict::Wrong => refuse(StatusCode::FORBIDDEN, "wrong token"),
    }
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    url: Option<String>,
    prefix: Option<String>,
    tag: Option<String>,
    #[serde(default)]
    soft: bool,
}

async fn purge(State(st): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_json(&headers) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json",
        );
    }
    let req: PurgeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")),
    };
    let soft = req.soft;
    let store = st.edge().store.clone();
    let now = store.clock().now();
    let what = req
        .url
        .as_ref()
        .or(req.prefix.as_ref())
        .or(req.tag.as_ref())
        .cloned();
    let (kind, work): (usize, Box<dyn FnOnce() -> usize + Send>) =
        match (req.url, req.prefix, req.tag) {
            // A URL or prefix is purged under both schemes: the content changed for both.
            (Some(url), None, None) => match keys_of(&st.edge(), &url) {
                Ok(keys) => (
                    0,
                    Box::new(move || keys.iter().map(|k| store.purge(k, soft, now)).sum()),
                ),
                Err(r) => return r.into_response(),
            },
            (None, Some(prefix), None) => match keys_of(&st.edge(), &prefix) {
                Ok(keys) => (
                    1,
                    Box::new(move || keys.iter().map(|k| store.purge_prefix(k, soft, now)).sum()),
                ),
                Err(r) => return r.into_response(),
            },
            (None, None, Some(tag)) if !tag.is_empty() => {
                (2, Box::new(move || store.purge_tag(&tag, soft, now)))
            }
            (None, None, Some(_)) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, "empty tag"),
            _ => {
                return refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "give exactly one of url, prefix, tag",
                );
            }
        };
    // A prefix or tag purge walks the store: off the threads that serve requests.
    match tokio::task::spawn_blocking(work).await {
        Ok(n) => {
            tracing::info!(purged = n, soft, "purge");
            let what = what.unwrap_or_default();
            st.edge().metrics.purged(kind, &what, soft, n, now);
            Json(json!({ "purged": n })).into_response()
        }
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "the purge failed"),
    }
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// The cache key of an absolute URL, as a request for it would have: its site (by host and
/// path), its canonical authority, its path and query.
fn key_of(edge: &Edge, url: &str) -> Result<CacheKey, Refusal> {
    let https = url.starts_with("https://");
    keys_of(edge, url).map(|[plain, secure]| if https { secure } else { plain })
}

/// The keys of an absolute URL under both schemes (see [`CacheKey::with_scheme`]).
fn keys_of(edge: &Edge, url: &str) -> Result<[CacheKey; 2], Refusal> {
    let bad = |why: &str| Refusal(StatusCode::UNPROCESSABLE_ENTITY, format!("url: {why}"));
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must start with http:// or https://"));
    }
    let authority = uri
        .authority()
        .and_then(|a| Authority::parse(a.as_str()))
        .ok_or_else(|| bad("no valid host"))?;
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let site = edge
        .sites
        .find(&authority.host, uri.path())
        .ok_or_else(|| {
            Refusal(
                StatusCode::NOT_FOUND,
                format!("no site serves {}{}", authority.host, uri.path()),
            )
        })?;
    Ok([
        CacheKey::with_scheme(false, site.name, &authority.canonical_for(false), target),
        CacheKey::with_scheme(true, site.name, &authority.canonical_for(true), target),
    ])
}

#[derive(Debug, Deserialize)]
struct CacheQuery {
    url: Option<String>,
}

async fn cache(
    State(st): State<AdminState>,
    q: Result<Query<CacheQuery>, QueryRejection>,
) -> Response {
    let Some(url) = q.ok().and_then(|Query(q)| q.url) else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "give ?url=");
    };
    let key = match key_of(&st.edge(), &url) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let now = st.edge().store.clock().now();
    let variants: Vec<Value> = st
        .edge()
        .store
        .current_variants(&key)
        .iter()
        .map(|o| {
            let headers: serde_json::Map<String, Value> = o
                .headers
                .keys()
                .map(|k| {
                    let values: Vec<Value> = o
                        .headers
                        .get_all(k)
                        .iter()
                        .map(|v| Value::from(String::from_utf8_lossy(v.as_bytes())))
                        .collect();
                    (k.as_str().to_string(), Value::from(values))
                })
                .collect();
            let vary: serde_json::Map<String, Value> = o
                .vary
                .pairs()
                .map(|(n, v)| {
                    let v = v.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                    (n.as_str().to_string(), Value::from(v))
                })
                .collect();
            let tags: Vec<&str> = o
                .stamp
                .iter()
                .flat_map(|s| s.tags.iter().map(|t| &**t))
                .collect();
            json!({
                "status": o.status.as_u16(),
                "vary": vary,
                "age": o.freshness.age(now).as_secs(),
                "ttl": o.freshness.ttl_secs(now),
                "fresh": o.freshness.is_fresh(now),
                "bytes": o.body.len(),
                "tags": tags,
                "headers": headers,
            })
        })
        .collect();
    Json(json!({
        "url": url,
        "cached": !variants.is_empty(),
        "variants": variants,
    }))
    .into_response()
}

async fn stats(State(st): State<AdminState>) -> Response {
    let edge = st.edge();
    // Reading the store's size runs its pending maintenance: off the serving threads.
    let mut body = tokio::task::spawn_blocking(move || stats_of(&edge))
        .await
        .unwrap_or_else(|_| json!({}));
    body["acl_refused"] = json!(st.edge().acl_refused());
    body["admin_acl_refused"] = json!(st.acl_refused());
    body["rate_limited"] = json!(st.edge().access_counts.rate_limited());
    body["admission_refused"] = json!(st.edge().doorkeeper.refused());
    let counts = &st.edge().metrics.counts;
    body["tls_handshakes"] = json!({
        "done": counts.handshakes(Handshake::Done),
        "failed": counts.handshakes(Handshake::Failed),
        "timed_out": counts.handshakes(Handshake::TimedOut),
    });
    Json(body).into_response()
}

/// What `GET /stats` answers: the store, then per site since start, then what the status
/// page draws (history, top URLs, origin health, recent purges).
fn stats_of(edge: &Edge) -> Value {
    let m = &edge.metrics;
    let (entries, bytes) = edge.store.usage();
    let site = |s: &SiteStats| {
        let t = s.totals();
        json!({
            "name": &*s.name,
            "requests": t.requests(),
            "hits": t.hits(),
            "lookups": t.lookups(),
            "hit_ratio": t.hit_ratio(),
            "bytes_sent": t.bytes.iter().sum::<u64>(),
            "byte_hit_ratio": t.byte_hit_ratio(),
            "origin_requests": t.origin_requests,
            "origin_errors": t.origin_errors,
            "coalesced": t.coalesced,
        })
    };
    let sites: Vec<Value> = m.sites().iter().map(|s| site(s)).collect();
    let history: Vec<Value> = m
        .history()
        .iter()
        .map(|h| json!([h.at, h.requests, h.lookups, h.hits, h.bytes]))
        .collect();
    let (by_requests, by_bytes) = m.top_urls.top(10);
    let top = |v: Vec<TopUrl>| -> Vec<Value> {
        v.into_iter()
            .map(|t| json!({"url": t.url, "requests": t.requests, "bytes": t.bytes}))
            .collect()
    };
    let purges: Vec<Value> = m
        .recent_purges()
        .iter()
        .rev()
        .map(|p| {
            json!({
                "at": httpdate::fmt_http_date(p.at),
                "kind": p.kind,
                "what": p.what,
                "soft": p.soft,
                "purged": p.objects,
            })
        })
        .collect();
    let now = edge.store.clock().now();
    let pools: Vec<Value> = edge
        .sites
        .iter()
        .filter_map(|s| {
            let servers: Vec<Value> = s
                .origin
                .health(now)?
                .into_iter()
                .map(|h| {
                    json!({
                        "server": h.server,
                        "healthy": h.healthy,
                        "backup": h.backup,
                        "outstanding": h.outstanding,
                    })
                })
                .collect();
            Some(json!({"site": s.name, "servers": servers}))
        })
        .collect();
    json!({
        "uptime_seconds": m.uptime().as_secs(),
        "entries": entries,
        "bytes": bytes,
        "budget": edge.store.config().max_memory,
        "evictions": edge.store.evictions(),
        "fills_in_flight": edge.fills.in_progress(),
        "sites": sites,
        "unmatched": site(&m.unmatched),
        "data": site(&m.data),
        "history": {
            "every_seconds": SAMPLE_EVERY.as_secs(),
            "columns": ["at", "requests", "lookups", "hits", "bytes"],
            "samples": history,
        },
        "top_urls": {
            "sampled_one_in": TOP_SAMPLE,
            "by_requests": top(by_requests),
            "by_bytes": top(by_bytes),
        },
        "pools": pools,
        "purges": purges,
    })
}

/// `POST /reload`: reads the config file again and serves it (as SIGHUP does). Answers
/// `{"reloaded": true, "sites": N, "routes": N, "restart_needed": [keys]}`, or 422
/// `{"reloaded": false, "error": what check-config says}` and the old config goes on.
async fn reload(State(st): State<AdminState>) -> Response {
    let Some(reloader) = &st.reloader else {
        return (
            StatusCode::CONFLICT,
            Json(json!({
                "reloaded": false,
                "error": "the edge was started without --config: there is no file to read again",
            })),
        )
            .into_response();
    };
    match reloader.reload().await {
        Ok(r) => {
            tracing::info!(sites = r.sites, routes = r.routes, restart_needed = ?r.restart_needed, "config reloaded (POST /reload)");
            let mut body = serde_json::to_value(&r).unwrap_or_else(|_| json!({}));
            body["reloaded"] = json!(true);
            Json(body).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "reload refused: the old config goes on");
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "reloaded": false, "error": e })),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(st): State<AdminState>) -> Response {
    let edge = st.edge();
    let admin_refused = st.acl_refused();
    let text = tokio::task::spawn_blocking(move || {
        let (entries, bytes) = edge.store.usage();
        edge.metrics.render(
            &[
                ("edgecache_store_entries", entries as f64),
                ("edgecache_store_bytes", bytes as f64),
                (
                    "edgecache_store_budget_bytes",
                    edge.store.config().max_memory as f64,
                ),
                ("edgecache_fills_in_flight", edge.fills.in_progress() as f64),
                (
                    "edgecache_uptime_seconds",
                    edge.metrics.uptime().as_secs_f64(),
                ),
            ],
            &[
                ("edgecache_store_evictions_total", edge.store.evictions()),
                ("edgecache_acl_refused_total", edge.acl_refused()),
                ("edgecache_admin_acl_refused_total", admin_refused),
                (
                    "edgecache_rate_limited_total",
                    edge.access_counts.rate_limited(),
                ),
                (
                    "edgecache_admission_refused_total",
                    edge.doorkeeper.refused(),
                ),
                (
                    "edgecache_tls_handshakes_total",
                    edge.metrics.counts.handshakes(Handshake::Done),
                ),
                (
                    "edgecache_tls_handshake_failures_total",
                    edge.metrics.counts.handshakes(Handshake::Failed),
                ),
                (
                    "edgecache_tls_handshake_timeouts_total",
                    edge.metrics.counts.handshakes(Handshake::TimedOut),
                ),
            ],
        )
    })
    .await
    .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
