//! Cache keys. The primary key names a URL as the site sees it: site, normalised host and the
//! request target. Nothing else from the request goes in, so no header the edge ignores can
//! split or poison an entry; headers matter only through `Vary`, where the stored response
//! names them, and their values are normalised first (see `normalize_vary_value`).

use http::{HeaderMap, HeaderName, HeaderValue, header};
use std::{fmt, sync::Arc};

/// The primary key: one per URL, shared by all its variants. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Arc<str>);

impl CacheKey {
    /// `site` is the config's site name, `host` the request's authority already in canonical
    /// form (`proxy::site::Authority::canonical_for`: lower-case, no trailing dot, no default port),
    /// `target` the path and query. The site name is length-prefixed, so no choice of names can
    /// make two different (site, host, target) triples spell the same key.
    pub fn new(site: &str, host: &str, target: &str) -> Self {
        Self::with_scheme(false, site, host, target)
    }

    /// The key of the URL as asked over `https` (or plain HTTP): an https request's key has
    /// `https://` before the host, a plain one's is [`CacheKey::new`]'s, so the two never share
    /// an entry (an origin told `X-Forwarded-Proto: https` may answer otherwise: absolute
    /// links, a redirect to https) and keys of plain HTTP stay as they were. No host has `/`
    /// in it, so no host spells the other scheme's key.
    pub fn with_scheme(https: bool, site: &str, host: &str, target: &str) -> Self {
        let mut s = String::with_capacity(site.len() + host.len() + target.len() + 16);
        crate::numfmt::push_u64(&mut s, site.len() as u64);
        s.push(':');
        s.push_str(site);
        s.push(' ');
        if https {
            s.push_str("https://");
        }
        s.push_str(host);
        s.push_str(target);
        CacheKey(s.into())
    }

    /// The keys of one URL under both schemes, plain first: what a purge of the URL removes.
    pub fn both_schemes(site: &str, host: &str, target: &str) -> [Self; 2] {
        [
            Self::with_scheme(false, site, host, target),
            Self::with_scheme(true, site, host, target),
        ]
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.0)
    }
}

/// The request's values for the header names a response varies on, normalised. Two requests
/// with equal `VaryValues` for a response's `Vary` list get the same variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct VaryValues(Vec<(HeaderName, Option<HeaderValue>)>);

impl VaryValues {
    /// `names` come from a response's Vary; `*` is handled by the caller (never stored).
    pub(crate) fn from_request(names: &[HeaderName], req: &HeaderMap) -> Self {
        VaryValues(
            names
                .iter()
                .map(|n| (n.clone(), normalize_vary_value(n, req)))
                .collect(),
        )
    }

    /// Does this request select the variant these values were recorded for?
    pub(crate) fn matches(&self, req: &HeaderMap) -> bool {
        self.0
            .iter()
            .all(|(n, v)| normalize_vary_value(n, req).as_ref() == v.as_ref())
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.0.iter().map(|(n, _)| n)
    }

    /// Each name with the value recorded for it (`None`: the request had none).
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&HeaderName, Option<&HeaderValue>)> {
        self.0.iter().map(|(n, v)| (n, v.as_ref()))
    }

    pub(crate) fn weight(&self) -> usize {
        self.0
            .iter()
            .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, |v| v.len()) + 16)
            .sum()
    }
}

/// Parses a `Vary` header list: lower-cased names, `None` if it contains `*` (never matches).
pub(crate) fn vary_names(h: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for v in h.get_all(header::VARY) {
        for part in v.to_str().unwrap_or("*").split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            if part == "*" {
                return None;
            }
            let name = HeaderName::from_bytes(part.to_ascii_lowercase().as_bytes()).ok()?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Some(names)
}

/// The value of header `name` as a variant sees it. Accept-Encoding collapses to the one coding
/// the edge will ask the origin for (`br`, `gzip` or `identity`), so the hundreds of spellings
/// browsers send make three variants, not hundreds. Other headers: values joined by ", ".
pub(crate) fn normalize_vary_value(name: &HeaderName, req: &HeaderMap) -> Option<HeaderValue> {
    if name == header::ACCEPT_ENCODING {
        return Some(HeaderValue::from_static(preferred_encoding(req)));
    }
    let mut it = req.get_all(name).iter();
    let first = it.next()?;
    let rest: Vec<&HeaderValue> = it.collect();
    if rest.is_empty() {
        return Some(first.clone());
    }
    let mut joined = first.as_bytes().to_vec();
    for v in rest {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(v.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// What the client accepts (q > 0) among br and gzip, as the Accept-Encoding the origin is
/// sent and the variant is keyed on: `br, gzip`, `br`, `gzip` or `identity`. A client taking
/// both is offered both, so that an origin without brotli still compresses.
pub(crate) fn preferred_encoding(req: &HeaderMap) -> &'static str {
    let (mut br, mut gzip, mut star) = (false, false, false);
    // Named with q=0: `*` does not bring them back.
    let (mut br_refused, mut gzip_refused) = (false, false);
    for v in req.get_all(header::ACCEPT_ENCODING) {
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if coding.eq_ignore_ascii_case("br") {
                br |= !refused;
                br_refused |= refused;
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip |= !refused;
                gzip_refused |= refused;
            } else if coding == "*" {
                star |= !refused;
            }
        }
    }
    if star {
        br |= !br_refused;
        gzip |= !gzip_refused;
    }
    if br && gzip {
        "br, gzip"
    } else if br {
        "br"
    } else if gzip {
        "gzip"
    } else {
        "identity"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::headers as hm;

    #[test]
    fn distinct_parts_make_distinct_keys() {
        // Spellings of one host are merged before this (proxy::site::Authority, tested there).
        assert_ne!(
            CacheKey::new("a b", "c", "/x"),
            CacheKey::new("a", "b c", "/x")
        );
        assert_ne!(
            CacheKey::new("s", "a.com", "/x"),
            CacheKey::new("s", "b.com", "/x")
        );
        assert_ne!(
            CacheKey::new("s", "a.com", "/x?1"),
            CacheKey::new("s", "a.com", "/x?2")
        );
    }

    #[test]
    fn accept_encoding_collapses_to_four_values() {
        assert_eq!(
            preferred_encoding(&hm(&[("accept-encoding", "gzip, deflate, br")])),
            "br, gzip"
        );
        assert_eq!(
            preferred_encoding(&hm(&[("accept-encoding", "*")])),
            "br, gzip"
        );
        assert_eq!(
            preferred_encoding(&hm(&[("accept-encoding", "br, gzip;q=0")])),
            "br"
        );
        assert_eq!(
            preferred_encoding(&hm(&[("accept-encoding", "gzip;q=0, *")])),
            "br"
        );
        assert_eq!(
            preferred_encoding(&hm(&[("accept-encoding", "*, br;q=0")])),
            "gzip"
        );
        assert_eq!(
            preferred_encoding(&hm(&[("accept-encoding", "gzip;q=0.8, deflate")])),
            "gzip"
        );
        assert_eq!(
            preferred_encoding(&hm(&[("accept-encoding", "br;q=0, gzip")])),
            "gzip"
        );
        assert_eq!(
            preferred_encoding(&hm(&[("accept-encoding", "identity")])),
            "identity"
        );
        assert_eq!(preferred_encoding(&HeaderMap::new()), "identity");
    }

    #[test]
    fn vary_names_parse_and_star() {
        let names = vary_names(&hm(&[
            ("vary", "Accept-Encoding, X-Foo"),
            ("vary", "accept-encoding"),
        ]))
        .unwrap();
        assert_eq!(names.len(), 2);
        assert!(vary_names(&hm(&[("vary", "*")])).is_none());
        assert_eq!(vary_names(&HeaderMap::new()).unwrap().len(), 0);
    }

    #[test]
    fn variants_match_on_normalised_values() {
        let names = vec![header::ACCEPT_ENCODING, HeaderName::from_static("x-lang")];
        let v = VaryValues::from_request(
            &names,
            &hm(&[("accept-encoding", "gzip, deflate"), ("x-lang", "de")]),
        );
        assert!(v.matches(&hm(&[
            ("accept-encoding", "deflate, gzip"),
            ("x-lang", "de")
        ])));
        assert!(!v.matches(&hm(&[("accept-encoding", "br"), ("x-lang", "de")])));
        assert!(!v.matches(&hm(&[("accept-encoding", "gzip")])));
    }
}
