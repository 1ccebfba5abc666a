//! The headers of a stored response: what is kept of the origin's, the validators they lend
//! a revalidation, and how a 304 updates them (RFC 9111 sections 3.1, 4.3.1, 4.3.4).

use http::{HeaderMap, HeaderName, HeaderValue, header};

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
