//! Reading `Cache-Control`: directives by name, case-insensitively, and the copies of a
//! response's headers that http-cache-semantics is shown where it would misread the originals.

use super::MAX_DELTA;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use std::time::Duration;

/// `h` with the directive names of `Cache-Control` and `Pragma` in lower case (RFC 9111
/// section 5.2: they are case-insensitive), or `None` when no value has an upper-case letter
/// (the usual case, which costs no copy). Directive values are kept as they are.
pub(super) fn lowercase_directives(h: &HeaderMap) -> Option<HeaderMap> {
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
pub(super) fn lowercase_names(v: &HeaderValue) -> HeaderValue {
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
pub(super) fn without_directive(h: &HeaderMap, name: &str) -> Option<HeaderValue> {
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

/// Finds a Cache-Control directive: `None` if absent, `Some(None)` without a value,
/// `Some(Some(v))` with one (quotes removed).
pub(crate) fn directive<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
    name: &str,
) -> Option<Option<&'a str>> {
    directives(values)
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Every Cache-Control directive in order, as (name, value without quotes).
pub(super) fn directives<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(split)
        .map(|(k, v)| (k, v.map(unquote)))
}

/// One field value's directives, as (name, value as written: quotes kept).
fn split(text: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    text.split(',').map(|part| match part.split_once('=') {
        Some((k, val)) => (k.trim(), Some(val.trim())),
        None => (part.trim(), None),
    })
}

fn unquote(v: &str) -> &str {
    v.trim_matches('"')
}

/// The response directives the verdict reads besides http-cache-semantics, found in one pass
/// over the header rather than a scan for each (this runs on every MISS). A directive given
/// twice counts with its first value, as [`directive`] reads it.
#[derive(Default)]
pub(super) struct ResponseDirectives<'a> {
    /// `no-store`: names the refusal when http-cache-semantics refuses to store.
    pub(super) no_store: bool,
    /// `private`: names the refusal likewise.
    pub(super) private: bool,
    /// `public`: lets a response to a request with a Cookie be shared.
    pub(super) public: bool,
    /// `max-age`: explicit freshness, which lets any final status be stored.
    pub(super) max_age: bool,
    /// `s-maxage`: lets a response to a request with a Cookie be shared, and forbids serving it
    /// stale (it implies `proxy-revalidate`).
    pub(super) s_maxage: bool,
    /// `no-cache`: the stored copy is never served stale.
    pub(super) no_cache: bool,
    /// `must-revalidate`: the stored copy is never served stale.
    pub(super) must_revalidate: bool,
    /// `proxy-revalidate`: never served stale, and hidden from http-cache-semantics, which would
    /// give the response no freshness.
    pub(super) proxy_revalidate: bool,
    /// `stale-while-revalidate`, with its value if it has one (RFC 5861).
    pub(super) stale_while_revalidate: Option<Option<&'a str>>,
    /// `stale-if-error`, with its value if it has one (RFC 5861).
    pub(super) stale_if_error: Option<Option<&'a str>>,
    /// `max-age` or `s-maxage` given in a way that must not make the response fresh: other
    /// than as delta-seconds (quoted, `1.5`, `100a`, `-1`, no value), or twice with different
    /// values (or a field that is not text). RFC 9111 sections 1.2.2 and 4.2.1 allow treating
    /// such a response as stale, which is what a cache that cannot tell the origin's intent
    /// should do.
    pub(super) untrusted_freshness: bool,
}

impl<'a> ResponseDirectives<'a> {
    pub(super) fn parse(values: impl Iterator<Item = &'a HeaderValue>) -> Self {
        let mut d = Self::default();
        // The first value of max-age and of s-maxage, as written, to compare the next with.
        let (mut max_age, mut s_maxage) = (None, None);
        for value in values {
            let Ok(text) = value.to_str() else {
                d.untrusted_freshness = true;
                continue;
            };
            for (k, raw) in split(text) {
                let is = |name: &str| k.eq_ignore_ascii_case(name);
                let v = raw.map(unquote);
                if is("no-store") {
                    d.no_store = true;
                } else if is("private") {
                    d.private = true;
                } else if is("public") {
                    d.public = true;
                } else if is("max-age") {
                    d.max_age = true;
                    d.untrusted_freshness |= !consistent_delta(&mut max_age, raw);
                } else if is("s-maxage") {
                    d.s_maxage = true;
                    d.untrusted_freshness |= !consistent_delta(&mut s_maxage, raw);
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
        }
        d
    }
}

/// Is `raw` plain delta-seconds, and the same number as the `first` seen (which it becomes,
/// if it is the first)?
fn consistent_delta<'a>(first: &mut Option<&'a str>, raw: Option<&'a str>) -> bool {
    let Some(val) = raw.filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) else {
        return false;
    };
    match *first {
        Some(f) => f.trim_start_matches('0') == val.trim_start_matches('0'),
        None => {
            *first = Some(val);
            true
        }
    }
}

/// A delta-seconds directive value as a duration (zero when absent or malformed), capped.
pub(super) fn delta(v: Option<Option<&str>>) -> Duration {
    v.flatten()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::ZERO, |s| Duration::from_secs(s).min(MAX_DELTA))
}

/// Is `Expires` given in a way that means "already expired" (RFC 9111 section 5.3): a value
/// that is not an HTTP date (`0`, a malformed date, extra spaces), or two that differ?
pub(super) fn expires_is_invalid(h: &HeaderMap) -> bool {
    let mut values = h.get_all(header::EXPIRES).iter();
    let Some(first) = values.next() else {
        return false;
    };
    let parsed = |v: &HeaderValue| {
        v.to_str()
            .ok()
            .filter(|s| s.trim() == *s)
            .and_then(|s| httpdate::parse_http_date(s).ok())
    };
    let Some(when) = parsed(first) else {
        return true;
    };
    values.any(|v| parsed(v) != Some(when))
}
