//! What to do with a request, given what the store holds: the cache's life for one request as
//! data. [`decide`] is a pure function of the lookup, the request's directives and `now`; the
//! HTTP path and cache-aside both act on its [`Decision`] (the I/O stays with them), so the
//! fresh / stale / fill / fall-back sequence is written once.

use super::{
    Object,
    policy::{self, Freshness},
    status::MissReason,
    store::Lookup,
};
use http::{HeaderMap, HeaderName, Method, header};
use std::{sync::Arc, time::Duration, time::SystemTime};

/// The request's say in the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RequestDirectives<'a> {
    /// `Cache-Control: no-store`, where honoured: the cache is bypassed.
    pub(crate) no_store: bool,
    /// `no-cache` (or `Pragma: no-cache` without `Cache-Control`), where honoured: a stored
    /// copy is used only once the origin confirms it.
    pub(crate) no_cache: bool,
    /// `max-age=N`, where honoured: a stored copy older than this is not used as it is.
    pub(crate) max_age: Option<u64>,
    /// `min-fresh=N`, where honoured: a stored copy is used as it is only while it stays fresh
    /// for N more seconds.
    pub(crate) min_fresh: Option<u64>,
    /// `max-stale[=N]`, where honoured: a copy stale for at most N s (any, without a value;
    /// none, with an invalid one) is used without asking the origin, unless the response
    /// forbade it.
    pub(crate) max_stale: Option<u64>,
    /// The request's headers, looked at only where a decision needs them (so a HIT does not
    /// pay for it): `only-if-cached`, always honoured, when the answer would need the origin;
    /// and a GET's `Range`, for a URL whose answers are not being stored (the origin answers a
    /// range itself rather than the edge fetching the whole body).
    pub(crate) headers: Option<&'a HeaderMap>,
    /// A GET (only GETs have ranges).
    pub(crate) get: bool,
}

impl<'a> RequestDirectives<'a> {
    /// Reads a GET's or HEAD's directives; `honour` is the site's `honor_client_cache_control`
    /// (most edges ignore what clients say about caching; `only-if-cached` and a range are
    /// always seen).
    pub(crate) fn from_request(method: &Method, h: &'a HeaderMap, honour: bool) -> Self {
        let mut d = RequestDirectives {
            headers: Some(h),
            get: method == Method::GET,
            ..Default::default()
        };
        if !honour {
            return d;
        }
        let cc = h.get_all(header::CACHE_CONTROL);
        d.no_store = policy::directive(cc.iter(), "no-store").is_some();
        d.no_cache = policy::directive(cc.iter(), "no-cache").is_some()
            || (!h.contains_key(header::CACHE_CONTROL)
                && policy::directive(h.get_all(header::PRAGMA).iter(), "no-cache").is_some());
        let seconds = |name| {
            policy::directive(cc.iter(), name)
                .flatten()
                .and_then(|v| v.parse::<u64>().ok())
        };
        d.max_age = seconds("max-age");
        d.min_fresh = seconds("min-fresh");
        d.max_stale = policy::directive(cc.iter(), "max-stale")
            .map(|v| v.map_or(u64::MAX, |v| v.parse::<u64>().unwrap_or(0)));
        d
    }

    fn wants_range(&self) -> bool {
        self.get && self.headers.is_some_and(|h| h.contains_key(header::RANGE))
    }

    /// `only-if-cached` (RFC 9111 section 5.2.1.7): answer from the store or not at all.
    fn only_if_cached(&self) -> bool {
        self.headers.is_some_and(|h| {
            policy::directive(h.get_all(header::CACHE_CONTROL).iter(), "only-if-cached").is_some()
        })
    }

    /// Does the request forbid using a copy with this freshness without asking the origin?
    fn requires_revalidation(&self, f: &Freshness, now: SystemTime) -> bool {
        self.no_cache
            || self
                .max_age
                .is_some_and(|m| f.age(now) > Duration::from_secs(m))
            || self
                .min_fresh
                .is_some_and(|m| f.ttl_secs(now) < i64::try_from(m).unwrap_or(i64::MAX))
    }

    /// Does the request accept this stale copy as it is (`max-stale`)? Never a copy the
    /// response said must be revalidated once stale.
    fn accepts_stale(&self, f: &Freshness, now: SystemTime) -> bool {
        let stale_for = f.ttl_secs(now).unsigned_abs();
        !f.must_revalidate && self.max_stale.is_some_and(|n| stale_for <= n)
    }
}

/// Why a request does not use the cache at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassReason {
    /// The client said `no-store` and the site honours it.
    RequestNoStore,
    /// A range of a URL whose answers are not being stored (too large, uncacheable).
    RangeOfUnstored,
}

/// How to go to the origin, when the decision is to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fill {
    /// The request headers the stored answers vary on: with the URL, the key the fill is
    /// shared under.
    pub(crate) vary: Vec<HeaderName>,
    /// The URL recently answered with something unstorable: fetch alone, without waiting on
    /// or joining other requests.
    pub(crate) solo: bool,
}

/// What to do with one request.
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    /// Serve the stored copy as it is.
    Fresh(Arc<Object>),
    /// Serve the expired copy now and refresh it in the background (RFC 5861).
    StaleWhileRevalidate(Arc<Object>, Fill),
    /// Ask the origin whether the expired copy still holds (it has a validator); where
    /// stale-if-error allows, it stands in if the origin fails.
    Revalidate(Arc<Object>, Fill),
    /// Fetch anew (the expired copy has no validator, or the client asked for a fresh one);
    /// the copy may still stand in if the origin fails, where stale-if-error allows.
    StaleIfErrorCandidate(Arc<Object>, Fill),
    /// Serve the expired copy as it is: the client accepts that much staleness (`max-stale`).
    StaleAccepted(Arc<Object>),
    /// Nothing usable is stored.
    Miss(MissReason, Fill),
    /// The client asked for a stored answer only (`only-if-cached`) and none is usable: 504.
    NotCached,
    /// Do not use the cache for this request.
    Pass(PassReason),
}

impl Decision {
    /// A short name for logs.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Decision::Fresh(_) => "fresh",
            Decision::StaleWhileRevalidate(..) => "stale-while-revalidate",
            Decision::Revalidate(..) => "revalidate",
            Decision::StaleIfErrorCandidate(..) => "stale-if-error-candidate",
            Decision::Miss(MissReason::Uri, _) => "uri-miss",
            Decision::Miss(MissReason::Vary, _) => "vary-miss",
            Decision::Miss(MissReason::HitForMiss, _) => "hit-for-miss",
            Decision::Miss(MissReason::Busy, _) => "busy",
            Decision::Pass(PassReason::RequestNoStore) => "pass-request-no-store",
            Decision::Pass(PassReason::RangeOfUnstored) => "pass-range",
            Decision::StaleAccepted(_) => "stale-accepted",
            Decision::NotCached => "only-if-cached",
        }
    }
}

/// Decides what to do with a request, from what the store found for it at `now`.
pub(crate) fn decide(found: Lookup, req: RequestDirectives<'_>, now: SystemTime) -> Decision {
    let d = decide_freely(found, req, now);
    let forwards = matches!(
        d,
        Decision::Revalidate(..)
            | Decision::StaleIfErrorCandidate(..)
            | Decision::Miss(..)
            | Decision::Pass(_)
    );
    if forwards && req.only_if_cached() {
        return Decision::NotCached;
    }
    d
}

/// The decision for a request that lets the edge go to the origin.
fn decide_freely(found: Lookup, req: RequestDirectives<'_>, now: SystemTime) -> Decision {
    if req.no_store {
        return Decision::Pass(PassReason::RequestNoStore);
    }
    let (obj, entry) = match found {
        Lookup::Found(obj, entry) => (obj, entry),
        Lookup::VaryMiss(entry) => {
            let fill = Fill {
                vary: entry.vary_names(),
                solo: entry.hit_for_miss(now),
            };
            return miss(MissReason::Vary, fill, req);
        }
        Lookup::UriMiss(marked) => {
            let fill = Fill {
                vary: Vec::new(),
                solo: marked.is_some_and(|e| e.hit_for_miss(now)),
            };
            return miss(MissReason::Uri, fill, req);
        }
    };
    let f = &obj.freshness;
    let usable = !req.requires_revalidation(f, now);
    if usable && f.is_fresh(now) {
        return Decision::Fresh(obj);
    }
    if usable && req.accepts_stale(f, now) {
        return Decision::StaleAccepted(obj);
    }
    let fill = Fill {
        vary: entry.vary_names(),
        solo: entry.hit_for_miss(now),
    };
    if usable && f.within_stale_while_revalidate(now) {
        Decision::StaleWhileRevalidate(obj, fill)
    } else if f.has_validator {
        Decision::Revalidate(obj, fill)
    } else {
        Decision::StaleIfErrorCandidate(obj, fill)
    }
}

fn miss(reason: MissReason, fill: Fill, req: RequestDirectives<'_>) -> Decision {
    if fill.solo && req.wants_range() {
        // Nothing is lost by letting the origin answer the range itself, and a player seeking
        // in a large video does not download it from the start at every seek.
        return Decision::Pass(PassReason::RangeOfUnstored);
    }
    let reason = if fill.solo {
        MissReason::HitForMiss
    } else {
        reason
    };
    Decision::Miss(reason, fill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cache::{CacheKey, Store, StoreConfig, key::VaryValues},
        clock::Clock,
        test_util::headers as hm,
    };
    use bytes::Bytes;
    use http::StatusCode;

    /// `s` seconds after the tests' start (real time: the store's memory reclamation runs on
    /// the wall clock, and would drop objects stored in the past).
    fn at(s: u64) -> SystemTime {
        static T0: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
        *T0.get_or_init(|| Clock::wall().now()) + Duration::from_secs(s)
    }

    /// A store holding `/x`, fresh for 10 s from `at(0)`, usable on errors for 60 s more, with
    /// `swr` and a validator or not.
    fn stored(swr: u64, validator: bool) -> (Store, CacheKey) {
        let clock = Clock::wall();
        let s = Store::new(
            StoreConfig {
                max_memory: 1 << 20,
                max_inflight: 0,
                max_object_size: 1 << 16,
                max_variants: 4,
                keep: Duration::from_secs(3600),
            },
            clock,
        );
        let k = CacheKey::new("s", "h", "/x");
        let obj = Object {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            targeted: HeaderMap::new(),
            body: Bytes::from_static(b"x"),
            vary: VaryValues::default(),
            stamp: None,
            freshness: Freshness {
                response_time: at(0),
                initial_age: Duration::ZERO,
                fresh_for: Duration::from_secs(10),
                stale_while_revalidate: Duration::from_secs(swr),
                stale_if_error: Duration::from_secs(60),
                must_revalidate: false,
                has_validator: validator,
                stale_on_error: Duration::ZERO,
            },
        };
        assert!(s.insert(k.clone(), obj));
        (s, k)
    }

    fn decided(s: &Store, k: &CacheKey, req: RequestDirectives<'_>, now: u64) -> &'static str {
        decide(s.lookup(k, &HeaderMap::new(), at(now)), req, at(now)).as_str()
    }

    #[test]
    fn a_stored_copy_is_fresh_then_stale_while_revalidating_then_revalidated() {
        let (s, k) = stored(30, true);
        let any = RequestDirectives::default();
        assert_eq!(decided(&s, &k, any, 9), "fresh");
        assert_eq!(decided(&s, &k, any, 10), "stale-while-revalidate");
        assert_eq!(decided(&s, &k, any, 40), "stale-while-revalidate");
        assert_eq!(decided(&s, &k, any, 41), "revalidate");
        let (s, k) = stored(0, false);
        assert_eq!(decided(&s, &k, any, 11), "stale-if-error-candidate");
        let other = CacheKey::new("s", "h", "/y");
        assert_eq!(decided(&s, &other, any, 0), "uri-miss");
    }

    #[test]
    fn honoured_client_directives_change_the_decision() {
        let (s, k) = stored(30, true);
        let read = |pairs: &[(&str, &str)], honour| {
            let h: &HeaderMap = Box::leak(Box::new(hm(pairs)));
            RequestDirectives::from_request(&Method::GET, h, honour)
        };
        let no_cache = read(&[("cache-control", "No-Cache")], true);
        assert_eq!(decided(&s, &k, no_cache, 1), "revalidate");
        // Not even stale-while-revalidate: the client wants the origin's word.
        assert_eq!(decided(&s, &k, no_cache, 20), "revalidate");
        for pragma in ["no-cache", "No-Cache", "NO-CACHE"] {
            let d = read(&[("pragma", pragma)], true);
            assert_eq!(decided(&s, &k, d, 1), "revalidate", "{pragma}");
        }
        // Pragma counts only without Cache-Control.
        let both = read(
            &[("pragma", "no-cache"), ("cache-control", "max-age=60")],
            true,
        );
        assert_eq!(decided(&s, &k, both, 1), "fresh");
        let zero = read(&[("cache-control", "Max-Age=0")], true);
        assert_eq!(decided(&s, &k, zero, 1), "revalidate");
        let max_age = read(&[("cache-control", "max-age=5")], true);
        assert_eq!(decided(&s, &k, max_age, 5), "fresh");
        assert_eq!(decided(&s, &k, max_age, 6), "revalidate");
        let no_store = read(&[("cache-control", "no-store")], true);
        assert_eq!(decided(&s, &k, no_store, 1), "pass-request-no-store");
        // Unless the site honours them, clients' directives change nothing.
        for pairs in [
            &[("cache-control", "no-cache")][..],
            &[("cache-control", "no-store")][..],
        ] {
            assert_eq!(decided(&s, &k, read(pairs, false), 1), "fresh");
        }
    }

    #[test]
    fn a_url_marked_hit_for_miss_fills_alone_and_passes_ranges() {
        let (s, _) = stored(0, false);
        let k = CacheKey::new("s", "h", "/big");
        s.mark_hit_for_miss(k.clone(), at(60));
        let plain = RequestDirectives::default();
        let d = decide(s.lookup(&k, &HeaderMap::new(), at(1)), plain, at(1));
        let Decision::Miss(MissReason::HitForMiss, fill) = &d else {
            panic!("{}", d.as_str())
        };
        assert!(fill.solo);
        let range_request = hm(&[("range", "bytes=0-9")]);
        let range = RequestDirectives::from_request(&Method::GET, &range_request, false);
        let head = RequestDirectives::from_request(&Method::HEAD, &range_request, false);
        assert_eq!(
            decided(&s, &k, head, 1),
            "hit-for-miss",
            "a HEAD has no range to pass"
        );
        assert_eq!(decided(&s, &k, range, 1), "pass-range");
        // Once the mark is over, a plain miss (which a range request shares too).
        assert_eq!(decided(&s, &k, range, 61), "uri-miss");
    }

    #[test]
    fn min_fresh_and_max_stale_where_honoured() {
        let read = |pairs: &[(&str, &str)]| {
            let h: &HeaderMap = Box::leak(Box::new(hm(pairs)));
            RequestDirectives::from_request(&Method::GET, h, true)
        };
        let (s, k) = stored(0, true);
        // Fresh for 10 s from 0: at 4 it has 6 s left.
        let min_fresh = read(&[("cache-control", "min-fresh=5")]);
        assert_eq!(decided(&s, &k, min_fresh, 4), "fresh");
        assert_eq!(decided(&s, &k, min_fresh, 6), "revalidate");
        let max_stale = read(&[("cache-control", "max-stale=5")]);
        assert_eq!(decided(&s, &k, max_stale, 14), "stale-accepted");
        assert_eq!(decided(&s, &k, max_stale, 16), "revalidate");
        let any = read(&[("cache-control", "max-stale")]);
        assert_eq!(decided(&s, &k, any, 3000), "stale-accepted");
        let invalid = read(&[("cache-control", "max-stale=soon")]);
        assert_eq!(decided(&s, &k, invalid, 11), "revalidate");
        // A response that must be revalidated once stale is never served stale.
        let (s, k) = stored(0, true);
        let obj = match s.lookup(&k, &HeaderMap::new(), at(0)) {
            Lookup::Found(o, _) => o,
            _ => unreachable!(),
        };
        let mut strict = Object {
            status: obj.status,
            headers: obj.headers.clone(),
            targeted: HeaderMap::new(),
            body: obj.body.clone(),
            vary: obj.vary.clone(),
            stamp: None,
            freshness: obj.freshness,
        };
        strict.freshness.must_revalidate = true;
        assert!(s.insert(k.clone(), strict));
        assert_eq!(decided(&s, &k, any, 11), "revalidate");
        // Not honoured: nothing changes.
        let h = hm(&[("cache-control", "max-stale, min-fresh=9")]);
        let off = RequestDirectives::from_request(&Method::GET, &h, false);
        let (s, k) = stored(0, true);
        assert_eq!(decided(&s, &k, off, 5), "fresh");
        assert_eq!(decided(&s, &k, off, 11), "revalidate");
    }

    #[test]
    fn only_if_cached_is_always_honoured_and_never_goes_to_the_origin() {
        let h = hm(&[("cache-control", "only-if-cached")]);
        let only = RequestDirectives::from_request(&Method::GET, &h, false);
        let (s, k) = stored(30, true);
        assert_eq!(decided(&s, &k, only, 1), "fresh");
        // Stale while revalidating is served (the refresh is nobody's wait).
        assert_eq!(decided(&s, &k, only, 20), "stale-while-revalidate");
        assert_eq!(decided(&s, &k, only, 41), "only-if-cached");
        let other = CacheKey::new("s", "h", "/nothing");
        assert_eq!(decided(&s, &other, only, 1), "only-if-cached");
        // Nor does a honoured no-store send it on.
        let h = hm(&[("cache-control", "only-if-cached, no-store")]);
        let both = RequestDirectives::from_request(&Method::GET, &h, true);
        assert_eq!(decided(&s, &other, both, 1), "only-if-cached");
    }
}
