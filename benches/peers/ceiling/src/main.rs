//! The ceiling of `benches/peers/run.sh`: the fastest a cache HIT can be on edgecache's stack.
//!
//! It is axum + moka + tokio (the versions edgecache uses) with none of a cache's logic: no key
//! derivation, no freshness decision, no `Vary`, no conditional requests, no access log, no
//! origin. Every file of DIR is read into a moka cache at start, with the response headers a HIT
//! of edgecache carries, and each request is one lookup by path and one response built from what
//! was stored. Whatever edgecache does beyond that is the price of its cache logic, so in one run
//! `edgecache rps / ceiling rps` is the figure to keep near 1 (noise puts it a little above, at
//! times, but code on this stack cannot really pass it).
//!
//! usage: `peers-ceiling ADDR DIR`, e.g. `peers-ceiling 127.0.0.1:9104 target/peers/data/files`

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header},
    serve::ListenerExt,
};
use bytes::Bytes;
use moka::sync::Cache;
use std::{
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};
// tokio's Instant, as the repository's .clippy.toml asks (edgecache's tests pause time); for
// the ceiling it is std's Instant under another name.
use tokio::time::Instant;

/// One stored response. Behind an `Arc`, because moka hands out a clone of the value on every
/// `get`, and a cache should not copy its headers map just to find it.
struct Entry {
    body: Bytes,
    /// Everything but `Age`, built once at start, as a cache builds them once at fill time.
    headers: HeaderMap,
    stored: Instant,
}

type Store = Cache<String, Arc<Entry>>;

/// The whole request path: look the path up, and answer with the stored body and headers plus
/// the one header a HIT must compute per request, `Age`.
async fn serve(State(store): State<Store>, req: Request<Body>) -> Response<Body> {
    let Some(entry) = store.get(req.uri().path()) else {
        let mut not_found = Response::new(Body::empty());
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return not_found;
    };
    // Bytes is reference-counted: the body is shared, not copied.
    let mut res = Response::new(Body::from(entry.body.clone()));
    *res.headers_mut() = entry.headers.clone();
    res.headers_mut().insert(
        header::AGE,
        HeaderValue::from(entry.stored.elapsed().as_secs()),
    );
    res
}

/// The headers a HIT of edgecache sends for one of the origin's files, name for name: the
/// origin's own (`Server`, `Last-Modified`, `ETag`, `Cache-Control`, `Content-Type`,
/// `Accept-Ranges`) and the edge's (`Via`, `Cache-Status`, `X-Cache`; `Age` is added per
/// request). `Content-Length` and `Date` come from hyper, as they do for edgecache. The values
/// need not match the origin's byte for byte, only cost about the same to send: fewer headers
/// would make the ceiling look faster for a reason that is not cache logic.
fn hit_headers(len: usize, mtime: SystemTime) -> HeaderMap {
    let secs = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let etag = format!("\"{secs:x}-{len:x}\"");
    let last_modified = httpdate::fmt_http_date(mtime);
    let value = |s: &str| HeaderValue::from_str(s).expect("printable ASCII");
    let mut h = HeaderMap::new();
    h.insert(header::SERVER, HeaderValue::from_static("nginx/1.22.1"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::LAST_MODIFIED, value(&last_modified));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(&etag));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(header::VIA, HeaderValue::from_static("1.1 ceiling"));
    h.insert(
        "cache-status",
        HeaderValue::from_static("ceiling; hit; ttl=3600"),
    );
    // run.sh checks this header on every target after warming, the ceiling included.
    h.insert("x-cache", HeaderValue::from_static("HIT"));
    h
}

/// Reads every regular file of `dir` into the store, keyed `/NAME` as the origin serves it.
fn preload(dir: &Path, store: &Store) -> std::io::Result<usize> {
    let mut n = 0;
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        if !item.file_type()?.is_file() {
            continue;
        }
        let name = item.file_name().to_string_lossy().into_owned();
        let body = Bytes::from(std::fs::read(item.path())?);
        let mtime = item.metadata()?.modified()?;
        let entry = Entry {
            headers: hit_headers(body.len(), mtime),
            body,
            stored: Instant::now(),
        };
        store.insert(format!("/{name}"), Arc::new(entry));
        n += 1;
    }
    Ok(n)
}

fn usage() -> ! {
    eprintln!("usage: peers-ceiling ADDR DIR   (ADDR on loopback, e.g. 127.0.0.1:9104)");
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, dir] = args.as_slice() else {
        usage()
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        usage()
    };
    // A benchmark server must never answer anyone but this machine.
    if !addr.ip().is_loopback() {
        eprintln!("peers-ceiling: {addr} is not a loopback address");
        std::process::exit(2);
    }
    // No eviction can happen: the files are a few MiB and the capacity counts entries.
    let store: Store = Cache::builder().max_capacity(1_000).build();
    let files = preload(Path::new(dir), &store)?;
    if files == 0 {
        eprintln!("peers-ceiling: no files in {dir}");
        std::process::exit(1);
    }
    // TCP_NODELAY on every connection, as edgecache sets it (src/server.rs): the two servers
    // should differ in what they do per request, not in how their sockets are set up.
    let listener = tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!("peers-ceiling: {files} file(s) from {dir} on http://{addr}");
    let app = Router::new().fallback(serve).with_state(store);
    axum::serve(listener, app).await
}
