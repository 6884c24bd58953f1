//! Serving with a graceful shutdown: when the shutdown token fires, stop accepting, let
//! in-flight requests and streams finish for up to `HIVE_SHUTDOWN_GRACE_SECONDS`, then close
//! what is left.

use crate::state::AppState;
use axum::Router;
use std::future::IntoFuture;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The whole application: routes wrapped in the pipeline.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The application with `extra` routes merged in, behind the same pipeline (embedders and the
/// test kit use it).
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let routes = crate::routes::routes(&state)
        .merge(extra)
        .with_state(state.clone());
    crate::pipeline::apply(routes, &state)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the HTTP server task stopped unexpectedly")]
    Task,
}

/// Serves until `state.shutdown` fires and in-flight work has drained (or the grace period
/// has passed).
pub async fn serve(state: AppState, listener: TcpListener) -> Result<(), ServeError> {
    serve_app(state.clone(), router(state), listener).await
}

/// Serves an application built by [`router_with`].
pub async fn serve_app(
    state: AppState,
    app: Router,
    listener: TcpListener,
) -> Result<(), ServeError> {
    let grace = state.hive.config.http.shutdown_grace;
    let shutdown = state.shutdown.clone();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    let mut running = tokio::spawn(server);
    tokio::select! {
        joined = &mut running => return joined.map_err(|_| ServeError::Task)?.map_err(Into::into),
        () = shutdown.cancelled() => {}
    }
    tracing::info!(
        grace_seconds = grace.as_secs(),
        "shutting down: draining in-flight requests"
    );
    match tokio::time::timeout(grace, &mut running).await {
        Ok(joined) => joined.map_err(|_| ServeError::Task)?.map_err(Into::into),
        Err(_) => {
            tracing::warn!("grace period over; closing the connections still open");
            running.abort();
            Ok(())
        }
    }
}
