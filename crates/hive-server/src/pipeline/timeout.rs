use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hive_proto::ErrorCode;

/// Bounds the time to produce the response head. A stream that has started is not cut: it
/// ends with its own logic or at shutdown.
pub async fn limit_time(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.pipeline.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("request timed out");
            ApiError::of(ErrorCode::RequestTimeout)
                .with_retry_after(1)
                .into_response()
        }
    }
}
