//! `GET /api/health`: for load balancers. It says only whether the process (and, with
//! `HEALTH_CHECK_DEEP=true`, its database) answers; never why not.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use hive_proto::HealthResponse;
use http::{StatusCode, header};
use std::time::Duration;

const DEEP_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn health(State(state): State<AppState>) -> Response {
    if !state.hive.config.health_check_deep {
        return Json(HealthResponse { ok: true }).into_response();
    }
    match tokio::time::timeout(DEEP_CHECK_TIMEOUT, state.hive.store.ping()).await {
        Ok(Ok(())) => Json(HealthResponse { ok: true }).into_response(),
        outcome => {
            let reason = match outcome {
                Ok(Err(error)) => error.to_string(),
                _ => "timed out".to_owned(),
            };
            tracing::warn!(%reason, "deep health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                Json(HealthResponse { ok: false }),
            )
                .into_response()
        }
    }
}
