//! Typed configuration: one struct per subsystem, read from TOML, validated with errors that
//! name the offending field. Nothing here reads the process environment: `main` folds CLI flags
//! and `EDGECACHE_*` variables in through [`Overrides`], so tests build configs from strings.

mod units;

pub use units::{ByteSize, Secs};

use serde::Deserialize;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Everything the edge needs to start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub cache: CacheConfig,
    /// Defaults for every upstream origin; a site may not override them (yet).
    pub origin: OriginConfig,
    pub log: LogConfig,
    /// Sites in match order: the first whose host and path prefix fit the request serves it.
    #[serde(rename = "site")]
    pub sites: Vec<SiteConfig>,
    /// The database behind the data routes (cache-aside).
    pub database: Option<DatabaseConfig>,
    /// Data routes: matched before sites, on any host.
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// Where the data routes read and write.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://user@host/db`.
    pub url: String,
    /// Optional read replica: cache-miss reads go here, writes to `url`.
    pub read_url: Option<String>,
    #[serde(default = "default_db_connections")]
    pub max_connections: u32,
    /// A request waits at most this long for a connection (then 503).
    #[serde(default = "default_db_acquire")]
    pub acquire_timeout: Secs,
    /// A read running longer is abandoned (503), so it cannot hold its key's waiters.
    /// PostgreSQL connections get it as their server-side `statement_timeout`, and a write's
    /// client waits for the server's outcome; an SQLite write still running is answered 503
    /// but followed to its end, and invalidates then.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout: Secs,
    /// After a write, reads of the tags it invalidated go to the primary this long, so a
    /// lagging replica cannot put the replaced rows back into the cache.
    #[serde(default = "default_replica_lag")]
    pub replica_lag: Secs,
    /// Create and fill the demo `products` table when it is missing.
    #[serde(default)]
    pub seed_demo: bool,
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
    #[serde(default = "default_method")]
    pub method: String,
    /// e.g. `/api/products/{id:int}`; types: int, float, str, bool.
    pub path: String,
    /// One statement with `:name` parameters from the path and (for writes) the JSON body.
    pub sql: String,
    /// The route answers with the first row as an object (404 when there is none), not an array.
    #[serde(default)]
    pub single: bool,
    /// Reads: freshness of a result.
    #[serde(default = "default_route_ttl")]
    pub ttl: Secs,
    /// Reads: freshness of "not found".
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl: Secs,
    #[serde(default)]
    pub stale_while_revalidate: Secs,
    /// Reads: serve the last result this long past its TTL when the database fails.
    #[serde(default)]
    pub stale_if_error: Secs,
    /// Reads: TTLs are shortened by up to this fraction at random.
    #[serde(default = "default_jitter")]
    pub ttl_jitter: f64,
    /// Reads: tags of the result, e.g. `["products", "product:{id}"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Writes: tags to invalidate once the write succeeded.
    #[serde(default)]
    pub invalidates: Vec<String>,
    /// Writes: JSON body fields and their types, e.g. `{ name = "str", price_cents = "int" }`.
    #[serde(default)]
    pub body: std::collections::BTreeMap<String, String>,
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

impl Default for Secs {
    fn default() -> Self {
        Secs(Duration::ZERO)
    }
}

/// The client-facing listener and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// 0: one work-stealing runtime serves every connection on all CPUs (the default: the best
    /// tail latency when the CPUs are shared with other busy processes). N: N event loops, one
    /// thread each with its own listening socket and `max_connections / N` (thread per core,
    /// like nginx's workers): less CPU per cache MISS, but a loop the OS preempts stalls its
    /// connections.
    pub threads: usize,
    /// Answered by the edge itself, never forwarded; empty string turns it off.
    pub health_path: String,
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Largest request head (request line + headers) a client may send.
    pub max_header_bytes: ByteSize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// A client must send its whole request head within this time (slowloris guard).
    pub header_read_timeout: Secs,
    /// A response write that makes no progress for this long (the client stopped reading)
    /// closes the connection.
    pub send_timeout: Secs,
    /// Largest request body forwarded to an origin (POST/PUT/...); 413 beyond.
    pub max_request_body: ByteSize,
    /// On SIGTERM / Ctrl-C, in-flight requests get this long to finish.
    pub drain_timeout: Secs,
}

/// The shared store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Budget for stored objects (bodies + headers + bookkeeping).
    pub max_memory: ByteSize,
    /// Larger responses stream through without being stored. Default: 32MiB, or an eighth of
    /// `max_memory` if that is less (see [`CacheConfig::object_limit`]).
    pub max_object_size: Option<ByteSize>,
    /// Budget for bodies being filled from origins; when full, new misses pass through.
    /// Default: 64MiB, or a quarter of `max_memory` if that is less.
    pub max_inflight: Option<ByteSize>,
    /// Cap on variants (Vary) kept per URL; the oldest goes first.
    pub max_variants: usize,
    /// How long an expired object with a validator (ETag / Last-Modified) is kept for revalidation.
    pub keep: Secs,
    /// How long a request waits for another request's fill of the same key before giving up (504).
    pub fill_wait_timeout: Secs,
    /// After a response that may not be stored, requests for that URL skip coalescing this long.
    pub hit_for_miss: Secs,
}

/// Timeouts and pooling for upstream origins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    pub connect_timeout: Secs,
    /// From the end of sending the request (its body included) to receiving the response
    /// head; an upload's own time is bounded by `total_timeout`.
    pub first_byte_timeout: Secs,
    /// For the whole exchange, body included.
    pub total_timeout: Secs,
    /// Longest pause within a response body, from the origin or while a reader waits on a
    /// fill's next bytes; the body is then cut.
    pub body_idle_timeout: Secs,
    /// Idle keep-alive connections kept per origin host (per event loop with `server.threads`).
    pub max_idle_per_host: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// One line per request; off with `false`.
    pub access_log: bool,
    /// Where log lines go: a file path, or none for standard output.
    pub file: Option<PathBuf>,
}

/// One site: which requests it takes and where it gets its content.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub name: String,
    /// Host names (`example.com`, `*.example.com`, or `*` for any). Matched without port, case-insensitively.
    pub hosts: Vec<String>,
    /// Only paths under this prefix belong to the site.
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// Upstream origin URL (`http://host:port`, optionally with a base path).
    pub origin: Option<String>,
    /// Or: a local directory served as the origin.
    pub root: Option<PathBuf>,
    /// Host header sent upstream; by default the client's own.
    pub origin_host: Option<String>,
    /// Honour `Cache-Control: no-cache` / `max-age=0` from clients (most CDNs ignore them).
    #[serde(default)]
    pub honor_client_no_cache: bool,
    /// Store responses that carry Set-Cookie (the cookie itself is never stored).
    #[serde(default)]
    pub cache_set_cookie: bool,
    /// Request headers forwarded on cacheable requests beyond the built-in safe set; nothing else
    /// reaches the origin there, so an unkeyed header cannot poison the cache.
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// For `root` sites: Cache-Control by path pattern, first match wins.
    #[serde(default, rename = "cache_rule")]
    pub cache_rules: Vec<CacheRule>,
}

/// `pattern` is a glob over the URL path: `*` within a segment, `**` across segments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    pub pattern: String,
    pub cache_control: String,
}

fn default_prefix() -> String {
    "/".into()
}

/// More event loops than this is a typo, not a machine.
const MAX_THREADS: usize = 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            threads: 0,
            health_path: "/healthz".into(),
            max_connections: 10_000,
            max_header_bytes: ByteSize(64 << 10),
            max_headers: 100,
            header_read_timeout: Secs(Duration::from_secs(10)),
            send_timeout: Secs(Duration::from_secs(60)),
            max_request_body: ByteSize(16 << 20),
            drain_timeout: Secs(Duration::from_secs(10)),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_memory: ByteSize(256 << 20),
            max_object_size: None,
            max_inflight: None,
            max_variants: 16,
            keep: Secs(Duration::from_secs(3600)),
            fill_wait_timeout: Secs(Duration::from_secs(30)),
            hit_for_miss: Secs(Duration::from_secs(30)),
        }
    }
}

impl CacheConfig {
    /// The effective `max_object_size`.
    pub fn object_limit(&self) -> ByteSize {
        self.max_object_size
            .unwrap_or(ByteSize((32 << 20).min(self.max_memory.0 / 8)))
    }

    /// The effective `max_inflight`.
    pub fn inflight_limit(&self) -> ByteSize {
        self.max_inflight
            .unwrap_or(ByteSize((64 << 20).min(self.max_memory.0 / 4)))
    }
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Secs(Duration::from_secs(3)),
            first_byte_timeout: Secs(Duration::from_secs(30)),
            body_idle_timeout: Secs(Duration::from_secs(30)),
            total_timeout: Secs(Duration::from_secs(300)),
            max_idle_per_host: 64,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            access_log: true,
            file: None,
        }
    }
}

impl SiteConfig {
    /// A catch-all site in front of one upstream: the `--origin` quick mode.
    pub fn any_host_upstream(url: &str) -> Self {
        Self::any_host("origin", Some(url.to_string()), None)
    }

    /// The out-of-the-box demo: the bundled `static/` directory, fingerprinted assets immutable.
    pub fn demo(root: PathBuf) -> Self {
        let mut site = Self::any_host("demo", None, Some(root));
        site.cache_rules = [
            ("/assets/**", "public, max-age=31536000, immutable"),
            ("**.html", "public, max-age=60"),
            ("/", "public, max-age=60"),
            ("**/", "public, max-age=60"),
            ("**", "public, max-age=3600"),
        ]
        .into_iter()
        .map(|(p, cc)| CacheRule {
            pattern: p.into(),
            cache_control: cc.into(),
        })
        .collect();
        site
    }

    fn any_host(name: &str, origin: Option<String>, root: Option<PathBuf>) -> Self {
        Self {
            name: name.into(),
            hosts: vec!["*".into()],
            path_prefix: default_prefix(),
            origin,
            root,
            origin_host: None,
            honor_client_no_cache: false,
            cache_set_cookie: false,
            forward_headers: Vec::new(),
            cache_rules: Vec::new(),
        }
    }
}

/// A config that cannot be used, naming the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// What the command line (or its `EDGECACHE_*` variables) says on top of the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub origin: Option<String>,
    pub max_memory: Option<ByteSize>,
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        // serde_path_to_error names the field (`cache.max_memory`); toml's own message shows the
        // line and column.
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            match path.as_str() {
                "" | "." => ConfigError::Parse(inner),
                _ => ConfigError::Parse(format!("{path}: {inner}")),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse(m) => ConfigError::Parse(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Folds CLI flags in; with no site at all, serves the demo directory.
    pub fn apply(
        mut self,
        o: &Overrides,
        demo_root: impl FnOnce() -> PathBuf,
    ) -> Result<Self, ConfigError> {
        if let Some(l) = o.listen {
            self.server.listen = l;
        }
        if let Some(m) = o.max_memory {
            self.cache.max_memory = m;
        }
        if let Some(f) = o.log_format {
            self.log.format = f;
        }
        if let Some(url) = &o.origin {
            self.sites = vec![SiteConfig::any_host_upstream(url)];
        }
        if self.sites.is_empty() {
            self.sites = vec![SiteConfig::demo(demo_root())];
            if self.database.is_none() && self.routes.is_empty() {
                self.database = Some(DatabaseConfig::demo());
                self.routes = RouteConfig::demo();
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks what serde cannot: ranges, URLs, exclusive choices.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.cache;
        if c.max_memory.0 < 1 << 20 {
            return Err(invalid("cache.max_memory", "must be at least 1MiB"));
        }
        if c.object_limit().0 == 0 || c.object_limit() > c.max_memory {
            return Err(invalid(
                "cache.max_object_size",
                format!(
                    "must be between 1 byte and cache.max_memory ({})",
                    c.max_memory
                ),
            ));
        }
        if c.object_limit().0 > u32::MAX as u64 / 2 {
            return Err(invalid("cache.max_object_size", "must be below 2GiB"));
        }
        if c.max_variants == 0 {
            return Err(invalid("cache.max_variants", "must be at least 1"));
        }
        if self.server.threads > MAX_THREADS {
            return Err(invalid(
                "server.threads",
                format!("at most {MAX_THREADS} (0 = one shared runtime)"),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if self.server.max_header_bytes.0 < 1024 {
            return Err(invalid("server.max_header_bytes", "must be at least 1KiB"));
        }
        let mut timeouts = vec![
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.send_timeout", self.server.send_timeout),
            ("origin.connect_timeout", self.origin.connect_timeout),
            ("origin.first_byte_timeout", self.origin.first_byte_timeout),
            ("origin.total_timeout", self.origin.total_timeout),
            ("origin.body_idle_timeout", self.origin.body_idle_timeout),
        ];
        if let Some(db) = &self.database {
            if db.max_connections == 0 {
                return Err(invalid("database.max_connections", "must be at least 1"));
            }
            timeouts.push(("database.acquire_timeout", db.acquire_timeout));
            timeouts.push(("database.statement_timeout", db.statement_timeout));
        }
        if let Some((name, _)) = timeouts.iter().find(|(_, t)| t.0.is_zero()) {
            return Err(invalid(*name, "must be more than 0s"));
        }
        if !self.server.health_path.is_empty() && !self.server.health_path.starts_with('/') {
            return Err(invalid("server.health_path", "must start with /"));
        }
        for (i, s) in self.sites.iter().enumerate() {
            let f = |k: &str| format!("site[{i}].{k}");
            if s.name.is_empty() {
                return Err(invalid(f("name"), "must not be empty"));
            }
            if s.hosts.is_empty() {
                return Err(invalid(f("hosts"), "needs at least one host (or \"*\")"));
            }
            if !s.path_prefix.starts_with('/') {
                return Err(invalid(f("path_prefix"), "must start with /"));
            }
            match (&s.origin, &s.root) {
                (Some(_), Some(_)) => {
                    return Err(invalid(f("origin"), "set either origin or root, not both"));
                }
                (None, None) => {
                    return Err(invalid(
                        f("origin"),
                        "set origin (a URL) or root (a directory)",
                    ));
                }
                (Some(url), None) => {
                    validate_origin_url(url).map_err(|r| invalid(f("origin"), r))?
                }
                (None, Some(root)) => {
                    if !root.is_dir() {
                        return Err(invalid(
                            f("root"),
                            format!("{} is not a directory", root.display()),
                        ));
                    }
                }
            }
            for (j, h) in s.forward_headers.iter().enumerate() {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    return Err(invalid(
                        format!("site[{i}].forward_headers[{j}]"),
                        format!("`{h}` is not a header name"),
                    ));
                }
            }
            for (j, r) in s.cache_rules.iter().enumerate() {
                if http::HeaderValue::from_str(&r.cache_control).is_err() {
                    return Err(invalid(
                        format!("site[{i}].cache_rule[{j}].cache_control"),
                        "not a valid header value",
                    ));
                }
            }
        }
        Ok(())
    }
}

impl DatabaseConfig {
    /// The embedded demo database: a SQLite file under `data/`, seeded on first start.
    pub fn demo() -> Self {
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
        }
    }

    /// The demo site's product API.
    pub fn demo() -> Vec<Self> {
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
        put.body = [("name", "str"), ("price_cents", "int"), ("stock", "int")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vec![list, one, put]
    }
}

fn validate_origin_url(url: &str) -> Result<(), String> {
    let u: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    match u.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{url}` must start with http:// or https://")),
    }
    if u.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    if u.query().is_some() {
        return Err(format!("`{url}` must not have a query string"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.cache.max_memory, ByteSize(256 << 20));
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::from_toml("[cache]\nmax_memory = \"lots\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cache.max_memory: ") && e.contains("lots"),
            "{e}"
        );
        let e = Config::from_toml("[cache]\nmax_memroy = 5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_memroy"), "{e}");
        let e = Config::from_toml("[[site]]\nname='a'\nhosts=['*']\norigin='ftp://x'")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("site[0].origin"), "{e}");
        let e = Config::from_toml("[[site]]\nname='a'\nhosts=['*']")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("site[0].origin"), "{e}");
        let e = Config::from_toml("[server]\nthreads = 100000")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("server.threads: at most 1024"), "{e}");
    }

    #[test]
    fn overrides_win() {
        let o = Overrides {
            origin: Some("http://127.0.0.1:9".into()),
            max_memory: Some(ByteSize(32 << 20)),
            ..Default::default()
        };
        let c = Config::default().apply(&o, || unreachable!()).unwrap();
        assert_eq!(c.sites.len(), 1);
        assert_eq!(c.sites[0].origin.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(c.cache.max_memory, ByteSize(32 << 20));
    }
}
