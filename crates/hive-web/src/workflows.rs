//! Workflows (operators their own, admins all): the list and a form for a new one, a
//! workflow's page (its document edited into new versions, older versions, its graph drawn,
//! enable, disable, delete, the webhook secret, a run started by hand), the runs, and a run's
//! page (its steps, approvals decided, cancel, retry; followed live by the page's script
//! through the API's event stream). Every action is the same service call as the API's.

use crate::graph::{self, Graph};
use crate::hosted::log_time;
use crate::page::{
    Chrome, Refused, own_account, page_request, problem, query_value, refusal, render, see_other,
    shown, when,
};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use hive_core::kernel::caller::{Caller, RequestMeta};
use hive_core::workflows::definition::{Definition, NodeKind, Problems, Trigger};
use hive_core::workflows::service::{journaled_message, may_decide};
use hive_proto::{ErrorCode, Role};
use hive_server::auth::{Authenticated, Meta};
use hive_server::{ApiError, AppState};
use hive_store::{RunFilter, RunRow, RunStatus, StepRow, StepStatus, WorkflowRow};
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// Workflows on one page of the list.
const PAGE_SIZE: u32 = 50;
/// Runs on one page of the runs.
const RUNS_PAGE_SIZE: u32 = 25;

/// What the new-workflow form starts with: a small document that runs as it is.
pub const EXAMPLE: &str = r#"{
  "name": "hello",
  "description": "Greets whoever is named in the input",
  "nodes": [
    {"id": "start", "type": "input", "required": ["who"]},
    {"id": "greet", "type": "transform", "value": "Hello, {{ input.who }}!"},
    {"id": "done", "type": "output", "value": "{{ nodes.greet.output }}"}
  ],
  "edges": [
    {"from": "start", "to": "greet"},
    {"from": "greet", "to": "done"}
  ]
}
"#;

/// The statuses a run may have, for the filter.
const RUN_STATUSES: [&str; 6] = [
    "queued",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "cancelled",
];

pub struct WorkflowLine {
    pub id: String,
    pub name: String,
    pub description: String,
    pub version: i64,
    pub enabled: bool,
    pub updated: String,
}

fn line(row: &WorkflowRow) -> WorkflowLine {
    WorkflowLine {
        id: row.id.to_string(),
        name: row.name.clone(),
        description: row.description.clone(),
        version: row.latest_version,
        enabled: row.enabled,
        updated: when(row.updated_at),
    }
}

/// One problem of a document, as the page lists it.
pub struct ProblemLine {
    /// The node it is about, or what else (the document, an edge).
    pub node: Option<String>,
    pub rule: &'static str,
    pub message: String,
}

fn problem_lines(problems: Problems) -> Vec<ProblemLine> {
    problems
        .0
        .into_iter()
        .map(|problem| ProblemLine {
            node: problem.node,
            rule: problem.rule,
            message: problem.message,
        })
        .collect()
}

fn invalid(message: impl Into<String>) -> Refused {
    (StatusCode::BAD_REQUEST, message.into())
}

#[derive(Template)]
#[template(path = "workflows.html")]
struct WorkflowsPage<'a> {
    chrome: Chrome,
    title: &'a str,
    workflows: Vec<WorkflowLine>,
    next_cursor: Option<String>,
    /// The new-workflow form's text.
    document: String,
    problems: Vec<ProblemLine>,
    error: Option<String>,
}

#[derive(Default, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
}

async fn list_page(
    state: &AppState,
    caller: &Caller,
    cursor: Option<&str>,
    document: String,
) -> Result<WorkflowsPage<'static>, Refused> {
    let listed = state
        .hive
        .workflows
        .list(caller, &page_request(PAGE_SIZE, cursor)?)
        .await
        .map_err(refusal)?;
    Ok(WorkflowsPage {
        chrome: Chrome::of(caller),
        title: "Workflows",
        workflows: listed.items.iter().map(line).collect(),
        next_cursor: listed.next_cursor.as_deref().map(query_value),
        document,
        problems: Vec::new(),
        error: None,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<ListQuery>,
) -> Response {
    shown(list_page(&state, &caller, query.cursor.as_deref(), EXAMPLE.to_owned()).await)
}

#[derive(Deserialize)]
pub struct DocumentForm {
    document: String,
}

/// Why a save did not happen: the document's problems, or the service's refusal.
enum NotSaved {
    Problems(Vec<ProblemLine>),
    Refused(Refused),
}

/// Checks the document as the service would save it; its problems are listed on the page
/// and nothing is saved.
async fn checked(state: &AppState, caller: &Caller, document: &str) -> Result<(), NotSaved> {
    state
        .hive
        .workflows
        .check(caller, document)
        .await
        .map(drop)
        .map_err(|problems| NotSaved::Problems(problem_lines(problems)))
}

pub async fn create(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<DocumentForm>,
) -> Response {
    let saved = async {
        checked(&state, &caller, &form.document).await?;
        state
            .hive
            .workflows
            .apply(&caller, &form.document, &meta)
            .await
            .map_err(|error| NotSaved::Refused(refusal(error)))
    }
    .await;
    match saved {
        Ok(saved) => see_other(&format!("/workflows/{}", saved.workflow.id)),
        Err(not_saved) => {
            let page = list_page(&state, &caller, None, form.document).await;
            let (status, problems, error) = match not_saved {
                NotSaved::Problems(problems) => (StatusCode::BAD_REQUEST, problems, None),
                NotSaved::Refused((status, message)) => (status, Vec::new(), Some(message)),
            };
            crate::page::shown_refused(page, status, |page| {
                page.problems = problems;
                page.error = error;
            })
        }
    }
}

pub struct VersionLine {
    pub version: i64,
    pub saved: String,
    pub by: String,
    /// The one the page shows.
    pub shown: bool,
}

/// A webhook trigger of the shown version, with the path its calls go to.
pub struct WebhookLine {
    pub id: String,
    pub path: String,
}

#[derive(Template)]
#[template(path = "workflow.html")]
struct WorkflowPage<'a> {
    chrome: Chrome,
    title: &'a str,
    workflow: WorkflowLine,
    /// Who owns it, when it is not the caller (an admin's view).
    owner: Option<String>,
    webhook_secret_set: bool,
    /// The version shown, and whether it is the newest.
    version: i64,
    newest: bool,
    /// The editor's text: the shown version's document, or what was sent with problems.
    document: String,
    graph: Option<Graph>,
    /// Node count of the graph, and its edges as text (the picture's alternative).
    edges_text: Vec<String>,
    webhooks: Vec<WebhookLine>,
    versions: Vec<VersionLine>,
    run_input: String,
    problems: Vec<ProblemLine>,
    /// A new webhook secret, shown once on the page that answers setting it.
    new_secret: Option<String>,
    error: Option<String>,
    notice: Option<String>,
}

impl WorkflowPage<'_> {
    fn node_count(&self) -> usize {
        self.graph.as_ref().map_or(0, |graph| graph.boxes.len())
    }
}

#[derive(Default, Deserialize)]
pub struct VersionQuery {
    version: Option<i64>,
}

/// Who an account is, as the caller may know them: themselves, or (only admins look accounts
/// up) by name.
async fn who(
    state: &AppState,
    caller: &Caller,
    id: Option<Uuid>,
    names: &mut HashMap<Uuid, String>,
) -> String {
    let Some(id) = id else {
        return "an account since deleted".to_owned();
    };
    if caller.user_id() == Some(id) {
        return "you".to_owned();
    }
    if caller.role < Role::Admin {
        return "another account".to_owned();
    }
    if let Some(name) = names.get(&id) {
        return name.clone();
    }
    let name = match state.hive.identity.get_user(id).await {
        Ok(user) => format!("{} ({})", user.display_name, user.email),
        Err(_) => "an account since deleted".to_owned(),
    };
    names.insert(id, name.clone());
    name
}

/// The run form's first input: the keys the input node requires, empty.
fn input_skeleton(definition: &Definition) -> String {
    let mut input = serde_json::Map::new();
    if let NodeKind::Input(node) = &definition.input_node().kind {
        for key in &node.required {
            input.insert(key.clone(), Value::String(String::new()));
        }
    }
    serde_json::to_string_pretty(&Value::Object(input)).unwrap_or_else(|_| "{}".to_owned())
}

async fn workflow_page(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    version: Option<i64>,
) -> Result<WorkflowPage<'static>, Refused> {
    let service = &state.hive.workflows;
    let workflow = service.get(caller, id).await.map_err(refusal)?;
    let shown = service
        .version(caller, id, version)
        .await
        .map_err(refusal)?;
    let rows = service.versions(caller, id).await.map_err(refusal)?;
    let mut names = HashMap::new();
    let mut versions = Vec::with_capacity(rows.len());
    for row in rows {
        versions.push(VersionLine {
            version: row.version,
            saved: when(row.created_at),
            by: who(state, caller, row.created_by, &mut names).await,
            shown: row.version == shown.version,
        });
    }
    let owner = if caller.user_id() == Some(workflow.owner_id) {
        None
    } else {
        Some(who(state, caller, Some(workflow.owner_id), &mut names).await)
    };
    // A saved version was checked: it parses (a document saved under older rules may not).
    let definition = Definition::parse(&shown.document).ok();
    let edges_text = definition
        .as_ref()
        .map(|definition| {
            definition
                .edges
                .iter()
                .map(|edge| match &edge.when {
                    Some(label) => format!("{} → {} (when {label})", edge.from, edge.to),
                    None => format!("{} → {}", edge.from, edge.to),
                })
                .collect()
        })
        .unwrap_or_default();
    let webhooks = definition
        .as_ref()
        .map(|definition| {
            definition
                .triggers
                .iter()
                .filter_map(|trigger| match trigger {
                    Trigger::Webhook { id: trigger } => Some(WebhookLine {
                        path: format!("/api/webhooks/workflows/{id}/{trigger}"),
                        id: trigger.clone(),
                    }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(WorkflowPage {
        chrome: Chrome::of(caller),
        title: "Workflow",
        owner,
        webhook_secret_set: workflow.webhook_secret.is_some(),
        version: shown.version,
        newest: shown.version == workflow.latest_version,
        run_input: definition
            .as_ref()
            .map_or_else(|| "{}".to_owned(), input_skeleton),
        graph: definition.as_ref().map(graph::of),
        edges_text,
        webhooks,
        versions,
        document: shown.document,
        workflow: line(&workflow),
        problems: Vec::new(),
        new_secret: None,
        error: None,
        notice: None,
    })
}

pub async fn detail(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Query(query): Query<VersionQuery>,
) -> Response {
    shown(workflow_page(&state, &caller, id, query.version).await)
}

/// The workflow's page again after an action: what was done, or why not (with its status).
async fn after(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    done: Result<String, Refused>,
    edit: impl FnOnce(&mut WorkflowPage<'static>),
) -> Response {
    let (status, error, notice) = match done {
        Ok(notice) => (StatusCode::OK, None, Some(notice)),
        Err((status, message)) => (status, Some(message), None),
    };
    crate::page::shown_refused(
        workflow_page(state, caller, id, None).await,
        status,
        |page| {
            page.error = error;
            page.notice = notice;
            edit(page);
        },
    )
}

/// A new version from the editor; its problems are listed and nothing is saved.
pub async fn save(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<DocumentForm>,
) -> Response {
    // Another's workflow is not there, whatever the document says.
    if let Err(error) = state.hive.workflows.get(&caller, id).await {
        return problem(refusal(error).0, None);
    }
    let saved = async {
        checked(&state, &caller, &form.document).await?;
        state
            .hive
            .workflows
            .update(&caller, id, &form.document, &meta)
            .await
            .map_err(|error| NotSaved::Refused(refusal(error)))
    }
    .await;
    match saved {
        Ok(saved) => {
            let done = Ok(format!(
                "Saved as version {}: new runs run it.",
                saved.version.version
            ));
            after(&state, &caller, id, done, |_| {}).await
        }
        Err(NotSaved::Problems(problems)) => {
            let done = Err(invalid(
                "Nothing was saved: the document has the problems listed under the editor.",
            ));
            after(&state, &caller, id, done, |page| {
                page.problems = problems;
                page.document = form.document;
            })
            .await
        }
        Err(NotSaved::Refused(refused)) => {
            after(&state, &caller, id, Err(refused), |page| {
                page.document = form.document;
            })
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct EnabledForm {
    enabled: String,
}

pub async fn set_enabled(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<EnabledForm>,
) -> Response {
    let enabled = form.enabled == "true";
    let done = state
        .hive
        .workflows
        .set_enabled(&caller, id, enabled, &meta)
        .await
        .map(|_| {
            if enabled {
                "Enabled: its triggers start runs again.".to_owned()
            } else {
                "Disabled: no trigger starts a run; runs under way go on.".to_owned()
            }
        })
        .map_err(refusal);
    if let Err((StatusCode::NOT_FOUND, _)) = done {
        return problem(StatusCode::NOT_FOUND, None);
    }
    after(&state, &caller, id, done, |_| {}).await
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<DeleteForm>,
) -> Response {
    if let Err(error) = state.hive.workflows.get(&caller, id).await {
        return problem(refusal(error).0, None);
    }
    if form.confirm.as_deref() != Some("yes") {
        let done = Err(invalid(
            "Nothing was deleted: tick the box to confirm that its versions and runs go too.",
        ));
        return after(&state, &caller, id, done, |_| {}).await;
    }
    match state.hive.workflows.delete(&caller, id, &meta).await {
        Ok(()) => see_other("/workflows"),
        Err(error) => problem(refusal(error).0, None),
    }
}

pub async fn webhook_secret(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    match state
        .hive
        .workflows
        .rotate_webhook_secret(&caller, id, &meta)
        .await
    {
        Ok(secret) => {
            let done =
                Ok("A new webhook secret is set; the one before no longer signs calls.".to_owned());
            after(&state, &caller, id, done, |page| {
                page.new_secret = Some(secret.as_str().to_owned());
            })
            .await
        }
        Err(error) => problem(refusal(error).0, None),
    }
}

#[derive(Deserialize)]
pub struct RunForm {
    #[serde(default)]
    input: String,
}

/// Starts a run of the newest version and goes to its page.
pub async fn start_run(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<RunForm>,
) -> Response {
    let input = if form.input.trim().is_empty() {
        Ok(Value::Object(serde_json::Map::new()))
    } else {
        match serde_json::from_str::<Value>(&form.input) {
            Ok(value @ Value::Object(_)) => Ok(value),
            Ok(_) => Err(invalid("The input must be a JSON object: {…}.")),
            Err(error) => Err(invalid(format!("The input is not JSON: {error}."))),
        }
    };
    let started = match input {
        Ok(input) => state
            .hive
            .workflows
            .run(&caller, id, input, &meta)
            .await
            .map_err(refusal),
        Err(refused) => Err(refused),
    };
    match started {
        Ok(run) => see_other(&format!("/workflows/runs/{}", run.id)),
        Err((StatusCode::NOT_FOUND, _)) => problem(StatusCode::NOT_FOUND, None),
        Err(refused) => {
            after(&state, &caller, id, Err(refused), |page| {
                page.run_input = form.input;
            })
            .await
        }
    }
}

/// A run as a line of the runs.
pub struct RunLine {
    pub id: String,
    pub short_id: String,
    pub workflow: String,
    pub workflow_id: String,
    pub version: i64,
    pub status: &'static str,
    pub trigger: &'static str,
    pub created: String,
    pub finished: String,
}

#[derive(Template)]
#[template(path = "workflow_runs.html")]
struct RunsPage<'a> {
    chrome: Chrome,
    title: &'a str,
    runs: Vec<RunLine>,
    /// The filter as the form and links carry it.
    status: String,
    workflow: Option<WorkflowLine>,
    statuses: &'static [&'static str],
    next: Option<String>,
}

#[derive(Default, Deserialize)]
pub struct RunsQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    workflow: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// The names of the workflows runs belong to, each read once.
async fn workflow_names(
    state: &AppState,
    caller: &Caller,
    runs: &[RunRow],
) -> HashMap<Uuid, String> {
    let mut names = HashMap::new();
    for run in runs {
        if names.contains_key(&run.workflow_id) {
            continue;
        }
        let name = match state.hive.workflows.get(caller, run.workflow_id).await {
            Ok(workflow) => workflow.name,
            Err(_) => "another's workflow".to_owned(),
        };
        names.insert(run.workflow_id, name);
    }
    names
}

async fn runs_page(
    state: &AppState,
    caller: &Caller,
    query: RunsQuery,
) -> Result<RunsPage<'static>, Refused> {
    let status = query
        .status
        .filter(|status| !status.is_empty())
        .map(|raw| {
            RunStatus::parse(&raw)
                .ok_or_else(|| invalid("Choose one of the statuses listed."))
                .map(|status| (raw, status))
        })
        .transpose()?;
    let workflow = match query.workflow.filter(|id| !id.is_empty()) {
        Some(id) => {
            let id = Uuid::parse_str(&id).map_err(|_| invalid("That is not a workflow's id."))?;
            Some(
                state
                    .hive
                    .workflows
                    .get(caller, id)
                    .await
                    .map_err(refusal)?,
            )
        }
        None => None,
    };
    let filter = RunFilter {
        owner_id: None,
        workflow_id: workflow.as_ref().map(|workflow| workflow.id),
        status: status.as_ref().map(|(_, status)| *status),
        trigger: None,
    };
    let page = state
        .hive
        .workflows
        .runs(
            caller,
            filter,
            &page_request(RUNS_PAGE_SIZE, query.cursor.as_deref())?,
        )
        .await
        .map_err(refusal)?;
    let names = workflow_names(state, caller, &page.items).await;
    let status = status.map(|(raw, _)| raw).unwrap_or_default();
    let next = page.next_cursor.map(|cursor| {
        let mut link = format!("/workflows/runs?cursor={}", query_value(&cursor));
        if !status.is_empty() {
            link.push_str(&format!("&status={}", query_value(&status)));
        }
        if let Some(workflow) = &workflow {
            link.push_str(&format!("&workflow={}", workflow.id));
        }
        link
    });
    Ok(RunsPage {
        chrome: Chrome::of(caller),
        title: "Workflow runs",
        runs: page
            .items
            .iter()
            .map(|run| RunLine {
                id: run.id.to_string(),
                short_id: run.id.to_string().chars().take(8).collect(),
                workflow: names.get(&run.workflow_id).cloned().unwrap_or_default(),
                workflow_id: run.workflow_id.to_string(),
                version: run.version,
                status: run.status.as_str(),
                trigger: run.trigger.as_str(),
                created: when(run.created_at),
                finished: run.finished_at.map(when).unwrap_or_default(),
            })
            .collect(),
        status,
        workflow: workflow.as_ref().map(line),
        statuses: &RUN_STATUSES,
        next,
    })
}

pub async fn runs(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<RunsQuery>,
) -> Response {
    shown(runs_page(&state, &caller, query).await)
}

/// A step of the journal as the page shows it (the script writes live ones the same way).
pub struct StepLine {
    pub key: String,
    pub status: &'static str,
    pub attempt: i64,
    pub started: String,
    pub finished: String,
    pub branch: String,
    pub error: String,
    pub input: String,
    pub output: String,
}

/// A JSON text shown pretty, or as it is.
fn pretty(text: Option<&str>) -> String {
    let Some(text) = text else {
        return String::new();
    };
    serde_json::from_str::<Value>(text)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| text.to_owned())
}

fn step_line(step: &StepRow) -> StepLine {
    StepLine {
        key: step.step_key.clone(),
        status: step.status.as_str(),
        attempt: step.attempt,
        started: log_time(step.started_at),
        finished: step.finished_at.map(log_time).unwrap_or_default(),
        branch: step.branch.clone().unwrap_or_default(),
        error: step.error.clone().unwrap_or_default(),
        input: pretty(step.input.as_deref()),
        output: pretty(step.output.as_deref()),
    }
}

/// An approval node of the run's version: shown while its step waits for a decision.
pub struct ApprovalLine {
    pub node: String,
    /// The message its step rendered (once it started).
    pub message: String,
    pub waiting: bool,
    /// Whether the caller is one of its approvers (the service decides; this only chooses
    /// between the buttons and a note).
    pub may_decide: bool,
    /// Who may decide, in words.
    pub approvers: String,
}

pub struct RunFacts {
    pub id: String,
    pub workflow_id: String,
    pub workflow: String,
    pub version: i64,
    pub status: &'static str,
    pub trigger: &'static str,
    pub run_as: String,
    pub through_token: Option<String>,
    pub input: String,
    pub output: String,
    pub error: String,
    pub created: String,
    pub started: String,
    pub finished: String,
    pub deadline: String,
    pub parent: Option<(String, String)>,
    /// Cancel applies (it has not ended), retry applies (it failed or was cancelled).
    pub active: bool,
    pub retriable: bool,
}

#[derive(Template)]
#[template(path = "workflow_run.html")]
struct RunPage<'a> {
    chrome: Chrome,
    title: &'a str,
    run: RunFacts,
    steps: Vec<StepLine>,
    approvals: Vec<ApprovalLine>,
    error: Option<String>,
}

fn active(status: RunStatus) -> bool {
    !status.is_final()
}

fn retriable(status: RunStatus) -> bool {
    matches!(status, RunStatus::Failed | RunStatus::Cancelled)
}

fn approvals_of(caller: &Caller, definition: &Definition, steps: &[StepRow]) -> Vec<ApprovalLine> {
    definition
        .nodes
        .iter()
        .filter_map(|node| {
            let NodeKind::Approval(approval) = &node.kind else {
                return None;
            };
            let step = steps.iter().find(|step| step.step_key == node.id);
            let message = journaled_message(step.and_then(|step| step.input.as_deref()));
            let mut who: Vec<String> = approval.users.clone();
            if let Some(role) = approval.role {
                who.push(format!("anyone whose role is {} or above", role.as_str()));
            }
            Some(ApprovalLine {
                node: node.id.clone(),
                message,
                waiting: step.is_some_and(|step| step.status == StepStatus::Waiting),
                may_decide: may_decide(caller, approval),
                approvers: who.join(", "),
            })
        })
        .collect()
}

async fn run_page(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<RunPage<'static>, Refused> {
    let service = &state.hive.workflows;
    let (run, steps) = service.run_detail(caller, id).await.map_err(refusal)?;
    // The version it runs, for its approvals (one the caller may not read has none shown).
    let workflow = service.get(caller, run.workflow_id).await.ok();
    let definition = match &workflow {
        Some(_) => service
            .version(caller, run.workflow_id, Some(run.version))
            .await
            .ok()
            .and_then(|version| Definition::parse(&version.document).ok()),
        None => None,
    };
    let approvals = definition
        .as_ref()
        .map(|definition| approvals_of(caller, definition, &steps))
        .unwrap_or_default();
    let mut names = HashMap::new();
    let run_as = who(state, caller, Some(run.principal_user), &mut names).await;
    let facts = RunFacts {
        id: run.id.to_string(),
        workflow_id: run.workflow_id.to_string(),
        workflow: workflow.map_or_else(|| "another's workflow".to_owned(), |w| w.name),
        version: run.version,
        status: run.status.as_str(),
        trigger: run.trigger.as_str(),
        run_as,
        through_token: run.principal_token.map(|token| token.to_string()),
        input: pretty(Some(&run.input)),
        output: pretty(run.output.as_deref()),
        error: run.error.clone().unwrap_or_default(),
        created: log_time(run.created_at),
        started: run.started_at.map(log_time).unwrap_or_default(),
        finished: run.finished_at.map(log_time).unwrap_or_default(),
        deadline: log_time(run.deadline_at),
        parent: run.parent_run.map(|parent| {
            (
                parent.to_string(),
                run.parent_step.clone().unwrap_or_default(),
            )
        }),
        active: active(run.status),
        retriable: retriable(run.status),
    };
    Ok(RunPage {
        chrome: Chrome::of(caller),
        title: "Workflow run",
        run: facts,
        steps: steps.iter().map(step_line).collect(),
        approvals,
        error: None,
    })
}

pub async fn run(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    shown(run_page(&state, &caller, id).await)
}

/// After an action on a run: its page, or the refusal as the run's page says it (a run the
/// caller cannot see is the 404 page).
async fn after_run(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    done: Result<(), Refused>,
) -> Response {
    match done {
        Ok(()) => see_other(&format!("/workflows/runs/{id}")),
        Err((StatusCode::NOT_FOUND, _)) => problem(StatusCode::NOT_FOUND, None),
        Err((status, message)) => match run_page(state, caller, id).await {
            Ok(mut page) => {
                page.error = Some(message);
                render(status, &page)
            }
            Err(_) => problem(status, None),
        },
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    let done = state.hive.workflows.cancel(&caller, id, &meta).await;
    after_run(&state, &caller, id, done.map(drop).map_err(refusal)).await
}

pub async fn retry(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    let done = state.hive.workflows.retry(&caller, id, &meta).await;
    after_run(&state, &caller, id, done.map(drop).map_err(refusal)).await
}

/// An approval's decision as the run's page and the approvals page post it.
#[derive(Deserialize)]
pub struct DecisionForm {
    node: String,
    decision: String,
    #[serde(default)]
    comment: String,
}

/// Takes the decision a form posted: whether it approved, or the problem page of why not.
/// The service decides who may (a run the caller may not see and does not approve is not
/// there at all).
pub(crate) async fn take_decision(
    state: &AppState,
    caller: &Caller,
    run: Uuid,
    form: &DecisionForm,
    meta: &RequestMeta,
) -> Result<bool, Response> {
    own_account(caller).map_err(|refused| problem(refused.0, None))?;
    let approve = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            let refused = ApiError::new(ErrorCode::ValidationFailed, "approve or reject");
            return Err(problem(refusal(refused).0, None));
        }
    };
    let comment = Some(form.comment.trim()).filter(|comment| !comment.is_empty());
    state
        .hive
        .workflows
        .decide(caller, run, &form.node, approve, comment, meta)
        .await
        .map(|_| approve)
        .map_err(|error| problem(refusal(error).0, None))
}

/// An approval's decision from the run's page; back to it.
pub async fn decide(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<DecisionForm>,
) -> Response {
    match take_decision(&state, &caller, id, &form, &meta).await {
        Ok(_) => see_other(&format!("/workflows/runs/{id}")),
        Err(page) => page,
    }
}
