//! One private database per test (a SQLite file in its own temp directory, or a uniquely named
//! PostgreSQL table), seeded with the demo products, plus the TOML that puts the product routes
//! in front of it and a bare cache-aside engine for library-level tests.

use crate::common::{TestEdge, TestOrigin, header};
use bytes::Bytes;
use edgecache::{
    cache::{Store, StoreConfig, aside::CacheAside, fill::InflightBudget},
    data::{
        db::{DbError, Pool},
        params::Value,
        sql,
    },
};
use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

/// The variable naming the PostgreSQL server the Postgres variants run against.
pub const PG_ENV: &str = "EDGECACHE_TEST_POSTGRES_URL";

/// The columns every product route returns.
pub const COLS: &str = "id, name, price_cents, stock, updated_at";

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A unique directory under the system temp directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("edgecache_cache_aside_{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test's own seeded `products` table. Dropping it removes the file or drops the table.
pub struct Backend {
    pub url: String,
    pub table: String,
    pub pool: Pool,
    /// SQLite: the temp directory holding the file.
    dir: Option<TempDir>,
}

impl Backend {
    /// A fresh SQLite file in a unique temp directory, seeded.
    pub async fn sqlite() -> Backend {
        Self::sqlite_named("products").await
    }

    /// Like [`Backend::sqlite`], with the seeded names prefixed (to tell two files apart).
    pub async fn sqlite_named(name_prefix: &str) -> Backend {
        let dir = TempDir::new();
        let url = format!("sqlite://{}", dir.0.join("data.db").display());
        let pool = Pool::open(&url, 2, Duration::from_secs(5), Duration::from_secs(10)).unwrap();
        let b = Backend {
            url,
            table: "products".into(),
            pool,
            dir: Some(dir),
        };
        b.seed(name_prefix).await;
        b
    }

    /// A uniquely named table on the PostgreSQL server, or `None` (after saying so on stderr)
    /// when [`PG_ENV`] is not set.
    pub async fn postgres(test: &str) -> Option<Backend> {
        let url = postgres_url(test)?;
        let table = format!("products_{}", unique());
        let pool = Pool::open(&url, 2, Duration::from_secs(5), Duration::from_secs(10)).unwrap();
        let b = Backend {
            url,
            table,
            pool,
            dir: None,
        };
        b.seed("products").await;
        Some(b)
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    async fn seed(&self, prefix: &str) {
        let t = &self.table;
        self.exec(&format!(
            "CREATE TABLE {t} (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
                stock INTEGER NOT NULL CHECK (stock >= 0),
                updated_at TEXT NOT NULL)"
        ))
        .await;
        let rows: Vec<String> = (1..=6)
            .map(|i| {
                format!(
                    "({i}, '{prefix} {i}', {}, {}, '2026-11-01 09:00:00')",
                    i * 100,
                    i
                )
            })
            .collect();
        self.exec(&format!(
            "INSERT INTO {t} ({COLS}) VALUES {}",
            rows.join(", ")
        ))
        .await;
    }

    /// Runs one statement (test-written SQL, no parameters) on the database.
    pub async fn exec(&self, sql: &str) {
        let q = sqlx::AssertSqlSafe(sql.to_string());
        let r = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(q).execute(p).await.map(|_| ()),
            Pool::Postgres(p) => sqlx::query(q).execute(p).await.map(|_| ()),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Sets product `id`'s name directly in the database (no cache involved).
    pub async fn set_name(&self, id: i64, name: &str) {
        self.exec(&format!(
            "UPDATE {} SET name = '{name}' WHERE id = {id}",
            self.table
        ))
        .await;
    }

    /// A cloneable reader of one product's name, for loaders (which must be `'static`).
    pub fn name_reader(&self) -> NameReader {
        let stmt = sql::parse(&format!("SELECT name FROM {} WHERE id = :id", self.table));
        NameReader {
            pool: self.pool.clone(),
            stmt: Arc::new(stmt.unwrap()),
        }
    }

    /// The `[database]` section for this backend.
    pub fn database_toml(&self) -> String {
        format!(
            "[database]\nurl = {}\nacquire_timeout = \"2s\"\n",
            q(&self.url)
        )
    }

    /// SQL that holds a read for a few hundred milliseconds, to AND into a WHERE clause.
    pub fn slow_predicate(&self) -> &'static str {
        if self.is_postgres() {
            "(SELECT 1 FROM pg_sleep(0.3)) = 1"
        } else {
            "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
             SELECT count(*) FROM c) > 0"
        }
    }

    /// The three product routes of `RouteConfig::demo()` over this table: `GET /api/products`
    /// (tag `products`), `GET /api/products/{id:int}` (single, tag `product:{id}`) and
    /// `PUT /api/products/{id:int}` (invalidates both). `single_extra` / `list_extra` are TOML
    /// lines added to the two read routes (ttl, negative_ttl, stale_if_error, ...).
    pub fn routes_toml(&self, single_extra: &str, list_extra: &str) -> String {
        let t = &self.table;
        let list = format!("SELECT {COLS} FROM {t} ORDER BY id");
        let one = format!("SELECT {COLS} FROM {t} WHERE id = :id");
        let put = format!(
            "UPDATE {t} SET name = :name, price_cents = :price_cents, stock = :stock, \
             updated_at = CURRENT_TIMESTAMP WHERE id = :id RETURNING {COLS}"
        );
        // The demo's 60 s, unless the test sets a ttl of its own.
        let sets_ttl = |l: &str| l.trim_start().starts_with("ttl ") || l.starts_with("ttl=");
        let ttl = match single_extra.lines().any(sets_ttl) {
            true => "",
            false => "ttl = \"60s\"\n",
        };
        format!(
            "[[route]]\npath = \"/api/products\"\nsql = {}\ntags = [\"products\"]\n{list_extra}\n\
             [[route]]\npath = \"/api/products/{{id:int}}\"\nsql = {}\nsingle = true\n{ttl}\
             tags = [\"product:{{id}}\"]\n{single_extra}\n\
             [[route]]\nmethod = \"PUT\"\npath = \"/api/products/{{id:int}}\"\nsql = {}\nsingle = true\n\
             invalidates = [\"products\", \"product:{{id}}\"]\n\
             body = {{ name = \"str\", price_cents = \"int\", stock = \"int\" }}\n\
             read_only = [\"updated_at\"]\n",
            q(&list),
            q(&one),
            q(&put)
        )
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if self.dir.is_some() {
            return; // the TempDir removes itself
        }
        // Drop runs inside the test's runtime: drop the table from a thread with its own.
        let (url, table) = (self.url.clone(), self.table.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::{Connection, Executor};
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    let _ = c
                        .execute(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Reads one product's name: `Some(name)` as bytes, `None` when there is no such row.
#[derive(Clone)]
pub struct NameReader {
    pool: Pool,
    stmt: Arc<sql::Statement>,
}

impl NameReader {
    pub async fn name(&self, id: i64) -> Result<Option<Bytes>, DbError> {
        let rows = self.pool.rows(&self.stmt, &[Value::Int(id)]).await?;
        Ok(rows
            .first()
            .and_then(|r| r.get("name"))
            .and_then(|n| n.as_str())
            .map(|n| Bytes::from(n.to_string())))
    }
}

/// The PostgreSQL URL from [`PG_ENV`], or `None` after saying on stderr that `test` is
/// skipped.
pub fn postgres_url(test: &str) -> Option<String> {
    let url = std::env::var(PG_ENV).ok();
    if url.is_none() {
        // Straight to the process's stderr: the test harness captures eprintln! of passing
        // tests, and a skip must be visible.
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "skipped: {test} ({PG_ENV} not set)");
    }
    url
}

/// A TOML basic string (JSON string escapes are valid TOML).
pub fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A site is required by every config; data routes are matched before it.
pub fn site_toml(origin_url: &str) -> String {
    format!(
        "[[site]]\nname = \"t\"\nhosts = [\"*\"]\norigin = {}\n",
        q(origin_url)
    )
}

/// An edge with a site (any origin), `[database]` and the product routes over `b`.
pub async fn edge(b: &Backend, single_extra: &str, list_extra: &str) -> (TestOrigin, TestEdge) {
    let origin = TestOrigin::start().await;
    let toml = format!(
        "{}{}{}",
        site_toml(&origin.url),
        b.database_toml(),
        b.routes_toml(single_extra, list_extra)
    );
    let edge = TestEdge::from_toml(&toml).await;
    (origin, edge)
}

/// Database statements the edge has run (primary + replica).
pub fn queries(edge: &TestEdge) -> u64 {
    edge.state
        .load()
        .data
        .as_ref()
        .unwrap()
        .database()
        .queries()
}

/// What a data response showed: status, X-Cache, Cache-Status and the JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub x_cache: String,
    pub cache_status: String,
    pub json: serde_json::Value,
}

/// Sends a request (with a JSON body text, if any) and parses the JSON answer.
pub async fn call(edge: &TestEdge, method: &str, path: &str, body: Option<&str>) -> Reply {
    let mut req = edge.request(method.parse().unwrap(), path);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let res = req.send().await.unwrap();
    assert_eq!(header(&res, "content-type"), "application/json", "{path}");
    let (status, x_cache) = (res.status().as_u16(), header(&res, "x-cache"));
    let cache_status = header(&res, "cache-status");
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    Reply {
        status,
        x_cache,
        cache_status,
        json,
    }
}

pub async fn get(edge: &TestEdge, path: &str) -> Reply {
    call(edge, "GET", path, None).await
}

/// A PUT of a whole product.
pub async fn put(edge: &TestEdge, id: i64, name: &str, price_cents: i64) -> Reply {
    let body = serde_json::json!({ "name": name, "price_cents": price_cents, "stock": 3 });
    call(
        edge,
        "PUT",
        &format!("/api/products/{id}"),
        Some(&body.to_string()),
    )
    .await
}

/// A cache-aside engine over a store of its own, as other Rust code would build one.
pub fn engine() -> CacheAside {
    engine_on(edgecache::clock::Clock::wall())
}

/// The same, with its time read from `clock` (which a test may move ahead).
pub fn engine_on(clock: edgecache::clock::Clock) -> CacheAside {
    let store = Store::new(
        StoreConfig {
            max_memory: 16 << 20,
            max_inflight: 0,
            max_object_size: 1 << 20,
            max_variants: 4,
            keep: Duration::from_secs(60),
        },
        clock,
    );
    CacheAside::new(
        store,
        Arc::new(InflightBudget::new(16 << 20)),
        Duration::from_secs(5),
    )
}

/// Runs a test body once per backend: `mod $name { sqlite, postgres }`, the Postgres variant
/// skipping (with a line on stderr) when [`PG_ENV`] is not set.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::backend::Backend::sqlite().await).await
            }
            #[tokio::test]
            async fn postgres() {
                let test = concat!(module_path!(), "::postgres");
                if let Some(b) = $crate::backend::Backend::postgres(test).await {
                    super::$name(b).await
                }
            }
        }
    )+};
}
