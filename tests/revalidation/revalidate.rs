//! Expired entries with validators: conditional requests to the origin, 304s that renew the
//! stored copy, full answers that replace it, `no-cache`, and clients' own conditionals.

use crate::common::origin::LAST_MODIFIED;
use crate::common::{TestEdge, TestOrigin, header};
use crate::flaky::FlakyOrigin;
use std::time::Duration;

/// How far the edge's clock moves for a `max-age=1` entry to expire (no sleeping).
const EXPIRE: Duration = Duration::from_millis(1100);

fn cache_status(res: &reqwest::Response) -> String {
    header(res, "cache-status")
}

#[tokio::test]
async fn expired_entry_with_etag_is_revalidated_with_if_none_match() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/r/etag?cc=max-age=1&etag=1&size=500";
    let r1 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r1, "x-cache"), "MISS");
    let etag = header(&r1, "etag");
    assert_eq!(etag, "\"v1-_r_etag\"");
    let b1 = r1.bytes().await.unwrap();
    assert_eq!(header(&edge.get(p).send().await.unwrap(), "x-cache"), "HIT");

    edge.advance(EXPIRE);
    let r3 = edge.get(p).send().await.unwrap();
    assert_eq!(r3.status(), 200);
    assert_eq!(header(&r3, "x-cache"), "REVALIDATED");
    assert_eq!(
        cache_status(&r3),
        "edgecache; fwd=stale; fwd-status=304; stored; ttl=0"
    );
    assert_eq!(header(&r3, "etag"), etag);
    assert_eq!(r3.bytes().await.unwrap(), b1, "the stored body is served");
    assert_eq!(origin.inm_count("/r/etag"), 1);
    assert_eq!(origin.ims_count("/r/etag"), 0);
    let sent = origin.last_headers("/r/etag").unwrap();
    assert_eq!(sent["if-none-match"], etag.as_str());

    // The 304 renewed freshness: the next request does not reach the origin.
    let r4 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r4, "x-cache"), "HIT");
    assert_eq!(r4.bytes().await.unwrap(), b1);
    assert_eq!(origin.count("/r/etag"), 2);
}

#[tokio::test]
async fn expired_entry_with_last_modified_is_revalidated_with_if_modified_since() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // An explicit max-age: Last-Modified alone would give weeks of heuristic freshness.
    let p = "/r/lm?cc=max-age=1&lm=1";
    let r1 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r1, "x-cache"), "MISS");
    let b1 = r1.bytes().await.unwrap();

    edge.advance(EXPIRE);
    let r2 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r2, "x-cache"), "REVALIDATED");
    assert_eq!(
        cache_status(&r2),
        "edgecache; fwd=stale; fwd-status=304; stored; ttl=0"
    );
    assert_eq!(header(&r2, "last-modified"), LAST_MODIFIED);
    assert_eq!(r2.bytes().await.unwrap(), b1);
    assert_eq!(origin.ims_count("/r/lm"), 1);
    assert_eq!(origin.inm_count("/r/lm"), 0);
    let sent = origin.last_headers("/r/lm").unwrap();
    assert_eq!(sent["if-modified-since"], LAST_MODIFIED);

    let r3 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r3, "x-cache"), "HIT");
    assert_eq!(origin.count("/r/lm"), 2);
}

#[tokio::test]
async fn freshness_after_a_304_comes_from_the_304() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // The 200 says Age: 2 with max-age=3 (fresh for 1 s); the 304 repeats max-age=3 but has no
    // Age, so the renewed entry is fresh for the full 3 s.
    let p = "/r/ttl?cc=max-age=3&age=2&etag=1";
    let r1 = edge.get(p).send().await.unwrap();
    assert!(
        cache_status(&r1).ends_with("ttl=1"),
        "{}",
        cache_status(&r1)
    );

    edge.advance(EXPIRE);
    let r2 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r2, "x-cache"), "REVALIDATED");
    let cs = cache_status(&r2);
    assert!(
        cs.ends_with("ttl=2") || cs.ends_with("ttl=3"),
        "ttl should be the 304's max-age: {cs}"
    );
    let age: u64 = header(&r2, "age").parse().unwrap();
    assert!(age < 2, "the old Age is not carried over: {age}");
    let r3 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r3, "x-cache"), "HIT");
    assert_eq!(origin.count("/r/ttl"), 2);
}

#[tokio::test]
async fn a_304_updates_stored_headers_and_keeps_the_others() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // The origin's 304 repeats Cache-Control, Date, ETag and Expires (with new dates) but not
    // Content-Type or X-Extra: RFC 9111 4.3.4 says stored headers are updated, not replaced.
    let p = "/r/merge?cc=max-age=1&etag=1&expires=1&hdr=X-Extra:kept&ct=text/x-test";
    let r1 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r1, "x-cache"), "MISS");
    let expires1 = header(&r1, "expires");
    assert_eq!(header(&r1, "x-extra"), "kept");

    edge.advance(EXPIRE);
    let r2 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r2, "x-cache"), "REVALIDATED");
    let parse = |s: &str| httpdate::parse_http_date(s).unwrap();
    let expires2 = header(&r2, "expires");
    assert!(
        parse(&expires2) > parse(&expires1),
        "Expires comes from the 304: {expires1} then {expires2}"
    );
    assert_eq!(r2.headers().get_all("expires").iter().count(), 1);
    assert_eq!(header(&r2, "x-extra"), "kept");
    assert_eq!(header(&r2, "content-type"), "text/x-test");
    assert_eq!(header(&r2, "cache-control"), "max-age=1");

    // The merged headers were stored, not just sent once.
    let r3 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r3, "x-cache"), "HIT");
    assert_eq!(header(&r3, "expires"), expires2);
    assert_eq!(header(&r3, "x-extra"), "kept");
    assert_eq!(header(&r3, "content-type"), "text/x-test");
    assert_eq!(origin.count("/r/merge"), 2);
}

#[tokio::test]
async fn a_full_200_to_a_revalidation_replaces_the_entry() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/r/new?cc=max-age=1&etag=1";
    let r1 = edge.get(p).send().await.unwrap();
    assert!(r1.text().await.unwrap().starts_with("v1|"));

    edge.advance(EXPIRE);
    // A new version has a new ETag, so the conditional request gets a full 200.
    origin.set_version("/r/new", "v2");
    let r2 = edge.get(p).send().await.unwrap();
    assert_eq!(r2.status(), 200);
    assert_eq!(header(&r2, "x-cache"), "EXPIRED");
    let cs = cache_status(&r2);
    assert_eq!(cs, "edgecache; fwd=stale; fwd-status=200; stored; ttl=1");
    assert_eq!(header(&r2, "etag"), "\"v2-_r_new\"");
    assert!(r2.text().await.unwrap().starts_with("v2|"));
    assert_eq!(origin.inm_count("/r/new"), 1);

    let r3 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r3, "x-cache"), "HIT");
    assert!(r3.text().await.unwrap().starts_with("v2|"));
    assert_eq!(origin.count("/r/new"), 2);
}

#[tokio::test]
async fn no_cache_is_stored_but_revalidated_on_every_request() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/r/nc?cc=no-cache&etag=1";
    let r1 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r1, "x-cache"), "MISS");
    assert_eq!(
        cache_status(&r1),
        "edgecache; fwd=uri-miss; fwd-status=200; stored; ttl=0"
    );
    let b1 = r1.bytes().await.unwrap();
    for n in 1..=3 {
        let r = edge.get(p).send().await.unwrap();
        assert_eq!(header(&r, "x-cache"), "REVALIDATED", "request {n}");
        assert_eq!(r.bytes().await.unwrap(), b1);
        assert_eq!(origin.inm_count("/r/nc"), n);
    }
    assert_eq!(origin.count("/r/nc"), 4);
}

#[tokio::test]
async fn client_conditionals_are_answered_from_the_cache() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/r/cond?cc=max-age=60&etag=1&lm=1";
    let r1 = edge.get(p).send().await.unwrap();
    let etag = header(&r1, "etag");
    let b1 = r1.bytes().await.unwrap();

    let r = edge
        .get(p)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(header(&r, "etag"), etag);
    assert!(r.bytes().await.unwrap().is_empty());

    // If-None-Match uses the weak comparison (RFC 9110 13.1.2).
    let weak = format!("\"nope\", W/{etag}");
    let r = edge
        .get(p)
        .header("if-none-match", weak)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    let r = edge
        .get(p)
        .header("if-modified-since", LAST_MODIFIED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(r.bytes().await.unwrap().is_empty());
    let later = httpdate::fmt_http_date(edge.clock.now());
    let r = edge
        .get(p)
        .header("if-modified-since", later)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    let r = edge
        .get(p)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(r.bytes().await.unwrap(), b1);

    let earlier = "Sun, 01 Nov 2026 10:00:00 GMT";
    let r = edge
        .get(p)
        .header("if-modified-since", earlier)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), b1);

    // None of these reached the origin.
    assert_eq!(origin.count("/r/cond"), 1);
    assert_eq!(origin.inm_count("/r/cond"), 0);
    assert_eq!(origin.ims_count("/r/cond"), 0);
}

#[tokio::test]
async fn a_304_for_another_representation_is_fetched_again_unconditionally() {
    use axum::{Router, http::HeaderMap, routing::get};
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    // An origin that starts sending ETags: it answers any conditional request with a 304
    // carrying an ETag the stored copy (Last-Modified only) never had.
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/switch",
        get(move |req: HeaderMap| {
            let n = h.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let conditional =
                    req.contains_key("if-modified-since") || req.contains_key("if-none-match");
                if conditional {
                    (
                        axum::http::StatusCode::NOT_MODIFIED,
                        [("etag", "\"new\""), ("cache-control", "max-age=60")],
                        String::new(),
                    )
                } else {
                    (
                        axum::http::StatusCode::OK,
                        [
                            ("last-modified", LAST_MODIFIED),
                            // The first copy expires when the test moves the edge's clock; the
                            // later one outlives that (hyper's Date is on the wall clock, which
                            // the test does not move: the edge ages it by the difference).
                            (
                                "cache-control",
                                if n == 1 { "max-age=1" } else { "max-age=60" },
                            ),
                        ],
                        format!("body {n}"),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let edge = TestEdge::from_toml(&format!(
        "[[site]]\nname = \"s\"\nhosts = [\"*\"]\norigin = \"{url}\"\n"
    ))
    .await;

    let r = edge.get("/switch").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "body 1");
    edge.advance(EXPIRE);
    let r = edge.get("/switch").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cache"), "EXPIRED");
    assert_eq!(
        r.text().await.unwrap(),
        "body 3",
        "the unconditional answer"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3, "304, then a full GET");
    let r = edge.get("/switch").send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(r.text().await.unwrap(), "body 3", "and it was stored");
}

#[tokio::test]
async fn a_304_to_an_unconditional_fill_is_a_bad_gateway_not_an_answer() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // A broken origin that answers 304 to a request with no validators: the client asked no
    // conditional question, so a 304 would tell it nothing.
    let r = edge.get("/r/bogus?status=304").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.text().await.unwrap(),
        "502 Bad Gateway: origin response broken\n"
    );
    // The same when a 304 for another representation made the edge ask again, unconditionally,
    // and the origin still says 304: the stored copy stands in while its stale_on_error grace
    // lasts (10 s by default), as for any broken answer, and past it the client gets 502.
    for (grace, want) in [("", 200), ("stale_on_error = \"0s\"", 502)] {
        let flaky = FlakyOrigin::start("max-age=1").await;
        let edge = TestEdge::from_toml(&flaky.edge_toml_with(grace)).await;
        let r = edge.get("/flip").send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "fresh 1\n");
        flaky.set_status(304);
        edge.advance(Duration::from_secs(2));
        let r = edge.get("/flip").send().await.unwrap();
        assert_eq!(r.status(), want, "{grace}");
        if want == 200 {
            assert_eq!(header(&r, "x-cache"), "STALE");
            assert_eq!(r.text().await.unwrap(), "fresh 1\n");
        }
        assert_eq!(flaky.requests(), 3, "the fill, the revalidation, the retry");
    }
}
