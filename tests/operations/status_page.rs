//! The status page, `GET /_edgecache/`: its headers, the ways a browser gives the token
//! (`?token=` traded for a cookie, the basic-auth password), and the page itself drawn by
//! headless Chromium after some traffic.

use crate::{TOKEN, answer, call, setup};
use axum::body::Body;
use edgecache::admin::{AdminState, app};
use http::{Request, StatusCode, header};
use std::{net::SocketAddr, time::Duration};
use tower::ServiceExt;

/// `anyone:test-token-0123456789` and `anyone:wrong` in base64: basic credentials.
const BASIC_RIGHT: &str = "Basic YW55b25lOnRlc3QtdG9rZW4tMDEyMzQ1Njc4OQ==";
const BASIC_WRONG: &str = "Basic YW55b25lOndyb25n";

/// `GET path` with the headers given; the response with its body read.
async fn get(
    api: &axum::Router,
    path: &str,
    headers: &[(header::HeaderName, &str)],
) -> (http::response::Parts, String) {
    let mut req = Request::get(path);
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    let res = api
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (parts, String::from_utf8(body.to_vec()).unwrap())
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_headers() {
    let (_origin, _edge, api) = setup().await;
    for (path, content_type, says) in [
        (
            "/_edgecache/",
            "text/html; charset=utf-8",
            "<script src=\"app.js\"",
        ),
        (
            "/_edgecache/app.js",
            "text/javascript; charset=utf-8",
            "fetch(\"../stats\"",
        ),
        ("/_edgecache/style.css", "text/css; charset=utf-8", "#chart"),
        ("/_edgecache/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let (res, body) = get(&api, path, &[(header::AUTHORIZATION, &bearer())]).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        let h = |n: header::HeaderName| res.headers[n].to_str().unwrap().to_string();
        assert_eq!(h(header::CONTENT_TYPE), content_type, "{path}");
        assert_eq!(h(header::CACHE_CONTROL), "no-store", "{path}");
        assert_eq!(
            h(header::CONTENT_SECURITY_POLICY),
            "default-src 'self'; frame-ancestors 'none'",
            "{path}"
        );
        assert_eq!(h(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
        assert!(body.contains(says), "{path}: {body}");
    }
    // Nothing inline: the policy would block it.
    let (_, html) = get(&api, "/_edgecache/", &[(header::AUTHORIZATION, &bearer())]).await;
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "{html}"
    );

    let (res, _) = get(&api, "/_edgecache", &[(header::AUTHORIZATION, &bearer())]).await;
    assert_eq!(res.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers[header::LOCATION], "/_edgecache/");
}

#[tokio::test]
async fn a_token_in_the_address_is_traded_for_a_cookie() {
    let (_origin, _edge, api) = setup().await;
    for path in [
        format!("/_edgecache/?token={TOKEN}"),
        format!("/_edgecache?token={TOKEN}"),
    ] {
        let (res, _) = get(&api, &path, &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(res.headers[header::LOCATION], "/_edgecache/", "{path}");
        let cookie = res.headers[header::SET_COOKIE].to_str().unwrap();
        let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
        assert_eq!(attrs[0], format!("edgecache_admin={TOKEN}"), "{cookie}");
        for a in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(attrs.contains(&a), "{a} in {cookie}");
        }
    }

    // The cookie opens the page and the stats it reads.
    let cookie = format!("theme=dark; edgecache_admin={TOKEN}");
    let (res, _) = get(&api, "/_edgecache/", &[(header::COOKIE, &cookie)]).await;
    assert_eq!(res.status, StatusCode::OK);
    let r = Request::get("/stats")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let (status, stats) = answer(&api, r).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert!(stats["history"]["samples"].is_array(), "{stats}");

    // It opens reads only: another port of the same host is the same site, and its pages
    // would send it along.
    let r = Request::post("/purge")
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"tag": "x"}"#))
        .unwrap();
    let (status, json) = answer(&api, r).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");

    // A wrong one is refused like any wrong token, and sets nothing.
    let (res, body) = get(&api, "/_edgecache/?token=nope", &[]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.headers.get(header::SET_COOKIE).is_none());
    assert!(body.contains("\"error\":\"wrong token\""), "{body}");
    assert_eq!(
        res.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .split(',')
            .next(),
        Some("Basic realm=\"edgecache\"")
    );
    // Even with a right cookie: the address decides.
    let (res, _) = get(
        &api,
        "/_edgecache/?token=nope",
        &[(header::COOKIE, &cookie)],
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    // A wrong cookie on the API is a wrong token.
    let r = Request::get("/stats")
        .header(header::COOKIE, "edgecache_admin=nope")
        .body(Body::empty())
        .unwrap();
    let (status, json) = answer(&api, r).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    // The address's token is for the page only (a URL with a token ends up in logs).
    let (status, _) = answer(
        &api,
        Request::get(format!("/stats?token={TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_basic_auth_password_is_the_token() {
    let (_origin, _edge, api) = setup().await;
    let r = Request::get("/stats")
        .header(header::AUTHORIZATION, BASIC_RIGHT)
        .body(Body::empty())
        .unwrap();
    let (status, json) = answer(&api, r).await;
    assert_eq!(status, StatusCode::OK, "{json}");

    // The page opened so gets the cookie too: the browser sends the password only under
    // /_edgecache/, and the page reads /stats.
    let (res, body) = get(
        &api,
        "/_edgecache/",
        &[(header::AUTHORIZATION, BASIC_RIGHT)],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(body.contains("<title>edgecache status</title>"));
    let cookie = res.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("edgecache_admin={TOKEN};")),
        "{cookie}"
    );

    let (res, _) = get(
        &api,
        "/_edgecache/",
        &[(header::AUTHORIZATION, BASIC_WRONG)],
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(
        res.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=\"edgecache\"")
    );
    let r = Request::get("/stats")
        .header(header::AUTHORIZATION, BASIC_WRONG)
        .body(Body::empty())
        .unwrap();
    let (status, _) = answer(&api, r).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_page_request_without_a_token_asks_for_basic_auth() {
    let (_origin, _edge, api) = setup().await;
    for path in ["/_edgecache/", "/_edgecache", "/_edgecache/app.js"] {
        let (res, body) = get(&api, path, &[]).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            res.headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic realm=\"edgecache\"")
        );
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "a token is required", "{path}");
    }
    // The API itself still asks for a bearer token.
    let (res, _) = get(&api, "/stats", &[]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(
        res.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

#[tokio::test]
async fn without_a_token_the_page_opens_for_localhost_only() {
    let (_origin, edge, _) = setup().await;
    let open = app(AdminState::new(edge.state.clone(), None));
    let (res, _) = get(&open, "/_edgecache/", &[(header::HOST, "localhost:9090")]).await;
    assert_eq!(res.status, StatusCode::OK);
    let (res, _) = get(&open, "/_edgecache/", &[(header::HOST, "evil.example")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
}

/// The Chromium to run: `EDGECACHE_TEST_CHROMIUM`, else Debian's. `None` (the test skips)
/// when there is none, unless `EDGECACHE_REQUIRE_CHROMIUM=1` (CI), which fails instead.
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("EDGECACHE_TEST_CHROMIUM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("EDGECACHE_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
        "EDGECACHE_REQUIRE_CHROMIUM=1 but there is no chromium at {}",
        path.display()
    );
    println!("skipped: status page browser test (no chromium)");
    None
}

/// The history's samples as `(at, requests)`, the same second counted once (the later), as
/// the page reads them.
fn samples(stats: &serde_json::Value) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in stats["history"]["samples"].as_array().unwrap() {
        let s = (s[0].as_u64().unwrap(), s[1].as_u64().unwrap());
        if out.last().is_some_and(|l| l.0 >= s.0) {
            out.pop();
        }
        out.push(s);
    }
    out
}

/// The text of the element with `id` in `dom` (a leaf: no markup inside).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let open = format!("id=\"{id}\"");
    let at = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    &rest[start..start + end]
}

/// Serves the admin API of `state` on 127.0.0.1, as `main` does.
async fn serve(state: AdminState) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = app(state);
    let server = tokio::spawn(async move {
        let service = served.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, service).await.unwrap();
    });
    (addr, server)
}

/// The DOM of the page at `addr` opened with `?token=` in headless Chromium, once its
/// scripts have run; fails on any console message.
async fn browse(chromium: &std::path::Path, addr: SocketAddr) -> String {
    let profile = std::env::temp_dir().join(format!("edgecache-chromium-{}", addr.port()));
    let url = format!("http://{addr}/_edgecache/?token={TOKEN}");
    let child = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=8000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium starts");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("chromium finished within 60 s")
        .unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium: {}\n{log}", out.status);

    // Chromium logs every console message, and every uncaught exception and policy
    // violation, as a CONSOLE line; the page itself writes none unless it failed.
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    // The cookie flow worked end to end: the 303 was followed and /stats read with the
    // cookie (else the page says why).
    assert!(dom.contains("data-state=\"ok\""), "{dom}");
    dom
}

/// The chart's `data-points`.
fn points(dom: &str) -> usize {
    let at = dom.find("data-points=\"").expect("a chart") + "data-points=\"".len();
    dom[at..].split('"').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_traffic_in_a_browser_without_console_errors() {
    let Some(chromium) = chromium() else { return };
    let (_origin, edge, api) = setup().await;
    let state = AdminState::new(edge.state.clone(), Some(TOKEN));
    let (addr, server) = serve(state.clone()).await;

    let stats = || async { call(&api, "GET", "/stats", None).await.1 };
    // The upkeep task samples once at start: wait for it, so that it is not taken in the
    // middle of the traffic below.
    for i in 0.. {
        if !samples(&stats().await).is_empty() {
            break;
        }
        assert!(i < 200, "no sample at start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Two intervals of traffic, each closed by a sample 5 s later (on the edge's clock):
    // a miss and a hit, then three hits and a miss. Six lookups, four hits.
    let send = |paths: &'static [&'static str]| {
        let edge = &edge;
        async move {
            for p in paths {
                let r = edge.get(p).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        }
    };
    let mut sent = 0;
    for paths in [
        &["/a?cc=max-age=600", "/a?cc=max-age=600"][..],
        &[
            "/a?cc=max-age=600",
            "/a?cc=max-age=600",
            "/b?cc=max-age=600",
            "/b?cc=max-age=600",
        ][..],
    ] {
        send(paths).await;
        sent += paths.len() as u64;
        // A response is counted as it ends, just after the client has read it.
        for i in 0.. {
            if stats().await["sites"][0]["requests"] == sent {
                break;
            }
            assert!(i < 200, "requests not counted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        edge.advance(Duration::from_secs(5));
        state.take_sample();
    }
    let history = samples(&stats().await);
    assert!(history.len() >= 3, "{history:?}");

    let dom = browse(&chromium, addr).await;
    let points = points(&dom);
    assert!(points >= 2, "{points} points in {dom}");
    assert!(dom.contains("<path class=\"rps\" d=\"M"), "{dom}");
    assert!(dom.contains("<path class=\"hit\" d=\"M"), "{dom}");
    assert_eq!(text_of(&dom, "requests"), "6");
    assert_eq!(text_of(&dom, "hit-ratio"), "66.7 %");
    // The last interval's rate: four requests over the seconds between its samples.
    let [.., (at0, r0), (at1, r1)] = samples(&stats().await)[..] else {
        unreachable!()
    };
    let rps = (r1 - r0) as f64 / (at1 - at0) as f64;
    assert_eq!(text_of(&dom, "rps"), format!("{rps:.1}"));
    // One request in 8 is sampled for the top URLs: /a may be there, or none yet.
    assert!(
        dom.contains(&format!("{}/a?cc=max-age=600<", edge.addr))
            || dom.contains("none sampled yet"),
        "{dom}"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_without_history_says_so() {
    let Some(chromium) = chromium() else { return };
    let (_origin, edge, _api) = setup().await;
    let (addr, server) = serve(AdminState::new(edge.state.clone(), Some(TOKEN))).await;
    let dom = browse(&chromium, addr).await;
    // The sample at start alone: no interval to draw. (Were the run slow enough for the
    // upkeep's next one, 5 s later, there would be one of no requests.)
    match points(&dom) {
        0 => {
            assert!(dom.contains("no history yet"), "{dom}");
            assert_eq!(text_of(&dom, "rps"), "–");
        }
        1 => assert_eq!(text_of(&dom, "rps"), "0.0"),
        n => panic!("{n} points without traffic: {dom}"),
    }
    assert_eq!(text_of(&dom, "hit-ratio"), "–");
    server.abort();
}
