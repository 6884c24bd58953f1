//! Workflows on the wire: definitions and their versions, runs and their steps, and the
//! requests that start, decide and follow them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A workflow, without its document (see [`WorkflowVersionView`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowView {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub description: String,
    pub latest_version: i64,
    pub enabled: bool,
    /// Whether a webhook secret is set (the secret itself is shown once, when set).
    pub webhook_secret_set: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

/// One version of a workflow: its document as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowVersionView {
    pub version: i64,
    pub document: Value,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// What a save did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSavedView {
    pub workflow: WorkflowView,
    /// The version the save made.
    pub version: i64,
    /// Whether the save created the workflow.
    pub created: bool,
}

/// One problem of a document, naming its node and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemView {
    pub node: Option<String>,
    pub rule: String,
    pub message: String,
}

/// `POST /api/v1/workflows/validate`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationView {
    pub valid: bool,
    pub problems: Vec<ProblemView>,
}

/// `POST /api/v1/workflows/{id}/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartRunRequest {
    /// The run's input (an object; `{}` when absent).
    #[serde(default)]
    pub input: Option<Value>,
}

/// `PATCH /api/v1/workflows/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowPatch {
    pub enabled: bool,
}

/// `POST /api/v1/workflow-runs/{id}/approvals/{node}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionRequest {
    pub approve: bool,
    #[serde(default)]
    pub comment: Option<String>,
}

/// The webhook secret, shown once when set.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSecretView {
    pub secret: String,
    /// The header a signed call carries.
    pub header: String,
}

crate::debug_redacted!(WebhookSecretView {
    show: [header],
    hide: [secret]
});

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: String,
    pub workflow_id: String,
    pub version: i64,
    /// queued, running, waiting, succeeded, failed or cancelled.
    pub status: String,
    /// manual, webhook, schedule, a2a or workflow.
    pub trigger: String,
    /// The user the run acts as.
    pub run_as_user: String,
    /// The API token it acts through, if it came with one.
    pub run_as_token: Option<String>,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub parent_run_id: Option<String>,
    pub parent_step: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub deadline_at: time::OffsetDateTime,
    /// For a waiting run: when it is due again (absent: when a decision or a sub-workflow
    /// ends).
    #[serde(with = "time::serde::rfc3339::option")]
    pub wake_at: Option<time::OffsetDateTime>,
}

/// One step of a run's journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    /// The node's id, or `node[i]` for item `i` of a map.
    pub key: String,
    pub node: String,
    /// running, waiting, succeeded, failed, skipped or cancelled.
    pub status: String,
    pub attempt: i64,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub branch: Option<String>,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub wake_at: Option<time::OffsetDateTime>,
}

/// A run with its journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunDetailView {
    pub run: RunView,
    pub steps: Vec<StepView>,
}

/// An approval waiting for the caller's decision (`GET /api/v1/workflow-approvals`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingApprovalView {
    pub run: RunView,
    /// The workflow's name.
    pub workflow: String,
    /// The approval node, as the decision names it.
    pub node: String,
    /// The message the step rendered.
    pub message: String,
    /// When the step started waiting.
    #[serde(with = "time::serde::rfc3339")]
    pub waiting_since: time::OffsetDateTime,
}

/// `GET /api/v1/workflow-approvals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingApprovalsView {
    pub items: Vec<PendingApprovalView>,
}

/// `POST /api/v1/workflows/import`: a Pilox graph in, a Hive document and what did not map out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportRequest {
    pub graph: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportNoteView {
    pub node: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportView {
    pub document: Value,
    pub notes: Vec<ImportNoteView>,
}
