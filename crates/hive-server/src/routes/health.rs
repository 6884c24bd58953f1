//! `GET /api/health`: for load balancers. It says only whether the process (and, with
//! `HEALTH_CHECK_DEEP=true`, what it depends on: its database) answers; never why not.
//! `GET /api/v1/system/health`: for operators (viewers and above), each component's state
//! and reason code.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use hive_proto::{ComponentState, HealthResponse, SystemHealth};
use http::{StatusCode, header};

#[utoipa::path(
    get,
    path = "/api/health",
    tag = "health",
    responses((status = 200, description = "The process answers.", body = HealthResponse), (status = 503, description = "A dependency does not answer (deep check only).", body = HealthResponse)),
)]
pub async fn health(State(state): State<AppState>) -> Response {
    if !state.hive.config.health_check_deep {
        return Json(HealthResponse { ok: true }).into_response();
    }
    match state.hive.check_dependencies().await {
        Ok(()) => Json(HealthResponse { ok: true }).into_response(),
        Err(reason) => {
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

/// 200 while every required component answers, else 503 (with the same body).
#[utoipa::path(
    get,
    path = "/api/v1/system/health",
    tag = "health",
    responses((status = 200, description = "Every required dependency answers.", body = SystemHealth), (status = 503, description = "A required dependency is down.", body = SystemHealth)),
)]
pub async fn system_health(State(state): State<AppState>) -> Response {
    let report = state.hive.system_health().await;
    if report.state == ComponentState::Down {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(report),
        )
            .into_response()
    } else {
        Json(report).into_response()
    }
}
