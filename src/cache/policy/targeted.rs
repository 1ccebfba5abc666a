//! Targeted cache control (RFC 9213): fields that give this cache directives of its own, in
//! place of the `Cache-Control` that browsers and other caches read. edgecache's target list,
//! most specific first: `Edgecache-Cache-Control` (this cache alone), `CDN-Cache-Control`
//! (every CDN), then `Surrogate-Control` (the older Edge Architecture field, `max-age` and
//! `no-store`). The first of them with a valid, non-empty value decides, and `Cache-Control`,
//! `Expires` and `Pragma` are then ignored for caching; none of the three leaves the edge.

use http::{HeaderMap, HeaderName, HeaderValue, header};
use sfv::{BareItem, Dictionary, ListEntry, Parser};
use std::fmt::Write as _;

const EDGECACHE_CACHE_CONTROL: HeaderName = HeaderName::from_static("edgecache-cache-control");
const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// The target list, in order of precedence.
static TARGET_LIST: [HeaderName; 3] = [
    EDGECACHE_CACHE_CONTROL,
    CDN_CACHE_CONTROL,
    SURROGATE_CONTROL,
];

/// The response as the policy reads it when a targeted field applies: `Cache-Control` holds
/// that field's directives (rewritten in its syntax) and `Expires` and `Pragma` are gone.
/// `None` when no field on the target list has a valid, non-empty value.
pub(super) fn policy_view(h: &HeaderMap) -> Option<HeaderMap> {
    let directives = TARGET_LIST.iter().find_map(|name| {
        let mut values = h.get_all(name).iter().peekable();
        values.peek()?;
        if *name == SURROGATE_CONTROL {
            surrogate_control(values)
        } else {
            structured(values)
        }
    })?;
    let mut view = h.clone();
    view.remove(header::EXPIRES);
    view.remove(header::PRAGMA);
    view.insert(header::CACHE_CONTROL, directives);
    Some(view)
}

/// Takes the targeted fields out of a response's headers (they are for this cache, not for
/// the client), returning them; an empty map when there were none.
pub(crate) fn split_off(h: &mut HeaderMap) -> HeaderMap {
    let mut taken = HeaderMap::new();
    for name in &TARGET_LIST {
        if let http::header::Entry::Occupied(e) = h.entry(name) {
            for v in e.remove_entry_mult().1 {
                taken.append(name.clone(), v);
            }
        }
    }
    taken
}

/// A Dictionary Structured Field (RFC 9213 section 2.2) as `Cache-Control` text: a directive
/// with no value is Boolean true; Integers, Decimals and Tokens become tokens, Strings quoted
/// strings; parameters are ignored. `None` when the field does not parse or is empty (RFC 9213:
/// such a field is ignored). A `?0` directive, or one whose value has no `Cache-Control` form
/// (an inner list, bytes, a date), is dropped, as a recipient ignores what it cannot read.
fn structured<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<HeaderValue> {
    let mut joined = Vec::new();
    for v in values {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    let dict: Dictionary = Parser::new(&joined).parse().ok()?;
    if dict.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (key, entry) in &dict {
        let ListEntry::Item(item) = entry else {
            continue;
        };
        let start = out.len();
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(key.as_str());
        let _ = match &item.bare_item {
            BareItem::Boolean(true) => Ok(()),
            BareItem::Integer(n) => write!(out, "={n}"),
            BareItem::Decimal(d) => write!(out, "={d}"),
            BareItem::Token(t) => write!(out, "={}", t.as_str()),
            BareItem::String(s) => write!(out, "=\"{}\"", s.as_str().replace(['"', '\\'], "")),
            _ => {
                out.truncate(start);
                Ok(())
            }
        };
    }
    // Members that all had no Cache-Control form leave nothing: "no directives" is a valid
    // field, and it means what an empty Cache-Control means.
    HeaderValue::from_str(&out).ok()
}

/// `Surrogate-Control` (W3C Edge Architecture 1.0): `max-age` (with an optional `+stale`
/// part, read as `stale-if-error`) and `no-store`; directives aimed at another surrogate
/// (`;name`) and all others (`content=...`) are left alone. `None` when it has neither
/// directive, or one is malformed.
fn surrogate_control<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<HeaderValue> {
    let mut out = String::new();
    for v in values {
        for part in v.to_str().ok()?.split(',') {
            let part = part.trim();
            if part.contains(';') {
                continue;
            }
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (part, None),
            };
            let next = if name.eq_ignore_ascii_case("no-store") && value.is_none() {
                "no-store".to_owned()
            } else if name.eq_ignore_ascii_case("max-age") {
                let (fresh, stale) = match value?.split_once('+') {
                    Some((f, s)) => (f, Some(s)),
                    None => (value?, None),
                };
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                if !digits(fresh) || !stale.is_none_or(digits) {
                    return None;
                }
                match stale {
                    Some(s) => format!("max-age={fresh}, stale-if-error={s}"),
                    None => format!("max-age={fresh}"),
                }
            } else {
                continue;
            };
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&next);
        }
    }
    if out.is_empty() {
        return None;
    }
    HeaderValue::from_str(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields<'a> = &'a [(&'a str, &'a str)];

    fn view(fields: Fields<'_>) -> Option<String> {
        let mut h = HeaderMap::new();
        for (k, v) in fields {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let v = policy_view(&h)?;
        assert!(!v.contains_key(header::EXPIRES), "Expires is ignored");
        Some(v[header::CACHE_CONTROL].to_str().unwrap().to_owned())
    }

    #[test]
    fn the_most_specific_valid_field_decides() {
        let cc = ("cache-control", "max-age=5");
        let cdn = ("cdn-cache-control", "max-age=60");
        let ours = ("edgecache-cache-control", "max-age=600");
        let sc = ("surrogate-control", "max-age=30");
        let bad = ("edgecache-cache-control", "max-age=\"600");
        let cases: &[(Fields<'_>, Option<&str>)] = &[
            (&[cc], None),
            (&[cc, cdn], Some("max-age=60")),
            (&[cc, cdn, ours], Some("max-age=600")),
            (&[cc, sc], Some("max-age=30")),
            (&[cc, cdn, sc], Some("max-age=60")),
            // An invalid field is as if absent: the next one decides.
            (&[cc, bad, cdn], Some("max-age=60")),
            (&[cc, bad], None),
            (&[cc, ("cdn-cache-control", "")], None),
            (&[cc, ("cdn-cache-control", "max-age=60, max-age=")], None),
        ];
        for (fields, want) in cases {
            assert_eq!(view(fields).as_deref(), *want, "{fields:?}");
        }
    }

    #[test]
    fn structured_values_are_rewritten_as_cache_control() {
        let cases = [
            ("no-store", Some("no-store")),
            (
                "max-age=60, stale-while-revalidate=30",
                Some("max-age=60, stale-while-revalidate=30"),
            ),
            ("private=\"set-cookie\"", Some("private=\"set-cookie\"")),
            // Parameters are ignored; a false Boolean or an inner list is no directive.
            (
                "max-age=60;foo=bar, no-store=?0, no-cache=(a b)",
                Some("max-age=60"),
            ),
            // Keys are lower case in Structured Fields: `Max-Age` does not parse.
            ("Max-Age=60", None),
            // Types Cache-Control would refuse are kept for the policy to refuse.
            ("max-age=1.5", Some("max-age=1.5")),
            ("max-age=-1", Some("max-age=-1")),
            ("max-age=?1", Some("max-age")),
            // Two lines are one field; a later key replaces an earlier one.
            ("max-age=60, max-age=120", Some("max-age=120")),
        ];
        for (value, want) in cases {
            assert_eq!(
                view(&[("cdn-cache-control", value)]).as_deref(),
                want,
                "{value}"
            );
        }
        let two = view(&[
            ("cdn-cache-control", "max-age=60"),
            ("cdn-cache-control", "must-revalidate"),
        ]);
        assert_eq!(two.as_deref(), Some("max-age=60, must-revalidate"));
    }

    #[test]
    fn surrogate_control_gives_max_age_and_no_store() {
        let cases = [
            ("max-age=300", Some("max-age=300")),
            ("max-age=300+60", Some("max-age=300, stale-if-error=60")),
            ("no-store", Some("no-store")),
            ("content=\"ESI/1.0\", max-age=10", Some("max-age=10")),
            ("content=\"ESI/1.0\"", None),
            ("max-age=10;other-cdn, no-store", Some("no-store")),
            ("max-age=ten", None),
            ("max-age=10+", None),
        ];
        for (value, want) in cases {
            assert_eq!(
                view(&[("surrogate-control", value)]).as_deref(),
                want,
                "{value}"
            );
        }
    }

    #[test]
    fn split_off_takes_every_targeted_line() {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        h.append(CDN_CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
        h.append(CDN_CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.append(SURROGATE_CONTROL, HeaderValue::from_static("no-store"));
        let taken = split_off(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(taken.get_all(CDN_CACHE_CONTROL).iter().count(), 2);
        assert_eq!(taken.len(), 3);
        assert!(split_off(&mut h).is_empty());
    }
}
