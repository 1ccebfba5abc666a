//! When a request is tried again: once, on another server, when its connection failed before
//! any answer; on the same server when a kept-alive connection turned out closed; never after
//! the answer started, never a POST unless the site says so, and within the retry budget.

use crate::common::{TestEdge, TestOrigin};
use crate::{dead_url, pool_toml, server};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An edge over a server that refuses connections and `live`, never ejecting the dead one
/// (so round-robin sends it every other request), with more site keys.
async fn dead_then_live(live: &TestOrigin, keys: &str) -> TestEdge {
    let servers = [server(&dead_url(), ""), server(&live.url, "")];
    TestEdge::from_toml(&pool_toml(&servers, &format!("eject_after = 0\n{keys}"))).await
}

/// Sends `n` requests; how many got `status`.
async fn count_status(
    edge: &TestEdge,
    method: reqwest::Method,
    path: &str,
    n: usize,
    status: u16,
) -> usize {
    let mut k = 0;
    for _ in 0..n {
        let r = edge.request(method.clone(), path).send().await.unwrap();
        k += usize::from(r.status() == status);
    }
    k
}

#[tokio::test]
async fn a_refused_connection_is_retried_once_on_another_server() {
    let live = TestOrigin::start().await;
    let edge = dead_then_live(&live, "retry_budget = 1.0").await;
    for _ in 0..10 {
        let r = edge.get("/rt?cc=no-store").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(live.count("/rt"), 10);
    // A POST is not retried unless the site allows it; a bodiless one then is.
    let failed = count_status(&edge, reqwest::Method::POST, "/rt", 10, 502).await;
    assert_eq!(failed, 5, "the POSTs that met the dead server");
    let edge = dead_then_live(&live, "retry_budget = 1.0\nretry_non_idempotent = true").await;
    let ok = count_status(&edge, reqwest::Method::POST, "/rt", 10, 200).await;
    assert_eq!(ok, 10);
}

#[tokio::test]
async fn the_retry_budget_stops_retries() {
    let live = TestOrigin::start().await;
    let edge = dead_then_live(&live, "retry_budget = 0.0").await;
    let failed = count_status(&edge, reqwest::Method::GET, "/budget?cc=no-store", 10, 502).await;
    assert_eq!(
        failed, 5,
        "no budget: every request that met the dead server failed"
    );
    // 20 % of the window's requests: of 100 requests, about 50 meet the dead server and at
    // most 20 of them are retried.
    let edge = dead_then_live(&live, "retry_budget = 0.2").await;
    let failed = count_status(
        &edge,
        reqwest::Method::GET,
        "/budget2?cc=no-store",
        100,
        502,
    )
    .await;
    assert!((30..=45).contains(&failed), "{failed} of 100 failed");
}

#[tokio::test]
async fn a_body_cut_short_is_not_retried() {
    let (a, b) = (TestOrigin::start().await, TestOrigin::start().await);
    let toml = pool_toml(&[server(&a.url, ""), server(&b.url, "")], "eject_after = 0");
    let edge = TestEdge::from_toml(&toml).await;
    // The answer started (head and some bytes), then the connection was cut.
    let r = edge
        .get("/cut?cc=no-store&size=100000&abort=5000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the client sees the cut");
    assert_eq!(a.count("/cut") + b.count("/cut"), 1, "never sent twice");
}

#[tokio::test]
async fn a_kept_alive_connection_the_server_closed_is_retried_on_a_fresh_one() {
    // Answers the first request of each connection (keeping it open, as keep-alive allows),
    // and closes the connection without a word when a second request comes on it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                for n in 0.. {
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => head.extend_from_slice(&buf[..k]),
                        }
                    }
                    if n > 0 {
                        return; // dropped: the edge's reused connection is closed
                    }
                    let body = "answered";
                    let res = format!(
                        "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(res.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let edge = TestEdge::from_toml(&pool_toml(&[server(&url, "")], "")).await;
    for i in 0..5 {
        let r = edge.get(&format!("/ka{i}")).send().await.unwrap();
        let status = r.status();
        if status != 200 {
            panic!("request {i}: {status} {}", r.text().await.unwrap());
        }
        assert_eq!(r.text().await.unwrap(), "answered");
        // Let the pool put the connection back before the next request takes it.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
