//! The task behind a fill: one origin request, its answer published to every reader, the body
//! stored when it may be. It runs detached from the client that started it, so a client that
//! goes away does not cancel the fill for the others.

use super::{Edge, FillMeta, forward::VIA, site::Site};
use crate::{
    cache::{
        CacheKey, FillStart, Object,
        admission::Admission,
        fill::{FillError, FillHead, FillWriter},
        key::{VaryValues, vary_names},
        policy::{self, NotStorable, PolicyRequest, SiteRules},
        status::{MissReason, Outcome, StaleReason},
        tags::take_tags,
    },
    origin::{BodyStream, OriginRequest, OriginResponse, ServedBy},
};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use std::{sync::Arc, time::SystemTime};

/// Bodies up to this (declared, or of unknown length so far) are held back with their head until
/// complete, so that the clients waiting on the fill are woken once for all of it and the head
/// can say whether it was stored (see `FillWriter::hold_back`).
const HOLD_BACK_MAX: u64 = 64 * 1024;
/// How long a small body may hold its head back. Holding back never delays a body's last byte;
/// only the first byte of a slow body waits, at most this long (or `body_idle_timeout`, if
/// shorter).
const HOLD_BACK_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Everything a fill needs from the request that started it.
pub(crate) struct FillJob {
    /// The edge it fills for: the store it writes and the settings (timeouts, hit-for-miss) it
    /// reads.
    pub(crate) edge: Arc<Edge>,
    /// The site the request matched: its origin is asked, and its rules judge the answer.
    pub(crate) site: Arc<Site>,
    /// What the answer is stored under, and what is marked hit-for-miss when it cannot be stored.
    pub(crate) key: CacheKey,
    /// The request's URI, which http-cache-semantics asks for when it judges the answer.
    pub(crate) uri: Uri,
    /// Path and query the origin is asked for.
    pub(crate) target: String,
    /// The client's headers: storability is judged against them.
    pub(crate) client_headers: HeaderMap,
    /// What the origin is sent (safe subset + validators).
    pub(crate) origin_headers: HeaderMap,
    /// The expired copy being revalidated, if any.
    pub(crate) stale: Option<Arc<Object>>,
    /// Why the request missed: the answer's outcome when there is no expired copy.
    pub(crate) miss: MissReason,
    /// The store's epoch when the fill began: the answer is stored only if the key was not removed
    /// (purged, written) since.
    pub(crate) start: FillStart,
    /// The event loop of the request that started the fill (see `Client::event_loop`).
    pub(crate) event_loop: usize,
    /// Which server of the pool answered (set once it has): for the leader's access log.
    pub(crate) served_by: Option<ServedBy>,
}

/// How a stored object answers a fill's readers, for their `Cache-Status`.
struct Served {
    outcome: Outcome,
    /// The origin's status, when it answered.
    fwd_status: Option<u16>,
    /// The object was (re)stored.
    stored: bool,
    detail: Option<&'static str>,
}

impl Served {
    /// Confirmed by a 304; `stored` when the renewed copy replaced the old one.
    fn revalidated(stored: bool) -> Self {
        Served {
            outcome: Outcome::Revalidated,
            fwd_status: Some(304),
            stored,
            detail: None,
        }
    }

    /// Standing in for an origin that failed (with `status`, or without an answer).
    fn stale_on_error(status: Option<u16>, detail: Option<&'static str>) -> Self {
        Served {
            outcome: Outcome::Stale(StaleReason::IfError),
            fwd_status: status,
            stored: false,
            detail,
        }
    }
}

impl FillJob {
    pub(crate) async fn run(mut self, mut w: FillWriter<FillMeta>) {
        let started = tokio::time::Instant::now();
        let headers = std::mem::take(&mut self.origin_headers);
        // Kept for a revalidation: a 304 may turn out to describe another representation.
        let retry = self.stale.as_ref().map(|_| {
            let mut h = headers.clone();
            h.remove(header::IF_NONE_MATCH);
            h.remove(header::IF_MODIFIED_SINCE);
            (self.target.clone(), h)
        });
        let target = std::mem::take(&mut self.target);
        let mut res = self.fetch(target, headers).await;
        let mut revalidating = self.stale.is_some();
        let foreign_304 = match (&res, &self.stale) {
            (Ok(r), Some(old)) => {
                r.status == StatusCode::NOT_MODIFIED
                    && !policy::not_modified_matches(&old.headers, &r.headers)
            }
            _ => false,
        };
        if let (true, Some((target, headers))) = (foreign_304, retry) {
            // It must not update the stored copy (RFC 9111 section 4.3.4), which a later
            // revalidation would only meet again: ask once more, unconditionally.
            tracing::debug!(key = self.key.as_str(), "304 for another representation");
            res = self.fetch(target, headers).await;
            revalidating = false;
        }
        // A fill asks conditionally only to revalidate: a 304 to anything else (a retry
        // included) describes nothing the edge has, and must not reach a client that never
        // asked a conditional question.
        if !revalidating && matches!(&res, Ok(r) if r.status == StatusCode::NOT_MODIFIED) {
            res = Err(crate::origin::OriginError::Protocol(
                "304 to an unconditional request".into(),
            ));
        }
        let origin_ms = started.elapsed().as_secs_f64() * 1000.0;
        let failed = res.as_ref().map_or(true, |r| r.status.is_server_error());
        self.site.stats.origin(failed, origin_ms / 1000.0);
        self.served_by = res.as_ref().ok().and_then(|r| r.served_by.clone());
        let now = self.edge.store.clock().now();
        // The stored copy that may stand in if the origin fails, and on whose word.
        let stand_in = self
            .stale
            .clone()
            .and_then(|s| s.freshness.stands_in_on_error(now).map(|why| (s, why)));
        match res {
            Err(e) => match stand_in {
                Some((s, why)) => {
                    let served = Served::stale_on_error(None, why);
                    self.publish_object(&mut w, s, served, origin_ms);
                }
                None => {
                    tracing::warn!(key = self.key.as_str(), error = %e, "fill failed");
                    w.finish(Err(FillError::Upstream {
                        status: e.status().as_u16(),
                        reason: e.public_reason(),
                    }));
                }
            },
            Ok(r) if r.status == StatusCode::NOT_MODIFIED && revalidating => {
                self.revalidated(&mut w, r, now, origin_ms);
            }
            // The errors RFC 5861 names for stale-if-error: an origin's other 5xx (501, 505)
            // say something about the request, not about the origin's health.
            Ok(r) if matches!(r.status.as_u16(), 500 | 502 | 503 | 504) && stand_in.is_some() => {
                let (s, why) = stand_in.expect("checked");
                let served = Served::stale_on_error(Some(r.status.as_u16()), why);
                self.publish_object(&mut w, s, served, origin_ms);
            }
            Ok(r) => self.stream(&mut w, r, now, origin_ms).await,
        }
        w.done();
    }

    async fn fetch(
        &self,
        path_and_query: String,
        headers: HeaderMap,
    ) -> Result<OriginResponse, crate::origin::OriginError> {
        self.site
            .origin
            .fetch(OriginRequest {
                method: Method::GET,
                path_and_query,
                headers,
                body: None,
                event_loop: self.event_loop,
            })
            .await
    }

    fn policy_request(&self) -> PolicyRequest<'_> {
        PolicyRequest {
            method: &Method::GET,
            uri: &self.uri,
            headers: &self.client_headers,
        }
    }

    fn rules(&self) -> SiteRules {
        SiteRules {
            cache_set_cookie: self.site.cache_set_cookie,
            negative_ttl: self.site.negative_ttl,
            stale_on_error: self.site.stale_on_error,
        }
    }

    /// A whole object is the answer (revalidated or stale): readers serve it with `from_object`.
    fn publish_object(
        &self,
        w: &mut FillWriter<FillMeta>,
        obj: Arc<Object>,
        served: Served,
        origin_ms: f64,
    ) {
        let meta = FillMeta {
            outcome: served.outcome,
            fwd_status: served.fwd_status,
            stored: served.stored,
            ttl: None,
            detail: served.detail,
            vary: Some(obj.vary.clone()),
            object: Some(obj.clone()),
            origin_ms: Some(origin_ms),
            served_by: self.served_by.clone(),
        };
        w.set_head(
            FillHead {
                status: obj.status,
                headers: HeaderMap::new(),
                shareable: true,
                meta,
            },
            None,
        );
        w.finish(Ok(()));
    }

    /// A 304: the stored body stays, its headers and freshness are renewed.
    fn revalidated(
        &self,
        w: &mut FillWriter<FillMeta>,
        r: OriginResponse,
        now: SystemTime,
        origin_ms: f64,
    ) {
        let old = self.stale.clone().expect("revalidation has a stale copy");
        // The 304 renews the targeted fields too (or keeps the stored ones): the policy reads
        // them all, the stored copy keeps them apart.
        let mut full = old.headers.clone();
        full.extend(old.targeted.clone());
        let mut merged = policy::merge_not_modified(&full, &r.headers);
        let targeted = policy::split_off_targeted(&mut merged);
        // Surrogate keys a 304 carries leave neither: the copy keeps the tags it was stored
        // with (re-tagging would need a new generation, a full answer's).
        take_tags(&mut merged, &self.site.tag_headers);
        let mut eval = merged.clone();
        eval.extend(targeted.clone());
        if let Some(age) = r.headers.get(header::AGE) {
            eval.insert(header::AGE, age.clone());
        }
        // The stored copy is already shared; whose request renewed it does not change that, so
        // the verdict is the response's alone (a user's Cookie must not evict everyone's copy).
        // Nor whether the user asked for no-store: that was about this request's own copy.
        let mut anonymous = self.client_headers.clone();
        for name in [
            header::AUTHORIZATION,
            header::COOKIE,
            header::CACHE_CONTROL,
            header::PRAGMA,
        ] {
            anonymous.remove(name);
        }
        let req = PolicyRequest {
            method: &Method::GET,
            uri: &self.uri,
            headers: &anonymous,
        };
        let obj = match policy::evaluate(&req, old.status, &eval, false, self.rules(), now) {
            Ok(freshness) => Arc::new(Object {
                status: old.status,
                headers: merged,
                targeted,
                body: old.body.clone(),
                vary: old.vary.clone(),
                freshness,
                // The tags it was stored with, and since when (a tag purge since then would
                // have outdated the stale copy before it could be revalidated).
                stamp: old.stamp.clone(),
            }),
            Err(_) => {
                // The renewed headers forbid storing: serve the old copy this once and drop it
                // from the store.
                self.edge.store.remove(&self.key);
                self.publish_object(w, old, Served::revalidated(false), origin_ms);
                return;
            }
        };
        let stored = self
            .edge
            .store
            .insert_if_current(self.key.clone(), obj.clone(), self.start);
        self.publish_object(w, obj, Served::revalidated(stored), origin_ms);
    }

    /// A full response: publish the head, stream the body to readers, store it if allowed.
    async fn stream(
        &self,
        w: &mut FillWriter<FillMeta>,
        r: OriginResponse,
        now: SystemTime,
        origin_ms: f64,
    ) {
        let OriginResponse {
            status,
            headers,
            body,
            ..
        } = r;
        let plan = self.judge(w, status, &headers, now);
        let mut out_headers = headers;
        let targeted = policy::split_off_targeted(&mut out_headers);
        let tags = take_tags(&mut out_headers, &self.site.tag_headers);
        out_headers.append(header::VIA, VIA);
        let outcome = if self.stale.is_some() {
            Outcome::Expired
        } else {
            Outcome::Miss(self.miss)
        };
        let freshness = plan.verdict.ok();
        // `stored` is said only when it is sure: a body of declared length that the budget
        // holds will be stored unless the origin cuts it (which cuts every reader's body too);
        // one of unknown length may yet outgrow `max_object_size` or the budget.
        let head = FillHead {
            status,
            headers: out_headers,
            shareable: plan.shareable,
            meta: FillMeta {
                outcome,
                fwd_status: Some(status.as_u16()),
                stored: freshness.is_some() && plan.content_length.is_some(),
                ttl: freshness.map(|f| f.ttl_secs(now)),
                detail: plan.verdict.err().map(NotStorable::as_str),
                vary: plan.vary.clone(),
                object: None,
                origin_ms: Some(origin_ms),
                served_by: self.served_by.clone(),
            },
        };
        let Some(mut head) = self.pump(w, head, plan.content_length, body).await else {
            return;
        };
        let outgrew = w.outgrew_object_size();
        if freshness.is_some() && outgrew {
            // Too large after all (no Content-Length said so up front): as for a declared size.
            let until = now + self.edge.settings.hit_for_miss;
            self.edge.store.mark_hit_for_miss(self.key.clone(), until);
        }
        // Store before finishing: a request arriving meanwhile finds the fill or the object.
        let retained = w.retained_body();
        // Why a storable answer may not be stored after all (a purge or a write that came
        // during the fill also refuses it, with no detail to give).
        let refused = match &retained {
            _ if outgrew => Some(NotStorable::TooLarge),
            None => Some(NotStorable::InflightBudget),
            Some(_) => None,
        };
        let whole = retained.filter(|b| plan.content_length.is_none_or(|n| n == b.len() as u64));
        let mut stored = false;
        if let (Some(full), Some(freshness), Some(vary)) = (whole, freshness, plan.vary) {
            let obj = Object {
                status,
                headers: stored_headers(head.headers(), full.len()),
                // Compact copies too: the origin's values share its connection's read buffer.
                targeted: policy::storable_headers(&targeted),
                body: full,
                vary,
                freshness,
                stamp: self.start.stamp(tags),
            };
            stored = self
                .edge
                .store
                .insert_if_current(self.key.clone(), obj, self.start);
        }
        let refused = refused.filter(|_| freshness.is_some() && !stored);
        head.publish(w, plan.content_length, Some((stored, refused)));
        w.finish(Ok(()));
    }

    /// May the answer be stored (as far as its head tells), and may others share it? A body of
    /// declared length is reserved from the in-flight budget now, so the head can say whether
    /// it will be stored. Marks the URL hit-for-miss for reasons that hold for it.
    fn judge(
        &self,
        w: &mut FillWriter<FillMeta>,
        status: StatusCode,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Plan {
        // Judged without Set-Cookie (a site may store such responses, never the cookie); the
        // map is copied only when there is one to take out.
        let without_cookie;
        let (eval, had_cookie) = if headers.contains_key(header::SET_COOKIE) {
            let mut h = headers.clone();
            h.remove(header::SET_COOKIE);
            without_cookie = h;
            (&without_cookie, true)
        } else {
            (headers, false)
        };
        let policy = policy::evaluate(
            &self.policy_request(),
            status,
            eval,
            had_cookie,
            self.rules(),
            now,
        );
        let max_object = self.edge.store.config().max_object_size;
        let content_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let vary =
            vary_names(headers).map(|names| VaryValues::from_request(&names, &self.client_headers));
        let shareable = policy.is_ok() && vary.is_some();
        let mut verdict = policy::fill_verdict(policy, vary.is_some(), content_length, max_object);
        // Second-hit admission, for a URL the store has nothing of (a new variant or a
        // revalidated copy was admitted with its URL). Refused, the answer is still served
        // and shared with whoever waits on the fill, only not stored.
        if verdict.is_ok()
            && self.site.admission == Admission::SecondHit
            && self.stale.is_none()
            && matches!(self.miss, MissReason::Uri)
        {
            let store = &self.edge.store;
            let filled = store.evictions() > 0;
            if !self
                .edge
                .doorkeeper
                .admit(self.key.as_str(), filled, store.entries())
            {
                verdict = Err(NotStorable::Admission);
            }
        }
        w.set_max_object_size(usize::try_from(max_object).unwrap_or(usize::MAX));
        if let (Ok(_), Some(n)) = (verdict, content_length)
            && !w.reserve(n)
        {
            verdict = Err(NotStorable::InflightBudget);
        }
        if verdict.is_err_and(|e| !e.is_transient()) {
            let until = now + self.edge.settings.hit_for_miss;
            self.edge.store.mark_hit_for_miss(self.key.clone(), until);
        }
        Plan {
            verdict,
            shareable,
            vary,
            content_length,
        }
    }

    /// Streams the body into the fill. A body that may be small is held back with its head
    /// (see `hold_back`) until it is all there, if it comes within `HOLD_BACK_WAIT` and
    /// `HOLD_BACK_MAX`; then the head can say exactly whether it was stored. Otherwise the
    /// head goes out and the body streams. No reader sees anything of a held fill, so none has
    /// read a chunk when the chunks are joined into the stored buffer. `None` when the fill
    /// ended early (an error, a timeout, or nobody left to read and nothing to store).
    async fn pump(
        &self,
        w: &mut FillWriter<FillMeta>,
        head: FillHead<FillMeta>,
        content_length: Option<u64>,
        mut body: BodyStream,
    ) -> Option<Head> {
        let idle = self.edge.settings.body_idle_timeout;
        let mut held_until = content_length
            .is_none_or(|n| n <= HOLD_BACK_MAX)
            .then(|| tokio::time::Instant::now() + HOLD_BACK_WAIT.min(idle));
        let mut head = if held_until.is_some() {
            w.hold_back();
            if !head.shareable || !w.retaining() {
                w.leave_table(); // as `set_head` would: nobody waits on what they cannot share
            }
            Head::Held(head)
        } else {
            Head::Out(w.set_head(head, content_length))
        };
        let mut received = 0usize;
        loop {
            let until = held_until.unwrap_or_else(|| tokio::time::Instant::now() + idle);
            match tokio::time::timeout_at(until, body.next()).await {
                Err(_) if held_until.take().is_some() => head.publish(w, content_length, None),
                Err(_) => {
                    w.finish(Err(FillError::Timeout));
                    return None;
                }
                Ok(Some(Ok(chunk))) => {
                    received += chunk.len();
                    if received > HOLD_BACK_MAX as usize && held_until.take().is_some() {
                        head.publish(w, content_length, None);
                    }
                    // No reader left and nothing to store: dropping the writer ends the fill.
                    w.push(chunk, idle).await.ok()?;
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(key = self.key.as_str(), error = %e, "origin body failed");
                    w.finish(Err(FillError::Upstream {
                        status: 502,
                        reason: e.public_reason(),
                    }));
                    return None;
                }
                Ok(None) => return Some(head),
            }
        }
    }
}

/// What the head of an answer says about storing it (see [`FillJob::judge`]).
struct Plan {
    /// Its freshness if it may be stored, or why not.
    verdict: Result<policy::Freshness, NotStorable>,
    /// Other requests for the URL may be given it.
    shareable: bool,
    /// The variant it answers; `None` for `Vary: *`.
    vary: Option<VaryValues>,
    /// The declared body length, if any: reserved from the budget up front so the head can say
    /// `stored`; a body over `HOLD_BACK_MAX` is not held back.
    content_length: Option<u64>,
}

/// The head of a streamed answer: held back with a small body, or out to the readers.
// One per fill, in its task: boxing the held head would add an allocation to every miss.
#[allow(clippy::large_enum_variant)]
enum Head {
    Held(FillHead<FillMeta>),
    Out(Arc<FillHead<FillMeta>>),
    /// Only while [`Head::publish`] moves it.
    Moving,
}

impl Head {
    fn headers(&self) -> &HeaderMap {
        match self {
            Head::Held(h) => &h.headers,
            Head::Out(h) => &h.headers,
            Head::Moving => unreachable!("a head is never left moving"),
        }
    }

    /// Sends a held head to the readers, with what became of the body if it is all there:
    /// `Some((stored, why not))`. Nothing to do for a head already out.
    fn publish(
        &mut self,
        w: &mut FillWriter<FillMeta>,
        content_length: Option<u64>,
        ended: Option<(bool, Option<NotStorable>)>,
    ) {
        if !matches!(self, Head::Held(_)) {
            return;
        }
        let Head::Held(mut head) = std::mem::replace(self, Head::Moving) else {
            unreachable!("checked above")
        };
        if let Some((stored, refused)) = ended {
            let m = &mut head.meta;
            m.stored = stored;
            if !stored {
                m.ttl = None;
            }
            if let Some(r) = refused {
                m.detail.get_or_insert(r.as_str());
            }
        }
        *self = Head::Out(w.set_head(head, content_length));
        w.publish();
    }
}

/// The headers kept with an object: compact copies, exact Content-Length, Via already added.
fn stored_headers(h: &HeaderMap, len: usize) -> HeaderMap {
    let mut out = policy::storable_headers(h);
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    out
}
