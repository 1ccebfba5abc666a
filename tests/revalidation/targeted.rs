//! Targeted cache control (RFC 9213): `Edgecache-Cache-Control`, `CDN-Cache-Control` and
//! `Surrogate-Control` decide for the edge over `Cache-Control` and `Expires`, both ways; an
//! invalid one is ignored; none of them reaches the client, and `Cache-Control` goes out as
//! the origin sent it.

use crate::common::{TestEdge, TestOrigin, header};
use std::time::Duration;

const TARGETED: [&str; 3] = [
    "edgecache-cache-control",
    "cdn-cache-control",
    "surrogate-control",
];

/// GETs `p` twice, checking every answer leaves the targeted fields behind; returns the two
/// `X-Cache` values and the first answer's `Cache-Control` and `Cache-Status`.
async fn twice(edge: &TestEdge, p: &str) -> (String, String, String, String) {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = edge.get(p).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
        for name in TARGETED {
            assert!(r.headers().get(name).is_none(), "{name} left the edge: {p}");
        }
        seen.push((
            header(&r, "x-cache"),
            header(&r, "cache-control"),
            header(&r, "cache-status"),
        ));
    }
    let (x1, cc, cs) = seen.remove(0);
    (x1, seen.remove(0).0, cc, cs)
}

#[tokio::test]
async fn cdn_cache_control_stores_what_cache_control_forbids_and_cache_control_is_kept() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/t/cdn?cc=no-store&hdr=CDN-Cache-Control:max-age=60";
    let (x1, x2, cc, cs) = twice(&edge, p).await;
    assert_eq!((x1.as_str(), x2.as_str()), ("MISS", "HIT"));
    assert_eq!(
        cc, "no-store",
        "browsers still get the origin's Cache-Control"
    );
    assert_eq!(
        cs,
        "edgecache; fwd=uri-miss; fwd-status=200; stored; ttl=60"
    );
    assert_eq!(origin.count("/t/cdn"), 1);
    edge.advance(Duration::from_secs(61));
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(
        header(&r, "x-cache"),
        "EXPIRED",
        "fresh for the CDN's 60 s only"
    );
}

#[tokio::test]
async fn cdn_cache_control_forbids_what_cache_control_allows() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    for (path, targeted) in [
        ("/t/nostore", "no-store"),
        ("/t/private", "private"),
        ("/t/zero", "max-age=0"),
    ] {
        let p = format!("{path}?cc=public,%20max-age=600&hdr=CDN-Cache-Control:{targeted}");
        let (x1, x2, cc, _) = twice(&edge, &p).await;
        assert_eq!((x1.as_str(), x2.as_str()), ("MISS", "MISS"), "{targeted}");
        assert_eq!(cc, "public, max-age=600");
        assert_eq!(origin.count(path), 2, "{targeted}");
    }
}

#[tokio::test]
async fn edgecache_cache_control_outranks_cdn_cache_control_and_surrogate_control() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/t/ours?cc=max-age=5&hdr=CDN-Cache-Control:no-store\
             &hdr=Edgecache-Cache-Control:max-age=300&hdr=Surrogate-Control:no-store";
    let (x1, x2, _, cs) = twice(&edge, p).await;
    assert_eq!((x1.as_str(), x2.as_str()), ("MISS", "HIT"));
    assert!(cs.ends_with("stored; ttl=300"), "{cs}");
    // CDN-Cache-Control comes before Surrogate-Control.
    let p = "/t/cdn-first?hdr=CDN-Cache-Control:max-age=100&hdr=Surrogate-Control:no-store";
    let (_, x2, _, cs) = twice(&edge, p).await;
    assert_eq!(x2, "HIT");
    assert!(cs.ends_with("stored; ttl=100"), "{cs}");
}

#[tokio::test]
async fn surrogate_control_overrides_cache_control_both_ways() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/t/sc?cc=private&hdr=Surrogate-Control:max-age=120";
    let (x1, x2, cc, cs) = twice(&edge, p).await;
    assert_eq!((x1.as_str(), x2.as_str()), ("MISS", "HIT"));
    assert_eq!(cc, "private");
    assert!(cs.ends_with("stored; ttl=120"), "{cs}");
    let p = "/t/sc-no?cc=max-age=600&hdr=Surrogate-Control:no-store";
    let (_, x2, _, _) = twice(&edge, p).await;
    assert_eq!(x2, "MISS");
    assert_eq!(origin.count("/t/sc-no"), 2);
}

#[tokio::test]
async fn an_invalid_targeted_field_is_ignored_and_cache_control_decides() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // Not a Structured Field (an unterminated string, upper-case keys, an empty field): as if
    // it were absent.
    for (i, bad) in ["max-age=\"60", "Max-Age=60", "no-store,,", ""]
        .iter()
        .enumerate()
    {
        let p = format!("/t/bad{i}?cc=max-age=30&hdr=CDN-Cache-Control:{bad}");
        let (x1, x2, _, cs) = twice(&edge, &p).await;
        assert_eq!((x1.as_str(), x2.as_str()), ("MISS", "HIT"), "{bad}");
        assert!(cs.ends_with("stored; ttl=30"), "{bad}: {cs}");
    }
    // An invalid Edgecache-Cache-Control lets the next field on the list decide.
    let p = "/t/next?cc=max-age=30&hdr=Edgecache-Cache-Control:max-age=1.5.5\
             &hdr=CDN-Cache-Control:no-store";
    let (_, x2, _, _) = twice(&edge, p).await;
    assert_eq!(x2, "MISS");
}

#[tokio::test]
async fn a_targeted_field_makes_expires_irrelevant() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // Expired ten seconds ago by Expires; fresh for a minute by CDN-Cache-Control.
    let p = "/t/expires?expires=-10&hdr=CDN-Cache-Control:max-age=60";
    let (_, x2, _, cs) = twice(&edge, p).await;
    assert_eq!(x2, "HIT");
    assert!(cs.ends_with("stored; ttl=60"), "{cs}");
}

#[tokio::test]
async fn a_304_without_the_targeted_field_keeps_the_stored_one() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // The 304 repeats Cache-Control (max-age=0) but not CDN-Cache-Control: the stored copy's
    // CDN-Cache-Control still decides, so it is fresh for another 10 s.
    let p = "/t/reval?cc=max-age=0&etag=1&hdr=CDN-Cache-Control:max-age=10";
    let (_, x2, _, _) = twice(&edge, p).await;
    assert_eq!(x2, "HIT");
    edge.advance(Duration::from_secs(11));
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "REVALIDATED");
    assert!(r.headers().get("cdn-cache-control").is_none());
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(
        header(&r, "x-cache"),
        "HIT",
        "{}",
        header(&r, "cache-status")
    );
    assert_eq!(origin.count("/t/reval"), 2);
}

#[tokio::test]
async fn targeted_fields_do_not_leave_the_edge_on_pass_through_either() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let r = edge
        .request(
            reqwest::Method::POST,
            "/t/post?cc=no-store&hdr=CDN-Cache-Control:max-age=60&hdr=Surrogate-Control:no-store",
        )
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-store");
    for name in TARGETED {
        assert!(r.headers().get(name).is_none(), "{name}");
    }
}
