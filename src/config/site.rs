//! `[[site]]`: which requests a site takes and where its content comes from.

use super::{
    ConfigError, Secs, invalid,
    origin::validate_origin_url,
    pool::{Balance, HealthCheckConfig, PoolKeys, ServerConfig},
};
use serde::Deserialize;
use std::path::PathBuf;

/// One site: which requests it takes and where it gets its content.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Names the site in logs and errors, and starts its cache keys (two sites never share objects).
    pub name: String,
    /// Host names (`example.com`, `*.example.com`, or `*` for any). Matched without port, case-insensitively.
    pub hosts: Vec<String>,
    /// Only paths under this prefix belong to the site. Default: `/`.
    #[serde(default = "default_prefix")]
    pub(crate) path_prefix: String,
    /// Upstream origin URL (`http://host:port`, optionally with a base path).
    pub origin: Option<String>,
    /// Or: a pool of upstream servers, balanced and health-checked
    /// (`[{ url = "http://10.0.0.1:8080", weight = 3 }, { url = "...", backup = true }]`).
    #[serde(default)]
    pub(crate) origins: Vec<ServerConfig>,
    /// Or: a local directory served as the origin.
    pub root: Option<PathBuf>,
    /// How requests are spread over the pool: `"round_robin"` (weighted), `"least_outstanding"`
    /// or `"consistent_hash"` (on the cache key). Default: round_robin.
    #[serde(default)]
    pub(crate) balance: Balance,
    /// Active health checks of the pool's servers. Default: none (passive ejection only).
    #[serde(default)]
    pub(crate) health_check: Option<HealthCheckConfig>,
    /// Failures in a row (connection errors, timeouts, 5xx) that take a server out of the
    /// pool for `eject_for`; 0 never ejects. Default: 5.
    #[serde(default = "default_eject_after")]
    pub(crate) eject_after: u32,
    /// How long an ejected server is left alone before it is tried again (an active check
    /// that passes brings it back sooner). Default: 10s.
    #[serde(default = "default_eject_for")]
    pub(crate) eject_for: Secs,
    /// Longest wait for a slot on a server at its `max_connections`, before the next server
    /// is tried or the client gets 503. Default: 1s.
    #[serde(default = "default_queue_timeout")]
    pub(crate) queue_timeout: Secs,
    /// Retries (a request failed before any answer, tried again) as a share of the requests
    /// of the last 10 s, beyond which failures are not retried. Default: 0.2.
    #[serde(default = "default_retry_budget")]
    pub(crate) retry_budget: f64,
    /// Retry POST and PATCH requests too (only those without a body can be). Default: off.
    #[serde(default)]
    pub(crate) retry_non_idempotent: bool,
    /// Host header sent upstream; by default the client's own.
    pub(crate) origin_host: Option<String>,
    /// Response headers whose values tag the stored object for purging by tag (surrogate
    /// keys); they are removed before the response leaves the edge. Default:
    /// `["Surrogate-Key", "Cache-Tag"]`; `[]` leaves them alone.
    #[serde(default = "default_tag_headers")]
    pub(crate) tag_headers: Vec<String>,
    /// For `https://` origins: a PEM file of the certificate authorities their certificates
    /// are verified against, instead of the system's roots. Default: the system's roots.
    #[serde(default)]
    pub(crate) origin_ca_file: Option<PathBuf>,
    /// For `https://` origins: the name sent in TLS SNI and verified in their certificates,
    /// when it is not the host of the URL (an origin reached by address or by an internal
    /// name). Default: the URL's host.
    #[serde(default)]
    pub(crate) origin_sni: Option<String>,
    /// Honour the `Cache-Control` of clients' requests: `no-cache`, `no-store`, `max-age`,
    /// `min-fresh`, `max-stale` (most CDNs ignore them: one client's reload would cost everyone
    /// an origin request). `only-if-cached` is honoured regardless. The old name
    /// `honor_client_no_cache` still works. Default: off.
    #[serde(default, alias = "honor_client_no_cache")]
    pub(crate) honor_client_cache_control: bool,
    /// Store responses that carry Set-Cookie (the cookie itself is never stored). Default: off.
    #[serde(default)]
    pub(crate) cache_set_cookie: bool,
    /// Keep a 404 or 410 that carries no freshness of its own (no `max-age`, `s-maxage` or
    /// `Expires`) fresh this long, sparing the origin a storm of lookups for what is not
    /// there. Default: `"0s"`, which leaves them to the RFC's heuristics.
    #[serde(default)]
    pub(crate) negative_ttl: Secs,
    /// How long past expiry a stored copy stands in when the origin refuses the connection,
    /// times out, resets it, or answers 500, 502, 503 or 504, for responses without a
    /// `stale-if-error` of their own; never for `must-revalidate`, `proxy-revalidate`,
    /// `no-cache` or `s-maxage` responses (RFC 9111 section 4.2.4). Default: `"10s"`; `"0s"`
    /// turns it off.
    #[serde(default = "default_stale_on_error")]
    pub(crate) stale_on_error: Secs,
    /// Which request headers a cacheable request (GET, HEAD) carries to the origin: `"all"`
    /// (every end-to-end header but the ones the edge owns or the cache manages, and the
    /// override headers that make an origin answer for another URL) or `"strict"` (a fixed
    /// safe set). Both add `forward_headers` and what a stored response varies on. Default: all.
    #[serde(default)]
    pub(crate) request_headers: RequestHeaders,
    /// Request headers forwarded on cacheable requests beyond what `request_headers` lets
    /// through: in strict mode, any; in `all` mode, the override headers it would drop.
    #[serde(default)]
    pub(crate) forward_headers: Vec<String>,
    /// For `root` sites: Cache-Control by path pattern, first match wins.
    #[serde(default, rename = "cache_rule")]
    pub(crate) cache_rules: Vec<CacheRule>,
    /// Client addresses (or CIDR ranges, IPv4 and IPv6) the site serves. Empty: everyone not
    /// in `deny`; otherwise only these. Checked before anything else the site does (cache,
    /// PURGE, the origin): anyone else gets 403. The client is the connection's address, or
    /// behind `server.trusted_proxies` the one they forwarded for. Default: empty.
    #[serde(default)]
    pub(crate) allow: Vec<super::Cidr>,
    /// Client addresses or ranges refused with 403, whatever `allow` says (deny wins).
    /// Default: empty.
    #[serde(default)]
    pub(crate) deny: Vec<super::Cidr>,
    /// Requests each client address may make, as a token bucket: `{ requests = 100, per =
    /// "1s", burst = 200 }` refills `requests` every `per` and holds at most `burst` (default:
    /// `requests`). An IPv6 client is counted by its /64 (one host usually has the whole
    /// prefix). Beyond it: 429 with `Retry-After`. Checked right after `allow` / `deny`.
    /// Default: no limit.
    #[serde(default)]
    pub(crate) rate_limit: Option<RateLimitConfig>,
    /// Which storable misses are stored: `"second-hit"` (once the cache has filled, an object
    /// is stored on its second miss within a recent window; the first is served, not stored:
    /// one-hit wonders do not push out what is read again, which pays in bytes) or `"always"`
    /// (every storable miss, moka's TinyLFU alone deciding what stays). Default: second-hit.
    #[serde(default)]
    pub(crate) admission: crate::cache::admission::Admission,
    /// The site's certificate chain for the TLS listener (`server.listen_tls`): a PEM file,
    /// the site's certificate first. Chosen by SNI among the site's `hosts`; the first site
    /// with one also answers clients that send no SNI or a name no site lists. Default: none.
    #[serde(default)]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM: PKCS#8, PKCS#1 or SEC1). Default: none.
    #[serde(default)]
    pub(crate) tls_key: Option<PathBuf>,
    /// Answer plain-HTTP requests with a 308 to the same URL over https (the port of
    /// `server.listen_tls` unless it is 443). Default: off.
    #[serde(default)]
    pub(crate) redirect_http: bool,
}

/// `[[site]] rate_limit`: a token bucket per client address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitConfig {
    /// Requests let through every `per`, on average.
    pub(crate) requests: u32,
    /// The period `requests` refill over. Default: 1s.
    #[serde(default = "default_rate_per")]
    pub(crate) per: Secs,
    /// Requests a client may send at once after a quiet spell. Default: `requests`.
    #[serde(default)]
    pub(crate) burst: Option<u32>,
}

impl RateLimitConfig {
    /// The bucket's size.
    pub(crate) fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.requests)
    }

    fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let f = |k: &str| format!("site[{i}].rate_limit.{k}");
        if self.requests == 0 {
            return Err(invalid(f("requests"), "must be at least 1"));
        }
        if self.per.0.is_zero() {
            return Err(invalid(f("per"), "must be longer than 0s"));
        }
        if self.burst == Some(0) {
            return Err(invalid(f("burst"), "must be at least 1"));
        }
        // One token every per / requests: below a nanosecond it is no limit at all.
        if self.per.0.as_nanos() < u128::from(self.requests) {
            return Err(invalid(
                f("requests"),
                "more than one request per nanosecond is no limit; leave rate_limit out",
            ));
        }
        Ok(())
    }
}

fn default_rate_per() -> Secs {
    Secs(std::time::Duration::from_secs(1))
}

/// What a cacheable request forwards of the client's headers (`[[site]] request_headers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RequestHeaders {
    /// Every end-to-end header but those the edge owns or manages, as other shared caches do.
    #[default]
    All,
    /// Only `Accept`, `Accept-Language`, `User-Agent`, `Authorization`, `Cookie`, `Referer`,
    /// `Origin` (and `forward_headers`, and what a stored response varies on).
    Strict,
}

/// `pattern` is a glob over the URL path: `*` within a segment, `**` across segments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheRule {
    /// The glob a file's URL path is matched against.
    pub(crate) pattern: String,
    /// The `Cache-Control` a matching file is served with.
    pub(crate) cache_control: String,
}

fn default_eject_after() -> u32 {
    5
}

fn default_eject_for() -> Secs {
    Secs(std::time::Duration::from_secs(10))
}

fn default_queue_timeout() -> Secs {
    Secs(std::time::Duration::from_secs(1))
}

fn default_retry_budget() -> f64 {
    0.2
}

fn default_stale_on_error() -> Secs {
    Secs(std::time::Duration::from_secs(10))
}

fn default_prefix() -> String {
    "/".into()
}

impl SiteConfig {
    /// A catch-all site in front of one upstream: the `--origin` quick mode.
    pub(crate) fn any_host_upstream(url: &str) -> Self {
        Self::any_host("origin", Some(url.to_string()), None)
    }

    /// The out-of-the-box demo: the bundled `static/` directory, fingerprinted assets immutable.
    pub(crate) fn demo(root: PathBuf) -> Self {
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
            origins: Vec::new(),
            root,
            balance: Balance::default(),
            health_check: None,
            eject_after: default_eject_after(),
            eject_for: default_eject_for(),
            queue_timeout: default_queue_timeout(),
            retry_budget: default_retry_budget(),
            retry_non_idempotent: false,
            origin_host: None,
            origin_ca_file: None,
            tag_headers: default_tag_headers(),
            origin_sni: None,
            honor_client_cache_control: false,
            cache_set_cookie: false,
            negative_ttl: Secs::default(),
            stale_on_error: default_stale_on_error(),
            request_headers: RequestHeaders::default(),
            forward_headers: Vec::new(),
            cache_rules: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            rate_limit: None,
            admission: Default::default(),
            tls_cert: None,
            tls_key: None,
            redirect_http: false,
        }
    }
}

impl SiteConfig {
    /// Checks the site at index `i` of the `[[site]]` list.
    pub(super) fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let f = |k: &str| format!("site[{i}].{k}");
        if self.name.is_empty() {
            return Err(invalid(f("name"), "must not be empty"));
        }
        if self.hosts.is_empty() {
            return Err(invalid(f("hosts"), "needs at least one host (or \"*\")"));
        }
        for (j, h) in self.hosts.iter().enumerate() {
            check_host(h).map_err(|r| invalid(format!("site[{i}].hosts[{j}]"), r))?;
        }
        if !self.path_prefix.starts_with('/') {
            return Err(invalid(f("path_prefix"), "must start with /"));
        }
        let pooled = !self.origins.is_empty();
        match (&self.origin, &self.root) {
            (Some(_), _) if pooled => {
                return Err(invalid(
                    f("origins"),
                    "set either origin (one server) or origins (a pool), not both",
                ));
            }
            (None, Some(_)) if pooled => {
                return Err(invalid(
                    f("origins"),
                    "set either origins or root, not both",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(f("origin"), "set either origin or root, not both"));
            }
            (None, None) if pooled => {}
            (None, None) => {
                return Err(invalid(
                    f("origin"),
                    "set origin (a URL), origins (a pool) or root (a directory)",
                ));
            }
            (Some(url), None) => validate_origin_url(url).map_err(|r| invalid(f("origin"), r))?,
            (None, Some(root)) => {
                if !root.is_dir() {
                    return Err(invalid(
                        f("root"),
                        format!("{} is not a directory", root.display()),
                    ));
                }
            }
        }
        self.pool_keys().validate(i)?;
        self.validate_tls(i)?;
        self.validate_listener_tls(i)?;
        for (j, h) in self.tag_headers.iter().enumerate() {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(
                    format!("site[{i}].tag_headers[{j}]"),
                    format!("`{h}` is not a header name"),
                ));
            }
        }
        for (j, h) in self.forward_headers.iter().enumerate() {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(
                    format!("site[{i}].forward_headers[{j}]"),
                    format!("`{h}` is not a header name"),
                ));
            }
        }
        super::access::validate_lists(&format!("site[{i}]"), &self.allow, &self.deny)?;
        if let Some(r) = &self.rate_limit {
            r.validate(i)?;
        }
        for (j, r) in self.cache_rules.iter().enumerate() {
            if http::HeaderValue::from_str(&r.cache_control).is_err() {
                return Err(invalid(
                    format!("site[{i}].cache_rule[{j}].cache_control"),
                    "not a valid header value",
                ));
            }
        }
        Ok(())
    }
}

/// A host pattern is `*`, `*.` and a domain, a host name, or an IPv6 literal in brackets (as
/// the Host header writes it); a `*` anywhere else would match
/// more than it seems to (`*example.com` would take `evilexample.com`).
fn check_host(h: &str) -> Result<(), String> {
    let ipv6 = |h: &str| {
        let inner = h.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        inner.is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
    };
    let name = match h.strip_prefix("*.") {
        _ if h == "*" || ipv6(h) => return Ok(()),
        Some(rest) => rest,
        None => h,
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "`{h}` is not a host name, `*.` and a domain, or `*` (no port, no other wildcard)"
        ))
    }
}

impl SiteConfig {
    /// `origin_ca_file` and `origin_sni`: only for a site with an `https://` server, a file of
    /// PEM certificates, a host name.
    fn validate_tls(&self, i: usize) -> Result<(), ConfigError> {
        let f = |k: &str| format!("site[{i}].{k}");
        let https = self.servers().iter().any(|s| s.url.starts_with("https://"));
        if let Some(path) = &self.origin_ca_file {
            if !https {
                return Err(invalid(f("origin_ca_file"), "is for https:// origins only"));
            }
            read_ca_file(path).map_err(|r| invalid(f("origin_ca_file"), r))?;
        }
        if let Some(name) = &self.origin_sni {
            if !https {
                return Err(invalid(f("origin_sni"), "is for https:// origins only"));
            }
            if name.starts_with('*') || name.parse::<std::net::IpAddr>().is_ok() {
                return Err(invalid(f("origin_sni"), "must be a host name"));
            }
            check_host(name).map_err(|_| invalid(f("origin_sni"), "must be a host name"))?;
        }
        Ok(())
    }

    /// `tls_cert` and `tls_key`: both or neither, readable, and the key the certificate's.
    fn validate_listener_tls(&self, i: usize) -> Result<(), ConfigError> {
        self.certified_key(i).map(|_| ())
    }

    /// The site's certificate and key, loaded and checked, or `None` without `tls_cert`; the
    /// error names the field and the file.
    pub(crate) fn certified_key(
        &self,
        i: usize,
    ) -> Result<Option<std::sync::Arc<super::tls::CertifiedKey>>, ConfigError> {
        let f = |k: &str| format!("site[{i}].{k}");
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(invalid(f("tls_key"), "tls_cert needs its tls_key")),
            (None, Some(_)) => Err(invalid(f("tls_cert"), "tls_key needs its tls_cert")),
            (Some(cert), Some(key)) => {
                super::tls::load_certified_key(cert, key)
                    .map(Some)
                    .map_err(|(which, why)| {
                        invalid(
                            f(if which == super::tls::Part::Key {
                                "tls_key"
                            } else {
                                "tls_cert"
                            }),
                            why,
                        )
                    })
            }
        }
    }

    /// The servers of an upstream site: its `origins`, or its one `origin` as a pool of one;
    /// empty for a `root` site.
    pub(crate) fn servers(&self) -> Vec<ServerConfig> {
        match &self.origin {
            Some(url) => vec![ServerConfig::single(url)],
            None => self.origins.clone(),
        }
    }

    pub(crate) fn pool_keys(&self) -> PoolKeys<'_> {
        PoolKeys {
            servers: &self.origins,
            health_check: self.health_check.as_ref(),
            eject_after: self.eject_after,
            eject_for: self.eject_for,
            queue_timeout: self.queue_timeout,
            retry_budget: self.retry_budget,
        }
    }
}

/// The certificates of a PEM file of certificate authorities (`origin_ca_file`); the error
/// names the file.
pub(crate) fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(format!("{} holds no PEM certificate", path.display())),
    }
}

fn default_tag_headers() -> Vec<String> {
    vec!["Surrogate-Key".into(), "Cache-Tag".into()]
}
