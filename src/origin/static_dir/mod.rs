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

mod glob;
use glob::Glob;

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
pub(crate) struct StaticDir {
    /// The canonical root: a request's file must still resolve under it, symlinks followed.
    root: PathBuf,
    /// The site's cache rules, compiled: the first glob matching the decoded path gives the file's
    /// `Cache-Control`.
    rules: Vec<(Glob, HeaderValue)>,
}

impl StaticDir {
    /// Canonicalises `root` (an error if it is not a directory) and compiles `rules`, which
    /// fails only on a `cache_control` that is not a valid header value.
    pub(crate) fn new(root: PathBuf, rules: &[CacheRule]) -> std::io::Result<Self> {
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
    #[cfg(test)]
    fn root(&self) -> &Path {
        &self.root
    }

    /// Answers one request from the directory. Client mistakes and missing files are responses
    /// (400, 404, 405, ...); only unexpected I/O failures are errors.
    pub(crate) async fn fetch(&self, req: OriginRequest) -> Result<OriginResponse, OriginError> {
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
        served_by: None,
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

#[cfg(test)]
mod tests;
