//! The A2A gateway: routes each JSON-RPC call to the agent it names, checks that the caller may
//! reach that agent and that task, keeps the tasks of the agents that run inside Hive, and
//! audits every call (method, agent, caller, outcome, duration — never message contents).
//!
//! Who may see and call an agent is [`crate::agents::visible_to`]; tasks belong to the
//! principal that created them (a user, with all their sessions and tokens, or the internal
//! token): anyone else's task is "not found" (-32001), whatever endpoint asks.
//!
//! Here: who may call ([`Gateway::admit`]), the audited entry point ([`Gateway::call`]) and its
//! dispatch; `send` starts tasks, `tasks` answers the calls on existing ones, `remote` relays to
//! remote agents, `limits` holds each agent's limits, `refusals` the errors, `card` the cards,
//! `book` the task records and their streams, `push` the push-notification configs;
//! `workflow_agent` runs published workflows through the workflows domain's port.

mod book;
mod calls;
mod card;
pub mod conversations;
mod discards;
mod hosted;
mod limits;
mod llm_agent;
mod local;
pub mod push;
mod refusals;
mod remote;
mod send;
mod tasks;
mod upstream;
mod workflow_agent;

pub use book::StreamItem;
pub use calls::{CallStream, MAX_ERROR_MESSAGE_CHARS};
pub use card::ServedCard;
pub use refusals::{ERROR_DOMAIN, GatewayError, RoleBelowMinimum, unavailable};

pub(crate) use refusals::still_working;
use refusals::{Refused, failed, internal, push_error, store_error, unary};

use crate::agents::cache::AgentCache;
use crate::agents::{AgentError, visible_to};
use crate::identity::Identity;
use crate::kernel::audit::{AuditAction, AuditEvent};
use crate::kernel::caller::{Caller, Credential, RequestMeta};
use crate::kernel::config::A2aConfig;
use crate::kernel::ports::WorkflowAgents;
use book::{TaskBook, shaped};
use calls::{CallRecord, Ending};
use card::{CardBase, Cards};
use hive_a2a::error::RpcError;
use hive_a2a::jsonrpc::{Call, Outcome, Request, Version};
use hive_proto::SharedClock;
use hive_proto::agents::AgentVisibility;
use hive_state::{RateLimiter, TaskEvents, TaskStore};
use hive_store::{AgentRow, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

/// The metadata key of a message (or of its request) that names the instance skill — the
/// agent — the message is for.
pub const SKILL_METADATA_KEY: &str = "skill";

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
    /// An event stream: each item one event, or the error that ends it. The call's record is
    /// written when it ends (see [`CallStream`]).
    Stream(CallStream),
}

#[derive(Debug)]
pub struct Gateway {
    /// The agents calls and cards name, read once a second at most.
    agents: AgentCache,
    /// The cards built, by what they are made of.
    cards: Cards,
    identity: Arc<Identity>,
    egress: Arc<crate::kernel::egress::Egress>,
    secrets: Arc<crate::vault::secrets::SecretService>,
    push: Arc<crate::gateway::push::PushConfigs>,
    llm: Arc<crate::agents::llm::LlmClient>,
    usage: Arc<crate::agents::llm::UsageMeter>,
    /// Billing: `llm` calls are held before they start and settled after.
    meter: Arc<dyn crate::kernel::ports::UsageSink>,
    hosted: Arc<crate::agents::hosted::HostedAgents>,
    lifecycle: Arc<crate::agents::lifecycle::AgentLifecycle>,
    limiter: Arc<dyn RateLimiter>,
    book: Arc<TaskBook>,
    settings: A2aConfig,
    base: CardBase,
    /// Per agent: its concurrent-task limit and the permits of that limit.
    slots: Mutex<HashMap<Uuid, (u32, Arc<Semaphore>)>>,
    executors: TaskTracker,
    shutdown: CancellationToken,
    started_at: time::OffsetDateTime,
    /// The workflows domain, which runs `workflow` agents; connected by the composition root
    /// once it is built (it is built on this gateway).
    workflows: OnceLock<Arc<dyn WorkflowAgents>>,
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
    /// Billing, as the gateway's calls are metered.
    pub meter: Arc<dyn crate::kernel::ports::UsageSink>,
    /// The hosted agents, and where each runs.
    pub hosted: Arc<crate::agents::hosted::HostedAgents>,
    /// Agents' statuses: an `llm` agent whose key is refused is put in `error`.
    pub lifecycle: Arc<crate::agents::lifecycle::AgentLifecycle>,
    pub limiter: Arc<dyn RateLimiter>,
    pub tasks: Arc<dyn TaskStore>,
    pub task_events: Arc<TaskEvents>,
    pub clock: SharedClock,
    /// Ends the agents the gateway keeps when one changes.
    pub changes: Arc<crate::kernel::changes::Changes>,
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
            agents: AgentCache::new(parts.store, Arc::clone(&parts.clock), parts.changes),
            cards: Cards::default(),
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
            meter: parts.meter,
            hosted: parts.hosted,
            lifecycle: parts.lifecycle,
            settings: parts.settings,
            base: CardBase {
                base_url: parts.base_url.trim_end_matches('/').to_owned(),
                push_notifications: true,
            },
            slots: Mutex::new(HashMap::new()),
            executors: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            workflows: OnceLock::new(),
        }
    }

    /// Connects the workflows domain, which runs the `workflow` agents (once; a second
    /// connection is ignored). Until then such an agent answers that it is not ready.
    pub fn connect_workflows(&self, workflows: Arc<dyn WorkflowAgents>) {
        if self.workflows.set(workflows).is_err() {
            tracing::warn!("the workflows were connected to the gateway twice");
        }
    }

    pub fn settings(&self) -> &A2aConfig {
        &self.settings
    }

    /// Lets the caller call agents if its role reaches `A2A_JSONRPC_MIN_ROLE`; a refusal is
    /// audited here, so every way in (JSON-RPC, chat, later workflows) checks and records alike.
    /// Peers and the public tier are let in by their own gates (federation, the method
    /// allowlist), not by the local role minimum.
    pub async fn admit(&self, caller: &Caller, meta: &RequestMeta) -> Result<(), RoleBelowMinimum> {
        if caller.is_remote() || caller.role >= self.settings.min_role {
            return Ok(());
        }
        self.identity
            .auditor()
            .record_refusal(
                AuditEvent::refused(
                    caller.principal(),
                    AuditAction::A2aCall,
                    "role_below_a2a_minimum",
                ),
                meta,
            )
            .await;
        Err(RoleBelowMinimum)
    }

    /// The agent, if the caller (none: anonymous) may see it; anonymous callers see public
    /// agents only. Read once a second at most (any change of an agent is seen at once).
    pub async fn visible_agent(
        &self,
        caller: Option<&Caller>,
        id: Uuid,
    ) -> Result<Option<AgentRow>, AgentError> {
        let agent = self.agents.get(id).await?;
        Ok(agent.filter(|agent| sees(caller, agent)))
    }

    /// The agent named `name_or_id` (its id or its name), if the caller may see it.
    pub async fn find_visible_agent(
        &self,
        caller: &Caller,
        name_or_id: &str,
    ) -> Result<Option<AgentRow>, AgentError> {
        let agent = self.agents.find(name_or_id).await?;
        Ok(agent.filter(|agent| sees(Some(caller), agent)))
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
        let method_name = method.name(Version::V1_0).unwrap_or("unknown");
        let span = tracing::info_span!(
            "gateway.call",
            otel.name = %format_args!("a2a {method_name}"),
            a2a.method = method_name,
            a2a.endpoint = match target {
                Target::Instance => "instance",
                Target::Agent(_) => "agent",
            },
            hive.agent.id = tracing::field::Empty,
            hive.call.outcome = tracing::field::Empty,
        );
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
            .instrument(span.clone())
            .await;
        if let Some(agent) = agent_seen {
            span.record("hive.agent.id", tracing::field::display(agent));
        }
        let (action, peer_subject) = match &caller.credential {
            Credential::Peer { subject, .. } => {
                (AuditAction::MeshFederationInbound, Some(subject.clone()))
            }
            Credential::PublicTier { .. } => (AuditAction::MeshPublicTierCall, None),
            _ => (AuditAction::A2aCall, None),
        };
        let record = CallRecord {
            principal: caller.principal(),
            action,
            target: agent_seen.map(|id: Uuid| format!("agent:{id}")),
            method: method.name(Version::V1_0),
            endpoint: match target {
                Target::Instance => "instance",
                Target::Agent(_) => "agent",
            },
            peer_subject,
            started,
        };
        let ending = match reply {
            // A stream is recorded when it ends, with how it ended.
            Ok(Reply::Stream(mut stream)) => {
                span.record("hive.call.outcome", "stream");
                let auditor = self.identity.auditor();
                stream.record_at_end(record, auditor, meta, self.executors.clone());
                return Ok(Reply::Stream(stream));
            }
            Ok(Reply::Unary(ref result)) => Ending::of_unary(result),
            Err(GatewayError::Throttled { .. }) => Ending::plain("throttled"),
            Err(GatewayError::Unavailable) => Ending::plain("unavailable"),
            Err(GatewayError::Billing(_)) => Ending::plain("billing_refused"),
        };
        // A call whose record cannot be written is not answered as if it had been.
        if self
            .identity
            .auditor()
            .record(record.event(&ending), meta)
            .await
            .is_err()
        {
            return Err(GatewayError::Unavailable);
        }
        record.count(&ending);
        span.record("hive.call.outcome", ending.outcome);
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
                    Ok(stream) => Ok(Reply::Stream(stream.into())),
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

    /// Stops every running task (they end failed, saying why) and waits for them.
    pub async fn shut_down(&self) {
        self.shutdown.cancel();
        self.executors.close();
        self.executors.wait().await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hive;
    use crate::kernel::config::{Config, EnvSource};
    use hive_proto::{ManualClock, Role};
    use hive_store::{AuditFilter, AuditOutcome, PageRequest};
    use time::macros::datetime;

    #[tokio::test]
    async fn admit_refuses_a_role_below_the_minimum_and_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").display().to_string();
        let pairs = [
            ("HIVE_DATA_DIR", data.as_str()),
            ("LOG_LEVEL", "warn"),
            ("A2A_JSONRPC_MIN_ROLE", "operator"),
        ];
        let config = Config::load(&EnvSource::from_pairs(pairs)).unwrap();
        let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 12:00 UTC)));
        let hive = Hive::open(config, clock).await.unwrap();
        let meta = RequestMeta::default();
        let with_role = |role| Caller {
            user: None,
            role,
            credential: Credential::Internal,
        };

        assert_eq!(
            hive.gateway.admit(&with_role(Role::Operator), &meta).await,
            Ok(())
        );
        assert_eq!(
            hive.gateway.admit(&with_role(Role::Admin), &meta).await,
            Ok(())
        );
        // Peers and the public tier pass their own gates, not the local role minimum.
        let peer = Caller::peer("https://peer.example".into(), "bob".into());
        assert_eq!(hive.gateway.admit(&peer, &meta).await, Ok(()));
        assert_eq!(
            hive.gateway.admit(&Caller::public_tier(None), &meta).await,
            Ok(())
        );
        assert_eq!(
            hive.gateway.admit(&with_role(Role::Viewer), &meta).await,
            Err(RoleBelowMinimum)
        );

        let records = hive
            .store
            .audit()
            .list(&AuditFilter::all(), &PageRequest::first(100).unwrap())
            .await
            .unwrap()
            .items;
        let calls: Vec<_> = records
            .iter()
            .filter(|record| record.action == "a2a.call")
            .collect();
        assert_eq!(calls.len(), 1, "only the refusal is recorded: {calls:?}");
        assert_eq!(calls[0].outcome, AuditOutcome::Denied);
        assert_eq!(calls[0].actor, "internal");
        let detail: serde_json::Value = serde_json::from_str(&calls[0].detail).unwrap();
        assert_eq!(detail["reason"], "role_below_a2a_minimum");
        hive.close().await;
    }
}
