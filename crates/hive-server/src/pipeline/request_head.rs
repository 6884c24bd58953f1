//! Checks on the request head before anything else reads it: a request target longer than
//! Hive serves (414), and a credential sent twice (400) — two `Authorization` headers, or two
//! session cookies, leave it to each reader which one counts, so none does.

use crate::auth::{self, oidc_flow_cookie_name, session_cookie_name};
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
    let https = state.hive.config.served_over_https();
    if let Some(name) = duplicated_credential(request.headers(), https) {
        return ApiError::new(
            ErrorCode::BadRequest,
            format!("the credential {name} was sent more than once; send it once"),
        )
        .into_response();
    }
    next.run(request).await
}

/// The name of a credential header or cookie present more than once. Cookies are parsed by
/// [`auth::cookie_pairs`], as [`auth::cookie_values`] parses them for their readers: what
/// counts as a second value here is one a reader could take.
fn duplicated_credential(headers: &HeaderMap, https: bool) -> Option<String> {
    if let Some(name) = credential_headers()
        .into_iter()
        .find(|name| headers.get_all(name).iter().nth(1).is_some())
    {
        return Some(name.as_str().to_owned());
    }
    let credentials = [session_cookie_name(https), oidc_flow_cookie_name(https)];
    let mut seen = [false; 2];
    auth::cookie_pairs(headers)
        .find_map(|(name, _)| {
            let which = credentials
                .iter()
                .position(|credential| *credential == name)?;
            std::mem::replace(&mut seen[which], true).then_some(name)
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

        // A piece without `=` is no cookie, for the readers as for this check.
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("hive_session; hive_session=a"),
        );
        assert_eq!(duplicated_credential(&headers, false), None);
        assert_eq!(auth::cookie_token(&headers, "hive_session"), Some("a"));
        // Both credential cookies are looked for in the one pass.
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("hive_oidc_flow=f; hive_oidc_flow=g; hive_session=b"),
        );
        assert_eq!(
            duplicated_credential(&headers, false).as_deref(),
            Some("cookie hive_oidc_flow")
        );
    }
}
