//! HTTP caching rules as pure functions of (request, response, `now`). The RFC 9111 verdicts
//! (storable? how fresh?) come from `http-cache-semantics` in shared-cache mode; this module
//! adds what that crate leaves out (stale-while-revalidate, stale-if-error, Set-Cookie policy,
//! reasons for `Cache-Status`) and turns its answer into a small [`Freshness`] record, so the
//! hit path does arithmetic instead of re-parsing headers.

use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use http_cache_semantics::{CacheOptions, CachePolicy, RequestLike, ResponseLike};
use std::time::{Duration, SystemTime};

mod directives;
mod stored;
mod targeted;

pub(crate) use directives::directive;
use directives::{
    ResponseDirectives, delta, expires_is_invalid, lowercase_directives, without_directive,
};
pub use stored::{add_validators, merge_not_modified, not_modified_matches, storable_headers};
pub(crate) use targeted::split_off as split_off_targeted;

/// The largest delta-seconds value honoured (RFC 9111 section 1.2.2: 2^31 s); larger ones from
/// an origin are clamped, so no header can overflow the time arithmetic.
pub(crate) const MAX_DELTA: Duration = Duration::from_secs(1 << 31);

/// How long a stored response may be used, fixed when it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// When the edge received the response.
    pub(crate) response_time: SystemTime,
    /// Its age at that moment (the origin's or upstream caches' `Age`).
    pub(crate) initial_age: Duration,
    /// Freshness left at `response_time`.
    pub(crate) fresh_for: Duration,
    /// How long past expiry it may be served while a refresh runs (`stale-while-revalidate`,
    /// RFC 5861).
    pub(crate) stale_while_revalidate: Duration,
    /// How long past expiry it may stand in when the origin fails (`stale-if-error`).
    pub(crate) stale_if_error: Duration,
    /// The site's grace for the same, for a response that gave no `stale-if-error` of its own
    /// (`[[site]] stale_on_error`; zero when it did, or when it must not be served stale).
    pub(crate) stale_on_error: Duration,
    /// `must-revalidate`, `proxy-revalidate` or `no-cache`: never served stale.
    pub(crate) must_revalidate: bool,
    /// Has an ETag or Last-Modified, so an expired copy can be revalidated cheaply.
    pub(crate) has_validator: bool,
}

impl Freshness {
    fn resident(&self, now: SystemTime) -> Duration {
        now.duration_since(self.response_time).unwrap_or_default()
    }

    /// The `Age` to send.
    pub(crate) fn age(&self, now: SystemTime) -> Duration {
        self.initial_age.saturating_add(self.resident(now))
    }

    /// Seconds of freshness left; negative once stale (the `ttl` of `Cache-Status`).
    pub fn ttl_secs(&self, now: SystemTime) -> i64 {
        let r = self.resident(now);
        if r < self.fresh_for {
            (self.fresh_for - r).as_secs() as i64
        } else {
            -(((r - self.fresh_for).as_secs_f64()).ceil() as i64)
        }
    }

    /// The same freshness, ending at `now` if it ran later (a soft purge).
    pub(crate) fn expired_at(&self, now: SystemTime) -> Freshness {
        Freshness {
            fresh_for: self.fresh_for.min(self.resident(now)),
            ..*self
        }
    }

    pub(crate) fn is_fresh(&self, now: SystemTime) -> bool {
        self.resident(now) < self.fresh_for
    }

    fn stale_for(&self, now: SystemTime) -> Duration {
        self.resident(now).saturating_sub(self.fresh_for)
    }

    /// May be served while a background revalidation runs.
    pub(crate) fn within_stale_while_revalidate(&self, now: SystemTime) -> bool {
        !self.must_revalidate
            && self.stale_for(now) <= self.stale_while_revalidate
            && !self.is_fresh(now)
    }

    /// May be served when the origin fails.
    pub(crate) fn within_stale_if_error(&self, now: SystemTime) -> bool {
        !self.must_revalidate && self.stale_for(now) <= self.stale_if_error
    }

    /// May it stand in for an answer the origin failed to give (RFC 9111 section 4.2.4), and
    /// on whose word: its own `stale-if-error` (`Some(None)`), or the site's grace
    /// (`Some(Some("stale-on-error"))`, the `detail` of `Cache-Status`)?
    pub(crate) fn stands_in_on_error(&self, now: SystemTime) -> Option<Option<&'static str>> {
        if self.within_stale_if_error(now) {
            Some(None)
        } else if !self.must_revalidate && self.stale_for(now) <= self.stale_on_error {
            Some(Some("stale-on-error"))
        } else {
            None
        }
    }

    /// How long after `response_time` the store should keep the object: its freshness plus the
    /// longest window in which a stale copy is still useful.
    pub(crate) fn keep_for(&self, keep_for_revalidation: Duration) -> Duration {
        let mut grace = if self.must_revalidate {
            Duration::ZERO
        } else {
            self.stale_while_revalidate
                .max(self.stale_if_error)
                .max(self.stale_on_error)
        };
        if self.has_validator {
            grace = grace.max(keep_for_revalidation);
        }
        self.fresh_for.saturating_add(grace)
    }

    /// The moment the store may drop the object (see [`Freshness::keep_for`]).
    pub(crate) fn keep_until(&self, keep_for_revalidation: Duration) -> SystemTime {
        let far = self.response_time + MAX_DELTA;
        self.response_time
            .checked_add(self.keep_for(keep_for_revalidation))
            .map_or(far, |t| t.min(far))
    }
}

/// Why a response was not stored; shown as `Cache-Status: ...; detail=` and in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    Method,
    Status,
    NoStore,
    /// The request said `no-store`: this response is not stored, but that says nothing about
    /// the URL or the copy others share.
    RequestNoStore,
    Private,
    Authorization,
    /// The request carried a Cookie and the response did not say it may be shared.
    Cookie,
    SetCookie,
    VaryStar,
    NoFreshness,
    TooLarge,
    /// Bodies being filled already use the whole in-flight budget.
    InflightBudget,
    Uncacheable,
    /// The site's second-hit admission: the first miss of an object (once the cache has
    /// filled) is served, not stored; the next one within the window is.
    Admission,
}

impl NotStorable {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::NoStore => "no-store",
            NotStorable::RequestNoStore => "request-no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::Cookie => "cookie",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::VaryStar => "vary-star",
            NotStorable::NoFreshness => "no-freshness",
            NotStorable::TooLarge => "too-large",
            NotStorable::InflightBudget => "inflight-budget",
            NotStorable::Uncacheable => "uncacheable",
            NotStorable::Admission => "admission",
        }
    }
}

impl NotStorable {
    /// Tied to this request (its credentials, its `no-store`) or to this moment (the in-flight
    /// budget): says nothing about the URL, so it earns no hit-for-miss mark. Size does: a
    /// large file stays large, and its range requests can then go to the origin.
    pub(crate) fn is_transient(self) -> bool {
        matches!(
            self,
            NotStorable::InflightBudget
                | NotStorable::Admission
                | NotStorable::Authorization
                | NotStorable::Cookie
                | NotStorable::RequestNoStore
        )
    }
}

/// The verdict on an origin's answer at fill time: the policy's ([`evaluate`]), then what
/// storing adds: a `Vary: *` (`varies` is `false`) cannot be keyed, and a declared length past
/// `max_object_size` will not be kept.
pub(crate) fn fill_verdict(
    policy: Result<Freshness, NotStorable>,
    varies: bool,
    content_length: Option<u64>,
    max_object_size: u64,
) -> Result<Freshness, NotStorable> {
    let f = policy?;
    if !varies {
        return Err(NotStorable::VaryStar);
    }
    if content_length.is_some_and(|n| n > max_object_size) {
        return Err(NotStorable::TooLarge);
    }
    Ok(f)
}

/// The request as the policy sees it.
pub struct PolicyRequest<'a> {
    /// Only GET and HEAD answers are stored.
    pub method: &'a Method,
    /// http-cache-semantics wants it (its request trait asks for one).
    pub uri: &'a Uri,
    /// Authorization, Cookie and the request's own `no-store` change the verdict.
    pub headers: &'a HeaderMap,
}

impl RequestLike for PolicyRequest<'_> {
    fn uri(&self) -> Uri {
        self.uri.clone()
    }
    fn is_same_uri(&self, other: &Uri) -> bool {
        self.uri == other
    }
    fn method(&self) -> &Method {
        self.method
    }
    fn headers(&self) -> &HeaderMap {
        self.headers
    }
}

struct PolicyResponse<'a>(StatusCode, &'a HeaderMap);

impl ResponseLike for PolicyResponse<'_> {
    fn status(&self) -> StatusCode {
        self.0
    }
    fn headers(&self) -> &HeaderMap {
        self.1
    }
}

/// Site settings that change the verdict.
#[derive(Debug, Clone, Copy, Default)]
pub struct SiteRules {
    /// Store responses that set cookies (the cookie is stripped from the stored copy).
    pub(crate) cache_set_cookie: bool,
    /// Freshness of a 404 or 410 whose origin gave none (no `max-age`, `s-maxage`, `Expires`);
    /// zero leaves them to the RFC's heuristics (`[[site]] negative_ttl`).
    pub(crate) negative_ttl: Duration,
    /// How long past expiry a response without `stale-if-error` may stand in when the origin
    /// fails (`[[site]] stale_on_error`).
    pub(crate) stale_on_error: Duration,
}

/// May this response be stored, and for how long? `res_headers` must already be stripped of
/// Set-Cookie when the site allows storing such responses (see [`storable_headers`]), and
/// still hold the targeted cache-control fields (see [`split_off_targeted`]).
pub fn evaluate(
    req: &PolicyRequest<'_>,
    status: StatusCode,
    res_headers: &HeaderMap,
    had_set_cookie: bool,
    rules: SiteRules,
    now: SystemTime,
) -> Result<Freshness, NotStorable> {
    if *req.method != Method::GET && *req.method != Method::HEAD {
        return Err(NotStorable::Method);
    }
    if status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
    {
        return Err(NotStorable::Status);
    }
    if had_set_cookie && !rules.cache_set_cookie {
        return Err(NotStorable::SetCookie);
    }
    // A field aimed at this cache (RFC 9213) stands in for Cache-Control and Expires.
    let targeted = targeted::policy_view(res_headers);
    let res_headers = targeted.as_ref().unwrap_or(res_headers);
    let cc = ResponseDirectives::parse(res_headers.get_all(header::CACHE_CONTROL).iter());
    let explicit = cc.max_age || cc.s_maxage || res_headers.contains_key(header::EXPIRES);
    // Explicit freshness lets any final status be stored (RFC 9111 section 3); the library
    // refuses statuses it does not know, so it is shown one it does. Without explicit freshness
    // the real status stands: heuristics are only for the statuses RFC 9110 section 15.1 names.
    let lib_status = if explicit && !is_understood(status) {
        StatusCode::OK
    } else {
        status
    };
    // Freshness given in a form that cannot be trusted makes the response stale, not fresh
    // for whatever the library made of it.
    let untrusted =
        cc.untrusted_freshness || (!cc.max_age && !cc.s_maxage && expires_is_invalid(res_headers));
    let adjusted = library_view(res_headers, &cc);
    let lib_headers = adjusted.as_ref().unwrap_or(res_headers);
    // The request's directives too (its `no-store` forbids storing).
    let lib_req_headers = lowercase_directives(req.headers);
    let lib_req = PolicyRequest {
        headers: lib_req_headers.as_ref().unwrap_or(req.headers),
        ..*req
    };
    let policy = CachePolicy::new_options(
        &lib_req,
        &PolicyResponse(lib_status, lib_headers),
        now,
        CacheOptions {
            shared: true,
            ..Default::default()
        },
    );
    if !policy.is_storable() {
        return Err(refusal(req, lib_status, &cc));
    }
    // Like Authorization (RFC 9111 section 3.5): a response to a request with a Cookie may be
    // personal even when the origin forgot to say `private`; share it only when told to.
    if req.headers.contains_key(header::COOKIE) && !cc.public && !cc.s_maxage {
        return Err(NotStorable::Cookie);
    }
    if res_headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .map_or(true, |v| v.split(',').any(|p| p.trim() == "*"))
    }) {
        return Err(NotStorable::VaryStar);
    }
    // The library ages a response by its Age alone; RFC 9111 section 4.2.3 also counts the
    // time since its Date (in whole seconds, as Date has them), when that is more.
    let lib_age = policy.age(now);
    let age = lib_age.max(apparent_age(res_headers, now)).min(MAX_DELTA);
    let mut f = Freshness {
        response_time: now,
        initial_age: age,
        fresh_for: policy
            .time_to_live(now)
            .saturating_sub(age.saturating_sub(lib_age))
            .min(MAX_DELTA),
        stale_while_revalidate: delta(cc.stale_while_revalidate),
        stale_if_error: delta(cc.stale_if_error),
        // s-maxage carries proxy-revalidate's meaning for shared caches (RFC 9111 5.2.2.10).
        must_revalidate: cc.must_revalidate || cc.proxy_revalidate || cc.no_cache || cc.s_maxage,
        has_validator: res_headers.contains_key(header::ETAG)
            || res_headers.contains_key(header::LAST_MODIFIED),
        stale_on_error: Duration::ZERO,
    };
    if cc.stale_if_error.is_none() && !f.must_revalidate {
        f.stale_on_error = rules.stale_on_error.min(MAX_DELTA);
    }
    let negative = status == StatusCode::NOT_FOUND || status == StatusCode::GONE;
    if negative && !explicit && !rules.negative_ttl.is_zero() {
        f.fresh_for = rules.negative_ttl.min(MAX_DELTA);
    }
    if untrusted {
        f.fresh_for = Duration::ZERO;
    }
    if f.fresh_for.is_zero() && !f.has_validator {
        return Err(NotStorable::NoFreshness);
    }
    Ok(f)
}

/// How old a response was on arrival by its `Date`: whole seconds from it to `now` (zero for a
/// missing, invalid or future `Date`).
fn apparent_age(h: &HeaderMap, now: SystemTime) -> Duration {
    let date = h
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let since = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    match date {
        Some(d) => Duration::from_secs(since(now).as_secs().saturating_sub(since(d).as_secs())),
        None => Duration::ZERO,
    }
}

/// What http-cache-semantics is shown of a response, where it would misread the response as it
/// is, or `None` (the common case) to show it the headers unchanged.
fn library_view(res_headers: &HeaderMap, cc: &ResponseDirectives) -> Option<HeaderMap> {
    // It looks directives up by their lower-case names, so `Private` or `MAX-AGE` would pass
    // it unseen.
    let mut adjusted = lowercase_directives(res_headers);
    // It reads only the IMF-fixdate form of a date; the two obsolete forms a recipient must
    // accept too (RFC 9110 section 5.6.7) are shown to it rewritten. A value already in that
    // form (29 bytes, a comma after the day's name) is left alone without being parsed.
    for name in [header::DATE, header::EXPIRES] {
        let Some(v) = res_headers.get(&name) else {
            continue;
        };
        if v.len() == 29 && v.as_bytes()[3] == b',' {
            continue;
        }
        let Some(when) = v
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok())
        else {
            continue;
        };
        if let Ok(fixdate) = HeaderValue::from_str(&httpdate::fmt_http_date(when)) {
            adjusted
                .get_or_insert_with(|| res_headers.clone())
                .insert(name, fixdate);
        }
    }
    // Age as the library can read it: the first of several values (a list would read as no
    // number), clamped (it adds Age to durations unchecked).
    if let Some(first) = res_headers.get(header::AGE) {
        let several = first.as_bytes().contains(&b',')
            || res_headers.get_all(header::AGE).iter().nth(1).is_some();
        let age = first
            .to_str()
            .ok()
            .and_then(|t| t.split(',').next()?.trim().parse::<u64>().ok());
        match age {
            Some(a) if several || a > MAX_DELTA.as_secs() => {
                let a = HeaderValue::from(a.min(MAX_DELTA.as_secs()));
                adjusted
                    .get_or_insert_with(|| res_headers.clone())
                    .insert(header::AGE, a);
            }
            None if several => {
                adjusted
                    .get_or_insert_with(|| res_headers.clone())
                    .remove(header::AGE);
            }
            _ => {}
        }
    }
    // It gives a shared cache no freshness at all for `proxy-revalidate`, which only forbids
    // serving the response stale (RFC 9111 section 5.2.2.8): that part is `must_revalidate`.
    if cc.proxy_revalidate {
        let kept = without_directive(adjusted.as_ref().unwrap_or(res_headers), "proxy-revalidate");
        let h = adjusted.get_or_insert_with(|| res_headers.clone());
        h.remove(header::CACHE_CONTROL);
        if let Some(v) = kept {
            h.insert(header::CACHE_CONTROL, v);
        }
    }
    adjusted
}

/// Why http-cache-semantics refused to store a response: the response's own reasons first,
/// since they hold for every request to the URL.
fn refusal(req: &PolicyRequest<'_>, status: StatusCode, cc: &ResponseDirectives) -> NotStorable {
    let req_cc = req.headers.get_all(header::CACHE_CONTROL);
    if cc.no_store {
        NotStorable::NoStore
    } else if cc.private {
        NotStorable::Private
    } else if !is_understood(status) {
        NotStorable::Status
    } else if req.headers.contains_key(header::AUTHORIZATION) {
        NotStorable::Authorization
    } else if directive(req_cc.iter(), "no-store").is_some() {
        NotStorable::RequestNoStore
    } else {
        NotStorable::Uncacheable
    }
}

fn is_understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 302 | 303 | 307 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

#[cfg(test)]
mod tests;
