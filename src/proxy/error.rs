//! Every way the request path can fail before it has a response, and the one conversion to
//! the response a client gets: the right status and a short generic reason. What went wrong
//! in detail (an OS error, a resolver's or a TLS library's words) goes to the log, never into
//! a body.

use super::respond;
use crate::{cache::fill::FillError, cache::status::CacheStatus, origin::OriginError};
use axum::body::Body;
use http::{Response, StatusCode};

/// Why a request got no answer from a site.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    #[error("request target must be a path")]
    NotAPath,
    #[error("request path has a `.` or `..` segment")]
    DotSegment,
    #[error("missing Host header")]
    NoHost,
    #[error("Host header is not valid")]
    BadHost,
    #[error("this edge serves no site for that host")]
    NoSite,
    /// Over TLS, the request's host is not one the connection's SNI name was for (domain
    /// fronting: a certificate for one site, requests for another); the client may retry on a
    /// connection of its own (RFC 9110 section 15.5.20).
    #[error("this connection's TLS server name is not for that host")]
    OtherName,
    /// The site's `allow` / `deny` lists do not admit the client's address.
    #[error("not allowed from this address")]
    Forbidden,
    /// The site's `rate_limit` for the client's address is used up; it may try again after
    /// this long.
    #[error("too many requests from this address")]
    RateLimited(std::time::Duration),
    #[error("request body too large")]
    BodyTooLarge,
    /// `only-if-cached`, and nothing usable is stored (RFC 9111 section 5.2.1.7).
    #[error("not in the cache (only-if-cached)")]
    NotCached,
    /// The origin (or the request body on its way there) failed.
    #[error(transparent)]
    Origin(#[from] OriginError),
    /// The fill this request read failed (its cause was logged by the fill).
    #[error(transparent)]
    Fill(#[from] FillError),
}

impl ProxyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ProxyError::NotAPath
            | ProxyError::DotSegment
            | ProxyError::NoHost
            | ProxyError::BadHost => StatusCode::BAD_REQUEST,
            ProxyError::NoSite | ProxyError::OtherName => StatusCode::MISDIRECTED_REQUEST,
            ProxyError::Forbidden => StatusCode::FORBIDDEN,
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::NotCached => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Origin(e) => e.status(),
            ProxyError::Fill(e) => e.status(),
        }
    }

    /// What the client is told: the request's own fault in its words, the origin's in
    /// generic ones.
    fn reason(&self) -> String {
        match self {
            ProxyError::Origin(e) => e.public_reason().to_string(),
            other => other.to_string(),
        }
    }

    /// The response for this error, marked with what the cache did (if it was involved).
    /// Origin failures are logged with their cause; a client's own mistakes only at debug.
    pub(crate) fn into_response(self, cache: Option<&CacheStatus>) -> Response<Body> {
        match &self {
            ProxyError::Origin(e) if e.is_origins_fault() => {
                tracing::warn!(error = %e, "origin request failed");
            }
            _ => tracing::debug!(error = %self, "request refused"),
        }
        let mut res = respond::error(self.status(), &self.reason(), cache);
        if let ProxyError::RateLimited(wait) = self {
            // Whole seconds (RFC 9110 section 10.2.3), rounded up: sooner would be refused.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, secs.max(1).into());
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origins_failure_reaches_the_client_without_its_detail() {
        let refused =
            OriginError::Connect("tcp connect error: Connection refused (os error 111)".into());
        let res = ProxyError::from(refused).into_response(None);
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        let e = ProxyError::Origin(OriginError::Protocol(
            "invalid peer certificate: UnknownIssuer".into(),
        ));
        assert_eq!(e.reason(), "origin response broken");
        let e = ProxyError::Origin(OriginError::Timeout("first byte"));
        assert_eq!(
            (e.status(), e.reason().as_str()),
            (StatusCode::GATEWAY_TIMEOUT, "origin timed out")
        );
        assert_eq!(ProxyError::BadHost.reason(), "Host header is not valid");
    }
}
