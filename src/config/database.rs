//! `[database]` and `[[route]]`: the database behind the data routes, and the routes.

use super::{ConfigError, Secs, invalid, nonzero};
use serde::Deserialize;
use std::time::Duration;

/// Where the data routes read and write.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://user@host/db`.
    pub(crate) url: String,
    /// Optional read replica: cache-miss reads go here, writes to `url`.
    pub(crate) read_url: Option<String>,
    /// Connections in each pool (the primary's, and the replica's). Default: 8.
    #[serde(default = "default_db_connections")]
    pub(crate) max_connections: u32,
    /// A request waits at most this long for a connection (then 503). Default: 3s.
    #[serde(default = "default_db_acquire")]
    pub(crate) acquire_timeout: Secs,
    /// A read running longer is abandoned (503), so it cannot hold its key's waiters.
    /// PostgreSQL connections get it as their server-side `statement_timeout`, and a write's
    /// client waits for the server's outcome; an SQLite write still running is answered 503
    /// but followed to its end, and invalidates then. Default: 10s.
    #[serde(default = "default_statement_timeout")]
    pub(crate) statement_timeout: Secs,
    /// After a write, reads of the tags it invalidated go to the primary this long, so a
    /// lagging replica cannot put the replaced rows back into the cache. Default: 5s.
    #[serde(default = "default_replica_lag")]
    pub(crate) replica_lag: Secs,
    /// Create and fill the demo `products` table when it is missing. Default: off.
    #[serde(default)]
    pub(crate) seed_demo: bool,
}

fn default_statement_timeout() -> Secs {
    Secs(Duration::from_secs(10))
}

fn default_replica_lag() -> Secs {
    Secs(Duration::from_secs(5))
}

fn default_db_connections() -> u32 {
    8
}

fn default_db_acquire() -> Secs {
    Secs(Duration::from_secs(3))
}

/// One data route: a method, a path with typed parameters, one SQL statement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The method it answers: GET reads through the cache; POST, PUT, PATCH and DELETE write.
    /// Default: GET.
    #[serde(default = "default_method")]
    pub(crate) method: String,
    /// e.g. `/api/products/{id:int}`; types: int, float, str, bool.
    pub(crate) path: String,
    /// One statement with `:name` parameters from the path and (for writes) the JSON body.
    pub(crate) sql: String,
    /// The route answers with the first row as an object (404 when there is none), not an array.
    /// Default: off.
    #[serde(default)]
    pub(crate) single: bool,
    /// Reads: freshness of a result. Default: 30s.
    #[serde(default = "default_route_ttl")]
    pub(crate) ttl: Secs,
    /// Reads: freshness of "not found". Default: 10s.
    #[serde(default = "default_negative_ttl")]
    pub(crate) negative_ttl: Secs,
    /// Reads: serve the last result this long past its TTL while one load refreshes it in the
    /// background. Default: 0 (off).
    #[serde(default)]
    pub(crate) stale_while_revalidate: Secs,
    /// Reads: serve the last result this long past its TTL when the database fails. Default: 0
    /// (off).
    #[serde(default)]
    pub(crate) stale_if_error: Secs,
    /// Reads: TTLs are shortened by up to this fraction at random. Default: 0.1.
    #[serde(default = "default_jitter")]
    pub(crate) ttl_jitter: f64,
    /// Reads: tags of the result, e.g. `["products", "product:{id}"]`.
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// Writes: tags to invalidate once the write succeeded.
    #[serde(default)]
    pub(crate) invalidates: Vec<String>,
    /// Writes: JSON body fields and their types, e.g. `{ name = "str", price_cents = "int" }`.
    #[serde(default)]
    pub(crate) body: std::collections::BTreeMap<String, String>,
    /// Writes: fields the route's read returns but the write does not take (columns the
    /// database sets, e.g. `["updated_at"]`), accepted in a body and ignored, so a client can
    /// send back the object it read. The path's own parameters (`id`) are accepted too when
    /// they match the path. Default: none.
    #[serde(default)]
    pub(crate) read_only: Vec<String>,
}

fn default_method() -> String {
    "GET".into()
}

fn default_route_ttl() -> Secs {
    Secs(Duration::from_secs(30))
}

fn default_negative_ttl() -> Secs {
    Secs(Duration::from_secs(10))
}

fn default_jitter() -> f64 {
    0.1
}

impl DatabaseConfig {
    /// The embedded demo database: a SQLite file under `data/`, seeded on first start.
    pub(crate) fn demo() -> Self {
        Self {
            url: "sqlite://data/edgecache.db".into(),
            read_url: None,
            max_connections: default_db_connections(),
            acquire_timeout: default_db_acquire(),
            statement_timeout: default_statement_timeout(),
            replica_lag: default_replica_lag(),
            seed_demo: true,
        }
    }
}

impl RouteConfig {
    fn new(method: &str, path: &str, sql: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            sql: sql.into(),
            single: false,
            ttl: default_route_ttl(),
            negative_ttl: default_negative_ttl(),
            stale_while_revalidate: Secs::default(),
            stale_if_error: Secs(Duration::from_secs(300)),
            ttl_jitter: default_jitter(),
            tags: Vec::new(),
            invalidates: Vec::new(),
            body: Default::default(),
            read_only: Vec::new(),
        }
    }

    /// The demo site's product API.
    pub(crate) fn demo() -> Vec<Self> {
        const COLS: &str = "id, name, price_cents, stock, updated_at";
        let mut list = Self::new(
            "GET",
            "/api/products",
            &format!("SELECT {COLS} FROM products ORDER BY id"),
        );
        list.tags = vec!["products".into()];
        let mut one = Self::new(
            "GET",
            "/api/products/{id:int}",
            &format!("SELECT {COLS} FROM products WHERE id = :id"),
        );
        one.single = true;
        one.ttl = Secs(Duration::from_secs(60));
        one.tags = vec!["product:{id}".into()];
        let mut put = Self::new(
            "PUT",
            "/api/products/{id:int}",
            &format!(
                "UPDATE products SET name = :name, price_cents = :price_cents, stock = :stock, \
                 updated_at = CURRENT_TIMESTAMP WHERE id = :id RETURNING {COLS}"
            ),
        );
        put.single = true;
        put.invalidates = vec!["products".into(), "product:{id}".into()];
        put.read_only = vec!["updated_at".into()];
        put.body = [("name", "str"), ("price_cents", "int"), ("stock", "int")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vec![list, one, put]
    }
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        nonzero(&[
            ("database.acquire_timeout", self.acquire_timeout),
            ("database.statement_timeout", self.statement_timeout),
        ])
    }
}
