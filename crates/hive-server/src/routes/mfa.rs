//! Second factors: the caller's TOTP and recovery codes, the verification of a session, and an
//! admin's reset of a user's factors.

use crate::auth::{Authenticated, Meta, check_code_size};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use hive_core::identity::mfa::RecoveryCode;
use hive_proto::mfa::{
    MfaCodeRequest, MfaStatusView, RecoveryCodesView, TotpEnrollmentView, TotpStartRequest,
};
use http::StatusCode;
use uuid::Uuid;

fn codes_view(codes: &[RecoveryCode]) -> RecoveryCodesView {
    RecoveryCodesView {
        recovery_codes: codes.iter().map(|c| c.as_str().to_owned()).collect(),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/mfa",
    tag = "mfa",
    responses((status = 200, description = "OK.", body = MfaStatusView)),
)]
pub async fn status(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<MfaStatusView>, ApiError> {
    let status = state.hive.mfa.status(&caller).await?;
    Ok(Json(MfaStatusView {
        totp: status.totp.as_str().to_owned(),
        passkeys: status.passkeys,
        recovery_codes_left: status.recovery_codes_left,
        required: status.required,
        session_stage: status.stage.as_str().to_owned(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/verify",
    tag = "mfa",
    request_body = MfaCodeRequest,
    responses((status = 204, description = "Done.")),
)]
pub async fn verify(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<MfaCodeRequest>,
) -> Result<StatusCode, ApiError> {
    check_code_size(&request.code)?;
    state.hive.mfa.verify(&caller, &request.code, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/totp",
    tag = "mfa",
    request_body = TotpStartRequest,
    responses((status = 201, description = "Created.", body = TotpEnrollmentView)),
)]
pub async fn start_totp(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<TotpStartRequest>,
) -> Result<(StatusCode, Json<TotpEnrollmentView>), ApiError> {
    if let Some(code) = &request.code {
        check_code_size(code)?;
    }
    let enrollment = state
        .hive
        .mfa
        .start_totp(&caller, request.code.as_deref(), &meta)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrollmentView {
            secret: enrollment.secret.to_string(),
            otpauth_uri: enrollment.otpauth_uri.to_string(),
            qr_svg: enrollment.qr_svg.to_string(),
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/totp/confirm",
    tag = "mfa",
    request_body = MfaCodeRequest,
    responses((status = 200, description = "OK.", body = RecoveryCodesView)),
)]
pub async fn confirm_totp(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<MfaCodeRequest>,
) -> Result<Json<RecoveryCodesView>, ApiError> {
    check_code_size(&request.code)?;
    let codes = state
        .hive
        .mfa
        .confirm_totp(&caller, &request.code, &meta)
        .await?;
    Ok(Json(codes_view(&codes)))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/totp/disable",
    tag = "mfa",
    request_body = MfaCodeRequest,
    responses((status = 204, description = "Done.")),
)]
pub async fn disable_totp(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<MfaCodeRequest>,
) -> Result<StatusCode, ApiError> {
    check_code_size(&request.code)?;
    state
        .hive
        .mfa
        .disable_totp(&caller, &request.code, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/recovery-codes",
    tag = "mfa",
    responses((status = 200, description = "OK.", body = RecoveryCodesView)),
)]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Result<Json<RecoveryCodesView>, ApiError> {
    let codes = state
        .hive
        .mfa
        .regenerate_recovery_codes(&caller, &meta)
        .await?;
    Ok(Json(codes_view(&codes)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/mfa",
    tag = "mfa",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Done.")),
)]
pub async fn reset_user(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.hive.mfa.reset(&caller, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
