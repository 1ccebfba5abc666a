//! Shutdown: in-flight requests drain, bounded by `drain_timeout`.

use crate::common::{TestEdge, TestOrigin};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_stops_accepting() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let (client, url, addr) = (
        edge.client.clone(),
        format!("{}/c/drain?slow=800&size=50000", edge.url),
        edge.addr,
    );
    let inflight = tokio::spawn(async move { client.get(url).send().await?.bytes().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    edge.stop().await;
    let body = inflight
        .await
        .unwrap()
        .expect("the in-flight request completed");
    assert_eq!(body.len(), 50_000);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn the_drain_is_bounded_by_its_timeout() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[server]\ndrain_timeout = \"300ms\"").await;
    let (client, url) = (
        edge.client.clone(),
        format!("{}/c/stuck?delay=10000", edge.url),
    );
    let inflight = tokio::spawn(async move { client.get(url).send().await });
    // The stuck request is in flight once the origin has it.
    for _ in 0..500 {
        if origin.count("/c/stuck") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        origin.count("/c/stuck"),
        1,
        "the request never reached the origin"
    );
    let t = Instant::now();
    edge.stop().await;
    let took = t.elapsed();
    // It waited for the request, but no longer than drain_timeout (and some slack).
    assert!(
        took >= Duration::from_millis(300),
        "stop took only {took:?}"
    );
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    // The in-flight client saw its connection end without an answer, not a made-up one.
    let seen = tokio::time::timeout(Duration::from_secs(5), inflight)
        .await
        .expect("the client heard back once the drain ended")
        .unwrap();
    assert!(seen.is_err(), "the stuck request got an answer: {seen:?}");
}
