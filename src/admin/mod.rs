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
//! - `GET /stats`: entries, bytes used and the budget.

use crate::{
    cache::CacheKey,
    proxy::{Edge, site::Authority},
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Query, Request, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// What the admin API works on.
#[derive(Clone)]
pub struct AdminState {
    pub(crate) edge: Arc<Edge>,
    /// The bearer token requests must carry; `None` asks for none (loopback only, as the
    /// config enforces).
    pub(crate) token: Option<Arc<str>>,
}

impl AdminState {
    pub fn new(edge: Arc<Edge>, token: Option<&str>) -> Self {
        Self {
            edge,
            token: token.map(Arc::from),
        }
    }
}

/// The admin API's routes.
pub fn app(state: AdminState) -> Router {
    Router::new()
        .route("/purge", post(purge))
        .route("/cache", get(cache))
        .route("/stats", get(stats))
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

/// Lets through only requests with the configured bearer token (compared in constant time).
/// Without a token, only requests for a loopback name: a web page of another origin that
/// rebinds its own name to 127.0.0.1 (DNS rebinding) sends its Host, and is refused.
async fn authorize(State(st): State<AdminState>, req: Request, next: Next) -> Response {
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
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match given {
        None => {
            let mut r = refuse(StatusCode::UNAUTHORIZED, "a bearer token is required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"edgecache admin\""),
            );
            r
        }
        Some(t) if same(t.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => refuse(StatusCode::FORBIDDEN, "wrong token"),
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
    let store = st.edge.store.clone();
    let now = store.clock().now();
    let work: Box<dyn FnOnce() -> usize + Send> = match (req.url, req.prefix, req.tag) {
        (Some(url), None, None) => match key_of(&st.edge, &url) {
            Ok(key) => Box::new(move || store.purge(&key, soft, now)),
            Err(r) => return r.into_response(),
        },
        (None, Some(prefix), None) => match key_of(&st.edge, &prefix) {
            Ok(key) => Box::new(move || store.purge_prefix(&key, soft, now)),
            Err(r) => return r.into_response(),
        },
        (None, None, Some(tag)) if !tag.is_empty() => {
            Box::new(move || store.purge_tag(&tag, soft, now))
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
    Ok(CacheKey::new(&site.name, &authority.canonical(), target))
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
    let key = match key_of(&st.edge, &url) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let now = st.edge.store.clock().now();
    let variants: Vec<Value> = st
        .edge
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
    let store = st.edge.store.clone();
    let (entries, bytes) = tokio::task::spawn_blocking(move || store.usage())
        .await
        .unwrap_or_default();
    Json(json!({
        "entries": entries,
        "bytes": bytes,
        "budget": st.edge.store.config().max_memory,
    }))
    .into_response()
}
