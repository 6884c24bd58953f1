//! Serving with a graceful shutdown: when the shutdown token fires, stop accepting, let
//! in-flight requests and streams finish for up to `HIVE_SHUTDOWN_GRACE_SECONDS`, then close
//! what is left.

use crate::state::AppState;
use axum::Router;
use tokio::net::TcpListener;

/// The whole application: routes wrapped in the pipeline.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The application with `extra` routes merged in, behind the same pipeline (embedders and the
/// test kit use it).
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    router_with_fallback(state, extra, axum::routing::any(crate::routes::not_found))
}

/// [`router_with`] where a path no route has gets `fallback` (inside the pipeline, like every
/// route) instead of the API's JSON 404: the dashboard answers a browser's unknown page.
pub fn router_with_fallback(
    state: AppState,
    extra: Router<AppState>,
    fallback: axum::routing::MethodRouter,
) -> Router {
    let routes = crate::routes::routes(&state)
        .merge(extra)
        .fallback_service(fallback)
        .with_state(state.clone());
    crate::pipeline::apply(routes, &state)
}

/// Why serving ended other than by a shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting connections kept failing (not for lack of file descriptors or a client's
    /// reset, which are waited out); open requests were drained first.
    #[error("the HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves until `state.shutdown` fires and in-flight work has drained (or the grace period
/// has passed), or until the listener fails for good.
pub async fn serve(state: AppState, listener: TcpListener) -> Result<(), ServeError> {
    serve_app(state.clone(), router(state), listener).await
}

/// Serves an application built by [`router_with`].
pub async fn serve_app(
    state: AppState,
    app: Router,
    listener: TcpListener,
) -> Result<(), ServeError> {
    let config = &state.hive.config.http;
    crate::connections::serve(
        listener,
        crate::connections::Listener::Api,
        app,
        config.connections.clone(),
        config.trusted_proxies.clone(),
        state.shutdown.clone(),
        config.shutdown_grace,
    )
    .await?;
    Ok(())
}
