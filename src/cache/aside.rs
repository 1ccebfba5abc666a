//! Cache-aside for values that are not HTTP responses, such as database query results.
//!
//! [`CacheAside::get_or_load`] is the whole API: a fresh value comes from the store; a missing
//! or expired one is loaded once however many callers ask at the same time (they share one
//! fill, the same machinery the HTTP path uses), stored with a TTL (jittered, so entries filled
//! together do not expire together), and tagged. Writers call [`CacheAside::invalidate`] with
//! the tags they changed after their write commits. "Not found" is cached for a shorter,
//! separate TTL. Stale values can be served while a refresh runs (`stale_while_revalidate`) or
//! when the loader fails (`stale_if_error`).
//!
//! Values live in the edge's [`Store`] under keys of their own namespace, so they share its
//! memory budget, eviction and tag generations with cached HTTP responses.

use super::{
    CacheKey, Object, Store,
    decide::{Decision, RequestDirectives, decide},
    fill::{FillHead, Fills, InflightBudget, Joined},
    key::VaryValues,
    policy::Freshness,
    status::{CacheStatus, MissReason, Outcome, StaleReason},
    tags::TagStamp,
};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::{
    future::Future,
    hash::BuildHasher,
    sync::Arc,
    time::{Duration, SystemTime},
};

/// How long loaded values live.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadOptions {
    /// Freshness of a found value.
    pub ttl: Duration,
    /// Freshness of "not found".
    pub negative_ttl: Duration,
    /// After expiry, serve the old value this long while one refresh runs in the background.
    pub stale_while_revalidate: Duration,
    /// After expiry, serve the old value this long when the loader fails.
    pub stale_if_error: Duration,
    /// Fraction (0 to 1) by which a TTL is randomly shortened.
    pub jitter: f64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            jitter: 0.1,
        }
    }
}

/// A value and how it was obtained. `value: None` means the loader found nothing.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The loaded or cached value; `None` when the loader found nothing (also cached, briefly).
    pub value: Option<Bytes>,
    /// How it was obtained (HIT, MISS, STALE, collapsed), for `Cache-Status` and `X-Cache`.
    pub status: CacheStatus,
    /// How long the value has been cached (zero when just loaded).
    pub(crate) age: Duration,
}

/// Why no value could be produced.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AsideError {
    /// The loader failed and no stale value could stand in (its error, to inspect or downcast).
    #[error("{0}")]
    Load(Arc<dyn std::error::Error + Send + Sync>),
    #[error("timed out waiting for another caller's load")]
    Timeout,
}

/// What a load publishes to every caller waiting on it.
#[derive(Debug)]
pub(crate) struct LoadMeta {
    /// What the loader returned (a value, nothing found, or its error), for every caller waiting.
    result: Result<Option<Bytes>, Arc<dyn std::error::Error + Send + Sync>>,
    /// The tag stamp taken before the load: a follower checks it is still current, since a write
    /// may have landed during the load.
    stamp: TagStamp,
    /// The value went into the store: `Cache-Status`'s `stored`.
    stored: bool,
    /// Seconds of freshness it was given, jitter applied: `Cache-Status`'s `ttl`.
    ttl: i64,
}

/// The cache-aside engine over the edge's store.
#[derive(Clone)]
pub struct CacheAside {
    /// Where values live, under keys of their own namespace, sharing the edge's budget and tags.
    store: Store,
    /// Loads in progress by key, so that callers asking at once share one load.
    fills: Arc<Fills<LoadMeta>>,
    /// How long a caller waits for another caller's load before `AsideError::Timeout`.
    wait: Duration,
}

/// How many times a caller re-tries after a shared load turned out to predate a write.
const ATTEMPTS: usize = 3;

impl CacheAside {
    /// `wait` bounds how long a caller waits for another caller's load.
    pub fn new(store: Store, budget: Arc<InflightBudget>, wait: Duration) -> Self {
        Self {
            store,
            fills: Arc::new(Fills::new(budget)),
            wait,
        }
    }

    /// Makes every value tagged with any of `tags` stale for good: later reads load anew, and a
    /// load that started before this call cannot store its result.
    pub fn invalidate<S: AsRef<str>>(&self, tags: &[S]) {
        self.store.tags().invalidate(tags);
    }

    /// Returns the value for `key`, loading it with `loader` when needed. `tags` name what the
    /// value depends on, for [`CacheAside::invalidate`].
    pub async fn get_or_load<F, Fut, E>(
        &self,
        key: &str,
        tags: &[String],
        opts: &LoadOptions,
        loader: F,
    ) -> Result<Fetched, AsideError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<Bytes>, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let ck = CacheKey::new("@data", "", key);
        let now = self.store.clock().now();
        let found = self.store.lookup(&ck, &HeaderMap::new(), now);
        let decision = decide(found, RequestDirectives::default(), now);
        tracing::trace!(key = %key, decision = decision.as_str());
        let stale = match decision {
            // (A value has no client to accept staleness or forbid the source.)
            Decision::Fresh(obj) | Decision::StaleAccepted(obj) => {
                return Ok(from_object(&obj, Outcome::Hit, now));
            }
            Decision::StaleWhileRevalidate(obj, _) => {
                if let Joined::Leader(w) = self.fills.join((ck.clone(), VaryValues::default())) {
                    let stamp = self.store.tags().stamp(tags);
                    tokio::spawn(self.clone().load(w, ck, stamp, *opts, loader));
                }
                let outcome = Outcome::Stale(StaleReason::WhileRevalidate);
                return Ok(from_object(&obj, outcome, now));
            }
            // Values have no validators: an expired one can only stand in on errors.
            Decision::Revalidate(obj, _) | Decision::StaleIfErrorCandidate(obj, _) => Some(obj),
            Decision::Miss(..) | Decision::Pass(_) | Decision::NotCached => None,
        };
        let mut loader = Some(loader);
        for _ in 0..ATTEMPTS {
            let (mut reader, leader) = match self.fills.join((ck.clone(), VaryValues::default())) {
                Joined::Leader(w) => {
                    let Some(load) = loader.take() else { break };
                    let r = w
                        .fill()
                        .reader(self.wait)
                        .expect("a new fill has dropped nothing");
                    let stamp = self.store.tags().stamp(tags);
                    tokio::spawn(self.clone().load(w, ck.clone(), stamp, *opts, load));
                    (r, true)
                }
                Joined::Follower(f) => match f.reader(self.wait) {
                    Some(r) => (r, false),
                    None => continue,
                },
            };
            let head = reader
                .head(self.wait)
                .await
                .map_err(|_| AsideError::Timeout)?;
            let m = &head.meta;
            if !leader && !self.store.tags().is_current(&m.stamp) {
                // That load began before a write that has since completed: not for us.
                continue;
            }
            let now = self.store.clock().now();
            return match &m.result {
                Ok(value) => {
                    let outcome = if stale.is_some() {
                        Outcome::Expired
                    } else {
                        Outcome::Miss(MissReason::Uri)
                    };
                    let mut status = CacheStatus::new(outcome);
                    status.collapsed = !leader;
                    status.stored = m.stored;
                    status.ttl = Some(m.ttl);
                    Ok(Fetched {
                        value: value.clone(),
                        status,
                        age: Duration::ZERO,
                    })
                }
                Err(e) => match stale.filter(|s| s.freshness.within_stale_if_error(now)) {
                    Some(s) => Ok(from_object(&s, Outcome::Stale(StaleReason::IfError), now)),
                    None => Err(AsideError::Load(e.clone())),
                },
            };
        }
        Err(AsideError::Timeout)
    }

    /// Runs one load to the end, stores what it may, and publishes the result.
    async fn load<F, Fut, E>(
        self,
        mut w: super::fill::FillWriter<LoadMeta>,
        ck: CacheKey,
        stamp: TagStamp,
        opts: LoadOptions,
        loader: F,
    ) where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<Bytes>, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let result = loader()
            .await
            .map_err(|e| Arc::new(e) as Arc<dyn std::error::Error + Send + Sync>);
        let now = self.store.clock().now();
        let mut stored = false;
        let mut ttl = 0;
        if let Ok(value) = &result {
            let base = if value.is_some() {
                opts.ttl
            } else {
                opts.negative_ttl
            };
            let fresh_for = jittered(base, opts.jitter, ck.as_str());
            ttl = fresh_for.as_secs() as i64;
            if !fresh_for.is_zero() && self.store.tags().is_current(&stamp) {
                let obj = Object {
                    status: if value.is_some() {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    },
                    headers: HeaderMap::new(),
                    targeted: HeaderMap::new(),
                    body: value.clone().unwrap_or_default(),
                    vary: VaryValues::default(),
                    freshness: Freshness {
                        response_time: now,
                        initial_age: Duration::ZERO,
                        fresh_for,
                        stale_while_revalidate: opts.stale_while_revalidate,
                        stale_if_error: opts.stale_if_error,
                        must_revalidate: false,
                        has_validator: false,
                        stale_on_error: Duration::ZERO,
                    },
                    stamp: Some(stamp.clone()),
                };
                stored = self.store.insert(ck, obj);
            }
        }
        let meta = LoadMeta {
            result,
            stamp,
            stored,
            ttl,
        };
        // Out of the table before the result is published: a waiter that finds the result
        // outdated and asks again starts (or joins) a new load, never this finished one.
        // Anyone arriving in between finds what was stored, or loads.
        w.leave_table();
        w.set_head(
            FillHead {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                shareable: true,
                meta,
            },
            None,
        );
        w.finish(Ok(()));
        w.done();
    }
}

fn from_object(obj: &Object, outcome: Outcome, now: SystemTime) -> Fetched {
    let mut status = CacheStatus::new(outcome);
    status.ttl = Some(obj.freshness.ttl_secs(now));
    Fetched {
        value: (obj.status == StatusCode::OK).then(|| obj.body.clone()),
        status,
        age: obj.freshness.age(now),
    }
}

/// Shortens `ttl` by a random fraction of up to `jitter`.
fn jittered(ttl: Duration, jitter: f64, key: &str) -> Duration {
    if jitter <= 0.0 || ttl.is_zero() {
        return ttl;
    }
    // A fresh RandomState is randomly keyed: a cheap random number without another dependency.
    let r = std::collections::hash_map::RandomState::new().hash_one(key) as f64 / u64::MAX as f64;
    ttl.mul_f64(1.0 - jitter.clamp(0.0, 1.0) * r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::StoreConfig;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn aside() -> CacheAside {
        let store = Store::new(
            StoreConfig {
                max_memory: 1 << 20,
                max_inflight: 0,
                max_object_size: 1 << 16,
                max_variants: 4,
                keep: Duration::from_secs(60),
            },
            crate::clock::Clock::tokio(),
        );
        CacheAside::new(
            store,
            Arc::new(InflightBudget::new(1 << 20)),
            Duration::from_secs(5),
        )
    }

    fn t(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn jitter_only_shortens() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(100), 0.2, "k");
            assert!(
                d <= Duration::from_secs(100) && d >= Duration::from_secs(80),
                "{d:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_hit_does_not_call_the_loader_and_invalidation_does() {
        let a = aside();
        let calls = Arc::new(AtomicUsize::new(0));
        let opts = LoadOptions::default();
        for expect_calls in [1, 1] {
            let c = calls.clone();
            let f = a
                .get_or_load("k", &t(&["x"]), &opts, move || async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(Some(Bytes::from_static(b"v")))
                })
                .await
                .unwrap();
            assert_eq!(f.value.as_deref(), Some(&b"v"[..]));
            assert_eq!(calls.load(Ordering::SeqCst), expect_calls);
        }
        a.invalidate(&["x"]);
        let c = calls.clone();
        let f = a
            .get_or_load("k", &t(&["x"]), &opts, move || async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Some(Bytes::from_static(b"v2")))
            })
            .await
            .unwrap();
        assert_eq!(f.value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
