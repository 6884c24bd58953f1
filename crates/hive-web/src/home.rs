//! The home page: the agents and their states, what needs the operator's attention, the
//! system's health (every signed-in user), and for admins the latest audit records.

use crate::agents::AgentLine;
use crate::page::{Chrome, page_request, refusal, render, when};
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use hive_core::kernel::caller::Caller;
use hive_core::kernel::config::TaskStoreKind;
use hive_proto::agents::AgentStatus;
use hive_proto::auth::AuditFilterQuery;
use hive_proto::{Component, ComponentHealth, HealthReason};
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

/// How this deployment is built, for admins.
struct Health {
    task_store: &'static str,
    version: &'static str,
}

/// The system health report as the page shows it.
struct HealthPanel {
    state: &'static str,
    components: Vec<ComponentLine>,
}

struct ComponentLine {
    name: &'static str,
    required: bool,
    state: &'static str,
    detail: String,
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
    system: HealthPanel,
    activity: Vec<ActivityLine>,
}

/// The system health report (the API's `GET /api/v1/system/health`), in words.
async fn health_panel(state: &AppState) -> HealthPanel {
    let report = state.hive.system_health().await;
    HealthPanel {
        state: report.state.as_str(),
        components: report.components.iter().map(component_line).collect(),
    }
}

fn component_line(component: &ComponentHealth) -> ComponentLine {
    let name = match component.name {
        Component::Database => "Database",
        Component::Redis => "Redis",
        Component::Nats => "NATS",
        Component::Jobs => "Background jobs",
        Component::Sandbox => "Sandbox",
        Component::Disk => "Disk of the data directory",
    };
    let mut detail = Vec::new();
    if let Some(reason) = component.reason {
        detail.push(reason_text(reason).to_owned());
    }
    match component.name {
        Component::Database | Component::Redis | Component::Nats if component.reason.is_none() => {
            detail.push(format!("answers ({} ms)", component.latency_ms));
        }
        _ => {}
    }
    if let Some(jobs) = &component.jobs {
        match (&jobs.leader_since, &jobs.leader_node) {
            (Some(since), _) if jobs.this_node_leads => {
                detail.push(format!("this replica leads since {}", when(*since)));
            }
            (_, Some(node)) => detail.push(format!("led by replica {node}")),
            _ => {}
        }
        if let Some(run) = &jobs.last_run {
            detail.push(format!(
                "last run: {} at {}, {}",
                run.job,
                when(run.started_at),
                run.outcome
            ));
        }
    }
    if let Some(sandbox) = &component.sandbox {
        let backend = sandbox.backend.as_deref().unwrap_or("none");
        let cgroups = if sandbox.cgroups {
            "with cgroups"
        } else {
            "without cgroups"
        };
        detail.push(format!("{backend} backend, {cgroups}"));
    }
    if let Some(disk) = &component.disk {
        detail.push(format!(
            "{} free of {}",
            crate::hosted::size(disk.free_bytes),
            crate::hosted::size(disk.total_bytes)
        ));
    }
    ComponentLine {
        name,
        required: component.required,
        state: component.state.as_str(),
        detail: detail.join("; "),
    }
}

fn reason_text(reason: HealthReason) -> &'static str {
    match reason {
        HealthReason::Unreachable => "does not answer (the server's log says why)",
        HealthReason::TimedOut => "no answer in time",
        HealthReason::RunnerStopped => "the job runner is not running on this replica",
        HealthReason::NoRecentRun => "no replica ran a job lately: none leads",
        HealthReason::HistoryUnreadable => "the job history cannot be read",
        HealthReason::Disabled => "off (HIVE_SANDBOX=off)",
        HealthReason::NotThisProcess => "this process does not run hosted agents",
        HealthReason::Unavailable => "cannot run on this host (the server's log says why)",
        HealthReason::LimitsPerProcess => "limits hold per process only",
        HealthReason::LowSpace => "low on space",
        HealthReason::OutOfSpace => "out of space",
        HealthReason::Unreadable => "cannot be queried",
    }
}

fn health(state: &AppState) -> Health {
    Health {
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
    page.health = Some(health(state));
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
        system: health_panel(&state).await,
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
