//! The access log: one line per request, emitted when the response body is finished (or the
//! client went away), so `bytes` and `total_ms` are what was actually sent and how long it took.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::{
    pin::Pin,
    task::{Context, Poll},
};
use tokio::time::Instant;

/// What is known about a request when its response head is ready.
pub(crate) struct AccessRecord {
    /// Write the line (`log.access_log`); off, the record is only here for `late_bytes`.
    pub(crate) log: bool,
    /// Where the body's bytes are counted once sent, with the outcome's index: set for a body
    /// of unknown length, the others are counted from their head.
    pub(crate) late_bytes: Option<(std::sync::Arc<crate::telemetry::metrics::SiteStats>, usize)>,
    /// When the request came in: `total_ms` runs from here to the end of the body.
    pub(crate) started: Instant,
    /// The client's IP address as text.
    pub(crate) client: Option<http::HeaderValue>,
    /// The request method.
    pub(crate) method: Method,
    /// The protocol the request came in: `HTTP/1.1`, `HTTP/2.0`.
    pub(crate) version: Version,
    /// The request's host (lower case, without port); empty for data routes and for requests
    /// refused before their Host was read.
    pub(crate) host: String,
    /// Path and query as received.
    pub(crate) target: String,
    /// The site that took the request, if one did.
    pub(crate) site: Option<&'static str>,
    /// The response status.
    pub(crate) status: u16,
    /// `X-Cache` word, if the cache was involved.
    pub(crate) cache: Option<&'static str>,
    /// The origin's status, when this request's answer came from asking it.
    pub(crate) fwd_status: Option<u16>,
    /// Why the origin's answer was not stored, when it was not (`Cache-Status`'s detail).
    pub(crate) not_stored: Option<&'static str>,
    /// Time to the origin's response head, if this request asked the origin.
    pub(crate) origin_ms: Option<f64>,
    /// The pool's server that answered it, and whether on a retry.
    pub(crate) served_by: Option<crate::origin::ServedBy>,
    /// The client's `User-Agent`.
    pub(crate) user_agent: Option<HeaderValue>,
    /// The client's `Referer`.
    pub(crate) referer: Option<HeaderValue>,
    /// How the line is written.
    pub(crate) format: LineFormat,
}

/// How an access line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineFormat {
    /// `key=value` fields after the text log's timestamp and target.
    Text,
    /// The same fields on a tracing event, which the JSON log writes as an object.
    Json,
    /// Apache combined, one bare line.
    Combined,
}

impl LineFormat {
    /// The format `[log]` asks for.
    pub(crate) fn of(cfg: &crate::config::LogConfig) -> Self {
        use crate::config::{AccessFormat, LogFormat};
        match (cfg.access_format, cfg.format) {
            (AccessFormat::Combined, _) => LineFormat::Combined,
            (AccessFormat::Kv, LogFormat::Json) => LineFormat::Json,
            (AccessFormat::Kv, LogFormat::Text) => LineFormat::Text,
        }
    }
}

/// `HTTP/1.1` and the like.
fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// A header's value as the text between the quotes of a log field: `"` and `\` escaped, and
/// bytes that are not printable ASCII as `\xHH` (nginx's escaping), so a client cannot end the
/// field or the line, or write what a terminal would interpret.
fn push_quoted(line: &mut String, v: Option<&HeaderValue>) {
    line.push('"');
    match v {
        None => line.push('-'),
        Some(v) => {
            for &b in v.as_bytes() {
                match b {
                    b'"' | b'\\' => {
                        line.push('\\');
                        line.push(b as char);
                    }
                    0x20..=0x7e => line.push(b as char),
                    _ => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        line.push_str("\\x");
                        line.push(HEX[usize::from(b >> 4)] as char);
                        line.push(HEX[usize::from(b & 15)] as char);
                    }
                }
            }
        }
    }
    line.push('"');
}

/// A response body that counts what it sends and logs the request when done.
pub(crate) struct LoggedBody {
    /// The response body passed through.
    inner: Body,
    /// The request's facts, taken when the line is written on drop, so it is written once.
    /// Boxed: the body is moved a few times on its way out, and the record is most of it.
    record: Option<Box<AccessRecord>>,
    /// Body bytes sent so far: the line's `bytes`.
    bytes: u64,
    /// The announced Content-Length: hyper stops polling once it is sent, so reaching it counts
    /// as complete too.
    expected: Option<u64>,
    /// The body's stream has ended.
    complete: bool,
}

/// The body length a response promises: none for HEAD, 1xx, 204 and 304 (RFC 9110 section
/// 6.4.1, whatever their `Content-Length` says of the representation), else the body's own
/// exact size when it knows it (a stored object's: no header to look up and parse on a HIT),
/// else its `Content-Length` if it has one.
pub(crate) fn expected_body_len(
    method: &Method,
    status: StatusCode,
    h: &HeaderMap,
    exact: Option<u64>,
) -> Option<u64> {
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if bodiless {
        return Some(0);
    }
    if exact.is_some() {
        return exact;
    }
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

impl LoggedBody {
    pub(crate) fn new(inner: Body, record: Box<AccessRecord>, expected: Option<u64>) -> Self {
        Self {
            inner,
            record: Some(record),
            bytes: 0,
            expected,
            complete: false,
        }
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    self.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => self.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl LoggedBody {
    /// Did the whole body go out? A body that ended short of its announced length was cut,
    /// however cleanly its stream ended.
    fn is_complete(&self) -> bool {
        (self.complete || self.inner.is_end_stream() || self.expected == Some(self.bytes))
            && self.expected.is_none_or(|n| n == self.bytes)
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let Some(r) = self.record.take() else { return };
        if let Some((stats, outcome)) = &r.late_bytes {
            stats.add_bytes(*outcome, self.bytes);
        }
        if !r.log {
            return;
        }
        let complete = self.is_complete();
        let total_us = u64::try_from(r.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match r.format {
            LineFormat::Text => {
                super::access_sink::write(|line| r.kv(line, self.bytes, total_us, complete))
            }
            LineFormat::Combined => {
                super::access_sink::write_bare(|line, time| r.combined(line, time, self.bytes))
            }
            LineFormat::Json => r.event(self.bytes, total_us, complete),
        }
    }
}

impl AccessRecord {
    /// The `key=value` line: the fields every version of it had first, then the newer ones,
    /// the quoted ones last.
    fn kv(&self, line: &mut String, bytes: u64, total_us: u64, complete: bool) {
        use crate::numfmt::{push_millis, push_u64};
        let client = self.client.as_ref().and_then(|c| c.to_str().ok());
        line.push_str("client=");
        line.push_str(client.unwrap_or("-"));
        line.push_str(" method=");
        line.push_str(self.method.as_str());
        line.push_str(" host=");
        line.push_str(&self.host);
        line.push_str(" path=");
        line.push_str(&self.target);
        line.push_str(" status=");
        push_u64(line, u64::from(self.status));
        line.push_str(" bytes=");
        push_u64(line, bytes);
        line.push_str(" cache=");
        line.push_str(self.cache.unwrap_or("-"));
        line.push_str(" origin_ms=");
        match self.origin_ms {
            Some(o) => push_millis(line, (o * 1000.0) as u64),
            None => line.push('-'),
        }
        line.push_str(" total_ms=");
        push_millis(line, total_us);
        line.push_str(if complete {
            " complete=true"
        } else {
            " complete=false"
        });
        if let Some(by) = &self.served_by {
            line.push_str(" upstream=");
            line.push_str(&by.server);
            if by.retried {
                line.push_str(" retried=true");
            }
        }
        line.push_str(" proto=");
        line.push_str(protocol(self.version));
        line.push_str(" site=");
        line.push_str(self.site.unwrap_or("-"));
        if let Some(s) = self.fwd_status {
            line.push_str(" origin_status=");
            push_u64(line, u64::from(s));
        }
        if let Some(why) = self.not_stored {
            line.push_str(" not_stored=");
            line.push_str(why);
        }
        line.push_str(" referer=");
        push_quoted(line, self.referer.as_ref());
        line.push_str(" ua=");
        push_quoted(line, self.user_agent.as_ref());
    }

    /// Apache's combined line: `client - - [time] "METHOD target PROTO" status bytes "referer"
    /// "user agent"`, `time` already in brackets.
    fn combined(&self, line: &mut String, time: &str, bytes: u64) {
        use crate::numfmt::push_u64;
        let client = self.client.as_ref().and_then(|c| c.to_str().ok());
        line.push_str(client.unwrap_or("-"));
        line.push_str(" - - ");
        line.push_str(time);
        line.push_str(" \"");
        line.push_str(self.method.as_str());
        line.push(' ');
        // The target is what the client sent, already free of spaces and quotes (hyper
        // refuses those), but not necessarily of every byte a terminal would take.
        for c in self.target.chars() {
            if c.is_ascii_graphic() {
                line.push(c);
            } else {
                line.push_str(&format!("\\x{:02X}", u32::from(c)));
            }
        }
        line.push(' ');
        line.push_str(protocol(self.version));
        line.push_str("\" ");
        push_u64(line, u64::from(self.status));
        line.push(' ');
        push_u64(line, bytes);
        line.push(' ');
        push_quoted(line, self.referer.as_ref());
        line.push(' ');
        push_quoted(line, self.user_agent.as_ref());
    }

    /// The same fields as a tracing event, for the JSON log.
    fn event(&self, bytes: u64, total_us: u64, complete: bool) {
        let header = |v: &Option<HeaderValue>| {
            v.as_ref()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        tracing::info!(
            target: "edgecache::access",
            client = self.client.as_ref().and_then(|c| c.to_str().ok()),
            method = %self.method,
            host = %self.host,
            path = %self.target,
            status = self.status,
            bytes,
            cache = %self.cache.unwrap_or("-"),
            origin_ms = self.origin_ms.map(|m| (m * 10.0).round() / 10.0),
            total_ms = (total_us as f64 / 100.0).round() / 10.0,
            complete,
            upstream = self.served_by.as_ref().map(|b| &*b.server),
            retried = self.served_by.as_ref().is_some_and(|b| b.retried),
            proto = protocol(self.version),
            site = self.site,
            origin_status = self.fwd_status,
            not_stored = self.not_stored,
            referer = header(&self.referer),
            ua = header(&self.user_agent),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodiless_answers_promise_no_bytes_whatever_their_content_length() {
        let cl = crate::test_util::headers(&[("content-length", "500")]);
        let len =
            |m: Method, s: u16| expected_body_len(&m, StatusCode::from_u16(s).unwrap(), &cl, None);
        assert_eq!(len(Method::GET, 200), Some(500));
        assert_eq!(len(Method::GET, 404), Some(500));
        assert_eq!(len(Method::HEAD, 200), Some(0));
        assert_eq!(len(Method::GET, 304), Some(0));
        assert_eq!(len(Method::GET, 204), Some(0));
        assert_eq!(len(Method::GET, 103), Some(0));
        let none = HeaderMap::new();
        assert_eq!(
            expected_body_len(&Method::GET, StatusCode::OK, &none, None),
            None
        );
        // A body that knows its size says it, before any header; HEAD still sends none.
        assert_eq!(
            expected_body_len(&Method::GET, StatusCode::OK, &cl, Some(7)),
            Some(7)
        );
        assert_eq!(
            expected_body_len(&Method::HEAD, StatusCode::OK, &cl, Some(7)),
            Some(0)
        );
    }
    use http_body_util::BodyExt;

    fn record() -> AccessRecord {
        AccessRecord {
            log: true,
            late_bytes: None,
            started: Instant::now(),
            client: None,
            method: Method::GET,
            version: Version::HTTP_11,
            host: "h".into(),
            target: "/".into(),
            site: None,
            status: 200,
            cache: None,
            fwd_status: None,
            not_stored: None,
            origin_ms: None,
            served_by: None,
            user_agent: None,
            referer: None,
            format: LineFormat::Text,
        }
    }

    /// Sends `chunks` as a body that ends cleanly, announced as `expected` bytes.
    async fn sent(chunks: &'static [&'static str], expected: Option<u64>) -> bool {
        let stream = futures_util::stream::iter(chunks.iter().map(|c| Ok::<_, std::io::Error>(*c)));
        let mut body = LoggedBody::new(Body::from_stream(stream), Box::new(record()), expected);
        while let Some(f) = body.frame().await {
            f.unwrap();
        }
        body.is_complete()
    }

    #[tokio::test]
    async fn a_body_that_ends_short_of_its_length_is_not_complete() {
        assert!(!sent(&["abc", "de"], Some(10)).await);
        assert!(sent(&["abc", "de"], Some(5)).await);
        assert!(sent(&["abc", "de"], None).await);
        let head = LoggedBody::new(Body::empty(), Box::new(record()), Some(0));
        assert!(head.is_complete());
    }
}
