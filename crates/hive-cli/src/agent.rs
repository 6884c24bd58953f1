//! `hive agent`: the agent registry on the server's own machine, acting for an owner; the
//! hosted agents' commands are clients of a running server instead (`hosted`).

use crate::admin::{cli_meta, find_user};
use clap::Subcommand;
use hive_core::Hive;
use hive_core::agents::import::ImportRequest;
use hive_core::agents::{DEFAULT_LIMITS, NewAgent};
use hive_core::kernel::caller::{Caller, Credential};
use hive_proto::agents::{AgentKind, AgentVisibility};
use hive_store::{AgentLimits, PageRequest};

#[derive(Subcommand)]
pub enum AgentAction {
    /// List agents, newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Register an agent for an owner (email or id).
    Create {
        #[arg(long)]
        owner: String,
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
    },
    /// Start an agent (by id or name): ready when reachable, else error with the reason.
    Start { agent: String },
    /// Stop an agent (by id or name).
    Stop { agent: String },
    /// Send a message to an agent (by id or name) through the A2A gateway, as the CLI, and
    /// print its answer; with --stream, each event as it comes.
    Call {
        agent: String,
        /// The message's text.
        text: String,
        #[arg(long)]
        stream: bool,
        /// The message id (the conformance agent reacts to its prefix); default a new one.
        #[arg(long)]
        message_id: Option<String>,
    },
    /// Read a remote agent's card (through the egress guard) and print the agent it makes;
    /// with --create, register it for the owner.
    Import {
        url: String,
        #[arg(long)]
        owner: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = parse_word::<AgentVisibility>, default_value = "private")]
        visibility: AgentVisibility,
        #[arg(long)]
        create: bool,
    },
    /// Hosted agents' bundles, logs, stats, restart, pause and resume: through a running
    /// server's API, never the data directory.
    #[command(flatten)]
    Hosted(crate::hosted::HostedAction),
}

fn parse_word<T: std::str::FromStr>(raw: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    raw.parse::<T>().map_err(|e| e.to_string())
}

/// The owner's account as the CLI's caller: their role, the CLI's rights to act.
async fn acting_for(hive: &Hive, owner: &str) -> Result<Caller, String> {
    let user = find_user(hive, owner).await?;
    Ok(Caller {
        role: user.role,
        user: Some(user),
        credential: Credential::Cli,
    })
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

pub async fn agent(hive: &Hive, action: AgentAction) -> Result<(), String> {
    match action {
        // Dispatched before Hive is opened (`main`): a running server holds the data directory.
        AgentAction::Hosted(_) => {
            return Err(
                "this command calls a running server's API; it opens no data directory".into(),
            );
        }
        AgentAction::Start { agent } => {
            let target = find_agent(hive, &agent).await?;
            let started = hive
                .agent_lifecycle
                .start(&Caller::cli(), target.id, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            println!("{} is {}", started.name, started.status);
            if !started.status_detail.is_empty() {
                println!("reason: {}", started.status_detail);
            }
        }
        AgentAction::Stop { agent } => {
            let target = find_agent(hive, &agent).await?;
            let stopped = hive
                .agent_lifecycle
                .stop(&Caller::cli(), target.id, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            println!("{} is {}", stopped.name, stopped.status);
        }
        AgentAction::Call {
            agent,
            text,
            stream,
            message_id,
        } => {
            let target = find_agent(hive, &agent).await?;
            call(hive, &target, text, stream, message_id).await?;
        }
        AgentAction::List { limit } => {
            let page = PageRequest::first(limit).map_err(|e| e.to_string())?;
            let agents = hive
                .agents
                .list(&Caller::cli(), &page)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{:<36}  {:<11}  {:<10}  {:<8}  name",
                "id", "kind", "visibility", "status"
            );
            for agent in agents.items {
                println!(
                    "{:<36}  {:<11}  {:<10}  {:<8}  {}",
                    agent.id, agent.kind, agent.visibility, agent.status, agent.name
                );
            }
        }
        AgentAction::Create {
            owner,
            name,
            kind,
            runtime,
            description,
            visibility,
            requests_per_minute,
        } => {
            let caller = acting_for(hive, &owner).await?;
            let runtime = serde_json::from_str(&runtime)
                .map_err(|e| format!("--runtime is not JSON: {e}"))?;
            let new = NewAgent {
                name,
                description,
                visibility,
                kind,
                runtime,
                skills: None,
                limits: requests_per_minute.map(|requests_per_minute| AgentLimits {
                    requests_per_minute,
                    ..DEFAULT_LIMITS
                }),
            };
            let agent = hive
                .agents
                .create(&caller, &new, &cli_meta())
                .await
                .map_err(|e| e.to_string())?;
            println!("created agent {} ({})", agent.name, agent.id);
        }
        AgentAction::Import {
            url,
            owner,
            name,
            visibility,
            create,
        } => {
            let caller = acting_for(hive, &owner).await?;
            let request = ImportRequest {
                url,
                name,
                visibility,
                credential_secret_id: None,
            };
            let importer = &hive.agent_import;
            if create {
                let (preview, agent) = importer
                    .import(&caller, &request, &cli_meta())
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "created agent {} ({}) from {}",
                    agent.name, agent.id, preview.card_url
                );
            } else {
                let preview = importer
                    .preview(&caller, &request, &cli_meta())
                    .await
                    .map_err(|e| e.to_string())?;
                let proposed = &preview.agent;
                println!("card: {}", preview.card_url);
                println!("name: {}", proposed.name);
                println!("runtime: {}", proposed.runtime);
                let skills = proposed.skills.as_deref().unwrap_or_default();
                let ids: Vec<&str> = skills.iter().map(|s| s.id.as_str()).collect();
                println!("skills: {}", ids.join(", "));
                eprintln!("a preview: nothing registered (add --create)");
            }
        }
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
            &cli_meta(),
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
