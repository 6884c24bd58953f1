//! `hive agent`: the agent registry, through a running server's API when one is named, else
//! on the stopped instance's data directory (`instance`), acting for an owner; the hosted
//! agents' commands are clients of a running server only (`hosted`).

use crate::admin::{ListArgs, acting_as, own_account};
use crate::instance::{Failure, Instance, Target};
use crate::output::{self, Column, column};
use crate::remote::{Api, CALL_TIMEOUT, emit, shown};
use clap::Subcommand;
use hive_core::Hive;
use hive_core::agents::import::ImportRequest;
use hive_core::agents::{DEFAULT_LIMITS, NewAgent};
use hive_core::kernel::caller::Caller;
use hive_proto::agents::{AgentKind, AgentView, AgentVisibility, ImportAgentRequest, LimitsView};
use hive_server::views;
use hive_store::AgentLimits;
use reqwest::Method;
use serde_json::Value;

#[derive(Subcommand)]
pub enum AgentAction {
    /// List agents, newest first.
    List {
        #[command(flatten)]
        page: ListArgs,
        #[command(flatten)]
        target: Target,
    },
    /// Register an agent. On the data directory, for --owner (email or id); on a server, for
    /// the account of the token the command uses.
    #[command(visible_alias = "register")]
    Create {
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        name: String,
        /// remote, llm or conformance.
        #[arg(long, value_parser = parse_word::<AgentKind>)]
        kind: AgentKind,
        /// The kind's settings as JSON (credentials only as secret ids), e.g.
        /// '{"url":"https://agent.example.com/a2a"}'.
        #[arg(long, default_value = "{}")]
        runtime: String,
        #[arg(long, default_value = "")]
        description: String,
        /// private, federation or public.
        #[arg(long, value_parser = parse_word::<AgentVisibility>, default_value = "private")]
        visibility: AgentVisibility,
        /// Calls a minute the agent takes, across replicas (1-100000; default 60).
        #[arg(long)]
        requests_per_minute: Option<u32>,
        #[command(flatten)]
        target: Target,
    },
    /// Show an agent (by id or name): its kind, status, runtime settings and limits.
    Show {
        agent: String,
        #[command(flatten)]
        target: Target,
    },
    /// Start an agent (by id or name): ready when reachable, else error with the reason.
    Start {
        agent: String,
        #[command(flatten)]
        target: Target,
    },
    /// Stop an agent (by id or name).
    Stop {
        agent: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete an agent (by id or name): it is removed from the registry, a hosted agent's
    /// sandbox and files with it.
    Delete {
        agent: String,
        #[command(flatten)]
        target: Target,
    },
    /// Send a message to an agent (by id or name) through the A2A gateway, as the CLI, and
    /// print its answer; with --stream, each event as it comes. On the data directory only
    /// (with a server running, chat through its API or dashboard).
    Call {
        agent: String,
        /// The message's text.
        text: String,
        #[arg(long)]
        stream: bool,
        /// The message id (the conformance agent reacts to its prefix); default a new one.
        #[arg(long)]
        message_id: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Read a remote agent's card (through the egress guard) and print the agent it makes;
    /// with --create, register it (for --owner on the data directory, for the token's account
    /// on a server).
    Import {
        url: String,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = parse_word::<AgentVisibility>, default_value = "private")]
        visibility: AgentVisibility,
        #[arg(long)]
        create: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Hosted agents' bundles, logs, stats, restart, pause and resume: through a running
    /// server's API, never the data directory.
    #[command(flatten)]
    Hosted(crate::hosted::HostedAction),
}

impl AgentAction {
    /// The instance options of a registry command (`None` for the hosted agents' commands).
    pub fn target(&self) -> Option<&Target> {
        match self {
            Self::List { target, .. }
            | Self::Create { target, .. }
            | Self::Show { target, .. }
            | Self::Start { target, .. }
            | Self::Stop { target, .. }
            | Self::Delete { target, .. }
            | Self::Call { target, .. }
            | Self::Import { target, .. } => Some(target),
            Self::Hosted(_) => None,
        }
    }
}

/// The columns of `hive agent list`.
const AGENT_COLUMNS: [Column; 7] = [
    column("ID", "id"),
    column("NAME", "name"),
    column("KIND", "kind"),
    column("VISIBILITY", "visibility"),
    column("STATUS", "status"),
    column("OWNER", "ownerId"),
    column("UPDATED", "updatedAt"),
];

fn parse_word<T: std::str::FromStr>(raw: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    raw.parse::<T>().map_err(|e| e.to_string())
}

/// An agent named by its id or its name.
async fn find_agent(hive: &Hive, who: &str) -> Result<hive_store::AgentRow, String> {
    let found = match who.parse::<uuid::Uuid>() {
        Ok(id) => hive.store.agents().get(id, None).await,
        Err(_) => hive.store.agents().find_by_name(who).await,
    };
    found
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no agent {who}"))
}

/// A lifecycle call on an agent named by id or name (`start`, `stop`, `show`): the agent as
/// it is after it.
async fn agent_call(
    api: &Api,
    method: Method,
    who: &str,
    action: &str,
) -> Result<AgentView, Failure> {
    let id = api.agent_id(who).await?;
    Ok(api
        .call(method, &format!("/agents/{id}{action}"), None)
        .await?)
}

/// An agent after a command: its JSON, or its status (and why, when in error).
fn print_agent(agent: &AgentView, as_json: bool) -> Result<(), Failure> {
    if as_json {
        output::json(&output::to_json(agent)?)?;
        return Ok(());
    }
    emit(&format!("{} is {}", shown(&agent.name), agent.status))?;
    if !agent.status_detail.is_empty() {
        emit(&format!("reason: {}", shown(&agent.status_detail)))?;
    }
    Ok(())
}

/// An agent in full, for `show`.
fn print_agent_details(agent: &AgentView, as_json: bool) -> Result<(), Failure> {
    if as_json {
        output::json(&output::to_json(agent)?)?;
        return Ok(());
    }
    let view = output::to_json(agent)?;
    let rows: Vec<Value> = [
        "id",
        "name",
        "kind",
        "visibility",
        "status",
        "statusDetail",
        "ownerId",
        "description",
        "runtime",
        "limits",
        "version",
        "createdAt",
        "updatedAt",
    ]
    .iter()
    .map(|field| serde_json::json!({ "field": field, "value": view.get(*field) }))
    .collect();
    output::table(&rows, &[column("FIELD", "field"), column("VALUE", "value")])?;
    Ok(())
}

pub async fn agent(on: Instance, action: AgentAction, as_json: bool) -> Result<(), Failure> {
    let cli = Caller::cli();
    let meta = crate::admin::cli_meta();
    match action {
        // Dispatched without an instance (`main`): a client of a running server only.
        AgentAction::Hosted(_) => {
            return Err(Failure::Work(
                "this command calls a running server's API; it opens no data directory".into(),
            ));
        }
        AgentAction::List { page, .. } => {
            let listed = match &on {
                Instance::Server(api) => {
                    let request = api.get("/agents", &page.query())?.timeout(CALL_TIMEOUT);
                    api.json::<Value>(request).await?
                }
                Instance::Embedded(hive) => {
                    let agents = hive
                        .agents
                        .list(&cli, &page.page()?)
                        .await
                        .map_err(|e| e.to_string())?;
                    output::page_json(&agents.items, agents.next_cursor, views::agent_view)?
                }
            };
            output::list(&listed, &AGENT_COLUMNS, as_json)?;
        }
        AgentAction::Show { agent, .. } => {
            let shown_agent = match &on {
                Instance::Server(api) => agent_call(api, Method::GET, &agent, "").await?,
                Instance::Embedded(hive) => views::agent_view(&find_agent(hive, &agent).await?),
            };
            print_agent_details(&shown_agent, as_json)?;
        }
        AgentAction::Start { agent, .. } => {
            let started = match &on {
                Instance::Server(api) => agent_call(api, Method::POST, &agent, "/start").await?,
                Instance::Embedded(hive) => {
                    let target = find_agent(hive, &agent).await?;
                    let started = hive
                        .agent_lifecycle
                        .start(&cli, target.id, &meta)
                        .await
                        .map_err(|e| e.to_string())?;
                    views::agent_view(&started)
                }
            };
            print_agent(&started, as_json)?;
        }
        AgentAction::Stop { agent, .. } => {
            let stopped = match &on {
                Instance::Server(api) => agent_call(api, Method::POST, &agent, "/stop").await?,
                Instance::Embedded(hive) => {
                    let target = find_agent(hive, &agent).await?;
                    let stopped = hive
                        .agent_lifecycle
                        .stop(&cli, target.id, &meta)
                        .await
                        .map_err(|e| e.to_string())?;
                    views::agent_view(&stopped)
                }
            };
            print_agent(&stopped, as_json)?;
        }
        AgentAction::Delete { agent, .. } => {
            match &on {
                Instance::Server(api) => {
                    let id = api.agent_id(&agent).await?;
                    api.send(
                        api.request(Method::DELETE, &format!("/agents/{id}"))
                            .timeout(CALL_TIMEOUT),
                    )
                    .await?;
                }
                Instance::Embedded(hive) => {
                    let target = find_agent(hive, &agent).await?;
                    hive.agents
                        .delete(&cli, target.id, &meta)
                        .await
                        .map_err(|e| e.to_string())?;
                    hive.agent_lifecycle.hosted().remove(target.id).await;
                }
            }
            emit(&format!("deleted agent {}", shown(&agent)))?;
        }
        AgentAction::Call {
            agent,
            text,
            stream,
            message_id,
            ..
        } => {
            let Instance::Embedded(hive) = &on else {
                return Err(Failure::Work(
                    "`hive agent call` works on the data directory only; with a server \
                     running, chat through its API (POST /api/v1/agents/{id}/chat) or dashboard"
                        .to_owned(),
                ));
            };
            let target = find_agent(hive, &agent).await?;
            call(hive, &target, text, stream, message_id).await?;
        }
        AgentAction::Create {
            owner,
            name,
            kind,
            runtime,
            description,
            visibility,
            requests_per_minute,
            ..
        } => {
            let runtime: Value = serde_json::from_str(&runtime)
                .map_err(|e| format!("--runtime is not JSON: {e}"))?;
            let limits = requests_per_minute.map(|requests_per_minute| AgentLimits {
                requests_per_minute,
                ..DEFAULT_LIMITS
            });
            let created: AgentView = match &on {
                Instance::Server(api) => {
                    own_account(api, owner.as_deref(), "--owner").await?;
                    let body = serde_json::json!({
                        "name": name,
                        "description": description,
                        "visibility": visibility,
                        "kind": kind,
                        "runtime": runtime,
                        "limits": limits.map(|limits| LimitsView {
                            requests_per_minute: limits.requests_per_minute,
                            tokens_per_day: limits.tokens_per_day,
                            concurrent_tasks: limits.concurrent_tasks,
                            timeout_seconds: limits.timeout_seconds,
                        }),
                    });
                    api.call(Method::POST, "/agents", Some(body)).await?
                }
                Instance::Embedded(hive) => {
                    let caller = acting_as(hive, owner.as_deref(), "--owner").await?;
                    let new = NewAgent {
                        name,
                        description,
                        visibility,
                        kind,
                        runtime,
                        skills: None,
                        limits,
                    };
                    let agent = hive
                        .agents
                        .create(&caller, &new, &meta)
                        .await
                        .map_err(|e| e.to_string())?;
                    views::agent_view(&agent)
                }
            };
            if as_json {
                output::json(&output::to_json(&created)?)?;
            } else {
                emit(&format!(
                    "created agent {} ({})",
                    shown(&created.name),
                    created.id
                ))?;
            }
        }
        AgentAction::Import {
            url,
            owner,
            name,
            visibility,
            create,
            ..
        } => import(&on, url, owner, name, visibility, create, as_json).await?,
    }
    Ok(())
}

/// `hive agent import`: the card read and the agent it makes (registered with `create`).
async fn import(
    on: &Instance,
    url: String,
    owner: Option<String>,
    name: Option<String>,
    visibility: AgentVisibility,
    create: bool,
    as_json: bool,
) -> Result<(), Failure> {
    let answer: Value = match on {
        Instance::Server(api) => {
            own_account(api, owner.as_deref(), "--owner").await?;
            let body = output::to_json(&ImportAgentRequest {
                url,
                create,
                name,
                visibility,
                credential_secret_id: None,
            })?;
            api.call(Method::POST, "/agents/import", Some(body)).await?
        }
        Instance::Embedded(hive) => {
            let caller = acting_as(hive, owner.as_deref(), "--owner").await?;
            let request = ImportRequest {
                url,
                name,
                visibility,
                credential_secret_id: None,
            };
            let importer = &hive.agent_import;
            let meta = crate::admin::cli_meta();
            if create {
                let (preview, agent) = importer
                    .import(&caller, &request, &meta)
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::json!({
                    "cardUrl": preview.card_url,
                    "agent": output::to_json(&views::agent_view(&agent))?,
                })
            } else {
                let preview = importer
                    .preview(&caller, &request, &meta)
                    .await
                    .map_err(|e| e.to_string())?;
                let proposed = &preview.agent;
                serde_json::json!({
                    "cardUrl": preview.card_url,
                    "agent": {
                        "name": proposed.name,
                        "runtime": proposed.runtime,
                        "skills": proposed.skills,
                    },
                })
            }
        }
    };
    if as_json {
        output::json(&answer)?;
        return Ok(());
    }
    let text = |value: Option<&Value>| match value {
        Some(Value::String(text)) => shown(text).into_owned(),
        Some(other) => shown(&other.to_string()).into_owned(),
        None => String::new(),
    };
    let agent = answer.get("agent");
    let field = |name: &str| text(agent.and_then(|agent| agent.get(name)));
    let card = text(answer.get("cardUrl"));
    if create {
        emit(&format!(
            "created agent {} ({}) from {card}",
            field("name"),
            field("id")
        ))?;
    } else {
        emit(&format!("card: {card}"))?;
        emit(&format!("name: {}", field("name")))?;
        emit(&format!("runtime: {}", field("runtime")))?;
        let skills: Vec<String> = agent
            .and_then(|agent| agent.get("skills"))
            .and_then(Value::as_array)
            .map(|skills| skills.iter().map(|skill| text(skill.get("id"))).collect())
            .unwrap_or_default();
        emit(&format!("skills: {}", skills.join(", ")))?;
        eprintln!("a preview: nothing registered (add --create)");
    }
    Ok(())
}

async fn call(
    hive: &Hive,
    agent: &hive_store::AgentRow,
    text: String,
    stream: bool,
    message_id: Option<String>,
) -> Result<(), String> {
    use hive_a2a::jsonrpc::{Call, Id, Outcome, Request, Version};
    use hive_a2a::v1::{Message, Part, Role, SendMessageRequest, SendMessageResponse};
    use hive_core::gateway::{GatewayError, Reply, Target};
    let send = SendMessageRequest {
        message: Message {
            message_id: message_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            role: Role::User,
            parts: vec![Part::text(text)],
            ..Message::default()
        },
        ..SendMessageRequest::default()
    };
    let request = Request {
        id: Id::from(1),
        version: Version::V1_0,
        call: if stream {
            Call::SendStreamingMessage(send)
        } else {
            Call::SendMessage(send)
        },
    };
    let reply = hive
        .gateway
        .call(
            &Caller::cli(),
            Target::Agent(agent.id),
            request,
            &crate::admin::cli_meta(),
        )
        .await
        .map_err(|error| match error {
            GatewayError::Throttled { retry_after } => {
                format!("the agent is busy; retry in {retry_after} s")
            }
            GatewayError::Unavailable => "the audit log cannot be written now".to_owned(),
            GatewayError::Billing(refusal) => refusal.to_string(),
        })?;
    let rpc = |error: hive_a2a::error::RpcError| format!("error {}: {}", error.code, error.message);
    match reply {
        Reply::Unary(result) => match (*result).map_err(rpc)? {
            Outcome::SendMessage(SendMessageResponse::Task(task)) => print_task(&task),
            Outcome::SendMessage(SendMessageResponse::Message(message)) => {
                println!("{}", message.text());
            }
            _ => return Err("the agent gave an unexpected answer".into()),
        },
        Reply::Stream(mut events) => {
            while let Some(event) = events.recv().await {
                println!("{}", describe_event(&event.map_err(rpc)?));
            }
        }
    }
    Ok(())
}

/// A task as a person reads it: its id and state, then what the agent said and made.
fn print_task(task: &hive_a2a::v1::Task) {
    println!("task {}: {}", task.id, state_word(task.status.state));
    if let Some(message) = &task.status.message {
        println!("{}", message.text());
    }
    for artifact in &task.artifacts {
        let text: Vec<String> = artifact.parts.iter().map(describe_part).collect();
        println!("artifact {}: {}", artifact.artifact_id, text.join(""));
    }
}

fn state_word(state: hive_a2a::v1::TaskState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
        .trim_start_matches("TASK_STATE_")
        .to_lowercase()
}

fn describe_part(part: &hive_a2a::v1::Part) -> String {
    use hive_a2a::v1::PartContent;
    match &part.content {
        PartContent::Text(text) => text.clone(),
        PartContent::Data(data) => data.to_string(),
        PartContent::Url(url) => format!("<{url}>"),
        PartContent::Raw(raw) => format!("[{} bytes base64]", raw.len()),
    }
}

fn describe_event(event: &hive_a2a::v1::StreamResponse) -> String {
    use hive_a2a::v1::StreamResponse;
    match event {
        StreamResponse::Task(task) => {
            format!("task {}: {}", task.id, state_word(task.status.state))
        }
        StreamResponse::Message(message) => format!("message: {}", message.text()),
        StreamResponse::StatusUpdate(update) => {
            let said = update
                .status
                .message
                .as_ref()
                .map(|message| format!(" — {}", message.text()))
                .unwrap_or_default();
            format!("status: {}{said}", state_word(update.status.state))
        }
        StreamResponse::ArtifactUpdate(update) => {
            let text: Vec<String> = update.artifact.parts.iter().map(describe_part).collect();
            format!(
                "artifact {}: {}",
                update.artifact.artifact_id,
                text.join("")
            )
        }
    }
}
