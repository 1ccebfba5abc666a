//! Header hygiene at the proxy boundary: hop-by-hop fields (RFC 9110 section 7.6.1) are
//! connection-scoped and never cross the edge, in either direction.

use http::{HeaderMap, HeaderName, header};

/// The fixed hop-by-hop set; fields named in `Connection` are removed as well.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop fields, including those listed in `Connection`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Most messages carry none: one pass over the names is cheaper than nine removals, each
    // hashing its name.
    if !h
        .keys()
        .any(|k| k == header::UPGRADE || HOP_BY_HOP.contains(k))
    {
        return;
    }
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP.iter()) {
        h.remove(n);
    }
    h.remove(header::UPGRADE);
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
