//! Starting and stopping agents, and the health watchdog. An agent is `ready` when it is
//! reachable: the conformance agent always (it runs in process), a remote agent when its
//! JSON-RPC endpoint answers HTTP at all, an LLM agent when its endpoint lists models with the
//! agent's key. Every probe goes through the egress guard; every change of status is announced
//! on the bus (`agent.status`) and audited.

use super::hosted::HostedAgents;
use crate::agents::{AgentError, LlmSettings, RemoteSettings};
use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::egress::{Egress, Purpose};
use crate::kernel::jobs::{Job, JobContext};
use crate::vault::secrets::SecretService;
use async_trait::async_trait;
use hive_egress::{CallLimits, EgressRequest};
use hive_proto::SharedClock;
use hive_proto::agents::{AgentKind, AgentStatus};
use hive_state::EventBus;
use hive_store::{AgentRow, AuditOutcome, PageRequest, Store};
use http::{HeaderValue, header};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A probe is a small request: 10 s, 64 KiB.
const PROBE_LIMITS: CallLimits = CallLimits::new(Duration::from_secs(10), 64 * 1024);
/// How often the leader's watchdog probes the agents that run.
pub const HEALTH_EVERY: Duration = Duration::from_secs(60);

/// Whether a status change applies whatever the status is now, or only while it is still the
/// one read before the change was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    Any,
    WhileUnchanged,
}
/// Agents probed per page of the watchdog.
const HEALTH_PAGE: u32 = 100;

#[derive(Debug)]
pub struct AgentLifecycle {
    store: Arc<dyn Store>,
    egress: Arc<Egress>,
    secrets: Arc<SecretService>,
    board: StatusBoard,
    /// Hosted agents start, stop and are watched there.
    hosted: Arc<HostedAgents>,
}

/// Where agents' statuses change: stored with their audit record, announced on the bus.
#[derive(Debug, Clone)]
pub struct StatusBoard {
    pub store: Arc<dyn Store>,
    pub bus: Arc<EventBus>,
    pub auditor: Auditor,
    pub clock: SharedClock,
}

impl AgentLifecycle {
    pub fn new(
        store: Arc<dyn Store>,
        egress: Arc<Egress>,
        secrets: Arc<SecretService>,
        bus: Arc<EventBus>,
        auditor: Auditor,
        clock: SharedClock,
        hosted: Arc<HostedAgents>,
    ) -> Self {
        Self {
            board: StatusBoard {
                store: Arc::clone(&store),
                bus,
                auditor,
                clock,
            },
            store,
            egress,
            secrets,
            hosted,
        }
    }

    /// The hosted agents this lifecycle starts and stops.
    pub fn hosted(&self) -> &Arc<HostedAgents> {
        &self.hosted
    }

    /// Starts the caller's agent (an admin: anyone's): `starting`, then `ready` when the probe
    /// reaches it or `error` with the reason. Answers the agent as it then is.
    pub async fn start(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<AgentRow, AgentError> {
        let agent = self.owned(caller, id).await?;
        if agent.kind == AgentKind::Hosted {
            return self.hosted.start(caller, &agent, meta).await;
        }
        self.board
            .change(
                &agent,
                AgentStatus::Starting,
                "",
                &caller.principal(),
                AuditAction::AgentStart,
                meta,
                Guard::Any,
            )
            .await?;
        let (status, detail) = match self.probe(&agent, &caller.principal(), meta).await {
            Ok(()) => (AgentStatus::Ready, String::new()),
            Err(reason) => (AgentStatus::Error, reason),
        };
        let starting = AgentRow {
            status: AgentStatus::Starting,
            ..agent
        };
        // A stop that came during the probe stands.
        self.board
            .change(
                &starting,
                status,
                &detail,
                &caller.principal(),
                AuditAction::AgentStatus,
                meta,
                Guard::WhileUnchanged,
            )
            .await?;
        self.owned(caller, id).await
    }

    /// Stops the caller's agent: `stopped`, and the watchdog leaves it alone.
    pub async fn stop(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<AgentRow, AgentError> {
        let agent = self.owned(caller, id).await?;
        if agent.kind == AgentKind::Hosted {
            return self.hosted.stop(caller, &agent, meta).await;
        }
        self.board
            .change(
                &agent,
                AgentStatus::Stopped,
                "",
                &caller.principal(),
                AuditAction::AgentStop,
                meta,
                Guard::Any,
            )
            .await?;
        self.owned(caller, id).await
    }

    /// One pass of the watchdog: every `ready` agent that is unreachable becomes `error`, every
    /// `error` agent that is reachable again becomes `ready`. Answers how many changed.
    pub async fn check_health(&self) -> Result<u32, AgentError> {
        let actor = Principal::Job("agent-health");
        let meta = RequestMeta::default();
        let mut changed = 0;
        let mut page =
            PageRequest::first(HEALTH_PAGE).map_err(|e| AgentError::Internal(e.to_string()))?;
        loop {
            let agents = self.store.agents().list(None, &page).await?;
            for agent in &agents.items {
                // Hosted agents have a watchdog of their own, on the replica that runs them.
                if agent.kind == AgentKind::Hosted
                    || !matches!(agent.status, AgentStatus::Ready | AgentStatus::Error)
                {
                    continue;
                }
                let probed = self.probe(agent, &actor, &meta).await;
                let next = match (&probed, agent.status) {
                    (Ok(()), AgentStatus::Error) => Some((AgentStatus::Ready, String::new())),
                    (Err(reason), AgentStatus::Ready) => Some((AgentStatus::Error, reason.clone())),
                    _ => None,
                };
                // A start, stop or another watchdog pass during the probe wins over it.
                if let Some((status, detail)) = next
                    && self
                        .board
                        .change(
                            agent,
                            status,
                            &detail,
                            &actor,
                            AuditAction::AgentHealth,
                            &meta,
                            Guard::WhileUnchanged,
                        )
                        .await?
                {
                    changed += 1;
                }
            }
            match agents.next_cursor {
                Some(cursor) => {
                    page = PageRequest::new(HEALTH_PAGE, Some(&cursor))
                        .map_err(|e| AgentError::Internal(e.to_string()))?;
                }
                None => return Ok(changed),
            }
        }
    }

    async fn owned(&self, caller: &Caller, id: Uuid) -> Result<AgentRow, AgentError> {
        self.store
            .agents()
            .get(id, caller.owner_scope()?)
            .await?
            .ok_or(AgentError::NotFound)
    }

    /// Whether the agent can be reached; the reason (safe to show) when not.
    async fn probe(
        &self,
        agent: &AgentRow,
        principal: &Principal,
        meta: &RequestMeta,
    ) -> Result<(), String> {
        let purpose = Purpose {
            principal: principal.clone(),
            feature: "agent_probe",
            meta: meta.clone(),
        };
        let (request, key_refusal_matters) = match agent.kind {
            // Both run inside Hive: reachable whenever Hive is.
            AgentKind::Conformance | AgentKind::Workflow => return Ok(()),
            // Never probed here: the hosted agents' own watchdog watches them.
            AgentKind::Hosted => return Ok(()),
            AgentKind::Remote => {
                let settings: RemoteSettings = serde_json::from_str(&agent.runtime)
                    .map_err(|_| "the stored settings do not read".to_owned())?;
                let request = EgressRequest::get(settings.url.as_str());
                (
                    self.with_credential(request, agent, settings.credential_secret_id)
                        .await?,
                    false,
                )
            }
            AgentKind::Llm => {
                let settings: LlmSettings = serde_json::from_str(&agent.runtime)
                    .map_err(|_| "the stored settings do not read".to_owned())?;
                let url = format!("{}/models", settings.base_url.trim_end_matches('/'));
                let request = EgressRequest::get(url);
                (
                    self.with_credential(request, agent, settings.api_key_secret_id)
                        .await?,
                    true,
                )
            }
        };
        let response = self
            .egress
            .send(request, &PROBE_LIMITS, &purpose)
            .await
            .map_err(|error| probe_failure(&error))?;
        let status = response.status();
        if key_refusal_matters && (status.as_u16() == 401 || status.as_u16() == 403) {
            return Err(key_refused(status.as_u16()));
        }
        if key_refusal_matters && !status.is_success() {
            return Err(format!("the endpoint answered HTTP {}", status.as_u16()));
        }
        // A remote agent's endpoint answers POST; any HTTP answer to GET shows it is there.
        Ok(())
    }

    /// An `llm` agent whose endpoint refused its key on a call: `error`, saying so, unless its
    /// status changed meanwhile. A start, or the watchdog once the key is accepted, makes it
    /// `ready` again. Failing to record it only loses the status: the call's caller is told.
    pub async fn key_refused(
        &self,
        agent: &AgentRow,
        status: u16,
        principal: &Principal,
        meta: &RequestMeta,
    ) {
        let changed = self
            .board
            .change(
                agent,
                AgentStatus::Error,
                &key_refused(status),
                principal,
                AuditAction::AgentStatus,
                meta,
                Guard::WhileUnchanged,
            )
            .await;
        if let Err(error) = changed {
            tracing::warn!(%error, agent = %agent.id, "an agent whose key was refused stays in its status");
        }
    }

    /// `request` with the agent's secret as its bearer credential, if it names one.
    async fn with_credential(
        &self,
        request: EgressRequest,
        agent: &AgentRow,
        secret_id: Option<Uuid>,
    ) -> Result<EgressRequest, String> {
        match bearer_credential(&self.secrets, agent, secret_id, "agent_probe").await? {
            Some(value) => Ok(request.header(header::AUTHORIZATION, value)),
            None => Ok(request),
        }
    }
}

impl StatusBoard {
    /// Stores `status` (audited as `action`, in the same transaction) and announces it.
    /// `Ok(false)` when the guard found the status changed since `agent` was read (nothing is
    /// written or announced then).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn change(
        &self,
        agent: &AgentRow,
        status: AgentStatus,
        detail: &str,
        principal: &Principal,
        action: AuditAction,
        meta: &RequestMeta,
        guard: Guard,
    ) -> Result<bool, AgentError> {
        self.change_noting(
            agent, status, detail, detail, principal, action, meta, guard,
        )
        .await
    }

    /// [`Self::change`] with a record whose reason is `reason`, not the stored `detail` (a
    /// hosted agent's detail quotes its output, which is its owner's to read, not the audit
    /// log's to keep).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn change_noting(
        &self,
        agent: &AgentRow,
        status: AgentStatus,
        detail: &str,
        reason: &str,
        principal: &Principal,
        action: AuditAction,
        meta: &RequestMeta,
        guard: Guard,
    ) -> Result<bool, AgentError> {
        let entry = AuditEvent {
            principal: principal.clone(),
            action,
            target: Some(format!("agent:{}", agent.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({
                "name": agent.name,
                "from": agent.status.as_str(),
                "to": status.as_str(),
                "reason": reason,
            }),
        };
        let record = self.auditor.in_transaction(entry, meta);
        let agents = self.store.agents();
        let audit = Some(record.append());
        let stored = match guard {
            Guard::Any => {
                agents
                    .set_status(
                        agent.id,
                        status,
                        detail,
                        hive_store::truncate_to_micros(self.clock.now()),
                        audit,
                    )
                    .await?
            }
            Guard::WhileUnchanged => {
                let from = agent.status;
                agents
                    .set_status_from(
                        agent.id,
                        from,
                        status,
                        detail,
                        hive_store::truncate_to_micros(self.clock.now()),
                        audit,
                    )
                    .await?
            }
        };
        if !stored {
            // Gone, or (guarded) moved on meanwhile: the newer state stands.
            return match guard {
                Guard::Any => Err(AgentError::NotFound),
                Guard::WhileUnchanged => Ok(false),
            };
        }
        let event = crate::agents::events::status_changed(agent, status);
        if let Err(error) = self.bus.publish(event, meta.request_id.as_deref()).await {
            // The status is stored; subscribers that missed the event read it on their next look.
            tracing::warn!(%error, "cannot announce an agent's status on the bus");
        }
        Ok(true)
    }
}

/// The `Authorization: Bearer …` value of the agent owner's secret `secret_id` (none without
/// one), for an outbound call of `feature`; the error (safe to show) when it cannot be had.
pub(crate) async fn bearer_credential(
    secrets: &SecretService,
    agent: &AgentRow,
    secret_id: Option<Uuid>,
    feature: &'static str,
) -> Result<Option<HeaderValue>, String> {
    let Some(secret_id) = secret_id else {
        return Ok(None);
    };
    secrets
        .bearer_header(agent.owner_id, secret_id, feature)
        .await
        .map(Some)
        .map_err(|why| format!("the credential: {why}"))
}

/// An agent's detail when its model endpoint refused its key.
fn key_refused(status: u16) -> String {
    format!("the endpoint refused the key (HTTP {status})")
}

/// The leader's watchdog (`agent-health`).
pub struct AgentHealth {
    pub lifecycle: Arc<AgentLifecycle>,
    pub every: Duration,
}

#[async_trait]
impl Job for AgentHealth {
    fn name(&self) -> &'static str {
        "agent-health"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, _ctx: &JobContext) -> Result<String, String> {
        let changed = self
            .lifecycle
            .check_health()
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("{changed} agents changed status"))
    }
}

/// Why a probe got no answer, as the agent's status says it: a refusal of the outbound rules
/// is named as one, with how an admin allows the endpoint; anything else is `unreachable`.
fn probe_failure(error: &hive_egress::EgressError) -> String {
    use hive_egress::{EgressError, RefusalReason};
    match error {
        EgressError::Refused(refusal) => match refusal.reason {
            RefusalReason::Timeout | RefusalReason::TooLarge => {
                format!("unreachable ({})", refusal.reason.as_str())
            }
            RefusalReason::Metadata => format!(
                "refused by the outbound rules ({}): {} is a cloud metadata address, which no \
                 setting allows",
                refusal.reason.as_str(),
                refusal.origin
            ),
            reason => format!(
                "refused by the outbound rules ({}: {}); an admin allows {} on the Security \
                 page's egress allowlist or in HIVE_EGRESS_FETCH_HOST_ALLOWLIST (docs/egress.md)",
                reason.as_str(),
                refusal.detail,
                refusal.origin
            ),
        },
        other => format!("unreachable ({})", other.kind()),
    }
}
