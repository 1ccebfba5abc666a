//! X-Forwarded-For and X-Forwarded-Proto count only from `server.trusted_proxies`: from anyone
//! else they change neither who the client is (here: whether it may PURGE) nor what the
//! origin is told.

use crate::common::{TestEdge, TestOrigin};

fn purge_method() -> reqwest::Method {
    reqwest::Method::from_bytes(b"PURGE").unwrap()
}

#[tokio::test]
async fn a_spoofed_forwarded_for_changes_nothing() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[admin]\npurge_from = [\"10.0.0.0/8\"]").await;
    edge.get("/f?cc=max-age%3D60")
        .header("x-forwarded-for", "10.9.9.9")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let seen = origin.last_headers("/f").unwrap();
    assert_eq!(
        seen["x-forwarded-for"], "127.0.0.1",
        "the connection's own address alone"
    );
    assert_eq!(seen["x-forwarded-proto"], "http");
    let r = edge
        .request(purge_method(), "/f?cc=max-age%3D60")
        .header("x-forwarded-for", "10.9.9.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405, "not the client it claims to be");
}

#[tokio::test]
async fn a_trusted_proxy_says_who_the_client_is() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(
        &origin,
        "[server]\ntrusted_proxies = [\"127.0.0.1\", \"192.0.2.0/24\"]\n[admin]\npurge_from = [\"10.0.0.0/8\"]",
    )
    .await;
    // The right-most address that is not a trusted proxy is the client; what is left of it
    // is whatever the client said.
    let chain = "198.51.100.1, 10.9.9.9, 192.0.2.7";
    edge.get("/t?cc=max-age%3D60")
        .header("x-forwarded-for", chain)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let seen = origin.last_headers("/t").unwrap();
    assert_eq!(
        seen["x-forwarded-for"],
        format!("{chain}, 127.0.0.1").as_str()
    );
    assert_eq!(seen["x-forwarded-proto"], "https");
    let r = edge
        .request(purge_method(), "/t?cc=max-age%3D60")
        .header("x-forwarded-for", chain)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "10.9.9.9 may purge");
    // Without a list, the proxy itself is the client: not in purge_from.
    let r = edge
        .request(purge_method(), "/t?cc=max-age%3D60")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn a_trusted_proxys_forwarded_header_says_who_the_client_is_too() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(
        &origin,
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[admin]\npurge_from = [\"2001:db8::/32\"]",
    )
    .await;
    let forwarded = "for=198.51.100.1, for=\"[2001:db8::7]:4711\";proto=https";
    edge.get("/f?cc=max-age%3D60")
        .header("forwarded", forwarded)
        .send()
        .await
        .unwrap();
    let seen = origin.last_headers("/f").unwrap();
    assert_eq!(
        seen["x-forwarded-for"],
        "198.51.100.1, 2001:db8::7, 127.0.0.1"
    );
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert!(seen.get("forwarded").is_none());
    let r = edge
        .request(purge_method(), "/f?cc=max-age%3D60")
        .header("forwarded", forwarded)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "2001:db8::7 may purge");
}
