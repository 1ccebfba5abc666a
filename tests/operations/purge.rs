//! `POST /purge` by URL (every variant), prefix and tag, hard and soft.

use crate::common::{TestEdge, TestOrigin, header};
use crate::flaky::FlakyOrigin;
use crate::{admin, purge};
use serde_json::json;

async fn x_cache(edge: &TestEdge, path: &str) -> String {
    header(&edge.get(path).send().await.unwrap(), "x-cache")
}

#[tokio::test]
async fn a_url_purge_removes_every_variant_of_it_and_nothing_else() {
    let (origin, edge, api) = crate::setup().await;
    let path = "/u?vary=Accept-Language&cc=max-age%3D60";
    for lang in ["en", "fr"] {
        edge.get(path)
            .header("accept-language", lang)
            .send()
            .await
            .unwrap();
    }
    edge.get("/other?cc=max-age%3D60").send().await.unwrap();
    let n = purge(&api, json!({ "url": format!("{}{path}", edge.url) })).await;
    assert_eq!(n, 2);
    for lang in ["en", "fr"] {
        let r = edge
            .get(path)
            .header("accept-language", lang)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r, "x-cache"), "MISS", "{lang}");
    }
    assert_eq!(x_cache(&edge, "/other?cc=max-age%3D60").await, "HIT");
    assert_eq!(origin.count("/u"), 4);
    // Nothing left to purge the second time.
    let again = purge(&api, json!({ "url": format!("{}/gone", edge.url) })).await;
    assert_eq!(again, 0);
}

#[tokio::test]
async fn a_soft_purge_is_revalidated_with_one_conditional_request() {
    let (origin, edge, api) = crate::setup().await;
    let path = "/s?etag=1&cc=max-age%3D600";
    let first = edge.get(path).send().await.unwrap().text().await.unwrap();
    assert_eq!(x_cache(&edge, path).await, "HIT");
    let n = purge(
        &api,
        json!({ "url": format!("{}{path}", edge.url), "soft": true }),
    )
    .await;
    assert_eq!(n, 1);
    let r = edge.get(path).send().await.unwrap();
    assert_ne!(header(&r, "x-cache"), "HIT");
    assert_eq!(
        r.text().await.unwrap(),
        first,
        "the stored body, revalidated"
    );
    assert_eq!(origin.count("/s"), 2);
    assert_eq!(origin.inm_count("/s"), 1, "one conditional request");
    assert_eq!(
        x_cache(&edge, path).await,
        "HIT",
        "fresh again after the 304"
    );
    assert_eq!(origin.count("/s"), 2);
}

#[tokio::test]
async fn a_soft_purged_copy_stands_in_when_the_origin_fails() {
    // stale-if-error counts from the soft purge on, not from the original expiry.
    let origin = FlakyOrigin::start("max-age=600, stale-if-error=60").await;
    let edge = TestEdge::from_toml(&origin.edge_toml_with("stale_on_error = \"0s\"")).await;
    let api = admin(&edge);
    let body = edge.get("/r").send().await.unwrap().text().await.unwrap();
    edge.advance(std::time::Duration::from_secs(300));
    let url = format!("http://{}/r", edge.addr);
    assert_eq!(purge(&api, json!({ "url": url, "soft": true })).await, 1);
    origin.set_status(500);
    let r = edge.get("/r").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        header(&r, "cache-status").contains("fwd-status=500"),
        "{}",
        header(&r, "cache-status")
    );
    assert_eq!(r.text().await.unwrap(), body);
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn a_prefix_purge_removes_the_urls_under_it() {
    let (_origin, edge, api) = crate::setup().await;
    for p in [
        "/dir/a?cc=max-age%3D60",
        "/dir/b/c?cc=max-age%3D60",
        "/dirt?cc=max-age%3D60",
        "/x?cc=max-age%3D60",
    ] {
        edge.get(p).send().await.unwrap();
    }
    let n = purge(&api, json!({ "prefix": format!("{}/dir/", edge.url) })).await;
    assert_eq!(n, 2);
    assert_eq!(x_cache(&edge, "/dir/a?cc=max-age%3D60").await, "MISS");
    assert_eq!(x_cache(&edge, "/dir/b/c?cc=max-age%3D60").await, "MISS");
    assert_eq!(x_cache(&edge, "/dirt?cc=max-age%3D60").await, "HIT");
    assert_eq!(x_cache(&edge, "/x?cc=max-age%3D60").await, "HIT");
}

#[tokio::test]
async fn a_tag_purge_outdates_every_object_carrying_it() {
    let (_origin, edge, api) = crate::setup().await;
    let tagged = |i: usize, tags: &str| format!("/t{i}?cc=max-age%3D60&hdr={tags}");
    // Surrogate-Key is space separated, Cache-Tag comma separated.
    let mut red = Vec::new();
    let mut other = Vec::new();
    for i in 0..300 {
        let p = match i % 3 {
            0 => tagged(i, "Surrogate-Key:red%20blue"),
            1 => tagged(i, "Cache-Tag:green,red"),
            _ => tagged(i, "Cache-Tag:green"),
        };
        let r = edge.get(&p).send().await.unwrap();
        assert!(
            r.headers().get("cache-tag").is_none() && r.headers().get("surrogate-key").is_none()
        );
        if i % 3 == 2 {
            other.push(p)
        } else {
            red.push(p)
        }
    }
    let n = purge(&api, json!({ "tag": "red" })).await;
    assert_eq!(n, 200);
    for p in red.iter().take(20) {
        assert_eq!(x_cache(&edge, p).await, "MISS", "{p}");
    }
    for p in other.iter().take(20) {
        assert_eq!(x_cache(&edge, p).await, "HIT", "{p}");
    }
    // A soft tag purge marks them stale: they come back through the origin.
    let n = purge(&api, json!({ "tag": "green", "soft": true })).await;
    // The 100 green-only ones, and the 10 red-and-green ones among the 20 stored again above.
    assert_eq!(n, 110);
    assert_ne!(x_cache(&edge, &other[0]).await, "HIT");
}

#[tokio::test]
async fn the_purge_method_works_from_purge_from_addresses_only() {
    let origin = TestOrigin::start().await;
    let purge_method = reqwest::Method::from_bytes(b"PURGE").unwrap();
    // By default loopback may purge: the test client is on 127.0.0.1.
    let edge = TestEdge::in_front_of(&origin, "").await;
    let path = "/m?cc=max-age%3D60";
    edge.get(path).send().await.unwrap();
    let r = edge
        .request(purge_method.clone(), path)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{\"purged\": 1}\n");
    assert_eq!(x_cache(&edge, path).await, "MISS");
    // Anyone outside purge_from gets 405, and the object stays.
    let edge = TestEdge::in_front_of(
        &origin,
        "[admin]\npurge_from = [\"10.0.0.0/8\", \"2001:db8::/32\"]",
    )
    .await;
    edge.get(path).send().await.unwrap();
    let r = edge.request(purge_method, path).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(header(&r, "allow").contains("GET"));
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("not allowed from this address")
    );
    assert_eq!(x_cache(&edge, path).await, "HIT");
    assert_eq!(origin.count("/m"), 3);
}

#[tokio::test]
async fn surrogate_keys_on_a_304_stay_at_the_edge_and_the_copy_keeps_its_tags() {
    let (_origin, edge, api) = crate::setup().await;
    let path = "/k?etag=1&cc=max-age%3D1&hdr=Surrogate-Key:kept";
    edge.get(path).send().await.unwrap();
    edge.advance(std::time::Duration::from_secs(2));
    let r = edge.get(path).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "REVALIDATED");
    assert!(r.headers().get("surrogate-key").is_none());
    let r = edge.get(path).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert!(
        r.headers().get("surrogate-key").is_none(),
        "not stored from the 304"
    );
    assert_eq!(purge(&api, json!({ "tag": "kept" })).await, 1);
    assert_eq!(x_cache(&edge, path).await, "MISS");
}
