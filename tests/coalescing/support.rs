//! Helpers only this test binary uses: timed body reads, a port nobody listens on, a tiny
//! counting origin that can be started late on a given port.

use std::net::SocketAddr;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;
use tokio::time::Instant;

/// What reading one response body showed.
pub struct Read {
    /// When the first non-empty chunk arrived.
    pub first_chunk: Option<Instant>,
    /// When the body ended (cleanly or not).
    pub done: Instant,
    /// The bytes, or the error the body ended in.
    pub body: Result<Vec<u8>, reqwest::Error>,
}

/// Reads a body chunk by chunk, noting when the first chunk and the end arrived.
pub async fn read_timed(mut res: reqwest::Response) -> Read {
    let mut first_chunk = None;
    let mut buf = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(c)) => {
                if !c.is_empty() && first_chunk.is_none() {
                    first_chunk = Some(Instant::now());
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => {
                return Read {
                    first_chunk,
                    done: Instant::now(),
                    body: Ok(buf),
                };
            }
            Err(e) => {
                return Read {
                    first_chunk,
                    done: Instant::now(),
                    body: Err(e),
                };
            }
        }
    }
}

/// Reads until at least `n` body bytes arrived (or the body ends); returns how many.
pub async fn read_at_least(res: &mut reqwest::Response, n: usize) -> usize {
    let mut got = 0;
    while got < n {
        match res.chunk().await {
            Ok(Some(c)) => got += c.len(),
            _ => break,
        }
    }
    got
}

/// Serves `late|ok` with `Cache-Control: max-age=60` on `addr`, counting requests.
pub async fn late_origin(addr: SocketAddr) -> Arc<AtomicUsize> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("rebind the port the edge points at");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            ([("cache-control", "max-age=60")], "late|ok")
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    hits
}

/// Sends GETs for `path` until one is a HIT (at most `tries`, `pause` apart); returns whether
/// one was, with the last body.
pub async fn poll_for_hit(
    edge: &crate::common::TestEdge,
    path: &str,
    tries: usize,
    pause: Duration,
) -> (bool, Vec<u8>) {
    let mut last = Vec::new();
    for _ in 0..tries {
        let r = edge.get(path).send().await.unwrap();
        let hit = crate::common::header(&r, "x-cache") == "HIT";
        last = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        if hit {
            return (true, last);
        }
        tokio::time::sleep(pause).await;
    }
    (false, last)
}
