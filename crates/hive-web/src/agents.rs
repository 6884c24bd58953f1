//! Agents: the list with their states, creating each kind, details (token usage by day, the
//! recent calls with their outcome; a hosted agent's part is in [`crate::hosted`]), editing
//! settings and limits, start, stop and delete.

use crate::hosted::HostedSection;
use crate::page::{
    Chrome, Cursor, Refused, page_request, query_value, refusal, see_other, shown, shown_refused,
    then_see, when,
};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use hive_core::agents::import::ImportRequest;
use hive_core::agents::{AgentCall, AgentChange, AgentError, DEFAULT_USAGE_DAYS, NewAgent};
use hive_core::kernel::caller::{Caller, RequestMeta};
use hive_proto::agents::{AgentKind, AgentStatus, AgentVisibility};
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta};
use hive_store::{AgentLimits, AgentRow};
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
    /// The lifecycle buttons its page offers.
    pub controls: Controls,
}

/// An agent as a line of a list.
pub fn line(agent: AgentRow) -> AgentLine {
    AgentLine {
        id: agent.id.to_string(),
        kind: agent.kind.as_str(),
        status: agent.status.as_str(),
        controls: controls(agent.kind, agent.status),
        detail: agent.status_detail,
        name: agent.name,
    }
}

/// Whether an agent of this status was started and not stopped since: it runs, or is on its
/// way (`starting`), frozen (`paused`), or was found failing (`error`: the watchdog may still
/// restart a hosted one) — so it can be stopped.
pub fn runs(status: AgentStatus) -> bool {
    matches!(
        status,
        AgentStatus::Starting | AgentStatus::Ready | AgentStatus::Paused | AgentStatus::Error
    )
}

/// The lifecycle buttons an agent's page offers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Controls {
    pub start: bool,
    pub stop: bool,
    pub restart: bool,
    pub pause: bool,
    pub resume: bool,
}

/// Which lifecycle actions apply to an agent of this kind and status: start or stop for every
/// kind; for a hosted agent also restart (ready or failing), pause (ready) and resume (paused),
/// and both start and stop when it failed (start again, or stop the watchdog's restarts).
pub fn controls(kind: AgentKind, status: AgentStatus) -> Controls {
    use AgentStatus as S;
    if kind == AgentKind::Hosted {
        return Controls {
            start: matches!(status, S::Created | S::Stopped | S::Error),
            stop: runs(status),
            restart: matches!(status, S::Ready | S::Error),
            pause: status == S::Ready,
            resume: status == S::Paused,
        };
    }
    Controls {
        start: !runs(status),
        stop: runs(status),
        ..Controls::default()
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
    /// The create form's `llm` fields (empty) and visibility.
    llm: LlmForm,
    visibility: &'static str,
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
        llm: LlmForm::default(),
        visibility: AgentVisibility::Private.as_str(),
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

/// The settings of an `llm` agent as its forms carry them.
#[derive(Default, Deserialize)]
pub struct LlmForm {
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    system_prompt: String,
    #[serde(default)]
    api_key_secret: String,
}

impl LlmForm {
    /// The form filled from an agent's settings.
    fn of(runtime: &serde_json::Map<String, serde_json::Value>) -> Self {
        let text = |name: &str| {
            runtime
                .get(name)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            base_url: text("baseUrl"),
            model: text("model"),
            system_prompt: text("systemPrompt"),
            api_key_secret: text("apiKeySecretId"),
        }
    }

    /// `runtime` with this form's fields written over it (an emptied optional field removed);
    /// the settings no form shows stay as they are.
    fn apply(
        &self,
        mut runtime: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, Refused> {
        let base_url = filled(&self.base_url)
            .ok_or_else(|| invalid("An LLM agent needs its endpoint's URL."))?;
        let model = filled(&self.model).ok_or_else(|| invalid("An LLM agent needs a model."))?;
        runtime.insert("baseUrl".into(), base_url.into());
        runtime.insert("model".into(), model.into());
        for (name, value) in [
            ("systemPrompt", &self.system_prompt),
            ("apiKeySecretId", &self.api_key_secret),
        ] {
            match filled(value) {
                Some(value) => runtime.insert(name.into(), value.into()),
                None => runtime.remove(name),
            };
        }
        Ok(serde_json::Value::Object(runtime))
    }
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    kind: String,
    visibility: String,
    #[serde(default)]
    card_url: String,
    #[serde(flatten)]
    llm: LlmForm,
}

/// A form's text field: `None` when left empty.
fn filled(value: &str) -> Option<&str> {
    Some(value.trim()).filter(|value| !value.is_empty())
}

fn invalid(message: &str) -> Refused {
    (StatusCode::BAD_REQUEST, message.to_owned())
}

fn visibility_of(form_value: &str) -> Result<AgentVisibility, Refused> {
    form_value
        .parse()
        .map_err(|_| invalid("Choose one of the visibilities listed."))
}

async fn create_agent(
    state: &AppState,
    caller: &Caller,
    form: &CreateForm,
    meta: &RequestMeta,
) -> Result<Uuid, Refused> {
    let kind: AgentKind = form
        .kind
        .parse()
        .map_err(|_| invalid("Choose one of the kinds listed."))?;
    let visibility = visibility_of(&form.visibility)?;
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
        AgentKind::Llm => form.llm.apply(serde_json::Map::new())?,
        AgentKind::Conformance | AgentKind::Hosted => serde_json::json!({}),
        AgentKind::Workflow => {
            return Err(invalid(
                "A workflow is published as an agent by its a2a trigger, not registered here.",
            ));
        }
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
    description: String,
    visibility: &'static str,
    /// The `llm` agent's settings to edit (`None` for other kinds).
    llm: Option<LlmForm>,
    secrets: Vec<SecretChoice>,
    /// Settings the page shows but does not edit (a remote agent's, say).
    settings: Vec<(String, String)>,
    limits: AgentLimits,
    /// Tokens by UTC day, oldest first, with the busiest day's total (the bars' scale).
    usage: Vec<UsageLine>,
    usage_peak: u64,
    calls: Vec<CallLine>,
    /// The next page of calls, as this page's URL.
    more_calls: Option<String>,
    /// A hosted agent's bundle, logs and measurements (`None` for other kinds).
    hosted: Option<HostedSection>,
    error: Option<String>,
    notice: Option<String>,
}

struct UsageLine {
    day: String,
    calls: u64,
    prompt: u64,
    completion: u64,
    total: u64,
}

struct CallLine {
    at: String,
    caller: String,
    method: String,
    outcome: String,
    failed: bool,
    /// The code and message the caller was given when the call failed.
    error: String,
    duration: String,
}

/// Calls shown on an agent's page at a time.
const CALLS_SHOWN: u32 = 20;

impl CallLine {
    fn of(call: AgentCall) -> Self {
        let error = match (call.error_code, call.error_message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            (None, Some(message)) => message,
            (None, None) => String::new(),
        };
        Self {
            at: when(call.at),
            caller: call.caller,
            method: call.method.unwrap_or_default(),
            failed: matches!(
                call.outcome.as_str(),
                "error" | "failed" | "throttled" | "unavailable"
            ),
            outcome: call.outcome,
            error,
            duration: call
                .duration_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_default(),
        }
    }
}

#[derive(Default, Deserialize)]
pub struct CallsCursor {
    calls: Option<String>,
}

/// An agent's settings as lines to show: secrets appear only as the ids the settings hold.
fn settings_of(runtime: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    runtime
        .iter()
        .map(|(name, value)| {
            let shown = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (name.clone(), shown)
        })
        .collect()
}

/// The secrets an agent's API key may be, with its current one even when the caller cannot
/// list it (an admin editing another's agent): saving the form keeps it.
async fn key_choices(
    state: &AppState,
    caller: &Caller,
    current: &str,
) -> Result<Vec<SecretChoice>, Refused> {
    let mut choices = secret_choices(state, caller).await?;
    if !current.is_empty() && !choices.iter().any(|choice| choice.id == current) {
        choices.push(SecretChoice {
            id: current.to_owned(),
            name: "the key it has now (a secret of its owner)".to_owned(),
        });
    }
    Ok(choices)
}

/// The agent's settings (stored as a JSON object).
fn runtime_of(agent: &AgentRow) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(&agent.runtime) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    }
}

async fn agent_page(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    calls_cursor: Option<&str>,
) -> Result<AgentPage<'static>, Refused> {
    let agents = &state.hive.agents;
    let agent = agents.get(caller, id).await.map_err(refusal)?;
    let usage: Vec<UsageLine> = agents
        .usage_by_day(caller, id, DEFAULT_USAGE_DAYS)
        .await
        .map_err(refusal)?
        .into_iter()
        .map(|day| UsageLine {
            day: day.day.to_string(),
            calls: day.calls,
            prompt: day.prompt_tokens,
            completion: day.completion_tokens,
            total: day.prompt_tokens.saturating_add(day.completion_tokens),
        })
        .collect();
    let calls = agents
        .calls(caller, id, &page_request(CALLS_SHOWN, calls_cursor)?)
        .await
        .map_err(refusal)?;
    let runtime = runtime_of(&agent);
    let llm = (agent.kind == AgentKind::Llm).then(|| LlmForm::of(&runtime));
    let hosted = match agent.kind {
        AgentKind::Hosted => Some(crate::hosted::section(state, caller, &agent).await?),
        _ => None,
    };
    Ok(AgentPage {
        chrome: Chrome::of(caller),
        title: "Agent",
        description: agent.description.clone(),
        visibility: agent.visibility.as_str(),
        settings: if llm.is_some() {
            Vec::new()
        } else {
            settings_of(&runtime)
        },
        secrets: match &llm {
            Some(llm) => key_choices(state, caller, &llm.api_key_secret).await?,
            None => Vec::new(),
        },
        llm,
        limits: agent.limits,
        usage_peak: usage.iter().map(|day| day.total).max().unwrap_or(0),
        usage,
        more_calls: calls
            .next_cursor
            .map(|cursor| format!("/agents/{id}?calls={}#calls-heading", query_value(&cursor))),
        calls: calls.items.into_iter().map(CallLine::of).collect(),
        agent: line(agent),
        hosted,
        error: None,
        notice: None,
    })
}

pub async fn detail(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Query(query): Query<CallsCursor>,
) -> Response {
    shown(agent_page(&state, &caller, id, query.calls.as_deref()).await)
}

#[derive(Deserialize)]
pub struct SettingsForm {
    name: String,
    #[serde(default)]
    description: String,
    visibility: String,
    #[serde(flatten)]
    llm: LlmForm,
}

#[derive(Deserialize)]
pub struct LimitsForm {
    requests_per_minute: String,
    tokens_per_day: String,
    concurrent_tasks: String,
    timeout_seconds: String,
}

impl LimitsForm {
    fn limits(&self) -> Result<AgentLimits, Refused> {
        fn number<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, Refused> {
            value
                .trim()
                .parse()
                .map_err(|_| invalid(&format!("{what} must be a whole number.")))
        }
        Ok(AgentLimits {
            requests_per_minute: number(&self.requests_per_minute, "Requests per minute")?,
            tokens_per_day: number(&self.tokens_per_day, "Tokens per day")?,
            concurrent_tasks: number(&self.concurrent_tasks, "Concurrent tasks")?,
            timeout_seconds: number(&self.timeout_seconds, "The timeout")?,
        })
    }
}

/// Applies a change to the agent and shows its page again: saying it is saved, or why not.
async fn changed(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    change: Result<AgentChange, Refused>,
    meta: &RequestMeta,
) -> Response {
    let outcome = match change {
        Ok(change) => state
            .hive
            .agents
            .update(caller, id, &change, meta)
            .await
            .map(drop)
            .map_err(refusal),
        Err(refused) => Err(refused),
    };
    let done = outcome
        .map(|()| "Saved. A running agent uses the new settings from its next call.".to_owned());
    after_action(state, caller, id, done).await
}

/// The agent's page after an action on it: saying what was done, or why it was refused (with
/// the refusal's status).
pub(crate) async fn after_action(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    done: Result<String, Refused>,
) -> Response {
    let (status, error, notice) = match done {
        Ok(notice) => (StatusCode::OK, None, Some(notice)),
        Err((status, message)) => (status, Some(message), None),
    };
    shown_refused(agent_page(state, caller, id, None).await, status, |page| {
        page.error = error;
        page.notice = notice;
    })
}

/// After a lifecycle action: back to the agent's page, which shows its new state; a refusal
/// is said on the page.
pub(crate) async fn then_agent_page(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    done: Result<AgentRow, AgentError>,
) -> Response {
    match done {
        Ok(_) => see_other(&format!("/agents/{id}")),
        Err(error) => after_action(state, caller, id, Err(refusal(error))).await,
    }
}

pub async fn update_settings(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<SettingsForm>,
) -> Response {
    let change = async {
        let agent = state.hive.agents.get(&caller, id).await.map_err(refusal)?;
        let runtime = if agent.kind == AgentKind::Llm {
            Some(form.llm.apply(runtime_of(&agent))?)
        } else {
            None
        };
        Ok(AgentChange {
            name: Some(form.name.trim().to_owned()),
            description: Some(form.description.trim().to_owned()),
            visibility: Some(visibility_of(&form.visibility)?),
            runtime,
            skills: None,
            limits: None,
        })
    }
    .await;
    changed(&state, &caller, id, change, &meta).await
}

pub async fn update_limits(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<LimitsForm>,
) -> Response {
    let change = form.limits().map(|limits| AgentChange {
        limits: Some(limits),
        ..AgentChange::default()
    });
    changed(&state, &caller, id, change, &meta).await
}

pub async fn delete(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    then_see(
        state.hive.agents.delete(&caller, id, &meta).await,
        "/agents",
    )
}

pub async fn start(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    let done = state.hive.agent_lifecycle.start(&caller, id, &meta).await;
    then_agent_page(&state, &caller, id, done).await
}

pub async fn stop(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    let done = state.hive.agent_lifecycle.stop(&caller, id, &meta).await;
    then_agent_page(&state, &caller, id, done).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_started_or_stopped_by_its_status() {
        use AgentStatus as S;
        for kind in [AgentKind::Llm, AgentKind::Remote, AgentKind::Conformance] {
            for status in [S::Created, S::Stopped] {
                let only_start = Controls {
                    start: true,
                    ..Controls::default()
                };
                assert_eq!(controls(kind, status), only_start, "{kind:?} {status:?}");
            }
            for status in [S::Starting, S::Ready, S::Paused, S::Error] {
                let only_stop = Controls {
                    stop: true,
                    ..Controls::default()
                };
                assert_eq!(controls(kind, status), only_stop, "{kind:?} {status:?}");
            }
        }
    }

    #[test]
    fn a_hosted_agent_also_restarts_pauses_and_resumes() {
        use AgentStatus as S;
        let hosted = |status| controls(AgentKind::Hosted, status);
        let none = Controls::default();
        for status in [S::Created, S::Stopped] {
            assert_eq!(
                hosted(status),
                Controls {
                    start: true,
                    ..none
                }
            );
        }
        assert_eq!(hosted(S::Starting), Controls { stop: true, ..none });
        assert_eq!(
            hosted(S::Ready),
            Controls {
                stop: true,
                restart: true,
                pause: true,
                ..none
            }
        );
        assert_eq!(
            hosted(S::Paused),
            Controls {
                stop: true,
                resume: true,
                ..none
            }
        );
        assert_eq!(
            hosted(S::Error),
            Controls {
                start: true,
                stop: true,
                restart: true,
                ..none
            }
        );
    }
}
