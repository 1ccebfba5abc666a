//! Errors: unreachable and slow origins, the health endpoint, malformed or oversized requests,
//! and which error statuses from the origin are cached.

use crate::common::{TestEdge, TestOrigin, header, raw_request};
use crate::support::{healthy, send_oversized, site_toml, status_of};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn a_refusing_origin_gives_502_and_the_edge_keeps_serving() {
    // A port nothing listens on: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let toml = site_toml(&format!("http://127.0.0.1:{port}"), "\"*\"", "", "");
    let edge = TestEdge::from_toml(&toml).await;
    for _ in 0..2 {
        let r = edge.get("/e/x?cc=max-age=60").send().await.unwrap();
        assert_eq!(r.status(), 502);
        assert_eq!(header(&r, "content-type"), "text/plain; charset=utf-8");
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert!(header(&r, "cache-status").contains("detail=origin-error"));
        // What failed, without the OS's words for it ("Connection refused (os error 111)").
        assert_eq!(
            r.text().await.unwrap(),
            "502 Bad Gateway: origin unreachable\n"
        );
    }
    let r = edge.request(reqwest::Method::POST, "/e/p").body("x");
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.text().await.unwrap(),
        "502 Bad Gateway: origin unreachable\n"
    );
    assert!(healthy(&edge).await);
}

#[tokio::test]
async fn a_silent_origin_times_out_with_504() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[origin]\nfirst_byte_timeout = \"500ms\"").await;
    let started = Instant::now();
    let r = edge
        .get("/e/slow?cc=max-age=60&delay=2000")
        .send()
        .await
        .unwrap();
    // The configured timeout, not the origin's 2 s delay, decides when the client hears back:
    // not before it, and well before the origin would have answered.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(480), "{waited:?}");
    assert!(waited < Duration::from_millis(1800), "{waited:?}");
    assert_eq!(r.status(), 504);
    let body = r.text().await.unwrap();
    assert!(body.starts_with("504 Gateway Timeout"), "{body}");
    assert!(healthy(&edge).await);
}

#[tokio::test]
async fn health_is_answered_by_the_edge_itself() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    for _ in 0..2 {
        let r = edge.get("/healthz").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert_eq!(r.text().await.unwrap(), "ok\n");
    }
    // Even for a host no site serves.
    let r = edge.get("/healthz").header("host", "nobody.test");
    assert_eq!(r.send().await.unwrap().status(), 200);
    assert_eq!(origin.total(), 0);
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_without_hanging() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[server]\nmax_header_bytes = \"8KiB\"").await;
    let big = "a".repeat(16 << 10);
    let req = format!("GET /e/h HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let raw = send_oversized(edge.addr, req.as_bytes()).await;
    // hyper answers 431; a reset before the answer is read shows up as no status at all.
    assert!(matches!(status_of(&raw), Some(431) | None), "{raw:.200}");
    assert_eq!(origin.total(), 0);
    assert!(healthy(&edge).await);
}

#[tokio::test]
async fn too_many_headers_are_refused_without_hanging() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[server]\nmax_headers = 100").await;
    let mut req = String::from("GET /e/n HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..200 {
        req.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    req.push_str("\r\n");
    // About 3 KiB: written whole, so the answer always arrives.
    let raw = raw_request(edge.addr, req.as_bytes()).await;
    assert_eq!(status_of(&raw), Some(431), "{raw:.200}");
    assert_eq!(origin.total(), 0);
    assert!(healthy(&edge).await);
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    for req in [
        "HELLO THERE\r\n\r\n",
        "GET /e/m HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
        "GET /e/m HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let raw = raw_request(edge.addr, req.as_bytes()).await;
        assert_eq!(status_of(&raw), Some(400), "{req:?} -> {raw}");
        assert!(healthy(&edge).await, "after {req:?}");
    }
    assert_eq!(origin.total(), 0);
}

#[tokio::test]
async fn a_404_with_freshness_is_cached() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/e/gone?cc=max-age=60&status=404";
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(header(&r, "cache-status").contains("stored"));
    let b = r.bytes().await.unwrap();
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), header(&r, "x-cache").as_str()),
        (404, "HIT")
    );
    assert_eq!(r.bytes().await.unwrap(), b);
    assert_eq!(origin.count("/e/gone"), 1);
}

#[tokio::test]
async fn a_500_without_freshness_of_its_own_is_not_cached() {
    // RFC 9111 section 3: any final status may be stored with explicit freshness (statuses.rs
    // in the revalidation tests), but a 500 is never heuristically fresh: an origin failure
    // that says nothing is not pinned.
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/e/boom?status=500&lm=1";
    // The second request knows the URL gave an unstorable answer (hit-for-miss: `fwd=miss`).
    for fwd in ["uri-miss", "miss"] {
        let r = edge.get(p).send().await.unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(header(&r, "x-cache"), "MISS");
        assert_eq!(
            header(&r, "cache-status"),
            format!("edgecache; fwd={fwd}; fwd-status=500; detail=status")
        );
        r.bytes().await.unwrap();
    }
    assert_eq!(origin.count("/e/boom"), 2);
}

#[tokio::test]
async fn a_pause_in_the_body_longer_than_body_idle_timeout_cuts_it() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[origin]\nbody_idle_timeout = \"300ms\"").await;
    // Ten pieces 100 ms apart: within the limit.
    let r = edge
        .get("/e/steady?slow=1000&size=5000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 5000);
    // Ten pieces 500 ms apart: cut, never passed off as complete.
    let r = edge
        .get("/e/stall?slow=5000&size=5000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the head went out before the pause");
    assert!(r.bytes().await.is_err(), "the body was cut");
    assert_eq!(
        header(
            &edge
                .get("/e/stall?slow=5000&size=5000")
                .send()
                .await
                .unwrap(),
            "x-cache"
        ),
        "MISS",
        "nothing was stored"
    );
}

#[tokio::test]
async fn an_upload_longer_than_first_byte_timeout_still_gets_its_answer() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[origin]\nfirst_byte_timeout = \"500ms\"").await;
    // Four pieces 400 ms apart: the upload takes three times the first-byte timeout, and the
    // origin (which reads it all first) answers at once after it.
    let pieces = futures_util::stream::iter(0..4).then(|i| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"chunk "))
    });
    let r = edge
        .request(reqwest::Method::POST, "/e/upload")
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok POST");
    // The timeout still applies once the body is sent.
    let r = edge
        .request(reqwest::Method::POST, "/e/late?delay=2000")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
}
