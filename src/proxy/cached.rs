//! GET and HEAD: look up, serve fresh, serve stale while refreshing, or fill from the origin.

use super::{
    Edge, FillMeta, RequestCtx, error::ProxyError, fill_task::FillJob, forward, respond, site::Site,
};
use crate::cache::{
    CacheKey, Object,
    decide::{Decision, Fill, PassReason, RequestDirectives, decide},
    fill::{FillHead, FillReader, FillWriter, Joined},
    key::VaryValues,
    policy,
    status::{CacheStatus, MissReason, Outcome, StaleReason},
};
use crate::origin::range::{self, RangeSpec};
use axum::body::Body;
use futures_util::TryStreamExt;
use http::{HeaderMap, Method, Response, StatusCode, header, request::Parts};
use std::{sync::Arc, time::SystemTime};

/// Serves a cacheable request: acts on what [`decide`] says of it.
pub(crate) async fn serve(
    edge: &Arc<Edge>,
    site: &Arc<Site>,
    req: &Parts,
    ctx: &mut RequestCtx,
) -> Response<Body> {
    let now = edge.store.clock().now();
    let key = ctx.cache_key(site);
    let directives =
        RequestDirectives::from_request(&req.method, &req.headers, site.honor_client_cache_control);
    let found = edge.store.lookup(&key, &req.headers, now);
    let decision = decide(found, directives, now);
    tracing::trace!(key = ?key, decision = decision.as_str());
    let (stale, fill, miss) = match decision {
        Decision::Fresh(obj) => return hit(&obj, req, ctx, Outcome::Hit, now),
        Decision::StaleAccepted(obj) => {
            let outcome = Outcome::Stale(StaleReason::Accepted);
            return hit(&obj, req, ctx, outcome, now);
        }
        Decision::NotCached => {
            let mut cs = CacheStatus::new(Outcome::NotCached);
            cs.detail = Some("only-if-cached");
            ctx.cache = Some(cs);
            return ProxyError::NotCached.into_response(Some(&cs));
        }
        Decision::StaleWhileRevalidate(obj, fill) => {
            refresh_in_background(edge, site, req, ctx, key, obj.clone(), fill);
            let outcome = Outcome::Stale(StaleReason::WhileRevalidate);
            return hit(&obj, req, ctx, outcome, now);
        }
        Decision::Revalidate(obj, fill) | Decision::StaleIfErrorCandidate(obj, fill) => {
            let miss = if fill.solo {
                MissReason::HitForMiss
            } else {
                MissReason::Uri
            };
            (Some(obj), fill, miss)
        }
        Decision::Miss(reason, fill) => (None, fill, reason),
        Decision::Pass(why) => {
            let outcome = match why {
                PassReason::RequestNoStore => Outcome::Bypass("request"),
                PassReason::RangeOfUnstored => Outcome::Miss(MissReason::HitForMiss),
            };
            return Box::pin(super::pass::serve(edge, site, req, None, ctx, outcome)).await;
        }
    };
    // Boxed: the miss path's state is large, and a HIT should not pay for moving it around.
    let miss = Miss {
        key,
        stale,
        fill,
        reason: miss,
    };
    Box::pin(fetch(edge, site, req, ctx, miss)).await
}

/// A request that goes to the origin, as [`decide`] planned it.
struct Miss {
    /// The URL's key: with the variant, what the fill is joined under; what its answer is stored
    /// as.
    key: CacheKey,
    /// The expired copy: revalidated, or standing in if the origin fails.
    stale: Option<Arc<Object>>,
    /// How to go: the headers the variant is chosen by, and whether to fetch `solo`.
    fill: Fill,
    /// Why it missed, for `Cache-Status` and `X-Cache`; `Busy` when the in-flight budget is full.
    reason: MissReason,
}

fn hit(
    obj: &Object,
    req: &Parts,
    ctx: &mut RequestCtx,
    outcome: Outcome,
    now: SystemTime,
) -> Response<Body> {
    let mut cs = CacheStatus::new(outcome);
    cs.ttl = Some(obj.freshness.ttl_secs(now));
    ctx.cache = Some(cs);
    respond::from_object(obj, &req.method, &req.headers, &cs, now)
}

fn job(edge: &Arc<Edge>, site: &Arc<Site>, req: &Parts, ctx: &RequestCtx, m: &Miss) -> FillJob {
    let vary = &m.fill.vary;
    let mut origin_headers =
        forward::fill_headers(site, &req.headers, &ctx.host_value, ctx.client(), vary);
    if let Some(s) = &m.stale {
        policy::add_validators(&s.headers, &mut origin_headers);
    }
    FillJob {
        edge: edge.clone(),
        site: site.clone(),
        key: m.key.clone(),
        uri: req.uri.clone(),
        target: ctx.target.clone(),
        client_headers: req.headers.clone(),
        origin_headers,
        stale: m.stale.clone(),
        miss: m.reason,
        start: edge.store.fill_start(),
        event_loop: ctx.event_loop(),
        served_by: None,
    }
}

/// Starts a revalidation nobody waits for, unless one is already running for this key.
fn refresh_in_background(
    edge: &Arc<Edge>,
    site: &Arc<Site>,
    req: &Parts,
    ctx: &RequestCtx,
    key: CacheKey,
    stale: Arc<Object>,
    fill: Fill,
) {
    let fill_key = (
        key.clone(),
        VaryValues::from_request(&fill.vary, &req.headers),
    );
    if let Joined::Leader(w) = edge.fills.join(fill_key) {
        let plan = Miss {
            key,
            stale: Some(stale),
            fill,
            reason: MissReason::Uri,
        };
        tokio::spawn(job(edge, site, req, ctx, &plan).run(w));
    }
}

fn start(j: FillJob, w: FillWriter<FillMeta>, idle: std::time::Duration) -> FillReader<FillMeta> {
    let r = w
        .fill()
        .reader(idle)
        .expect("a new fill has dropped nothing");
    tokio::spawn(j.run(w));
    r
}

/// Goes to the origin through a fill: leads one, follows one already running, or (`solo`) runs
/// one nobody else joins.
async fn fetch(
    edge: &Arc<Edge>,
    site: &Arc<Site>,
    req: &Parts,
    ctx: &mut RequestCtx,
    mut plan: Miss,
) -> Response<Body> {
    if plan.stale.is_none() && edge.fills.budget().is_full() {
        plan.fill.solo = true;
        plan.reason = MissReason::Busy;
    }
    // A follower whose variant the leader's response turned out not to be joins that
    // variant's own fill; should the origin change its Vary between fills, it stops chasing.
    let mut rejoins = 0;
    loop {
        let (mut reader, leader) = plan.enter(edge, site, req, ctx);
        let head = match reader.head(edge.settings.fill_wait_timeout).await {
            Ok(h) => h,
            Err(e) => {
                let mut cs = CacheStatus::new(Outcome::Miss(plan.reason));
                cs.collapsed = !leader;
                cs.detail = Some("origin-error");
                ctx.cache = Some(cs);
                return ProxyError::Fill(e).into_response(Some(&cs));
            }
        };
        let fits = head.shareable
            && head
                .meta
                .vary
                .as_ref()
                .is_some_and(|v| v.matches(&req.headers));
        if !leader && !fits {
            match head.meta.vary.as_ref().filter(|_| head.shareable) {
                // Another variant: join the fill of ours, with others who want it too.
                Some(v) if rejoins < 2 => {
                    rejoins += 1;
                    plan.fill.vary = v.names().cloned().collect();
                }
                // Not for us to share (private, unstorable): fetch our own, waiting on nobody.
                _ => plan.fill.solo = true,
            }
            continue;
        }
        return answer(edge, req, ctx, &head, reader, leader);
    }
}

impl Miss {
    /// Takes part in a fill for this request: a new one it leads (`true`), or one already
    /// running that it follows (`false`).
    fn enter(
        &mut self,
        edge: &Arc<Edge>,
        site: &Arc<Site>,
        req: &Parts,
        ctx: &RequestCtx,
    ) -> (FillReader<FillMeta>, bool) {
        let idle = edge.settings.body_idle_timeout;
        let job = |m: &Self| job(edge, site, req, ctx, m);
        if self.fill.solo {
            return (start(job(self), edge.fills.solo(), idle), true);
        }
        let fill_key = (
            self.key.clone(),
            VaryValues::from_request(&self.fill.vary, &req.headers),
        );
        match edge.fills.join(fill_key) {
            Joined::Leader(w) => (start(job(self), w, idle), true),
            Joined::Follower(fill) => match fill.reader(idle) {
                Some(r) => (r, false),
                // The fill has already let go of bytes a new reader would need.
                None => {
                    self.fill.solo = true;
                    (start(job(self), edge.fills.solo(), idle), true)
                }
            },
        }
    }
}

/// The client's answer from a fill's head: the stored object when the fill made one, else the
/// origin's head with the fill's body.
fn answer(
    edge: &Edge,
    req: &Parts,
    ctx: &mut RequestCtx,
    head: &FillHead<FillMeta>,
    reader: FillReader<FillMeta>,
    leader: bool,
) -> Response<Body> {
    let m = &head.meta;
    let mut cs = CacheStatus::new(m.outcome);
    cs.fwd_status = m.fwd_status;
    cs.stored = m.stored;
    cs.collapsed = !leader;
    cs.ttl = m.ttl;
    cs.detail = m.detail;
    if leader {
        ctx.origin_ms = m.origin_ms;
        ctx.served_by.clone_from(&m.served_by);
    }
    let now = edge.store.clock().now();
    if let Some(obj) = &m.object {
        cs.ttl = Some(obj.freshness.ttl_secs(now));
        ctx.cache = Some(cs);
        return respond::from_object(obj, &req.method, &req.headers, &cs, now);
    }
    ctx.cache = Some(cs);
    let mut headers = head.headers.clone();
    if !leader {
        headers.remove(header::SET_COOKIE);
    }
    respond::stamp(&mut headers, &cs);
    // The client's own validators hold on a miss too (the fill goes on for the cache).
    if head.status == http::StatusCode::OK
        && crate::origin::range::not_modified(&headers, &req.headers)
    {
        return respond::not_modified_response(&headers);
    }
    // A body that is all here already (held back, or small) is served from one buffer.
    let whole = reader.whole();
    if let Some((spec, total)) = cold_range(req, head.status, &headers, whole.as_ref()) {
        let content_range = spec.content_range(total);
        return match spec {
            RangeSpec::Satisfiable(start, end) => {
                let body = match whole {
                    Some(whole) => Body::from(whole.slice(start as usize..=end as usize)),
                    None => Body::from_stream(
                        reader
                            .into_range_stream(start, end)
                            .map_err(std::io::Error::other),
                    ),
                };
                respond::partial(headers, body, end - start + 1, content_range)
            }
            _ => respond::unsatisfiable(headers, content_range),
        };
    }
    let body = if req.method == Method::HEAD {
        drop(reader);
        Body::empty()
    } else if let Some(whole) = whole {
        // The length sent is the length of the body written, whatever the origin said.
        headers.insert(header::CONTENT_LENGTH, whole.len().into());
        Body::from(whole)
    } else {
        Body::from_stream(reader.into_stream().map_err(std::io::Error::other))
    };
    let mut res = Response::new(body);
    *res.status_mut() = head.status;
    *res.headers_mut() = headers;
    res
}

/// The single byte range a client asked for of a body still coming from the origin (RFC 9110
/// section 14), and the body's length: answered 206 with just those bytes as they arrive, or
/// 416. `None` sends the whole: no `Range`, not a GET, not a 200, an `If-Range` that does not
/// hold, a length the head does not give (a chunked body), or a range the edge does not serve
/// partially (several ranges, other units).
fn cold_range(
    req: &Parts,
    status: StatusCode,
    headers: &HeaderMap,
    whole: Option<&bytes::Bytes>,
) -> Option<(RangeSpec, u64)> {
    let range = req.headers.get(header::RANGE)?;
    if req.method != Method::GET
        || status != StatusCode::OK
        || !range::if_range_holds(headers, &req.headers)
    {
        return None;
    }
    let total = match whole {
        Some(whole) => whole.len() as u64,
        None => headers
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()?,
    };
    match range::parse_range(range, total) {
        RangeSpec::Ignore => None,
        spec => Some((spec, total)),
    }
}
