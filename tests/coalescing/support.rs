//! Helpers only this test binary uses: reads that must finish before the origin does, a port
//! nobody listens on, a tiny
//! counting origin that can be started late on a given port.

use std::net::SocketAddr;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;

/// How long a test waits for bytes that must come before the origin's gate is opened: a guard
/// against a hang, not a speed claim (held-back bytes would never come, the gate being shut).
const BEFORE_THE_GATE: Duration = Duration::from_secs(10);

/// The first chunk of a body, which must arrive while the origin holds its last piece back.
pub async fn first_chunk(res: &mut reqwest::Response) -> bytes::Bytes {
    tokio::time::timeout(BEFORE_THE_GATE, res.chunk())
        .await
        .expect("bytes arrived before the origin sent its last piece")
        .expect("the body reads")
        .expect("the body has a first chunk")
}

/// Sends a request whose head must arrive while the origin holds its last piece back.
pub async fn head_before_the_gate(rb: reqwest::RequestBuilder) -> reqwest::Response {
    tokio::time::timeout(BEFORE_THE_GATE, rb.send())
        .await
        .expect("the head arrived before the origin sent its last piece")
        .expect("a response")
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
