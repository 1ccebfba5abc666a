//! Origin names and their addresses. A pool server named by host name (not an IP literal) is
//! resolved by the edge, not by the HTTP client: every address of the name becomes a member of
//! the pool (balanced, health-checked and ejected on its own), and the answer is kept for its
//! record TTL, bounded by `[origin] dns_min_ttl` and `dns_max_ttl`, then asked again. A failed
//! re-resolution keeps the last good answer.
//!
//! [`Resolve`] is the seam: the server uses hickory's resolver (the system's configuration,
//! or the name servers of `[origin] resolver`), with its own cache off, since the pool's
//! members are the cache and they run on the edge's clock.

use futures_util::future::BoxFuture;
use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
};
use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

/// The addresses of a name and how long they may be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Sorted, without repeats.
    pub(crate) addrs: Vec<IpAddr>,
    /// The smallest TTL among the address records.
    pub(crate) ttl: Duration,
}

/// Looks names up. Errors are messages for the log.
pub(crate) trait Resolve: Send + Sync {
    fn lookup<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Answer, String>>;
}

/// How long answers are kept (`[origin] dns_min_ttl`, `dns_max_ttl`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TtlBounds {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl TtlBounds {
    pub(crate) fn clamp(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min, self.max)
    }
}

/// hickory's resolver, as the server uses it.
pub(crate) struct Hickory(TokioResolver);

impl Hickory {
    /// The system's configuration (`/etc/resolv.conf` and `/etc/hosts`), or exactly the name
    /// servers given (`ip:port`, over UDP then TCP).
    pub(crate) fn new(servers: &[SocketAddr]) -> Result<Self, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if servers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| e.to_string())?
        } else {
            let name_servers = servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                provider,
            )
        };
        // The pool keeps answers for their TTL on the edge's clock; a second cache under it
        // would answer a re-resolution from memory.
        builder.options_mut().cache_size = 0;
        builder.build().map(Hickory).map_err(|e| e.to_string())
    }
}

impl Resolve for Hickory {
    fn lookup<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Answer, String>> {
        Box::pin(async move {
            let found = self.0.lookup_ip(name).await.map_err(|e| e.to_string())?;
            let records = found.as_lookup().answers();
            let ttl = records
                .iter()
                .filter(|r| r.data.ip_addr().is_some())
                .map(|r| r.ttl)
                .min()
                .unwrap_or(0);
            let mut addrs: Vec<IpAddr> = found.iter().collect();
            addrs.sort_unstable();
            addrs.dedup();
            if addrs.is_empty() {
                return Err(format!("{name} has no address records"));
            }
            Ok(Answer {
                addrs,
                ttl: Duration::from_secs(ttl.into()),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_kept_within_the_bounds() {
        let b = TtlBounds {
            min: Duration::from_secs(5),
            max: Duration::from_secs(600),
        };
        assert_eq!(b.clamp(Duration::ZERO), Duration::from_secs(5));
        assert_eq!(b.clamp(Duration::from_secs(60)), Duration::from_secs(60));
        assert_eq!(
            b.clamp(Duration::from_secs(86_400)),
            Duration::from_secs(600)
        );
    }
}
