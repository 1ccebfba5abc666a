//! HTTP-level cache-aside: hits cost no query, a miss one (however many ask at once), "not
//! found" is cached briefly, and a write invalidates every read it changed before answering.

use crate::backend::{Backend, COLS, call, edge, get, put, q, queries, site_toml};
use crate::common::{TestEdge, TestOrigin};
use serde_json::json;
use std::time::Duration;

on_both_backends!(
    a_miss_costs_one_query_and_a_hit_none,
    fifty_concurrent_cold_requests_make_one_query,
    not_found_is_cached_for_the_negative_ttl,
    a_write_invalidates_the_single_and_list_reads,
    after_a_write_returns_no_read_returns_the_old_value,
    a_hit_says_how_long_it_has_been_cached,
    a_write_without_returning_invalidates_when_it_changed_rows,
    every_spelling_of_a_path_value_shares_one_entry,
    a_write_the_edge_stopped_waiting_for_is_invalidated_when_it_ends,
    an_insert_of_a_taken_id_is_409_and_changes_nothing,
    what_a_read_gives_can_be_put_back,
);

fn product(id: i64, name: &str) -> serde_json::Value {
    json!({
        "id": id,
        "name": name,
        "price_cents": id * 100,
        "stock": id,
        "updated_at": "2026-11-01 09:00:00",
    })
}

async fn a_miss_costs_one_query_and_a_hit_none(b: Backend) {
    let (_origin, edge) = edge(&b, "ttl_jitter = 0", "").await;
    assert_eq!(queries(&edge), 0);

    let r = get(&edge, "/api/products/2").await;
    assert_eq!((r.status, r.x_cache.as_str()), (200, "MISS"));
    assert_eq!(r.cache_status, "edgecache; fwd=uri-miss; stored; ttl=60");
    assert_eq!(r.json, product(2, "products 2"));
    assert_eq!(queries(&edge), 1);

    edge.advance(Duration::from_secs(1));
    let r = get(&edge, "/api/products/2").await;
    assert_eq!((r.status, r.x_cache.as_str()), (200, "HIT"));
    // 1 s (and the test's few milliseconds) into 60 s.
    assert_eq!(r.cache_status, "edgecache; hit; ttl=58");
    assert_eq!(r.json, product(2, "products 2"));
    assert_eq!(queries(&edge), 1, "a hit does not query");

    // The list is a key of its own: one query, then hits.
    let r = get(&edge, "/api/products").await;
    assert_eq!((r.status, r.x_cache.as_str()), (200, "MISS"));
    let expected: Vec<_> = (1..=6)
        .map(|i| product(i, &format!("products {i}")))
        .collect();
    assert_eq!(r.json, json!(expected));
    assert_eq!(queries(&edge), 2);
    for _ in 0..3 {
        let r = get(&edge, "/api/products").await;
        assert_eq!(r.x_cache, "HIT");
        assert_eq!(r.json, json!(expected));
    }
    assert_eq!(queries(&edge), 2);
    edge.stop().await;
}

/// An edge with one more route whose query takes a few hundred milliseconds.
pub async fn slow_edge(b: &Backend) -> (TestOrigin, TestEdge) {
    let origin = TestOrigin::start().await;
    let sql = format!(
        "SELECT {COLS} FROM {} WHERE id = :id AND {}",
        b.table,
        b.slow_predicate()
    );
    let toml = format!(
        "{}{}{}[[route]]\npath = \"/api/slow/{{id:int}}\"\nsql = {}\nsingle = true\n\
         tags = [\"product:{{id}}\"]\n",
        site_toml(&origin.url),
        b.database_toml(),
        b.routes_toml("", ""),
        q(&sql)
    );
    (origin, TestEdge::from_toml(&toml).await)
}

async fn fifty_concurrent_cold_requests_make_one_query(b: Backend) {
    let (_origin, edge) = slow_edge(&b).await;
    let replies = futures_util::future::join_all((0..50).map(|_| get(&edge, "/api/slow/3"))).await;
    assert_eq!(queries(&edge), 1, "the cold key was loaded once");
    for r in &replies {
        assert_eq!(r.status, 200);
        assert_eq!(r.json, product(3, "products 3"));
    }
    // One leader ran the query; everyone else shared it (or, arriving late, hit the cache).
    let leaders: Vec<_> = replies
        .iter()
        .filter(|r| r.x_cache == "MISS" && !r.cache_status.contains("collapsed"))
        .collect();
    assert_eq!(leaders.len(), 1, "{replies:#?}");
    let collapsed = replies
        .iter()
        .filter(|r| r.cache_status.contains("collapsed"))
        .count();
    assert!(collapsed > 0, "requests overlapped the slow query");
    let r = get(&edge, "/api/slow/3").await;
    assert_eq!(r.x_cache, "HIT");
    assert_eq!(queries(&edge), 1);
    edge.stop().await;
}

async fn not_found_is_cached_for_the_negative_ttl(b: Backend) {
    let (_origin, edge) = edge(&b, "negative_ttl = \"1s\"\nttl_jitter = 0", "").await;
    let r = get(&edge, "/api/products/42").await;
    assert_eq!((r.status, r.x_cache.as_str()), (404, "MISS"));
    assert_eq!(r.json, json!({ "error": "not found" }));
    assert!(
        r.cache_status.contains("stored; ttl=1"),
        "{}",
        r.cache_status
    );
    assert_eq!(queries(&edge), 1);

    // The row appears behind the cache's back: "not found" is still served from the cache...
    b.exec(&format!(
        "INSERT INTO {} ({COLS}) VALUES (42, 'late', 4200, 42, '2026-11-01 09:00:00')",
        b.table
    ))
    .await;
    let r = get(&edge, "/api/products/42").await;
    assert_eq!((r.status, r.x_cache.as_str()), (404, "HIT"));
    assert_eq!(queries(&edge), 1, "a cached 404 costs no query");

    // ...but only for the negative TTL.
    edge.advance(Duration::from_millis(1100));
    let r = get(&edge, "/api/products/42").await;
    assert_eq!((r.status, r.x_cache.as_str()), (200, "MISS"));
    assert_eq!(r.json["name"], "late");
    assert_eq!(queries(&edge), 2);
    edge.stop().await;
}

async fn a_write_invalidates_the_single_and_list_reads(b: Backend) {
    let (_origin, edge) = edge(&b, "", "").await;
    for path in [
        "/api/products/1",
        "/api/products",
        "/api/products/1",
        "/api/products",
    ] {
        get(&edge, path).await;
    }
    assert_eq!(get(&edge, "/api/products/1").await.x_cache, "HIT");
    assert_eq!(get(&edge, "/api/products").await.x_cache, "HIT");
    assert_eq!(get(&edge, "/api/products/2").await.x_cache, "MISS");
    assert_eq!(queries(&edge), 3);

    let w = put(&edge, 1, "renamed", 999).await;
    assert_eq!(w.status, 200);
    assert_eq!(w.x_cache, "BYPASS");
    // The PUT answers with the updated row (RETURNING).
    assert_eq!(
        (
            &w.json["id"],
            &w.json["name"],
            &w.json["price_cents"],
            &w.json["stock"]
        ),
        (&json!(1), &json!("renamed"), &json!(999), &json!(3))
    );
    assert_ne!(w.json["updated_at"], "2026-11-01 09:00:00");
    assert_eq!(queries(&edge), 4);

    let r = get(&edge, "/api/products/1").await;
    assert_eq!((r.status, r.x_cache.as_str()), (200, "MISS"));
    assert_eq!(
        r.json, w.json,
        "the read shows exactly what the write returned"
    );
    let r = get(&edge, "/api/products").await;
    assert_eq!(r.x_cache, "MISS");
    assert_eq!(r.json[0], w.json);
    assert_eq!(r.json[1], product(2, "products 2"));
    // A product the write did not touch keeps its cache entry.
    assert_eq!(get(&edge, "/api/products/2").await.x_cache, "HIT");
    assert_eq!(queries(&edge), 6);
    edge.stop().await;
}

async fn after_a_write_returns_no_read_returns_the_old_value(b: Backend) {
    let (_origin, edge) = edge(&b, "", "").await;
    for round in 0..5 {
        // Both reads are cached before each write.
        get(&edge, "/api/products/4").await;
        get(&edge, "/api/products").await;
        assert_eq!(get(&edge, "/api/products/4").await.x_cache, "HIT");
        let name = format!("round {round}");
        let price = 1000 + round;
        assert_eq!(put(&edge, 4, &name, price).await.status, 200);
        let one = get(&edge, "/api/products/4").await;
        assert_eq!(one.json["name"], json!(name), "round {round}");
        assert_eq!(one.json["price_cents"], json!(price));
        let list = get(&edge, "/api/products").await;
        assert_eq!(list.json[3]["name"], json!(name), "round {round}");
    }
    edge.stop().await;
}

async fn a_hit_says_how_long_it_has_been_cached(b: Backend) {
    let (_origin, edge) = edge(&b, "", "").await;
    let r = edge.get("/api/products/1").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["age"], "0");
    edge.advance(Duration::from_millis(1100));
    let r = edge.get("/api/products/1").send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.headers()["age"], "1", "1.1 s after the miss");
}

/// An edge with the product routes, more `[database]` keys, and extra routes (TOML).
async fn edge_with(b: &Backend, database_extra: &str, routes: &str) -> (TestOrigin, TestEdge) {
    let origin = TestOrigin::start().await;
    let toml = format!(
        "{}{}{database_extra}\n{}{routes}",
        site_toml(&origin.url),
        b.database_toml(),
        b.routes_toml("", ""),
    );
    (origin, TestEdge::from_toml(&toml).await)
}

async fn a_write_without_returning_invalidates_when_it_changed_rows(b: Backend) {
    let delete = format!("DELETE FROM {} WHERE id = :id", b.table);
    let route = format!(
        "[[route]]\nmethod = \"DELETE\"\npath = \"/api/products/{{id:int}}\"\nsql = {}\n\
         invalidates = [\"products\", \"product:{{id}}\"]\n",
        q(&delete)
    );
    let (_origin, edge) = edge_with(&b, "", &route).await;
    assert_eq!(get(&edge, "/api/products/4").await.status, 200);
    assert_eq!(get(&edge, "/api/products/4").await.x_cache, "HIT");
    let w = call(&edge, "DELETE", "/api/products/4", None).await;
    assert_eq!(
        (w.status, &w.json),
        (200, &json!([])),
        "no RETURNING: no rows"
    );
    let r = get(&edge, "/api/products/4").await;
    assert_eq!((r.status, r.x_cache.as_str()), (404, "MISS"), "{}", r.json);

    // A write that changed nothing leaves the cache alone.
    assert_eq!(get(&edge, "/api/products").await.x_cache, "MISS");
    let before = queries(&edge);
    call(&edge, "DELETE", "/api/products/99", None).await;
    assert_eq!(get(&edge, "/api/products").await.x_cache, "HIT");
    assert_eq!(queries(&edge), before + 1, "only the DELETE ran");
    edge.stop().await;
}

async fn every_spelling_of_a_path_value_shares_one_entry(b: Backend) {
    let (_origin, edge) = edge(&b, "", "").await;
    let first = get(&edge, "/api/products/3").await;
    assert_eq!((first.status, first.x_cache.as_str()), (200, "MISS"));
    for spelling in ["/api/products/03", "/api/products/%33", "/api/products/003"] {
        let r = get(&edge, spelling).await;
        assert_eq!(
            (r.x_cache.as_str(), &r.json),
            ("HIT", &first.json),
            "{spelling}"
        );
    }
    assert_eq!(queries(&edge), 1);
    edge.stop().await;
}

async fn a_write_the_edge_stopped_waiting_for_is_invalidated_when_it_ends(b: Backend) {
    // A PUT whose statement runs a few hundred milliseconds, past a 100 ms statement_timeout.
    let slow = format!(
        "UPDATE {t} SET name = :name WHERE id = :id AND {} RETURNING {COLS}",
        b.slow_predicate(),
        t = b.table
    );
    let route = format!(
        "[[route]]\nmethod = \"PUT\"\npath = \"/api/slow-put/{{id:int}}\"\nsql = {}\n\
         single = true\ninvalidates = [\"products\", \"product:{{id}}\"]\n\
         body = {{ name = \"str\" }}\n",
        q(&slow)
    );
    let (_origin, edge) = edge_with(&b, "statement_timeout = \"100ms\"", &route).await;
    assert_eq!(
        get(&edge, "/api/products/3").await.json["name"],
        "products 3"
    );
    let w = call(&edge, "PUT", "/api/slow-put/3", Some(r#"{"name":"late"}"#)).await;
    assert_eq!(w.status, 503, "{}", w.json);
    // Read at once: the statement may still be running, and the old row may be cached again.
    get(&edge, "/api/products/3").await;
    // SQLite finishes the statement and commits it; PostgreSQL cancels it at its own
    // statement_timeout. Either way the edge must end up serving what the database holds.
    let reader = b.name_reader();
    let mut agreed = None;
    // PostgreSQL has cancelled it by the time the edge answers: a second shows it stays so.
    let tries = if b.is_postgres() { 10 } else { 50 };
    for _ in 0..tries {
        let in_db = reader.name(3).await.unwrap().unwrap();
        let served = get(&edge, "/api/products/3").await.json["name"].clone();
        if served.as_str().map(str::as_bytes) == Some(&in_db[..]) && &in_db[..] == b"late" {
            agreed = Some("late");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if b.is_postgres() {
        assert_eq!(agreed, None, "PostgreSQL cancelled the write");
        assert_eq!(
            reader.name(3).await.unwrap().as_deref(),
            Some(&b"products 3"[..])
        );
        assert_eq!(
            get(&edge, "/api/products/3").await.json["name"],
            "products 3"
        );
    } else {
        assert_eq!(agreed, Some("late"), "the cache followed the late commit");
    }
    edge.stop().await;
}

async fn an_insert_of_a_taken_id_is_409_and_changes_nothing(b: Backend) {
    let insert = format!(
        "INSERT INTO {} (id, name, price_cents, stock, updated_at) \
         VALUES (:id, :name, 0, 0, '2026-11-01') RETURNING {COLS}",
        b.table
    );
    let route = format!(
        "[[route]]\nmethod = \"POST\"\npath = \"/api/products\"\nsql = {}\nsingle = true\n\
         invalidates = [\"products\"]\nbody = {{ id = \"int\", name = \"str\" }}\n",
        q(&insert)
    );
    let (_origin, edge) = edge_with(&b, "", &route).await;
    let post = |body: &'static str| call(&edge, "POST", "/api/products", Some(body));
    let list = get(&edge, "/api/products").await;
    let w = post(r#"{"id":2,"name":"dup"}"#).await;
    assert_eq!(w.status, 409, "{}", w.json);
    let msg = w.json["error"].as_str().unwrap();
    assert!(msg.contains("unique constraint"), "{msg}");
    let r = get(&edge, "/api/products").await;
    assert_eq!((r.x_cache.as_str(), &r.json), ("HIT", &list.json));
    // A new id goes in, and the list follows.
    let w = post(r#"{"id":7,"name":"new"}"#).await;
    assert_eq!(w.status, 200, "{}", w.json);
    let r = get(&edge, "/api/products").await;
    assert_eq!(r.x_cache, "MISS");
    assert_eq!(r.json.as_array().unwrap().len(), 7);
    edge.stop().await;
}

#[tokio::test]
async fn write_bodies_must_be_json_and_within_the_limit() {
    let b = Backend::sqlite().await;
    let (_origin, edge) = edge_with(&b, "[server]\nmax_request_body = \"1KiB\"", "").await;
    let body = r#"{"name":"x","price_cents":1,"stock":1}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut rb = edge.request(reqwest::Method::PUT, "/api/products/2");
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        let r = rb.body(body).send().await.unwrap();
        assert_eq!(r.status(), 415, "{ct:?}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let err: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert!(err["error"].as_str().unwrap().contains("application/json"));
    }
    // An empty form POST (a cross-site <form> with no fields) is refused too; a bare request
    // without a body or a type is not.
    let r = edge
        .request(reqwest::Method::PUT, "/api/products/2")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = edge
        .request(reqwest::Method::PUT, "/api/products/2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no body where one is needed: not JSON");
    let big = format!(
        r#"{{"name":"{}","price_cents":1,"stock":1}}"#,
        "x".repeat(2000)
    );
    let r = edge
        .request(reqwest::Method::PUT, "/api/products/2")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(queries(&edge), 0, "nothing reached the database");
    edge.stop().await;
}

async fn what_a_read_gives_can_be_put_back(b: Backend) {
    let (_origin, edge) = edge(&b, "", "").await;
    let mut obj = get(&edge, "/api/products/4").await.json;
    assert_eq!(obj["id"], 4);
    obj["name"] = json!("ETag enamel pin, gold");
    // The whole object goes back, `id` and `updated_at` included.
    let w = call(&edge, "PUT", "/api/products/4", Some(&obj.to_string())).await;
    assert_eq!(w.status, 200, "{}", w.json);
    assert_eq!(w.json["name"], "ETag enamel pin, gold");
    assert_ne!(
        w.json["updated_at"], obj["updated_at"],
        "updated_at is the database's"
    );
    let r = get(&edge, "/api/products/4").await;
    assert_eq!((r.x_cache.as_str(), &r.json), ("MISS", &w.json));

    // An id that is not the path's, or a field the route does not know, is refused and
    // changes nothing.
    let before = queries(&edge);
    for (field, value, error) in [
        ("id", json!(5), "id: does not match the path"),
        ("id", json!("4"), "id: does not match the path"),
        (
            "colour",
            json!("gold"),
            "colour: is not a field of this route",
        ),
    ] {
        let mut body = r.json.clone();
        body[field] = value;
        let w = call(&edge, "PUT", "/api/products/4", Some(&body.to_string())).await;
        assert_eq!(
            (w.status, &w.json["error"]),
            (422, &json!(error)),
            "{field}"
        );
        assert_eq!(w.json["param"], field);
    }
    assert_eq!(queries(&edge), before, "a refused body reaches no database");
    assert_eq!(get(&edge, "/api/products/4").await.x_cache, "HIT");
    edge.stop().await;
}
