use crate::error::ApiError;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hive_proto::ErrorCode;
use http::{HeaderMap, Method, header};

/// API writes carry JSON; anything else is refused with 415 before a handler reads it.
pub async fn require_json(request: Request, next: Next) -> Response {
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH
    );
    if writes
        && request.uri().path().starts_with("/api/")
        && has_body(request.headers())
        && !is_json_media_type(request.headers())
    {
        return ApiError::of(ErrorCode::UnsupportedMediaType).into_response();
    }
    next.run(request).await
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
