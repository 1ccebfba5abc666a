//! Security: what is never stored or shared, no open proxy, no cache poisoning through unkeyed
//! headers, hop-by-hop hygiene, and the proxy headers the origin sees.

use crate::common::{TestEdge, TestOrigin, header, raw_request};
use crate::support::{site_toml, status_of};

/// Two GETs of `p` (with `auth` as Authorization when given); returns both Cache-Status values.
async fn twice(edge: &TestEdge, p: &str, auth: [Option<&str>; 2]) -> [String; 2] {
    let mut out = [String::new(), String::new()];
    for (i, a) in auth.iter().enumerate() {
        let mut rb = edge.get(p);
        if let Some(a) = a {
            rb = rb.header("authorization", *a);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200);
        out[i] = header(&r, "cache-status");
        r.bytes().await.unwrap();
    }
    out
}

#[tokio::test]
async fn no_store_and_private_responses_are_never_stored() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    for (p, path, detail) in [
        ("/s/ns?cc=no-store", "/s/ns", "detail=no-store"),
        ("/s/pv?cc=private,max-age=60", "/s/pv", "detail=private"),
    ] {
        let [a, b] = twice(&edge, p, [None, None]).await;
        assert_eq!(origin.count(path), 2, "{p} was served from cache");
        for cs in [a, b] {
            assert!(cs.contains(detail) && !cs.contains("stored"), "{p}: {cs}");
        }
    }
}

#[tokio::test]
async fn responses_to_authorized_requests_are_not_shared() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // The body echoes the Authorization the origin saw: each user gets their own answer.
    let p = "/s/auth?cc=max-age=60&echo=Authorization";
    let mut bodies = Vec::new();
    for who in ["Bearer alice", "Bearer bob"] {
        let r = edge
            .get(p)
            .header("authorization", who)
            .send()
            .await
            .unwrap();
        assert!(
            header(&r, "cache-status").contains("detail=authorization"),
            "{}",
            header(&r, "cache-status")
        );
        bodies.push(r.text().await.unwrap());
    }
    assert!(
        bodies[0].starts_with("Bearer alice|"),
        "{}",
        &bodies[0][..20]
    );
    assert!(bodies[1].starts_with("Bearer bob|"), "{}", &bodies[1][..20]);
    assert_eq!(origin.count("/s/auth"), 2);
}

#[tokio::test]
async fn public_responses_to_authorized_requests_are_stored() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/s/authpub?cc=public,max-age=60";
    let [a, b] = twice(&edge, p, [Some("Bearer alice"), Some("Bearer bob")]).await;
    assert!(a.contains("stored"), "{a}");
    assert_eq!(b, "edgecache; hit; ttl=59", "a few milliseconds into 60 s");
    assert_eq!(origin.count("/s/authpub"), 1);
}

#[tokio::test]
async fn set_cookie_responses_are_not_stored_by_default() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/s/sc?cc=max-age=60&set_cookie=sid=1";
    for _ in 0..2 {
        let r = edge.get(p).send().await.unwrap();
        assert_eq!(header(&r, "x-cache"), "MISS");
        assert!(header(&r, "cache-status").contains("detail=set-cookie"));
        assert_eq!(header(&r, "set-cookie"), "sid=1");
    }
    assert_eq!(origin.count("/s/sc"), 2);
}

#[tokio::test]
async fn with_cache_set_cookie_the_object_is_stored_but_the_cookie_is_not() {
    let origin = TestOrigin::start().await;
    let toml = site_toml(&origin.url, "\"*\"", "cache_set_cookie = true", "");
    let edge = TestEdge::from_toml(&toml).await;
    let p = "/s/scok?cc=max-age=60&set_cookie=sid=1";
    let r1 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r1, "x-cache"), "MISS");
    assert!(header(&r1, "cache-status").contains("stored"));
    assert_eq!(
        header(&r1, "set-cookie"),
        "sid=1",
        "the client that caused the fill gets it"
    );
    let b1 = r1.bytes().await.unwrap();
    let r2 = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r2, "x-cache"), "HIT");
    // One user's session cookie must never be handed to the next.
    assert!(r2.headers().get("set-cookie").is_none());
    assert_eq!(r2.bytes().await.unwrap(), b1);
    assert_eq!(origin.count("/s/scok"), 1);
}

#[tokio::test]
async fn requests_with_cookies_are_stored_only_when_the_response_is_public() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    for c in ["s=1", "s=2"] {
        let r = edge.get("/s/ck?cc=max-age=60").header("cookie", c);
        let r = r.send().await.unwrap();
        assert!(header(&r, "cache-status").contains("detail=cookie"));
    }
    assert_eq!(origin.count("/s/ck"), 2);

    let p = "/s/ckpub?cc=public,max-age=60";
    let r = edge.get(p).header("cookie", "s=1").send().await.unwrap();
    assert!(header(&r, "cache-status").contains("stored"));
    let r = edge.get(p).header("cookie", "s=2").send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(origin.count("/s/ckpub"), 1);
}

#[tokio::test]
async fn only_configured_hosts_are_served() {
    let origin = TestOrigin::start().await;
    let toml = site_toml(&origin.url, "\"site.test\"", "", "");
    let edge = TestEdge::from_toml(&toml).await;
    let p = "/s/h?cc=max-age=60";
    let r = edge
        .get(p)
        .header("host", "other.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    assert_eq!(origin.total(), 0);
    let r = edge
        .get(p)
        .header("host", "site.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(origin.count("/s/h"), 1);
}

#[tokio::test]
async fn an_absolute_form_target_never_picks_the_upstream() {
    let origin = TestOrigin::start().await;
    let other = TestOrigin::start().await;
    // A catch-all site: the authority only selects the site, the site names the origin.
    let edge = TestEdge::in_front_of(&origin, "").await;
    let req = format!(
        "GET http://{0}/x?cc=max-age=60 HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        other.addr
    );
    let raw = raw_request(edge.addr, req.as_bytes()).await;
    assert_eq!(status_of(&raw), Some(200), "{raw}");
    assert_eq!(origin.count("/x"), 1);
    assert_eq!(other.total(), 0);

    // With a host list, an absolute-form authority outside it is refused like a Host would be.
    let toml = site_toml(&origin.url, "\"site.test\"", "", "");
    let strict = TestEdge::from_toml(&toml).await;
    let req = format!(
        "GET http://{}/y HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
        other.addr
    );
    let raw = raw_request(strict.addr, req.as_bytes()).await;
    assert_eq!(status_of(&raw), Some(421), "{raw}");
    assert_eq!(other.total(), 0);
    assert_eq!(origin.count("/y"), 0);
}

#[tokio::test]
async fn unkeyed_headers_cannot_poison_the_cache() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // The origin reflects X-Forwarded-Host; the edge sends its own (the client's Host) instead.
    let p = "/s/xfh?cc=max-age=60&echo=X-Forwarded-Host";
    let r = edge.get(p).header("x-forwarded-host", "evil.example");
    let body = r.send().await.unwrap().text().await.unwrap();
    assert!(
        body.starts_with(&format!("{}|", edge.addr)),
        "{}",
        &body[..30]
    );
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(r.text().await.unwrap(), body);

    let p = "/s/xou?cc=max-age=60&echo=X-Original-Url";
    let r = edge.get(p).header("x-original-url", "/admin");
    let body = r.send().await.unwrap().text().await.unwrap();
    assert!(body.starts_with("none|"), "{}", &body[..20]);
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(r.text().await.unwrap(), body);
    assert_eq!(origin.total(), 2);
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_not_forwarded() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let post = |url: String| {
        edge.client
            .post(url)
            .header("connection", "x-secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("x-normal", "1")
            .body("data")
            .send()
    };
    // Control: the client really sends these fields (straight to the origin).
    post(format!("{}/s/direct", origin.url)).await.unwrap();
    let direct = origin.last_headers("/s/direct").unwrap();
    assert_eq!(direct["x-secret"], "1");
    assert_eq!(direct["keep-alive"], "timeout=5");
    let r = post(format!("{}/s/hop", edge.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = origin.last_headers("/s/hop").expect("origin saw the POST");
    assert!(!seen.contains_key("x-secret"), "{seen:?}");
    assert!(!seen.contains_key("keep-alive"), "{seen:?}");
    assert_ne!(
        seen.get("connection").map(|v| v.as_bytes()),
        Some(&b"x-secret"[..])
    );
    // Everything else passes on a pass-through request.
    assert_eq!(seen["x-normal"], "1");
}

#[tokio::test]
async fn hop_by_hop_response_headers_do_not_reach_the_client() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/s/hopres?cc=max-age=60&hdr=Connection:x-private&hdr=X-Private:1&hdr=X-Public:1";
    // Control: the origin really sends X-Private.
    let direct = edge
        .client
        .get(format!("{}{p}", origin.url))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&direct, "x-private"), "1");
    for expect in ["MISS", "HIT"] {
        let r = edge.get(p).send().await.unwrap();
        assert_eq!(header(&r, "x-cache"), expect);
        assert!(
            r.headers().get("x-private").is_none(),
            "{expect}: {:?}",
            r.headers()
        );
        assert_eq!(header(&r, "x-public"), "1");
        r.bytes().await.unwrap();
    }
}

#[tokio::test]
async fn via_and_x_forwarded_headers_are_added() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let r = edge.get("/s/via?cc=max-age=60").send().await.unwrap();
    assert_eq!(header(&r, "via"), "1.1 edgecache");
    let seen = origin.last_headers("/s/via").unwrap();
    assert_eq!(seen["via"], "1.1 edgecache");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");

    // A client's X-Forwarded-For and X-Forwarded-Proto are not believed: it is not a trusted
    // proxy (tests/operations/forwarded.rs has one).
    let r = edge
        .get("/s/xff?cc=max-age=60")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = origin.last_headers("/s/xff").unwrap();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");

    // Pass-through requests get the same treatment, and their responses a Via too.
    let r = edge
        .request(reqwest::Method::POST, "/s/viapost")
        .header("x-forwarded-for", "1.2.3.4")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "via"), "1.1 edgecache");
    let seen = origin.last_headers("/s/viapost").unwrap();
    assert_eq!(seen["via"], "1.1 edgecache");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn an_origin_url_with_a_path_prefixes_every_request_and_keeps_the_query() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::from_toml(&format!(
        "[[site]]\nname = \"p\"\nhosts = [\"*\"]\norigin = \"{}/base/\"\n",
        origin.url
    ))
    .await;
    let r = edge
        .get("/a/b?cc=public,max-age=60&x=%2F")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "public,max-age=60");
    r.bytes().await.unwrap();
    assert_eq!(origin.count("/base/a/b"), 1);
    assert_eq!(origin.count("/a/b"), 0);
    // Cached under the edge's own URL.
    let r = edge
        .get("/a/b?cc=public,max-age=60&x=%2F")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(origin.count("/base/a/b"), 1);
}

#[tokio::test]
async fn dot_segments_cannot_leave_the_origin_base_path() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::from_toml(&format!(
        "[[site]]\nname = \"p\"\nhosts = [\"*\"]\norigin = \"{}/public\"\n",
        origin.url
    ))
    .await;
    for target in [
        "/../private/secret",
        "/%2e%2e/private/secret",
        "/a/.%2E/../private/secret",
        "/a/..%2f..%2fprivate/secret",
        "/a/..\\..\\private/secret",
        "/./private/secret",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
        let res = raw_request(edge.addr, req.as_bytes()).await;
        assert!(res.starts_with("HTTP/1.1 400"), "{target}: {res}");
        assert!(res.contains("segment"), "{target}: says why: {res}");
    }
    assert_eq!(origin.total(), 0, "nothing reached the origin");
    // Dots inside names are fine.
    let r = edge.get("/.well-known/a..b.txt").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(origin.count("/public/.well-known/a..b.txt"), 1);
}
