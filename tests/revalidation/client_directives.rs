//! A request's own Cache-Control: `only-if-cached` always, the rest where the site honours
//! clients (`honor_client_cache_control`).

use crate::common::{TestEdge, TestOrigin, header};
use std::time::Duration;

#[tokio::test]
async fn only_if_cached_answers_from_the_store_or_504_and_never_asks_the_origin() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/cd/only?cc=max-age=60&etag=1";
    let only = || edge.get(p).header("cache-control", "only-if-cached").send();
    let r = only().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(header(&r, "x-cache"), "MISS");
    assert_eq!(
        header(&r, "cache-status"),
        "edgecache; detail=only-if-cached"
    );
    assert_eq!(
        r.text().await.unwrap(),
        "504 Gateway Timeout: not in the cache (only-if-cached)\n"
    );
    assert_eq!(origin.count("/cd/only"), 0);
    // Once stored, it is served.
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "MISS");
    let r = only().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), header(&r, "x-cache")),
        (200, "HIT".into())
    );
    // Expired, it would need the origin's word: 504 again, and the origin hears nothing.
    edge.advance(Duration::from_secs(61));
    let r = only().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(origin.count("/cd/only"), 1);
}

fn honouring(origin: &TestOrigin, key: &str) -> String {
    format!(
        "[[site]]\nname = \"s\"\nhosts = [\"*\"]\norigin = \"{}\"\n{key} = true\n",
        origin.url
    )
}

#[tokio::test]
async fn max_stale_and_min_fresh_from_clients_where_the_site_honours_them() {
    let origin = TestOrigin::start().await;
    // On the origin's clock: its Date moves with the edge's time, so no copy looks old on
    // arrival (the edge ages a response by its Date).
    let toml = honouring(&origin, "honor_client_cache_control");
    let edge = TestEdge::from_toml_with_clock(&toml, origin.clock()).await;
    let p = "/cd/stale?cc=max-age=60&etag=1";
    assert_eq!(
        header(&edge.get(p).send().await.unwrap(), "x-cache"),
        "MISS"
    );
    edge.advance(Duration::from_millis(69_500));
    // 9.5 s stale (`ttl` counts a started second): a client that accepts 30 s of staleness gets
    // the copy, unasked.
    let r = edge
        .get(p)
        .header("cache-control", "max-stale=30")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-cache"), "STALE");
    assert_eq!(header(&r, "cache-status"), "edgecache; hit; ttl=-10");
    assert_eq!(origin.count("/cd/stale"), 1);
    // One that accepts 5 s does not: the copy is revalidated.
    let r = edge
        .get(p)
        .header("cache-control", "max-stale=5")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-cache"), "REVALIDATED");
    assert_eq!(origin.count("/cd/stale"), 2);

    // min-fresh: a copy with 40 s left does not satisfy a client that wants 50.
    let p = "/cd/fresh?cc=max-age=60&etag=1";
    assert_eq!(
        header(&edge.get(p).send().await.unwrap(), "x-cache"),
        "MISS"
    );
    edge.advance(Duration::from_secs(20));
    let want = |s: &'static str| edge.get(p).header("cache-control", s).send();
    assert_eq!(
        header(&want("min-fresh=30").await.unwrap(), "x-cache"),
        "HIT"
    );
    assert_eq!(
        header(&want("min-fresh=50").await.unwrap(), "x-cache"),
        "REVALIDATED"
    );
    assert_eq!(origin.count("/cd/fresh"), 2);
}

#[tokio::test]
async fn clients_directives_change_nothing_unless_the_site_honours_them() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/cd/ignored?cc=max-age=60&etag=1";
    assert_eq!(
        header(&edge.get(p).send().await.unwrap(), "x-cache"),
        "MISS"
    );
    edge.advance(Duration::from_secs(20));
    for cc in ["min-fresh=50", "no-cache", "max-age=0"] {
        let r = edge
            .get(p)
            .header("cache-control", cc)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r, "x-cache"), "HIT", "{cc}");
    }
    assert_eq!(origin.count("/cd/ignored"), 1);
    // The old name of the setting still turns it on.
    let edge = TestEdge::from_toml(&honouring(&origin, "honor_client_no_cache")).await;
    assert_eq!(
        header(&edge.get(p).send().await.unwrap(), "x-cache"),
        "MISS"
    );
    let r = edge
        .get(p)
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-cache"), "REVALIDATED");
}
