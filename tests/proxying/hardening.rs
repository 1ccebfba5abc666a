//! Findings of a review, pinned down: Host values the cache key could not record, silent
//! connections holding slots, and a user's Cookie evicting a shared copy.

use crate::common::{TestEdge, TestOrigin, header, raw_request};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn hosts_that_do_not_parse_as_an_authority_are_refused() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    for host in [
        "example.com:@evil.com",
        "a.com/assets",
        "a.com:80:80",
        "a.com:x",
    ] {
        let req =
            format!("GET /c/h?cc=max-age=60 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let res = raw_request(edge.addr, req.as_bytes()).await;
        assert!(res.starts_with("HTTP/1.1 400"), "{host}: {res}");
    }
    assert_eq!(origin.count("/c/h"), 0);
}

#[tokio::test]
async fn the_origin_is_sent_exactly_the_host_the_key_records() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // Same host, another port: another key, and the origin sees that port.
    for (host, body_prefix) in [
        ("site.test:8443", "site.test:8443|"),
        ("Site.Test:80", "site.test|"),
    ] {
        let r = edge
            .get("/c/port?cc=max-age=60&echo=Host")
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert!(r.text().await.unwrap().starts_with(body_prefix), "{host}");
    }
    let r = edge
        .get("/c/port?cc=max-age=60&echo=Host")
        .header("host", "site.test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "x-cache"),
        "HIT",
        "site.test and site.test:80 are one key"
    );
    assert_eq!(origin.count("/c/port"), 2);
}

#[tokio::test]
async fn silent_connections_do_not_hold_slots_past_the_head_timeout() {
    let origin = TestOrigin::start().await;
    let extra = "[server]\nmax_connections = 2\nheader_read_timeout = \"500ms\"";
    let edge = TestEdge::in_front_of(&origin, extra).await;
    let _silent: Vec<_> =
        futures_util::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(edge.addr)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), edge.get("/healthz").send())
        .await
        .expect("served once the silent connections timed out")
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_revalidation_by_a_user_with_a_cookie_keeps_the_shared_copy() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/c/shared?cc=max-age=1&etag=1";
    edge.get(p).send().await.unwrap().bytes().await.unwrap();
    edge.advance(Duration::from_millis(1100));
    let r = edge
        .get(p)
        .header("cookie", "session=alice")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-cache"), "REVALIDATED");
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT", "the anonymous copy survived");
    assert_eq!(origin.count("/c/shared"), 2);
}

#[tokio::test]
async fn a_client_no_store_neither_evicts_the_shared_copy_nor_blocks_caching() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let get = |p: &'static str, no_store: bool| {
        let mut rb = edge.get(p);
        if no_store {
            rb = rb.header("cache-control", "no-store");
        }
        async move {
            let r = rb.send().await.unwrap();
            let cs = header(&r, "cache-status");
            let xc = header(&r, "x-cache");
            r.bytes().await.unwrap();
            (xc, cs)
        }
    };
    // A miss asked with no-store is not stored, and leaves no mark on the URL.
    let p = "/c/ns?cc=max-age=60";
    let (xc, cs) = get(p, true).await;
    assert_eq!(xc, "MISS");
    assert!(cs.contains("detail=request-no-store"), "{cs}");
    assert_eq!(get(p, false).await.0, "MISS", "the next client fills it");
    assert_eq!(get(p, false).await.0, "HIT");
    assert_eq!(
        get(p, true).await.0,
        "HIT",
        "client Cache-Control is ignored"
    );
    assert_eq!(origin.count("/c/ns"), 2);

    // A revalidation asked with no-store renews the shared copy instead of dropping it.
    let p = "/c/ns2?cc=max-age=1&etag=1";
    get(p, false).await;
    edge.advance(Duration::from_millis(1100));
    assert_eq!(get(p, true).await.0, "REVALIDATED");
    assert_eq!(get(p, false).await.0, "HIT", "the shared copy survived");
    assert_eq!(origin.count("/c/ns2"), 2);
}

#[tokio::test]
async fn a_partial_http2_preface_does_not_hold_a_slot() {
    use tokio::io::AsyncWriteExt;
    let origin = TestOrigin::start().await;
    let extra = "[server]\nmax_connections = 2\nheader_read_timeout = \"500ms\"";
    let edge = TestEdge::in_front_of(&origin, extra).await;
    let mut held = Vec::new();
    for prefix in [&b"P"[..], b"PRI * HTTP/2.0\r\n"] {
        let mut s = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
        s.write_all(prefix).await.unwrap();
        held.push(s);
    }
    let r = tokio::time::timeout(Duration::from_secs(5), edge.get("/healthz").send())
        .await
        .expect("served once the stuck prefaces timed out")
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
    use tokio::io::AsyncWriteExt;
    let origin = TestOrigin::start().await;
    let extra = "[server]\nmax_connections = 1\nsend_timeout = \"500ms\"";
    let edge = TestEdge::in_front_of(&origin, extra).await;
    // Far more than the loopback socket buffers hold, so the edge's writes block.
    let mut s = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    s.write_all(b"GET /c/big?size=40000000 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), edge.get("/healthz").send())
        .await
        .expect("the slot came free once the stalled write timed out")
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(s);
}
