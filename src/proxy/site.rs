//! Which site a request belongs to. Only configured hosts are served: a request for any other
//! host gets 421, so the edge is never an open proxy; the origin a request reaches is always the
//! one its site names, whatever the request's target or Host says.

use crate::{
    config::{RequestHeaders, SiteConfig},
    origin::Origin,
    telemetry::metrics::SiteStats,
};
use http::HeaderName;
use std::sync::Arc;

/// A site, ready to serve.
pub(crate) struct Site {
    /// The config's name: it starts every cache key of the site, so two sites never share
    /// objects. Interned (see [`intern`]): the access log line of a request carries it without
    /// a reference count shared by every thread.
    pub(crate) name: &'static str,
    /// The hosts it serves, matched against the request's lower-case host without port.
    pub(crate) hosts: Vec<HostPattern>,
    /// Only paths starting with this belong to the site; the path reaches the origin unchanged.
    pub(crate) path_prefix: String,
    /// Where its misses and pass-through requests go: always this origin, whatever the request
    /// names.
    pub(crate) origin: Origin,
    /// Honour the client's `no-store`, `no-cache` and `max-age` (most edges ignore them).
    pub(crate) honor_client_cache_control: bool,
    /// Store responses that carry Set-Cookie (the cookie itself is never stored).
    pub(crate) cache_set_cookie: bool,
    /// How long a 404 or 410 without freshness of its own stays fresh (zero: the RFC's rules).
    pub(crate) negative_ttl: std::time::Duration,
    /// How long past expiry a copy without `stale-if-error` stands in for a failed origin.
    pub(crate) stale_on_error: std::time::Duration,
    /// Request headers forwarded on cacheable requests, beyond the built-in set.
    pub(crate) forward_headers: Vec<HeaderName>,
    /// What a fill forwards of the client's headers: all but a deny-list, or a fixed set.
    pub(crate) request_headers: RequestHeaders,
    /// The response headers that carry surrogate keys (`tag_headers`), lower case.
    pub(crate) tag_headers: Vec<HeaderName>,
    /// What the site's requests and origin fetches are counted in (kept across reloads).
    pub(crate) stats: Arc<SiteStats>,
    /// Its `allow` / `deny` lists and `rate_limit`, checked before anything else; `None`
    /// (nothing to check) for a site without them.
    pub(crate) access: Option<super::admission::SiteAccess>,
    /// Which storable misses are stored (`admission`): on their second miss, or always.
    pub(crate) admission: crate::cache::admission::Admission,
    /// Plain-HTTP requests get a 308 to https (`redirect_http`).
    pub(crate) redirect_http: bool,
}

pub(crate) enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: stored as `.example.com`.
    Suffix(String),
}

impl HostPattern {
    pub(crate) fn parse(p: &str) -> Self {
        let p = p.trim().to_ascii_lowercase();
        if p == "*" {
            HostPattern::Any
        } else if let Some(rest) = p.strip_prefix('*') {
            HostPattern::Suffix(rest.to_string())
        } else {
            HostPattern::Exact(p)
        }
    }

    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.ends_with(s.as_str()) && host.len() > s.len(),
        }
    }
}

impl Site {
    /// The site `cfg` describes, in front of `origin` (built by the composition root).
    pub(crate) fn new(
        cfg: &SiteConfig,
        origin: Origin,
        stats: Arc<SiteStats>,
        clock: &crate::clock::Clock,
    ) -> Self {
        Self {
            name: intern(&cfg.name),
            hosts: cfg.hosts.iter().map(|h| HostPattern::parse(h)).collect(),
            path_prefix: cfg.path_prefix.clone(),
            origin,
            honor_client_cache_control: cfg.honor_client_cache_control,
            cache_set_cookie: cfg.cache_set_cookie,
            negative_ttl: cfg.negative_ttl.0,
            stale_on_error: cfg.stale_on_error.0,
            request_headers: cfg.request_headers,
            forward_headers: header_names(&cfg.forward_headers),
            tag_headers: header_names(&cfg.tag_headers),
            stats,
            access: super::admission::SiteAccess::new(cfg, clock),
            admission: cfg.admission,
            redirect_http: cfg.redirect_http,
        }
    }
}

/// The one `'static` copy of a site name. A name is leaked once, the first time a config
/// names it: reloads that keep their sites' names allocate nothing more.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    leaked
}

/// Header names from the config (validated there), lower case.
fn header_names(names: &[String]) -> Vec<HeaderName> {
    names
        .iter()
        .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
        .collect()
}

/// The configured sites in match order.
pub(crate) struct Sites(Vec<Arc<Site>>);

impl Sites {
    pub(crate) fn new(sites: Vec<Site>) -> Self {
        Sites(sites.into_iter().map(Arc::new).collect())
    }

    /// The first site whose host pattern and path prefix fit. `host` is without port, lower-case.
    pub(crate) fn find(&self, host: &str, path: &str) -> Option<&Arc<Site>> {
        self.find_at(host, path).map(|(_, s)| s)
    }

    /// [`Sites::find`], with the site's place in the list (see [`Sites::get`]).
    pub(crate) fn find_at(&self, host: &str, path: &str) -> Option<(usize, &Arc<Site>)> {
        self.0.iter().enumerate().find(|(_, s)| {
            s.hosts.iter().any(|h| h.matches(host)) && path.starts_with(&s.path_prefix)
        })
    }

    /// The site at `index` of [`Sites::find_at`].
    pub(crate) fn get(&self, index: usize) -> Option<&Arc<Site>> {
        self.0.get(index)
    }

    /// Every site, in match order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Site>> {
        self.0.iter()
    }
}

/// A request's authority (Host header or absolute-form target), validated and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authority {
    /// Lower-case, without port or trailing dot; what sites match on.
    pub(crate) host: String,
    /// The explicit port, if any: part of the canonical authority unless it is 80.
    pub(crate) port: Option<u16>,
}

impl Authority {
    /// Parses strictly: a DNS name or IPv4 address (letters, digits, `-`, `.`, `_`) or a
    /// bracketed IPv6 literal, then an optional numeric port. Anything else (`/`, `@`, spaces, a
    /// second colon) is refused: such a Host could reach the origin in a form the cache key does
    /// not record, and let one client poison what others get.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest.split_once(']')?;
            if inner.is_empty()
                || !inner
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            {
                return None;
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (format!("[{}]", inner.to_ascii_lowercase()), port)
        } else {
            let (h, p) = match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            };
            let h = h.strip_suffix('.').unwrap_or(h);
            if h.is_empty()
                || h.len() > 253
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            {
                return None;
            }
            (h.to_ascii_lowercase(), p)
        };
        let port = match port {
            None => None,
            Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse().ok()?)
            }
            Some(_) => return None,
        };
        Some(Self { host, port })
    }

    /// `host` or `host:port` (the default port, 80, or 443 for `https`, left out): what the cache key records and what the
    /// origin is sent as Host, so the two never disagree.
    /// `a.test:443` and `a.test` are one https URL, as they are to browsers.
    pub(crate) fn canonical_for(&self, https: bool) -> String {
        let default = if https { 443 } else { 80 };
        match self.port {
            Some(p) if p != default => {
                let mut s = String::with_capacity(self.host.len() + 6);
                s.push_str(&self.host);
                s.push(':');
                crate::numfmt::push_u64(&mut s, u64::from(p));
                s
            }
            _ => self.host.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert!(HostPattern::parse("*").matches("anything"));
        assert!(HostPattern::parse("Example.com").matches("example.com"));
        assert!(!HostPattern::parse("example.com").matches("evil.com"));
        assert!(HostPattern::parse("*.example.com").matches("a.example.com"));
        assert!(!HostPattern::parse("*.example.com").matches("example.com"));
        assert!(!HostPattern::parse("*.example.com").matches("badexample.com"));
    }

    #[test]
    fn authorities_are_parsed_strictly() {
        let a = |s| Authority::parse(s).map(|a| (a.host.clone(), a.canonical_for(false)));
        let tls = |s| Authority::parse(s).map(|a| a.canonical_for(true));
        assert_eq!(tls("a.test:443").as_deref(), Some("a.test"));
        assert_eq!(tls("a.test:80").as_deref(), Some("a.test:80"));
        assert_eq!(tls("a.test:8443").as_deref(), Some("a.test:8443"));
        assert_eq!(
            a("Example.COM:8080"),
            Some(("example.com".into(), "example.com:8080".into()))
        );
        assert_eq!(
            a("example.com.:80"),
            Some(("example.com".into(), "example.com".into()))
        );
        assert_eq!(a("[::1]:8080"), Some(("[::1]".into(), "[::1]:8080".into())));
        assert_eq!(
            a("127.0.0.1"),
            Some(("127.0.0.1".into(), "127.0.0.1".into()))
        );
        for bad in [
            "example.com:@evil.com",
            "a.com/assets",
            "a.com:80:80",
            "a b",
            "",
            ":80",
            "a.com:",
            "a.com:99999",
            "[::1",
            "[zz]",
            "a.com:8o",
        ] {
            assert_eq!(Authority::parse(bad), None, "{bad}");
        }
    }
}
