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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    edge.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t.elapsed()
    );
    inflight.abort();
}
