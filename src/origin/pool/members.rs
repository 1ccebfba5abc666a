//! Who is in a pool: one member per configured server with an IP literal, one per address of a
//! server named by host name. A re-resolution builds a new member list; members whose address
//! did not change are carried over as they are (health, load, connections).

use super::balance::{self, hash_bytes};
use super::health::Health;
use crate::config::{OriginConfig, OriginServerConfig};
use crate::origin::{SetupError, Upstream, upstream::Link};
use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A server as configured (`origins[i]`), and how its members are reached.
pub(super) struct Entry {
    /// Its URL as configured: names it and its members in logs.
    url: String,
    /// The URL requests are built on: the configured one, with the `origin_sni` name as its
    /// host when there is one (the name TLS sends and verifies).
    base: String,
    /// The host name to resolve; `None` for an IP literal.
    pub(super) name: Option<String>,
    /// Where a pinned connection goes: the URL's port, or its scheme's.
    port: u16,
    /// The host the client connects under, when it differs from what it would resolve
    /// itself (a resolved name, or an `origin_sni` name over an IP literal).
    pinned_host: Option<String>,
    /// The IP literal of the URL, for an `origin_sni` name to be pinned to.
    literal: Option<IpAddr>,
    weight: u32,
    backup: bool,
    max_connections: usize,
}

impl Entry {
    pub(super) fn new(cfg: &OriginServerConfig, sni: Option<&str>) -> Result<Self, SetupError> {
        let bad = |reason: String| SetupError::Url {
            url: cfg.url.clone(),
            reason,
        };
        let mut url =
            reqwest::Url::parse(cfg.url.trim_end_matches('/')).map_err(|e| bad(e.to_string()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| bad("no port".into()))?;
        let host = url.host_str().ok_or_else(|| bad("no host".into()))?;
        let (name, literal) = match literal_ip(host) {
            Some(ip) => (None, Some(ip)),
            None => (Some(host.to_string()), None),
        };
        // Only an https URL has a TLS name to replace.
        let sni = sni.filter(|_| url.scheme() == "https");
        if let Some(sni) = sni {
            url.set_host(Some(sni)).map_err(|e| bad(e.to_string()))?;
        }
        let pinned_host = match (&name, sni) {
            (_, Some(sni)) => Some(sni.to_string()),
            (Some(name), None) => Some(name.clone()),
            (None, None) => None,
        };
        Ok(Self {
            url: cfg.url.clone(),
            base: url.as_str().trim_end_matches('/').to_string(),
            name,
            port,
            pinned_host,
            literal,
            weight: cfg.weight,
            backup: cfg.backup,
            max_connections: cfg.max_connections,
        })
    }
}

/// The address a URL's host writes, if it is an IP literal (`10.0.0.1`, `[::1]`).
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_matches(['[', ']']).parse().ok()
}

/// Does this origin URL name its host (so that the edge resolves it), rather than give an
/// address?
pub(crate) fn names_a_host(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| literal_ip(h).is_none()))
        .unwrap_or(false)
}

/// What building a member needs besides its entry.
pub(super) struct Build {
    pub(super) origin: OriginConfig,
    pub(super) loops: usize,
    /// `origin_host`.
    pub(super) host: Option<String>,
    /// `origin_ca_file`'s certificates.
    pub(super) roots: Option<Arc<[reqwest::Certificate]>>,
}

/// One member of a pool: a server at one address.
pub(super) struct Server {
    /// The configured URL, with the address when it came from resolving a name
    /// (`http://app.internal:8080(10.0.0.7)`): names it in logs and the access log.
    pub(super) label: Arc<str>,
    pub(super) upstream: Upstream,
    pub(super) weight: u32,
    pub(super) backup: bool,
    /// `max_connections` slots; a request holds one until its body is read or dropped.
    slots: Arc<Semaphore>,
    /// Requests in progress (least-outstanding reads it).
    pub(super) outstanding: Arc<AtomicUsize>,
    pub(super) health: Health,
    /// For consistent hashing: from its label, so it is the same on every node.
    pub(super) id: u64,
    /// Which entry, at which resolved address: what a re-resolution compares.
    key: (usize, Option<IpAddr>),
}

impl Server {
    fn new(
        entry: &Entry,
        index: usize,
        addr: Option<IpAddr>,
        b: &Build,
    ) -> Result<Self, SetupError> {
        let label: Arc<str> = match addr {
            Some(a) => format!("{}({a})", entry.url).into(),
            None => entry.url.as_str().into(),
        };
        let at = addr.or(entry.literal);
        let link = Link {
            pin: entry
                .pinned_host
                .clone()
                .zip(at)
                .map(|(h, ip)| (h, SocketAddr::new(ip, entry.port))),
            roots: b.roots.clone(),
        };
        Ok(Self {
            upstream: Upstream::new(&entry.base, b.host.as_deref(), &b.origin, b.loops, &link)?,
            weight: entry.weight,
            backup: entry.backup,
            slots: Arc::new(Semaphore::new(entry.max_connections)),
            outstanding: Arc::new(AtomicUsize::new(0)),
            health: Health::default(),
            id: hash_bytes(&[label.as_bytes()]),
            label,
            key: (index, addr),
        })
    }

    /// A slot under `max_connections`, waited for at most `wait`; it is released when the
    /// lease (held by the response body) is dropped.
    pub(super) async fn lease(&self, wait: Duration) -> Option<Lease> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(wait, self.slots.clone().acquire_owned())
                .await
                .ok()?
                .ok()?,
        };
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            _permit: permit,
            outstanding: self.outstanding.clone(),
        })
    }
}

/// A request's hold on a server: a slot and a count in `outstanding`.
pub(super) struct Lease {
    _permit: OwnedSemaphorePermit,
    outstanding: Arc<AtomicUsize>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The servers of one tier (primaries or backups) and their round-robin order.
pub(super) struct Tier {
    pub(super) members: Vec<usize>,
    /// Positions in `members`, interleaved by weight.
    pub(super) order: Vec<usize>,
}

/// A pool's members at one time.
pub(super) struct Members {
    pub(super) servers: Vec<Arc<Server>>,
    pub(super) primaries: Tier,
    pub(super) backups: Tier,
}

impl Members {
    /// The members of `entries`, a resolved entry at each of its `addrs` (`None` for an IP
    /// literal, or a name left to the HTTP client), reusing those of `old` that are unchanged.
    pub(super) fn build(
        entries: &[Entry],
        addrs: &[Option<Vec<IpAddr>>],
        old: Option<&Members>,
        b: &Build,
    ) -> Result<Self, SetupError> {
        let mut servers = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let at: Vec<Option<IpAddr>> = match addrs.get(i) {
                Some(Some(list)) => list.iter().copied().map(Some).collect(),
                _ => vec![None],
            };
            for addr in at {
                let kept = old.and_then(|m| m.servers.iter().find(|s| s.key == (i, addr)));
                servers.push(match kept {
                    Some(s) => s.clone(),
                    None => Arc::new(Server::new(entry, i, addr, b)?),
                });
            }
        }
        let tier = |backup: bool| {
            let members: Vec<usize> = (0..servers.len())
                .filter(|&i| servers[i].backup == backup)
                .collect();
            let weights: Vec<u32> = members.iter().map(|&i| servers[i].weight).collect();
            Tier {
                order: balance::schedule(&weights),
                members,
            }
        };
        Ok(Self {
            primaries: tier(false),
            backups: tier(true),
            servers,
        })
    }

    /// The labels of the members.
    #[cfg(test)]
    pub(super) fn labels(&self) -> Vec<&str> {
        self.servers.iter().map(|s| &*s.label).collect()
    }
}
