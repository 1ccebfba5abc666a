//! Serving a directory: paths that must not resolve, validators, ranges and cache rules.

use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

/// A unique scratch directory holding `site/` (the root) and `secret.txt` beside it.
struct Tmp(PathBuf);

impl Tmp {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("edgecache-sd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("site/assets/x")).unwrap();
        std::fs::create_dir_all(dir.join("site/docs")).unwrap();
        std::fs::create_dir_all(dir.join("site/empty")).unwrap();
        let files = "site/index.html=<h1>home</h1> site/docs/index.html=docs site/data.json={} \
            site/assets/app.1234abcd.css=body{} site/assets/x/y.js=1 site/logo.svg=<svg/> \
            site/pic.png=PNG site/blob=? secret.txt=secret";
        for (path, body) in files.split_whitespace().filter_map(|f| f.split_once('=')) {
            std::fs::write(dir.join(path), body).unwrap();
        }
        std::fs::write(dir.join("site/big.bin"), vec![7u8; 200_000]).unwrap();
        Tmp(dir)
    }

    /// The site with `rules` given as `pattern=cache-control` pairs.
    fn dir(&self, rules: &[&str]) -> StaticDir {
        let rule = |r: &&str| {
            let (p, c) = r.split_once('=').unwrap();
            CacheRule {
                pattern: p.into(),
                cache_control: c.into(),
            }
        };
        StaticDir::new(
            self.0.join("site"),
            &rules.iter().map(rule).collect::<Vec<_>>(),
        )
        .unwrap()
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_send<T: Send>(_: &T) {}

type Pairs<'a> = &'a [(&'static str, &'a str)];

fn hdr<'a>(r: &'a OriginResponse, name: &str) -> &'a str {
    r.headers.get(name).map_or("", |v| v.to_str().unwrap())
}

/// Sends `[METHOD ]path` with `hs`, then checks the status and each `want` pair: a header
/// (`""` for absent) or, named `body`, the body. Bodies always match their Content-Length.
async fn expect(
    d: &StaticDir,
    line: &str,
    hs: Pairs<'_>,
    status: u16,
    want: Pairs<'_>,
) -> OriginResponse {
    let (verb, path) = line.split_once(' ').unwrap_or(("GET", line));
    let mut headers = HeaderMap::new();
    for (k, v) in hs {
        headers.append(*k, v.parse().unwrap());
    }
    let method = verb.parse().unwrap();
    let req = OriginRequest {
        method,
        path_and_query: path.into(),
        headers,
        body: None,
        event_loop: 0,
    };
    let fut = d.fetch(req);
    is_send(&fut); // the proxy spawns fetches onto the runtime
    let mut resp = fut.await.unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = resp.body.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= CHUNK);
        body.extend_from_slice(&chunk);
    }
    assert_eq!(resp.status.as_u16(), status, "{line}");
    let cl = hdr(&resp, "content-length");
    if verb == "HEAD" {
        assert!(body.is_empty(), "{line}");
    } else if !cl.is_empty() {
        assert_eq!(cl, body.len().to_string(), "{line}");
    }
    for (k, v) in want {
        let body = std::str::from_utf8(&body).unwrap();
        assert_eq!(
            if *k == "body" { body } else { hdr(&resp, k) },
            *v,
            "{line}: {k}"
        );
    }
    resp
}

#[test]
fn glob_matching() {
    let m = |p: &str, s: &str| Glob::new(p).matches(s);
    assert!(m("/assets/**", "/assets/app.js") && m("/assets/**", "/assets/x/y.js"));
    assert!(!m("/assets/**", "/other/app.js") && !m("/assets/**", "/assets"));
    assert!(m("**.html", "/a/b.html") && m("**.html", "/index.html"));
    assert!(!m("**.html", "/a.htm") && !m("**.html", "/a.html/"));
    assert!(m("/", "/") && !m("/", "/a") && m("**/", "/docs/") && m("**/", "/"));
    assert!(!m("**/", "/docs") && m("**", "/anything/at/all") && m("**", ""));
    assert!(m("/*.css", "/a.css") && !m("/*.css", "/a/b.css"));
    assert!(m("/a?c", "/abc") && m("/a?c", "/aéc") && !m("/a?c", "/a/c") && !m("/a?c", "/ac"));
    assert!(m("/a/*/c", "/a/b/c") && m("/a/*/c", "/a//c") && !m("/a/*/c", "/a/b/x/c"));
    assert!(m("/x***y", "/x/q/y"));
    // A long client path against many `**`: polynomial, so this returns at once.
    let long = format!("/{}", "a/".repeat(20_000));
    assert!(!Glob::new("**a**a**a**a**a**a**a**a**b").matches(&long));
}

#[tokio::test]
async fn single_ranges_are_read_from_the_file() {
    let t = Tmp::new();
    let d = t.dir(&[]);
    let r = |v: &'static str| [("range", v)];
    expect(
        &d,
        "/index.html",
        &r("bytes=1-2"),
        206,
        &[("body", "h1"), ("content-range", "bytes 1-2/13")],
    )
    .await;
    expect(&d, "/index.html", &r("bytes=-5"), 206, &[("body", "</h1>")]).await;
    expect(
        &d,
        "/big.bin",
        &r("bytes=199990-"),
        206,
        &[
            ("content-length", "10"),
            ("content-range", "bytes 199990-199999/200000"),
        ],
    )
    .await;
    expect(
        &d,
        "/index.html",
        &r("bytes=13-"),
        416,
        &[("content-range", "bytes */13"), ("body", "")],
    )
    .await;
    // Several ranges, or an If-Range for another version: the whole file.
    expect(
        &d,
        "/index.html",
        &r("bytes=0-1,3-4"),
        200,
        &[("body", "<h1>home</h1>")],
    )
    .await;
    let stale = [("range", "bytes=1-2"), ("if-range", "\"old\"")];
    expect(&d, "/index.html", &stale, 200, &[("body", "<h1>home</h1>")]).await;
    // Ranges are for GET: HEAD describes the whole file.
    expect(
        &d,
        "HEAD /index.html",
        &r("bytes=1-2"),
        200,
        &[("content-length", "13")],
    )
    .await;
}

#[tokio::test]
async fn refuses_traversal() {
    let t = Tmp::new();
    let d = t.dir(&[]);
    let paths = "/../secret.txt /../etc/passwd /%2e%2e/%2e%2e/etc/passwd /a/%2e%2e/%2e%2e/x \
        /..%2fetc /..%2Fsecret.txt /docs/.. /%00 /a%5c..%5csecret.txt /%ff x";
    for p in paths.split_whitespace() {
        expect(&d, p, &[], 400, &[("body", "bad path\n")]).await;
    }
    // Dot and empty segments are skipped, not refused; the query is not part of the path.
    expect(&d, "/./docs//index.html", &[], 200, &[("body", "docs")]).await;
    expect(&d, "/docs/%2e/index.html?a=/../b", &[], 200, &[]).await;
}

#[cfg(unix)]
#[tokio::test]
async fn symlink_escaping_root_is_not_found() {
    let t = Tmp::new();
    let site = t.0.join("site");
    std::os::unix::fs::symlink(t.0.join("secret.txt"), site.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(&t.0, site.join("up")).unwrap();
    std::os::unix::fs::symlink(site.join("data.json"), site.join("alias.json")).unwrap();
    let d = t.dir(&[]);
    for p in ["/leak.txt", "/up/secret.txt", "/up/"] {
        expect(&d, p, &[], 404, &[]).await;
    }
    expect(&d, "/alias.json", &[], 200, &[("body", "{}")]).await; // stays inside: fine
}

#[tokio::test]
async fn files_with_types_and_validators() {
    let t = Tmp::new();
    let d = t.dir(&[]);
    for (p, ct) in [
        ("/assets/app.1234abcd.css", "text/css; charset=utf-8"),
        ("/assets/x/y.js", "text/javascript; charset=utf-8"),
        ("/data.json", "application/json; charset=utf-8"),
        ("/logo.svg", "image/svg+xml; charset=utf-8"),
        ("/pic.png", "image/png"),
        ("/blob", "application/octet-stream"),
    ] {
        expect(&d, p, &[], 200, &[("content-type", ct)]).await;
    }
    let mtime = std::fs::metadata(t.0.join("site/data.json"))
        .unwrap()
        .modified();
    let since = mtime.as_ref().unwrap().duration_since(UNIX_EPOCH).unwrap();
    let etag = format!("\"2-{:x}-{:x}\"", since.as_secs(), since.subsec_nanos());
    let lm = httpdate::fmt_http_date(mtime.unwrap());
    let want = [
        ("etag", etag.as_str()),
        ("last-modified", &lm),
        ("content-length", "2"),
        ("accept-ranges", "bytes"),
        ("cache-control", ""),
        ("body", "{}"),
    ];
    expect(&d, "/data.json?v=1", &[], 200, &want).await;
    // Over 64 KiB: streamed in chunks (`expect` checks their sizes and the total).
    expect(&d, "/big.bin", &[], 200, &[("content-length", "200000")]).await;
    // Pre-epoch and far-future mtimes must not panic the date formatting.
    let f = std::fs::File::options()
        .write(true)
        .open(t.0.join("site/blob"));
    let f = f.unwrap();
    let (past, far) = (Duration::from_secs(9), Duration::from_secs(3 << 40));
    for when in [UNIX_EPOCH - past, UNIX_EPOCH + far] {
        if f.set_modified(when).is_ok() {
            let r = expect(&d, "/blob", &[], 200, &[]).await;
            assert!(httpdate::parse_http_date(hdr(&r, "last-modified")).is_ok());
        }
    }
}

#[tokio::test]
async fn conditional_requests() {
    let t = Tmp::new();
    let d = t.dir(&["**=public, max-age=5"]);
    let r = expect(&d, "/data.json", &[], 200, &[]).await;
    let (etag, lm) = (hdr(&r, "etag"), hdr(&r, "last-modified"));
    let same = [
        ("etag", etag),
        ("last-modified", lm),
        ("cache-control", "public, max-age=5"),
        ("content-type", ""),
        ("body", ""),
    ];
    for inm in [etag, "*", &format!("\"nope\", W/{etag}")] {
        expect(&d, "/data.json", &[("if-none-match", inm)], 304, &same).await;
        expect(&d, "HEAD /data.json", &[("if-none-match", inm)], 304, &same).await;
    }
    let other = ("if-none-match", "\"other\"");
    expect(&d, "/data.json", &[other], 200, &[]).await;
    // If-Modified-Since: the same second or later is 304; ignored beside If-None-Match.
    expect(&d, "/data.json", &[("if-modified-since", lm)], 304, &same).await;
    let old = "Thu, 01 Jan 1998 00:00:00 GMT";
    expect(&d, "/data.json", &[("if-modified-since", old)], 200, &[]).await;
    expect(&d, "/data.json", &[("if-modified-since", "junk")], 200, &[]).await;
    expect(
        &d,
        "/data.json",
        &[other, ("if-modified-since", lm)],
        200,
        &[],
    )
    .await;
}

#[tokio::test]
async fn directories_not_found_methods_and_head() {
    let t = Tmp::new();
    let d = t.dir(&["**=public, max-age=3600"]);
    expect(&d, "/docs?x=1", &[], 301, &[("location", "/docs/?x=1")]).await;
    expect(&d, "//docs", &[], 301, &[("location", "/docs/")]).await; // never `//docs/`
    let html = ("content-type", "text/html; charset=utf-8");
    expect(&d, "/docs/", &[], 200, &[("body", "docs"), html]).await;
    expect(&d, "/", &[], 200, &[("body", "<h1>home</h1>"), html]).await;
    let nf = [
        ("body", "not found\n"),
        ("cache-control", "public, max-age=10"),
        ("content-type", "text/plain; charset=utf-8"),
    ];
    for p in ["/missing/file.txt", "/empty/", "/data.json/", "/blob/x"] {
        expect(&d, p, &[], 404, &nf).await;
    }
    expect(&d, "HEAD /nope", &[], 404, &[("content-length", "10")]).await;
    let allow = [("allow", "GET, HEAD"), ("body", "method not allowed\n")];
    expect(&d, "POST /data.json", &[], 405, &allow).await;
    expect(&d, "DELETE /", &[], 405, &allow).await;
    let big = [
        ("content-length", "200000"),
        ("cache-control", "public, max-age=3600"),
    ];
    let r = expect(&d, "HEAD /big.bin", &[], 200, &big).await;
    assert!(r.headers.contains_key("etag") && r.headers.contains_key("last-modified"));
}

#[tokio::test]
async fn cache_rules_first_match_wins() {
    let t = Tmp::new();
    let d = t.dir(&["/assets/**=a", "**.html=h", "/=r", "**/=d", "/*.json=j"]);
    let cases = "/assets/app.1234abcd.css=a /assets/x/y.js=a /docs/index.html=h /=r /docs/=d \
        /data.json?q=1=j /logo.svg=";
    for (p, cc) in cases.split_whitespace().filter_map(|c| c.rsplit_once('=')) {
        expect(&d, p, &[], 200, &[("cache-control", cc)]).await;
    }
}

#[test]
fn new_checks_root_and_rules() {
    let t = Tmp::new();
    assert!(StaticDir::new(t.0.join("site/data.json"), &[]).is_err());
    assert!(StaticDir::new(t.0.join("nowhere"), &[]).is_err());
    let bad = CacheRule {
        pattern: "**".into(),
        cache_control: "a\nb".into(),
    };
    assert!(StaticDir::new(t.0.join("site"), &[bad]).is_err());
    let d = StaticDir::new(t.0.join("site/./docs/.."), &[]).unwrap();
    assert_eq!(d.root(), std::fs::canonicalize(t.0.join("site")).unwrap());
}
