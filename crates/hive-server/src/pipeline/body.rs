use crate::error::ApiError;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hive_proto::ErrorCode;
use http::{HeaderMap, Method, header};

/// The one API write whose body is not JSON: a hosted agent's bundle, a tar.gz.
const BUNDLE_UPLOAD_MEDIA_TYPES: [&str; 3] = [
    "application/gzip",
    "application/x-gzip",
    "application/octet-stream",
];
/// Its cap, above the pipeline's (`HIVE_BODY_LIMIT_BYTES`), for this route alone.
pub(crate) const BUNDLE_UPLOAD_LIMIT: usize = 64 * 1024 * 1024;

/// Whether the request is `PUT /api/v1/agents/{id}/bundle`.
fn is_bundle_upload(method: &Method, path: &str) -> bool {
    *method == Method::PUT
        && path
            .strip_prefix("/api/v1/agents/")
            .and_then(|rest| rest.strip_suffix("/bundle"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The pipeline's body cap, except for the bundle upload's own: a body over it is refused
/// with 413, whether announced by `Content-Length` or found while it is read.
pub async fn limit_body(
    axum::extract::State(limit): axum::extract::State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let limit = if is_bundle_upload(request.method(), request.uri().path()) {
        BUNDLE_UPLOAD_LIMIT
    } else {
        limit
    };
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        return ApiError::of(ErrorCode::PayloadTooLarge).into_response();
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::Body::new(http_body_util::Limited::new(body, limit));
    next.run(Request::from_parts(parts, body)).await
}

/// API writes carry JSON (a bundle upload, a tar.gz); anything else is refused with 415
/// before a handler reads it.
pub async fn require_json(request: Request, next: Next) -> Response {
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH
    );
    if writes && request.uri().path().starts_with("/api/") && has_body(request.headers()) {
        let accepted = if is_bundle_upload(request.method(), request.uri().path()) {
            is_media_type(request.headers(), &BUNDLE_UPLOAD_MEDIA_TYPES)
        } else {
            is_json_media_type(request.headers())
        };
        if !accepted {
            return ApiError::of(ErrorCode::UnsupportedMediaType).into_response();
        }
    }
    next.run(request).await
}

/// The `Content-Type`'s essence is one of `types`.
fn is_media_type(headers: &HeaderMap, types: &[&str]) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|essence| types.contains(&essence.as_str()))
}

fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().map(str::trim).ok() != Some("0"))
}

/// `application/json` or a `+json` type, parameters (charset) allowed.
fn is_json_media_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_the_bundle_upload_is_told_apart() {
        assert!(is_bundle_upload(
            &Method::PUT,
            "/api/v1/agents/0194e3a2-0000-7000-8000-000000000000/bundle"
        ));
        for (method, path) in [
            (Method::POST, "/api/v1/agents/x/bundle"),
            (Method::PUT, "/api/v1/agents//bundle"),
            (Method::PUT, "/api/v1/agents/x/y/bundle"),
            (Method::PUT, "/api/v1/agents/x/bundles"),
            (Method::PUT, "/api/v1/users/x/bundle"),
        ] {
            assert!(!is_bundle_upload(&method, path), "{method} {path}");
        }
    }

    #[test]
    fn json_media_types() {
        assert!(is_json_media_type(&headers(&[(
            "content-type",
            "application/json"
        )])));
        assert!(is_json_media_type(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )])));
        assert!(is_json_media_type(&headers(&[(
            "content-type",
            "application/merge-patch+json"
        )])));
        assert!(!is_json_media_type(&headers(&[(
            "content-type",
            "text/plain"
        )])));
        assert!(!is_json_media_type(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
        assert!(!is_json_media_type(&headers(&[])));
    }

    #[test]
    fn body_presence() {
        assert!(has_body(&headers(&[("content-length", "2")])));
        assert!(has_body(&headers(&[("transfer-encoding", "chunked")])));
        assert!(!has_body(&headers(&[("content-length", "0")])));
        assert!(!has_body(&headers(&[])));
    }
}
