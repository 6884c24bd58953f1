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

pub(crate) use rate_limit::{Refusals, enforce as enforce_policy};
pub use render::RpcIdSlot;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use http::{HeaderName, header};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::map_request_body::MapRequestBodyLayer;
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};

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
        .layer(MapRequestBodyLayer::new(axum::body::Body::new))
        .layer(from_fn_with_state(settings.body_limit, body::limit_body))
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
