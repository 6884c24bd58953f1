//! The request pipeline: every layer a request passes before its handler, in DESIGN.md's order.

mod body;
mod client_ip;
mod cors;
mod rate_limit;
mod render;
mod request_head;
mod request_id;
mod security_headers;
mod timeout;

pub use client_ip::ClientIp;
pub(crate) use rate_limit::{Refusals, enforce as enforce_policy};
pub use render::RpcIdSlot;
pub use request_id::RequestId;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use hive_core::kernel::config::{ClientIpSource, Config};
use http::{HeaderName, HeaderValue, header};
use ipnet::IpNet;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::map_request_body::MapRequestBodyLayer;
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};

/// Pipeline values computed once from the configuration, not per request.
#[derive(Debug)]
pub(crate) struct PipelineSettings {
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub client_ip_source: ClientIpSource,
    /// The only origin CORS allows: that of `AUTH_URL`.
    pub allowed_origin: HeaderValue,
    /// HSTS is sent only when Hive is served over https.
    pub hsts: bool,
}

impl PipelineSettings {
    pub fn from_config(config: &Config) -> Self {
        let origin = config.public_origin();
        Self {
            request_timeout: config.http.request_timeout,
            body_limit: config.http.body_limit_bytes,
            trusted_proxies: config.http.trusted_proxies.clone(),
            client_ip_source: config.http.client_ip_source,
            // An origin serialised by the URL parser is always a valid header value; the
            // fallback can never match a browser's Origin.
            allowed_origin: HeaderValue::from_str(&origin)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid:")),
            hsts: config.served_over_https(),
        }
    }
}

/// Headers whose values never reach a log or a `Debug` print: the credentials and cookies.
fn sensitive_headers() -> Vec<HeaderName> {
    let mut names = request_head::credential_headers().to_vec();
    names.push(header::COOKIE);
    names
}

/// Wraps `routes` in the whole pipeline.
pub(crate) fn apply(routes: Router, state: &AppState) -> Router {
    let settings = &state.pipeline;
    let stack = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive_headers()))
        .layer(SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE]))
        .layer(from_fn(request_id::assign))
        .layer(request_id::access_log())
        .layer(from_fn(render::render_errors))
        .layer(CatchPanicLayer::custom(render::panic_response))
        .layer(from_fn_with_state(state.clone(), request_head::check))
        .layer(from_fn_with_state(state.clone(), timeout::limit_time))
        .layer(RequestBodyLimitLayer::new(settings.body_limit))
        .layer(MapRequestBodyLayer::new(axum::body::Body::new))
        .layer(from_fn(body::require_json))
        .layer(from_fn_with_state(state.clone(), client_ip::resolve))
        .layer(from_fn_with_state(state.clone(), cors::apply))
        .layer(from_fn_with_state(state.clone(), security_headers::apply))
        .layer(from_fn_with_state(state.clone(), rate_limit::apply))
        .layer(from_fn_with_state(state.clone(), crate::auth::authenticate))
        // Our limit above is the only one; axum's own default would cut at 2 MiB.
        .layer(DefaultBodyLimit::disable());
    routes.layer(stack)
}
