//! Responses served from a stored object: full, HEAD, 304 to a client's conditional request,
//! 206 / 416 for ranges; and the short error responses the edge makes itself.

use crate::{
    cache::{Object, status::CacheStatus},
    origin::range::{RangeSpec, if_range_holds, not_modified, parse_range},
};
use axum::body::Body;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use std::time::SystemTime;

pub(crate) static X_CACHE: http::HeaderName = http::HeaderName::from_static("x-cache");
pub(crate) static CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("cache-status");

/// Marks a response with what the cache did.
pub(crate) fn stamp(h: &mut HeaderMap, status: &CacheStatus) {
    let upstream = h.get(&CACHE_STATUS).cloned();
    h.insert(&CACHE_STATUS, status.header_value(upstream.as_ref()));
    h.insert(&X_CACHE, HeaderValue::from_static(status.outcome.x_cache()));
}

/// Serves a stored object to this request: 200, 206, 304 or 416, with `Age` and status headers.
pub fn from_object(
    obj: &Object,
    method: &Method,
    req: &HeaderMap,
    status: &CacheStatus,
    now: SystemTime,
) -> Response<Body> {
    let mut headers = obj.headers.clone();
    headers.insert(
        header::AGE,
        HeaderValue::from(obj.freshness.age(now).as_secs()),
    );
    stamp(&mut headers, status);
    let head_only = method == Method::HEAD;

    if obj.status == StatusCode::OK && not_modified(&obj.headers, req) {
        return not_modified_response(&headers);
    }
    let range = req
        .get(header::RANGE)
        .filter(|_| obj.status == StatusCode::OK && method == Method::GET);
    if let Some(range) = range.filter(|_| if_range_holds(&obj.headers, req)) {
        let total = obj.body.len() as u64;
        let spec = parse_range(range, total);
        let content_range = spec.content_range(total);
        match spec {
            RangeSpec::Satisfiable(start, end) => {
                let part = obj.body.slice(start as usize..=end as usize);
                let len = part.len() as u64;
                return partial(headers, Body::from(part), len, content_range);
            }
            RangeSpec::Unsatisfiable => return unsatisfiable(headers, content_range),
            RangeSpec::Ignore => {}
        }
    }
    let body = if head_only {
        Body::empty()
    } else {
        Body::from(obj.body.clone())
    };
    let mut res = Response::new(body);
    *res.status_mut() = obj.status;
    *res.headers_mut() = headers;
    res
}

pub(crate) fn not_modified_response(full: &HeaderMap) -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NOT_MODIFIED;
    let keep = [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::LAST_MODIFIED,
        header::VARY,
        header::AGE,
        header::VIA,
    ];
    let h = res.headers_mut();
    for name in keep.iter().chain([&X_CACHE, &CACHE_STATUS]) {
        for v in full.get_all(name) {
            h.append(name.clone(), v.clone());
        }
    }
    res
}

/// A 206 of `len` bytes.
pub(crate) fn partial(
    mut headers: HeaderMap,
    body: Body,
    len: u64,
    range: Option<HeaderValue>,
) -> Response<Body> {
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(v) = range {
        headers.insert(header::CONTENT_RANGE, v);
    }
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::PARTIAL_CONTENT;
    *res.headers_mut() = headers;
    res
}

pub(crate) fn unsatisfiable(mut headers: HeaderMap, range: Option<HeaderValue>) -> Response<Body> {
    let msg = "range not satisfiable\n";
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(msg.len()));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.remove(header::CONTENT_ENCODING);
    if let Some(v) = range {
        headers.insert(header::CONTENT_RANGE, v);
    }
    let mut res = Response::new(Body::from(msg));
    *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    *res.headers_mut() = headers;
    res
}

/// A response the edge makes itself: a status and a one-line reason.
pub(crate) fn error(
    status: StatusCode,
    reason: &str,
    cache: Option<&CacheStatus>,
) -> Response<Body> {
    let body = format!(
        "{} {}: {reason}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = cache {
        stamp(h, c);
    }
    res
}
