//! Who may be served: allow / deny lists of address ranges (a site's, the admin API's), with
//! counts of what they refused.
//!
//! The lists are checked before anything else a site or the admin API does, on the client
//! address the edge believes (the connection's, or behind a trusted proxy the one it forwarded
//! for): a header from anyone else cannot move a client into a list.

use super::error::ProxyError;
use crate::config::{Cidr, SiteConfig};
use std::{
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
};

/// An `allow` / `deny` pair. Deny wins; a non-empty allow admits only its ranges; an empty one
/// admits everyone not denied.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// The ranges admitted; empty admits everyone `deny` does not name.
    allow: Vec<Cidr>,
    /// The ranges refused, whatever `allow` says.
    deny: Vec<Cidr>,
}

impl Acl {
    /// The lists as configured.
    pub fn new(allow: Vec<Cidr>, deny: Vec<Cidr>) -> Self {
        Self { allow, deny }
    }

    /// No list at all: everyone is admitted, and the request path need not find the address.
    pub(crate) fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// May `ip` be served? An unknown address (no connection behind the request) is admitted
    /// only when there is no list to check it against.
    pub(crate) fn admits(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else {
            return self.is_empty();
        };
        !self.deny.iter().any(|r| r.contains(ip))
            && (self.allow.is_empty() || self.allow.iter().any(|r| r.contains(ip)))
    }
}

/// A site's access rules: built only for a site that has some, so a site without them costs
/// the request path one `None` check.
pub(crate) struct SiteAccess {
    /// The site's `allow` / `deny` lists.
    acl: Acl,
}

impl SiteAccess {
    /// The rules of `cfg`; `None` when it has no list.
    pub(crate) fn new(cfg: &SiteConfig) -> Option<Self> {
        let acl = Acl::new(cfg.allow.clone(), cfg.deny.clone());
        (!acl.is_empty()).then_some(Self { acl })
    }

    /// Lets `client` through, or says why not (counted in `counts`).
    pub(crate) fn check(
        &self,
        client: Option<IpAddr>,
        counts: &AccessCounts,
    ) -> Result<(), ProxyError> {
        if !self.acl.admits(client) {
            counts.count_acl_refused();
            return Err(ProxyError::Forbidden);
        }
        Ok(())
    }
}

/// What the access rules refused, since start: counted where the refusal is made, read by
/// whoever reports them (the metrics endpoint). One per listener: the edge's and the admin
/// API's.
#[derive(Debug, Default)]
pub struct AccessCounts {
    /// Requests refused with 403 by an `allow` / `deny` list.
    acl_refused: AtomicU64,
}

impl AccessCounts {
    /// Counts one request an `allow` / `deny` list refused.
    pub(crate) fn count_acl_refused(&self) {
        self.acl_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests refused with 403 by an `allow` / `deny` list so far.
    pub(crate) fn acl_refused(&self) -> u64 {
        self.acl_refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn acl(allow: &[&str], deny: &[&str]) -> Acl {
        let v = |l: &[&str]| l.iter().map(|c| c.parse().unwrap()).collect();
        Acl::new(v(allow), v(deny))
    }

    #[test]
    fn deny_wins_and_a_non_empty_allow_admits_only_its_ranges() {
        let open = acl(&[], &[]);
        assert!(open.is_empty() && open.admits(Some(ip("192.0.2.1"))) && open.admits(None));
        let a = acl(&["10.0.0.0/8", "2001:db8::/32"], &["10.9.0.0/16"]);
        assert!(a.admits(Some(ip("10.1.2.3"))));
        assert!(a.admits(Some(ip("2001:db8::1"))));
        assert!(a.admits(Some(ip("::ffff:10.1.2.3"))));
        assert!(!a.admits(Some(ip("10.9.0.1"))), "deny wins");
        assert!(!a.admits(Some(ip("192.0.2.1"))), "not in allow");
        assert!(!a.admits(None), "an unknown client is not in a list");
        let d = acl(&[], &["2001:db8::/32"]);
        assert!(!d.admits(Some(ip("2001:db8::5"))));
        assert!(d.admits(Some(ip("2001:db9::5"))));
    }
}
