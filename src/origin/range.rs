//! Conditional requests (RFC 9110 section 13) and single byte ranges (section 14), as the edge
//! answers them from stored objects and the static directory origin from files.

use http::{HeaderMap, HeaderValue, header};

/// Would the client's own validators make this a 304? (RFC 9110 section 13.2.2 order.)
/// `stored` are the representation's headers (its `ETag`, `Last-Modified`): a stored object's,
/// or a file's as the static directory describes it.
pub(crate) fn not_modified(stored: &HeaderMap, req: &HeaderMap) -> bool {
    if req.contains_key(header::IF_NONE_MATCH) {
        let Some(etag) = stored.get(header::ETAG).and_then(|e| e.to_str().ok()) else {
            return false;
        };
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_string();
        let mut tags = req
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        return tags.any(|t| t.trim() == "*" || weak(t) == weak(etag));
    }
    if let (Some(ims), Some(lm)) = (
        req.get(header::IF_MODIFIED_SINCE),
        stored.get(header::LAST_MODIFIED),
    ) {
        let parse = |v: &HeaderValue| {
            v.to_str()
                .ok()
                .and_then(|s| httpdate::parse_http_date(s).ok())
        };
        if let (Some(ims), Some(lm)) = (parse(ims), parse(lm)) {
            return lm <= ims;
        }
    }
    false
}

/// `If-Range` must name the stored representation exactly (strong ETag or Last-Modified).
pub(crate) fn if_range_holds(stored: &HeaderMap, req: &HeaderMap) -> bool {
    let Some(ir) = req.get(header::IF_RANGE) else {
        return true;
    };
    let ir = ir.as_bytes();
    if ir.starts_with(b"\"") {
        stored.get(header::ETAG).is_some_and(|e| e.as_bytes() == ir)
    } else {
        stored
            .get(header::LAST_MODIFIED)
            .is_some_and(|lm| lm.as_bytes() == ir)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    /// Inclusive byte positions.
    Satisfiable(u64, u64),
    Unsatisfiable,
    /// Not a single byte range we serve partially (multiple ranges, other units, garbage):
    /// the full representation is sent, which RFC 9110 allows.
    Ignore,
}

impl RangeSpec {
    /// The `Content-Range` of the answer to this range of a `total`-byte representation: the
    /// slice for a 206, `*` for a 416, none when the whole is sent.
    pub(crate) fn content_range(&self, total: u64) -> Option<HeaderValue> {
        let text = match self {
            RangeSpec::Satisfiable(start, end) => format!("bytes {start}-{end}/{total}"),
            RangeSpec::Unsatisfiable => format!("bytes */{total}"),
            RangeSpec::Ignore => return None,
        };
        HeaderValue::try_from(text).ok()
    }
}

/// Parses a `Range` header against a representation of `len` bytes.
pub(crate) fn parse_range(v: &HeaderValue, len: u64) -> RangeSpec {
    let Some(spec) = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().strip_prefix("bytes="))
    else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeSpec::Ignore,
        (true, false) => match num(b) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if len == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Satisfiable(len.saturating_sub(n), len - 1),
            None => RangeSpec::Ignore,
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeSpec::Ignore;
            };
            let end = if b.is_empty() { Some(u64::MAX) } else { num(b) };
            match end {
                None => RangeSpec::Ignore,
                Some(end) if end < start => RangeSpec::Ignore,
                Some(_) if start >= len => RangeSpec::Unsatisfiable,
                Some(end) => RangeSpec::Satisfiable(start, end.min(len - 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditionals() {
        let stored = hm(&[
            ("etag", "\"v1\""),
            ("last-modified", "Mon, 02 Nov 2026 10:00:00 GMT"),
        ]);
        assert!(not_modified(
            &stored,
            &hm(&[("if-none-match", "\"v0\", W/\"v1\"")])
        ));
        assert!(!not_modified(&stored, &hm(&[("if-none-match", "\"v2\"")])));
        assert!(not_modified(
            &stored,
            &hm(&[("if-modified-since", "Mon, 02 Nov 2026 10:00:00 GMT")])
        ));
        assert!(!not_modified(
            &stored,
            &hm(&[("if-modified-since", "Sun, 01 Nov 2026 10:00:00 GMT")])
        ));
        // If-None-Match wins over If-Modified-Since.
        assert!(!not_modified(
            &stored,
            &hm(&[
                ("if-none-match", "\"v2\""),
                ("if-modified-since", "Mon, 02 Nov 2026 10:00:00 GMT")
            ])
        ));
    }

    use crate::test_util::headers as hm;

    fn r(s: &'static str, len: u64) -> RangeSpec {
        parse_range(&HeaderValue::from_static(s), len)
    }

    #[test]
    fn ranges() {
        assert_eq!(r("bytes=10-19", 1000), RangeSpec::Satisfiable(10, 19));
        assert_eq!(r("bytes=990-", 1000), RangeSpec::Satisfiable(990, 999));
        assert_eq!(r("bytes=-10", 1000), RangeSpec::Satisfiable(990, 999));
        assert_eq!(r("bytes=-5000", 1000), RangeSpec::Satisfiable(0, 999));
        assert_eq!(r("bytes=900-5000", 1000), RangeSpec::Satisfiable(900, 999));
        assert_eq!(r("bytes=5000-6000", 1000), RangeSpec::Unsatisfiable);
        assert_eq!(r("bytes=-0", 1000), RangeSpec::Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6", 1000), RangeSpec::Ignore);
        assert_eq!(r("items=0-1", 1000), RangeSpec::Ignore);
        assert_eq!(r("bytes=9-3", 1000), RangeSpec::Ignore);
        assert_eq!(r("bytes=x-3", 1000), RangeSpec::Ignore);
        assert_eq!(r("bytes=0-0", 0), RangeSpec::Unsatisfiable);
        let cr = |s, len| r(s, len).content_range(len);
        assert_eq!(cr("bytes=10-19", 1000).unwrap(), "bytes 10-19/1000");
        assert_eq!(cr("bytes=5000-", 1000).unwrap(), "bytes */1000");
        assert_eq!(cr("bytes=0-1,5-6", 1000), None);
    }

    #[test]
    fn if_range_must_name_the_representation_exactly() {
        let stored = hm(&[
            ("etag", "\"v1\""),
            ("last-modified", "Mon, 02 Nov 2026 10:00:00 GMT"),
        ]);
        assert!(if_range_holds(&stored, &hm(&[])));
        assert!(if_range_holds(&stored, &hm(&[("if-range", "\"v1\"")])));
        assert!(!if_range_holds(&stored, &hm(&[("if-range", "\"v0\"")])));
        assert!(if_range_holds(
            &stored,
            &hm(&[("if-range", "Mon, 02 Nov 2026 10:00:00 GMT")])
        ));
    }
}
