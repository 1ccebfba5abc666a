//! Operating the edge: the admin API (purge, inspection, stats) and its token, surrogate
//! keys, trusted proxies, and access control (allow / deny lists, rate limits).
#[path = "../common/mod.rs"]
mod common;
#[path = "../revalidation/flaky.rs"]
#[allow(dead_code)]
mod flaky;

mod acl;
mod admin;
mod forwarded;
mod metrics;
mod purge;
mod reload;
mod status_page;

use axum::{Router, body::Body};
use edgecache::admin::{AdminState, app};
use http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

pub const TOKEN: &str = "test-token-0123456789";

/// A test origin, an edge in front of it and the edge's admin API.
pub async fn setup() -> (common::TestOrigin, common::TestEdge, Router) {
    let origin = common::TestOrigin::start().await;
    let edge = common::TestEdge::in_front_of(&origin, "").await;
    let api = admin(&edge);
    (origin, edge, api)
}

/// The admin API of `edge`, asking for `TOKEN`.
pub fn admin(edge: &common::TestEdge) -> Router {
    app(AdminState::new(edge.state.clone(), Some(TOKEN)))
}

/// Sends one admin request with `TOKEN` (a JSON body if given); the status and the JSON answer.
pub async fn call(
    router: &Router,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"));
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    answer(router, req.body(body).unwrap()).await
}

pub async fn answer(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, json)
}

/// `POST /purge` with `body`; the number purged.
pub async fn purge(router: &Router, body: Value) -> u64 {
    let (status, json) = call(router, "POST", "/purge", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    json["purged"].as_u64().unwrap()
}
