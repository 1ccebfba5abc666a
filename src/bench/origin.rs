//! The origin `edgecache bench --serve-origin` runs: `GET /obj/{id}?size=N` answers N bytes with
//! the chosen `Cache-Control`, a strong ETag and a Last-Modified (so revalidation works), and
//! counts what it served. `GET /_origin/stats` gives the counts as JSON for scripts that drive
//! it from another process.

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use serde::Serialize;
use std::{
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The largest object the origin makes (a bigger `size` is refused with 400).
pub(crate) const MAX_OBJECT: u64 = 256 << 20;
/// Size of an object asked for without `size=`.
pub(crate) const DEFAULT_SIZE: u64 = 1024;

/// What the origin has served since it started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct OriginCounts {
    /// Every request but those for the stats: objects (conditional or not), refused sizes and
    /// unknown paths.
    pub(crate) requests: u64,
    /// Conditional requests answered 304.
    pub(crate) not_modified: u64,
    /// Body bytes sent.
    pub(crate) bytes: u64,
}

#[derive(Default)]
struct Counters {
    /// Every request but those for the stats.
    requests: AtomicU64,
    /// Conditional requests answered 304.
    not_modified: AtomicU64,
    /// Body bytes sent.
    bytes: AtomicU64,
}

struct Shared {
    /// The `Cache-Control` of every object (`--cache-control`).
    cache_control: HeaderValue,
    /// Every object's `Last-Modified` (the start time): a validator, so revalidation works.
    last_modified: HeaderValue,
    /// What it served, for `/_origin/stats` and the bench's cross-check.
    counters: Counters,
    /// Bodies are slices of this block, grown on demand: no copy, no allocation per request.
    block: RwLock<Bytes>,
}

/// A running origin; stops when dropped.
pub struct BenchOrigin {
    /// Where it listens (the port the OS chose, when asked for 0).
    pub(crate) addr: SocketAddr,
    /// Its state, shared with the handlers: the counts are read from here.
    shared: Arc<Shared>,
    /// Stops the server gracefully; sent on drop.
    stop: Option<oneshot::Sender<()>>,
    /// The server task, which `BenchOrigin::wait` awaits for `--serve-origin` alone.
    task: Option<JoinHandle<()>>,
}

impl BenchOrigin {
    pub(crate) async fn start(
        listen: SocketAddr,
        cache_control: &str,
    ) -> std::io::Result<BenchOrigin> {
        let cache_control = HeaderValue::from_str(cache_control).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "--cache-control is not a valid header value",
            )
        })?;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cache_control,
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now()))
                .expect("an HTTP date is a valid header value"),
            counters: Counters::default(),
            block: RwLock::new(Bytes::new()),
        });
        let app = Router::new()
            .route("/obj/{id}", get(object))
            .route("/_origin/stats", get(stats))
            .fallback(not_found)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(BenchOrigin {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn counts(&self) -> OriginCounts {
        self.shared.counts()
    }

    /// Runs until the task ends (it does not on its own: for `--serve-origin` alone).
    pub async fn wait(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for BenchOrigin {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Shared {
    fn counts(&self) -> OriginCounts {
        let c = &self.counters;
        OriginCounts {
            requests: c.requests.load(Ordering::Relaxed),
            not_modified: c.not_modified.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }

    fn body(&self, size: usize) -> Bytes {
        {
            let block = self.block.read().unwrap_or_else(|e| e.into_inner());
            if block.len() >= size {
                return block.slice(..size);
            }
        }
        let mut block = self.block.write().unwrap_or_else(|e| e.into_inner());
        if block.len() < size {
            *block = Bytes::from(vec![
                b'x';
                size.next_power_of_two().min(MAX_OBJECT as usize)
            ]);
        }
        block.slice(..size)
    }
}

/// Counted too: a cache sending the bench's requests elsewhere must show in the cross-check.
async fn not_found(State(shared): State<Arc<Shared>>) -> Response {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::NOT_FOUND,
        "the bench origin serves /obj/{id}?size=N\n",
    )
        .into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.counts()).into_response()
}

async fn object(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    req_headers: HeaderMap,
) -> Response {
    let c = &shared.counters;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let size = match uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("size="))
    {
        None => DEFAULT_SIZE,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n <= MAX_OBJECT => n,
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("size must be a byte count up to {MAX_OBJECT}\n"),
                )
                    .into_response();
            }
        },
    };
    let etag =
        HeaderValue::from_str(&format!("\"{:x}-{size}\"", hash(&id))).expect("digits and quotes");
    let mut res = if req_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*")
    {
        c.not_modified.fetch_add(1, Ordering::Relaxed);
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        c.bytes.fetch_add(size, Ordering::Relaxed);
        let mut r = shared.body(size as usize).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        r
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, shared.cache_control.clone());
    h.insert(header::ETAG, etag);
    h.insert(header::LAST_MODIFIED, shared.last_modified.clone());
    res
}

/// FNV-1a: a stable, dependency-free tag for the ETag (not a security boundary).
fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_sized_objects_with_validators_and_counts() {
        let o = BenchOrigin::start("127.0.0.1:0".parse().unwrap(), "public, max-age=60")
            .await
            .unwrap();
        let c = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = c
            .get(format!("{}/obj/7?size=5000", o.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "public, max-age=60");
        let etag = r.headers()["etag"].clone();
        assert!(r.headers().contains_key("last-modified"));
        assert_eq!(r.bytes().await.unwrap().len(), 5000);
        let r = c
            .get(format!("{}/obj/7?size=5000", o.url()))
            .header("if-none-match", etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        // Another size is another representation.
        let r = c
            .get(format!("{}/obj/7?size=10", o.url()))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().len(), 10);
        let r = c.get(format!("{}/obj/x", o.url())).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), DEFAULT_SIZE as usize);
        let r = c
            .get(format!("{}/obj/x?size=1e9", o.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("size must be"));
        let r = c
            .get(format!("{}/elsewhere", o.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(
            o.counts(),
            OriginCounts {
                requests: 6,
                not_modified: 1,
                bytes: 5000 + 10 + DEFAULT_SIZE
            }
        );
        let stats = c
            .get(format!("{}/_origin/stats", o.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
        assert_eq!(stats["requests"], 6);
        assert_eq!(stats["not_modified"], 1);
    }
}
