//! Building the request an origin sees. Cacheable requests (GET/HEAD) carry only a fixed set of
//! safe headers plus those a site lists: a header the cache key ignores never reaches the
//! origin, so it cannot shape a response that is then served to everyone (cache poisoning).
//! Pass-through requests carry everything but hop-by-hop fields. Both get `Via` and
//! `X-Forwarded-*`; client-sent `X-Forwarded-Host/Proto` are replaced, not trusted.

use super::site::Site;
use crate::{cache::key::preferred_encoding, origin::headers::strip_hop_by_hop};
use http::{HeaderMap, HeaderName, HeaderValue, header};

pub(crate) const VIA: HeaderValue = HeaderValue::from_static("1.1 edgecache");

/// Request headers forwarded on cacheable requests. Each either names what the client can
/// take (and responses that depend on it must say `Vary`), or makes the response unstorable
/// unless the origin marks it shareable (Authorization, Cookie).
static SAFE_ON_FILL: [HeaderName; 7] = [
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::USER_AGENT,
    header::AUTHORIZATION,
    header::COOKIE,
    header::REFERER,
    header::ORIGIN,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers for a fill (GET to the origin on behalf of a cacheable request).
pub(crate) fn fill_headers(
    site: &Site,
    client: &HeaderMap,
    host: &HeaderValue,
    client_ip: Option<&HeaderValue>,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(12);
    for name in SAFE_ON_FILL.iter().chain(site.forward_headers.iter()) {
        for v in client.get_all(name) {
            h.append(name.clone(), v.clone());
        }
    }
    // The origin sees exactly the coding the variant is keyed on.
    h.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static(preferred_encoding(client)),
    );
    add_proxy_headers(&mut h, client, host, client_ip);
    h
}

/// Headers for a pass-through request: all but hop-by-hop ones.
pub(crate) fn pass_headers(
    client: &HeaderMap,
    host: &HeaderValue,
    client_ip: Option<&HeaderValue>,
) -> HeaderMap {
    let mut h = client.clone();
    strip_hop_by_hop(&mut h);
    add_proxy_headers(&mut h, client, host, client_ip);
    h
}

fn add_proxy_headers(
    h: &mut HeaderMap,
    client: &HeaderMap,
    host: &HeaderValue,
    client_ip: Option<&HeaderValue>,
) {
    h.insert(header::HOST, host.clone());
    h.append(header::VIA, VIA);
    if let Some(ip) = client_ip {
        // A client's list that is not plain text is replaced, not extended.
        let xff = match client.get(&X_FORWARDED_FOR).filter(|v| v.to_str().is_ok()) {
            Some(prev) => {
                let mut v = Vec::with_capacity(prev.len() + 2 + ip.len());
                v.extend_from_slice(prev.as_bytes());
                v.extend_from_slice(b", ");
                v.extend_from_slice(ip.as_bytes());
                HeaderValue::from_bytes(&v).ok()
            }
            None => Some(ip.clone()),
        };
        if let Some(v) = xff {
            h.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    h.insert(X_FORWARDED_HOST.clone(), host.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::{Origin, StaticDir};

    fn site() -> Site {
        let dir = std::env::temp_dir();
        Site {
            name: "s".into(),
            hosts: Vec::new(),
            path_prefix: "/".into(),
            origin: Origin::Static(StaticDir::new(dir, &[]).unwrap()),
            honor_client_no_cache: false,
            cache_set_cookie: false,
            forward_headers: vec![HeaderName::from_static("x-tenant")],
        }
    }

    #[test]
    fn fills_forward_only_safe_headers() {
        let mut c = HeaderMap::new();
        c.insert("x-forwarded-host", "evil.example".parse().unwrap());
        c.insert("x-original-url", "/admin".parse().unwrap());
        c.insert("x-tenant", "a".parse().unwrap());
        c.insert("accept-encoding", "gzip, deflate".parse().unwrap());
        c.insert("accept", "text/html".parse().unwrap());
        c.insert("if-none-match", "\"x\"".parse().unwrap());
        let h = fill_headers(
            &site(),
            &c,
            &HeaderValue::from_static("site.example"),
            Some(&HeaderValue::from_static("10.0.0.1")),
        );
        assert_eq!(h["x-forwarded-host"], "site.example");
        assert!(!h.contains_key("x-original-url"));
        assert!(!h.contains_key("if-none-match"));
        assert_eq!(h["x-tenant"], "a");
        assert_eq!(h["accept-encoding"], "gzip");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["via"], "1.1 edgecache");
        assert_eq!(h["host"], "site.example");
    }

    #[test]
    fn a_client_forwarded_for_list_is_extended_only_when_it_is_text() {
        let ip = HeaderValue::from_static("10.0.0.1");
        let host = HeaderValue::from_static("site.example");
        let xff = |v: HeaderValue| {
            let mut c = HeaderMap::new();
            c.insert("x-forwarded-for", v);
            fill_headers(&site(), &c, &host, Some(&ip))["x-forwarded-for"].clone()
        };
        assert_eq!(
            xff(HeaderValue::from_static("1.2.3.4")),
            "1.2.3.4, 10.0.0.1"
        );
        assert_eq!(
            xff(HeaderValue::from_bytes(b"1.2.3.4\xff").unwrap()),
            "10.0.0.1"
        );
    }
}
