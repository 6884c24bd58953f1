//! Administration of accounts (admin role) and the audit trail.

use super::views::{audit_view, page_request, user_view};
use crate::auth::{Authenticated, Meta, identity_error};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use hive_core::identity::{AccountUpdate, InvitationLink};
use hive_proto::ErrorCode;
use hive_proto::auth::{
    AuditView, InviteRequest, LinkResponse, PageQuery, PageResponse, UpdateUserRequest, UserView,
};
use http::StatusCode;
use uuid::Uuid;

fn link_response(link: InvitationLink) -> Response {
    let body = LinkResponse {
        id: link.id.to_string(),
        url: link.url,
        expires_at: link.expires_at,
    };
    (StatusCode::CREATED, Json(body)).into_response()
}

pub async fn list_users(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageResponse<UserView>>, ApiError> {
    let page = state
        .hive
        .identity
        .list_users(&page_request(&query)?)
        .await
        .map_err(identity_error)?;
    Ok(Json(PageResponse {
        items: page.items.iter().map(user_view).collect(),
        next_cursor: page.next_cursor,
    }))
}

pub async fn get_user(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<UserView>, ApiError> {
    let user = state
        .hive
        .identity
        .get_user(id)
        .await
        .map_err(identity_error)?;
    Ok(Json(user_view(&user)))
}

pub async fn update_user(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    let update = AccountUpdate {
        display_name: request.display_name,
        role: request.role,
        active: request.active,
    };
    let user = state
        .hive
        .identity
        .update_user(&caller, id, &update, &meta)
        .await
        .map_err(identity_error)?;
    Ok(Json(user_view(&user)))
}

pub async fn invite(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<InviteRequest>,
) -> Result<Response, ApiError> {
    let link = state
        .hive
        .identity
        .invite(&caller, &request.email, request.role, &meta)
        .await
        .map_err(identity_error)?;
    Ok(link_response(link))
}

pub async fn reset_link(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let link = state
        .hive
        .identity
        .create_reset_link(&caller, id, &meta)
        .await
        .map_err(identity_error)?;
    Ok(link_response(link))
}

pub async fn end_sessions(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ended = state
        .hive
        .identity
        .revoke_all_sessions(&caller, id, &meta)
        .await
        .map_err(identity_error)?;
    Ok(Json(serde_json::json!({ "ended": ended })))
}

pub async fn audit_trail(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageResponse<AuditView>>, ApiError> {
    if query.action.as_ref().is_some_and(|a| a.len() > 100) {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "action is too long",
        ));
    }
    let page = state
        .hive
        .store
        .audit()
        .list(query.action.as_deref(), &page_request(&query)?)
        .await
        .map_err(|error| identity_error(error.into()))?;
    Ok(Json(PageResponse {
        items: page.items.iter().map(audit_view).collect(),
        next_cursor: page.next_cursor,
    }))
}
