//! The access log: one line per request, emitted when the response body is finished (or the
//! client went away), so `bytes` and `total_ms` are what was actually sent and how long it took.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
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
    /// The request's host (lower case, without port); empty for data routes and for requests
    /// refused before their Host was read.
    pub(crate) host: String,
    /// Path and query as received.
    pub(crate) target: String,
    /// The response status.
    pub(crate) status: u16,
    /// `X-Cache` word, if the cache was involved.
    pub(crate) cache: Option<&'static str>,
    /// Time to the origin's response head, if this request asked the origin.
    pub(crate) origin_ms: Option<f64>,
    /// The pool's server that answered it, and whether on a retry.
    pub(crate) served_by: Option<crate::origin::ServedBy>,
    /// JSON logs want fields; text logs get one pre-formatted line.
    pub(crate) structured: bool,
}

/// A response body that counts what it sends and logs the request when done.
pub(crate) struct LoggedBody {
    /// The response body passed through.
    inner: Body,
    /// The request's facts, taken when the line is written on drop, so it is written once.
    record: Option<AccessRecord>,
    /// Body bytes sent so far: the line's `bytes`.
    bytes: u64,
    /// The announced Content-Length: hyper stops polling once it is sent, so reaching it counts
    /// as complete too.
    expected: Option<u64>,
    /// The body's stream has ended.
    complete: bool,
}

/// The body length a response promises: none for HEAD, 1xx, 204 and 304 (RFC 9110 section
/// 6.4.1, whatever their `Content-Length` says of the representation), else its
/// `Content-Length` if it has one.
pub(crate) fn expected_body_len(method: &Method, status: StatusCode, h: &HeaderMap) -> Option<u64> {
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if bodiless {
        return Some(0);
    }
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

impl LoggedBody {
    pub(crate) fn new(inner: Body, record: AccessRecord, expected: Option<u64>) -> Self {
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
        let client = r.client.as_ref().and_then(|c| c.to_str().ok());
        let total_us = u64::try_from(r.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if !r.structured {
            super::access_sink::write(|line| {
                use crate::numfmt::{push_millis, push_u64};
                line.push_str("client=");
                line.push_str(client.unwrap_or("-"));
                line.push_str(" method=");
                line.push_str(r.method.as_str());
                line.push_str(" host=");
                line.push_str(&r.host);
                line.push_str(" path=");
                line.push_str(&r.target);
                line.push_str(" status=");
                push_u64(line, u64::from(r.status));
                line.push_str(" bytes=");
                push_u64(line, self.bytes);
                line.push_str(" cache=");
                line.push_str(r.cache.unwrap_or("-"));
                line.push_str(" origin_ms=");
                match r.origin_ms {
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
                if let Some(by) = &r.served_by {
                    line.push_str(" upstream=");
                    line.push_str(&by.server);
                    if by.retried {
                        line.push_str(" retried=true");
                    }
                }
            });
            return;
        }
        tracing::info!(
            target: "edgecache::access",
            client,
            method = %r.method,
            host = %r.host,
            path = %r.target,
            status = r.status,
            bytes = self.bytes,
            cache = %r.cache.unwrap_or("-"),
            origin_ms = r.origin_ms.map(|m| (m * 10.0).round() / 10.0),
            total_ms = (total_us as f64 / 100.0).round() / 10.0,
            complete,
            upstream = r.served_by.as_ref().map(|b| &*b.server),
            retried = r.served_by.as_ref().is_some_and(|b| b.retried),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodiless_answers_promise_no_bytes_whatever_their_content_length() {
        let cl = crate::test_util::headers(&[("content-length", "500")]);
        let len = |m: Method, s: u16| expected_body_len(&m, StatusCode::from_u16(s).unwrap(), &cl);
        assert_eq!(len(Method::GET, 200), Some(500));
        assert_eq!(len(Method::GET, 404), Some(500));
        assert_eq!(len(Method::HEAD, 200), Some(0));
        assert_eq!(len(Method::GET, 304), Some(0));
        assert_eq!(len(Method::GET, 204), Some(0));
        assert_eq!(len(Method::GET, 103), Some(0));
        let none = HeaderMap::new();
        assert_eq!(expected_body_len(&Method::GET, StatusCode::OK, &none), None);
    }
    use http_body_util::BodyExt;

    fn record() -> AccessRecord {
        AccessRecord {
            log: true,
            late_bytes: None,
            started: Instant::now(),
            client: None,
            method: Method::GET,
            host: "h".into(),
            target: "/".into(),
            status: 200,
            cache: None,
            origin_ms: None,
            served_by: None,
            structured: false,
        }
    }

    /// Sends `chunks` as a body that ends cleanly, announced as `expected` bytes.
    async fn sent(chunks: &'static [&'static str], expected: Option<u64>) -> bool {
        let stream = futures_util::stream::iter(chunks.iter().map(|c| Ok::<_, std::io::Error>(*c)));
        let mut body = LoggedBody::new(Body::from_stream(stream), record(), expected);
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
        let head = LoggedBody::new(Body::empty(), record(), Some(0));
        assert!(head.is_complete());
    }
}
