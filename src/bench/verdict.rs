//! Reads what a cache says it did from its response headers: RFC 9211 `Cache-Status` (the
//! member closest to the client, i.e. the last), then `X-Cache` (edgecache, Varnish setups,
//! most CDNs; its last entry when layered), then nginx's usual
//! `X-Cache-Status: $upstream_cache_status`.

use http::HeaderMap;

/// What one response says about the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Served from the cache, the origin not asked (fresh, or stale while revalidating).
    Hit,
    /// The origin was asked; `collapsed` when the request joined another's fetch.
    Miss { collapsed: bool },
    /// No header the bench understands.
    Unknown,
}

pub(crate) fn classify(headers: &HeaderMap) -> Verdict {
    if let Some(v) = last_value(headers, "cache-status")
        && let Some(member) = last_member(v)
    {
        let mut params = member.split(';').skip(1).map(|p| {
            let p = p.trim();
            p.split_once('=').map_or(p, |(k, _)| k.trim())
        });
        let (mut hit, mut fwd, mut collapsed) = (false, false, false);
        for p in params.by_ref() {
            match p.to_ascii_lowercase().as_str() {
                "hit" => hit = true,
                "fwd" => fwd = true,
                "collapsed" => collapsed = true,
                _ => {}
            }
        }
        if hit {
            return Verdict::Hit;
        }
        if fwd {
            return Verdict::Miss { collapsed };
        }
    }
    for name in ["x-cache", "x-cache-status"] {
        if let Some(v) = last_value(headers, name) {
            // `HIT`, `HIT from host`, or layered `MISS, HIT` (shield, then edge: as with
            // Cache-Status, the last entry is the cache closest to the client).
            let last = v.rsplit(',').next().unwrap_or("");
            let word = last
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match word.as_str() {
                "HIT" | "STALE" | "UPDATING" | "TCP_HIT" | "TCP_MEM_HIT" => return Verdict::Hit,
                "MISS" | "EXPIRED" | "REVALIDATED" | "BYPASS" | "PASS" | "TCP_MISS" => {
                    return Verdict::Miss { collapsed: false };
                }
                _ => {}
            }
        }
    }
    Verdict::Unknown
}

fn last_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .next_back()
}

/// The last list member, commas inside quoted strings not counting as separators.
fn last_member(list: &str) -> Option<&str> {
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => start = i + 1,
            _ => {}
        }
    }
    Some(list[start..].trim()).filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(pairs: &[(&str, &str)]) -> Verdict {
        classify(&crate::test_util::headers(pairs))
    }

    #[test]
    fn cache_status_last_member_decides() {
        assert_eq!(
            verdict(&[("cache-status", "edgecache; hit; ttl=50")]),
            Verdict::Hit
        );
        assert_eq!(
            verdict(&[(
                "cache-status",
                "edgecache; fwd=uri-miss; fwd-status=200; stored"
            )]),
            Verdict::Miss { collapsed: false }
        );
        assert_eq!(
            verdict(&[("cache-status", "edgecache; fwd=uri-miss; collapsed")]),
            Verdict::Miss { collapsed: true }
        );
        // The origin's own cache hit, ours missed: a miss for us.
        assert_eq!(
            verdict(&[(
                "cache-status",
                "OriginCache; hit, edgecache; fwd=stale; detail=\"a, b\""
            )]),
            Verdict::Miss { collapsed: false }
        );
        // Cache-Status wins over X-Cache; an unreadable one falls back.
        assert_eq!(
            verdict(&[("cache-status", "edgecache; hit"), ("x-cache", "MISS")]),
            Verdict::Hit
        );
        assert_eq!(
            verdict(&[("cache-status", "edgecache"), ("x-cache", "MISS")]),
            Verdict::Miss { collapsed: false }
        );
    }

    #[test]
    fn x_cache_and_nginx_words() {
        assert_eq!(verdict(&[("x-cache", "HIT")]), Verdict::Hit);
        assert_eq!(verdict(&[("x-cache", "hit from cdn-3")]), Verdict::Hit);
        assert_eq!(verdict(&[("x-cache", "MISS, HIT")]), Verdict::Hit);
        assert_eq!(
            verdict(&[("x-cache", "HIT, MISS from edge-2")]),
            Verdict::Miss { collapsed: false }
        );
        assert_eq!(verdict(&[("x-cache-status", "STALE")]), Verdict::Hit);
        assert_eq!(
            verdict(&[("x-cache-status", "EXPIRED")]),
            Verdict::Miss { collapsed: false }
        );
        assert_eq!(verdict(&[("x-cache", "DYNAMIC")]), Verdict::Unknown);
        assert_eq!(verdict(&[("server", "nginx")]), Verdict::Unknown);
    }
}
