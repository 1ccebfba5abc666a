//! A scriptable HTTP origin for integration tests.
//!
//! [`TestOrigin::start`] serves every path on an ephemeral `127.0.0.1` port and
//! counts what it receives. The query string of each request scripts the
//! response; every parameter is optional:
//!
//! | parameter | effect |
//! |---|---|
//! | `size=N` | body of `max(N, prefix len)` bytes, default 100: prefix then `x`s |
//! | `etag=1` | `ETag: "<version>-<path, / as _>"`; a matching `If-None-Match` gets 304 |
//! | `lm=1` | `Last-Modified:` [`LAST_MODIFIED`]; `If-Modified-Since` at or after it gets 304 |
//! | `vary=H`, `echo=H` | prefix is the request's `H` (or `none`) + `\|`; `vary` adds `Vary: H` |
//! | `ct=V`, `status=N` | `Content-Type` (default `application/octet-stream`), status (200) |
//! | `delay=MS` | wait before sending headers |
//! | `slow=MS` | body in 10 pieces spread over MS milliseconds, with `Content-Length` |
//! | `chunked=1` | body as a stream of pieces without `Content-Length` |
//! | `abort=N` | announce the full length, send N bytes, then cut the connection |
//! | `gate=NAME` | body in 10 pieces, the last held until [`TestOrigin::open`]`(NAME)` |
//! | `cc`, `set_cookie`, `age`, `location`, `content_location` | those headers |
//! | `expires=SECS` | `Expires` = now + SECS (may be negative), and `Date` = now |
//! | `hdr=Name:Value` | extra response header (may repeat; other methods too) |
//!
//! Every response has a `Date` from [`TestOrigin::clock`], which the edges in front of it
//! share, so moving their time ahead moves the origin's.
//!
//! Without `vary`/`echo` the prefix is `"<version>|"`, so tests can see
//! [`TestOrigin::set_version`] take effect. Methods other than GET and HEAD
//! get `status` with body `ok <METHOD>` plus `cc`, `location` and
//! `content_location`. `GET /__count?path=/p` answers the count for `/p` as
//! text and is not itself counted.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use edgecache::clock::Clock;
use futures_util::{StreamExt, stream};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use tokio::sync::watch;

/// The `Last-Modified` date served with `lm=1`.
pub const LAST_MODIFIED: &str = "Mon, 02 Nov 2026 10:00:00 GMT";

/// Headers a 304 repeats from the 200 it stands for (RFC 9110 §15.4.5).
const NOT_MODIFIED_HEADERS: [HeaderName; 9] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::LAST_MODIFIED,
    header::VARY,
    // Surrogate keys, as a CDN's origin may repeat them on a 304.
    HeaderName::from_static("surrogate-key"),
    HeaderName::from_static("cache-tag"),
];

/// Query parameters copied verbatim into a response header; the first three
/// also apply to methods other than GET and HEAD.
const PARAM_HEADERS: [(&str, &str); 6] = [
    ("cc", "cache-control"),
    ("location", "location"),
    ("content_location", "content-location"),
    ("vary", "vary"),
    ("set_cookie", "set-cookie"),
    ("age", "age"),
];

/// What the origin has seen for one path.
#[derive(Debug, Default)]
struct PathStats {
    count: usize,
    methods: HashMap<String, usize>,
    inm: usize,
    ims: usize,
    last_headers: Option<HeaderMap>,
}

/// Counters and per-path versions, shared by the server and the handle.
#[derive(Debug, Default)]
struct Inner {
    paths: HashMap<String, PathStats>,
    versions: HashMap<String, String>,
    total: usize,
    /// The time of its `Date` and `Expires`: the clock of the edges in front of it, so a test
    /// that moves their time ahead moves the origin's too.
    clock: Clock,
    /// Named gates (`gate=NAME`): a body's last piece waits until its gate is open, so a test
    /// can act while the origin has provably not finished, with no timing involved.
    gates: HashMap<String, Arc<watch::Sender<bool>>>,
}

type Shared = Arc<Mutex<Inner>>;

/// Locks the state, ignoring poisoning by a panicked test.
fn lock(state: &Shared) -> MutexGuard<'_, Inner> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running test origin; clones share the same server and counters.
#[derive(Clone, Debug)]
pub struct TestOrigin {
    /// The address the origin listens on.
    pub addr: SocketAddr,
    /// Base URL without a trailing slash, `http://127.0.0.1:PORT`.
    pub url: String,
    state: Shared,
}

impl TestOrigin {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start() -> TestOrigin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test origin");
        let addr = listener.local_addr().expect("test origin address");
        let state = Shared::default();
        let app = Router::new()
            .route("/__count", get(count_handler))
            .fallback(handle)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("test origin") });
        TestOrigin {
            addr,
            url: format!("http://{addr}"),
            state,
        }
    }

    /// Reads one path's statistics, or the default if it was never requested.
    fn stat<T: Default>(&self, path: &str, f: impl FnOnce(&PathStats) -> T) -> T {
        lock(&self.state).paths.get(path).map(f).unwrap_or_default()
    }

    /// Requests seen for `path` (any method, any query).
    pub fn count(&self, path: &str) -> usize {
        self.stat(path, |s| s.count)
    }

    /// Requests seen for `path` with `method` (case-insensitive).
    pub fn count_method(&self, path: &str, method: &str) -> usize {
        let same = |(m, n): (&String, &usize)| m.eq_ignore_ascii_case(method).then_some(*n);
        self.stat(path, |s| s.methods.iter().filter_map(same).sum())
    }

    /// Requests for `path` that carried `If-None-Match`.
    pub fn inm_count(&self, path: &str) -> usize {
        self.stat(path, |s| s.inm)
    }

    /// Requests for `path` that carried `If-Modified-Since`.
    pub fn ims_count(&self, path: &str) -> usize {
        self.stat(path, |s| s.ims)
    }

    /// All requests seen, every path.
    pub fn total(&self) -> usize {
        lock(&self.state).total
    }

    /// Request headers of the last request for `path`.
    pub fn last_headers(&self, path: &str) -> Option<HeaderMap> {
        self.stat(path, |s| s.last_headers.clone())
    }

    /// Changes the version `path` serves (default `v1`): body prefix and ETag.
    pub fn set_version(&self, path: &str, v: &str) {
        lock(&self.state)
            .versions
            .insert(path.to_owned(), v.to_owned());
    }

    /// The clock of this origin's `Date` and `Expires` (edges started with
    /// `TestEdge::in_front_of` share it).
    pub fn clock(&self) -> Clock {
        lock(&self.state).clock.clone()
    }

    /// Opens the gate `name`: bodies scripted with `gate=name` send their last piece, now and
    /// from now on.
    pub fn open(&self, name: &str) {
        gate(&self.state, name).send_replace(true);
    }

    /// Forgets all counts and recorded headers; versions are kept.
    pub fn reset(&self) {
        let mut inner = lock(&self.state);
        inner.paths.clear();
        inner.total = 0;
    }
}

/// The gate `name`, closed when first named.
fn gate(state: &Shared, name: &str) -> Arc<watch::Sender<bool>> {
    let mut inner = lock(state);
    let gate = inner.gates.entry(name.to_owned());
    gate.or_insert_with(|| Arc::new(watch::Sender::new(false)))
        .clone()
}

/// `GET /__count?path=/p`: the count for `/p` as text.
async fn count_handler(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> String {
    let path = query.get("path").map_or("", String::as_str);
    let count = lock(&state).paths.get(path).map_or(0, |s| s.count);
    count.to_string()
}

/// The query string as name/value pairs, URL-decoded.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(uri: &Uri) -> Params {
        Params(Query::try_from_uri(uri).map(|q| q.0).unwrap_or_default())
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name` parsed as a number; panics on garbage.
    fn num<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        let v = self.get(name)?;
        let Ok(n) = v.parse() else {
            panic!("test origin: bad {name}={v}")
        };
        Some(n)
    }

    /// Whether `name=1` was given.
    fn flag(&self, name: &str) -> bool {
        self.get(name) == Some("1")
    }
}

/// Sets a response header, panicking with a clear message if it is invalid.
/// The `hdr=Name:Value` headers.
fn put_extra(p: &Params, out: &mut HeaderMap) {
    for extra in p.all("hdr") {
        let (name, value) = extra.split_once(':').expect("test origin: hdr=Name:Value");
        put(out, name.trim(), value.trim());
    }
}

fn put(headers: &mut HeaderMap, name: &str, value: &str) {
    let name = HeaderName::try_from(name).expect("test origin: bad header name");
    let value = HeaderValue::try_from(value).expect("test origin: bad header value");
    headers.append(name, value);
}

/// Copies each `(param, header)` pair's query value, if given, into `out`.
fn put_params(p: &Params, out: &mut HeaderMap, pairs: &[(&str, &str)]) {
    for (param, name) in pairs {
        if let Some(v) = p.get(param) {
            put(out, name, v);
        }
    }
}

/// Counts the request and returns the version `path` currently serves.
fn record(state: &Shared, path: &str, method: &Method, headers: &HeaderMap) -> String {
    let mut inner = lock(state);
    let version = inner.versions.get(path).cloned();
    inner.total += 1;
    let stats = inner.paths.entry(path.to_owned()).or_default();
    stats.count += 1;
    *stats.methods.entry(method.as_str().to_owned()).or_default() += 1;
    stats.inm += usize::from(headers.contains_key(header::IF_NONE_MATCH));
    stats.ims += usize::from(headers.contains_key(header::IF_MODIFIED_SINCE));
    stats.last_headers = Some(headers.clone());
    version.unwrap_or_else(|| "v1".to_owned())
}

/// Every path except `/__count`: count, then answer as the query scripts.
async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path();
    let version = record(&state, path, &method, &headers);
    let now = lock(&state).clock.now();
    let params = Params::parse(&uri);
    if let Some(ms) = params.num("delay") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = params.num("status").map_or(StatusCode::OK, |n| {
        StatusCode::from_u16(n).expect("test origin: bad status")
    });
    if method == Method::GET || method == Method::HEAD {
        let gate = params.get("gate").map(|g| gate(&state, g).subscribe());
        return serve(&params, path, &version, &headers, status, now, gate);
    }
    // Other methods: drain the body; a failed upload is of no interest here.
    let _ = axum::body::to_bytes(body, usize::MAX).await;
    let mut out = HeaderMap::new();
    put(&mut out, "date", &httpdate::fmt_http_date(now));
    put_params(&params, &mut out, &PARAM_HEADERS[..3]);
    put_extra(&params, &mut out);
    (status, out, format!("ok {method}")).into_response()
}

/// Whether an `If-None-Match` list names `etag` (weak comparison) or is `*`.
fn inm_matches(headers: &HeaderMap, etag: &str) -> bool {
    let values = headers.get_all(header::IF_NONE_MATCH).into_iter();
    let tags = values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    tags.map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// Builds the GET/HEAD response.
fn serve(
    p: &Params,
    path: &str,
    version: &str,
    req: &HeaderMap,
    status: StatusCode,
    now: SystemTime,
    gate: Option<watch::Receiver<bool>>,
) -> Response {
    let mut out = HeaderMap::new();
    put(&mut out, "date", &httpdate::fmt_http_date(now));
    let ct = p.get("ct").unwrap_or("application/octet-stream");
    put(&mut out, "content-type", ct);
    put_params(p, &mut out, &PARAM_HEADERS);
    let etag = p
        .flag("etag")
        .then(|| format!("\"{version}-{}\"", path.replace('/', "_")));
    if let Some(etag) = &etag {
        put(&mut out, "etag", etag);
    }
    if p.flag("lm") {
        put(&mut out, "last-modified", LAST_MODIFIED);
    }
    if let Some(secs) = p.num::<i64>("expires") {
        let delta = Duration::from_secs(secs.unsigned_abs());
        let at = if secs < 0 { now - delta } else { now + delta };
        put(&mut out, "expires", &httpdate::fmt_http_date(at));
    }
    put_extra(p, &mut out);

    // If-None-Match takes precedence; If-Modified-Since counts only without it.
    let not_modified = status.is_success()
        && if req.contains_key(header::IF_NONE_MATCH) {
            etag.is_some_and(|e| inm_matches(req, &e))
        } else {
            p.flag("lm") && modified_since_ok(req)
        };
    if not_modified {
        let mut kept = HeaderMap::new();
        for name in NOT_MODIFIED_HEADERS {
            for value in out.get_all(&name) {
                kept.append(name.clone(), value.clone());
            }
        }
        return (StatusCode::NOT_MODIFIED, kept).into_response();
    }

    let header_value = |name: &str| req.get(name).and_then(|v| v.to_str().ok());
    let prefix = match p.get("vary").or_else(|| p.get("echo")) {
        Some(h) => format!("{}|", header_value(h).unwrap_or("none")),
        None => format!("{version}|"),
    };
    let mut bytes = prefix.into_bytes();
    bytes.resize(bytes.len().max(p.num("size").unwrap_or(100)), b'x');
    let body = stream_body(p, Bytes::from(bytes), &mut out, gate);
    (status, out, body).into_response()
}

/// Whether `If-Modified-Since` is at or after [`LAST_MODIFIED`].
fn modified_since_ok(req: &HeaderMap) -> bool {
    let lm = httpdate::parse_http_date(LAST_MODIFIED).expect("LAST_MODIFIED parses");
    req.get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|ims| ims >= lm)
}

/// The body, streamed in pieces when `slow`, `chunked`, `abort` or `gate` ask for it.
fn stream_body(
    p: &Params,
    full: Bytes,
    out: &mut HeaderMap,
    gate: Option<watch::Receiver<bool>>,
) -> Body {
    let slow: Option<u64> = p.num("slow");
    let chunked = p.flag("chunked");
    let abort: Option<usize> = p.num("abort");
    if slow.is_none() && !chunked && abort.is_none() && gate.is_none() {
        return Body::from(full);
    }
    if !chunked {
        out.insert(header::CONTENT_LENGTH, full.len().into());
    }
    let sent = full.slice(..abort.unwrap_or(full.len()).min(full.len()));
    let pieces = if slow.is_some() || chunked || gate.is_some() {
        10
    } else {
        1
    };
    let step = sent.len().div_ceil(pieces).max(1);
    let parts: Vec<Bytes> = (0..sent.len())
        .step_by(step)
        .map(|at| sent.slice(at..(at + step).min(sent.len())))
        .collect();
    let pause = Duration::from_millis(slow.unwrap_or(0) / 10);
    // Pause before failing so hyper flushes the headers and the bytes sent:
    // a body failing before its first flush just drops the response.
    let failure = stream::iter(abort).then(|_| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(io::Error::other("test origin: aborted body"))
    });
    let last = parts.len().saturating_sub(1);
    let stream = stream::iter(parts.into_iter().enumerate())
        .then(move |(i, part)| {
            let gate = gate.clone().filter(|_| i == last);
            async move {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                if let Some(mut gate) = gate {
                    // A gate dropped with its origin ends the wait too.
                    let _ = gate.wait_for(|open| *open).await;
                }
                Ok(part)
            }
        })
        .chain(failure);
    Body::from_stream(stream)
}
