//! The route table.

mod health;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::routing::get;
use hive_proto::ErrorCode;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health::health))
        .fallback(|| async { ApiError::of(ErrorCode::NotFound) })
}
