//! Findings of a review, pinned down: Host values the cache key could not record, silent
//! connections holding slots, and a user's Cookie evicting a shared copy.

use crate::common::{TestEdge, TestOrigin, header, raw_request};
use std::time::{Duration, Instant};

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
    tokio::time::sleep(Duration::from_millis(1100)).await;
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
