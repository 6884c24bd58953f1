//! Checks on the request head before anything else reads it: a request target longer than
//! Hive serves (414), and a credential sent twice (400) — two `Authorization` headers, or two
//! session cookies, leave it to each reader which one counts, so none does.

use crate::auth::{oidc_flow_cookie_name, session_cookie_name};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hive_proto::ErrorCode;
use http::{HeaderMap, HeaderName, header};

/// The longest request target (path and query) Hive reads.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Headers that carry a credential: never logged, never accepted twice.
pub fn credential_headers() -> [HeaderName; 7] {
    [
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        HeaderName::from_static("x-hive-setup-token"),
        HeaderName::from_static("x-hive-internal-token"),
        hive_core::mesh::federation::JWT_HEADER,
        hive_core::mesh::federation::SECRET_HEADER,
        hive_core::mesh::public_tier::KEY_HEADER,
    ]
}

pub async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let target_length = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target_length > MAX_URI_BYTES {
        return ApiError::of(ErrorCode::UriTooLong).into_response();
    }
    let https = state.pipeline.hsts;
    if let Some(name) = duplicated_credential(request.headers(), https) {
        return ApiError::new(
            ErrorCode::BadRequest,
            format!("the credential {name} was sent more than once; send it once"),
        )
        .into_response();
    }
    next.run(request).await
}

/// The name of a credential header or cookie present more than once.
fn duplicated_credential(headers: &HeaderMap, https: bool) -> Option<String> {
    if let Some(name) = credential_headers()
        .into_iter()
        .find(|name| headers.get_all(name).iter().nth(1).is_some())
    {
        return Some(name.as_str().to_owned());
    }
    [session_cookie_name(https), oidc_flow_cookie_name(https)]
        .into_iter()
        .find(|cookie| {
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(';'))
                .filter(|pair| pair.trim().split('=').next() == Some(cookie))
                .nth(1)
                .is_some()
        })
        .map(|cookie| format!("cookie {cookie}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_credential_sent_twice_is_named() {
        let mut headers = HeaderMap::new();
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        assert_eq!(duplicated_credential(&headers, false), None);
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(
            duplicated_credential(&headers, false).as_deref(),
            Some("authorization")
        );

        let mut headers = HeaderMap::new();
        // HTTP/2 clients split cookies into several headers: that alone is fine.
        headers.append(header::COOKIE, HeaderValue::from_static("hive_session=a"));
        headers.append(header::COOKIE, HeaderValue::from_static("theme=dark"));
        assert_eq!(duplicated_credential(&headers, false), None);
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("x=1; hive_session=b"),
        );
        assert_eq!(
            duplicated_credential(&headers, false).as_deref(),
            Some("cookie hive_session")
        );
        // Over https only the __Host- name is the session's.
        assert_eq!(duplicated_credential(&headers, true), None);
    }
}
