//! Instance settings (admin): the security settings, starting with the egress allowlist.

use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use hive_core::kernel::settings::{SecuritySettings, SecurityState};
use hive_proto::settings::{SecuritySettingsView, UpdateSecuritySettings};

fn view(state: &AppState, security: SecurityState) -> SecuritySettingsView {
    SecuritySettingsView {
        egress_host_allowlist: security.settings.egress_host_allowlist,
        operator_egress_host_allowlist: state.hive.egress.operator_allowlist_entries(),
        version: security.version,
    }
}

pub async fn get_security(State(state): State<AppState>) -> Json<SecuritySettingsView> {
    let security = state.hive.settings.security();
    Json(view(&state, security))
}

pub async fn put_security(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<UpdateSecuritySettings>,
) -> Result<Json<SecuritySettingsView>, ApiError> {
    let settings = SecuritySettings {
        egress_host_allowlist: request.egress_host_allowlist,
    };
    let security = state
        .hive
        .settings
        .put_security(&caller, settings, request.version, &meta)
        .await?;
    Ok(Json(view(&state, security)))
}
