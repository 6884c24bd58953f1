//! Backups (admins): make an archive now, list the archives kept.

use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use hive_core::backup::BackupInfo;
use hive_proto::backup::{BackupView, BackupsResponse};
use http::StatusCode;

fn view(info: BackupInfo) -> BackupView {
    BackupView {
        name: info.name,
        bytes: info.bytes,
        created_at: info.created_at,
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/backups",
    tag = "backups",
    responses((status = 201, description = "The archive made, in the server's backup directory (and the S3 target when configured).", body = BackupView), (status = 409, description = "No backup recipient is configured (HIVE_BACKUP_RECIPIENTS).", body = hive_proto::ErrorBody)),
)]
pub async fn create(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Result<(StatusCode, Json<BackupView>), ApiError> {
    let made = state.hive.backups.create(&caller, &meta).await?;
    Ok((StatusCode::CREATED, Json(view(made))))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/backups",
    tag = "backups",
    responses((status = 200, description = "The archives kept in the server's backup directory, newest first.", body = BackupsResponse)),
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<BackupsResponse>, ApiError> {
    let items = state.hive.backups.list(&caller).await?;
    Ok(Json(BackupsResponse {
        items: items.into_iter().map(view).collect(),
    }))
}
