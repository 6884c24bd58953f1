//! Setup, login and sessions, the caller's own account, API tokens, invitations and resets.

use super::views::{page_request, session_view, token_view, user_view};
use crate::auth::{Authenticated, Meta, check_password_size, credential_name, session_cookie};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use hive_core::identity::{LoginOutcome, NewAccount, NewToken};
use hive_core::kernel::caller::Credential;
use hive_proto::ErrorCode;
use hive_proto::auth::{
    AcceptInvitationRequest, ChangePasswordRequest, CreateTokenRequest, CreatedTokenResponse,
    EmailRequest, InvitationView, LoginRequest, MeResponse, NewAccountRequest, PageQuery,
    PageResponse, PasswordRequest, ResetPasswordRequest, SessionView, SetupStatus, TokenRequest,
    TokenView, UpdateMeRequest, UserView,
};
use http::{HeaderMap, StatusCode, header};
use uuid::Uuid;

/// The caller's own account; the internal token has none.
fn own_account(caller: &hive_core::kernel::caller::Caller) -> Result<Uuid, ApiError> {
    caller
        .user_id()
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "no account behind this caller"))
}

fn account(request: NewAccountRequest) -> NewAccount {
    NewAccount {
        email: request.email,
        display_name: request.display_name,
        password: request.password,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/setup/status",
    tag = "auth",
    responses((status = 200, description = "OK.", body = SetupStatus)),
)]
pub async fn setup_status(State(state): State<AppState>) -> Result<Json<SetupStatus>, ApiError> {
    let identity = &state.hive.identity;
    Ok(Json(SetupStatus {
        setup_completed: identity.setup_completed().await?,
        public_registration: identity.settings().allow_public_registration,
    }))
}

/// The setup token: `Authorization: Bearer …` or `X-Hive-Setup-Token`.
fn presented_setup_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-hive-setup-token")
        .or_else(|| headers.get(header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map_or(v, |(_, token)| token)
                .trim()
        })
}

#[utoipa::path(
    post,
    path = "/api/v1/setup",
    tag = "auth",
    request_body = NewAccountRequest,
    responses((status = 201, description = "The first admin.", body = UserView)),
)]
pub async fn setup(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    JsonBody(request): JsonBody<NewAccountRequest>,
) -> Result<Response, ApiError> {
    check_password_size(&request.password)?;
    let admin = state
        .hive
        .identity
        .setup(presented_setup_token(&headers), &account(request), &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(user_view(&admin))).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    request_body = NewAccountRequest,
    responses((status = 201, description = "The new account.", body = UserView)),
)]
pub async fn register(
    State(state): State<AppState>,
    Meta(meta): Meta,
    JsonBody(request): JsonBody<NewAccountRequest>,
) -> Result<Response, ApiError> {
    check_password_size(&request.password)?;
    let user = state
        .hive
        .identity
        .register(&account(request), &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(user_view(&user))).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, description = "Signed in: the session cookie is set.", body = UserView)),
)]
pub async fn login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    check_password_size(&request.password)?;
    let outcome = state
        .hive
        .identity
        .login(&request.email, &request.password, &meta)
        .await?;
    let LoginOutcome::LoggedIn(session) = outcome else {
        return Err(ApiError::of(ErrorCode::InvalidCredentials));
    };
    let cookie = session_cookie(state.hive.config.served_over_https(), Some(&session.token));
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(user_view(&session.user)),
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    responses((status = 204, description = "Signed out.")),
)]
pub async fn logout(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Result<Response, ApiError> {
    state.hive.identity.logout(&caller, &meta).await?;
    let cookie = session_cookie(state.hive.config.served_over_https(), None);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    responses((status = 200, description = "OK.", body = MeResponse)),
)]
pub async fn me(Authenticated(caller): Authenticated) -> Json<MeResponse> {
    Json(MeResponse {
        user: caller.user.as_ref().map(user_view),
        role: caller.role,
        authenticated_by: credential_name(&caller.credential).to_owned(),
        session_stage: match caller.credential {
            Credential::Session { stage, .. } => Some(stage.as_str().to_owned()),
            _ => None,
        },
    })
}

#[utoipa::path(
    patch,
    path = "/api/v1/auth/me",
    tag = "auth",
    request_body = UpdateMeRequest,
    responses((status = 200, description = "OK.", body = UserView)),
)]
pub async fn update_me(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<UpdateMeRequest>,
) -> Result<Json<UserView>, ApiError> {
    own_account(&caller)?;
    let user = state
        .hive
        .identity
        .update_own_profile(
            &caller,
            request.email.as_deref(),
            request.display_name.as_deref(),
            &meta,
        )
        .await?;
    Ok(Json(user_view(&user)))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/reauthenticate",
    tag = "auth",
    request_body = PasswordRequest,
    responses((status = 204, description = "Done.")),
)]
pub async fn reauthenticate(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<PasswordRequest>,
) -> Result<StatusCode, ApiError> {
    check_password_size(&request.password)?;
    state
        .hive
        .identity
        .reauthenticate(&caller, &request.password, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password",
    tag = "auth",
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "Done.")),
)]
pub async fn change_password(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    check_password_size(&request.current_password)?;
    check_password_size(&request.new_password)?;
    state
        .hive
        .identity
        .change_password(
            &caller,
            &request.current_password,
            &request.new_password,
            &meta,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "auth",
    params(PageQuery),
    responses((status = 200, description = "The caller's sessions.", body = PageResponse<SessionView>)),
)]
pub async fn list_sessions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let user_id = own_account(&caller)?;
    let current = match caller.credential {
        Credential::Session { session_id, .. } => Some(session_id),
        _ => None,
    };
    let page = state
        .hive
        .identity
        .list_sessions(user_id, &page_request(&query)?)
        .await?;
    let items = page
        .items
        .iter()
        .map(|s| session_view(s, current == Some(s.id)))
        .collect();
    Ok(Json(PageResponse {
        items,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{id}",
    tag = "auth",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Done.")),
)]
pub async fn revoke_session(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state
        .hive
        .identity
        .revoke_session(&caller, id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "auth",
    params(PageQuery),
    responses((status = 200, description = "The caller's API tokens.", body = PageResponse<TokenView>)),
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let user_id = own_account(&caller)?;
    let page = state
        .hive
        .identity
        .list_tokens(user_id, &page_request(&query)?)
        .await?;
    Ok(Json(PageResponse {
        items: page.items.iter().map(token_view).collect(),
        next_cursor: page.next_cursor,
    })
    .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "auth",
    request_body = CreateTokenRequest,
    responses((status = 201, description = "The token, shown this once.", body = CreatedTokenResponse)),
)]
pub async fn create_token(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<CreateTokenRequest>,
) -> Result<Response, ApiError> {
    let new = NewToken {
        name: request.name,
        role: request.role,
        scopes: request.scopes,
        expires_in_days: request.expires_in_days,
    };
    let created = state
        .hive
        .identity
        .create_token(&caller, &new, &meta)
        .await?;
    let body = CreatedTokenResponse {
        token: created.token,
        view: token_view(&created.row),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "auth",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Done.")),
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.hive.identity.revoke_token(&caller, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/invitation",
    tag = "auth",
    request_body = TokenRequest,
    responses((status = 200, description = "OK.", body = InvitationView)),
)]
pub async fn show_invitation(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<Json<InvitationView>, ApiError> {
    let invitation = state.hive.identity.invitation(&request.token).await?;
    match (invitation.email, invitation.role) {
        (Some(email), Some(role)) => Ok(Json(InvitationView {
            email,
            role,
            expires_at: invitation.expires_at,
        })),
        _ => Err(ApiError::of(ErrorCode::InvalidCredentials)),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/invitation/accept",
    tag = "auth",
    request_body = AcceptInvitationRequest,
    responses((status = 201, description = "The new account.", body = UserView)),
)]
pub async fn accept_invitation(
    State(state): State<AppState>,
    Meta(meta): Meta,
    JsonBody(request): JsonBody<AcceptInvitationRequest>,
) -> Result<Response, ApiError> {
    check_password_size(&request.password)?;
    let user = state
        .hive
        .identity
        .accept_invitation(
            &request.token,
            &request.display_name,
            &request.password,
            &meta,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user_view(&user))).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset",
    tag = "auth",
    request_body = ResetPasswordRequest,
    responses((status = 204, description = "Done.")),
)]
pub async fn reset_password(
    State(state): State<AppState>,
    Meta(meta): Meta,
    JsonBody(request): JsonBody<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    check_password_size(&request.new_password)?;
    state
        .hive
        .identity
        .reset_password(&request.token, &request.new_password, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Always `202`: whether a mail goes out (an active account, `SMTP_URL` set) is not said.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/request",
    tag = "auth",
    request_body = EmailRequest,
    responses((status = 202, description = "Accepted.")),
)]
pub async fn request_password_reset(
    State(state): State<AppState>,
    Meta(meta): Meta,
    JsonBody(request): JsonBody<EmailRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .hive
        .identity
        .request_password_reset(&request.email, &meta)?;
    Ok(StatusCode::ACCEPTED)
}
