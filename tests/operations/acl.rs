//! Access control (issue 19): a site's `allow` / `deny` lists (403), checked before anything
//! else the site does, on the client the edge believes; `[admin] allow` / `deny` before the
//! admin token.
//! Client addresses other than 127.0.0.1 come from a trusted proxy at 127.0.0.1 saying who it
//! forwards for.

use crate::common::{TestEdge, TestOrigin};
use crate::{TOKEN, answer, call};
use axum::{body::Body, extract::ConnectInfo};
use edgecache::{admin::AdminState, config::Cidr};
use http::{Request, StatusCode};
use std::net::SocketAddr;

/// An edge in front of `origin` whose one site has `site_keys`; `server_keys` go in
/// `[server]`.
async fn edge(origin: &TestOrigin, server_keys: &str, site_keys: &str) -> TestEdge {
    let toml = format!(
        "[server]\n{server_keys}\n[[site]]\nname = \"t\"\nhosts = [\"*\"]\norigin = \"{}\"\n{site_keys}\n",
        origin.url
    );
    TestEdge::from_toml_with_clock(&toml, origin.clock()).await
}

const TRUST_LOOPBACK: &str = "trusted_proxies = [\"127.0.0.1/32\"]";

/// `GET path` from `client`, as the trusted proxy at 127.0.0.1 says (`None`: from the proxy
/// itself); the status and the body.
async fn get_for(edge: &TestEdge, path: &str, client: Option<&str>) -> (u16, String) {
    let mut req = edge.get(path);
    if let Some(c) = client {
        req = req.header("x-forwarded-for", c);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn purge_method() -> reqwest::Method {
    reqwest::Method::from_bytes(b"PURGE").unwrap()
}

#[tokio::test]
async fn a_site_serves_only_its_allow_list_and_deny_wins_for_ipv4_and_ipv6() {
    let origin = TestOrigin::start().await;
    let edge = edge(
        &origin,
        TRUST_LOOPBACK,
        "allow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny = [\"10.9.0.0/16\", \"2001:db8:bad::/48\"]",
    )
    .await;
    let path = "/acl?cc=max-age%3D60";
    for client in ["10.1.2.3", "2001:db8::1"] {
        assert_eq!(get_for(&edge, path, Some(client)).await.0, 200, "{client}");
    }
    assert_eq!(origin.count("/acl"), 1, "the second was a HIT");
    for client in [
        Some("10.9.0.1"),
        Some("2001:db8:bad::7"),
        Some("192.0.2.1"),
        Some("2001:db9::1"),
        // The proxy itself, saying nothing: 127.0.0.1 is in no allow range.
        None,
    ] {
        let (status, body) = get_for(&edge, path, client).await;
        assert_eq!(status, 403, "{client:?}");
        assert!(body.contains("not allowed from this address"), "{body}");
    }
    // Refused before the cache and before PURGE: a stored answer is not served, and a
    // refused PURGE is a 403, not PURGE's own 405.
    let r = edge
        .request(purge_method(), path)
        .header("x-forwarded-for", "10.9.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(origin.count("/acl"), 1);
    let (_, stats) = call(&crate::admin(&edge), "GET", "/stats", None).await;
    assert_eq!(stats["acl_refused"], 6, "{stats}");
}

#[tokio::test]
async fn a_spoofed_forwarded_for_or_forwarded_does_not_get_past_a_list() {
    let origin = TestOrigin::start().await;
    // No trusted proxy: the client is the connection's address, 127.0.0.1.
    let deny = edge(&origin, "", "deny = [\"127.0.0.0/8\"]").await;
    let allow = edge(&origin, "", "allow = [\"10.0.0.0/8\"]").await;
    for e in [&deny, &allow] {
        for (name, value) in [
            ("x-forwarded-for", "10.1.2.3"),
            ("forwarded", "for=10.1.2.3"),
        ] {
            let r = e.get("/s").header(name, value).send().await.unwrap();
            assert_eq!(r.status(), 403, "{name}: {value}");
        }
    }
    assert_eq!(origin.count("/s"), 0);
}

/// `GET /stats` from `peer` (`None`: without ConnectInfo), with the token or without.
fn stats_from(peer: Option<&str>, token: bool) -> Request<Body> {
    let mut req = Request::builder().uri("/stats");
    if token {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    let mut req = req.body(Body::empty()).unwrap();
    if let Some(p) = peer {
        let addr: SocketAddr = p.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    req
}

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter().map(|c| c.parse().unwrap()).collect()
}

#[tokio::test]
async fn the_admin_api_refuses_addresses_its_lists_do_not_admit_before_the_token() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let api = edgecache::admin::app(AdminState::new(edge.state.clone(), Some(TOKEN)).with_acl(
        cidrs(&["10.0.0.0/8", "2001:db8::/32"]),
        cidrs(&["10.9.0.0/16"]),
    ));
    for peer in ["10.1.1.1:5000", "[2001:db8::5]:5000"] {
        let (status, json) = answer(&api, stats_from(Some(peer), true)).await;
        assert_eq!(status, StatusCode::OK, "{peer}: {json}");
    }
    // Refused with the API's JSON error, whether the token is right, missing or absent.
    for (peer, token) in [
        (Some("10.9.0.1:5000"), true),
        (Some("192.0.2.1:5000"), false),
        (Some("[2001:db9::1]:5000"), true),
        (None, true),
    ] {
        let (status, json) = answer(&api, stats_from(peer, token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{peer:?}: {json}");
        assert_eq!(json["error"], "the admin API is not open to this address");
    }
    let (_, json) = answer(&api, stats_from(Some("10.1.1.1:5000"), true)).await;
    assert_eq!(json["admin_acl_refused"], 4, "{json}");
    // Without lists, a request without ConnectInfo is answered as before.
    let (status, _) = answer(&crate::admin(&edge), stats_from(None, true)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_admin_listener_checks_the_connections_own_address() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let serve = |allow: &[&str], deny: &[&str]| {
        let state =
            AdminState::new(edge.state.clone(), Some(TOKEN)).with_acl(cidrs(allow), cidrs(deny));
        let router = edgecache::admin::app(state);
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/stats", listener.local_addr().unwrap());
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move { axum::serve(listener, service).await });
            url
        }
    };
    for (allow, deny, status) in [
        (&["127.0.0.1"][..], &[][..], 200),
        (&[][..], &["127.0.0.0/8"][..], 403),
        (&["10.0.0.0/8"][..], &[][..], 403),
    ] {
        let url = serve(allow, deny).await;
        let r = edge
            .client
            .get(&url)
            .header("x-forwarded-for", "10.1.1.1")
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "allow {allow:?} deny {deny:?}");
    }
}

#[tokio::test]
async fn a_client_over_its_rate_limit_gets_429_with_retry_after_until_its_bucket_refills() {
    let origin = TestOrigin::start().await;
    let edge = edge(
        &origin,
        TRUST_LOOPBACK,
        "rate_limit = { requests = 1, per = \"10s\", burst = 3 }",
    )
    .await;
    let path = "/limited?cc=max-age%3D600";
    for _ in 0..3 {
        assert_eq!(get_for(&edge, path, Some("192.0.2.1")).await.0, 200);
    }
    let r = edge
        .get(path)
        .header("x-forwarded-for", "192.0.2.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "10", "one request every 10 s");
    assert_eq!(
        r.text().await.unwrap(),
        "429 Too Many Requests: too many requests from this address\n"
    );
    // Its neighbour, and an IPv6 client, have buckets of their own.
    assert_eq!(get_for(&edge, path, Some("192.0.2.2")).await.0, 200);
    assert_eq!(get_for(&edge, path, Some("2001:db8:1:2::1")).await.0, 200);
    // The whole /64 shares one bucket.
    for _ in 0..2 {
        assert_eq!(get_for(&edge, path, Some("2001:db8:1:2::99")).await.0, 200);
    }
    assert_eq!(
        get_for(&edge, path, Some("2001:db8:1:2::abcd")).await.0,
        429
    );
    // Ten seconds later (on the edge's clock) one more request may go.
    edge.advance(std::time::Duration::from_secs(10));
    assert_eq!(get_for(&edge, path, Some("192.0.2.1")).await.0, 200);
    assert_eq!(get_for(&edge, path, Some("192.0.2.1")).await.0, 429);
    assert_eq!(
        origin.count("/limited"),
        1,
        "everything else was a HIT or refused"
    );
    let (_, stats) = answer(&crate::admin(&edge), stats_from(None, true)).await;
    assert_eq!(stats["rate_limited"], 3);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_does_not_move_a_client_out_of_its_bucket() {
    let origin = TestOrigin::start().await;
    // No trusted proxy: every request is 127.0.0.1's, whatever it says.
    let edge = edge(&origin, "", "rate_limit = { requests = 2, per = \"1m\" }").await;
    for (i, spoof) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
        let r = edge
            .get("/s")
            .header("x-forwarded-for", *spoof)
            .header("forwarded", format!("for={spoof}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), if i < 2 { 200 } else { 429 }, "{spoof}");
    }
}
