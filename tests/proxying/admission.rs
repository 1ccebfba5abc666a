//! Second-hit admission (issue 20): once the cache has filled, an object's first miss is
//! served but not stored (`Cache-Status: ...; detail=admission`), its second is stored; a site
//! with `admission = "always"` stores every storable miss.

use crate::common::{TestEdge, TestOrigin, header};

/// An edge with a 1 MiB store in front of `origin`, its one site's admission `admission`.
async fn edge(origin: &TestOrigin, admission: &str) -> TestEdge {
    TestEdge::from_toml_with_clock(
        &format!(
            "[cache]\nmax_memory = \"1MiB\"\n[[site]]\nname = \"t\"\nhosts = [\"*\"]\n\
             origin = \"{}\"\nadmission = \"{admission}\"\n",
            origin.url
        ),
        origin.clock(),
    )
    .await
}

/// Fills the store past its budget with 60 KB objects, each stored on its first miss (nothing
/// is refused before the cache first fills).
async fn fill(edge: &TestEdge) {
    for i in 0..40 {
        let r = edge
            .get(&format!("/fill/{i}?size=60000&cc=max-age%3D600"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        if i < 5 {
            assert!(
                header(&r, "cache-status").contains("stored"),
                "before the cache fills"
            );
        }
        r.bytes().await.unwrap();
    }
}

/// `edgecache_admission_refused_total` of `edge`'s `/metrics`.
async fn refused(edge: &TestEdge) -> u64 {
    let api = edgecache::admin::app(edgecache::admin::AdminState::new(edge.state.clone(), None));
    let req = http::Request::builder()
        .uri("/metrics")
        .header("host", "localhost")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(api, req).await.unwrap();
    let text = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix("edgecache_admission_refused_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the counter is exported")
}

#[tokio::test]
async fn once_the_cache_is_full_an_object_is_stored_on_its_second_miss() {
    let origin = TestOrigin::start().await;
    let edge = edge(&origin, "second-hit").await;
    fill(&edge).await;
    let cold = "/cold?size=2000&cc=max-age%3D600";
    let before = refused(&edge).await;
    let first = edge.get(cold).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let status = header(&first, "cache-status");
    assert!(
        status.contains("fwd=uri-miss") && status.contains("detail=admission"),
        "{status}"
    );
    assert!(!status.contains("stored"), "{status}");
    assert_eq!(first.bytes().await.unwrap().len(), 2000, "served in full");
    let second = edge.get(cold).send().await.unwrap();
    assert!(
        header(&second, "cache-status").contains("stored"),
        "{}",
        header(&second, "cache-status")
    );
    second.bytes().await.unwrap();
    let third = edge.get(cold).send().await.unwrap();
    assert_eq!(header(&third, "x-cache"), "HIT");
    assert_eq!(origin.count("/cold"), 2, "two misses, then the store");
    assert_eq!(refused(&edge).await, before + 1, "the one refusal counted");
}

#[tokio::test]
async fn a_site_that_admits_always_stores_the_first_miss() {
    let origin = TestOrigin::start().await;
    let edge = edge(&origin, "always").await;
    fill(&edge).await;
    let cold = "/cold?size=2000&cc=max-age%3D600";
    let first = edge.get(cold).send().await.unwrap();
    assert!(
        header(&first, "cache-status").contains("stored"),
        "{}",
        header(&first, "cache-status")
    );
    first.bytes().await.unwrap();
    assert_eq!(
        header(&edge.get(cold).send().await.unwrap(), "x-cache"),
        "HIT"
    );
    assert_eq!(origin.count("/cold"), 1);
}

#[test]
fn an_unknown_admission_is_refused_by_name() {
    let e = edgecache::config::Config::from_toml(
        "[[site]]\nname = \"t\"\nhosts = [\"*\"]\norigin = \"http://127.0.0.1:9\"\nadmission = \"sometimes\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("site[0].admission"), "{e}");
}
