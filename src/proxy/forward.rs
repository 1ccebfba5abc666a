//! Building the request an origin sees.
//!
//! A cacheable request (GET, HEAD) carries the client's end-to-end headers, as at other shared
//! caches, except those the edge owns (`Host`, `Via`, `X-Forwarded-*`, `Forwarded`: replaced),
//! those the cache manages (conditionals and `Range`: it sends its own), and the override
//! headers that make some origins answer for another URL, method or host. That last list is
//! the known cache-poisoning vector among unkeyed headers; any other header an origin's answer
//! depends on must be named in its `Vary`, which keys the cache on it. A site in `strict` mode
//! forwards only a fixed safe set instead. Both add the site's `forward_headers` and every header
//! the stored response varies on. Pass-through requests carry everything but hop-by-hop fields.

use super::{Client, site::Site};
use crate::{
    cache::key::preferred_encoding, config::RequestHeaders, origin::headers::strip_hop_by_hop,
};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use std::borrow::Cow;

pub(crate) const VIA: HeaderValue = HeaderValue::from_static("1.1 edgecache");

/// Request headers forwarded on cacheable requests in strict mode. Each either names what the
/// client can take (and responses that depend on it must say `Vary`), or makes the response
/// unstorable unless the origin marks it shareable (Authorization, Cookie).
static SAFE_ON_FILL: [HeaderName; 7] = [
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::USER_AGENT,
    header::AUTHORIZATION,
    header::COOKIE,
    header::REFERER,
    header::ORIGIN,
];

/// Never forwarded from the client on a fill, in either mode: the edge sets the first ones
/// itself, and the cache makes its own conditional and range requests. A fill has no body, so
/// no framing header of the client's applies either.
static OWNED_ON_FILL: [HeaderName; 13] = [
    header::HOST,
    header::VIA,
    header::FORWARDED,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
    header::CONTENT_LENGTH,
];

/// Headers that make some frameworks and origins answer for another URL, method or host
/// than the one the cache keys on (cache-poisoning research: Kettle 2018, 2020): dropped on
/// fills unless a site names them in `forward_headers`.
static OVERRIDE_HEADERS: [HeaderName; 10] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
];

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers for a fill (GET to the origin on behalf of a cacheable request); `vary` names the
/// headers a stored response for the URL varies on, forwarded whatever the mode.
pub(crate) fn fill_headers(
    site: &Site,
    client: &HeaderMap,
    host: &HeaderValue,
    from: Option<&Client>,
    vary: &[HeaderName],
) -> HeaderMap {
    let mut h = match site.request_headers {
        RequestHeaders::All => {
            let mut h = client.clone();
            strip_hop_by_hop(&mut h);
            for name in &OWNED_ON_FILL {
                h.remove(name);
            }
            for name in &OVERRIDE_HEADERS {
                if !site.forward_headers.contains(name) {
                    h.remove(name);
                }
            }
            h
        }
        RequestHeaders::Strict => {
            let mut h = HeaderMap::with_capacity(12);
            for name in SAFE_ON_FILL.iter().chain(&site.forward_headers) {
                copy_from(&mut h, client, name);
            }
            h
        }
    };
    // Vary'd headers are forwarded in both modes, override headers included: the cache is
    // keyed on them, so they cannot poison it.
    for name in vary {
        copy_from(&mut h, client, name);
    }
    join_cookies(&mut h);
    // The origin sees exactly the coding the variant is keyed on.
    h.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static(preferred_encoding(client)),
    );
    add_proxy_headers(&mut h, client, host, from);
    h
}

/// Copies every value of `name` from the client's headers, unless it is there already or the
/// edge owns it.
fn copy_from(h: &mut HeaderMap, client: &HeaderMap, name: &HeaderName) {
    if h.contains_key(name) || OWNED_ON_FILL.contains(name) {
        return;
    }
    for v in client.get_all(name) {
        h.append(name.clone(), v.clone());
    }
}

/// Headers for a pass-through request: all but hop-by-hop ones.
pub(crate) fn pass_headers(
    client: &HeaderMap,
    host: &HeaderValue,
    from: Option<&Client>,
) -> HeaderMap {
    let mut h = client.clone();
    strip_hop_by_hop(&mut h);
    h.remove(header::FORWARDED);
    join_cookies(&mut h);
    add_proxy_headers(&mut h, client, host, from);
    h
}

/// An HTTP/2 client may split `Cookie` into one field per pair; an HTTP/1.1 origin wants one
/// line, joined with `; ` (RFC 9113 section 8.2.3).
fn join_cookies(h: &mut HeaderMap) {
    let mut values = h.get_all(header::COOKIE).iter();
    let (Some(_), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined = Vec::new();
    for v in h.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(header::COOKIE, v);
    }
}

/// `Host`, `Via` and the `X-Forwarded-*` fields. A trusted proxy's `X-Forwarded-For` is
/// extended with its address and its `X-Forwarded-Proto` passed on; anyone else's are replaced
/// by the connection's own address and its scheme (`https` on the TLS listener), so an origin that believes the left-most
/// address cannot be told another.
fn add_proxy_headers(
    h: &mut HeaderMap,
    client: &HeaderMap,
    host: &HeaderValue,
    from: Option<&Client>,
) {
    h.insert(header::HOST, host.clone());
    h.append(header::VIA, VIA);
    let trusted = from.is_some_and(|c| c.proxy.is_some());
    if let Some(c) = from {
        // A trusted list that is not plain text is replaced, not extended. Without one, a
        // trusted proxy's RFC 7239 `Forwarded` says the same in other words.
        let prev = match client.get(X_FORWARDED_FOR) {
            Some(v) => v.to_str().ok().filter(|_| trusted).map(Cow::Borrowed),
            None if trusted => forwarded_for(client).map(Cow::Owned),
            None => None,
        };
        let xff = match prev {
            Some(prev) => {
                let mut v = Vec::with_capacity(prev.len() + 2 + c.peer().len());
                v.extend_from_slice(prev.as_bytes());
                v.extend_from_slice(b", ");
                v.extend_from_slice(c.peer().as_bytes());
                HeaderValue::from_bytes(&v).ok()
            }
            None => Some(c.peer().clone()),
        };
        match xff {
            Some(v) => h.insert(X_FORWARDED_FOR, v),
            None => h.insert(X_FORWARDED_FOR, c.peer().clone()),
        };
    } else {
        h.remove(X_FORWARDED_FOR);
    }
    let proto = if is_https(client, from) {
        HeaderValue::from_static("https")
    } else {
        HeaderValue::from_static("http")
    };
    h.insert(X_FORWARDED_PROTO, proto);
    h.insert(X_FORWARDED_HOST, host.clone());
}

/// Did the client speak https? A trusted proxy's `X-Forwarded-Proto` (or `Forwarded`'s
/// `proto=`) says so when it says `http` or `https`; otherwise the connection does (the TLS
/// listener's are https). What the origin is told, and what splits the cache key.
pub(crate) fn is_https(client: &HeaderMap, from: Option<&Client>) -> bool {
    let trusted = from.is_some_and(|c| c.proxy.is_some());
    if !trusted {
        // Nobody's word but the connection's: no header to look up (most requests).
        return from.is_some_and(|c| c.tls);
    }
    let said = match client.get(X_FORWARDED_PROTO) {
        Some(p) => Some(p.clone()),
        None => forwarded_proto(client),
    };
    match said.as_ref().map(HeaderValue::as_bytes) {
        Some(b"https") => true,
        Some(b"http") => false,
        _ => from.is_some_and(|c| c.tls),
    }
}

/// The `for=` nodes of RFC 7239 `Forwarded` fields, first hop first, as an `X-Forwarded-For`
/// list: brackets and ports dropped, a node that is not an address (`unknown`, an obfuscated
/// `_name`) as `unknown`. `None` when no element has a `for=`.
pub(crate) fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let mut list = String::new();
    for node in forwarded_params(headers, "for") {
        if !list.is_empty() {
            list.push_str(", ");
        }
        match node_address(&node) {
            Some(ip) => list.push_str(&ip.to_canonical().to_string()),
            None => list.push_str("unknown"),
        }
    }
    (!list.is_empty()).then_some(list)
}

/// The `proto=` of the last `Forwarded` element that has one: the scheme the nearest proxy
/// was spoken to in.
fn forwarded_proto(headers: &HeaderMap) -> Option<HeaderValue> {
    let proto = forwarded_params(headers, "proto").last()?;
    HeaderValue::from_str(&proto.to_ascii_lowercase()).ok()
}

/// The values of parameter `name` in every element of every `Forwarded` field, in order,
/// unquoted. (A quoted value with a `,` or `;` inside is not a node or a scheme anyway.)
fn forwarded_params<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(move |element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case(name).then(|| {
                    let v = v.trim();
                    v.strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v)
                        .replace("\\\"", "\"")
                })
            })
        })
}

/// The address of a `Forwarded` node: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]` or
/// `[2001:db8::1]:4711`; `None` for `unknown` and obfuscated names.
fn node_address(node: &str) -> Option<std::net::IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest
            .split_once(']')?
            .0
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(Into::into);
    }
    let host = match node.split_once(':') {
        Some((h, port)) if !port.contains(':') => h,
        _ => node,
    };
    host.parse::<std::net::Ipv4Addr>().ok().map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::{Origin, StaticDir};

    fn site(mode: RequestHeaders) -> Site {
        let dir = std::env::temp_dir();
        Site {
            name: "s",
            hosts: Vec::new(),
            path_prefix: "/".into(),
            origin: Origin::Static(StaticDir::new(dir, &[]).unwrap()),
            honor_client_cache_control: false,
            cache_set_cookie: false,
            negative_ttl: std::time::Duration::ZERO,
            stale_on_error: std::time::Duration::ZERO,
            tag_headers: Vec::new(),
            forward_headers: vec![
                HeaderName::from_static("x-tenant"),
                HeaderName::from_static("x-forwarded-prefix"),
            ],
            request_headers: mode,
            stats: crate::telemetry::metrics::Metrics::new().site("s"),
            access: None,
            admission: Default::default(),
            redirect_http: false,
        }
    }

    fn client() -> HeaderMap {
        crate::test_util::headers(&[
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4;host=evil.example"),
            ("x-original-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("x-forwarded-prefix", "/p"),
            ("x-tenant", "a"),
            ("x-api-key", "k"),
            ("sec-ch-ua-mobile", "?1"),
            ("accept-encoding", "gzip, deflate"),
            ("accept", "text/html"),
            ("if-none-match", "\"x\""),
            ("if-modified-since", "Mon, 02 Nov 2026 10:00:00 GMT"),
            ("range", "bytes=0-1"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("content-length", "0"),
            ("host", "evil.example"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ])
    }

    /// A connection from 10.0.0.1, a trusted proxy or not.
    fn peer(trusted: bool) -> Client {
        Client::new("10.0.0.1:40000".parse().unwrap(), 0, trusted)
    }

    fn fill(mode: RequestHeaders, vary: &[HeaderName]) -> HeaderMap {
        fill_headers(
            &site(mode),
            &client(),
            &HeaderValue::from_static("site.example"),
            Some(&peer(false)),
            vary,
        )
    }

    /// What every fill carries, whatever the mode: the edge's own proxy headers, one coding.
    fn assert_owned(h: &HeaderMap) {
        assert_eq!(h["host"], "site.example");
        assert_eq!(h["x-forwarded-host"], "site.example");
        // The client's own X-Forwarded-For (1.2.3.4) is not believed from an untrusted peer.
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["via"], "1.1 edgecache");
        assert_eq!(h["accept-encoding"], "gzip");
        for gone in [
            "forwarded",
            "x-original-url",
            "x-http-method-override",
            "if-none-match",
            "if-modified-since",
            "range",
            "connection",
            "x-hop",
            "content-length",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
    }

    #[test]
    fn all_mode_forwards_every_end_to_end_header_but_the_owned_and_the_overrides() {
        let h = fill(RequestHeaders::All, &[]);
        assert_owned(&h);
        assert_eq!(h["x-api-key"], "k");
        assert_eq!(h["sec-ch-ua-mobile"], "?1");
        assert_eq!(h["accept"], "text/html");
        assert_eq!(h["x-tenant"], "a");
        // An override header the site lists goes through.
        assert_eq!(h["x-forwarded-prefix"], "/p");
    }

    #[test]
    fn strict_mode_forwards_the_safe_set_the_site_list_and_what_the_response_varies_on() {
        let h = fill(RequestHeaders::Strict, &[]);
        assert_owned(&h);
        assert_eq!(h["accept"], "text/html");
        assert_eq!(h["x-tenant"], "a");
        assert!(!h.contains_key("x-api-key"));
        assert!(!h.contains_key("sec-ch-ua-mobile"));
        let vary = [
            HeaderName::from_static("sec-ch-ua-mobile"),
            HeaderName::from_static("x-original-url"),
        ];
        let h = fill(RequestHeaders::Strict, &vary);
        assert_eq!(h["sec-ch-ua-mobile"], "?1");
        // Keyed on, so it cannot poison: a response that varies on it gets it.
        assert_eq!(h["x-original-url"], "/admin");
        let h = fill(RequestHeaders::All, &vary);
        assert_eq!(h["x-original-url"], "/admin");
    }

    #[test]
    fn the_scheme_is_the_connections_unless_a_trusted_proxy_says_otherwise() {
        let said = |v: &str| {
            let mut c = HeaderMap::new();
            c.insert("x-forwarded-proto", HeaderValue::from_str(v).unwrap());
            c
        };
        let (none, tls) = (HeaderMap::new(), |trusted| peer(trusted).over_tls(true));
        assert!(is_https(&none, Some(&tls(false))));
        assert!(!is_https(&none, Some(&peer(false))));
        assert!(!is_https(&none, None));
        // A client's own word is not believed, either way.
        assert!(is_https(&said("http"), Some(&tls(false))));
        assert!(!is_https(&said("https"), Some(&peer(false))));
        // A trusted proxy's is, either way; one that says nothing usable leaves the connection's.
        assert!(!is_https(&said("http"), Some(&tls(true))));
        assert!(is_https(&said("https"), Some(&peer(true))));
        assert!(is_https(&said("gopher"), Some(&tls(true))));
        let s = site(RequestHeaders::All);
        let host = HeaderValue::from_static("site.example");
        let h = fill_headers(&s, &none, &host, Some(&tls(false)), &[]);
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn a_forwarded_for_list_is_extended_only_from_a_trusted_proxy_and_only_when_it_is_text() {
        let host = HeaderValue::from_static("site.example");
        let fwd = |v: HeaderValue, trusted: bool| {
            let mut c = HeaderMap::new();
            c.insert("x-forwarded-for", v);
            c.insert("x-forwarded-proto", HeaderValue::from_static("https"));
            let s = site(RequestHeaders::All);
            let h = fill_headers(&s, &c, &host, Some(&peer(trusted)), &[]);
            (h["x-forwarded-for"].clone(), h["x-forwarded-proto"].clone())
        };
        assert_eq!(
            fwd(HeaderValue::from_static("1.2.3.4"), true),
            (
                "1.2.3.4, 10.0.0.1".parse().unwrap(),
                "https".parse().unwrap()
            )
        );
        assert_eq!(
            fwd(HeaderValue::from_bytes(b"1.2.3.4\xff").unwrap(), true).0,
            "10.0.0.1"
        );
        // Anyone else's list and scheme change nothing.
        assert_eq!(
            fwd(HeaderValue::from_static("1.2.3.4"), false),
            ("10.0.0.1".parse().unwrap(), "http".parse().unwrap())
        );
    }

    #[test]
    fn a_trusted_proxys_forwarded_stands_for_x_forwarded_for_and_proto() {
        let host = HeaderValue::from_static("site.example");
        let s = site(RequestHeaders::All);
        let c = crate::test_util::headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=https, for=\"[2001:db8:cafe::17]:4711\"",
            ),
            ("forwarded", "For=unknown;by=203.0.113.43"),
        ]);
        let h = fill_headers(&s, &c, &host, Some(&peer(true)), &[]);
        assert_eq!(
            h["x-forwarded-for"],
            "192.0.2.60, 2001:db8:cafe::17, unknown, 10.0.0.1"
        );
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(
            !h.contains_key("forwarded"),
            "the edge speaks X-Forwarded-* alone"
        );
        // From anyone else it is ignored.
        let h = fill_headers(&s, &c, &host, Some(&peer(false)), &[]);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn forwarded_nodes_are_read_with_ports_brackets_and_quotes() {
        let list = |v: &str| forwarded_for(&crate::test_util::headers(&[("forwarded", v)]));
        assert_eq!(list("for=192.0.2.43:47011").as_deref(), Some("192.0.2.43"));
        assert_eq!(
            list("for=\"[::ffff:192.0.2.1]\"").as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(
            list("for=_hidden, for=198.51.100.17").as_deref(),
            Some("unknown, 198.51.100.17")
        );
        assert_eq!(list("proto=https;by=10.0.0.1"), None);
        assert_eq!(
            list("for=2001:db8::1").as_deref(),
            Some("unknown"),
            "IPv6 must be bracketed"
        );
    }

    #[test]
    fn pass_through_joins_cookies_and_drops_a_client_forwarded() {
        let h = pass_headers(
            &client(),
            &HeaderValue::from_static("site.example"),
            Some(&peer(false)),
        );
        assert_eq!(h["cookie"], "a=1; b=2");
        assert!(!h.contains_key("forwarded"));
        assert_eq!(h["x-api-key"], "k");
        assert_eq!(h["host"], "site.example");
    }
}
