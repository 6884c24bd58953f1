//! Bodies of the settings API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/v1/settings/security`: what this replica applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySettingsView {
    /// The admin's allowlist, as stored (canonical form).
    pub egress_host_allowlist: Vec<String>,
    /// `HIVE_EGRESS_FETCH_HOST_ALLOWLIST`, merged with the list above; read-only here.
    pub operator_egress_host_allowlist: Vec<String>,
    /// The stored version (`null` before the first change); send it back with a change.
    pub version: Option<i64>,
}

/// `PUT /api/v1/settings/security`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSecuritySettings {
    pub egress_host_allowlist: Vec<String>,
    /// The version this change replaces (`null` or absent for the first change).
    #[serde(default)]
    pub version: Option<i64>,
}

/// `GET /api/v1/settings/workflows`: what this replica applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSettingsView {
    /// The admins' word on code nodes: `inherit` (the configuration's default), `off`, `allow`.
    pub workflow_code_nodes: String,
    /// Whether code nodes are on by the configuration alone (`HIVE_WORKFLOW_DISABLE_CODE_NODE`,
    /// unset: off in production, on otherwise); read-only here.
    pub code_nodes_default: bool,
    /// `HIVE_WORKFLOW_DISABLE_CODE_NODE=true`: off whatever the setting says; read-only here.
    pub code_nodes_forced_off: bool,
    /// Whether code nodes may be saved and run now.
    pub code_nodes_allowed: bool,
    /// The stored version (`null` before the first change); send it back with a change.
    pub version: Option<i64>,
}

/// `PUT /api/v1/settings/workflows`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWorkflowSettings {
    /// `inherit`, `off` or `allow`.
    pub workflow_code_nodes: String,
    /// The version this change replaces (`null` or absent for the first change).
    #[serde(default)]
    pub version: Option<i64>,
}
