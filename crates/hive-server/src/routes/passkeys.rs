//! Passkeys (WebAuthn): the caller's own passkeys, a passkey as the second factor of a session,
//! and passwordless login. Every ceremony is a `…/start` (options for the browser and a
//! ceremony id) and a `…/finish` (the browser's answer with that id); its state stays on the
//! server.

use super::views::user_view;
use crate::auth::{Authenticated, Meta, session_cookie};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use hive_core::identity::CeremonyStart;
use hive_proto::auth::{PageResponse, UserView};
use hive_proto::passkeys::{
    FinishPasskeyAssertion, FinishPasskeyRegistration, PasskeyCeremony, PasskeyView,
    RenamePasskeyRequest,
};
use hive_store::PasskeyRow;
use http::{StatusCode, header};
use uuid::Uuid;

fn passkey_view(row: &PasskeyRow) -> PasskeyView {
    PasskeyView {
        id: row.id.to_string(),
        name: row.name.clone(),
        credential_id: row.credential_id.clone(),
        backup_eligible: row.backup_eligible,
        backed_up: row.backup_state,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
    }
}

fn ceremony(start: CeremonyStart) -> Json<PasskeyCeremony> {
    Json(PasskeyCeremony {
        ceremony_id: start.ceremony_id,
        public_key: start.public_key,
        mediation: start.mediation,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/passkeys",
    tag = "passkeys",
    responses((status = 200, description = "OK.", body = PageResponse<PasskeyView>)),
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<PageResponse<PasskeyView>>, ApiError> {
    let rows = state.hive.passkeys.list(&caller).await?;
    Ok(Json(PageResponse {
        items: rows.iter().map(passkey_view).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkeys/register/start",
    tag = "passkeys",
    responses((status = 200, description = "OK.", body = PasskeyCeremony)),
)]
pub async fn register_start(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<PasskeyCeremony>, ApiError> {
    let start = state.hive.passkeys.start_registration(&caller).await?;
    Ok(ceremony(start))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkeys/register/finish",
    tag = "passkeys",
    request_body = FinishPasskeyRegistration,
    responses((status = 201, description = "The passkey.", body = PasskeyView)),
)]
pub async fn register_finish(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<FinishPasskeyRegistration>,
) -> Result<Response, ApiError> {
    let row = state
        .hive
        .passkeys
        .finish_registration(
            &caller,
            &request.ceremony_id,
            request.credential,
            request.name.as_deref(),
            &meta,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(passkey_view(&row))).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/auth/passkeys/{id}",
    tag = "passkeys",
    params(("id" = Uuid, Path)),
    request_body = RenamePasskeyRequest,
    responses((status = 200, description = "OK.", body = PasskeyView)),
)]
pub async fn rename(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<RenamePasskeyRequest>,
) -> Result<Json<PasskeyView>, ApiError> {
    let row = state
        .hive
        .passkeys
        .rename(&caller, id, &request.name, &meta)
        .await?;
    Ok(Json(passkey_view(&row)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/passkeys/{id}",
    tag = "passkeys",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Done.")),
)]
pub async fn delete(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.hive.passkeys.delete(&caller, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/passkey/start",
    tag = "passkeys",
    responses((status = 200, description = "OK.", body = PasskeyCeremony)),
)]
pub async fn second_factor_start(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<PasskeyCeremony>, ApiError> {
    let start = state.hive.passkeys.start_second_factor(&caller).await?;
    Ok(ceremony(start))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/passkey/finish",
    tag = "passkeys",
    request_body = FinishPasskeyAssertion,
    responses((status = 204, description = "Done.")),
)]
pub async fn second_factor_finish(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<FinishPasskeyAssertion>,
) -> Result<StatusCode, ApiError> {
    state
        .hive
        .passkeys
        .finish_second_factor(&caller, &request.ceremony_id, request.credential, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkey-login/start",
    tag = "passkeys",
    responses((status = 200, description = "OK.", body = PasskeyCeremony)),
)]
pub async fn login_start(State(state): State<AppState>) -> Result<Json<PasskeyCeremony>, ApiError> {
    let start = state.hive.passkeys.start_login().await?;
    Ok(ceremony(start))
}

/// Signs in like `POST /api/v1/auth/login`: the session cookie and the user.
#[utoipa::path(
    post,
    path = "/api/v1/auth/passkey-login/finish",
    tag = "passkeys",
    request_body = FinishPasskeyAssertion,
    responses((status = 200, description = "Signed in: the session cookie is set.", body = UserView)),
)]
pub async fn login_finish(
    State(state): State<AppState>,
    Meta(meta): Meta,
    JsonBody(request): JsonBody<FinishPasskeyAssertion>,
) -> Result<Response, ApiError> {
    let session = state
        .hive
        .passkeys
        .finish_login(&request.ceremony_id, request.credential, &meta)
        .await?;
    let cookie = session_cookie(state.hive.config.served_over_https(), Some(&session.token));
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(user_view(&session.user)),
    )
        .into_response())
}
