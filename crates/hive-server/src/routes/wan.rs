//! The WAN mesh: `POST /api/v1/mesh/wan/ingress` (operator, or the internal token) accepts a
//! `wan-envelope-v1` and publishes it on the event bus and, with `NATS_URL`, on JetStream.

use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use hive_proto::wan::{WanEnvelope, WanIngressAccepted};
use http::StatusCode;

#[utoipa::path(
    post,
    path = "/api/v1/mesh/wan/ingress",
    tag = "wan",
    request_body = WanEnvelope,
    responses((status = 202, description = "Accepted.", body = WanIngressAccepted)),
)]
pub async fn ingress(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(envelope): JsonBody<WanEnvelope>,
) -> Result<(StatusCode, Json<WanIngressAccepted>), ApiError> {
    let id = envelope.id.clone();
    let published = state.hive.wan.accept(envelope, &caller, &meta).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(WanIngressAccepted { id, published }),
    ))
}
