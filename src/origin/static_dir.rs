//! Serves a local directory as an origin, so the edge can front plain files with its cache.
//!
//! Request paths are percent-decoded and checked (no `..` segment, `\`, NUL or invalid UTF-8),
//! joined onto the canonical root and resolved again: whatever resolves outside the root, through
//! a symlink for instance, is treated as missing. Files carry strong validators (`ETag`,
//! `Last-Modified`) and answer conditional GETs with 304; `Cache-Control` comes from the site's
//! cache rules, globs over the decoded URL path of which the first match wins.

use super::{
    BodyStream, OriginError, OriginRequest, OriginResponse,
    range::{RangeSpec, if_range_holds, not_modified, parse_range},
};
use crate::config::CacheRule;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use percent_encoding::percent_decode_str;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use tokio::{
    fs::File,
    io::{AsyncReadExt, AsyncSeekExt},
};
use tokio_util::io::ReaderStream;

/// Read size for streamed bodies; a smaller file comes as one chunk of its own size.
const CHUNK: usize = 64 << 10;
/// Non-`text/*` types that get `; charset=utf-8`.
const UTF8_TYPES: [&str; 3] = [
    "application/javascript",
    "application/json",
    "image/svg+xml",
];
/// Last second `httpdate` can format (it panics from year 10000 on).
const MAX_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// A directory served as an HTTP origin: GET and HEAD only, with validators and cache rules.
pub struct StaticDir {
    root: PathBuf,
    rules: Vec<(Glob, HeaderValue)>,
}

impl StaticDir {
    /// Canonicalises `root` (an error if it is not a directory) and compiles `rules`, which
    /// fails only on a `cache_control` that is not a valid header value.
    pub fn new(root: PathBuf, rules: &[CacheRule]) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(&root)?;
        if !std::fs::metadata(&root)?.is_dir() {
            let msg = format!("{} is not a directory", root.display());
            return Err(std::io::Error::new(ErrorKind::NotADirectory, msg));
        }
        let compile = |r: &CacheRule| match HeaderValue::from_str(&r.cache_control) {
            Ok(v) => Ok((Glob::new(&r.pattern), v)),
            Err(_) => Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("cache rule `{}`: invalid cache_control", r.pattern),
            )),
        };
        let rules = rules.iter().map(compile).collect::<std::io::Result<_>>()?;
        Ok(Self { root, rules })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Answers one request from the directory. Client mistakes and missing files are responses
    /// (400, 404, 405, ...); only unexpected I/O failures are errors.
    pub async fn fetch(&self, req: OriginRequest) -> Result<OriginResponse, OriginError> {
        let head = req.method == Method::HEAD;
        let mut resp = if head || req.method == Method::GET {
            self.get(&req.path_and_query, &req.headers, !head).await?
        } else {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            let allow = HeaderValue::from_static("GET, HEAD");
            resp.headers.insert(header::ALLOW, allow);
            resp
        };
        if head {
            resp.body = stream::empty().boxed(); // an unpolled file stream has read nothing
        }
        Ok(resp)
    }

    /// Serves a GET; for HEAD, `fetch` drops the body afterwards. (Takes no `&OriginRequest`:
    /// its body stream is not `Sync`, which would make this future not `Send`.)
    /// Ranges apply to GET only (RFC 9110 section 14.2): `ranges` is false for HEAD.
    async fn get(
        &self,
        target: &str,
        headers: &HeaderMap,
        ranges: bool,
    ) -> Result<OriginResponse, OriginError> {
        let (file, resolved, path) = match self.locate(target).await? {
            Located::File {
                file,
                resolved,
                path,
            } => (file, resolved, path),
            Located::Answer(resp) => return Ok(resp),
        };
        let f = match File::open(&resolved).await {
            Ok(f) => f,
            Err(e) => return absent(e, &path).map(|()| not_found()),
        };
        let meta = f.metadata().await.map_err(|e| io_error(e, &path))?;
        let len = meta.len();
        let mut h = self.validators(&meta, &path);
        if not_modified(&h, headers) {
            return Ok(reply(StatusCode::NOT_MODIFIED, h, stream::empty().boxed()));
        }
        h.insert(header::CONTENT_TYPE, hv(&content_type(&file)));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        // The edge asks for ranges only of files it does not store (see `cached::serve`).
        let range = headers
            .get(header::RANGE)
            .filter(|_| ranges && if_range_holds(&h, headers))
            .map(|v| parse_range(v, len));
        ranged(f, h, range, len, path).await
    }

    /// Maps a request target onto a regular file under the root, or onto the answer that
    /// stands in for one: 400 for a bad path, 404, or 301 to a directory's slash form.
    async fn locate(&self, target: &str) -> Result<Located, OriginError> {
        let (raw, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let Some(path) = decode_path(raw) else {
            return Ok(Located::Answer(text(StatusCode::BAD_REQUEST, "bad path\n")));
        };
        // Dotfiles (.git, .env, ...) are never served; .well-known is public by design.
        if path
            .split('/')
            .any(|s| s.starts_with('.') && s != "." && s != ".well-known")
        {
            return Ok(Located::Answer(not_found()));
        }
        let mut file = self.root.clone();
        file.extend(path.split('/').filter(|s| !s.is_empty() && *s != "."));
        let Some((mut resolved, mut meta)) = self.resolve(&file, &path).await? else {
            return Ok(Located::Answer(not_found()));
        };
        if meta.is_dir() && !raw.ends_with('/') {
            // Leading slashes collapsed: `//host/` would be an off-site redirect.
            let q = query.map_or(String::new(), |q| format!("?{q}"));
            let loc = format!("/{}/{q}", raw.trim_start_matches('/'));
            let Ok(loc) = HeaderValue::from_str(&loc) else {
                return Ok(Located::Answer(not_found()));
            };
            let mut resp = text(StatusCode::MOVED_PERMANENTLY, "");
            resp.headers.insert(header::LOCATION, loc);
            return Ok(Located::Answer(resp));
        } else if meta.is_dir() {
            file.push("index.html");
            let Some(found) = self.resolve(&file, &path).await? else {
                return Ok(Located::Answer(not_found()));
            };
            (resolved, meta) = found;
        } else if raw.ends_with('/') {
            return Ok(Located::Answer(not_found())); // `/file.txt/` names no directory
        }
        if !meta.is_file() {
            return Ok(Located::Answer(not_found())); // FIFOs and devices are never opened
        }
        Ok(Located::File {
            file,
            resolved,
            path,
        })
    }

    /// A file's strong validators, and the `Cache-Control` of the first cache rule matching
    /// its URL path.
    fn validators(&self, meta: &std::fs::Metadata, path: &str) -> HeaderMap {
        let len = meta.len();
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        let since = mtime.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let (secs, nanos) = (since.as_secs(), since.subsec_nanos());
        let etag = format!("\"{len:x}-{secs:x}-{nanos:x}\"");
        let secs = secs.min(MAX_HTTP_DATE_SECS);
        let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));

        let mut h = HeaderMap::new();
        h.insert(header::ETAG, hv(&etag));
        h.insert(header::LAST_MODIFIED, hv(&last_modified));
        if let Some((_, cc)) = self.rules.iter().find(|(g, _)| g.matches(path)) {
            h.insert(header::CACHE_CONTROL, cc.clone());
        }
        h
    }

    /// Canonicalises `p` and stats it; `None` when missing or outside the root.
    async fn resolve(
        &self,
        p: &Path,
        url: &str,
    ) -> Result<Option<(PathBuf, std::fs::Metadata)>, OriginError> {
        let resolved = match tokio::fs::canonicalize(p).await {
            Ok(r) if r.starts_with(&self.root) => r,
            Ok(_) => return Ok(None),
            Err(e) => return absent(e, url).map(|()| None),
        };
        match tokio::fs::metadata(&resolved).await {
            Ok(m) => Ok(Some((resolved, m))),
            Err(e) => absent(e, url).map(|()| None),
        }
    }
}

/// Where a request target led: a file to open, or the answer that stands in for one.
enum Located {
    File {
        /// The path under the root, as the URL named it: its extension gives the type.
        file: PathBuf,
        /// The canonical path, checked to be under the root.
        resolved: PathBuf,
        /// The decoded URL path, for cache rules and error messages.
        path: String,
    },
    Answer(OriginResponse),
}

/// The file's body, whole or the one range asked for (206), or 416 for a range past its end.
async fn ranged(
    mut f: File,
    mut h: HeaderMap,
    range: Option<RangeSpec>,
    len: u64,
    path: String,
) -> Result<OriginResponse, OriginError> {
    if let Some(cr) = range.as_ref().and_then(|r| r.content_range(len)) {
        h.insert(header::CONTENT_RANGE, cr);
    }
    match range {
        Some(RangeSpec::Satisfiable(start, end)) => {
            f.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| io_error(e, &path))?;
            let n = end - start + 1;
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            Ok(reply(
                StatusCode::PARTIAL_CONTENT,
                h,
                file_stream(f, n, path),
            ))
        }
        Some(RangeSpec::Unsatisfiable) => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            let empty = stream::empty().boxed();
            Ok(reply(StatusCode::RANGE_NOT_SATISFIABLE, h, empty))
        }
        _ => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            Ok(reply(StatusCode::OK, h, file_stream(f, len, path)))
        }
    }
}

/// Percent-decodes a raw path; `None` for anything that must not reach the filesystem.
fn decode_path(raw: &str) -> Option<String> {
    let path = percent_decode_str(raw).decode_utf8().ok()?;
    let bad = !path.starts_with('/') || path.contains(['\\', '\0']);
    (!bad && !path.split('/').any(|s| s == "..")).then(|| path.into_owned())
}

/// The MIME type by extension; textual types are declared UTF-8.
fn content_type(file: &Path) -> String {
    let mime = mime_guess::from_path(file).first_or_octet_stream();
    let essence = mime.essence_str();
    let texty = mime.type_() == mime_guess::mime::TEXT || UTF8_TYPES.contains(&essence);
    if texty && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{essence}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// Streams `len` bytes in chunks of up to 64 KiB (a small file is one chunk of its own size);
/// a file that ends early (truncated meanwhile) ends the body with an error.
fn file_stream(f: File, len: u64, path: String) -> BodyStream {
    let cap = usize::try_from(len).unwrap_or(CHUNK).clamp(1, CHUNK);
    let reader = ReaderStream::with_capacity(f.take(len), cap);
    stream::unfold(Some((reader, len, path)), |state| async move {
        let (mut reader, left, path) = state?;
        let err = |m: String| Some((Err(OriginError::Protocol(m)), None));
        match reader.next().await {
            Some(Ok(b)) => {
                let left = left.saturating_sub(b.len() as u64);
                Some((Ok(b), Some((reader, left, path))))
            }
            Some(Err(e)) => err(format!("{path}: {e}")),
            None if left > 0 => err(format!("{path}: file shrank while being read")),
            None => None,
        }
    })
    .boxed()
}

/// `Ok` (so 404) for a missing or unreadable path; other I/O trouble is an error (502).
fn absent(e: std::io::Error, url: &str) -> Result<(), OriginError> {
    use ErrorKind::*;
    match e.kind() {
        NotFound | NotADirectory | PermissionDenied | InvalidFilename | InvalidInput => Ok(()),
        _ => Err(io_error(e, url)),
    }
}

fn io_error(e: std::io::Error, url: &str) -> OriginError {
    OriginError::Protocol(format!("{url}: {e}"))
}

/// For values built here from hex digits and dates, which are always valid.
fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

/// An [`OriginResponse`] from its parts.
fn reply(status: StatusCode, headers: HeaderMap, body: BodyStream) -> OriginResponse {
    OriginResponse {
        status,
        headers,
        body,
    }
}

/// A short plain-text answer (an empty `body` sends none).
fn text(status: StatusCode, body: &'static str) -> OriginResponse {
    let mut h = HeaderMap::new();
    let ct = HeaderValue::from_static("text/plain; charset=utf-8");
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let body = stream::iter((!body.is_empty()).then(|| Ok(Bytes::from_static(body.as_bytes()))));
    reply(status, h, body.boxed())
}

/// Short-lived, so a file that appears is soon served.
fn not_found() -> OriginResponse {
    let mut resp = text(StatusCode::NOT_FOUND, "not found\n");
    let cc = HeaderValue::from_static("public, max-age=10");
    resp.headers.insert(header::CACHE_CONTROL, cc);
    resp
}

/// One glob element.
#[derive(Debug, Clone, Copy)]
enum Tok {
    /// A literal character, or `None` for `?`: any one character but `/`.
    Char(Option<char>),
    /// `*`: any run of characters without `/`; `Run(true)` is `**`, which may cross `/`.
    Run(bool),
}

/// A glob over the whole URL path, matched in O(pattern × path) time.
#[derive(Debug, Clone)]
struct Glob(Vec<Tok>);

impl Glob {
    fn new(pattern: &str) -> Self {
        let mut toks = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            toks.push(match c {
                '*' => Tok::Run(chars.next_if_eq(&'*').is_some()),
                '?' => Tok::Char(None),
                c => Tok::Char(Some(c)),
            });
            while c == '*' && chars.next_if_eq(&'*').is_some() {} // `***` is `**`
        }
        Glob(toks)
    }

    /// Tracks where in the path each pattern prefix can end, one token at a time.
    fn matches(&self, path: &str) -> bool {
        let path: Vec<char> = path.chars().collect();
        let n = path.len();
        let (mut cur, mut next) = (vec![false; n + 1], vec![false; n + 1]);
        cur[0] = true;
        for &tok in &self.0 {
            match tok {
                Tok::Char(want) => {
                    next[0] = false;
                    for i in 0..n {
                        let fits = want.map_or(path[i] != '/', |c| path[i] == c);
                        next[i + 1] = cur[i] && fits;
                    }
                }
                Tok::Run(cross) => {
                    let mut reach = false;
                    for j in 0..=n {
                        reach |= cur[j];
                        next[j] = reach;
                        reach &= cross || path.get(j) != Some(&'/');
                    }
                }
            }
            std::mem::swap(&mut cur, &mut next);
            if !cur.contains(&true) {
                return false;
            }
        }
        cur[n]
    }
}

#[cfg(test)]
mod tests {
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
}
