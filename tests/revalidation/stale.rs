//! Serving stale: stale-while-revalidate (answer now, refresh in the background) and
//! stale-if-error (origin failing or down), and when stale must not be served.

use crate::common::{TestEdge, TestOrigin, header};
use crate::flaky::{FlakyOrigin, SILENT};
use std::time::Duration;

/// How far the edge's clock moves for a `max-age=1` entry to expire (no sleeping).
const EXPIRE: Duration = Duration::from_millis(1100);

/// Polls `done` every 20 ms for up to ~2 s.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

#[tokio::test]
async fn stale_while_revalidate_answers_from_cache_and_refreshes_in_background() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/s/swr?cc=max-age=1,stale-while-revalidate=30&etag=1";
    let r1 = edge.get(p).send().await.unwrap();
    assert!(r1.text().await.unwrap().starts_with("v1|"));

    edge.advance(EXPIRE);
    origin.set_version("/s/swr", "v2");
    let r2 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r2, "x-cache"), "STALE");
    let cs = header(&r2, "cache-status");
    assert!(cs.contains("detail=stale-while-revalidate"), "{cs}");
    // The old body, although the origin now serves v2: it came from the cache.
    assert!(r2.text().await.unwrap().starts_with("v1|"));

    assert!(
        eventually(|| origin.count("/s/swr") == 2).await,
        "one background request reaches the origin"
    );
    // The refresh is stored before its fill ends; until then requests join it (still STALE).
    let mut last = String::new();
    for _ in 0..100 {
        let r = edge.get(p).send().await.unwrap();
        last = header(&r, "x-cache");
        if last == "HIT" {
            assert!(r.text().await.unwrap().starts_with("v2|"));
            break;
        }
        assert_eq!(last, "STALE");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last, "HIT", "the refreshed copy is fresh");
    assert_eq!(origin.count("/s/swr"), 2, "exactly one background request");
    assert_eq!(origin.inm_count("/s/swr"), 1, "the refresh was conditional");
}

/// Fills through an edge, lets the entry expire, makes the origin answer `status`.
async fn stale_if_error_with_status(status: u16) {
    let origin = FlakyOrigin::start("max-age=1, stale-if-error=60").await;
    let edge = TestEdge::from_toml(&origin.edge_toml()).await;
    let r1 = edge.get("/f").send().await.unwrap();
    assert_eq!(header(&r1, "x-cache"), "MISS");
    assert_eq!(r1.text().await.unwrap(), "fresh 1\n");

    edge.advance(EXPIRE);
    origin.set_status(status);
    let r2 = edge.get("/f").send().await.unwrap();
    assert_eq!(r2.status(), 200, "origin answered {status}");
    assert_eq!(header(&r2, "x-cache"), "STALE");
    let cs = header(&r2, "cache-status");
    // Forwarded (with the origin's status), then served from the stale copy.
    let prefix = format!("edgecache; fwd=stale; fwd-status={status}; ttl=-");
    assert!(cs.starts_with(&prefix), "{cs}");
    assert!(cs.ends_with("; detail=stale-if-error"), "{cs}");
    assert_eq!(r2.text().await.unwrap(), "fresh 1\n");
    assert_eq!(origin.requests(), 2, "the origin was asked");
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_origin_answers_500() {
    stale_if_error_with_status(500).await;
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_origin_answers_502() {
    stale_if_error_with_status(502).await;
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_origin_answers_503() {
    stale_if_error_with_status(503).await;
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_origin_refuses_connections() {
    let mut origin = FlakyOrigin::start("max-age=1, stale-if-error=60").await;
    let edge = TestEdge::from_toml(&origin.edge_toml()).await;
    let r1 = edge.get("/f").send().await.unwrap();
    assert_eq!(r1.text().await.unwrap(), "fresh 1\n");

    edge.advance(EXPIRE);
    origin.stop().await;
    let r2 = edge.get("/f").send().await.unwrap();
    assert_eq!(r2.status(), 200);
    assert_eq!(header(&r2, "x-cache"), "STALE");
    let cs = header(&r2, "cache-status");
    assert!(cs.contains("detail=stale-if-error"), "{cs}");
    assert_eq!(r2.text().await.unwrap(), "fresh 1\n");
}

#[tokio::test]
async fn must_revalidate_forbids_stale_if_error_on_a_5xx() {
    let origin = FlakyOrigin::start("max-age=1, must-revalidate, stale-if-error=60").await;
    let edge = TestEdge::from_toml(&origin.edge_toml()).await;
    edge.get("/f").send().await.unwrap().bytes().await.unwrap();

    edge.advance(EXPIRE);
    origin.set_status(502);
    let r = edge.get("/f").send().await.unwrap();
    assert_eq!(r.status(), 502);
    // EXPIRED: the stored copy was still there (it has an ETag) but could not be used.
    assert_eq!(header(&r, "x-cache"), "EXPIRED");
    assert_eq!(r.text().await.unwrap(), "origin error 502\n");
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn must_revalidate_forbids_stale_if_error_when_origin_is_down() {
    let mut origin = FlakyOrigin::start("max-age=1, must-revalidate, stale-if-error=60").await;
    let edge = TestEdge::from_toml(&origin.edge_toml()).await;
    edge.get("/f").send().await.unwrap().bytes().await.unwrap();

    edge.advance(EXPIRE);
    origin.stop().await;
    let r = edge.get("/f").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_ne!(header(&r, "x-cache"), "STALE");
    let body = r.text().await.unwrap();
    assert!(body.starts_with("502 Bad Gateway"), "{body}");
}

#[tokio::test]
async fn with_stale_on_error_off_an_origin_500_is_passed_through() {
    let origin = FlakyOrigin::start("max-age=1").await;
    let edge = TestEdge::from_toml(&origin.edge_toml_with(GRACE_OFF)).await;
    edge.get("/f").send().await.unwrap().bytes().await.unwrap();

    edge.advance(EXPIRE);
    origin.set_status(500);
    let r = edge.get("/f").send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(header(&r, "x-cache"), "EXPIRED");
    let cs = header(&r, "cache-status");
    assert_eq!(cs, "edgecache; fwd=stale; fwd-status=500; detail=status");
    assert!(!cs.contains("stored"), "{cs}");
    assert_eq!(r.text().await.unwrap(), "origin error 500\n");
}

#[tokio::test]
async fn with_stale_on_error_off_a_refused_connection_gives_a_short_502() {
    let mut origin = FlakyOrigin::start("max-age=1").await;
    let edge = TestEdge::from_toml(&origin.edge_toml_with(GRACE_OFF)).await;
    edge.get("/f").send().await.unwrap().bytes().await.unwrap();

    edge.advance(EXPIRE);
    origin.stop().await;
    let r = edge.get("/f").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(header(&r, "content-type").starts_with("text/plain"));
    assert_eq!(header(&r, "cache-control"), "no-store");
    let cs = header(&r, "cache-status");
    assert!(cs.contains("detail=origin-error"), "{cs}");
    assert_eq!(
        r.text().await.unwrap(),
        "502 Bad Gateway: origin unreachable\n"
    );
}

/// The site setting that turns the grace for responses without stale-if-error off.
const GRACE_OFF: &str = "stale_on_error = \"0s\"";

/// The default grace (10 s past expiry) serves the stored copy for an origin that refuses the
/// connection, keeps silent past `first_byte_timeout`, or answers 503; never past the grace.
#[tokio::test]
async fn without_stale_if_error_the_grace_stands_in_for_a_failed_origin() {
    let mut origin = FlakyOrigin::start("max-age=1").await;
    let toml = format!(
        "{}[origin]\nfirst_byte_timeout = \"300ms\"\n",
        origin.edge_toml()
    );
    let edge = TestEdge::from_toml(&toml).await;
    assert_eq!(
        edge.get("/f").send().await.unwrap().text().await.unwrap(),
        "fresh 1\n"
    );
    edge.advance(EXPIRE);
    for (status, fwd_status) in [(503, "; fwd-status=503"), (SILENT, "")] {
        origin.set_status(status);
        let r = edge.get("/f").send().await.unwrap();
        assert_eq!(r.status(), 200, "origin {status}");
        assert_eq!(header(&r, "x-cache"), "STALE");
        assert_eq!(
            header(&r, "cache-status"),
            format!("edgecache; fwd=stale{fwd_status}; ttl=-1; detail=stale-on-error")
        );
        assert_eq!(r.text().await.unwrap(), "fresh 1\n");
    }
    origin.stop().await;
    let r = edge.get("/f").send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), header(&r, "x-cache")),
        (200, "STALE".into())
    );
    assert_eq!(
        header(&r, "cache-status"),
        "edgecache; fwd=stale; ttl=-1; detail=stale-on-error"
    );
    // 11 s past expiry: the grace is over.
    edge.advance(std::time::Duration::from_secs(10));
    let r = edge.get("/f").send().await.unwrap();
    assert_eq!(r.status(), 502);
}

#[tokio::test]
async fn the_grace_never_serves_what_must_be_revalidated() {
    for cc in [
        "max-age=1, must-revalidate",
        "max-age=1, proxy-revalidate",
        "max-age=1, no-cache",
        "s-maxage=1",
    ] {
        let origin = FlakyOrigin::start(cc).await;
        let edge = TestEdge::from_toml(&origin.edge_toml()).await;
        edge.get("/f").send().await.unwrap().bytes().await.unwrap();
        edge.advance(EXPIRE);
        origin.set_status(503);
        let r = edge.get("/f").send().await.unwrap();
        assert_eq!(r.status(), 503, "{cc}");
        assert_eq!(r.text().await.unwrap(), "origin error 503\n", "{cc}");
    }
}
