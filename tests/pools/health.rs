//! Passive ejection and its back-off (on the edge's clock), active health checks, all servers
//! down, and the per-server connection cap.

use crate::common::{TestEdge, TestOrigin, header};
use crate::flaky::FlakyOrigin;
use crate::{pool_toml, server};
use std::time::Duration;

#[tokio::test]
async fn failing_servers_are_ejected_no_request_reaches_them_and_they_come_back() {
    let sick = FlakyOrigin::start("no-store").await;
    sick.set_status(503);
    let well = TestOrigin::start().await;
    let toml = pool_toml(
        &[server(&sick.url, ""), server(&well.url, "")],
        "eject_after = 2\neject_for = \"10s\"",
    );
    let edge = TestEdge::from_toml(&toml).await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = edge.get("/e?cc=no-store").send().await.unwrap();
        statuses.push(r.status().as_u16());
    }
    // Its two 503s reach clients (a 503 is an answer, not retried); then it is out.
    assert_eq!(sick.requests(), 2);
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), 2);
    assert_eq!(well.count("/e"), 18);
    // Healthy again, but ejected until its back-off ends on the edge's clock.
    sick.set_status(200);
    for _ in 0..10 {
        edge.get("/e?cc=no-store").send().await.unwrap();
    }
    assert_eq!(sick.requests(), 2, "no request to an ejected server");
    edge.advance(Duration::from_secs(11));
    for _ in 0..10 {
        assert_eq!(
            edge.get("/e?cc=no-store").send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(sick.requests(), 7, "back in the rotation: half of ten");
}

#[tokio::test]
async fn active_checks_take_a_server_out_and_bring_it_back() {
    let flaky = FlakyOrigin::start("no-store").await;
    let well = TestOrigin::start().await;
    let toml = pool_toml(
        &[server(&flaky.url, ""), server(&well.url, "")],
        "eject_after = 0\n[site.health_check]\npath = \"/healthz\"\ninterval = \"20ms\"\n\
         timeout = \"1s\"\nhealthy_threshold = 1\nunhealthy_threshold = 2",
    );
    let edge = TestEdge::from_toml(&toml).await;
    flaky.set_status(500);
    // Bounded wait for two failed checks.
    let mut out = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let before = flaky.requests();
        edge.get("/h?cc=no-store").send().await.unwrap();
        edge.get("/h?cc=no-store").send().await.unwrap();
        // Only checks reach it now (they come every 20 ms, the two requests take less).
        if flaky.requests() == before {
            out = true;
            break;
        }
    }
    assert!(out, "the failing server was never taken out");
    let served = well.count("/h");
    for _ in 0..10 {
        let r = edge.get("/h?cc=no-store").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(well.count("/h"), served + 10);
    flaky.set_status(200);
    let mut back = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let r = edge.get("/h?cc=no-store").send().await.unwrap();
        if r.text().await.unwrap().starts_with("fresh") {
            back = true;
            break;
        }
    }
    assert!(
        back,
        "the server that passes its check again never came back"
    );
}

#[tokio::test]
async fn all_servers_down_serves_stale_where_allowed_and_503_elsewhere() {
    let mut a = FlakyOrigin::start("max-age=1").await;
    let mut b = FlakyOrigin::start("max-age=1").await;
    let toml = pool_toml(&[server(&a.url, ""), server(&b.url, "")], "eject_after = 1");
    let edge = TestEdge::from_toml(&toml).await;
    assert_eq!(edge.get("/kept").send().await.unwrap().status(), 200);
    a.stop().await;
    b.stop().await;
    edge.advance(Duration::from_secs(2));
    // Both refuse: ejected one by one; the stored copy stands in (stale_on_error, 10 s).
    for _ in 0..3 {
        let r = edge.get("/kept").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-cache"), "STALE");
    }
    // Nothing stored: 503, with a short body.
    let r = edge.get("/never").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.text().await.unwrap(),
        "503 Service Unavailable: no origin server available\n"
    );
}

#[tokio::test]
async fn a_server_at_its_connection_cap_queues_then_503() {
    let slow = TestOrigin::start().await;
    let toml = pool_toml(
        &[server(&slow.url, "max_connections = 2")],
        "queue_timeout = \"100ms\"",
    );
    let edge = TestEdge::from_toml(&toml).await;
    // Six at once to a server that takes 400 ms an answer and two at a time: two are sent,
    // the others wait 100 ms for a slot, then get 503.
    let reqs = (0..6).map(|i| edge.get(&format!("/cap{i}?cc=no-store&delay=400")).send());
    let res = futures_util::future::join_all(reqs).await;
    let statuses: Vec<u16> = res
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(slow.total(), 2, "the origin never saw more than its cap");
}
