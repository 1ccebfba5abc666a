//! `GET /metrics` and `GET /stats` after a known sequence of requests.

use crate::{call, setup};
use axum::body::Body;
use http::{Request, StatusCode};
use tower::ServiceExt;

/// The Prometheus text of the admin API.
async fn scrape(api: &axum::Router) -> String {
    let req = Request::get("/metrics")
        .header("authorization", format!("Bearer {}", crate::TOKEN))
        .body(Body::empty())
        .unwrap();
    let res = api.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let body = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of the sample `name{labels}` in `text`, if it is there.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_and_stats_count_what_was_served() {
    let (origin, edge, api) = setup().await;
    let get = |p: &str| edge.get(p).send();
    // One miss and two hits of 1000 bytes; a miss and a hit of a body of unknown length;
    // a POST passed through; an origin's 503.
    for _ in 0..3 {
        let r = get("/a?cc=max-age=60&size=1000").await.unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), 1000);
    }
    for _ in 0..2 {
        let r = get("/b?cc=max-age=60&size=500&chunked=1").await.unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), 500);
    }
    let post = edge
        .request(reqwest::Method::POST, "/c")
        .send()
        .await
        .unwrap();
    let post_len = post.bytes().await.unwrap().len() as f64;
    let failed = get("/e?status=503").await.unwrap();
    assert_eq!(failed.status(), 503);
    let failed_len = failed.bytes().await.unwrap().len() as f64;
    assert_eq!(origin.total(), 4);

    let series = |name: &str, labels: &str| format!("{name}{{site=\"t\",{labels}}}");
    let requests = |status: &str, cache: &str| {
        series(
            "edgecache_requests_total",
            &format!("status=\"{status}\",cache=\"{cache}\""),
        )
    };
    // The chunked miss's bytes are counted once its body has gone out, just after the
    // client has read it.
    let miss_bytes = series("edgecache_response_bytes_total", "cache=\"miss\"");
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&api).await;
        if sample(&text, &miss_bytes) == Some(1500.0 + failed_len) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (series, value) in [
        (requests("2xx", "hit"), 3.0),
        (requests("2xx", "miss"), 2.0),
        (requests("2xx", "bypass"), 1.0),
        (requests("5xx", "miss"), 1.0),
        (
            series("edgecache_response_bytes_total", "cache=\"hit\""),
            2500.0,
        ),
        (miss_bytes.clone(), 1500.0 + failed_len),
        (
            series("edgecache_response_bytes_total", "cache=\"bypass\""),
            post_len,
        ),
        ("edgecache_origin_requests_total{site=\"t\"}".into(), 4.0),
        ("edgecache_origin_errors_total{site=\"t\"}".into(), 1.0),
        ("edgecache_origin_seconds_count{site=\"t\"}".into(), 4.0),
        ("edgecache_hit_ratio{site=\"t\"}".into(), 0.5),
        // /a, /b, and the mark that /e could not be stored (hit-for-miss).
        ("edgecache_store_entries".into(), 3.0),
    ] {
        assert_eq!(sample(&text, &series), Some(value), "{series} in\n{text}");
    }
    assert!(sample(&text, "edgecache_store_bytes").unwrap() > 1500.0);

    let (status, stats) = call(&api, "GET", "/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    let site = &stats["sites"][0];
    assert_eq!(site["name"], "t");
    assert_eq!(site["requests"], 7);
    assert_eq!(site["hit_ratio"], 0.5);
    let byte_ratio = 2500.0 / (2500.0 + 1500.0 + failed_len);
    assert!((site["byte_hit_ratio"].as_f64().unwrap() - byte_ratio).abs() < 1e-9);
    assert_eq!(site["origin_requests"], 4);
    assert_eq!(stats["entries"], 3);
}

#[tokio::test]
async fn purges_are_counted_and_listed() {
    let (_origin, edge, api) = setup().await;
    edge.get("/p?cc=max-age=60").send().await.unwrap();
    let url = format!("{}/p?cc=max-age=60", edge.url);
    assert_eq!(
        crate::purge(&api, serde_json::json!({ "url": url })).await,
        1
    );
    assert_eq!(
        crate::purge(&api, serde_json::json!({ "tag": "none", "soft": true })).await,
        0
    );
    let text = scrape(&api).await;
    assert_eq!(
        sample(&text, "edgecache_purges_total{kind=\"url\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "edgecache_purges_total{kind=\"tag\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "edgecache_purged_objects_total"), Some(1.0));
    let (_, stats) = call(&api, "GET", "/stats", None).await;
    let purges = stats["purges"].as_array().unwrap();
    assert_eq!(purges.len(), 2);
    assert_eq!(purges[0]["kind"], "tag", "newest first");
    assert_eq!(purges[0]["soft"], true);
    assert_eq!(purges[1]["what"], url.as_str());
    assert_eq!(purges[1]["purged"], 1);
}
