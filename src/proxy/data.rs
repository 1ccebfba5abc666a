//! HTTP glue for the data routes: read the bounded body, call the data layer, add headers.

use super::{Edge, RequestCtx, respond};
use crate::data::routes::DataApi;
use axum::body::Body;
use http::{HeaderValue, Method, Response, StatusCode, header, request::Parts};

pub async fn serve(
    edge: &Edge,
    data: &DataApi,
    parts: &Parts,
    body: Body,
    ctx: &mut RequestCtx,
) -> Response<Body> {
    let bytes = if parts.method == Method::GET || parts.method == Method::HEAD {
        None
    } else {
        let limit = usize::try_from(edge.settings.max_request_body).unwrap_or(usize::MAX);
        match axum::body::to_bytes(body, limit).await {
            Ok(b) => Some(b),
            Err(_) => {
                return respond::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                    None,
                );
            }
        }
    };
    let r = data.serve(&parts.method, parts.uri.path(), bytes).await;
    ctx.cache = r.cache;
    let body = if parts.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(r.body.clone())
    };
    let mut res = Response::new(body);
    *res.status_mut() = r.status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.body.len()));
    // Browsers and other caches downstream must ask again: freshness is the edge's business.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(age) = r.age {
        h.insert(header::AGE, HeaderValue::from(age));
    }
    if let Some(allow) = r.allow {
        h.insert(header::ALLOW, allow);
    }
    if let Some(cs) = &r.cache {
        respond::stamp(h, cs);
    }
    res
}
