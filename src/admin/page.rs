//! The status page, `GET /_edgecache/`: one HTML page, its script and its style, embedded in
//! the binary (no CDN, no build step). The script draws `/stats` every 5 s: a chart of the hit
//! ratio and requests/s over the history, memory against the budget, the top URLs, origin
//! health per pool server and the recent purges.
//!
//! A person opens it in a browser, which cannot send a bearer token; so on top of
//! `Authorization: Bearer`, the admin API takes the token as the basic-auth password (any user
//! name) and from the cookie `edgecache_admin`. `?token=` on the page answers 303 to the page
//! with that cookie set (HttpOnly, SameSite=Strict), so the token leaves the address bar and
//! the history; a page opened with basic auth gets the cookie too, because the browser sends
//! the password only under `/_edgecache/` and the script reads `/stats`. A refusal of a page
//! request asks for basic auth (`WWW-Authenticate: Basic`), so the browser prompts for it.
//! The cookie opens only `GET` and `HEAD`: a browser sends it by itself, to every port of the
//! host, and the page only reads.
//!
//! Every asset is served `no-store`, `nosniff`, with a policy that allows only this origin's
//! scripts and styles (no inline ones) and no framing (clickjacking).

use super::AdminState;
use axum::{
    Router,
    extract::{Query, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use std::collections::HashMap;

impl AdminState {
    /// Samples the history now, as the upkeep task does every 5 s (at the edge's clock's
    /// time): a test that draws the chart moves the clock and calls this instead of waiting.
    #[doc(hidden)]
    pub fn take_sample(&self) {
        let edge = self.edge();
        edge.metrics.upkeep(edge.store.clock().now());
    }
}

/// Where the page lives.
const PAGE: &str = "/_edgecache/";

/// The cookie that carries the token.
const COOKIE: &str = "edgecache_admin";

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const STYLE_CSS: &str = include_str!("page/style.css");
const ICON_SVG: &str = include_str!("page/icon.svg");

/// Only this origin's files, nothing inline (an injected `<script>` does not run), and no
/// page of another origin may frame this one.
const POLICY: &str = "default-src 'self'; frame-ancestors 'none'";

/// The page's routes, to merge into the API's.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/_edgecache", get(|| async { Redirect::permanent(PAGE) }))
        .route(
            PAGE,
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/_edgecache/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/_edgecache/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            "/_edgecache/icon.svg",
            get(|| async { asset("image/svg+xml", ICON_SVG) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// Whether `path` is the page or one of its assets: there, a refusal asks for basic auth,
/// and `?token=` is read.
pub(super) fn is_page(path: &str) -> bool {
    path == "/_edgecache" || path.starts_with(PAGE)
}

/// How a request proved it knows the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Proof {
    Bearer,
    Basic,
    Cookie,
    /// `?token=` on the page: answered with the cookie and a redirect, not served.
    Query,
}

/// What a request's credentials say, against the token.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// None given.
    Missing,
    /// Some given, none of them the token.
    Wrong,
    Right(Proof),
}

/// Checks every credential `req` carries against `token`, each in constant time. `?token=`
/// counts only on the page, and when given decides alone: a wrong one is refused even with
/// a right cookie, so a person who typed it learns it is wrong.
pub(super) fn verdict(req: &Request, token: &str) -> Verdict {
    let right = |t: &str| super::same(t.as_bytes(), token.as_bytes());
    let uri = req.uri();
    if is_page(uri.path())
        && let Some(t) = Query::<HashMap<String, String>>::try_from_uri(uri)
            .ok()
            .and_then(|Query(mut q)| q.remove("token"))
    {
        return if right(&t) {
            Verdict::Right(Proof::Query)
        } else {
            Verdict::Wrong
        };
    }
    let headers = req.headers();
    let given: [(Proof, Vec<String>); 3] = [
        (Proof::Bearer, authorization(headers, "bearer").collect()),
        (
            Proof::Basic,
            authorization(headers, "basic")
                .filter_map(|b| basic_password(&b))
                .collect(),
        ),
        (Proof::Cookie, cookies(headers).collect()),
    ];
    // The cookie goes along by itself, and SameSite does not tell ports apart: a page of a
    // site this edge serves on the same host could POST to the API with it. The page only
    // reads, so the cookie opens reads only. (Basic credentials are sent by themselves only
    // under the page's path, which a refusal elsewhere does not ask for.)
    let reads = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
    let given = given.map(|(proof, tokens)| match proof {
        Proof::Cookie if !reads => (proof, Vec::new()),
        _ => (proof, tokens),
    });
    let mut any = false;
    for (proof, tokens) in &given {
        for t in tokens {
            any = true;
            if right(t) {
                return Verdict::Right(*proof);
            }
        }
    }
    if any {
        Verdict::Wrong
    } else {
        Verdict::Missing
    }
}

/// The credentials of the `Authorization` headers of `scheme`.
fn authorization<'a>(headers: &'a HeaderMap, scheme: &'a str) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once(' '))
        .filter(move |(s, _)| s.eq_ignore_ascii_case(scheme))
        .map(|(_, t)| t.trim().to_string())
}

/// The password of basic credentials (`base64(user:password)`), if they decode.
fn basic_password(b64: &str) -> Option<String> {
    let decoded = String::from_utf8(base64_decode(b64)?).ok()?;
    decoded.split_once(':').map(|(_, p)| p.to_string())
}

/// The values of every `edgecache_admin` cookie.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .filter_map(|(_, v)| unescape(v.trim_matches('"')))
}

/// After the token checked: a `?token=` is answered with the cookie and a redirect to the
/// page; a page opened with basic auth gets the cookie with it (for the script's `/stats`).
pub(super) async fn admit(proof: Proof, token: &str, req: Request, next: Next) -> Response {
    if proof == Proof::Query {
        let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, PAGE)]).into_response();
        remember(&mut r, token);
        return r;
    }
    let set = proof == Proof::Basic && req.uri().path() == PAGE;
    let mut r = next.run(req).await;
    if set && r.status().is_success() {
        remember(&mut r, token);
    }
    r
}

fn remember(r: &mut Response, token: &str) {
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        escape(token)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A refusal of a page request asks the browser for basic auth.
pub(super) fn challenge(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"edgecache\", charset=\"UTF-8\""),
    );
    r
}

/// A token as a cookie value: bytes outside `A-Z a-z 0-9 - . _ ~` as `%XX` (a cookie cannot
/// hold `;`, `,`, spaces or quotes).
fn escape(token: &str) -> String {
    token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn unescape(v: &str) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Standard base64 with padding optional; `None` for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(base64_decode("YWRtaW46czNjcjN0").unwrap(), b"admin:s3cr3t");
        assert_eq!(base64_decode("YTpi").unwrap(), b"a:b");
        assert_eq!(base64_decode("YTo=").unwrap(), b"a:");
        assert_eq!(basic_password("OnQ=").as_deref(), Some("t"));
        assert_eq!(base64_decode("not-base64"), None);
    }

    #[test]
    fn a_token_survives_the_cookie() {
        for t in ["plain-token_1.2~3", "with space;and,comma\"quote%"] {
            let e = escape(t);
            assert!(
                e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
            );
            assert_eq!(unescape(&e).as_deref(), Some(t));
        }
    }
}
