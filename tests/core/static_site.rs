//! The static directory origin behind the cache: the bundled demo site.

use crate::common::{TestEdge, header, raw_request};
use std::path::PathBuf;

async fn demo_edge() -> TestEdge {
    demo_edge_with(|_| {}).await
}

/// The demo site, with `tweak` applied to its config.
async fn demo_edge_with(tweak: impl FnOnce(&mut edgecache::config::Config)) -> TestEdge {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static");
    let mut cfg = edgecache::config::Config::default()
        .apply(&Default::default(), || root)
        .unwrap();
    // The demo's database is covered by tests/cache_aside, on temporary files.
    cfg.database = None;
    cfg.routes.clear();
    tweak(&mut cfg);
    TestEdge::start(cfg).await
}

#[tokio::test]
async fn the_home_page_is_html_and_cached() {
    let edge = demo_edge().await;
    let r = edge.get("/").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/html"));
    assert_eq!(header(&r, "x-cache"), "MISS");
    assert!(!header(&r, "etag").is_empty() && !header(&r, "last-modified").is_empty());
    assert_eq!(header(&r, "cache-control"), "public, max-age=60");
    let body = r.text().await.unwrap();
    assert!(body.contains("edgecache demo"));
    let r = edge.get("/").send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(r.text().await.unwrap(), body);
}

#[tokio::test]
async fn assets_have_types_and_fingerprinted_ones_are_immutable() {
    let edge = demo_edge().await;
    let index = edge.get("/").send().await.unwrap().text().await.unwrap();
    let css = index
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".css"))
        .expect("home page links a fingerprinted stylesheet")
        .to_string();
    let r = edge.get(&css).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/css; charset=utf-8");
    assert_eq!(
        header(&r, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    for (path, ty) in [
        ("/images/logo.png", "image/png"),
        ("/favicon.svg", "image/svg+xml; charset=utf-8"),
        ("/robots.txt", "text/plain; charset=utf-8"),
    ] {
        let r = edge.get(path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "content-type"), ty, "{path}");
    }
    let png = edge
        .get("/images/logo.png")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[tokio::test]
async fn directories_redirect_then_serve_their_index() {
    let edge = demo_edge().await;
    let r = edge.get("/docs").send().await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(header(&r, "location"), "/docs/");
    let r = edge.get("/docs/").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/html"));
}

#[tokio::test]
async fn missing_files_are_404_and_briefly_cached() {
    let edge = demo_edge().await;
    let r = edge.get("/no/such/file.txt").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "x-cache"), "MISS");
    let r = edge.get("/no/such/file.txt").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "x-cache"), "HIT");
}

#[tokio::test]
async fn path_traversal_is_refused_in_every_spelling() {
    let edge = demo_edge().await;
    for target in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/docs/%2E%2E/%2E%2E/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/%252e%252e/etc/passwd",
        "/.git/config",
        "/%00",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let res = raw_request(edge.addr, req.as_bytes()).await;
        let status: u16 = res.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "{target} answered {status}");
        assert!(!res.contains("root:"), "{target} leaked a system file");
    }
}

#[tokio::test]
async fn the_static_origin_answers_revalidation_with_304() {
    let edge = demo_edge().await;
    let r = edge.get("/about.html").send().await.unwrap();
    let etag = header(&r, "etag");
    let r = edge
        .get("/about.html")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn unsafe_methods_on_a_static_site_get_405() {
    let edge = demo_edge().await;
    let r = edge
        .request(reqwest::Method::POST, "/")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(header(&r, "x-cache"), "BYPASS");
}

#[tokio::test]
async fn a_file_too_large_to_store_is_served_in_ranges_by_the_directory() {
    let edge =
        demo_edge_with(|c| c.cache.max_object_size = Some(edgecache::config::ByteSize(64))).await;
    let full = edge.get("/").send().await.unwrap();
    assert!(header(&full, "cache-status").contains("detail=too-large"));
    let full = full.bytes().await.unwrap();
    let r = edge
        .get("/")
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes 10-19/{}", full.len())
    );
    assert_eq!(r.bytes().await.unwrap(), full.slice(10..20));
}
