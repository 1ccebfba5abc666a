//! Error paths: bad parameters and bodies never reach the database, an unreachable database is
//! a 503 (or the stale value where the route allows it), and a failed write changes nothing.

use crate::backend::{Backend, TempDir, call, edge, get, postgres_url, put, q, queries, site_toml};
use crate::common::{TestEdge, TestOrigin};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

on_both_backends!(
    a_malformed_path_parameter_is_400_naming_it,
    bad_bodies_are_rejected_naming_the_field,
    stale_if_error_serves_the_old_value_when_the_query_fails,
    stale_if_error_never_brings_back_a_value_a_write_replaced,
    a_write_that_breaks_a_constraint_is_422_and_leaves_the_cache_as_it_was,
    a_put_on_a_missing_id_is_404_and_invalidates_nothing,
    a_statement_past_its_timeout_is_503_and_frees_the_key,
);

async fn a_malformed_path_parameter_is_400_naming_it(b: Backend) {
    let (_origin, edge) = edge(&b, "", "").await;
    let body = json!({ "name": "x", "price_cents": 1, "stock": 1 }).to_string();
    for (method, path) in [
        ("GET", "/api/products/abc"),
        ("GET", "/api/products/1.5"),
        ("GET", "/api/products/99999999999999999999"),
        ("PUT", "/api/products/abc"),
    ] {
        let r = call(
            &edge,
            method,
            path,
            Some(body.as_str()).filter(|_| method == "PUT"),
        )
        .await;
        assert_eq!(r.status, 400, "{method} {path}");
        assert_eq!(r.json["param"], "id", "{method} {path}: {}", r.json);
        let msg = r.json["error"].as_str().unwrap();
        assert!(msg.starts_with("id"), "{msg}");
    }
    assert_eq!(queries(&edge), 0, "nothing reached the database");
    edge.stop().await;
}

async fn bad_bodies_are_rejected_naming_the_field(b: Backend) {
    let (_origin, edge) = edge(&b, "", "").await;
    get(&edge, "/api/products/1").await;
    let bodies = [
        ("{\"name\": \"x\",", 400, None),
        ("not json at all", 400, None),
        (r#"{"name":"x","price_cents":1}"#, 422, Some("stock")),
        (
            r#"{"name":"x","price_cents":"cheap","stock":1}"#,
            422,
            Some("price_cents"),
        ),
        (
            r#"{"name":"x","price_cents":1,"stock":1,"colour":"red"}"#,
            422,
            Some("colour"),
        ),
        (
            r#"{"name":null,"price_cents":1,"stock":1}"#,
            422,
            Some("name"),
        ),
        ("[1, 2]", 422, Some("body")),
    ];
    for (body, status, param) in bodies {
        let r = call(&edge, "PUT", "/api/products/1", Some(body)).await;
        assert_eq!(r.status, status, "{body}: {}", r.json);
        let msg = r.json["error"].as_str().unwrap();
        match param {
            Some(p) => {
                assert_eq!(r.json["param"], p, "{body}");
                assert!(msg.starts_with(p), "{msg}");
            }
            None => assert!(msg.contains("not valid JSON"), "{msg}"),
        }
    }
    assert_eq!(
        queries(&edge),
        1,
        "only the first read reached the database"
    );
    let r = get(&edge, "/api/products/1").await;
    assert_eq!(
        (r.x_cache.as_str(), &r.json["name"]),
        ("HIT", &json!("products 1"))
    );
    edge.stop().await;
}

/// An edge over a database it cannot use: `url`, or by default a PostgreSQL URL on a port
/// nobody listens on (it was just free).
async fn unreachable_edge(url: Option<&str>) -> (TestOrigin, TestEdge) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let closed = format!("postgres://postgres@127.0.0.1:{port}/test");
    let b_url = url.unwrap_or(&closed);
    let origin = TestOrigin::start().await;
    let toml = format!(
        "{}[database]\nurl = {}\nacquire_timeout = \"1s\"\n\
         [[route]]\npath = \"/api/products/{{id:int}}\"\nsql = \"SELECT id, name FROM products WHERE id = :id\"\n\
         single = true\ntags = [\"product:{{id}}\"]\n\
         [[route]]\nmethod = \"PUT\"\npath = \"/api/products/{{id:int}}\"\n\
         sql = \"UPDATE products SET name = :name WHERE id = :id RETURNING id, name\"\n\
         single = true\ninvalidates = [\"product:{{id}}\"]\nbody = {{ name = \"str\" }}\n",
        site_toml(&origin.url),
        q(b_url)
    );
    (origin, TestEdge::from_toml(&toml).await)
}

#[tokio::test]
async fn an_unreachable_postgres_is_503_with_a_message_in_bounded_time() {
    let (_origin, edge) = unreachable_edge(None).await;
    expect_503s(&edge).await;
}

/// SQLite's counterpart of an unreachable server: the data directory existed at start-up (the
/// edge created it) and is gone when the first request needs the file.
#[tokio::test]
async fn an_unopenable_sqlite_file_is_503_with_a_message() {
    let tmp = TempDir::new();
    let dir = tmp.0.join("gone");
    let url = format!("sqlite://{}", dir.join("data.db").display());
    let (_origin, edge) = unreachable_edge(Some(&url)).await;
    assert!(dir.is_dir(), "the edge created the directory");
    std::fs::remove_dir_all(&dir).unwrap();
    expect_503s(&edge).await;
}

/// A PostgreSQL server that is up but refuses the connection (no such database) is as
/// unusable as one that is down.
#[tokio::test]
async fn a_postgres_refusing_the_connection_is_503_with_a_message() {
    let test = concat!(
        module_path!(),
        "::a_postgres_refusing_the_connection_is_503_with_a_message"
    );
    let Some(url) = postgres_url(test) else {
        return;
    };
    let (server, _db) = url.rsplit_once('/').expect("a URL with a database name");
    let url = format!("{server}/edgecache_no_such_database");
    let (_origin, edge) = unreachable_edge(Some(&url)).await;
    expect_503s(&edge).await;
}

/// GET, PUT, GET on product 1 each answer 503 with a JSON message within 10 s.
async fn expect_503s(edge: &TestEdge) {
    for (method, body) in [
        ("GET", None),
        ("PUT", Some(r#"{"name":"x"}"#)),
        ("GET", None),
    ] {
        let start = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            call(edge, method, "/api/products/1", body),
        )
        .await
        .expect("answered within 10 s");
        assert_eq!(r.status, 503, "{method}: {}", r.json);
        let msg = r.json["error"].as_str().unwrap();
        assert!(msg.starts_with("database unavailable"), "{msg}");
        eprintln!("{method} answered 503 after {:?}", start.elapsed());
    }
}

async fn stale_if_error_serves_the_old_value_when_the_query_fails(b: Backend) {
    let fast = "ttl = \"1s\"\nttl_jitter = 0";
    let single = format!("{fast}\nstale_if_error = \"60s\"");
    let (_origin, edge) = edge(&b, &single, fast).await;
    let old = get(&edge, "/api/products/2").await;
    assert_eq!((old.status, old.x_cache.as_str()), (200, "MISS"));
    assert_eq!(get(&edge, "/api/products").await.status, 200);

    // The source fails: every query on the table errors from now on.
    b.exec(&format!("DROP TABLE {}", b.table)).await;
    edge.advance(Duration::from_millis(1100));

    let r = get(&edge, "/api/products/2").await;
    assert_eq!((r.status, r.x_cache.as_str()), (200, "STALE"), "{}", r.json);
    assert!(
        r.cache_status.contains("detail=stale-if-error"),
        "{}",
        r.cache_status
    );
    assert_eq!(r.json, old.json, "the last good value");
    // The list route has no stale_if_error: the failure shows.
    let r = get(&edge, "/api/products").await;
    assert_eq!(r.status, 500);
    let msg = r.json["error"].as_str().unwrap();
    assert!(msg.starts_with("query failed"), "{msg}");
    assert_eq!(queries(&edge), 4, "both expired reads tried the database");
    edge.stop().await;
}

async fn stale_if_error_never_brings_back_a_value_a_write_replaced(b: Backend) {
    let (_origin, edge) = edge(&b, "stale_if_error = \"60s\"", "").await;
    assert_eq!(
        get(&edge, "/api/products/5").await.json["name"],
        "products 5"
    );
    assert_eq!(put(&edge, 5, "replaced", 1).await.status, 200);
    b.exec(&format!("DROP TABLE {}", b.table)).await;
    // The invalidated entry is gone, not merely stale: it must not stand in on an error.
    let r = get(&edge, "/api/products/5").await;
    assert_eq!(r.status, 500, "{}: {}", r.x_cache, r.json);
    assert_ne!(r.json["name"], "products 5");
    edge.stop().await;
}

async fn a_write_that_breaks_a_constraint_is_422_and_leaves_the_cache_as_it_was(b: Backend) {
    let (_origin, edge) = edge(&b, "", "").await;
    let one = get(&edge, "/api/products/3").await;
    let list = get(&edge, "/api/products").await;
    // A negative price violates the table's CHECK constraint.
    let w = put(&edge, 3, "cheaper", -1).await;
    assert_eq!(w.status, 422, "{}", w.json);
    let msg = w.json["error"].as_str().unwrap();
    assert!(msg.contains("check constraint"), "{msg}");
    assert!(
        w.json.get("name").is_none(),
        "a failure is not reported as the row"
    );
    assert_eq!(queries(&edge), 3);

    let r = get(&edge, "/api/products/3").await;
    assert_eq!((r.x_cache.as_str(), &r.json), ("HIT", &one.json));
    let r = get(&edge, "/api/products").await;
    assert_eq!((r.x_cache.as_str(), &r.json), ("HIT", &list.json));
    let in_db = b.name_reader().name(3).await.unwrap();
    assert_eq!(
        in_db.as_deref(),
        Some(&b"products 3"[..]),
        "nothing was written"
    );
    assert_eq!(queries(&edge), 3);
    edge.stop().await;
}

async fn a_put_on_a_missing_id_is_404_and_invalidates_nothing(b: Backend) {
    let (_origin, edge) = edge(&b, "", "").await;
    let list = get(&edge, "/api/products").await;
    let w = put(&edge, 77, "ghost", 1).await;
    assert_eq!(w.status, 404);
    assert_eq!(w.json, json!({ "error": "not found" }));
    let r = get(&edge, "/api/products").await;
    assert_eq!((r.x_cache.as_str(), &r.json), ("HIT", &list.json));
    assert_eq!(b.name_reader().name(77).await.unwrap(), None);
    assert_eq!(queries(&edge), 2);
    edge.stop().await;
}

async fn a_statement_past_its_timeout_is_503_and_frees_the_key(b: Backend) {
    let origin = TestOrigin::start().await;
    let sql = format!(
        "SELECT {} FROM {} WHERE id = :id AND {}",
        crate::backend::COLS,
        b.table,
        b.slow_predicate()
    );
    let toml = format!(
        "{}{}statement_timeout = \"50ms\"\n{}[[route]]\npath = \"/api/slow/{{id:int}}\"\nsql = {}\nsingle = true\n",
        site_toml(&origin.url),
        b.database_toml(),
        b.routes_toml("", ""),
        q(&sql)
    );
    let edge = TestEdge::from_toml(&toml).await;
    for _ in 0..2 {
        // Each attempt fails on its own: the first one left no lock behind.
        let t = Instant::now();
        let r = get(&edge, "/api/slow/1").await;
        assert_eq!(r.status, 503, "{:?}", r.json);
        assert!(
            r.json["error"].as_str().unwrap().contains("timed out"),
            "{:?}",
            r.json
        );
        assert!(t.elapsed() < Duration::from_secs(3));
    }
    assert_eq!(queries(&edge), 2);
}
