//! Agents: the list with their states, creating each kind, details, start and stop.

use crate::page::{
    Chrome, Cursor, Refused, page_request, problem, query_value, refusal, render, see_other, shown,
    shown_refused,
};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use hive_core::agents::NewAgent;
use hive_core::agents::import::ImportRequest;
use hive_core::kernel::caller::Caller;
use hive_proto::agents::{AgentKind, AgentStatus, AgentVisibility};
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta};
use hive_store::AgentRow;
use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

/// Agents on one page of the list.
const PAGE_SIZE: u32 = 50;

pub struct AgentLine {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub detail: String,
    pub running: bool,
}

/// An agent as a line of a list.
pub fn line(agent: AgentRow) -> AgentLine {
    AgentLine {
        id: agent.id.to_string(),
        kind: agent.kind.as_str(),
        status: agent.status.as_str(),
        // A started agent (the watchdog may have found it unreachable since) can be stopped.
        running: matches!(agent.status, AgentStatus::Ready | AgentStatus::Error),
        detail: agent.status_detail,
        name: agent.name,
    }
}

pub struct SecretChoice {
    pub id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage<'a> {
    chrome: Chrome,
    title: &'a str,
    agents: Vec<AgentLine>,
    next_cursor: Option<String>,
    secrets: Vec<SecretChoice>,
    error: Option<String>,
}

/// The caller's secrets, for the API-key choice of an `llm` agent (names only).
async fn secret_choices(state: &AppState, caller: &Caller) -> Result<Vec<SecretChoice>, Refused> {
    let listed = state
        .hive
        .secrets_service
        .list(caller, &page_request(PAGE_SIZE, None)?)
        .await
        .map_err(refusal)?;
    Ok(listed
        .items
        .into_iter()
        .map(|secret| SecretChoice {
            id: secret.id.to_string(),
            name: secret.name,
        })
        .collect())
}

async fn page_of(
    state: &AppState,
    caller: &Caller,
    cursor: Option<&str>,
) -> Result<AgentsPage<'static>, Refused> {
    let listed = state
        .hive
        .agents
        .list(caller, &page_request(PAGE_SIZE, cursor)?)
        .await
        .map_err(refusal)?;
    Ok(AgentsPage {
        chrome: Chrome::of(caller),
        title: "Agents",
        agents: listed.items.into_iter().map(line).collect(),
        next_cursor: listed.next_cursor.as_deref().map(query_value),
        secrets: secret_choices(state, caller).await?,
        error: None,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<Cursor>,
) -> Response {
    shown(page_of(&state, &caller, query.cursor.as_deref()).await)
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    kind: String,
    visibility: String,
    #[serde(default)]
    card_url: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    system_prompt: String,
    #[serde(default)]
    api_key_secret: String,
}

/// A form's text field: `None` when left empty.
fn filled(value: &str) -> Option<&str> {
    Some(value.trim()).filter(|value| !value.is_empty())
}

fn invalid(message: &str) -> Refused {
    (StatusCode::BAD_REQUEST, message.to_owned())
}

async fn create_agent(
    state: &AppState,
    caller: &Caller,
    form: &CreateForm,
    meta: &hive_core::kernel::caller::RequestMeta,
) -> Result<Uuid, Refused> {
    let kind: AgentKind = form
        .kind
        .parse()
        .map_err(|_| invalid("Choose one of the kinds listed."))?;
    let visibility: AgentVisibility = form
        .visibility
        .parse()
        .map_err(|_| invalid("Choose one of the visibilities listed."))?;
    let runtime = match kind {
        // A remote agent is registered from its card, as `hive agent import` does.
        AgentKind::Remote => {
            let url = filled(&form.card_url)
                .ok_or_else(|| invalid("A remote agent needs its card's URL."))?;
            let request = ImportRequest {
                url: url.to_owned(),
                name: filled(&form.name).map(str::to_owned),
                visibility,
                credential_secret_id: None,
            };
            let (_, agent) = state
                .hive
                .agent_import
                .import(caller, &request, meta)
                .await
                .map_err(refusal)?;
            return Ok(agent.id);
        }
        AgentKind::Llm => {
            let base_url = filled(&form.base_url)
                .ok_or_else(|| invalid("An LLM agent needs its endpoint's URL."))?;
            let model =
                filled(&form.model).ok_or_else(|| invalid("An LLM agent needs a model."))?;
            let mut runtime = serde_json::json!({ "baseUrl": base_url, "model": model });
            if let Some(prompt) = filled(&form.system_prompt) {
                runtime["systemPrompt"] = prompt.into();
            }
            if let Some(secret) = filled(&form.api_key_secret) {
                runtime["apiKeySecretId"] = secret.into();
            }
            runtime
        }
        AgentKind::Conformance => serde_json::json!({}),
    };
    let new = NewAgent {
        name: form.name.trim().to_owned(),
        description: String::new(),
        visibility,
        kind,
        runtime,
        skills: None,
        limits: None,
    };
    let agent = state
        .hive
        .agents
        .create(caller, &new, meta)
        .await
        .map_err(refusal)?;
    Ok(agent.id)
}

pub async fn create(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<CreateForm>,
) -> Response {
    match create_agent(&state, &caller, &form, &meta).await {
        Ok(id) => see_other(&format!("/agents/{id}")),
        Err((status, message)) => {
            shown_refused(page_of(&state, &caller, None).await, status, |page| {
                page.error = Some(message)
            })
        }
    }
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage<'a> {
    chrome: Chrome,
    title: &'a str,
    agent: AgentLine,
    visibility: &'static str,
    settings: Vec<(String, String)>,
    limits: Vec<(&'static str, String)>,
}

/// An agent's settings as lines to show: secrets appear only as the ids the settings hold.
fn settings_of(runtime: &str) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(runtime) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .map(|(name, value)| {
            let shown = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            (name, shown)
        })
        .collect()
}

pub async fn detail(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    let agent = match state.hive.agents.get(&caller, id).await {
        Ok(agent) => agent,
        Err(error) => return problem(refusal(error).0, None),
    };
    let page = AgentPage {
        chrome: Chrome::of(&caller),
        title: "Agent",
        visibility: agent.visibility.as_str(),
        settings: settings_of(&agent.runtime),
        limits: vec![
            (
                "Requests per minute",
                agent.limits.requests_per_minute.to_string(),
            ),
            (
                "Tokens per day (0: no limit)",
                agent.limits.tokens_per_day.to_string(),
            ),
            (
                "Concurrent tasks",
                agent.limits.concurrent_tasks.to_string(),
            ),
            (
                "Timeout (seconds)",
                agent.limits.timeout_seconds.to_string(),
            ),
        ],
        agent: line(agent),
    };
    render(StatusCode::OK, &page)
}

pub async fn start(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    match state.hive.agent_lifecycle.start(&caller, id, &meta).await {
        Ok(_) => see_other(&format!("/agents/{id}")),
        Err(error) => problem(refusal(error).0, None),
    }
}

pub async fn stop(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    match state.hive.agent_lifecycle.stop(&caller, id, &meta).await {
        Ok(_) => see_other(&format!("/agents/{id}")),
        Err(error) => problem(refusal(error).0, None),
    }
}
