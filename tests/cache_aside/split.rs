//! The read/write split: with `database.read_url`, cache-miss reads go to the replica and
//! writes to the primary.

use crate::backend::{Backend, get, put, q, site_toml};
use crate::common::{TestEdge, TestOrigin};
use serde_json::json;

/// Two SQLite files seeded with different names, so each answer shows where it came from.
#[tokio::test]
async fn reads_go_to_the_replica_and_writes_to_the_primary_sqlite() {
    let primary = Backend::sqlite_named("primary").await;
    let replica = Backend::sqlite_named("replica").await;
    split(&primary, Some(&replica)).await;
}

/// PostgreSQL: `read_url` is a URL, so both point at the same server; only the counters tell
/// the pools apart.
#[tokio::test]
async fn reads_go_to_the_replica_and_writes_to_the_primary_postgres() {
    let test = concat!(
        module_path!(),
        "::reads_go_to_the_replica_and_writes_to_the_primary_postgres"
    );
    if let Some(b) = Backend::postgres(test).await {
        split(&b, None).await;
    }
}

/// `replica: None` means the replica URL is the primary's own.
async fn split(primary: &Backend, replica: Option<&Backend>) {
    let origin = TestOrigin::start().await;
    let read_url = replica.map_or(&primary.url, |r| &r.url);
    let toml = format!(
        "{}{}read_url = {}\n{}",
        site_toml(&origin.url),
        primary.database_toml(),
        q(read_url),
        primary.routes_toml("", "")
    );
    let edge = TestEdge::from_toml(&toml).await;
    let db = edge.state.load().data.as_ref().unwrap().database().clone();
    let counts = || (db.primary_queries(), db.replica_queries());
    // What the replica holds for product 1 before the write.
    let replica_before = match replica {
        Some(_) => "replica 1",
        None => "products 1",
    };

    let r = get(&edge, "/api/products/1").await;
    assert_eq!((r.status, r.x_cache.as_str()), (200, "MISS"));
    assert_eq!(r.json["name"], replica_before);
    assert_eq!(counts(), (0, 1), "a cache miss reads from the replica");
    assert_eq!(get(&edge, "/api/products/1").await.x_cache, "HIT");
    assert_eq!(counts(), (0, 1));

    let w = put(&edge, 1, "written", 4242).await;
    assert_eq!(w.status, 200);
    assert_eq!(
        (&w.json["name"], &w.json["price_cents"]),
        (&json!("written"), &json!(4242))
    );
    assert_eq!(counts(), (1, 1), "the write went to the primary");
    let on_primary = primary.name_reader().name(1).await.unwrap();
    assert_eq!(on_primary.as_deref(), Some(&b"written"[..]));
    if let Some(r) = replica {
        let on_replica = r.name_reader().name(1).await.unwrap();
        assert_eq!(on_replica.as_deref(), Some(&b"replica 1"[..]));
    }

    // Within `replica_lag` of the write, reads of what it invalidated go to the primary: a
    // lagging replica cannot put the replaced row back into the cache.
    let r = get(&edge, "/api/products/1").await;
    assert_eq!(r.x_cache, "MISS");
    assert_eq!(r.json["name"], "written");
    let list = get(&edge, "/api/products").await;
    assert_eq!(list.json[0]["name"], json!("written"));
    assert_eq!(counts(), (3, 1));
    // What the write did not touch is still read from the replica.
    let r = get(&edge, "/api/products/3").await;
    assert_eq!(r.json["name"], json!(replica_before.replace('1', "3")));
    assert_eq!(counts(), (3, 2));
    edge.stop().await;
}
