//! The generic engine, used as other Rust code would use it (no HTTP routes): `get_or_load`
//! with coalescing, negative TTL, stale-while-revalidate, stale-if-error and TTL jitter.

use crate::backend::{Backend, engine, engine_on};
use bytes::Bytes;
use edgecache::cache::{
    aside::{AsideError, CacheAside, Fetched, LoadOptions},
    status::{Outcome, StaleReason},
};
use edgecache::clock::Clock;
use std::{
    collections::BTreeSet,
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

on_both_backends!(a_database_row_is_loaded_once_then_served_from_the_cache);

type Loaded = Result<Option<Bytes>, io::Error>;

fn tags() -> Vec<String> {
    vec!["t".into()]
}

/// One `get_or_load` whose loader counts its calls and then yields `result`.
async fn fetch(
    a: &CacheAside,
    key: &str,
    opts: &LoadOptions,
    calls: &Arc<AtomicUsize>,
    result: Loaded,
) -> Result<Fetched, AsideError> {
    let c = calls.clone();
    a.get_or_load(key, &tags(), opts, move || async move {
        c.fetch_add(1, SeqCst);
        result
    })
    .await
}

fn some(s: &'static str) -> Loaded {
    Ok(Some(Bytes::from_static(s.as_bytes())))
}

fn down() -> Loaded {
    Err(io::Error::other("database down"))
}

fn value(f: &Fetched) -> Option<&[u8]> {
    f.value.as_deref()
}

/// One second fresh, no jitter: expiry is exact.
fn short(f: impl FnOnce(&mut LoadOptions)) -> LoadOptions {
    let mut o = LoadOptions {
        ttl: Duration::from_secs(1),
        jitter: 0.0,
        ..Default::default()
    };
    f(&mut o);
    o
}

async fn a_database_row_is_loaded_once_then_served_from_the_cache(b: Backend) {
    let a = engine();
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = LoadOptions::default();
    for (id, expected) in [(2, Some(&b"products 2"[..])), (9, None)] {
        for round in 0..3 {
            let (reader, c) = (b.name_reader(), calls.clone());
            let key = format!("product:{id}");
            let f = a
                .get_or_load(
                    &key,
                    std::slice::from_ref(&key),
                    &opts,
                    move || async move {
                        c.fetch_add(1, SeqCst);
                        reader.name(id).await
                    },
                )
                .await
                .unwrap();
            assert_eq!(value(&f), expected, "{key}");
            let want = if round == 0 { "MISS" } else { "HIT" };
            assert_eq!(f.status.outcome.x_cache(), want, "{key} round {round}");
        }
    }
    assert_eq!(calls.load(SeqCst), 2, "one query per key, found or not");
}

#[tokio::test]
async fn concurrent_callers_of_a_cold_key_share_one_load() {
    let a = engine();
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = LoadOptions::default();
    let all = (0..50).map(|_| {
        let (a, c) = (a.clone(), calls.clone());
        async move {
            a.get_or_load("cold", &tags(), &opts, move || async move {
                c.fetch_add(1, SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                some("v")
            })
            .await
            .unwrap()
        }
    });
    let results = futures_util::future::join_all(all).await;
    assert_eq!(calls.load(SeqCst), 1);
    assert!(results.iter().all(|f| value(f) == Some(b"v")));
    let collapsed = results.iter().filter(|f| f.status.collapsed).count();
    assert_eq!(collapsed, 49, "everyone but the leader shared its load");
    assert!(results.iter().all(|f| f.status.stored));
}

#[tokio::test(start_paused = true)]
async fn a_hit_does_not_call_the_loader_and_reports_the_ttl_left() {
    let a = engine_on(Clock::tokio());
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = short(|o| o.ttl = Duration::from_secs(30));
    let f = fetch(&a, "k", &opts, &calls, some("v")).await.unwrap();
    assert_eq!(f.status.render(), "edgecache; fwd=uri-miss; stored; ttl=30");
    tokio::time::advance(Duration::from_millis(1500)).await;
    let f = fetch(&a, "k", &opts, &calls, some("other")).await.unwrap();
    assert_eq!(
        (value(&f), f.status.outcome),
        (Some(&b"v"[..]), Outcome::Hit)
    );
    assert_eq!(
        f.status.render(),
        "edgecache; hit; ttl=28",
        "1.5 s into 30 s"
    );
    assert_eq!(calls.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn not_found_is_cached_for_the_negative_ttl_only() {
    let a = engine_on(Clock::tokio());
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = short(|o| {
        o.ttl = Duration::from_secs(60);
        o.negative_ttl = Duration::from_secs(1);
    });
    let f = fetch(&a, "gone", &opts, &calls, Ok(None)).await.unwrap();
    assert_eq!(
        (value(&f), f.status.stored, f.status.ttl),
        (None, true, Some(1))
    );
    let f = fetch(&a, "gone", &opts, &calls, some("back"))
        .await
        .unwrap();
    assert_eq!((value(&f), f.status.outcome), (None, Outcome::Hit));
    assert_eq!(calls.load(SeqCst), 1);
    tokio::time::advance(Duration::from_millis(1100)).await;
    let f = fetch(&a, "gone", &opts, &calls, some("back"))
        .await
        .unwrap();
    assert_eq!(value(&f), Some(&b"back"[..]));
    assert_eq!(f.status.ttl, Some(60), "a found value gets the full TTL");
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let a = engine_on(Clock::tokio());
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = short(|o| o.stale_while_revalidate = Duration::from_secs(60));
    fetch(&a, "k", &opts, &calls, some("v1")).await.unwrap();
    tokio::time::advance(Duration::from_millis(1100)).await;

    // The refresh is held until released, so the stale answers below cannot be its result.
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let c = calls.clone();
    let f = a
        .get_or_load("k", &tags(), &opts, move || async move {
            c.fetch_add(1, SeqCst);
            let _ = held.await;
            some("v2")
        })
        .await
        .unwrap();
    assert_eq!(value(&f), Some(&b"v1"[..]));
    assert_eq!(
        f.status.outcome,
        Outcome::Stale(StaleReason::WhileRevalidate)
    );
    assert!(f.status.render().contains("detail=stale-while-revalidate"));
    // Meanwhile every caller gets the stale value and no second refresh starts.
    for _ in 0..3 {
        let f = fetch(&a, "k", &opts, &calls, some("never")).await.unwrap();
        assert_eq!(value(&f), Some(&b"v1"[..]));
        assert_eq!(f.status.outcome.x_cache(), "STALE");
    }
    release.send(()).unwrap();
    let mut last = None;
    for _ in 0..200 {
        let f = fetch(&a, "k", &opts, &calls, some("never")).await.unwrap();
        if f.status.outcome == Outcome::Hit {
            last = Some(f);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = last.expect("the background refresh was stored");
    assert_eq!(value(&last), Some(&b"v2"[..]));
    assert_eq!(calls.load(SeqCst), 2, "one load, one background refresh");
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_stands_in_for_a_failing_loader() {
    let a = engine_on(Clock::tokio());
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = short(|o| o.stale_if_error = Duration::from_secs(60));
    fetch(&a, "k", &opts, &calls, some("v1")).await.unwrap();
    tokio::time::advance(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        let f = fetch(&a, "k", &opts, &calls, down()).await.unwrap();
        assert_eq!(value(&f), Some(&b"v1"[..]));
        assert_eq!(f.status.outcome, Outcome::Stale(StaleReason::IfError));
    }
    // Each request still tries the loader: the stale value stands in, it does not refresh.
    assert_eq!(calls.load(SeqCst), 3);
    let f = fetch(&a, "k", &opts, &calls, some("v2")).await.unwrap();
    assert_eq!(
        (value(&f), f.status.outcome),
        (Some(&b"v2"[..]), Outcome::Expired)
    );
}

#[tokio::test(start_paused = true)]
async fn without_stale_if_error_the_loaders_error_is_returned_and_not_cached() {
    let a = engine_on(Clock::tokio());
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = short(|_| {});
    fetch(&a, "k", &opts, &calls, some("v1")).await.unwrap();
    tokio::time::advance(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        match fetch(&a, "k", &opts, &calls, down()).await {
            Err(AsideError::Load(e)) => {
                let io = e
                    .downcast_ref::<io::Error>()
                    .expect("the loader's own error");
                assert_eq!(io.to_string(), "database down");
            }
            other => panic!("expected the load error, got {other:?}"),
        }
    }
    assert_eq!(calls.load(SeqCst), 3, "a failure is not cached");
    let f = fetch(&a, "k", &opts, &calls, some("v2")).await.unwrap();
    assert_eq!(value(&f), Some(&b"v2"[..]));
}

#[tokio::test]
async fn ttl_jitter_gives_keys_different_ttls_never_longer() {
    let a = engine();
    let calls = Arc::new(AtomicUsize::new(0));
    let ttls = |jitter: f64| {
        let (a, calls) = (a.clone(), calls.clone());
        async move {
            let opts = short(|o| {
                o.ttl = Duration::from_secs(10);
                o.jitter = jitter;
            });
            let mut out = Vec::new();
            for i in 0..20 {
                let key = format!("j{jitter}-{i}");
                let f = fetch(&a, &key, &opts, &calls, some("v")).await.unwrap();
                let t = f.status.ttl.unwrap();
                assert!(f.status.render().ends_with(&format!("ttl={t}")));
                out.push(t);
            }
            out
        }
    };
    let spread = ttls(0.5).await;
    assert!(spread.iter().all(|t| (5..=10).contains(t)), "{spread:?}");
    let distinct: BTreeSet<_> = spread.iter().collect();
    assert!(
        distinct.len() > 1,
        "all 20 keys got the same TTL: {spread:?}"
    );
    assert_eq!(ttls(0.0).await, vec![10; 20], "no jitter, no spread");
}

#[tokio::test]
async fn invalidation_reaches_only_values_carrying_the_tag() {
    let a = engine();
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = LoadOptions::default();
    let get = |key: &'static str, tag: &'static str| {
        let (a, c) = (a.clone(), calls.clone());
        async move {
            a.get_or_load(key, &[tag.to_string()], &opts, move || async move {
                c.fetch_add(1, SeqCst);
                some(key)
            })
            .await
            .unwrap()
        }
    };
    get("a", "ta").await;
    get("b", "tb").await;
    a.invalidate(&["ta", "unrelated"]);
    assert_eq!(get("b", "tb").await.status.outcome, Outcome::Hit);
    assert_eq!(calls.load(SeqCst), 2);
    let f = get("a", "ta").await;
    assert_eq!(f.status.outcome.x_cache(), "MISS");
    assert_eq!(calls.load(SeqCst), 3);
}
