//! The classic cache-aside race: a read loads the old row, a write commits and invalidates, and
//! then the read finishes. Its old value must not land in the cache after the invalidation.
//! The interleaving is forced: the loader reads the real database, then waits for a signal.

use crate::backend::{Backend, engine, get, put, queries};
use crate::routes::slow_edge;
use edgecache::cache::{
    aside::{CacheAside, Fetched, LoadOptions},
    status::Outcome,
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};
use tokio::sync::oneshot;

on_both_backends!(
    a_load_that_read_before_a_write_is_not_stored_after_its_invalidation,
    without_the_invalidation_the_pre_write_load_would_be_cached,
    a_caller_that_joins_a_pre_write_load_after_the_write_loads_again,
    a_slow_http_read_during_a_write_does_not_restore_the_old_row,
);

const KEY: &str = "product:1";

fn tags() -> Vec<String> {
    vec!["product:1".into()]
}

fn opts() -> LoadOptions {
    LoadOptions {
        ttl: Duration::from_secs(60),
        jitter: 0.0,
        ..Default::default()
    }
}

/// Starts a `get_or_load` whose loader reads product 1 from the database and then holds its
/// result until `release` fires. Returns once the loader has read the row.
async fn start_held_load(
    aside: &CacheAside,
    b: &Backend,
    calls: &Arc<AtomicUsize>,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<Fetched>) {
    let (read_tx, read_rx) = oneshot::channel();
    let (release, held) = oneshot::channel::<()>();
    let (a, reader, c) = (aside.clone(), b.name_reader(), calls.clone());
    let task = tokio::spawn(async move {
        let loader = move || async move {
            c.fetch_add(1, SeqCst);
            let row = reader.name(1).await;
            let _ = read_tx.send(());
            let _ = held.await;
            row
        };
        a.get_or_load(KEY, &tags(), &opts(), loader).await.unwrap()
    });
    read_rx.await.expect("the loader read the row");
    (release, task)
}

/// An ordinary read of product 1 through the engine, counting loader calls.
async fn read(aside: &CacheAside, b: &Backend, calls: &Arc<AtomicUsize>) -> Fetched {
    let (reader, c) = (b.name_reader(), calls.clone());
    let loader = move || async move {
        c.fetch_add(1, SeqCst);
        reader.name(1).await
    };
    aside
        .get_or_load(KEY, &tags(), &opts(), loader)
        .await
        .unwrap()
}

fn text(f: &Fetched) -> &str {
    std::str::from_utf8(f.value.as_deref().unwrap_or(b"<none>")).unwrap()
}

/// read old row -> write + (optional) invalidate -> release the read -> read again.
async fn interleave(b: &Backend, invalidate: bool) -> (Fetched, Fetched, usize) {
    let aside = engine();
    let calls = Arc::new(AtomicUsize::new(0));
    let (release, slow) = start_held_load(&aside, b, &calls).await;
    b.set_name(1, "new").await;
    if invalidate {
        aside.invalidate(&tags());
    }
    release.send(()).unwrap();
    let first = slow.await.unwrap();
    let second = read(&aside, b, &calls).await;
    (first, second, calls.load(SeqCst))
}

async fn a_load_that_read_before_a_write_is_not_stored_after_its_invalidation(b: Backend) {
    let (first, second, calls) = interleave(&b, true).await;
    // The held read answers its own caller (it began before the write) but stores nothing.
    assert_eq!(text(&first), "products 1");
    assert!(!first.status.stored, "{}", first.status.render());
    // The next read loads again and sees the write.
    assert_eq!(text(&second), "new");
    assert_eq!(second.status.outcome.x_cache(), "MISS");
    assert_eq!(calls, 2);
}

/// The control for the test above: the same interleaving minus `invalidate` caches the old
/// row, so that test fails if invalidation does not guard the store.
async fn without_the_invalidation_the_pre_write_load_would_be_cached(b: Backend) {
    let (first, second, calls) = interleave(&b, false).await;
    assert!(first.status.stored);
    assert_eq!(text(&second), "products 1", "the old row, from the cache");
    assert_eq!(second.status.outcome, Outcome::Hit);
    assert_eq!(calls, 1);
}

async fn a_caller_that_joins_a_pre_write_load_after_the_write_loads_again(b: Backend) {
    let aside = engine();
    let calls = Arc::new(AtomicUsize::new(0));
    let (release, slow) = start_held_load(&aside, &b, &calls).await;
    b.set_name(1, "new").await;
    aside.invalidate(&tags());
    // The write has returned. A new caller now finds the old load still running and joins it.
    let late = {
        let (aside, b_reader, c) = (aside.clone(), b.name_reader(), calls.clone());
        tokio::spawn(async move {
            let loader = move || async move {
                c.fetch_add(1, SeqCst);
                b_reader.name(1).await
            };
            aside
                .get_or_load(KEY, &tags(), &opts(), loader)
                .await
                .unwrap()
        })
    };
    // On this single-threaded runtime, yielding lets the new caller run up to its wait.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    assert_eq!(text(&slow.await.unwrap()), "products 1");
    let late = late.await.unwrap();
    assert_eq!(text(&late), "new", "{}", late.status.render());
    assert_eq!(calls.load(SeqCst), 2, "the late caller loaded for itself");
    let again = read(&aside, &b, &calls).await;
    assert_eq!((text(&again), again.status.outcome), ("new", Outcome::Hit));
}

/// The same race end to end: a slow GET is in flight while a PUT commits.
async fn a_slow_http_read_during_a_write_does_not_restore_the_old_row(b: Backend) {
    let (_origin, edge) = slow_edge(&b).await;
    get(&edge, "/api/products/2").await; // opens a pooled connection
    let before = queries(&edge);
    let in_flight = get(&edge, "/api/slow/1");
    let write_then_read = async {
        // Wait until the slow read has been sent to the database, then a little more.
        for _ in 0..500 {
            if queries(&edge) > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let w = put(&edge, 1, "new", 1).await;
        let after = get(&edge, "/api/slow/1").await;
        (w, after)
    };
    let (old, (w, after)) = tokio::join!(in_flight, write_then_read);
    assert_eq!(w.status, 200);
    // The slow read's statement started before the write: it saw the old row.
    assert_eq!(
        old.json["name"], "products 1",
        "race not exercised: {old:?}"
    );
    assert_eq!(after.json["name"], "new", "{after:?}");
    for _ in 0..3 {
        let r = get(&edge, "/api/slow/1").await;
        assert_eq!(
            (r.x_cache.as_str(), &r.json["name"]),
            ("HIT", &serde_json::json!("new"))
        );
    }
    edge.stop().await;
}
