//! `[[site]]`: which requests a site takes and where its content comes from.

use super::{ConfigError, Secs, invalid, origin::validate_origin_url};
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
    /// Or: a local directory served as the origin.
    pub root: Option<PathBuf>,
    /// Host header sent upstream; by default the client's own.
    pub(crate) origin_host: Option<String>,
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
            root,
            origin_host: None,
            honor_client_cache_control: false,
            cache_set_cookie: false,
            negative_ttl: Secs::default(),
            stale_on_error: default_stale_on_error(),
            request_headers: RequestHeaders::default(),
            forward_headers: Vec::new(),
            cache_rules: Vec::new(),
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
        match (&self.origin, &self.root) {
            (Some(_), Some(_)) => {
                return Err(invalid(f("origin"), "set either origin or root, not both"));
            }
            (None, None) => {
                return Err(invalid(
                    f("origin"),
                    "set origin (a URL) or root (a directory)",
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
        for (j, h) in self.forward_headers.iter().enumerate() {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(
                    format!("site[{i}].forward_headers[{j}]"),
                    format!("`{h}` is not a header name"),
                ));
            }
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
