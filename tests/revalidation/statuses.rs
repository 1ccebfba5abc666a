//! Any final status is stored when the origin gives it explicit freshness, and only then (or
//! by the site's negative_ttl for a 404 or 410 that says nothing).

use crate::common::{TestEdge, TestOrigin, header};

#[tokio::test]
async fn every_final_status_with_max_age_is_stored_and_none_without() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    for status in [200, 299, 400, 404, 410, 500, 502, 503, 504, 599] {
        let p = format!("/st{status}?status={status}&cc=max-age=60");
        for expect in ["MISS", "HIT"] {
            let r = edge.get(&p).send().await.unwrap();
            assert_eq!(r.status().as_u16(), status, "{p}");
            assert_eq!(header(&r, "x-cache"), expect, "{status}");
            assert!(r.text().await.unwrap().starts_with("v1|"));
        }
        assert_eq!(origin.count(&format!("/st{status}")), 1, "{status}");
        // The same status without freshness goes to the origin every time.
        let p = format!("/no{status}?status={status}");
        for _ in 0..2 {
            let r = edge.get(&p).send().await.unwrap();
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(header(&r, "x-cache"), "MISS", "{status} without max-age");
        }
        assert_eq!(origin.count(&format!("/no{status}")), 2, "{status}");
    }
}

#[tokio::test]
async fn negative_ttl_keeps_a_404_that_says_nothing_for_that_long() {
    let origin = TestOrigin::start().await;
    let toml = format!(
        "[[site]]\nname = \"s\"\nhosts = [\"*\"]\norigin = \"{}\"\nnegative_ttl = \"10s\"\n",
        origin.url
    );
    let edge = TestEdge::from_toml(&toml).await;
    let p = "/gone?status=404";
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), header(&r, "x-cache")),
        (404, "MISS".into())
    );
    assert_eq!(
        header(&r, "cache-status"),
        "edgecache; fwd=uri-miss; fwd-status=404; stored; ttl=10"
    );
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), header(&r, "x-cache")),
        (404, "HIT".into())
    );
    edge.advance(std::time::Duration::from_secs(11));
    let r = edge.get(p).send().await.unwrap();
    // Expired: the origin is asked again (the copy was kept only to stand in on errors).
    assert_eq!(header(&r, "x-cache"), "EXPIRED");
    assert_eq!(origin.count("/gone"), 2);
    // A 200 that says nothing is not touched by it.
    for _ in 0..2 {
        let r = edge.get("/fine").send().await.unwrap();
        assert_eq!(header(&r, "x-cache"), "MISS");
    }
}
