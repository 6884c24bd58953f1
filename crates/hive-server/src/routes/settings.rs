//! Instance settings (admin): the security settings, starting with the egress allowlist, and
//! the workflow settings (whether code nodes may be saved and run).

use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use hive_core::kernel::settings::{
    CodeNodesOverride, SecuritySettings, SecurityState, SettingsError, WorkflowSettings,
    WorkflowState,
};
use hive_proto::settings::{
    SecuritySettingsView, UpdateSecuritySettings, UpdateWorkflowSettings, WorkflowSettingsView,
};

fn view(state: &AppState, security: SecurityState) -> SecuritySettingsView {
    SecuritySettingsView {
        egress_host_allowlist: security.settings.egress_host_allowlist,
        operator_egress_host_allowlist: state.hive.egress.operator_allowlist_entries(),
        version: security.version,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/settings/security",
    tag = "settings",
    responses((status = 200, description = "OK.", body = SecuritySettingsView)),
)]
pub async fn get_security(State(state): State<AppState>) -> Json<SecuritySettingsView> {
    let security = state.hive.settings.security();
    Json(view(&state, security))
}

#[utoipa::path(
    put,
    path = "/api/v1/settings/security",
    tag = "settings",
    request_body = UpdateSecuritySettings,
    responses((status = 200, description = "OK.", body = SecuritySettingsView)),
)]
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

fn workflows_view(state: &AppState, workflows: WorkflowState) -> WorkflowSettingsView {
    let gate = state.hive.settings.code_nodes();
    let default = gate.default_of_configuration();
    WorkflowSettingsView {
        workflow_code_nodes: workflows.settings.workflow_code_nodes.as_str().to_owned(),
        code_nodes_default: default.on,
        code_nodes_forced_off: default.forced_off,
        code_nodes_allowed: gate.allowed(),
        version: workflows.version,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/settings/workflows",
    tag = "settings",
    responses((status = 200, description = "OK.", body = WorkflowSettingsView)),
)]
pub async fn get_workflows(State(state): State<AppState>) -> Json<WorkflowSettingsView> {
    let workflows = state.hive.settings.workflows();
    Json(workflows_view(&state, workflows))
}

#[utoipa::path(
    put,
    path = "/api/v1/settings/workflows",
    tag = "settings",
    request_body = UpdateWorkflowSettings,
    responses((status = 200, description = "OK.", body = WorkflowSettingsView)),
)]
pub async fn put_workflows(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<UpdateWorkflowSettings>,
) -> Result<Json<WorkflowSettingsView>, ApiError> {
    let code_nodes = match request.workflow_code_nodes.as_str() {
        "inherit" => CodeNodesOverride::Inherit,
        "off" => CodeNodesOverride::Off,
        "allow" => CodeNodesOverride::Allow,
        _ => {
            return Err(SettingsError::Invalid(
                "workflowCodeNodes is inherit, off or allow".to_owned(),
            )
            .into());
        }
    };
    let settings = WorkflowSettings {
        workflow_code_nodes: code_nodes,
    };
    let workflows = state
        .hive
        .settings
        .put_workflows(&caller, settings, request.version, &meta)
        .await?;
    Ok(Json(workflows_view(&state, workflows)))
}
