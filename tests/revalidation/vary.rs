//! Vary: one stored variant per normalised request value, Accept-Encoding collapsed to three
//! codings, a cap on variants, `Vary: *`, and headers the edge does not forward.

use crate::common::{TestEdge, TestOrigin, header};

async fn get_with(edge: &TestEdge, p: &str, name: &str, value: Option<&str>) -> reqwest::Response {
    let mut rb = edge.get(p);
    if let Some(v) = value {
        rb = rb.header(name, v);
    }
    rb.send().await.unwrap()
}

/// The value the origin last received for `name` on `path`.
fn origin_saw(origin: &TestOrigin, path: &str, name: &str) -> Option<String> {
    let h = origin.last_headers(path)?;
    h.get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn accept_encoding_variants_are_stored_apart() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/v/ae?cc=max-age=60&vary=Accept-Encoding";
    for round in 0..2 {
        let expect = if round == 0 { "MISS" } else { "HIT" };
        let g = get_with(&edge, p, "accept-encoding", Some("gzip")).await;
        assert_eq!(header(&g, "x-cache"), expect);
        assert_eq!(header(&g, "vary"), "Accept-Encoding");
        assert!(g.text().await.unwrap().starts_with("gzip|"));
        let i = get_with(&edge, p, "accept-encoding", None).await;
        assert_eq!(header(&i, "x-cache"), expect);
        assert!(i.text().await.unwrap().starts_with("identity|"));
    }
    assert_eq!(origin.count("/v/ae"), 2);
}

#[tokio::test]
async fn accept_encoding_spellings_share_normalised_variants() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/v/norm?cc=max-age=60&vary=Accept-Encoding";
    // (first spelling, second spelling, the one coding the origin is asked for)
    let groups = [
        (Some("gzip, deflate"), Some("deflate, gzip;q=0.9"), "gzip"),
        (
            Some("br, gzip"),
            Some("gzip, deflate, br, zstd"),
            "br, gzip",
        ),
        (Some("br"), Some("br, gzip;q=0"), "br"),
        (None, Some("identity"), "identity"),
    ];
    for (n, (first, second, coding)) in groups.into_iter().enumerate() {
        let r = get_with(&edge, p, "accept-encoding", first).await;
        assert_eq!(header(&r, "x-cache"), "MISS", "{first:?}");
        assert!(r.text().await.unwrap().starts_with(&format!("{coding}|")));
        assert_eq!(
            origin_saw(&origin, "/v/norm", "accept-encoding").as_deref(),
            Some(coding),
            "the origin is sent the normalised value for {first:?}"
        );
        let r = get_with(&edge, p, "accept-encoding", second).await;
        assert_eq!(header(&r, "x-cache"), "HIT", "{second:?}");
        assert!(r.text().await.unwrap().starts_with(&format!("{coding}|")));
        assert_eq!(origin.count("/v/norm"), n + 1);
    }
}

#[tokio::test]
async fn variants_beyond_the_cap_evict_the_oldest() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[cache]\nmax_variants = 3").await;
    let p = "/v/cap?cc=max-age=60&vary=User-Agent";
    let ua = |agent: &'static str| get_with(&edge, p, "user-agent", Some(agent));
    for agent in ["a", "b", "c", "d", "e"] {
        let r = ua(agent).await;
        assert_eq!(header(&r, "x-cache"), "MISS");
        assert!(r.text().await.unwrap().starts_with(&format!("{agent}|")));
    }
    assert_eq!(origin.count("/v/cap"), 5);
    // Only e, d, c are kept: a was evicted and goes back to the origin (evicting c).
    let r = ua("a").await;
    assert_eq!(header(&r, "x-cache"), "MISS");
    assert!(r.text().await.unwrap().starts_with("a|"));
    assert_eq!(origin.count("/v/cap"), 6);
    for agent in ["e", "d", "a"] {
        let r = ua(agent).await;
        assert_eq!(header(&r, "x-cache"), "HIT", "{agent}");
        assert!(r.text().await.unwrap().starts_with(&format!("{agent}|")));
    }
    assert_eq!(origin.count("/v/cap"), 6);
    let r = ua("c").await;
    assert_eq!(header(&r, "x-cache"), "MISS", "c was the oldest of three");
    assert_eq!(origin.count("/v/cap"), 7);
}

#[tokio::test]
async fn vary_star_is_never_served_from_cache() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // `*` alone, and `*` within a list.
    for (path, p) in [
        ("/v/star", "/v/star?cc=max-age=60&vary=*"),
        ("/v/star2", "/v/star2?cc=max-age=60&hdr=Vary:Accept,%20*"),
    ] {
        for n in 1..=2 {
            let r = edge.get(p).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(header(&r, "x-cache"), "MISS", "{p} request {n}");
            let cs = header(&r, "cache-status");
            assert!(cs.contains("detail=vary-star"), "{cs}");
            assert!(!cs.contains("stored"), "{cs}");
            assert_eq!(origin.count(path), n);
        }
    }
}

#[tokio::test]
async fn a_request_without_a_matching_variant_is_a_vary_miss() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/v/vm?cc=max-age=60&vary=Accept-Language";
    let r = get_with(&edge, p, "accept-language", Some("de")).await;
    let cs = header(&r, "cache-status");
    assert_eq!(
        cs,
        "edgecache; fwd=uri-miss; fwd-status=200; stored; ttl=60"
    );
    let r = get_with(&edge, p, "accept-language", Some("fr")).await;
    assert_eq!(header(&r, "x-cache"), "MISS");
    let cs = header(&r, "cache-status");
    assert_eq!(
        cs,
        "edgecache; fwd=vary-miss; fwd-status=200; stored; ttl=60"
    );
    assert!(r.text().await.unwrap().starts_with("fr|"));
    let r = get_with(&edge, p, "accept-language", Some("de")).await;
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(origin.count("/v/vm"), 2);
}

#[tokio::test]
async fn vary_on_any_request_header_gives_each_value_a_variant_the_origin_made() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // X-Tenant is in no list: the origin sees it anyway (request_headers = "all"), so each
    // tenant's stored variant is the one the origin made for that tenant.
    let p = "/v/tenant?cc=max-age=60&vary=X-Tenant";
    for tenant in ["a", "b"] {
        let r = get_with(&edge, p, "x-tenant", Some(tenant)).await;
        assert_eq!(header(&r, "x-cache"), "MISS");
        assert!(r.text().await.unwrap().starts_with(&format!("{tenant}|")));
        assert_eq!(
            origin_saw(&origin, "/v/tenant", "x-tenant").as_deref(),
            Some(tenant)
        );
    }
    let r = get_with(&edge, p, "x-tenant", Some("a")).await;
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert!(r.text().await.unwrap().starts_with("a|"));
    assert_eq!(origin.count("/v/tenant"), 2);
}

#[tokio::test]
async fn vary_on_a_configured_forward_header_gives_each_value_its_variant() {
    let origin = TestOrigin::start().await;
    let toml = format!(
        "[[site]]\nname = \"t\"\nhosts = [\"*\"]\norigin = \"{}\"\nforward_headers = [\"x-tenant\"]\n",
        origin.url
    );
    let edge = TestEdge::from_toml(&toml).await;
    let p = "/v/fwd?cc=max-age=60&vary=X-Tenant";
    for round in 0..2 {
        let expect = if round == 0 { "MISS" } else { "HIT" };
        for tenant in ["a", "b"] {
            let r = get_with(&edge, p, "x-tenant", Some(tenant)).await;
            assert_eq!(header(&r, "x-cache"), expect, "{tenant}");
            let body = r.text().await.unwrap();
            assert!(body.starts_with(&format!("{tenant}|")), "{body}");
        }
    }
    assert_eq!(
        origin_saw(&origin, "/v/fwd", "x-tenant").as_deref(),
        Some("b")
    );
    assert_eq!(origin.count("/v/fwd"), 2);
}
