//! Single sign-on with OpenID Connect: the providers, the start (a redirect to the provider
//! with a flow cookie) and the callback (a session cookie and a redirect home).
//!
//! These are browser navigations, not API calls: both answer redirects, and a refused
//! callback answers one `401 sso_failed` whatever the reason (the audit record has it).

use crate::auth::{Meta, cookie_token, oidc_flow_cookie, oidc_flow_cookie_name, session_cookie};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use hive_core::identity::oidc::{Callback, OidcError};
use hive_proto::ErrorCode;
use hive_proto::auth::{OidcProviderView, OidcProvidersResponse};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::collections::BTreeMap;

/// The first value of each query parameter (at most 20 parameters, of at most 4 KiB each).
fn query_values(raw: Option<&str>) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).take(20) {
        if value.len() <= 4096 {
            values
                .entry(name.into_owned())
                .or_insert_with(|| value.into_owned());
        }
    }
    values
}

fn oidc_error(error: OidcError) -> ApiError {
    match error {
        OidcError::UnknownProvider => ApiError::of(ErrorCode::NotFound),
        OidcError::Refused => ApiError::of(ErrorCode::SsoFailed),
        OidcError::ProviderUnavailable => ApiError::new(
            ErrorCode::ServiceUnavailable,
            "The identity provider cannot be reached; retry later.",
        )
        .with_retry_after(30),
        OidcError::Unavailable => ApiError::unavailable(),
    }
}

/// A redirect nobody caches, with cookies.
fn redirect(location: &str, cookies: &[HeaderValue]) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            headers.insert(header::LOCATION, value);
        }
        Err(_) => return ApiError::of(ErrorCode::Internal).into_response(),
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie.clone());
    }
    response
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/oidc/providers",
    tag = "oidc",
    responses((status = 200, description = "OK.", body = OidcProvidersResponse)),
)]
pub async fn providers(State(state): State<AppState>) -> Json<OidcProvidersResponse> {
    let providers = state
        .hive
        .oidc
        .providers()
        .into_iter()
        .map(|provider| OidcProviderView {
            start_url: format!("/api/v1/auth/oidc/{}/start", provider.id),
            id: provider.id,
            display_name: provider.display_name,
        })
        .collect();
    Json(OidcProvidersResponse { providers })
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/oidc/{provider}/start",
    tag = "oidc",
    params(("provider" = String, Path)),
    responses((status = 302, description = "To the identity provider.")),
)]
pub async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    Meta(meta): Meta,
) -> Result<Response, ApiError> {
    let query = query_values(query.as_deref());
    let started = state
        .hive
        .oidc
        .start(&provider, query.get("returnTo").map(String::as_str), &meta)
        .await
        .map_err(oidc_error)?;
    let https = state.hive.config.served_over_https();
    let cookie = oidc_flow_cookie(https, Some(&started.browser_handle));
    Ok(redirect(&started.authorize_url, &[cookie]))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/oidc/{provider}/callback",
    tag = "oidc",
    params(("provider" = String, Path)),
    responses((status = 302, description = "Signed in: back to the page the flow started from.")),
)]
pub async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Meta(meta): Meta,
) -> Result<Response, ApiError> {
    let query = query_values(query.as_deref());
    let https = state.hive.config.served_over_https();
    let value = |name: &str| query.get(name).map(String::as_str);
    let callback = Callback {
        code: value("code"),
        state: value("state"),
        error: value("error"),
        issuer: value("iss"),
        browser_handle: cookie_token(&headers, oidc_flow_cookie_name(https)),
    };
    // The flow cookie has served its purpose either way.
    let spent = oidc_flow_cookie(https, None);
    match state.hive.oidc.callback(&provider, callback, &meta).await {
        Ok(done) => {
            let session = session_cookie(https, Some(&done.session.token));
            Ok(redirect(&done.return_to, &[session, spent]))
        }
        Err(error) => {
            let mut response = oidc_error(error).into_response();
            response.headers_mut().append(header::SET_COOKIE, spent);
            Ok(response)
        }
    }
}
