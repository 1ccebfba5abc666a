//! Which site a request belongs to. Only configured hosts are served: a request for any other
//! host gets 421, so the edge is never an open proxy; the origin a request reaches is always the
//! one its site names, whatever the request's target or Host says.

use crate::{
    config::{Config, SiteConfig},
    origin::{Origin, StaticDir, Upstream},
};
use http::HeaderName;
use std::sync::Arc;

/// A site, ready to serve.
pub struct Site {
    pub name: String,
    pub(crate) hosts: Vec<HostPattern>,
    pub path_prefix: String,
    pub origin: Origin,
    pub honor_client_no_cache: bool,
    pub cache_set_cookie: bool,
    /// Request headers forwarded on cacheable requests, beyond the built-in set.
    pub forward_headers: Vec<HeaderName>,
}

pub(crate) enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: stored as `.example.com`.
    Suffix(String),
}

impl HostPattern {
    fn parse(p: &str) -> Self {
        let p = p.trim().to_ascii_lowercase();
        if p == "*" {
            HostPattern::Any
        } else if let Some(rest) = p.strip_prefix('*') {
            HostPattern::Suffix(rest.to_string())
        } else {
            HostPattern::Exact(p)
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.ends_with(s.as_str()) && host.len() > s.len(),
        }
    }
}

impl Site {
    pub fn build(cfg: &SiteConfig, all: &Config) -> Result<Self, String> {
        let origin = match (&cfg.origin, &cfg.root) {
            (Some(url), _) => {
                Origin::Upstream(Upstream::new(url, cfg.origin_host.as_deref(), &all.origin)?)
            }
            (None, Some(root)) => Origin::Static(
                StaticDir::new(root.clone(), &cfg.cache_rules)
                    .map_err(|e| format!("{}: {e}", root.display()))?,
            ),
            (None, None) => return Err("no origin".into()),
        };
        Ok(Self {
            name: cfg.name.clone(),
            hosts: cfg.hosts.iter().map(|h| HostPattern::parse(h)).collect(),
            path_prefix: cfg.path_prefix.clone(),
            origin,
            honor_client_no_cache: cfg.honor_client_no_cache,
            cache_set_cookie: cfg.cache_set_cookie,
            forward_headers: cfg
                .forward_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
                .collect(),
        })
    }
}

/// The configured sites in match order.
pub struct Sites(Vec<Arc<Site>>);

impl Sites {
    pub fn new(sites: Vec<Site>) -> Self {
        Sites(sites.into_iter().map(Arc::new).collect())
    }

    /// The first site whose host pattern and path prefix fit. `host` is without port, lower-case.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Site>> {
        self.0
            .iter()
            .find(|s| s.hosts.iter().any(|h| h.matches(host)) && path.starts_with(&s.path_prefix))
    }
}

/// The host part of a Host header or authority: lower-case, without port or trailing dot.
pub fn host_without_port(authority: &str) -> String {
    let a = authority.trim();
    let host = if a.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port.
        a.split_inclusive(']').next().unwrap_or(a)
    } else {
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
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
    fn host_parsing() {
        assert_eq!(host_without_port("Example.COM:8080"), "example.com");
        assert_eq!(host_without_port("example.com."), "example.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("127.0.0.1"), "127.0.0.1");
    }
}
