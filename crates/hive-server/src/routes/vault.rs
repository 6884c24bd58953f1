//! Vault key administration (admins): rotation and the list of data keys with their use.

use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use hive_proto::secrets::{ReencryptResponse, RotateKeyResponse, VaultKeyView, VaultKeysResponse};

#[utoipa::path(
    get,
    path = "/api/v1/admin/vault/keys",
    tag = "vault",
    responses((status = 200, description = "OK.", body = VaultKeysResponse)),
)]
pub async fn list_keys(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<VaultKeysResponse>, ApiError> {
    let keys = state.hive.key_admin.keys(&caller).await?;
    Ok(Json(VaultKeysResponse {
        items: keys
            .into_iter()
            .map(|key| VaultKeyView {
                id: key.id,
                created_at: key.created_at,
                active: key.active,
                retired_at: key.retired_at,
                secrets: key.secrets,
                encryptions_reserved: key.encryptions_reserved,
            })
            .collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/vault/rotate",
    tag = "vault",
    responses((status = 200, description = "OK.", body = RotateKeyResponse)),
)]
pub async fn rotate(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Result<Json<RotateKeyResponse>, ApiError> {
    let rotation = state.hive.key_admin.rotate(&caller, &meta).await?;
    Ok(Json(RotateKeyResponse {
        key_id: rotation.active_key_id,
        previous_key_id: rotation.previous_key_id,
        created: rotation.created,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/vault/reencrypt",
    tag = "vault",
    responses((status = 200, description = "What re-sealing under the active key did.", body = ReencryptResponse)),
)]
pub async fn reencrypt(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Result<Json<ReencryptResponse>, ApiError> {
    let report = state.hive.key_admin.reencrypt(&caller, &meta).await?;
    Ok(Json(super::views::reencrypt_view(&report)))
}
