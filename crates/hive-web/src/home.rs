//! The home page: the agents and their states, what needs the operator's attention, and for
//! admins the system's health and the latest audit records.

use crate::agents::AgentLine;
use crate::page::{Chrome, page_request, refusal, render, when};
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use hive_core::kernel::caller::Caller;
use hive_core::kernel::config::TaskStoreKind;
use hive_proto::agents::AgentStatus;
use hive_proto::auth::AuditFilterQuery;
use hive_server::AppState;
use hive_server::auth::Authenticated;
use http::StatusCode;

/// Agents shown on the home page; the agents page pages through all of them.
const AGENTS_SHOWN: u32 = 50;
/// Audit records shown as recent activity; the audit log pages through all of them.
const ACTIVITY_SHOWN: u32 = 10;
/// An active vault data key older than this is worth rotating (a cryptoperiod well inside the
/// two years NIST SP 800-57 gives symmetric data-encryption keys).
const KEY_AGE_TO_ROTATE: time::Duration = time::Duration::days(365);

/// The system's state, for admins.
struct Health {
    /// How long the database took to answer a ping, or why it did not (no detail: the log
    /// has it).
    database: Result<u128, &'static str>,
    task_store: &'static str,
    version: &'static str,
}

struct ActivityLine {
    at: String,
    actor: String,
    action: String,
    outcome: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    chrome: Chrome,
    title: &'a str,
    agents: Vec<AgentLine>,
    more_agents: bool,
    attention: Vec<String>,
    agents_error: Option<String>,
    health: Option<Health>,
    activity: Vec<ActivityLine>,
}

async fn health(state: &AppState) -> Health {
    let started = std::time::Instant::now();
    let database = match state.hive.check_dependencies().await {
        Ok(()) => Ok(started.elapsed().as_millis()),
        Err(reason) => {
            tracing::warn!(%reason, "home page: the database did not answer");
            Err("does not answer (the server's log says why)")
        }
    };
    Health {
        database,
        task_store: match state.hive.config.task_store {
            TaskStoreKind::Memory => "memory (tasks do not survive a restart)",
            TaskStoreKind::Redis => "Redis",
            TaskStoreKind::Database => "the database",
        },
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// The latest audit records, and what in the vault needs the admin.
async fn admin_view(state: &AppState, caller: &Caller, page: &mut HomePage<'_>) {
    page.health = Some(health(state).await);
    if let Ok(request) = page_request(ACTIVITY_SHOWN, None)
        && let Ok(listed) = state
            .hive
            .audit_log
            .list(caller, &AuditFilterQuery::default(), &request)
            .await
    {
        page.activity = listed
            .items
            .into_iter()
            .map(|record| ActivityLine {
                at: when(record.at),
                actor: record.actor,
                action: record.action,
                outcome: record.outcome,
            })
            .collect();
    }
    let now = time::OffsetDateTime::now_utc();
    if let Ok(keys) = state.hive.key_admin.keys(caller).await {
        for key in keys.iter().filter(|key| key.active) {
            let age = now - key.created_at;
            if age > KEY_AGE_TO_ROTATE {
                page.attention.push(format!(
                    "The vault's data key {} is {} days old: rotate it on the Security page.",
                    key.id,
                    age.whole_days()
                ));
            }
        }
    }
}

pub async fn page(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Response {
    let chrome = Chrome::of(&caller);
    let mut page = HomePage {
        title: "Home",
        agents: Vec::new(),
        more_agents: false,
        attention: Vec::new(),
        agents_error: None,
        health: None,
        activity: Vec::new(),
        chrome,
    };
    if page.chrome.operator {
        let listed = match page_request(AGENTS_SHOWN, None) {
            Ok(request) => state
                .hive
                .agents
                .list(&caller, &request)
                .await
                .map_err(|error| refusal(error).1),
            Err((_, message)) => Err(message),
        };
        match listed {
            Ok(listed) => {
                page.more_agents = listed.next_cursor.is_some();
                for agent in listed.items {
                    if agent.status == AgentStatus::Error {
                        page.attention
                            .push(format!("The agent {} is in error.", agent.name));
                    }
                    page.agents.push(crate::agents::line(agent));
                }
            }
            Err(message) => page.agents_error = Some(message),
        }
    }
    if page.chrome.admin {
        admin_view(&state, &caller, &mut page).await;
    }
    render(StatusCode::OK, &page)
}
