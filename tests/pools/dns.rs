//! Origin names resolved by the edge: kept for their record TTL (within dns_min_ttl and
//! dns_max_ttl) on the edge's clock, asked again when it runs out, the last good answer kept
//! when that fails. A test DNS server on 127.0.0.1 answers for `pool.test`.

use crate::common::dns::{TestDns, Zone};
use crate::common::{TestEdge, TestOrigin};
use std::net::Ipv4Addr;
use std::time::Duration;

fn localhost(ttl: u32) -> Zone {
    Zone::A {
        addrs: vec![Ipv4Addr::LOCALHOST],
        ttl,
    }
}

/// An edge in front of `http://pool.test:PORT` (the origin's port), resolved by `dns`.
async fn edge(origin: &TestOrigin, dns: &TestDns, origin_keys: &str) -> TestEdge {
    let port = origin.url.rsplit(':').next().unwrap();
    TestEdge::from_toml(&format!(
        "[origin]\nresolver = [\"{}\"]\n{origin_keys}\n\
         [[site]]\nname = \"named\"\nhosts = [\"*\"]\norigin = \"http://pool.test:{port}\"\n",
        dns.addr
    ))
    .await
}

/// Waits (boundedly) until the server has been asked `n` questions.
async fn asked(dns: &TestDns, n: usize) -> usize {
    for _ in 0..200 {
        if dns.questions() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dns.questions()
}

#[tokio::test]
async fn a_name_is_asked_again_when_its_ttl_runs_out_not_per_request() {
    let origin = TestOrigin::start().await;
    let dns = TestDns::start(localhost(30)).await;
    let edge = edge(&origin, &dns, "").await;
    for i in 0..10 {
        let r = edge.get(&format!("/n{i}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(origin.total(), 10);
    assert_eq!(dns.questions(), 1, "asked once, at start");
    edge.advance(Duration::from_secs(29));
    edge.get("/n-29s").send().await.unwrap();
    assert_eq!(dns.questions(), 1, "within the TTL");
    edge.advance(Duration::from_secs(2));
    // The request past the TTL is served from the answer held; the new one is asked for
    // behind it.
    assert_eq!(edge.get("/n-31s").send().await.unwrap().status(), 200);
    assert_eq!(asked(&dns, 2).await, 2);
    edge.get("/n-31s-again").send().await.unwrap();
    assert_eq!(dns.questions(), 2);
}

#[tokio::test]
async fn a_failed_re_resolution_keeps_the_last_good_answer() {
    let origin = TestOrigin::start().await;
    let dns = TestDns::start(localhost(10)).await;
    let edge = edge(&origin, &dns, "").await;
    assert_eq!(edge.get("/f0").send().await.unwrap().status(), 200);
    dns.set(Zone::ServFail);
    edge.advance(Duration::from_secs(11));
    edge.get("/f1").send().await.unwrap();
    assert!(asked(&dns, 2).await >= 2);
    for i in 2..6 {
        let r = edge.get(&format!("/f{i}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "served at the last good address");
    }
    assert_eq!(origin.total(), 6);
}

#[tokio::test]
async fn ttls_are_bounded_by_dns_min_ttl_and_dns_max_ttl() {
    let origin = TestOrigin::start().await;
    // A TTL of 0 is kept for dns_min_ttl.
    let dns = TestDns::start(localhost(0)).await;
    let edge = edge(&origin, &dns, "dns_min_ttl = \"20s\"\ndns_max_ttl = \"1m\"").await;
    edge.advance(Duration::from_secs(19));
    edge.get("/b0").send().await.unwrap();
    assert_eq!(dns.questions(), 1);
    edge.advance(Duration::from_secs(2));
    edge.get("/b1").send().await.unwrap();
    assert_eq!(asked(&dns, 2).await, 2);
    // A day's TTL is cut to dns_max_ttl.
    dns.set(localhost(86_400));
    edge.advance(Duration::from_secs(21));
    edge.get("/b2").send().await.unwrap();
    assert_eq!(asked(&dns, 3).await, 3);
    edge.advance(Duration::from_secs(59));
    edge.get("/b3").send().await.unwrap();
    assert_eq!(dns.questions(), 3);
    edge.advance(Duration::from_secs(2));
    edge.get("/b4").send().await.unwrap();
    assert_eq!(asked(&dns, 4).await, 4);
}

#[tokio::test]
async fn a_name_that_does_not_resolve_gives_503_until_it_does() {
    let origin = TestOrigin::start().await;
    let dns = TestDns::start(Zone::ServFail).await;
    let edge = edge(&origin, &dns, "").await;
    let r = edge.get("/u").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("no origin server available")
    );
    dns.set(localhost(60));
    edge.advance(Duration::from_secs(6));
    // With no address at all, the request waits for the new answer.
    assert_eq!(edge.get("/u").send().await.unwrap().status(), 200);
    assert_eq!(origin.count("/u"), 1);
}
