//! The A2A gateway: routes each JSON-RPC call to the agent it names, checks that the caller may
//! reach that agent and that task, keeps the tasks of the agents that run inside Hive, and
//! audits every call (method, agent, caller, outcome, duration — never message contents).
//!
//! Who may see and call an agent is [`crate::agents::visible_to`]; tasks belong to the
//! principal that created them (a user, with all their sessions and tokens, or the internal
//! token): anyone else's task is "not found" (-32001), whatever endpoint asks.

mod book;
mod card;
pub mod conversations;
mod discards;
mod llm_agent;
mod local;
pub mod push;
mod remote;

pub use book::StreamItem;

use crate::agents::{conformance, visible_to};
use crate::identity::{Identity, IdentityError};
use crate::kernel::audit::{AuditAction, AuditEvent};
use crate::kernel::caller::{Caller, Credential, RequestMeta};
use crate::kernel::config::A2aConfig;
use book::{Entry, StoredTask, TaskBook, shaped};
use card::CardBase;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::jsonrpc::{Call, Outcome, Request, Version};
use hive_a2a::state_machine;
use hive_a2a::v1::{self, AgentCard, Message, SendMessageRequest, StreamResponse, Task};
use hive_proto::SharedClock;
use hive_proto::agents::{AgentKind, AgentStatus, AgentVisibility};
use hive_state::{OutageMode, Policy, Quota, RateLimiter, Scope, TaskEvents, TaskStore};
use hive_store::{AgentRow, AuditOutcome, PageRequest, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// The metadata key of a message (or of its request) that names the instance skill — the
/// agent — the message is for.
pub const SKILL_METADATA_KEY: &str = "skill";

/// Agents the instance card lists at most.
const MAX_CARD_AGENTS: usize = 1000;

/// Tasks a `ListTasks` page holds by default and at most.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 100;

/// How long a cancellation waits for the executor running the task to confirm it.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Which endpoint a call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/api/a2a/jsonrpc`: the agent is named by the message's metadata, by the task, or is
    /// `A2A_DEFAULT_AGENT`.
    Instance,
    /// `/api/a2a/agents/{id}/jsonrpc`: that agent, and only its tasks.
    Agent(Uuid),
}

/// The answer to a call.
#[derive(Debug)]
pub enum Reply {
    /// One JSON-RPC result or error.
    Unary(Box<Result<Outcome, RpcError>>),
    /// An event stream: each item one event, or the error that ends it.
    Stream(mpsc::Receiver<StreamItem>),
}

/// A card and when what it says last changed (for `Last-Modified`): the latest change of an
/// agent it lists, or the start of this process (whose version the card names).
#[derive(Debug, Clone)]
pub struct ServedCard {
    pub card: AgentCard,
    pub modified: time::OffsetDateTime,
}

/// A call refused before it reached an agent, answered at the HTTP level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// A limit of the agent (requests a minute, concurrent tasks) is reached.
    #[error("the agent is busy; retry in {retry_after} s")]
    Throttled { retry_after: u64 },
    /// The audit record of the call could not be written, or shared state is down.
    #[error("unavailable")]
    Unavailable,
}

#[derive(Debug)]
pub struct Gateway {
    store: Arc<dyn Store>,
    identity: Arc<Identity>,
    egress: Arc<crate::kernel::egress::Egress>,
    secrets: Arc<crate::vault::secrets::SecretService>,
    push: Arc<crate::gateway::push::PushConfigs>,
    llm: Arc<crate::agents::llm::LlmClient>,
    usage: Arc<crate::agents::llm::UsageMeter>,
    limiter: Arc<dyn RateLimiter>,
    book: Arc<TaskBook>,
    settings: A2aConfig,
    base: CardBase,
    /// Per agent: its concurrent-task limit and the permits of that limit.
    slots: Mutex<HashMap<Uuid, (u32, Arc<Semaphore>)>>,
    executors: TaskTracker,
    shutdown: CancellationToken,
    started_at: time::OffsetDateTime,
}

/// Who a task belongs to: a user with all their sessions and tokens, or the internal token.
pub fn principal(caller: &Caller) -> String {
    caller.owner().to_string()
}

/// The parts of a gateway's construction that come from the rest of Hive.
pub struct GatewayParts {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
    pub egress: Arc<crate::kernel::egress::Egress>,
    pub secrets: Arc<crate::vault::secrets::SecretService>,
    pub push: Arc<crate::gateway::push::PushConfigs>,
    pub llm: Arc<crate::agents::llm::LlmClient>,
    pub usage: Arc<crate::agents::llm::UsageMeter>,
    pub limiter: Arc<dyn RateLimiter>,
    pub tasks: Arc<dyn TaskStore>,
    pub task_events: Arc<TaskEvents>,
    pub clock: SharedClock,
    pub task_ttl: Duration,
    pub settings: A2aConfig,
    /// `AUTH_URL`, where the cards say Hive is.
    pub base_url: String,
}

impl Gateway {
    pub fn new(parts: GatewayParts) -> Self {
        let started_at = hive_store::truncate_to_micros(parts.clock.now())
            .replace_nanosecond(0)
            .unwrap_or_else(|_| parts.clock.now());
        Self {
            started_at,
            store: parts.store,
            identity: parts.identity,
            egress: parts.egress,
            secrets: parts.secrets,
            limiter: parts.limiter,
            book: Arc::new(TaskBook::new(
                parts.tasks,
                parts.task_events,
                parts.clock,
                parts.task_ttl,
                Arc::clone(&parts.push),
            )),
            push: parts.push,
            llm: parts.llm,
            usage: parts.usage,
            settings: parts.settings,
            base: CardBase {
                base_url: parts.base_url.trim_end_matches('/').to_owned(),
                push_notifications: true,
            },
            slots: Mutex::new(HashMap::new()),
            executors: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        }
    }

    pub fn settings(&self) -> &A2aConfig {
        &self.settings
    }

    /// Whether the caller's role reaches `A2A_JSONRPC_MIN_ROLE`.
    /// Peers and the public tier are let in by their own gates (federation, the method
    /// allowlist), not by the local role minimum.
    pub fn may_call(&self, caller: &Caller) -> bool {
        caller.is_remote() || caller.role >= self.settings.min_role
    }

    /// The agent, if the caller (none: anonymous) may see it; anonymous callers see public
    /// agents only.
    pub async fn visible_agent(
        &self,
        caller: Option<&Caller>,
        id: Uuid,
    ) -> Result<Option<AgentRow>, IdentityError> {
        let agent = self.store.agents().get(id, None).await?;
        Ok(agent.filter(|agent| sees(caller, agent)))
    }

    /// The instance card for this caller: a skill for each ready agent it may see.
    pub async fn instance_card(
        &self,
        caller: Option<&Caller>,
        version: Version,
    ) -> Result<AgentCard, IdentityError> {
        Ok(self.served_instance_card(caller, version).await?.card)
    }

    /// The instance card with when what it lists last changed.
    pub async fn served_instance_card(
        &self,
        caller: Option<&Caller>,
        version: Version,
    ) -> Result<ServedCard, IdentityError> {
        let mut agents = Vec::new();
        let mut page = PageRequest::first(100).map_err(IdentityError::from)?;
        loop {
            let found = self.store.agents().list(None, &page).await?;
            agents.extend(
                found
                    .items
                    .into_iter()
                    .filter(|agent| agent.status == AgentStatus::Ready && sees(caller, agent)),
            );
            match found.next_cursor {
                Some(cursor) if agents.len() < MAX_CARD_AGENTS => {
                    page = PageRequest::new(100, Some(&cursor)).map_err(IdentityError::from)?;
                }
                _ => break,
            }
        }
        agents.truncate(MAX_CARD_AGENTS);
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        let modified = agents
            .iter()
            .map(|agent| agent.updated_at)
            .max()
            .unwrap_or(self.started_at);
        Ok(ServedCard {
            card: card::instance_card(&self.base, version, &agents),
            modified: modified.max(self.started_at),
        })
    }

    /// An agent's own card.
    pub fn agent_card(&self, agent: &AgentRow, version: Version) -> AgentCard {
        card::agent_card(&self.base, version, agent)
    }

    /// An agent's own card with when it last changed.
    pub fn served_agent_card(&self, agent: &AgentRow, version: Version) -> ServedCard {
        ServedCard {
            card: self.agent_card(agent, version),
            modified: agent.updated_at.max(self.started_at),
        }
    }

    /// Handles one call of an authorized caller (the route checked role and scope), audited.
    pub async fn call(
        &self,
        caller: &Caller,
        target: Target,
        request: Request,
        meta: &RequestMeta,
    ) -> Result<Reply, GatewayError> {
        let started = Instant::now();
        let method = request.call.method();
        let mut agent_seen = None;
        let reply = self
            .dispatch(
                &Ctx {
                    caller,
                    owner: principal(caller),
                    meta,
                },
                target,
                request,
                &mut agent_seen,
            )
            .await;
        let outcome = match &reply {
            Ok(Reply::Unary(result)) if result.is_ok() => "ok",
            Ok(Reply::Unary(_)) => "error",
            Ok(Reply::Stream(_)) => "stream",
            Err(GatewayError::Throttled { .. }) => "throttled",
            Err(GatewayError::Unavailable) => "unavailable",
        };
        let code = match &reply {
            Ok(Reply::Unary(result)) => result.as_ref().as_ref().err().map(|error| error.code),
            _ => None,
        };
        let (action, peer_subject) = match &caller.credential {
            Credential::Peer { subject, .. } => {
                (AuditAction::MeshFederationInbound, Some(subject.as_str()))
            }
            Credential::PublicTier { .. } => (AuditAction::MeshPublicTierCall, None),
            _ => (AuditAction::A2aCall, None),
        };
        let entry = AuditEvent {
            principal: caller.principal(),
            action,
            target: agent_seen.map(|id: Uuid| format!("agent:{id}")),
            outcome: match outcome {
                "ok" | "stream" => AuditOutcome::Success,
                "throttled" => AuditOutcome::Denied,
                _ => AuditOutcome::Failure,
            },
            detail: serde_json::json!({
                "method": method.name(Version::V1_0),
                "endpoint": match target { Target::Instance => "instance", Target::Agent(_) => "agent" },
                "outcome": outcome,
                "errorCode": code,
                "durationMs": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        };
        let mut entry = entry;
        if let (Some(subject), Some(detail)) = (peer_subject, entry.detail.as_object_mut()) {
            detail.insert("peerSubject".to_owned(), subject.into());
        }
        // A call whose record cannot be written is not answered as if it had been.
        if self.identity.auditor().record(entry, meta).await.is_err() {
            return Err(GatewayError::Unavailable);
        }
        metrics::counter!("hive_a2a_calls_total", "method" => method.name(Version::V1_0).unwrap_or("unknown"), "outcome" => outcome).increment(1);
        reply
    }

    async fn dispatch(
        &self,
        ctx: &Ctx<'_>,
        target: Target,
        request: Request,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<Reply, GatewayError> {
        let caller = ctx.caller;
        let owner = ctx.owner.clone();
        match request.call {
            Call::SendMessage(send) => self.send(ctx, target, send, false, agent_seen).await,
            Call::SendStreamingMessage(send) => {
                self.send(ctx, target, send, true, agent_seen).await
            }
            Call::GetTask(get) => {
                let task = match self.task_of(&owner, target, &get.id, agent_seen).await {
                    Ok(entry) if entry.stored.upstream.is_some() && !entry.stored.running => {
                        self.refresh_remote(ctx, entry, get.history_length).await
                    }
                    Ok(entry) => Ok(entry.stored.task),
                    Err(error) => Err(error),
                };
                unary(
                    task.and_then(|task| {
                        Ok(Outcome::Task(shaped(task, get.history_length, true)?))
                    }),
                )
            }
            Call::ListTasks(list) => unary(self.list(&owner, target, list).await),
            Call::CancelTask(cancel) => unary(
                self.cancel(ctx, target, &cancel.id, agent_seen)
                    .await
                    .map(Outcome::Task),
            ),
            Call::SubscribeToTask(subscribe) => {
                match self.subscribe(ctx, target, &subscribe.id, agent_seen).await {
                    Ok(stream) => Ok(Reply::Stream(stream)),
                    Err(refused) => failed(refused),
                }
            }
            call @ (Call::CreateTaskPushNotificationConfig(_)
            | Call::GetTaskPushNotificationConfig(_)
            | Call::ListTaskPushNotificationConfigs(_)
            | Call::DeleteTaskPushNotificationConfig(_)) => {
                unary(self.push_call(&owner, target, call, agent_seen).await)
            }
            Call::GetExtendedAgentCard(_) => unary(
                self.extended_card(caller, target, request.version)
                    .await
                    .map(|card| Outcome::AgentCard(Box::new(card)))
                    .map_err(Refused::Rpc),
            ),
        }
    }

    async fn extended_card(
        &self,
        caller: &Caller,
        target: Target,
        version: Version,
    ) -> Result<AgentCard, RpcError> {
        match target {
            Target::Instance => self
                .instance_card(Some(caller), version)
                .await
                .map_err(|_| internal()),
            Target::Agent(id) => match self.visible_agent(Some(caller), id).await {
                Ok(Some(agent)) => Ok(self.agent_card(&agent, version)),
                Ok(None) => Err(ErrorCode::ExtendedAgentCardNotConfigured.error()),
                Err(_) => Err(internal()),
            },
        }
    }

    /// The caller's task, reached from this endpoint: at an agent's endpoint only that
    /// agent's tasks exist.
    async fn task_of(
        &self,
        owner: &str,
        target: Target,
        id: &str,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<Entry, Refused> {
        let entry = self.book.load(owner, id).await?;
        let entry = entry.filter(|entry| match target {
            Target::Instance => true,
            Target::Agent(agent) => entry.agent_id == agent,
        });
        let entry = entry.ok_or_else(|| ErrorCode::TaskNotFound.error())?;
        *agent_seen = Some(entry.agent_id);
        Ok(entry)
    }

    /// The agent a new message is for: the endpoint's, the one its metadata's skill names, or
    /// the default; it must be one the caller may see, and ready.
    async fn agent_for(
        &self,
        caller: &Caller,
        target: Target,
        send: &SendMessageRequest,
    ) -> Result<AgentRow, Refused> {
        let unknown = || {
            ErrorCode::InvalidParams.with_message(
                "no such agent: name one of the agent card's skills in metadata.skill",
            )
        };
        let agent = match target {
            Target::Agent(id) => self
                .store
                .agents()
                .get(id, None)
                .await
                .map_err(store_error)?,
            Target::Instance => {
                let named = skill_of(send)
                    .map(str::to_owned)
                    .or_else(|| self.settings.default_agent.clone());
                let Some(name) = named else {
                    return Err(ErrorCode::InvalidParams
                        .with_message(
                            "no agent named: set metadata.skill to one of the agent card's skills",
                        )
                        .into());
                };
                self.find_agent(&name).await?
            }
        };
        let agent = agent
            .filter(|agent| sees(Some(caller), agent))
            .ok_or_else(unknown)?;
        if agent.status != AgentStatus::Ready {
            return Err(ErrorCode::InternalError
                .with_message(format!("the agent is not ready ({})", agent.status))
                .into());
        }
        Ok(agent)
    }

    async fn find_agent(&self, name_or_id: &str) -> Result<Option<AgentRow>, Refused> {
        let agents = self.store.agents();
        let found = match Uuid::parse_str(name_or_id) {
            Ok(id) => agents.get(id, None).await,
            Err(_) => agents.find_by_name(name_or_id).await,
        };
        found.map_err(store_error)
    }

    async fn send(
        &self,
        ctx: &Ctx<'_>,
        target: Target,
        send: SendMessageRequest,
        streaming: bool,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<Reply, GatewayError> {
        let (caller, owner) = (ctx.caller, ctx.owner.as_str());
        if let Err(invalid) = send.message.validate() {
            return failed(ErrorCode::InvalidParams.with_message(invalid.to_string()));
        }
        // A message on an existing task goes to that task's agent.
        let existing = if send.message.task_id.is_empty() {
            None
        } else {
            match self
                .task_of(owner, target, &send.message.task_id, agent_seen)
                .await
            {
                Ok(entry) => Some(entry),
                Err(error) => return failed(error),
            }
        };
        let agent = match &existing {
            Some(entry) => match self.store.agents().get(entry.agent_id, None).await {
                Ok(Some(agent)) if agent.status == AgentStatus::Ready => agent,
                Ok(Some(agent)) => {
                    return failed(
                        ErrorCode::InternalError
                            .with_message(format!("the agent is not ready ({})", agent.status)),
                    );
                }
                Ok(None) => return failed(ErrorCode::TaskNotFound.error()),
                Err(error) => return failed(store_error(error)),
            },
            None => match self.agent_for(caller, target, &send).await {
                Ok(agent) => agent,
                Err(error) => return failed(error),
            },
        };
        *agent_seen = Some(agent.id);
        self.admit(&agent).await?;
        match agent.kind {
            AgentKind::Conformance => {
                self.send_conformance(owner, &agent, send, existing, streaming)
                    .await
            }
            AgentKind::Remote => {
                self.send_remote(ctx, &agent, send, existing, streaming)
                    .await
            }
            AgentKind::Llm => self.send_llm(ctx, &agent, send, existing, streaming).await,
        }
    }

    /// The agent's requests-a-minute limit, counted per agent across replicas.
    async fn admit(&self, agent: &AgentRow) -> Result<(), GatewayError> {
        let policy = Policy {
            name: "agent",
            quota: Quota {
                limit: agent.limits.requests_per_minute.max(1),
                period: Duration::from_secs(60),
            },
            scope: Scope::Principal,
            auth_related: false,
            outage: OutageMode::LocalFallback,
        };
        let decision = self
            .limiter
            .check(&policy, &format!("agent:{}", agent.id))
            .await
            .map_err(|_| GatewayError::Unavailable)?;
        if decision.allowed {
            Ok(())
        } else {
            Err(GatewayError::Throttled {
                retry_after: decision.retry_after.as_secs().max(1),
            })
        }
    }

    /// A place among the agent's concurrent tasks, or a refusal.
    fn slot(&self, agent: &AgentRow) -> Result<tokio::sync::OwnedSemaphorePermit, GatewayError> {
        let limit = agent.limits.concurrent_tasks.max(1);
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = slots.entry(agent.id).or_insert_with(|| {
                (
                    limit,
                    Arc::new(Semaphore::new(usize::try_from(limit).unwrap_or(1))),
                )
            });
            // A changed limit takes a new set of permits; running tasks keep theirs.
            if entry.0 != limit {
                *entry = (
                    limit,
                    Arc::new(Semaphore::new(usize::try_from(limit).unwrap_or(1))),
                );
            }
            Arc::clone(&entry.1)
        };
        semaphore
            .try_acquire_owned()
            .map_err(|_| GatewayError::Throttled { retry_after: 1 })
    }

    async fn send_conformance(
        &self,
        owner: &str,
        agent: &AgentRow,
        send: SendMessageRequest,
        existing: Option<Entry>,
        streaming: bool,
    ) -> Result<Reply, GatewayError> {
        let agent_message_id = Uuid::new_v4().to_string();
        let (entry, script) = match existing {
            Some(entry) => {
                if entry.stored.running {
                    return failed(still_working());
                }
                match conformance::follow_up(&entry.stored.task, &send.message, &agent_message_id) {
                    Ok(script) => (entry, script),
                    Err(error) => return failed(error),
                }
            }
            None => {
                let task_id = Uuid::new_v4();
                // A context the client names is kept (a conversation's, a caller's own).
                let context_id = if send.message.context_id.is_empty() {
                    Uuid::new_v4().to_string()
                } else {
                    send.message.context_id.clone()
                };
                let ids = conformance::Ids {
                    task_id: task_id.to_string(),
                    context_id,
                    agent_message_id,
                };
                match conformance::react(&send.message, &ids) {
                    conformance::Reaction::Message(message) => {
                        return Ok(direct_message(message, streaming));
                    }
                    conformance::Reaction::Task(script) => (
                        Entry {
                            id: task_id,
                            owner: owner.to_owned(),
                            agent_id: agent.id,
                            stored: StoredTask {
                                task: Task::default(),
                                seq: 0,
                                running: true,
                                upstream: None,
                            },
                        },
                        script,
                    ),
                }
            }
        };
        let mut steps = script.into_steps().into_iter();
        let Some(first) = steps.next() else {
            return failed(internal());
        };
        let run = LocalRun {
            entry,
            first: first.event,
            steps: Box::new(local::ScriptSteps::new(steps)),
        };
        self.run_local(owner, agent, &send, run, streaming).await
    }

    async fn send_llm(
        &self,
        ctx: &Ctx<'_>,
        agent: &AgentRow,
        send: SendMessageRequest,
        existing: Option<Entry>,
        streaming: bool,
    ) -> Result<Reply, GatewayError> {
        let Ok(settings) = serde_json::from_str::<crate::agents::LlmSettings>(&agent.runtime)
        else {
            return failed(internal());
        };
        self.within_token_budget(agent).await?;
        let owner = ctx.owner.as_str();
        let (mut entry, earlier) = match existing {
            Some(entry) => {
                if entry.stored.running {
                    return failed(still_working());
                }
                if entry.stored.task.status.state.is_terminal() {
                    return failed(ErrorCode::UnsupportedOperation.with_message(
                        "The task is in a terminal state and accepts no more messages",
                    ));
                }
                (entry, Vec::new())
            }
            None => {
                let id = Uuid::new_v4();
                let context_id = if send.message.context_id.is_empty() {
                    Uuid::new_v4().to_string()
                } else {
                    send.message.context_id.clone()
                };
                let earlier = self.context_history(owner, agent.id, &context_id).await;
                let entry = Entry {
                    id,
                    owner: owner.to_owned(),
                    agent_id: agent.id,
                    stored: StoredTask {
                        task: Task {
                            id: id.to_string(),
                            context_id,
                            ..Task::default()
                        },
                        seq: 0,
                        running: true,
                        upstream: None,
                    },
                };
                (entry, earlier)
            }
        };
        let mut first = entry.stored.task.clone();
        first.history.push(Message {
            task_id: first.id.clone(),
            context_id: first.context_id.clone(),
            ..send.message.clone()
        });
        first.status = v1::TaskStatus {
            state: v1::TaskState::Submitted,
            ..v1::TaskStatus::default()
        };
        entry.stored.running = true;
        let call = llm_agent::LlmCall {
            client: Arc::clone(&self.llm),
            meter: Arc::clone(&self.usage),
            owner_id: agent.owner_id,
            agent_id: agent.id,
            principal: ctx.owner.clone(),
            messages: llm_agent::conversation(earlier.iter().chain(first.history.iter())),
            settings,
            timeout: Duration::from_secs(u64::from(agent.limits.timeout_seconds.max(1))),
            purpose: crate::kernel::egress::Purpose {
                principal: ctx.caller.principal(),
                feature: crate::agents::llm::FEATURE,
                meta: ctx.meta.clone(),
            },
        };
        let steps = llm_agent::LlmSteps::new(call, first.id.clone(), first.context_id.clone());
        let run = LocalRun {
            entry,
            first: StreamResponse::Task(first),
            steps: Box::new(steps),
        };
        self.run_local(owner, agent, &send, run, streaming).await
    }

    /// Refuses a call once the agent's `tokensPerDay` (0: no budget) is spent for today (UTC).
    async fn within_token_budget(&self, agent: &AgentRow) -> Result<(), GatewayError> {
        let budget = agent.limits.tokens_per_day;
        if budget == 0 {
            return Ok(());
        }
        let spent = self
            .usage
            .tokens_today(agent.id)
            .await
            .map_err(|_| GatewayError::Unavailable)?;
        if spent < budget {
            return Ok(());
        }
        let now = self.book.now();
        let tomorrow = crate::agents::llm::day_start(now) + time::Duration::days(1);
        let wait = u64::try_from((tomorrow - now).whole_seconds()).unwrap_or(1);
        Err(GatewayError::Throttled {
            retry_after: wait.max(1),
        })
    }

    /// The messages of the caller's earlier tasks of this agent in this context, oldest first
    /// (among the caller's 100 latest tasks).
    async fn context_history(&self, owner: &str, agent_id: Uuid, context_id: &str) -> Vec<Message> {
        let Ok(page) = PageRequest::first(MAX_PAGE_SIZE) else {
            return Vec::new();
        };
        let Ok((entries, _)) = self.book.list(owner, &page).await else {
            return Vec::new();
        };
        entries
            .into_iter()
            .rev()
            .filter(|entry| {
                entry.agent_id == agent_id && entry.stored.task.context_id == context_id
            })
            .flat_map(|entry| entry.stored.task.history)
            .collect()
    }

    /// Starts a task of an agent that runs inside Hive: its first event (the task itself) is
    /// stored before anything is answered, so the task exists for every call that follows;
    /// then an executor takes the rest, and the caller gets the stream or — unless it asked to
    /// return at once — the task once settled.
    async fn run_local(
        &self,
        owner: &str,
        agent: &AgentRow,
        send: &SendMessageRequest,
        run: LocalRun,
        streaming: bool,
    ) -> Result<Reply, GatewayError> {
        let configuration = send.configuration.clone().unwrap_or_default();
        let LocalRun {
            mut entry,
            first,
            steps,
        } = run;
        let permit = self.slot(agent)?;
        let Some(cancel) = self.book.claim(entry.id) else {
            return failed(still_working());
        };
        if let Err(error) = self.attach_push(owner, entry.id, send).await {
            self.book.release(entry.id);
            return failed(error);
        }
        entry.stored.running = true;
        let events = self.book.subscribe(entry.id);
        let first = match self.book.advance(&mut entry, first).await {
            Ok(event) => event,
            Err(error) => {
                self.book.release(entry.id);
                return failed(error);
            }
        };
        let task_id = entry.id;
        let after = entry.stored.seq;
        let run = local::Run {
            entry,
            steps,
            cancel,
            permit,
        };
        self.executors.spawn(local::execute(
            Arc::clone(&self.book),
            run,
            self.shutdown.clone(),
        ));
        if streaming {
            let stream = self.book.follow(
                events,
                owner.to_owned(),
                task_id,
                after,
                Some(first),
                self.shutdown.clone(),
            );
            return Ok(Reply::Stream(stream));
        }
        let timeout = Duration::from_secs(u64::from(agent.limits.timeout_seconds.max(1)));
        if !configuration.return_immediately {
            self.wait_until_settled(events, owner, task_id, after, timeout)
                .await;
        }
        let result = match self.book.load(owner, &task_id.to_string()).await {
            Ok(Some(entry)) => shaped(entry.stored.task, configuration.history_length, true)
                .map(|task| Outcome::SendMessage(v1::SendMessageResponse::Task(task)))
                .map_err(Refused::Rpc),
            Ok(None) => Err(ErrorCode::TaskNotFound.error().into()),
            Err(refused) => Err(refused),
        };
        unary(result)
    }

    /// Waits until the task is terminal or interrupted, or `timeout` passes.
    async fn wait_until_settled(
        &self,
        events: tokio::sync::broadcast::Receiver<hive_state::TaskEvent>,
        owner: &str,
        task_id: Uuid,
        after: u64,
        timeout: Duration,
    ) {
        let mut stream = self.book.follow(
            events,
            owner.to_owned(),
            task_id,
            after,
            None,
            self.shutdown.clone(),
        );
        let drained = async { while stream.recv().await.is_some() {} };
        let _ = tokio::time::timeout(timeout, drained).await;
    }

    async fn list(
        &self,
        owner: &str,
        target: Target,
        list: v1::ListTasksRequest,
    ) -> Result<Outcome, Refused> {
        let size = match list.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if (1..=100).contains(&n) => u32::try_from(n).unwrap_or(DEFAULT_PAGE_SIZE),
            Some(_) => {
                return Err(ErrorCode::InvalidParams
                    .with_message(format!("pageSize must be from 1 to {MAX_PAGE_SIZE}"))
                    .into());
            }
        };
        let cursor = (!list.page_token.is_empty()).then_some(list.page_token.as_str());
        let page = PageRequest::new(size, cursor)
            .map_err(|_| ErrorCode::InvalidParams.with_message("pageToken is not valid"))?;
        let with_artifacts = list.include_artifacts.unwrap_or(false);
        let (entries, next) = self.book.list(owner, &page).await?;
        let mut tasks = Vec::with_capacity(entries.len());
        for entry in entries {
            let wanted = match target {
                Target::Instance => true,
                Target::Agent(agent) => entry.agent_id == agent,
            } && (list.context_id.is_empty()
                || entry.stored.task.context_id == list.context_id)
                && (list.status == v1::TaskState::Unspecified
                    || entry.stored.task.status.state == list.status);
            if wanted {
                tasks.push(shaped(
                    entry.stored.task,
                    list.history_length,
                    with_artifacts,
                )?);
            }
        }
        let page_size = i32::try_from(tasks.len()).unwrap_or(i32::MAX);
        Ok(Outcome::ListTasks(v1::ListTasksResponse {
            total_size: page_size,
            page_size,
            tasks,
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn cancel(
        &self,
        ctx: &Ctx<'_>,
        target: Target,
        id: &str,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<Task, Refused> {
        let owner = ctx.owner.as_str();
        let entry = self.task_of(owner, target, id, agent_seen).await?;
        if !state_machine::is_cancelable(entry.stored.task.status.state) {
            return Err(ErrorCode::TaskNotCancelable.error().into());
        }
        if entry.stored.upstream.is_some() {
            return self.cancel_remote(ctx, entry).await;
        }
        if entry.stored.running {
            // The executor ends the task itself; wait for it to say so.
            let events = self.book.subscribe(entry.id);
            match self.book.local_executor(entry.id) {
                Some(token) => token.cancel(),
                None => self.book.request_cancel(entry.id).await,
            }
            self.wait_until_settled(events, owner, entry.id, entry.stored.seq, CANCEL_WAIT)
                .await;
            let now = self
                .book
                .load(owner, id)
                .await?
                .ok_or_else(|| ErrorCode::TaskNotFound.error())?;
            if now.stored.task.status.state.is_terminal() {
                return Ok(now.stored.task);
            }
            // No executor answered (its replica is gone): the task is canceled here.
            return self.cancel_stored(now).await;
        }
        self.cancel_stored(entry).await
    }

    async fn cancel_stored(&self, mut entry: Entry) -> Result<Task, Refused> {
        let canceled = state_machine::cancel(&entry.stored.task)?;
        entry.stored.running = false;
        self.book
            .advance(&mut entry, state_machine::status_update(&canceled))
            .await?;
        Ok(entry.stored.task)
    }

    async fn subscribe(
        &self,
        ctx: &Ctx<'_>,
        target: Target,
        id: &str,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<mpsc::Receiver<StreamItem>, Refused> {
        let owner = ctx.owner.as_str();
        let first = self.task_of(owner, target, id, agent_seen).await?;
        if first.stored.upstream.is_some() && !first.stored.running {
            return self.subscribe_remote(ctx, first).await;
        }
        let events = self.book.subscribe(first.id);
        // Read again after subscribing: nothing between the read and the stream is lost.
        let entry = self
            .book
            .load(owner, id)
            .await?
            .ok_or_else(|| ErrorCode::TaskNotFound.error())?;
        if entry.stored.task.status.state.is_terminal() {
            return Err(ErrorCode::UnsupportedOperation
                .with_message("the task is in a terminal state; there is nothing to subscribe to")
                .into());
        }
        Ok(self.book.follow(
            events,
            owner.to_owned(),
            entry.id,
            entry.stored.seq,
            Some(StreamResponse::Task(entry.stored.task)),
            self.shutdown.clone(),
        ))
    }

    /// Stops every running task (they end failed, saying why) and waits for them.
    pub async fn shut_down(&self) {
        self.shutdown.cancel();
        self.executors.close();
        self.executors.wait().await;
    }
}

/// Why a call was not answered with a result: a JSON-RPC error of the call, or a refusal of
/// the whole call (busy, or a store Hive depends on is unavailable), answered at the HTTP level.
#[derive(Debug)]
pub(crate) enum Refused {
    Rpc(RpcError),
    Gateway(GatewayError),
}

impl From<RpcError> for Refused {
    fn from(error: RpcError) -> Self {
        Self::Rpc(error)
    }
}

impl From<GatewayError> for Refused {
    fn from(error: GatewayError) -> Self {
        Self::Gateway(error)
    }
}

impl Refused {
    /// The error that ends a stream already answered (its HTTP status is sent): a refusal of
    /// the whole call is told in JSON-RPC terms there.
    pub(crate) fn into_stream_error(self) -> RpcError {
        match self {
            Self::Rpc(error) => error,
            Self::Gateway(GatewayError::Unavailable) => unavailable(),
            Self::Gateway(GatewayError::Throttled { retry_after }) => ErrorCode::InternalError
                .with_message(format!("the agent is busy; retry in {retry_after} s")),
        }
    }
}

/// The answer to a call that is not a stream.
fn unary(result: Result<Outcome, Refused>) -> Result<Reply, GatewayError> {
    match result {
        Ok(outcome) => Ok(Reply::Unary(Box::new(Ok(outcome)))),
        Err(refused) => failed(refused),
    }
}

/// The answer to a call that failed: a JSON-RPC error, or the refusal of the whole call.
fn failed(error: impl Into<Refused>) -> Result<Reply, GatewayError> {
    match error.into() {
        Refused::Rpc(error) => Ok(Reply::Unary(Box::new(Err(error)))),
        Refused::Gateway(error) => Err(error),
    }
}

/// A task of a local agent about to run: its record, its first event, the rest to come.
struct LocalRun {
    entry: Entry,
    first: StreamResponse,
    steps: Box<dyn local::Steps>,
}

/// One call's caller, as every step of it needs.
struct Ctx<'a> {
    caller: &'a Caller,
    /// [`principal`] of the caller: whose tasks it reaches.
    owner: String,
    meta: &'a RequestMeta,
}

/// Who sees an agent: a local caller by [`visible_to`], an anonymous one public agents only.
fn sees(caller: Option<&Caller>, agent: &AgentRow) -> bool {
    match caller {
        Some(caller) => visible_to(caller, agent),
        None => agent.visibility == AgentVisibility::Public,
    }
}

/// The skill a message names: in its own metadata, else in the request's.
fn skill_of(send: &SendMessageRequest) -> Option<&str> {
    fn named(metadata: Option<&v1::Metadata>) -> Option<&str> {
        metadata
            .and_then(|m| m.get(SKILL_METADATA_KEY))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    }
    named(send.message.metadata.as_ref()).or_else(|| named(send.metadata.as_ref()))
}

fn direct_message(message: Message, streaming: bool) -> Reply {
    if streaming {
        let (sender, receiver) = mpsc::channel(1);
        let _ = sender.try_send(Ok(StreamResponse::Message(message)));
        Reply::Stream(receiver)
    } else {
        Reply::Unary(Box::new(Ok(Outcome::SendMessage(
            v1::SendMessageResponse::Message(message),
        ))))
    }
}

impl Gateway {
    /// The push-notification config methods, on the caller's own task.
    async fn push_call(
        &self,
        owner: &str,
        target: Target,
        call: Call,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<Outcome, Refused> {
        let task_id = match &call {
            Call::CreateTaskPushNotificationConfig(config) => &config.task_id,
            Call::GetTaskPushNotificationConfig(reference)
            | Call::DeleteTaskPushNotificationConfig(reference) => &reference.task_id,
            Call::ListTaskPushNotificationConfigs(list) => &list.task_id,
            _ => return Err(ErrorCode::MethodNotFound.error().into()),
        };
        let task = self.task_of(owner, target, task_id, agent_seen).await?.id;
        let push = &self.push;
        let done = match call {
            Call::CreateTaskPushNotificationConfig(config) => push
                .create(owner, task, config)
                .await
                .map(Outcome::PushConfig),
            Call::GetTaskPushNotificationConfig(reference) => push
                .get(owner, task, &reference.id)
                .await
                .map(Outcome::PushConfig),
            Call::ListTaskPushNotificationConfigs(list) => {
                let size = u32::try_from(list.page_size).unwrap_or(0);
                push.list(owner, task, size, &list.page_token)
                    .await
                    .map(Outcome::ListPushConfigs)
            }
            // Deleting is idempotent: a config that is not there is deleted.
            Call::DeleteTaskPushNotificationConfig(reference) => {
                match push.delete(owner, task, &reference.id).await {
                    Ok(()) | Err(crate::gateway::push::PushError::NotFound) => Ok(Outcome::Deleted),
                    Err(error) => Err(error),
                }
            }
            _ => return Err(ErrorCode::MethodNotFound.error().into()),
        };
        Ok(done.map_err(push_error)?)
    }
}

fn push_error(error: crate::gateway::push::PushError) -> RpcError {
    use crate::gateway::push::PushError;
    match error {
        PushError::NotFound => {
            ErrorCode::TaskNotFound.with_message("no such push notification config for this task")
        }
        PushError::Invalid(why) => ErrorCode::InvalidParams.with_message(why),
        PushError::TooMany => ErrorCode::InvalidParams.with_message(format!(
            "a task has at most {} push notification configs",
            crate::gateway::push::MAX_CONFIGS_PER_TASK
        )),
        PushError::Store(_) => internal(),
    }
}

impl Gateway {
    /// The push-notification config a message asked for, set on its new task before the task
    /// starts, so its first notification is not missed.
    async fn attach_push(
        &self,
        owner: &str,
        task_id: Uuid,
        send: &SendMessageRequest,
    ) -> Result<(), RpcError> {
        let Some(config) = send
            .configuration
            .as_ref()
            .and_then(|configuration| configuration.task_push_notification_config.clone())
        else {
            return Ok(());
        };
        self.push
            .create(owner, task_id, config)
            .await
            .map(|_| ())
            .map_err(push_error)
    }
}

/// A message for a task an executor or a stream is still working on.
pub(crate) fn still_working() -> RpcError {
    ErrorCode::UnsupportedOperation
        .with_message("the task is still working; wait for it or cancel it")
}

fn internal() -> RpcError {
    ErrorCode::InternalError.with_message("Hive could not complete the call; try again")
}

/// The `domain` of the `ErrorInfo` details Hive adds to JSON-RPC errors of its own (A2A's are
/// `a2a-protocol.org`).
pub const ERROR_DOMAIN: &str = "hive";

/// A store Hive depends on went down while a stream was being answered (a call is refused as
/// a whole before: [`GatewayError::Unavailable`], HTTP 503 with `Retry-After`, whose JSON-RPC
/// error is this one too): the error that ends the stream, with the `ErrorInfo` reason of that
/// refusal.
pub fn unavailable() -> RpcError {
    ErrorCode::InternalError
        .with_message("a store Hive depends on is unavailable; retry shortly")
        .with_detail("SERVICE_UNAVAILABLE", ERROR_DOMAIN, serde_json::Map::new())
}

/// A failure of the database: the whole call is refused when it cannot be reached.
fn store_error(error: hive_store::StoreError) -> Refused {
    match error {
        hive_store::StoreError::Unavailable(_) => Refused::Gateway(GatewayError::Unavailable),
        _ => Refused::Rpc(internal()),
    }
}
