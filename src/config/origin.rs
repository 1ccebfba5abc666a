//! `[origin]`: timeouts and pooling for upstream origins, and what an origin URL may be.

use super::{ConfigError, Secs, invalid, nonzero};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Timeouts and pooling for upstream origins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct OriginConfig {
    /// Longest wait for a connection to an origin to open. Default: 3s.
    pub(crate) connect_timeout: Secs,
    /// From the end of sending the request (its body included) to receiving the response
    /// head; an upload's own time is bounded by `total_timeout`. Default: 30s.
    pub(crate) first_byte_timeout: Secs,
    /// For the whole exchange, body included. Default: 5m.
    pub(crate) total_timeout: Secs,
    /// Longest pause within a response body, from the origin or while a reader waits on a
    /// fill's next bytes; the body is then cut. Default: 30s.
    pub(crate) body_idle_timeout: Secs,
    /// Idle keep-alive connections kept per origin host (per event loop with `server.threads`).
    /// Default: 64.
    pub(crate) max_idle_per_host: usize,
    /// Name servers for origin host names (`"10.0.0.2"` or `"10.0.0.2:5353"`); empty uses
    /// the system's (`/etc/resolv.conf`, and `/etc/hosts`). Default: empty.
    pub(crate) resolver: Vec<String>,
    /// An origin name's addresses are kept for their record TTL, but at least this long.
    /// Default: 5s.
    pub(crate) dns_min_ttl: Secs,
    /// And at most this long, whatever the TTL. Default: 10m.
    pub(crate) dns_max_ttl: Secs,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Secs(Duration::from_secs(3)),
            first_byte_timeout: Secs(Duration::from_secs(30)),
            body_idle_timeout: Secs(Duration::from_secs(30)),
            total_timeout: Secs(Duration::from_secs(300)),
            max_idle_per_host: 64,
            resolver: Vec::new(),
            dns_min_ttl: Secs(Duration::from_secs(5)),
            dns_max_ttl: Secs(Duration::from_secs(600)),
        }
    }
}

pub(super) fn validate_origin_url(url: &str) -> Result<(), String> {
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

impl OriginConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        nonzero(&[
            ("origin.connect_timeout", self.connect_timeout),
            ("origin.first_byte_timeout", self.first_byte_timeout),
            ("origin.total_timeout", self.total_timeout),
            ("origin.body_idle_timeout", self.body_idle_timeout),
            ("origin.dns_min_ttl", self.dns_min_ttl),
        ])?;
        if self.dns_max_ttl.0 < self.dns_min_ttl.0 {
            return Err(invalid(
                "origin.dns_max_ttl",
                "must not be shorter than origin.dns_min_ttl",
            ));
        }
        for (i, s) in self.resolver.iter().enumerate() {
            parse_name_server(s).map_err(|r| invalid(format!("origin.resolver[{i}]"), r))?;
        }
        Ok(())
    }

    /// The name servers of `resolver` (validated), port 53 where none is given.
    pub(crate) fn name_servers(&self) -> Vec<SocketAddr> {
        self.resolver
            .iter()
            .filter_map(|s| parse_name_server(s).ok())
            .collect()
    }
}

fn parse_name_server(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("`{s}` is not an IP address (optionally with :port)"))
}
