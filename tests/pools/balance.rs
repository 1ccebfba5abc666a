//! How each balancing mode shares requests out, and backups.

use crate::common::{TestEdge, TestOrigin};
use crate::flaky::{FlakyOrigin, SILENT};
use crate::{pool_toml, server};
use std::time::Duration;

#[tokio::test]
async fn round_robin_follows_the_weights() {
    let (a, b) = (TestOrigin::start().await, TestOrigin::start().await);
    let toml = pool_toml(&[server(&a.url, "weight = 3"), server(&b.url, "")], "");
    let edge = TestEdge::from_toml(&toml).await;
    for _ in 0..400 {
        let r = edge.get("/lb?cc=no-store").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // Interleaved weighted round-robin is exact over whole turns.
    assert_eq!((a.count("/lb"), b.count("/lb")), (300, 100));
}

#[tokio::test]
async fn least_outstanding_sends_new_requests_away_from_a_server_that_holds_them() {
    // `a` takes requests and never answers: each one it is given stays outstanding.
    let a = FlakyOrigin::start("no-store").await;
    a.set_status(SILENT);
    let b = TestOrigin::start().await;
    let toml = pool_toml(
        &[server(&a.url, ""), server(&b.url, "")],
        "balance = \"least_outstanding\"",
    );
    let toml = format!("{toml}[origin]\nfirst_byte_timeout = \"30s\"\n");
    let edge = TestEdge::from_toml(&toml).await;
    let mut hung = Vec::new();
    for i in 0..20 {
        let before = a.requests() + b.total();
        let req = edge.get(&format!("/lo{i}?cc=no-store")).send();
        hung.push(tokio::spawn(req));
        // Wait (bounded) until the request reached a server, so the next one sees its load.
        for _ in 0..200 {
            if a.requests() + b.total() > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(a.requests() + b.total(), 20);
    assert!(a.requests() <= 2, "a holds {} of 20", a.requests());
    for h in hung {
        h.abort();
    }
}

#[tokio::test]
async fn consistent_hashing_keeps_a_key_on_one_server_and_moves_only_a_removed_ones() {
    let origins = [
        TestOrigin::start().await,
        TestOrigin::start().await,
        TestOrigin::start().await,
    ];
    let servers: Vec<String> = origins.iter().map(|o| server(&o.url, "")).collect();
    let keys = "balance = \"consistent_hash\"";
    let edge = TestEdge::from_toml(&pool_toml(&servers, keys)).await;
    let owner =
        |path: &str| -> Vec<usize> { (0..3).filter(|&i| origins[i].count(path) > 0).collect() };
    let paths: Vec<String> = (0..60).map(|k| format!("/ch/{k}")).collect();
    for p in &paths {
        for _ in 0..3 {
            let r = edge
                .get(&format!("{p}?cc=no-store"))
                .header("host", "shop.test");
            r.send().await.unwrap();
        }
    }
    let mut first = Vec::new();
    for p in &paths {
        let o = owner(p);
        assert_eq!(o.len(), 1, "{p} went to {o:?}");
        assert_eq!(origins[o[0]].count(p), 3);
        first.push(o[0]);
    }
    for i in 0..3 {
        let share = first.iter().filter(|&&f| f == i).count();
        assert!(
            (8..=32).contains(&share),
            "server {i} owns {share} of 60 keys"
        );
    }
    // Without the third server (same URLs for the other two), only its keys move.
    let edge2 = TestEdge::from_toml(&pool_toml(&servers[..2], keys)).await;
    for (p, &was) in paths.iter().zip(&first) {
        let r = edge2
            .get(&format!("{p}?cc=no-store"))
            .header("host", "shop.test");
        r.send().await.unwrap();
        if was != 2 {
            assert_eq!(origins[was].count(p), 4, "{p} moved off server {was}");
        }
    }
}

#[tokio::test]
async fn backups_serve_only_while_every_primary_is_down() {
    let spare = TestOrigin::start().await;
    let mut a = FlakyOrigin::start("no-store").await;
    let mut b = FlakyOrigin::start("no-store").await;
    let toml = pool_toml(
        &[
            server(&a.url, ""),
            server(&b.url, ""),
            server(&spare.url, "backup = true"),
        ],
        "eject_after = 1",
    );
    let edge = TestEdge::from_toml(&toml).await;
    for _ in 0..10 {
        edge.get("/b").send().await.unwrap();
    }
    assert_eq!(spare.count("/b"), 0, "primaries are up");
    assert_eq!(a.requests() + b.requests(), 10);
    // Both primaries gone: once they are ejected the backup takes every request (the first
    // request may meet both refusing, with one retry allowed).
    a.stop().await;
    b.stop().await;
    let mut ok = 0;
    for _ in 0..10 {
        let r = edge.get("/b?cc=no-store").send().await.unwrap();
        ok += usize::from(r.status() == 200);
    }
    assert!(ok >= 9, "{ok} of 10 answered");
    assert!(spare.count("/b") >= 9);
}
