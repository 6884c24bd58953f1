//! The secrets API (operator and up; operators reach their own, admins all). Values go in,
//! never out.

use super::views::page_request;
use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use hive_core::vault::secrets::{ImportedSecret, NewSecret, SecretChange};
use hive_proto::auth::{PageQuery, PageResponse};
use hive_proto::secrets::{
    CreateSecretRequest, ImportSecretRequest, SecretView, UpdateSecretRequest,
};
use hive_store::SecretRow;
use http::StatusCode;
use uuid::Uuid;
use zeroize::Zeroizing;

/// A secret as the API shows it (never its value).
pub fn view(secret: &SecretRow) -> SecretView {
    SecretView {
        id: secret.id.to_string(),
        owner_id: secret.owner_id.to_string(),
        name: secret.name.clone(),
        description: secret.description.clone(),
        version: secret.version,
        has_value: true,
        created_at: secret.created_at,
        updated_at: secret.updated_at,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/secrets",
    tag = "secrets",
    params(PageQuery),
    responses((status = 200, description = "OK.", body = PageResponse<SecretView>)),
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageResponse<SecretView>>, ApiError> {
    let page = state
        .hive
        .secrets_service
        .list(&caller, &page_request(&query)?)
        .await?;
    Ok(Json(PageResponse {
        items: page.items.iter().map(view).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/secrets",
    tag = "secrets",
    request_body = CreateSecretRequest,
    responses((status = 201, description = "The secret (never its value).", body = SecretView)),
)]
pub async fn create(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<CreateSecretRequest>,
) -> Result<Response, ApiError> {
    let new = NewSecret {
        name: request.name,
        description: request.description,
        value: Zeroizing::new(request.value),
    };
    let created = state
        .hive
        .secrets_service
        .create(&caller, &new, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&created))).into_response())
}

/// Decrypts a value in the seeds' format with the key given and stores it as a new secret.
#[utoipa::path(
    post,
    path = "/api/v1/secrets/import",
    tag = "secrets",
    request_body = ImportSecretRequest,
    responses((status = 201, description = "The secret (never its value).", body = SecretView)),
)]
pub async fn import(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<ImportSecretRequest>,
) -> Result<Response, ApiError> {
    let imported = ImportedSecret {
        name: request.name,
        description: request.description,
        value: Zeroizing::new(request.value),
        key: Zeroizing::new(request.key),
    };
    let created = state
        .hive
        .secrets_service
        .import(&caller, &imported, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&created))).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/secrets/{id}",
    tag = "secrets",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = SecretView)),
)]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<SecretView>, ApiError> {
    let secret = state.hive.secrets_service.get(&caller, id).await?;
    Ok(Json(view(&secret)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/secrets/{id}",
    tag = "secrets",
    params(("id" = Uuid, Path)),
    request_body = UpdateSecretRequest,
    responses((status = 200, description = "OK.", body = SecretView)),
)]
pub async fn update(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<UpdateSecretRequest>,
) -> Result<Json<SecretView>, ApiError> {
    let change = SecretChange {
        description: request.description,
        value: request.value.map(Zeroizing::new),
    };
    let updated = state
        .hive
        .secrets_service
        .update(&caller, id, &change, &meta)
        .await?;
    Ok(Json(view(&updated)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/secrets/{id}",
    tag = "secrets",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Done.")),
)]
pub async fn delete(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state
        .hive
        .secrets_service
        .delete(&caller, id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
