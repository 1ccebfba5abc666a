//! What the cache did for one request, rendered as RFC 9211 `Cache-Status` and a plain
//! `X-Cache` for people reading curl output.

use crate::numfmt::{push_i64, push_u64};
use http::HeaderValue;

/// The outcome of one request, from the cache's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served fresh from the store.
    Hit,
    /// Served stale from the store: within stale-while-revalidate (a refresh runs in the
    /// background) or stale-if-error (the origin failed).
    Stale(StaleReason),
    /// Fetched from the origin because nothing stored matched.
    Miss(MissReason),
    /// A stored copy had expired; the origin sent a new one.
    Expired,
    /// A stored copy had expired; the origin confirmed it (304).
    Revalidated,
    /// Not looked up at all (method, or the client asked not to).
    Bypass(&'static str),
    /// The client wanted a stored answer only (`only-if-cached`) and none was usable.
    NotCached,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    WhileRevalidate,
    IfError,
    /// The client accepts a copy this stale (`max-stale`), where the site honours it.
    Accepted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// No entry for the URL.
    Uri,
    /// Entries for the URL, none for this request's Vary values.
    Vary,
    /// The URL recently answered with something unstorable; coalescing skipped.
    HitForMiss,
    /// The in-flight budget was full: passed through without storing.
    Busy,
}

impl Outcome {
    /// The `X-Cache` value.
    pub fn x_cache(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Stale(_) => "STALE",
            Outcome::Miss(_) => "MISS",
            Outcome::Expired => "EXPIRED",
            Outcome::Revalidated => "REVALIDATED",
            Outcome::Bypass(_) => "BYPASS",
            Outcome::NotCached => "MISS",
        }
    }
}

/// Everything `Cache-Status` reports for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStatus {
    /// What the cache did: the `X-Cache` value and the `Cache-Status` hit/fwd parameters.
    pub outcome: Outcome,
    /// Status the origin answered with, when it was asked.
    pub(crate) fwd_status: Option<u16>,
    /// The response was stored (or a stored one updated).
    pub stored: bool,
    /// Served from another request's fill of the same key.
    pub collapsed: bool,
    /// Freshness left, in seconds (negative when stale).
    pub ttl: Option<i64>,
    /// Free-form reason: why not stored, why stale.
    pub(crate) detail: Option<&'static str>,
}

impl CacheStatus {
    pub fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            fwd_status: None,
            stored: false,
            collapsed: false,
            ttl: None,
            detail: None,
        }
    }

    /// The RFC 9211 member for this cache, e.g. `edgecache; fwd=uri-miss; fwd-status=200; stored; ttl=60`.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(64);
        s.push_str("edgecache");
        let fwd = match self.outcome {
            Outcome::Hit => {
                s.push_str("; hit");
                None
            }
            Outcome::Stale(StaleReason::WhileRevalidate | StaleReason::Accepted) => {
                s.push_str("; hit");
                None
            }
            // Neither served from the store nor sent on: no `hit`, no `fwd` (RFC 9211).
            Outcome::NotCached => None,
            // The request did go forward; the error it met is why the stored copy is served.
            Outcome::Stale(StaleReason::IfError) => Some("stale"),
            Outcome::Miss(MissReason::Uri) => Some("uri-miss"),
            Outcome::Miss(MissReason::Vary) => Some("vary-miss"),
            Outcome::Miss(_) => Some("miss"),
            Outcome::Expired | Outcome::Revalidated => Some("stale"),
            Outcome::Bypass("method") => Some("method"),
            Outcome::Bypass(_) => Some("bypass"),
        };
        if let Some(f) = fwd {
            s.push_str("; fwd=");
            s.push_str(f);
        }
        if let Some(st) = self.fwd_status {
            s.push_str("; fwd-status=");
            push_u64(&mut s, u64::from(st));
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(t) = self.ttl {
            s.push_str("; ttl=");
            push_i64(&mut s, t);
        }
        // Why an answer was not stored says more than how the request got there; a hit-for-miss
        // request shows as `fwd=miss` (instead of uri-miss) either way.
        let detail = self.detail.or(match self.outcome {
            Outcome::Stale(StaleReason::WhileRevalidate) => Some("stale-while-revalidate"),
            Outcome::Stale(StaleReason::IfError) => Some("stale-if-error"),
            Outcome::Miss(MissReason::HitForMiss) => Some("hit-for-miss"),
            Outcome::Miss(MissReason::Busy) => Some("inflight-budget"),
            Outcome::Bypass(r) if r != "method" => Some(r),
            _ => None,
        });
        if let Some(d) = detail {
            s.push_str("; detail=");
            s.push_str(d);
        }
        s
    }

    /// `render()` appended to an upstream `Cache-Status`, so the list reads origin-side first.
    pub(crate) fn header_value(&self, upstream: Option<&HeaderValue>) -> HeaderValue {
        let own = self.render();
        let joined = match upstream
            .and_then(|u| u.to_str().ok())
            .filter(|u| !u.trim().is_empty())
        {
            Some(u) => format!("{u}, {own}"),
            None => own,
        };
        HeaderValue::try_from(joined).unwrap_or_else(|_| HeaderValue::from_static("edgecache"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9211_members() {
        let mut s = CacheStatus::new(Outcome::Hit);
        s.ttl = Some(42);
        assert_eq!(s.render(), "edgecache; hit; ttl=42");
        let mut m = CacheStatus::new(Outcome::Miss(MissReason::Uri));
        m.fwd_status = Some(200);
        m.stored = true;
        m.ttl = Some(60);
        assert_eq!(
            m.render(),
            "edgecache; fwd=uri-miss; fwd-status=200; stored; ttl=60"
        );
        let mut r = CacheStatus::new(Outcome::Revalidated);
        r.fwd_status = Some(304);
        assert_eq!(r.render(), "edgecache; fwd=stale; fwd-status=304");
        let mut st = CacheStatus::new(Outcome::Stale(StaleReason::IfError));
        st.fwd_status = Some(503);
        assert_eq!(
            st.render(),
            "edgecache; fwd=stale; fwd-status=503; detail=stale-if-error"
        );
        let swr = CacheStatus::new(Outcome::Stale(StaleReason::WhileRevalidate));
        assert_eq!(
            swr.render(),
            "edgecache; hit; detail=stale-while-revalidate"
        );
        assert_eq!(
            CacheStatus::new(Outcome::Bypass("method")).render(),
            "edgecache; fwd=method"
        );
        assert_eq!(
            s.header_value(Some(&HeaderValue::from_static("origin-cache; hit"))),
            "origin-cache; hit, edgecache; hit; ttl=42"
        );
    }

    #[test]
    fn x_cache_words() {
        assert_eq!(Outcome::Hit.x_cache(), "HIT");
        assert_eq!(Outcome::Expired.x_cache(), "EXPIRED");
        assert_eq!(Outcome::Bypass("method").x_cache(), "BYPASS");
    }
}
