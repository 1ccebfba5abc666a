//! Header hygiene at the proxy boundary: hop-by-hop fields (RFC 9110 section 7.6.1) are
//! connection-scoped and never cross the edge, in either direction; nor does a
//! `Content-Length` that came beside `Transfer-Encoding`, which did not frame the message.

use http::{HeaderMap, HeaderName, header};

/// The fixed hop-by-hop set; fields named in `Connection` are removed as well.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop fields, including those listed in `Connection`. A message that had
/// `Transfer-Encoding` was framed by it, whatever its `Content-Length` said (RFC 9112 section
/// 6.3), and a proxy must remove that length (section 6.1): kept, it would frame the de-chunked
/// body the edge forwards, and the bytes past it would be read as the next message on the
/// connection (response splitting, request smuggling).
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Only the fields present are removed, found in one pass over the names: a removal hashes
    // its name, and a message usually carries one or two of the nine (nginx always sends
    // `Connection: keep-alive`).
    let mut doomed: Vec<HeaderName> = h
        .keys()
        .filter(|k| HOP_BY_HOP.contains(k))
        .cloned()
        .collect();
    // `Connection` may name more fields; the fixed ones and the `close` option are not looked up.
    let listed = |t: &&str| {
        !t.eq_ignore_ascii_case("close")
            && !HOP_BY_HOP
                .iter()
                .any(|n| t.eq_ignore_ascii_case(n.as_str()))
    };
    for v in h.get_all(header::CONNECTION) {
        let tokens = v.to_str().unwrap_or_default().split(',').map(str::trim);
        doomed.extend(
            tokens
                .filter(listed)
                .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok()),
        );
    }
    if doomed.contains(&header::TRANSFER_ENCODING) {
        doomed.push(header::CONTENT_LENGTH);
    }
    for n in &doomed {
        h.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_fixed_and_connection_named_fields() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn a_length_beside_transfer_encoding_goes_with_it() {
        let mut h = HeaderMap::new();
        h.insert("content-length", "2".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert!(!h.contains_key("content-length"), "{h:?}");
        assert_eq!(h.len(), 1);
        // Alone, a length frames the message and stays.
        let mut h = HeaderMap::new();
        h.insert("content-length", "2".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h["content-length"], "2");
    }

    #[test]
    fn a_lone_hop_by_hop_field_is_found_and_the_rest_kept() {
        for lone in ["upgrade", "te", "keep-alive", "proxy-connection"] {
            let mut h = HeaderMap::new();
            h.insert("content-type", "text/plain".parse().unwrap());
            h.insert("etag", "\"v1\"".parse().unwrap());
            h.insert(lone, "x".parse().unwrap());
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(lone), "{lone} kept");
            assert_eq!(h.len(), 2, "{lone}: {h:?}");
        }
    }
}
