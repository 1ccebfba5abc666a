//! HTTP glue for the data routes: read the bounded body, call the data layer, add headers.

use super::{Edge, RequestCtx, respond};
use crate::data::routes::{DataApi, DataResponse};
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header, request::Parts};

pub(crate) async fn serve(
    edge: &Edge,
    data: &DataApi,
    parts: &Parts,
    body: Body,
    ctx: &mut RequestCtx,
) -> Response<Body> {
    let r = match read_body(edge, parts, body).await {
        Ok(bytes) => data.serve(&parts.method, parts.uri.path(), bytes).await,
        Err((status, msg)) => DataResponse::error(status, msg),
    };
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

/// The bounded request body of a write (`None` for GET and HEAD), or why it is refused.
async fn read_body(
    edge: &Edge,
    parts: &Parts,
    body: Body,
) -> Result<Option<Bytes>, (StatusCode, &'static str)> {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        return Ok(None);
    }
    let limit = usize::try_from(edge.settings.max_request_body).unwrap_or(usize::MAX);
    match axum::body::to_bytes(body, limit).await {
        // A body must say it is JSON, and so must any declared type, body or not: an HTML form
        // always declares one, so a cross-site form POST is refused even empty.
        Ok(b)
            if (!b.is_empty() || parts.headers.contains_key(header::CONTENT_TYPE))
                && !is_json(parts) =>
        {
            Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as Content-Type: application/json",
            ))
        }
        Ok(b) => Ok(Some(b)),
        Err(e) if too_large(&e) => Err((StatusCode::PAYLOAD_TOO_LARGE, "request body too large")),
        Err(_) => Err((StatusCode::BAD_REQUEST, "could not read the request body")),
    }
}

/// Is the request body declared as JSON (`application/json`, or a `+json` type)?
fn is_json(parts: &Parts) -> bool {
    let Some(ct) = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > "application/+json".len()
            && essence[..12].eq_ignore_ascii_case("application/")
            && essence[essence.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Did reading the body fail on the size limit (rather than a broken upload)?
fn too_large(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_bodies_are_recognised_by_their_media_type() {
        let parts = |ct: Option<&str>| {
            let mut b = http::Request::builder();
            if let Some(ct) = ct {
                b = b.header("content-type", ct);
            }
            b.body(()).unwrap().into_parts().0
        };
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(&parts(Some(ok))), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/+json",
            "json",
            "",
        ] {
            assert!(!is_json(&parts(Some(bad))), "{bad}");
        }
        assert!(!is_json(&parts(None)));
    }
}
