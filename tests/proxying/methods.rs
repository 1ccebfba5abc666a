//! Methods: unsafe ones pass through and invalidate (RFC 9111 section 4.4), HEAD is served from
//! and fills the cache, request body limits, and the client's `no-cache`.

use crate::common::{TestEdge, TestOrigin, header};
use crate::support::{pct, site_toml};
use futures_util::stream;
use reqwest::Method;
use std::time::Duration;

/// The X-Cache of a GET of `p`, body read.
async fn x_cache(edge: &TestEdge, p: &str) -> String {
    let r = edge.get(p).send().await.unwrap();
    let x = header(&r, "x-cache");
    r.bytes().await.unwrap();
    x
}

/// Fills `p` and checks the next GET is a hit.
async fn cache(edge: &TestEdge, p: &str) {
    assert_eq!(x_cache(edge, p).await, "MISS", "{p}");
    assert_eq!(x_cache(edge, p).await, "HIT", "{p}");
}

/// An origin that answers every request with `<METHOD> <body>`.
async fn echo_origin() -> String {
    let app = axum::Router::new().fallback(|m: http::Method, body: bytes::Bytes| async move {
        let mut out = format!("{m} ").into_bytes();
        out.extend_from_slice(&body);
        out
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

#[tokio::test]
async fn unsafe_methods_pass_through_uncached() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    for m in ["POST", "PUT", "PATCH", "DELETE"] {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        for _ in 0..2 {
            let r = edge.request(method.clone(), "/m/p?cc=max-age=60");
            let r = r.body("hello").send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(header(&r, "x-cache"), "BYPASS");
            assert_eq!(
                header(&r, "cache-status"),
                "edgecache; fwd=method; fwd-status=200"
            );
            assert_eq!(r.text().await.unwrap(), format!("ok {m}"));
        }
        // Even with max-age on the answer, every request reaches the origin.
        assert_eq!(origin.count_method("/m/p", m), 2, "{m}");
        let seen = origin.last_headers("/m/p").unwrap();
        assert_eq!(seen["content-length"], "5");
    }
}

#[tokio::test]
async fn request_bodies_reach_the_origin_intact() {
    let url = echo_origin().await;
    let edge = TestEdge::from_toml(&site_toml(&url, "\"*\"", "", "")).await;
    let body: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    for m in [Method::POST, Method::PUT] {
        let r = edge.request(m.clone(), "/m/echo").body(body.clone());
        let got = r.send().await.unwrap().bytes().await.unwrap();
        let mut want = format!("{m} ").into_bytes();
        want.extend_from_slice(&body);
        assert!(got == want, "{m}: {} bytes back", got.len());
    }
}

#[tokio::test]
async fn a_successful_post_invalidates_its_target() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/m/inv?cc=max-age=60";
    cache(&edge, p).await;
    let r = edge.request(Method::POST, p).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(x_cache(&edge, p).await, "MISS");
    assert_eq!(origin.count_method("/m/inv", "GET"), 2);
}

#[tokio::test]
async fn location_and_content_location_invalidate_same_host_uris() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let loc = "/m/loc?cc=max-age=60";
    let cl = "/m/cl?cc=max-age=60";
    let abs = "/m/abs?cc=max-age=60";
    let far = "/m/far?cc=max-age=60";
    for p in [loc, cl, abs, far] {
        cache(&edge, p).await;
    }
    let post = format!("/m/post?location={}&content_location={}", pct(loc), pct(cl));
    let r = edge.request(Method::POST, &post).send().await.unwrap();
    assert_eq!(header(&r, "location"), loc);
    assert_eq!(x_cache(&edge, loc).await, "MISS");
    assert_eq!(x_cache(&edge, cl).await, "MISS");

    // An absolute URI on this host counts; one naming another host is not ours to touch.
    let same = format!("http://{}{abs}", edge.addr);
    let post = format!("/m/post?location={}", pct(&same));
    edge.request(Method::POST, &post).send().await.unwrap();
    assert_eq!(x_cache(&edge, abs).await, "MISS");
    let post = format!(
        "/m/post?location={}",
        pct(&format!("http://other.test{far}"))
    );
    edge.request(Method::POST, &post).send().await.unwrap();
    assert_eq!(x_cache(&edge, far).await, "HIT");
}

#[tokio::test]
async fn a_failed_unsafe_request_invalidates_nothing() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let target = "/m/keep?cc=max-age=60";
    cache(&edge, target).await;
    let post = format!("/m/fail?status=500&location={}", pct(target));
    let r = edge.request(Method::POST, &post).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(x_cache(&edge, target).await, "HIT");

    // A 404 (cached, see errors.rs) answered to a POST of the same URI is an error too.
    let nf = "/m/nf?cc=max-age=60&status=404";
    cache(&edge, nf).await;
    let r = edge.request(Method::DELETE, nf).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(x_cache(&edge, nf).await, "HIT");
    assert_eq!(origin.count_method("/m/keep", "GET"), 1);
}

#[tokio::test]
async fn head_is_answered_from_a_cached_get() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/m/head?cc=max-age=60&size=1234";
    edge.get(p).send().await.unwrap().bytes().await.unwrap();
    let r = edge.request(Method::HEAD, p).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(header(&r, "content-length"), "1234");
    assert!(r.bytes().await.unwrap().is_empty());
    assert_eq!(origin.count("/m/head"), 1);
}

#[tokio::test]
async fn head_on_a_cold_key_fills_with_a_get() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/m/hcold?cc=max-age=60&size=500";
    let r = edge.request(Method::HEAD, p).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cache"), "MISS");
    assert_eq!(header(&r, "content-length"), "500");
    assert!(r.bytes().await.unwrap().is_empty());
    // The fill goes on after the HEAD is answered; a GET right away may still join it.
    let mut hit = None;
    for _ in 0..50 {
        let r = edge.get(p).send().await.unwrap();
        let x = header(&r, "x-cache");
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), 500);
        if x == "HIT" {
            hit = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hit.is_some(), "the HEAD's fill was never stored");
    assert_eq!(origin.count_method("/m/hcold", "GET"), 1);
    assert_eq!(origin.count_method("/m/hcold", "HEAD"), 0);
}

#[tokio::test]
async fn an_oversized_declared_body_is_refused_before_the_origin() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[server]\nmax_request_body = \"1KiB\"").await;
    let r = edge.request(Method::POST, "/m/big").body(vec![b'a'; 4096]);
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(origin.total(), 0);
    // At the limit is fine.
    let r = edge.request(Method::POST, "/m/ok").body(vec![b'a'; 1024]);
    assert_eq!(r.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_oversized_chunked_body_is_refused() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[server]\nmax_request_body = \"1KiB\"").await;
    let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 512]));
    let body = reqwest::Body::wrap_stream(stream::iter(chunks));
    let r = edge.request(Method::POST, "/m/bigc").body(body);
    let r = r.send().await.unwrap();
    // No length is announced, so the origin has seen the head by the time the limit trips;
    // the edge cuts the upload and answers 413 itself.
    assert_eq!(r.status(), 413);
    let text = r.text().await.unwrap();
    assert!(text.starts_with("413 Payload Too Large"), "{text}");
}

#[tokio::test]
async fn client_no_cache_is_ignored_by_default() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/m/nc?cc=max-age=60";
    edge.get(p).send().await.unwrap().bytes().await.unwrap();
    let r = edge.get(p).header("cache-control", "no-cache");
    let r = r.send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(origin.count("/m/nc"), 1);
}

#[tokio::test]
async fn client_no_cache_goes_to_the_origin_when_honoured() {
    let origin = TestOrigin::start().await;
    let toml = site_toml(&origin.url, "\"*\"", "honor_client_no_cache = true", "");
    let edge = TestEdge::from_toml(&toml).await;
    let p = "/m/nch?cc=max-age=60";
    edge.get(p).send().await.unwrap().bytes().await.unwrap();
    origin.set_version("/m/nch", "v2");
    let r = edge.get(p).header("cache-control", "no-cache");
    let r = r.send().await.unwrap();
    assert_ne!(header(&r, "x-cache"), "HIT");
    assert!(r.text().await.unwrap().starts_with("v2|"));
    assert_eq!(origin.count("/m/nch"), 2);
    // A client without the directive gets the refreshed copy from the cache.
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert!(r.text().await.unwrap().starts_with("v2|"));
}
