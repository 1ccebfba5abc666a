//! What of the client's request reaches the origin on a fill: every end-to-end header by
//! default, without the override headers; only a safe set in strict mode; in both, what a
//! stored response varies on. Waiters of another variant get their own; a bodyless request
//! goes on without a body.

use crate::common::{TestEdge, TestOrigin, header};
use http::HeaderMap;

/// The request headers the origin saw last for `path`.
fn seen(origin: &TestOrigin, path: &str) -> HeaderMap {
    origin
        .last_headers(path)
        .expect("the origin saw the request")
}

#[tokio::test]
async fn a_custom_header_reaches_the_origin_and_the_override_headers_do_not() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let r = edge
        .get("/rh/custom?cc=max-age=60")
        .header("x-api-key", "secret-key")
        .header("x-requested-with", "XMLHttpRequest")
        .header("x-original-url", "/admin")
        .header("x-rewrite-url", "/admin")
        .header("x-http-method-override", "DELETE")
        .header("x-forwarded-server", "evil.example")
        .header("x-host", "evil.example")
        .header("forwarded", "host=evil.example")
        .header("if-none-match", "\"client-tag\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cache"), "MISS");
    let h = seen(&origin, "/rh/custom");
    assert_eq!(h["x-api-key"], "secret-key");
    assert_eq!(h["x-requested-with"], "XMLHttpRequest");
    for gone in [
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-forwarded-server",
        "x-host",
        "forwarded",
        "if-none-match",
    ] {
        assert!(!h.contains_key(gone), "{gone} reached the origin: {h:?}");
    }
    assert_eq!(h["host"], edge.addr.to_string().as_str());
}

#[tokio::test]
async fn a_site_may_forward_an_override_header_it_names() {
    let origin = TestOrigin::start().await;
    let toml = format!(
        "[[site]]\nname = \"s\"\nhosts = [\"*\"]\norigin = \"{}\"\n\
         forward_headers = [\"X-Forwarded-Prefix\"]\n",
        origin.url
    );
    let edge = TestEdge::from_toml(&toml).await;
    let r = edge
        .get("/rh/prefix?cc=max-age=60")
        .header("x-forwarded-prefix", "/shop")
        .header("x-original-url", "/admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = seen(&origin, "/rh/prefix");
    assert_eq!(h["x-forwarded-prefix"], "/shop");
    assert!(!h.contains_key("x-original-url"));
}

#[tokio::test]
async fn each_variant_is_made_by_the_origin_from_the_header_it_varies_on() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // The origin's body starts with the request's Sec-CH-UA-Mobile, and it says Vary on it.
    let p = "/rh/mobile?cc=max-age=60&vary=Sec-CH-UA-Mobile";
    let get = |v: &'static str| edge.get(p).header("sec-ch-ua-mobile", v).send();
    for (v, expect) in [("?1", "MISS"), ("?0", "MISS"), ("?1", "HIT"), ("?0", "HIT")] {
        let r = get(v).await.unwrap();
        assert_eq!(header(&r, "x-cache"), expect, "{v}");
        let body = r.text().await.unwrap();
        assert!(body.starts_with(&format!("{v}|")), "{v}: {}", &body[..10]);
    }
    assert_eq!(origin.count("/rh/mobile"), 2);
}

/// Strict mode: the fixed safe set and `forward_headers`, and the headers a stored response
/// for the URL varies on (the first fill of a URL cannot know them yet).
#[tokio::test]
async fn strict_mode_forwards_the_safe_set_the_listed_headers_and_the_varied_ones() {
    let origin = TestOrigin::start().await;
    let toml = format!(
        "[[site]]\nname = \"s\"\nhosts = [\"*\"]\norigin = \"{}\"\n\
         request_headers = \"strict\"\nforward_headers = [\"X-Tenant\"]\n",
        origin.url
    );
    let edge = TestEdge::from_toml(&toml).await;
    let r = edge
        .get("/rh/strict?cc=max-age=60")
        .header("x-api-key", "k")
        .header("x-tenant", "t1")
        .header("accept-language", "de")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = seen(&origin, "/rh/strict");
    assert!(!h.contains_key("x-api-key"), "{h:?}");
    assert_eq!(h["x-tenant"], "t1");
    assert_eq!(h["accept-language"], "de");

    let p = "/rh/strict-vary?cc=max-age=60&vary=X-Device";
    let first = edge
        .get(p)
        .header("x-device", "phone")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&first, "x-cache"), "MISS");
    // Nothing was stored for the URL yet: strict mode did not forward it.
    assert!(first.text().await.unwrap().starts_with("none|"));
    let second = edge.get(p).header("x-device", "tv").send().await.unwrap();
    assert_eq!(header(&second, "x-cache"), "MISS");
    // Now the stored response says Vary: X-Device, and the fill carries it.
    assert!(second.text().await.unwrap().starts_with("tv|"));
    assert_eq!(seen(&origin, "/rh/strict-vary")["x-device"], "tv");
}

#[tokio::test]
async fn an_unknown_request_header_is_rejected_as_a_config_value() {
    let toml = "[[site]]\nname = \"s\"\nhosts = [\"*\"]\norigin = \"http://127.0.0.1:9\"\n\
                request_headers = \"some\"\n";
    let e = edgecache::config::Config::from_toml(toml)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("site[0].request_headers: "), "{e}");
    assert!(e.contains("all") && e.contains("strict"), "{e}");
}

/// Four clients ask at once, two per language, before anything is stored: each gets the body
/// the origin made for its language, and each language costs one origin request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_of_another_variant_share_a_fill_of_their_own() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/rh/lang?cc=max-age=60&vary=Accept-Language&delay=300";
    let tasks: Vec<_> = ["de", "fr", "de", "fr"]
        .into_iter()
        .map(|lang| {
            let rb = edge.get(p).header("accept-language", lang);
            tokio::spawn(async move {
                let r = rb.send().await.unwrap();
                let cs = header(&r, "cache-status");
                (lang, cs, r.text().await.unwrap())
            })
        })
        .collect();
    for t in tasks {
        let (lang, cs, body) = t.await.unwrap();
        assert!(
            body.starts_with(&format!("{lang}|")),
            "{lang} ({cs}): {}",
            &body[..8]
        );
    }
    assert_eq!(
        origin.count("/rh/lang"),
        2,
        "one origin request per language"
    );
    for lang in ["de", "fr"] {
        let r = edge
            .get(p)
            .header("accept-language", lang)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r, "x-cache"), "HIT", "{lang}");
        assert!(r.text().await.unwrap().starts_with(&format!("{lang}|")));
    }
}

#[tokio::test]
async fn a_request_without_a_body_goes_to_the_origin_without_one() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    for method in [reqwest::Method::DELETE, reqwest::Method::OPTIONS] {
        let r = edge
            .request(method.clone(), "/rh/nobody")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method}");
        let h = seen(&origin, "/rh/nobody");
        assert!(!h.contains_key("transfer-encoding"), "{method}: {h:?}");
    }
    // A body still goes on, framed.
    let r = edge
        .request(reqwest::Method::DELETE, "/rh/withbody")
        .body("reason=spam")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = seen(&origin, "/rh/withbody");
    assert_eq!(h["content-length"], "11");
}
