//! `[admin]`: the admin API's listener and its token.

use super::{ConfigError, cidr::Cidr, invalid};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Where the admin API listens when nothing says otherwise.
pub(crate) const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The admin API's address (also `--admin-listen`). Default: 127.0.0.1:9090, and then a
    /// port already taken (Prometheus uses 9090 too) is logged and the edge serves without
    /// its admin API; an address given explicitly must be free.
    pub listen: Option<SocketAddr>,
    /// The bearer token every admin request must carry (also `EDGECACHE_ADMIN_TOKEN`).
    /// Without one the admin API listens only on a loopback address, and asks for nothing.
    pub token: Option<String>,
    /// Who may send the HTTP `PURGE` method to the main listener (it purges one URL, every
    /// variant); anyone else gets 405. Addresses or CIDR ranges. Default: loopback.
    pub purge_from: Vec<Cidr>,
    /// Addresses (or CIDR ranges, IPv4 and IPv6) of the connections the admin API answers.
    /// Empty: every connection not in `deny`; otherwise only these. Checked before the token:
    /// anyone else gets 403. The connection's own address counts, never `X-Forwarded-For`
    /// (the admin listener trusts no proxy). Default: empty.
    pub allow: Vec<Cidr>,
    /// Connection addresses or ranges refused with 403, whatever `allow` says (deny wins).
    /// Default: empty.
    pub deny: Vec<Cidr>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: None,
            token: None,
            purge_from: Cidr::loopback(),
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

impl AdminConfig {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        self.listen.unwrap_or(DEFAULT_ADMIN_LISTEN)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        super::access::validate_lists("admin", &self.allow, &self.deny)?;
        if let Some(t) = &self.token
            && (t.len() < 16 || t.bytes().any(|b| !b.is_ascii_graphic()))
        {
            return Err(invalid(
                "admin.token",
                "must be at least 16 printable characters, without spaces",
            ));
        }
        if self.token.is_none() && !self.addr().ip().is_loopback() {
            return Err(invalid(
                "admin.listen",
                format!(
                    "{} is not a loopback address: set admin.token (or EDGECACHE_ADMIN_TOKEN) to listen there",
                    self.addr()
                ),
            ));
        }
        Ok(())
    }
}
