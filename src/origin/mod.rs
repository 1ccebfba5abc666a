//! Where content comes from: an upstream HTTP server or a local directory. Both answer an
//! `OriginRequest` with an `OriginResponse` whose body is a stream, so the proxy treats them
//! alike. An upstream site's servers are a [`Pool`]: balanced, health-checked, retried.

pub(crate) mod headers;
mod pool;
pub(crate) mod range;
mod static_dir;
mod upstream;

pub(crate) use pool::{Dns, Hickory, Pool, PoolSettings, TtlBounds, names_a_host};
pub(crate) use static_dir::StaticDir;
pub(crate) use upstream::Upstream;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use http::{HeaderMap, Method, StatusCode};

/// A body as a stream of chunks; an `Err` item means the body is cut short.
pub(crate) type BodyStream = BoxStream<'static, Result<Bytes, OriginError>>;

/// What the edge asks of an origin. `path_and_query` always starts with `/`.
pub(crate) struct OriginRequest {
    /// GET for a fill, the client's method for a pass-through request.
    pub(crate) method: Method,
    /// Appended to an upstream's base path, or resolved under a directory's root.
    pub(crate) path_and_query: String,
    /// The headers to send, already chosen by `proxy::forward` (the safe set on fills).
    pub(crate) headers: HeaderMap,
    /// Request body for methods that carry one (streamed, never buffered whole).
    pub(crate) body: Option<BodyStream>,
    /// The event loop the request runs on: an upstream keeps a connection pool per loop, and
    /// uses that loop's (a pooled connection's task runs on the loop that dialled it).
    pub(crate) event_loop: usize,
}

/// An origin's answer; hop-by-hop headers are already removed.
pub(crate) struct OriginResponse {
    /// The origin's status, which the cache's verdict and the client's answer start from.
    pub(crate) status: StatusCode,
    /// End-to-end headers: judged for storing, kept with a stored object, sent to clients.
    pub(crate) headers: HeaderMap,
    /// The body as it arrives, so a fill hands chunks to its readers before the end.
    pub(crate) body: BodyStream,
    /// Which server of a pool answered, and whether on a second try (none for a directory).
    pub(crate) served_by: Option<ServedBy>,
}

/// The server of a pool that gave an answer (the access log's `upstream` and `retried`).
#[derive(Debug, Clone)]
pub(crate) struct ServedBy {
    /// Its URL as configured.
    pub(crate) server: std::sync::Arc<str>,
    /// The answer came from a second try (the first failed before any answer).
    pub(crate) retried: bool,
}

/// Why an origin named in a valid config could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    /// The HTTP client could not be built (its TLS backend, for one).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("`{0}` is not a valid Host")]
    Host(String),
    #[error("`{url}` is not a valid URL: {reason}")]
    Url { url: String, reason: String },
    /// The static root is missing, unreadable or not a directory.
    #[error("{}: {source}", path.display())]
    Root {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no origin")]
    Missing,
    /// `origin_ca_file` could not be read, or holds no certificate.
    #[error("origin_ca_file: {0}")]
    CaFile(String),
    /// The resolver of origin names could not be set up.
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
}

/// Why an origin gave no (complete) answer. Decides the status the client sees.
#[derive(Debug, thiserror::Error, Clone)]
pub(crate) enum OriginError {
    #[error("origin unreachable: {0}")]
    Connect(String),
    #[error("origin timed out ({0})")]
    Timeout(&'static str),
    #[error("origin response broken: {0}")]
    Protocol(String),
    /// The connection ended before any answer came: a keep-alive connection the server had
    /// closed, or a reset.
    #[error("origin closed the connection: {0}")]
    Closed(String),
    /// No server of the pool could take the request (all down, or all full).
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("request body too large")]
    RequestTooLarge,
    #[error("request body unreadable: {0}")]
    Downstream(String),
}

impl OriginError {
    /// What a client may be told: no OS, resolver or TLS detail (that goes to the log).
    pub(crate) fn public_reason(&self) -> &'static str {
        match self {
            OriginError::Connect(_) => "origin unreachable",
            OriginError::Timeout(_) => "origin timed out",
            OriginError::Protocol(_) => "origin response broken",
            OriginError::Closed(_) => "origin closed the connection",
            OriginError::Unavailable(why) => why,
            OriginError::RequestTooLarge => "request body too large",
            OriginError::Downstream(_) => "request body unreadable",
        }
    }

    /// Did the origin fail (rather than the client's request body)?
    pub(crate) fn is_origins_fault(&self) -> bool {
        matches!(
            self,
            OriginError::Connect(_)
                | OriginError::Timeout(_)
                | OriginError::Protocol(_)
                | OriginError::Closed(_)
                | OriginError::Unavailable(_)
        )
    }

    /// Did it fail before the server could have acted on the request: a connection never
    /// made, or closed before any answer? Only then may a request be tried again.
    pub(crate) fn before_any_answer(&self) -> bool {
        matches!(self, OriginError::Connect(_) | OriginError::Closed(_))
    }

    /// The status a client gets when this error leaves it without a response.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            OriginError::Connect(_) | OriginError::Protocol(_) | OriginError::Closed(_) => {
                StatusCode::BAD_GATEWAY
            }
            OriginError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            OriginError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            OriginError::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            OriginError::Downstream(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// A configured origin. An enum, not a trait object: the set is closed and dispatch stays cheap.
pub(crate) enum Origin {
    Upstream(std::sync::Arc<Pool>),
    Static(StaticDir),
}

impl Origin {
    /// The health of each server of a pool; `None` for a directory.
    pub(crate) fn health(&self, now: std::time::SystemTime) -> Option<Vec<pool::ServerHealth>> {
        match self {
            Origin::Upstream(p) => Some(p.health(now)),
            Origin::Static(_) => None,
        }
    }

    pub(crate) async fn fetch(&self, req: OriginRequest) -> Result<OriginResponse, OriginError> {
        match self {
            Origin::Upstream(u) => u.fetch(req).await,
            Origin::Static(s) => s.fetch(req).await,
        }
    }
}
