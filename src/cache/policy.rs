//! HTTP caching rules as pure functions of (request, response, `now`). The RFC 9111 verdicts
//! (storable? how fresh?) come from `http-cache-semantics` in shared-cache mode; this module
//! adds what that crate leaves out (stale-while-revalidate, stale-if-error, Set-Cookie policy,
//! reasons for `Cache-Status`) and turns its answer into a small [`Freshness`] record, so the
//! hit path does arithmetic instead of re-parsing headers.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use http_cache_semantics::{CacheOptions, CachePolicy, RequestLike, ResponseLike};
use std::time::{Duration, SystemTime};

/// The largest delta-seconds value honoured (RFC 9111 section 1.2.2: 2^31 s); larger ones from
/// an origin are clamped, so no header can overflow the time arithmetic.
pub const MAX_DELTA: Duration = Duration::from_secs(1 << 31);

/// How long a stored response may be used, fixed when it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// When the edge received the response.
    pub response_time: SystemTime,
    /// Its age at that moment (the origin's or upstream caches' `Age`).
    pub initial_age: Duration,
    /// Freshness left at `response_time`.
    pub fresh_for: Duration,
    /// RFC 5861 windows after expiry.
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    /// `must-revalidate`, `proxy-revalidate` or `no-cache`: never served stale.
    pub must_revalidate: bool,
    /// Has an ETag or Last-Modified, so an expired copy can be revalidated cheaply.
    pub has_validator: bool,
}

impl Freshness {
    fn resident(&self, now: SystemTime) -> Duration {
        now.duration_since(self.response_time).unwrap_or_default()
    }

    /// The `Age` to send.
    pub fn age(&self, now: SystemTime) -> Duration {
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

    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.resident(now) < self.fresh_for
    }

    fn stale_for(&self, now: SystemTime) -> Duration {
        self.resident(now).saturating_sub(self.fresh_for)
    }

    /// May be served while a background revalidation runs.
    pub fn within_stale_while_revalidate(&self, now: SystemTime) -> bool {
        !self.must_revalidate
            && self.stale_for(now) <= self.stale_while_revalidate
            && !self.is_fresh(now)
    }

    /// May be served when the origin fails.
    pub fn within_stale_if_error(&self, now: SystemTime) -> bool {
        !self.must_revalidate && self.stale_for(now) <= self.stale_if_error
    }

    /// How long after `response_time` the store should keep the object: its freshness plus the
    /// longest window in which a stale copy is still useful.
    pub fn keep_for(&self, keep_for_revalidation: Duration) -> Duration {
        let mut grace = if self.must_revalidate {
            Duration::ZERO
        } else {
            self.stale_while_revalidate.max(self.stale_if_error)
        };
        if self.has_validator {
            grace = grace.max(keep_for_revalidation);
        }
        self.fresh_for.saturating_add(grace)
    }

    /// The moment the store may drop the object (see [`Freshness::keep_for`]).
    pub fn keep_until(&self, keep_for_revalidation: Duration) -> SystemTime {
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
}

impl NotStorable {
    pub fn as_str(self) -> &'static str {
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
        }
    }
}

impl NotStorable {
    /// Tied to this request (its credentials, its `no-store`) or to this moment (the in-flight
    /// budget): says nothing about the URL, so it earns no hit-for-miss mark. Size does: a
    /// large file stays large, and its range requests can then go to the origin.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            NotStorable::InflightBudget
                | NotStorable::Authorization
                | NotStorable::Cookie
                | NotStorable::RequestNoStore
        )
    }
}

/// The verdict on an origin's answer at fill time: the policy's ([`evaluate`]), then what
/// storing adds: a `Vary: *` (`varies` is `false`) cannot be keyed, and a declared length past
/// `max_object_size` will not be kept.
pub fn fill_verdict(
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
    pub method: &'a Method,
    pub uri: &'a Uri,
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
    pub cache_set_cookie: bool,
}

/// May this response be stored, and for how long? `res_headers` must already be stripped of
/// Set-Cookie when the site allows storing such responses (see [`storable_headers`]).
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
    if status == StatusCode::PARTIAL_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Err(NotStorable::Status);
    }
    if had_set_cookie && !rules.cache_set_cookie {
        return Err(NotStorable::SetCookie);
    }
    let cc = ResponseDirectives::parse(res_headers.get_all(header::CACHE_CONTROL).iter());
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
        &PolicyResponse(status, lib_headers),
        now,
        CacheOptions {
            shared: true,
            ..Default::default()
        },
    );
    if !policy.is_storable() {
        return Err(refusal(req, status, &cc));
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
    let f = Freshness {
        response_time: now,
        initial_age: policy.age(now).min(MAX_DELTA),
        fresh_for: policy.time_to_live(now).min(MAX_DELTA),
        stale_while_revalidate: delta(cc.stale_while_revalidate),
        stale_if_error: delta(cc.stale_if_error),
        // s-maxage carries proxy-revalidate's meaning for shared caches (RFC 9111 5.2.2.10).
        must_revalidate: cc.must_revalidate || cc.proxy_revalidate || cc.no_cache || cc.s_maxage,
        has_validator: res_headers.contains_key(header::ETAG)
            || res_headers.contains_key(header::LAST_MODIFIED),
    };
    if f.fresh_for.is_zero() && !f.has_validator {
        return Err(NotStorable::NoFreshness);
    }
    Ok(f)
}

/// What http-cache-semantics is shown of a response, where it would misread the response as it
/// is, or `None` (the common case) to show it the headers unchanged.
fn library_view(res_headers: &HeaderMap, cc: &ResponseDirectives) -> Option<HeaderMap> {
    // It looks directives up by their lower-case names, so `Private` or `MAX-AGE` would pass
    // it unseen.
    let mut adjusted = lowercase_directives(res_headers);
    // It adds Age to durations unchecked: clamp it before it sees it.
    if let Some(Some(age)) = res_headers
        .get(header::AGE)
        .map(|a| a.to_str().ok().and_then(|a| a.trim().parse::<u64>().ok()))
        && age > MAX_DELTA.as_secs()
    {
        adjusted
            .get_or_insert_with(|| res_headers.clone())
            .insert(header::AGE, HeaderValue::from(MAX_DELTA.as_secs()));
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

/// `h` with the directive names of `Cache-Control` and `Pragma` in lower case (RFC 9111
/// section 5.2: they are case-insensitive), or `None` when no value has an upper-case letter
/// (the usual case, which costs no copy). Directive values are kept as they are.
fn lowercase_directives(h: &HeaderMap) -> Option<HeaderMap> {
    let fields = [header::CACHE_CONTROL, header::PRAGMA];
    let upper = |name: &HeaderName| {
        h.get_all(name)
            .iter()
            .any(|v| v.as_bytes().iter().any(u8::is_ascii_uppercase))
    };
    if !fields.iter().any(upper) {
        return None;
    }
    let mut out = h.clone();
    for name in fields {
        let lowered: Vec<HeaderValue> = h.get_all(&name).iter().map(lowercase_names).collect();
        out.remove(&name);
        for v in lowered {
            out.append(name.clone(), v);
        }
    }
    Some(out)
}

/// One field value with each directive's name (up to `=` or `,`) in lower case; quoted
/// values are left alone, commas inside them included.
fn lowercase_names(v: &HeaderValue) -> HeaderValue {
    let (mut in_name, mut quoted) = (true, false);
    let bytes: Vec<u8> = v
        .as_bytes()
        .iter()
        .map(|&b| {
            match b {
                b'"' if !in_name => quoted = !quoted,
                b',' if !quoted => in_name = true,
                b'=' if in_name => in_name = false,
                _ => {}
            }
            if in_name { b.to_ascii_lowercase() } else { b }
        })
        .collect();
    // Lower-casing ASCII letters keeps every byte a valid field-value byte.
    HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| v.clone())
}

/// The response's Cache-Control directives but `name`, as one value (`None` if none is left).
fn without_directive(h: &HeaderMap, name: &str) -> Option<HeaderValue> {
    let kept: Vec<&str> = h
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|d| {
            let key = d.split_once('=').map_or(*d, |(k, _)| k).trim();
            !d.is_empty() && !key.eq_ignore_ascii_case(name)
        })
        .collect();
    (!kept.is_empty())
        .then(|| HeaderValue::from_str(&kept.join(", ")).ok())
        .flatten()
}

fn is_understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 302 | 303 | 307 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Finds a Cache-Control directive: `None` if absent, `Some(None)` without a value,
/// `Some(Some(v))` with one (quotes removed).
pub fn directive<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
    name: &str,
) -> Option<Option<&'a str>> {
    directives(values)
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Every Cache-Control directive in order, as (name, value without quotes).
fn directives<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|part| match part.split_once('=') {
            Some((k, val)) => (k.trim(), Some(val.trim().trim_matches('"'))),
            None => (part.trim(), None),
        })
}

/// The response directives the verdict reads besides http-cache-semantics, found in one pass
/// over the header rather than a scan for each (this runs on every MISS). A directive given
/// twice counts with its first value, as [`directive`] reads it.
#[derive(Default)]
struct ResponseDirectives<'a> {
    no_store: bool,
    private: bool,
    public: bool,
    s_maxage: bool,
    no_cache: bool,
    must_revalidate: bool,
    proxy_revalidate: bool,
    stale_while_revalidate: Option<Option<&'a str>>,
    stale_if_error: Option<Option<&'a str>>,
}

impl<'a> ResponseDirectives<'a> {
    fn parse(values: impl Iterator<Item = &'a HeaderValue>) -> Self {
        let mut d = Self::default();
        for (k, v) in directives(values) {
            let is = |name: &str| k.eq_ignore_ascii_case(name);
            if is("no-store") {
                d.no_store = true;
            } else if is("private") {
                d.private = true;
            } else if is("public") {
                d.public = true;
            } else if is("s-maxage") {
                d.s_maxage = true;
            } else if is("no-cache") {
                d.no_cache = true;
            } else if is("must-revalidate") {
                d.must_revalidate = true;
            } else if is("proxy-revalidate") {
                d.proxy_revalidate = true;
            } else if is("stale-while-revalidate") {
                d.stale_while_revalidate.get_or_insert(v);
            } else if is("stale-if-error") {
                d.stale_if_error.get_or_insert(v);
            }
        }
        d
    }
}

/// A delta-seconds directive value as a duration (zero when absent or malformed), capped.
fn delta(v: Option<Option<&str>>) -> Duration {
    v.flatten()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::ZERO, |s| Duration::from_secs(s).min(MAX_DELTA))
}

/// The headers kept with a stored object: every value copied into its own allocation (values
/// parsed by hyper share the connection's read buffer, which would stay pinned otherwise and
/// break the memory budget); no Set-Cookie, no Age (recomputed on every hit).
pub fn storable_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(h.len());
    for (k, v) in h {
        if k == header::SET_COOKIE || k == header::AGE {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
            out.append(k.clone(), v);
        }
    }
    out
}

/// Adds the validators of a stored response to a revalidation request.
pub fn add_validators(stored: &HeaderMap, req: &mut HeaderMap) {
    if let Some(etag) = stored.get(header::ETAG) {
        req.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(lm) = stored.get(header::LAST_MODIFIED) {
        req.insert(header::IF_MODIFIED_SINCE, lm.clone());
    }
}

/// Fields a 304 may not change: they describe the stored body.
static KEEP_ON_304: [HeaderName; 4] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::TRANSFER_ENCODING,
    header::CONTENT_RANGE,
];

/// RFC 9111 section 4.3.4: the stored headers, updated with those a 304 carries.
pub fn merge_not_modified(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut out = stored.clone();
    for name in not_modified.keys() {
        if KEEP_ON_304.contains(name) || name == header::SET_COOKIE || name == header::AGE {
            continue;
        }
        out.remove(name);
        for v in not_modified.get_all(name) {
            if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                out.append(name.clone(), v);
            }
        }
    }
    out
}

/// Does a 304 from the origin describe the stored response? A strong ETag in the 304 must equal
/// the stored one; otherwise the 304 is trusted (weak or no validators).
pub fn not_modified_matches(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    match (not_modified.get(header::ETAG), stored.get(header::ETAG)) {
        (Some(new), Some(old)) => {
            let strip = |v: &HeaderValue| {
                v.as_bytes()
                    .strip_prefix(b"W/")
                    .unwrap_or(v.as_bytes())
                    .to_vec()
            };
            strip(new) == strip(old)
        }
        (Some(_), None) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::headers as hm;

    fn eval(req: &[(&str, &str)], res: &[(&str, &str)]) -> Result<Freshness, NotStorable> {
        let (m, u, rh) = (Method::GET, Uri::from_static("/x"), hm(req));
        let r = PolicyRequest {
            method: &m,
            uri: &u,
            headers: &rh,
        };
        let h = hm(res);
        let sc = h.contains_key(header::SET_COOKIE);
        evaluate(
            &r,
            StatusCode::OK,
            &h,
            sc,
            SiteRules::default(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
        )
    }

    #[test]
    fn response_directives_are_read_in_one_pass_as_a_scan_reads_them() {
        let h = hm(&[
            (
                "cache-control",
                "Public, MAX-AGE=60, Stale-While-Revalidate=\"30\"",
            ),
            (
                "cache-control",
                "stale-while-revalidate=99, stale-if-error=x, s-maxage=5",
            ),
        ]);
        let cc = h.get_all(header::CACHE_CONTROL);
        let d = ResponseDirectives::parse(cc.iter());
        assert!(d.public && d.s_maxage);
        assert!(!d.private && !d.no_store && !d.no_cache && !d.must_revalidate);
        // The first occurrence counts, quotes removed, as `directive` finds it.
        assert_eq!(d.stale_while_revalidate, Some(Some("30")));
        assert_eq!(
            d.stale_while_revalidate,
            directive(cc.iter(), "stale-while-revalidate")
        );
        assert_eq!(delta(d.stale_while_revalidate), Duration::from_secs(30));
        // A malformed value is no grace at all.
        assert_eq!(delta(d.stale_if_error), Duration::ZERO);
        let f = eval(&[], &[("cache-control", "max-age=60, Must-Revalidate")]).unwrap();
        assert!(f.must_revalidate);
        let f = eval(&[], &[("cache-control", "max-age=60, stale-if-error=120")]).unwrap();
        assert!(!f.must_revalidate);
        assert_eq!(f.stale_if_error, Duration::from_secs(120));
    }

    #[test]
    fn directive_names_are_read_in_any_case() {
        let lm = ("last-modified", "Mon, 12 Jan 1970 13:30:00 GMT");
        let date = ("date", "Mon, 12 Jan 1970 13:46:40 GMT");
        for (spelled, lower) in [
            ("Private, max-age=600", "private, max-age=600"),
            ("PRIVATE", "private"),
            ("No-Store", "no-store"),
            ("NO-STORE, max-age=60", "no-store, max-age=60"),
            ("No-Cache", "no-cache"),
            ("NO-CACHE, max-age=60", "no-cache, max-age=60"),
            ("MAX-AGE=60", "max-age=60"),
            ("max-age=600, S-MaxAge=5", "max-age=600, s-maxage=5"),
            (
                "Proxy-Revalidate, MAX-AGE=60",
                "proxy-revalidate, max-age=60",
            ),
            (
                "no-cache=\"Set-Cookie, X-A\", MAX-AGE=9",
                "no-cache=\"Set-Cookie, X-A\", max-age=9",
            ),
        ] {
            let res = |cc| [("cache-control", cc), lm, date, ("etag", "\"a\"")];
            assert_eq!(
                eval(&[], &res(spelled)),
                eval(&[], &res(lower)),
                "{spelled}"
            );
        }
        // The lower-case forms do what they say (so equal verdicts are the right ones).
        let res = |cc| [("cache-control", cc), lm, date];
        assert_eq!(eval(&[], &res("private")), Err(NotStorable::Private));
        assert_eq!(
            eval(&[], &res("MAX-AGE=60")).unwrap().fresh_for.as_secs(),
            60
        );
        // Pragma's no-cache, and the request's no-store.
        let pragma = |p| [("pragma", p), lm, date];
        assert_eq!(
            eval(&[], &pragma("No-Cache")),
            eval(&[], &pragma("no-cache"))
        );
        assert!(eval(&[], &pragma("no-cache")).unwrap().fresh_for.is_zero());
        for spelled in ["No-Store", "NO-STORE"] {
            assert_eq!(
                eval(
                    &[("cache-control", spelled)],
                    &[("cache-control", "max-age=60")]
                ),
                Err(NotStorable::RequestNoStore),
                "{spelled}"
            );
        }
        // A value keeps its case; only names are lowered.
        let v = HeaderValue::from_static("No-Cache=\"X-Up, Set-Cookie\", Max-Age=5");
        assert_eq!(
            lowercase_names(&v),
            "no-cache=\"X-Up, Set-Cookie\", max-age=5"
        );
        assert!(lowercase_directives(&hm(&[("cache-control", "max-age=5")])).is_none());
    }

    #[test]
    fn max_age_and_s_maxage() {
        assert_eq!(
            eval(&[], &[("cache-control", "max-age=60")])
                .unwrap()
                .fresh_for
                .as_secs(),
            60
        );
        assert_eq!(
            eval(&[], &[("cache-control", "max-age=60, s-maxage=5")])
                .unwrap()
                .fresh_for
                .as_secs(),
            5
        );
        assert_eq!(
            eval(&[], &[("cache-control", "max-age=60"), ("age", "20")])
                .unwrap()
                .fresh_for
                .as_secs(),
            40
        );
    }

    #[test]
    fn proxy_revalidate_keeps_the_freshness_and_forbids_serving_stale() {
        let f = eval(&[], &[("cache-control", "max-age=600, Proxy-Revalidate")]).unwrap();
        assert_eq!(f.fresh_for, Duration::from_secs(600));
        assert!(f.must_revalidate);
        // Alone, it leaves no freshness: stored only with a validator.
        assert_eq!(
            eval(&[], &[("cache-control", "proxy-revalidate")]),
            Err(NotStorable::NoFreshness)
        );
        let f = eval(
            &[],
            &[("cache-control", "proxy-revalidate"), ("etag", "\"v1\"")],
        )
        .unwrap();
        assert!(f.fresh_for.is_zero() && f.must_revalidate);
    }

    #[test]
    fn forbidden_responses_are_refused_with_a_reason() {
        assert_eq!(
            eval(&[], &[("cache-control", "no-store")]),
            Err(NotStorable::NoStore)
        );
        assert_eq!(
            eval(&[], &[("cache-control", "private, max-age=60")]),
            Err(NotStorable::Private)
        );
        assert_eq!(
            eval(
                &[("cache-control", "no-store")],
                &[("cache-control", "max-age=60")]
            ),
            Err(NotStorable::RequestNoStore)
        );
        // The response's own reason wins: it holds for every request to the URL.
        assert_eq!(
            eval(
                &[("cache-control", "no-store")],
                &[("cache-control", "private, max-age=60")]
            ),
            Err(NotStorable::Private)
        );
        assert_eq!(
            eval(
                &[("authorization", "Bearer x")],
                &[("cache-control", "max-age=60")]
            ),
            Err(NotStorable::Authorization)
        );
        assert!(
            eval(
                &[("authorization", "Bearer x")],
                &[("cache-control", "public, max-age=60")]
            )
            .is_ok()
        );
        assert_eq!(
            eval(
                &[],
                &[("cache-control", "max-age=60"), ("set-cookie", "a=b")]
            ),
            Err(NotStorable::SetCookie)
        );
        assert_eq!(
            eval(&[("cookie", "s=1")], &[("cache-control", "max-age=60")]),
            Err(NotStorable::Cookie)
        );
        assert!(
            eval(
                &[("cookie", "s=1")],
                &[("cache-control", "public, max-age=60")]
            )
            .is_ok()
        );
        assert_eq!(
            eval(&[], &[("cache-control", "max-age=60"), ("vary", "*")]),
            Err(NotStorable::VaryStar)
        );
        assert_eq!(eval(&[], &[]), Err(NotStorable::NoFreshness));
    }

    #[test]
    fn the_fill_verdict_adds_vary_star_and_size_to_the_policys() {
        let f = eval(&[], &[("cache-control", "max-age=60")]);
        assert_eq!(fill_verdict(f, true, Some(10), 10), f);
        assert_eq!(
            fill_verdict(f, false, Some(10), 10),
            Err(NotStorable::VaryStar)
        );
        assert_eq!(
            fill_verdict(f, true, Some(11), 10),
            Err(NotStorable::TooLarge)
        );
        assert_eq!(
            fill_verdict(f, true, None, 10),
            f,
            "unknown length: decided later"
        );
        let private = Err(NotStorable::Private);
        assert_eq!(fill_verdict(private, false, Some(11), 10), private);
        assert!(NotStorable::Cookie.is_transient() && !NotStorable::TooLarge.is_transient());
    }

    #[test]
    fn no_cache_with_validator_is_stored_for_revalidation_only() {
        let f = eval(&[], &[("cache-control", "no-cache"), ("etag", "\"a\"")]).unwrap();
        assert!(f.fresh_for.is_zero() && f.must_revalidate && f.has_validator);
    }

    #[test]
    fn stale_windows() {
        let f = eval(
            &[],
            &[(
                "cache-control",
                "max-age=10, stale-while-revalidate=30, stale-if-error=300",
            )],
        )
        .unwrap();
        let t = |s| f.response_time + Duration::from_secs(s);
        assert!(f.is_fresh(t(9)) && !f.is_fresh(t(10)));
        assert_eq!(f.ttl_secs(t(4)), 6);
        assert_eq!(f.ttl_secs(t(15)), -5);
        assert!(f.within_stale_while_revalidate(t(35)) && !f.within_stale_while_revalidate(t(45)));
        assert!(f.within_stale_if_error(t(300)) && !f.within_stale_if_error(t(320)));
        assert_eq!(f.keep_for(Duration::from_secs(5)), Duration::from_secs(310));
        let m = eval(
            &[],
            &[(
                "cache-control",
                "max-age=10, must-revalidate, stale-if-error=300",
            )],
        )
        .unwrap();
        assert!(!m.within_stale_if_error(t(11)));
    }

    #[test]
    fn expires_and_heuristics() {
        let f = eval(
            &[],
            &[
                ("date", "Mon, 12 Jan 1970 13:46:40 GMT"),
                ("expires", "Mon, 12 Jan 1970 13:47:40 GMT"),
            ],
        )
        .unwrap();
        assert_eq!(f.fresh_for.as_secs(), 60);
        // 10% of the time since Last-Modified (1000 s) = 100 s.
        let f = eval(
            &[],
            &[
                ("date", "Mon, 12 Jan 1970 13:46:40 GMT"),
                ("last-modified", "Mon, 12 Jan 1970 13:30:00 GMT"),
            ],
        )
        .unwrap();
        assert_eq!(f.fresh_for.as_secs(), 100);
    }

    #[test]
    fn hostile_numbers_are_clamped_not_overflowed() {
        let f = eval(
            &[],
            &[(
                "cache-control",
                "max-age=18446744073709551615, stale-while-revalidate=18446744073709551615",
            )],
        )
        .unwrap();
        assert_eq!(f.fresh_for, MAX_DELTA);
        assert_eq!(f.stale_while_revalidate, MAX_DELTA);
        assert!(f.keep_until(Duration::from_secs(u64::MAX / 4)) > f.response_time);
        let f = eval(
            &[],
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"a\""),
                ("age", "18446744073709551615"),
            ],
        )
        .unwrap();
        assert_eq!(
            f.age(f.response_time + Duration::from_secs(10)),
            MAX_DELTA + Duration::from_secs(10)
        );
        assert!(!f.is_fresh(f.response_time));
    }

    #[test]
    fn s_maxage_forbids_serving_stale() {
        let f = eval(
            &[],
            &[(
                "cache-control",
                "s-maxage=10, stale-while-revalidate=60, stale-if-error=300",
            )],
        )
        .unwrap();
        assert!(f.must_revalidate);
        assert!(!f.within_stale_if_error(f.response_time + Duration::from_secs(20)));
    }

    #[test]
    fn not_modified_merge_keeps_body_fields() {
        let stored = hm(&[
            ("etag", "\"a\""),
            ("content-length", "5"),
            ("cache-control", "max-age=1"),
            ("x-a", "1"),
        ]);
        let nm = hm(&[
            ("etag", "\"a\""),
            ("content-length", "0"),
            ("cache-control", "max-age=9"),
        ]);
        let m = merge_not_modified(&stored, &nm);
        assert_eq!(m["content-length"], "5");
        assert_eq!(m["cache-control"], "max-age=9");
        assert_eq!(m["x-a"], "1");
        assert!(not_modified_matches(&stored, &nm));
        assert!(!not_modified_matches(&stored, &hm(&[("etag", "\"b\"")])));
    }
}
