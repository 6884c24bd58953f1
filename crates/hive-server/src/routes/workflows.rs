//! Workflows (operator and up; operators reach their own, admins all): documents and their
//! versions, validation and import, runs started by hand, their history and journal (followed
//! as Server-Sent Events), cancel, retry and approvals; and the public webhook trigger, which
//! only a valid signature passes.

use super::users::query_error;
use super::views::page_request;
use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::json::{JsonBody, read_body};
use crate::request::ClientIp;
use crate::state::AppState;
use crate::streams::event_stream_response;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use bytes::Bytes;
use hive_core::workflows::definition::Problems;
use hive_core::workflows::service::{Progress, Saved, WebhookError};
use hive_core::workflows::webhook::{SIGNATURE_HEADER, SignatureRefusal};
use hive_proto::ErrorCode;
use hive_proto::auth::{PageQuery, PageResponse};
use hive_proto::workflows::{
    DecisionRequest, ImportNoteView, ImportRequest, ImportView, PendingApprovalView,
    PendingApprovalsView, ProblemView, RunDetailView, RunView, StartRunRequest, StepView,
    ValidationView, WebhookSecretView, WorkflowPatch, WorkflowSavedView, WorkflowVersionView,
    WorkflowView,
};
use hive_store::{
    MAX_WORKFLOW_DOCUMENT_BYTES, RunFilter, RunRow, RunStatus, RunTrigger, StepRow, WorkflowRow,
    WorkflowVersionRow,
};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

fn json_of(text: Option<&str>) -> Option<Value> {
    text.map(|text| serde_json::from_str(text).unwrap_or(Value::String(text.to_owned())))
}

pub fn workflow_view(row: &WorkflowRow) -> WorkflowView {
    WorkflowView {
        id: row.id.to_string(),
        owner_id: row.owner_id.to_string(),
        name: row.name.clone(),
        description: row.description.clone(),
        latest_version: row.latest_version,
        enabled: row.enabled,
        webhook_secret_set: row.webhook_secret.is_some(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn version_view(row: WorkflowVersionRow) -> WorkflowVersionView {
    WorkflowVersionView {
        version: row.version,
        document: serde_json::from_str(&row.document).unwrap_or(Value::Null),
        created_by: row.created_by.map(|id| id.to_string()),
        created_at: row.created_at,
    }
}

pub fn run_view(row: &RunRow) -> RunView {
    RunView {
        id: row.id.to_string(),
        workflow_id: row.workflow_id.to_string(),
        version: row.version,
        status: row.status.as_str().to_owned(),
        trigger: row.trigger.as_str().to_owned(),
        run_as_user: row.principal_user.to_string(),
        run_as_token: row.principal_token.map(|id| id.to_string()),
        input: serde_json::from_str(&row.input).unwrap_or(Value::Null),
        output: json_of(row.output.as_deref()),
        error: row.error.clone(),
        parent_run_id: row.parent_run.map(|id| id.to_string()),
        parent_step: row.parent_step.clone(),
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        deadline_at: row.deadline_at,
        wake_at: row.wake_at,
    }
}

pub fn step_view(row: &StepRow) -> StepView {
    StepView {
        key: row.step_key.clone(),
        node: row.node_id.clone(),
        status: row.status.as_str().to_owned(),
        attempt: row.attempt,
        input: json_of(row.input.as_deref()),
        output: json_of(row.output.as_deref()),
        branch: row.branch.clone(),
        error: row.error.clone(),
        started_at: row.started_at,
        finished_at: row.finished_at,
        wake_at: row.wake_at,
    }
}

fn saved_view(saved: Saved) -> (StatusCode, Json<WorkflowSavedView>) {
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(WorkflowSavedView {
            workflow: workflow_view(&saved.workflow),
            version: saved.version.version,
            created: saved.created,
        }),
    )
}

fn problem_views(problems: Problems) -> Vec<ProblemView> {
    problems
        .0
        .into_iter()
        .map(|problem| ProblemView {
            node: problem.node,
            rule: problem.rule.to_owned(),
            message: problem.message,
        })
        .collect()
}

/// The document of a save: the body, JSON text of at most 256 KiB.
async fn document(request: Request) -> Result<String, ApiError> {
    let body = read_body(request.into_body(), MAX_WORKFLOW_DOCUMENT_BYTES).await?;
    String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::new(
            ErrorCode::ValidationFailed,
            "the document must be UTF-8 JSON",
        )
    })
}

/// `GET /api/v1/workflows`.
#[utoipa::path(
    get,
    path = "/api/v1/workflows",
    tag = "workflows",
    params(PageQuery),
    responses((status = 200, description = "OK.", body = PageResponse<WorkflowView>)),
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<PageResponse<WorkflowView>>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let page = state
        .hive
        .workflows
        .list(&caller, &page_request(&query)?)
        .await?;
    Ok(Json(PageResponse {
        items: page.items.iter().map(workflow_view).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `POST /api/v1/workflows`: the document as the body; the caller's workflow of its name gets
/// a new version, or is created (201).
#[utoipa::path(
    post,
    path = "/api/v1/workflows",
    tag = "workflows",
    request_body(content = Object, description = "The workflow document (JSON).", content_type = "application/json"),
    responses((status = 201, description = "A new workflow.", body = WorkflowSavedView), (status = 200, description = "A new version of the workflow.", body = WorkflowSavedView)),
)]
pub async fn apply(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    request: Request,
) -> Result<(StatusCode, Json<WorkflowSavedView>), ApiError> {
    let document = document(request).await?;
    let saved = state
        .hive
        .workflows
        .apply(&caller, &document, &meta)
        .await?;
    Ok(saved_view(saved))
}

/// `POST /api/v1/workflows/validate`: every problem of the document, saving nothing.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/validate",
    tag = "workflows",
    request_body(content = Object, description = "The workflow document (JSON).", content_type = "application/json"),
    responses((status = 200, description = "OK.", body = ValidationView)),
)]
pub async fn validate(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    request: Request,
) -> Result<Json<ValidationView>, ApiError> {
    let document = document(request).await?;
    Ok(Json(
        match state.hive.workflows.check(&caller, &document).await {
            Ok(_) => ValidationView {
                valid: true,
                problems: Vec::new(),
            },
            Err(problems) => ValidationView {
                valid: false,
                problems: problem_views(problems),
            },
        },
    ))
}

/// `POST /api/v1/workflows/import`: a Pilox graph converted, with what did not map.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/import",
    tag = "workflows",
    request_body = ImportRequest,
    responses((status = 200, description = "OK.", body = ImportView)),
)]
pub async fn import(
    Authenticated(_caller): Authenticated,
    JsonBody(request): JsonBody<ImportRequest>,
) -> Result<Json<ImportView>, ApiError> {
    let report = hive_core::workflows::import::import_pilox(&request.graph);
    Ok(Json(ImportView {
        document: report.document,
        notes: report
            .notes
            .into_iter()
            .map(|note| ImportNoteView {
                node: note.node,
                reason: note.reason,
            })
            .collect(),
    }))
}

/// `GET /api/v1/workflows/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{id}",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = WorkflowView)),
)]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<WorkflowView>, ApiError> {
    let workflow = state.hive.workflows.get(&caller, id).await?;
    Ok(Json(workflow_view(&workflow)))
}

/// `PUT /api/v1/workflows/{id}`: a new version (the document as the body).
#[utoipa::path(
    put,
    path = "/api/v1/workflows/{id}",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    request_body(content = Object, description = "The workflow document (JSON).", content_type = "application/json"),
    responses((status = 201, description = "A new workflow.", body = WorkflowSavedView), (status = 200, description = "A new version of the workflow.", body = WorkflowSavedView)),
)]
pub async fn update(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    request: Request,
) -> Result<(StatusCode, Json<WorkflowSavedView>), ApiError> {
    let document = document(request).await?;
    let saved = state
        .hive
        .workflows
        .update(&caller, id, &document, &meta)
        .await?;
    Ok(saved_view(saved))
}

/// `PATCH /api/v1/workflows/{id}`: `{"enabled": bool}`.
#[utoipa::path(
    patch,
    path = "/api/v1/workflows/{id}",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    request_body = WorkflowPatch,
    responses((status = 200, description = "OK.", body = WorkflowView)),
)]
pub async fn patch(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<WorkflowPatch>,
) -> Result<Json<WorkflowView>, ApiError> {
    let workflow = state
        .hive
        .workflows
        .set_enabled(&caller, id, request.enabled, &meta)
        .await?;
    Ok(Json(workflow_view(&workflow)))
}

/// `DELETE /api/v1/workflows/{id}`: with its versions and runs.
#[utoipa::path(
    delete,
    path = "/api/v1/workflows/{id}",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Done.")),
)]
pub async fn delete(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.hive.workflows.delete(&caller, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/workflows/{id}/versions`: newest first.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{id}/versions",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = Vec<WorkflowVersionView>)),
)]
pub async fn versions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<WorkflowVersionView>>, ApiError> {
    let versions = state.hive.workflows.versions(&caller, id).await?;
    Ok(Json(versions.into_iter().map(version_view).collect()))
}

/// `GET /api/v1/workflows/{id}/versions/{version}`.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{id}/versions/{version}",
    tag = "workflows",
    params(("id" = Uuid, Path), ("version" = i64, Path)),
    responses((status = 200, description = "OK.", body = WorkflowVersionView)),
)]
pub async fn version(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((id, version)): Path<(Uuid, i64)>,
) -> Result<Json<WorkflowVersionView>, ApiError> {
    let row = state
        .hive
        .workflows
        .version(&caller, id, Some(version))
        .await?;
    Ok(Json(version_view(row)))
}

/// `POST /api/v1/workflows/{id}/webhook-secret`: a new secret, shown once.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{id}/webhook-secret",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = WebhookSecretView)),
)]
pub async fn webhook_secret(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<WebhookSecretView>, ApiError> {
    let secret = state
        .hive
        .workflows
        .rotate_webhook_secret(&caller, id, &meta)
        .await?;
    Ok(Json(WebhookSecretView {
        secret: secret.as_str().to_owned(),
        header: "Hive-Signature".to_owned(),
    }))
}

/// `POST /api/v1/workflows/{id}/runs`: a run of the newest version, by hand (202: it is queued).
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{id}/runs",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    request_body = StartRunRequest,
    responses((status = 202, description = "Accepted.", body = RunView)),
)]
pub async fn start_run(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<StartRunRequest>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let input = request
        .input
        .unwrap_or_else(|| Value::Object(Default::default()));
    let run = state.hive.workflows.run(&caller, id, input, &meta).await?;
    Ok((StatusCode::ACCEPTED, Json(run_view(&run))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunsQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    workflow_id: Option<Uuid>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    trigger: Option<String>,
}

/// `GET /api/v1/workflow-runs?workflowId=&status=&trigger=&limit=&cursor=`: newest first.
#[utoipa::path(
    get,
    path = "/api/v1/workflow-runs",
    tag = "workflows",
    params(RunsQuery),
    responses((status = 200, description = "OK.", body = PageResponse<RunView>)),
)]
pub async fn runs(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<PageResponse<RunView>>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let bad = |what: &str| ApiError::new(ErrorCode::ValidationFailed, format!("unknown {what}"));
    let filter = RunFilter {
        owner_id: None,
        workflow_id: query.workflow_id,
        status: query
            .status
            .as_deref()
            .map(|raw| RunStatus::parse(raw).ok_or_else(|| bad("status")))
            .transpose()?,
        trigger: query
            .trigger
            .as_deref()
            .map(|raw| RunTrigger::parse(raw).ok_or_else(|| bad("trigger")))
            .transpose()?,
    };
    let page = page_request(&PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    })?;
    let page = state.hive.workflows.runs(&caller, filter, &page).await?;
    Ok(Json(PageResponse {
        items: page.items.iter().map(run_view).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/workflow-runs/{id}`: the run and its journal.
#[utoipa::path(
    get,
    path = "/api/v1/workflow-runs/{id}",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = RunDetailView)),
)]
pub async fn run(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<RunDetailView>, ApiError> {
    let (run, steps) = state.hive.workflows.run_detail(&caller, id).await?;
    Ok(Json(RunDetailView {
        run: run_view(&run),
        steps: steps.iter().map(step_view).collect(),
    }))
}

/// `GET /api/v1/workflow-runs/{id}/events`: the journal as it grows (`step` events), the run's
/// status (`run` events); the stream ends with the run.
#[utoipa::path(
    get,
    path = "/api/v1/workflow-runs/{id}/events",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "A stream of server-sent events.", content_type = "text/event-stream", body = String)),
)]
pub async fn events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ip: Option<axum::Extension<ClientIp>>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let slot = state
        .streams
        .acquire_for(&caller, ip.map(|axum::Extension(ip)| ip))?;
    let mut progress = state.hive.workflows.follow(&caller, id).await?;
    let (frames, frames_out) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        while let Some(change) = progress.recv().await {
            let frame = match change {
                Progress::Step(step) => frame("step", &step_view(&step)),
                Progress::Run(run) => frame("run", &run_view(&run)),
            };
            if frames.send(frame).await.is_err() {
                return;
            }
        }
    });
    Ok(event_stream_response(
        frames_out,
        state.hive.gateway.settings().stream_idle,
        state.shutdown.clone(),
        slot,
    ))
}

fn frame(event: &str, data: &impl serde::Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_default();
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// `POST /api/v1/workflow-runs/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/v1/workflow-runs/{id}/cancel",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = RunView)),
)]
pub async fn cancel(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<RunView>, ApiError> {
    let run = state.hive.workflows.cancel(&caller, id, &meta).await?;
    Ok(Json(run_view(&run)))
}

/// `POST /api/v1/workflow-runs/{id}/retry`: from the steps that did not succeed.
#[utoipa::path(
    post,
    path = "/api/v1/workflow-runs/{id}/retry",
    tag = "workflows",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = RunView)),
)]
pub async fn retry(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<RunView>, ApiError> {
    let run = state.hive.workflows.retry(&caller, id, &meta).await?;
    Ok(Json(run_view(&run)))
}

/// `POST /api/v1/workflow-runs/{id}/approvals/{node}`: `{"approve": bool, "comment": …}`.
#[utoipa::path(
    post,
    path = "/api/v1/workflow-runs/{id}/approvals/{node}",
    tag = "workflows",
    params(("id" = Uuid, Path), ("node" = String, Path)),
    request_body = DecisionRequest,
    responses((status = 200, description = "OK.", body = RunView)),
)]
pub async fn decide(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path((id, node)): Path<(Uuid, String)>,
    JsonBody(request): JsonBody<DecisionRequest>,
) -> Result<Json<RunView>, ApiError> {
    let run = state
        .hive
        .workflows
        .decide(
            &caller,
            id,
            &node,
            request.approve,
            request.comment.as_deref(),
            &meta,
        )
        .await?;
    Ok(Json(run_view(&run)))
}

/// `GET /api/v1/workflow-approvals`: the approvals waiting for the caller's decision (any
/// role: whoever a step names), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/workflow-approvals",
    tag = "workflows",
    responses((status = 200, description = "OK.", body = PendingApprovalsView)),
)]
pub async fn approvals(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<PendingApprovalsView>, ApiError> {
    let pending = state.hive.workflows.pending_approvals(&caller).await?;
    Ok(Json(PendingApprovalsView {
        items: pending
            .iter()
            .map(|approval| PendingApprovalView {
                run: run_view(&approval.run),
                workflow: approval.workflow.clone(),
                node: approval.step_key.clone(),
                message: approval.message.clone(),
                waiting_since: approval.since,
            })
            .collect(),
    }))
}

/// Largest webhook body.
const MAX_WEBHOOK_BODY_BYTES: usize = 256 * 1024;

/// `POST /api/webhooks/workflows/{id}/{trigger}`: a signed call (`Hive-Signature`), or one
/// with an API token (`Authorization: Bearer`, the run acting through it; an optional
/// `Idempotency-Key`), starts a run with the JSON body as its input (202). A bad or stale
/// signature or a refused token is 401, a replay 409; signature refusals and replays are
/// audited.
#[utoipa::path(
    post,
    path = "/api/webhooks/workflows/{id}/{trigger}",
    tag = "workflows",
    params(("id" = Uuid, Path), ("trigger" = String, Path)),
    request_body(content = Object, description = "Any JSON: the trigger's input.", content_type = "application/json"),
    responses((status = 202, description = "Accepted.", body = RunView)),
)]
pub async fn webhook(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Option<axum::Extension<hive_core::kernel::caller::Caller>>,
    Path((id, trigger)): Path<(Uuid, String)>,
    headers: HeaderMap,
    request: Request,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let body = read_body(request.into_body(), MAX_WEBHOOK_BODY_BYTES).await?;
    let workflows = &state.hive.workflows;
    let called = if headers.contains_key(http::header::AUTHORIZATION) {
        // A token instead of a signature: one the pipeline did not take is refused here.
        let Some(axum::Extension(caller)) = caller else {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "the webhook's token was refused",
            ));
        };
        // A key that is not text is refused by the service like any other bad key.
        let key = headers
            .get("idempotency-key")
            .map(|value| value.to_str().unwrap_or("\u{7f}"));
        workflows
            .webhook_as(&caller, id, &trigger, key, &body, &meta)
            .await
    } else {
        let signature = headers
            .get(SIGNATURE_HEADER)
            .and_then(|value| value.to_str().ok());
        workflows
            .webhook(id, &trigger, signature, &body, &meta)
            .await
    };
    match called {
        Ok(run) => Ok((StatusCode::ACCEPTED, Json(run_view(&run)))),
        Err(WebhookError::Signature(SignatureRefusal::Replayed)) => Err(ApiError::new(
            ErrorCode::Conflict,
            SignatureRefusal::Replayed.to_string(),
        )),
        Err(WebhookError::Signature(refusal)) => Err(ApiError::new(
            ErrorCode::Unauthenticated,
            refusal.to_string(),
        )),
        Err(WebhookError::Workflow(error)) => Err(error.into()),
    }
}
