//! The admin API's refusals, inspection and stats.

use crate::common::{TestEdge, TestOrigin, header};
use crate::{TOKEN, admin, answer, call};
use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::json;

#[tokio::test]
async fn every_refusal_is_a_4xx_with_a_json_error() {
    let (origin, edge, api) = crate::setup().await;
    let purge = |auth: Option<&str>, ct: Option<&str>, body: &str| {
        let mut r = Request::builder().method("POST").uri("/purge");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        if let Some(c) = ct {
            r = r.header("content-type", c);
        }
        r.body(Body::from(body.to_string())).unwrap()
    };
    let url = format!("{}/x", edge.url);
    let good = json!({ "url": url }).to_string();
    let bearer = format!("Bearer {TOKEN}");
    for (req, status, says) in [
        (
            purge(None, Some("application/json"), &good),
            401,
            "token is required",
        ),
        (
            purge(
                Some("Bearer nope-nope-nope-nope"),
                Some("application/json"),
                &good,
            ),
            403,
            "wrong token",
        ),
        (
            purge(
                Some(&format!("Basic {TOKEN}")),
                Some("application/json"),
                &good,
            ),
            401,
            "token is required",
        ),
        (purge(Some(&bearer), None, &good), 415, "application/json"),
        (
            purge(Some(&bearer), Some("application/json"), "{\"url\":"),
            400,
            "bad JSON",
        ),
        (
            purge(Some(&bearer), Some("application/json"), "{\"uri\":\"x\"}"),
            400,
            "unknown field",
        ),
        (
            purge(Some(&bearer), Some("application/json"), "{}"),
            422,
            "exactly one",
        ),
        (
            purge(
                Some(&bearer),
                Some("application/json"),
                &json!({"url": url, "tag": "t"}).to_string(),
            ),
            422,
            "exactly one",
        ),
        (
            purge(
                Some(&bearer),
                Some("application/json"),
                "{\"url\":\"ftp://x/y\"}",
            ),
            422,
            "url:",
        ),
    ] {
        let (got, body) = answer(&api, req).await;
        assert_eq!(got.as_u16(), status, "{body}");
        assert!(body["error"].as_str().unwrap().contains(says), "{body}");
    }
    // A site the edge does not serve.
    let toml = format!(
        "[[site]]\nname = \"only\"\nhosts = [\"shop.example\"]\norigin = \"{}\"\n",
        origin.url
    );
    let edge = TestEdge::from_toml(&toml).await;
    let (status, body) = call(
        &admin(&edge),
        "POST",
        "/purge",
        Some(json!({"url": "http://other.example/x"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no site serves other.example/x")
    );
    let (status, _) = call(&admin(&edge), "GET", "/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(origin.total(), 0);
}

#[tokio::test]
async fn cache_shows_each_variant_and_stats_count_them() {
    let (_origin, edge, api) = crate::setup().await;
    let path = "/v?vary=Accept-Language&cc=max-age%3D60&hdr=Surrogate-Key:red%20blue";
    for lang in ["en", "fr"] {
        let r = edge
            .get(path)
            .header("accept-language", lang)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r, "x-cache"), "MISS");
        assert!(
            r.headers().get("surrogate-key").is_none(),
            "surrogate keys stay at the edge"
        );
    }
    let url = format!("{}{path}", edge.url);
    let q = format!("/cache?url={}", percent(&url));
    let (status, body) = call(&api, "GET", &q, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cached"], true);
    let variants = body["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    let langs: Vec<&str> = variants
        .iter()
        .map(|v| v["vary"]["accept-language"].as_str().unwrap())
        .collect();
    assert!(langs.contains(&"en") && langs.contains(&"fr"), "{langs:?}");
    assert_eq!(variants[0]["tags"], json!(["blue", "red"]));
    assert!(variants[0]["ttl"].as_i64().unwrap() > 50);
    assert_eq!(
        variants[0]["headers"]["cache-control"],
        json!(["max-age=60"])
    );
    let (_, stats) = call(&api, "GET", "/stats", None).await;
    assert_eq!(stats["entries"], 1);
    assert!(stats["bytes"].as_u64().unwrap() > 0);
    assert_eq!(stats["budget"], 256 * 1024 * 1024);
    let (_, none) = call(
        &api,
        "GET",
        &format!("/cache?url={}", percent(&format!("{}/never", edge.url))),
        None,
    )
    .await;
    assert_eq!(none["cached"], false);
}

/// Percent-encodes a URL for a query string.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn without_a_token_only_requests_for_localhost_are_answered() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let open = edgecache::admin::app(edgecache::admin::AdminState::new(edge.state.clone(), None));
    let stats = |host: &str| {
        Request::builder()
            .uri("/stats")
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    };
    for host in ["127.0.0.1:9090", "localhost:9090", "[::1]:9090"] {
        let (status, _) = answer(&open, stats(host)).await;
        assert_eq!(status, StatusCode::OK, "{host}");
    }
    // A page that rebinds its own name to 127.0.0.1 sends that name.
    let (status, body) = answer(&open, stats("attacker.example:9090")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"].as_str().unwrap().contains("localhost"));
    // The bearer scheme is case-insensitive (RFC 9110 section 11.1).
    let r = Request::builder()
        .uri("/stats")
        .header("authorization", format!("bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let (status, _) = answer(&admin(&edge), r).await;
    assert_eq!(status, StatusCode::OK);
}
