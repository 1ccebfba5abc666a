//! Freshness: MISS then HIT with a growing Age, TTL expiry, Expires, heuristic freshness.

use crate::common::{TestEdge, TestOrigin, header};
use std::time::Duration;

#[tokio::test]
async fn miss_then_hit_with_age_and_one_origin_request() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/c/a?cc=max-age=60&size=1000";
    let r1 = edge.get(p).send().await.unwrap();
    assert_eq!(r1.status(), 200);
    assert_eq!(header(&r1, "x-cache"), "MISS");
    assert_eq!(
        header(&r1, "cache-status"),
        "edgecache; fwd=uri-miss; fwd-status=200; stored; ttl=60"
    );
    let b1 = r1.bytes().await.unwrap();
    assert_eq!(b1.len(), 1000);
    edge.advance(Duration::from_millis(1100));
    let r2 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r2, "x-cache"), "HIT");
    // 1.1 s (and the test's own few milliseconds) into 60 s of freshness.
    assert_eq!(header(&r2, "cache-status"), "edgecache; hit; ttl=58");
    assert_eq!(header(&r2, "age"), "1");
    assert_eq!(header(&r2, "via"), "1.1 edgecache");
    assert_eq!(r2.bytes().await.unwrap(), b1);
    assert_eq!(origin.count("/c/a"), 1);
}

#[tokio::test]
async fn an_expired_entry_goes_back_to_the_origin() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/c/ttl?cc=max-age=1";
    edge.get(p).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(header(&edge.get(p).send().await.unwrap(), "x-cache"), "HIT");
    edge.advance(Duration::from_millis(1100));
    origin.set_version("/c/ttl", "v2");
    let r = edge.get(p).send().await.unwrap();
    // No validator: the expired copy cannot be revalidated, so it is replaced (it was kept
    // past expiry only to stand in, had the origin failed: `stale_on_error`).
    assert_eq!(header(&r, "x-cache"), "EXPIRED");
    assert_eq!(
        header(&r, "cache-status"),
        "edgecache; fwd=stale; fwd-status=200; stored; ttl=1"
    );
    assert!(r.text().await.unwrap().starts_with("v2|"));
    assert_eq!(origin.count("/c/ttl"), 2);
}

#[tokio::test]
async fn expires_header_sets_freshness() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/c/exp?expires=30";
    let r = edge.get(p).send().await.unwrap();
    assert!(header(&r, "cache-status").contains("stored"));
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    let past = "/c/past?expires=-30";
    edge.get(past).send().await.unwrap();
    edge.get(past).send().await.unwrap();
    assert_eq!(
        origin.count("/c/past"),
        2,
        "an Expires in the past is never fresh"
    );
    assert_eq!(origin.count("/c/exp"), 1);
}

#[tokio::test]
async fn heuristic_freshness_from_last_modified() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // Last-Modified weeks ago and no explicit lifetime: 10% of that age is fresh.
    let p = "/c/h?lm=1";
    edge.get(p).send().await.unwrap();
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(origin.count("/c/h"), 1);
}

#[tokio::test]
async fn s_maxage_wins_over_max_age_for_a_shared_cache() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/c/s?cc=max-age=600,s-maxage=1";
    let r = edge.get(p).send().await.unwrap();
    assert!(
        header(&r, "cache-status").ends_with("ttl=1"),
        "{}",
        header(&r, "cache-status")
    );
}

#[tokio::test]
async fn origin_age_counts_against_freshness() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let r = edge
        .get("/c/aged?cc=max-age=60&age=50")
        .send()
        .await
        .unwrap();
    assert!(
        header(&r, "cache-status").ends_with("ttl=10"),
        "{}",
        header(&r, "cache-status")
    );
    let r = edge
        .get("/c/aged?cc=max-age=60&age=50")
        .send()
        .await
        .unwrap();
    assert!(header(&r, "age").parse::<u64>().unwrap() >= 50);
}

#[tokio::test]
async fn after_an_unstorable_answer_requests_skip_coalescing() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/c/pv?cc=private&delay=200";
    let r = edge.get(p).send().await.unwrap();
    assert!(header(&r, "cache-status").contains("detail=private"));
    // The URL is now marked: concurrent requests go to the origin side by side instead of
    // queueing behind each other's fills only to find them unshareable.
    let reqs = (0..5).map(|_| edge.get(p).send());
    for r in futures_util::future::join_all(reqs).await {
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-cache"), "MISS");
        let cs = header(&r, "cache-status");
        // fwd=miss (not uri-miss): sent straight on, known to be unstorable.
        assert_eq!(cs, "edgecache; fwd=miss; fwd-status=200; detail=private");
    }
    assert_eq!(origin.count("/c/pv"), 6);
}

#[tokio::test]
async fn a_clients_validators_are_answered_on_a_miss_too() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // The client knows the current ETag (the origin's, served through another edge, say).
    let etag = "\"v1-_c_cond\"";
    let r = edge
        .get("/c/cond?cc=max-age=60&etag=1")
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(header(&r, "x-cache"), "MISS");
    assert!(r.bytes().await.unwrap().is_empty());
    // The fill went on and stored the full object for everyone else.
    let r = edge
        .get("/c/cond?cc=max-age=60&etag=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 100);
    assert_eq!(origin.count("/c/cond"), 1);
}
