//! Who may be served, and how often: allow / deny lists of address ranges (a site's, the
//! admin API's), a token bucket per client address (a site's `rate_limit`), with counts of
//! what they refused.
//!
//! Both are checked before anything else a site or the admin API does, on the client address
//! the edge believes (the connection's, or behind a trusted proxy the one it forwarded for): a
//! header from anyone else cannot move a client into a list or out of its bucket.

use super::error::ProxyError;
use crate::{
    clock::Clock,
    config::{Cidr, SiteConfig},
};
use governor::{Quota, RateLimiter, middleware::NoOpMiddleware, state::keyed::DashMapStateStore};
use std::{
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
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
    /// The site's `rate_limit`, if it has one.
    limit: Option<Arc<Limiter>>,
}

impl SiteAccess {
    /// The rules of `cfg`; `None` when it has neither a list nor a limit. `clock` is the
    /// edge's: the buckets refill on it, so a test moves time instead of sleeping.
    pub(crate) fn new(cfg: &SiteConfig, clock: &Clock) -> Option<Self> {
        let acl = Acl::new(cfg.allow.clone(), cfg.deny.clone());
        let limit = cfg.rate_limit.as_ref().map(|r| {
            let burst = NonZeroU32::new(r.burst()).unwrap_or(NonZeroU32::MIN);
            let every = r.per.0 / r.requests.max(1);
            let quota = Quota::with_period(every)
                .unwrap_or(Quota::per_second(NonZeroU32::MAX))
                .allow_burst(burst);
            Limiter::start(quota, clock.clone())
        });
        (!acl.is_empty() || limit.is_some()).then_some(Self { acl, limit })
    }

    /// Lets `client` through, or says why not (counted in `counts`). A request with no client
    /// address (no connection behind it) has no bucket to take from.
    pub(crate) fn check(
        &self,
        client: Option<IpAddr>,
        counts: &AccessCounts,
    ) -> Result<(), ProxyError> {
        if !self.acl.admits(client) {
            counts.count_acl_refused();
            return Err(ProxyError::Forbidden);
        }
        if let (Some(limit), Some(ip)) = (&self.limit, client)
            && let Err(wait) = limit.take(ip)
        {
            counts.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(ProxyError::RateLimited(wait));
        }
        Ok(())
    }
}

/// The edge's [`Clock`] as governor's: the buckets refill on the time the cache runs on.
#[derive(Clone, Debug)]
struct BucketClock(Clock);

impl governor::clock::Clock for BucketClock {
    type Instant = SystemTime;

    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

/// A token bucket per client: governor's keyed GCRA limiter (one state word per key, updated
/// with a compare-and-swap, in a sharded map).
pub(crate) struct Limiter {
    buckets:
        RateLimiter<IpAddr, DashMapStateStore<IpAddr>, BucketClock, NoOpMiddleware<SystemTime>>,
    clock: Clock,
}

/// How often the buckets of clients that have gone quiet (full again) are dropped.
const FORGET_EVERY: Duration = Duration::from_secs(60);

impl Limiter {
    /// A limiter of `quota` per client, with a task that forgets the full buckets every
    /// [`FORGET_EVERY`] for as long as the limiter lives (a reload drops it, and the task ends).
    fn start(quota: Quota, clock: Clock) -> Arc<Self> {
        let limiter = Arc::new(Self {
            buckets: RateLimiter::new(
                quota,
                DashMapStateStore::default(),
                BucketClock(clock.clone()),
            ),
            clock,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&limiter);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(FORGET_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(l) = weak.upgrade() else { break };
                    l.buckets.retain_recent();
                    l.buckets.shrink_to_fit();
                }
            });
        }
        limiter
    }

    /// Takes one request from `ip`'s bucket, or says how long until it may send the next.
    fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        self.buckets
            .check_key(&bucket_of(ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Clients with a bucket that is not full.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.buckets.retain_recent();
        self.buckets.len()
    }
}

/// The key a client's requests are counted under: an IPv4 address, or an IPv6 address's /64
/// (a host is usually given a whole /64, and would otherwise have 2^64 buckets).
fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// What the access rules refused, since start: counted where the refusal is made, read by
/// whoever reports them (the metrics endpoint). One per listener: the edge's and the admin
/// API's.
#[derive(Debug, Default)]
pub struct AccessCounts {
    /// Requests refused with 403 by an `allow` / `deny` list.
    acl_refused: AtomicU64,
    /// Requests refused with 429 by a `rate_limit`.
    rate_limited: AtomicU64,
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

    /// Requests refused with 429 by a `rate_limit` so far.
    pub(crate) fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
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

    fn limited(keys: &str, clock: &Clock) -> SiteAccess {
        let toml = format!("[[site]]\nname='a'\nhosts=['*']\norigin='http://127.0.0.1:9'\n{keys}");
        let cfg = crate::config::Config::from_toml(&toml).unwrap();
        SiteAccess::new(&cfg.sites[0], clock).unwrap()
    }

    #[test]
    fn a_bucket_holds_its_burst_and_refills_at_the_rate_on_the_edges_clock() {
        let clock = Clock::wall();
        let rules = limited(
            "rate_limit = { requests = 2, per = '1s', burst = 3 }",
            &clock,
        );
        let counts = AccessCounts::default();
        let a = Some(ip("192.0.2.1"));
        for _ in 0..3 {
            rules.check(a, &counts).unwrap();
        }
        let Err(ProxyError::RateLimited(wait)) = rules.check(a, &counts) else {
            panic!("the fourth request at once is over the burst");
        };
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Another client has its own bucket.
        rules.check(Some(ip("192.0.2.2")), &counts).unwrap();
        assert_eq!(counts.rate_limited(), 1);
        // Half a second brings one request back, not more.
        clock.advance(Duration::from_millis(500));
        rules.check(a, &counts).unwrap();
        assert!(rules.check(a, &counts).is_err());
        // A quiet client's bucket fills up again and is forgotten.
        clock.advance(Duration::from_secs(5));
        assert_eq!(rules.limit.as_ref().unwrap().clients(), 0);
        // No address, no bucket.
        for _ in 0..10 {
            rules.check(None, &counts).unwrap();
        }
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let clock = Clock::wall();
        let rules = limited("rate_limit = { requests = 1, per = '1m' }", &clock);
        let counts = AccessCounts::default();
        rules.check(Some(ip("2001:db8:0:1::1")), &counts).unwrap();
        assert!(
            rules
                .check(Some(ip("2001:db8:0:1::ffff")), &counts)
                .is_err()
        );
        rules.check(Some(ip("2001:db8:0:2::1")), &counts).unwrap();
        // An IPv4 client of a dual-stack socket is its IPv4 address.
        rules.check(Some(ip("192.0.2.9")), &counts).unwrap();
        assert!(rules.check(Some(ip("::ffff:192.0.2.9")), &counts).is_err());
    }
}
