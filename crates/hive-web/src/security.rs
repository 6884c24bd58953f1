//! Security settings for admins: the egress allowlist (the admin's part of it), whether
//! workflows may have code nodes, and the vault's data keys with their use, and their rotation.

use crate::page::{Chrome, Refused, refusal, shown, shown_refused, when};
use askama::Template;
use axum::extract::{Form, State};
use axum::response::Response;
use hive_core::kernel::caller::Caller;
use hive_core::kernel::settings::{CodeNodesOverride, SecuritySettings, WorkflowSettings};
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta};
use http::StatusCode;
use serde::Deserialize;

struct KeyLine {
    id: u32,
    created: String,
    active: bool,
    retired: String,
    secrets: u64,
    encryptions: u64,
}

#[derive(Template)]
#[template(path = "security.html")]
struct SecurityPage<'a> {
    chrome: Chrome,
    title: &'a str,
    /// The admin's list, one entry a line, as the form edits it.
    allowlist: String,
    /// `HIVE_EGRESS_FETCH_HOST_ALLOWLIST`: shown, changed only in the configuration.
    operator_allowlist: Vec<String>,
    version: String,
    /// The admins' `workflowCodeNodes`: `inherit`, `off` or `allow`.
    code_nodes: &'static str,
    code_nodes_version: String,
    /// Why code nodes are off now, or none when they are on.
    code_nodes_refusal: Option<&'static str>,
    /// `HIVE_WORKFLOW_DISABLE_CODE_NODE=true`: the setting cannot turn them on.
    code_nodes_forced_off: bool,
    keys: Vec<KeyLine>,
    notice: Option<String>,
    error: Option<String>,
}

async fn page_of(state: &AppState, caller: &Caller) -> Result<SecurityPage<'static>, Refused> {
    let keys = state.hive.key_admin.keys(caller).await.map_err(refusal)?;
    let security = state.hive.settings.security();
    let workflows = state.hive.settings.workflows();
    let gate = state.hive.settings.code_nodes();
    Ok(SecurityPage {
        code_nodes: workflows.settings.workflow_code_nodes.as_str(),
        code_nodes_version: workflows.version.map(|v| v.to_string()).unwrap_or_default(),
        code_nodes_refusal: gate.refusal(),
        code_nodes_forced_off: gate.default_of_configuration().forced_off,
        chrome: Chrome::of(caller),
        title: "Security",
        allowlist: security.settings.egress_host_allowlist.join("\n"),
        operator_allowlist: state.hive.egress.operator_allowlist_entries(),
        version: security.version.map(|v| v.to_string()).unwrap_or_default(),
        keys: keys
            .into_iter()
            .map(|key| KeyLine {
                id: key.id,
                created: when(key.created_at),
                active: key.active,
                retired: key.retired_at.map(when).unwrap_or_default(),
                secrets: key.secrets,
                encryptions: key.encryptions_reserved,
            })
            .collect(),
        notice: None,
        error: None,
    })
}

pub async fn page(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Response {
    shown(page_of(&state, &caller).await)
}

/// The page again, saying how the change went.
async fn after(state: &AppState, caller: &Caller, done: Result<String, Refused>) -> Response {
    let built = page_of(state, caller).await;
    match done {
        Ok(notice) => shown_refused(built, StatusCode::OK, |page| page.notice = Some(notice)),
        Err((status, message)) => shown_refused(built, status, |page| page.error = Some(message)),
    }
}

#[derive(Deserialize)]
pub struct AllowlistForm {
    allowlist: String,
    #[serde(default)]
    version: String,
}

pub async fn set_allowlist(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<AllowlistForm>,
) -> Response {
    let entries = form
        .allowlist
        .lines()
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect();
    let version = match form.version.trim() {
        "" => Ok(None),
        text => text.parse::<i64>().map(Some).map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                "The form was changed: reload the page.".to_owned(),
            )
        }),
    };
    let done = match version {
        Ok(version) => state
            .hive
            .settings
            .put_security(
                &caller,
                SecuritySettings {
                    egress_host_allowlist: entries,
                },
                version,
                &meta,
            )
            .await
            .map(|_| "The allowlist is saved; every replica follows it.".to_owned())
            .map_err(refusal),
        Err(refused) => Err(refused),
    };
    after(&state, &caller, done).await
}

#[derive(Deserialize)]
pub struct CodeNodesForm {
    setting: String,
    #[serde(default)]
    version: String,
}

/// The admins' `workflowCodeNodes`: inherit the configuration's default, off, or allow.
pub async fn set_code_nodes(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<CodeNodesForm>,
) -> Response {
    let setting = match form.setting.as_str() {
        "inherit" => Ok(CodeNodesOverride::Inherit),
        "off" => Ok(CodeNodesOverride::Off),
        "allow" => Ok(CodeNodesOverride::Allow),
        _ => Err((
            StatusCode::BAD_REQUEST,
            "Choose inherit, off or allow.".to_owned(),
        )),
    };
    let version = match form.version.trim() {
        "" => Ok(None),
        text => text.parse::<i64>().map(Some).map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                "The form was changed: reload the page.".to_owned(),
            )
        }),
    };
    let done = match (setting, version) {
        (Ok(setting), Ok(version)) => state
            .hive
            .settings
            .put_workflows(
                &caller,
                WorkflowSettings {
                    workflow_code_nodes: setting,
                },
                version,
                &meta,
            )
            .await
            .map(|_| "The code nodes' setting is saved; every replica follows it.".to_owned())
            .map_err(refusal),
        (Err(refused), _) | (_, Err(refused)) => Err(refused),
    };
    after(&state, &caller, done).await
}

pub async fn rotate_key(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Response {
    let done = state
        .hive
        .key_admin
        .rotate(&caller, &meta)
        .await
        .map(|rotation| {
            format!(
                "Key {} now seals new values; older values are re-sealed under it in the background.",
                rotation.active_key_id
            )
        })
        .map_err(refusal);
    after(&state, &caller, done).await
}
