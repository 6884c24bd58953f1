//! A workflow published as an agent: its a2a trigger names the agent (of kind `workflow`),
//! which every save of a version makes, changes or removes through the agent registry — as the
//! saving caller, authorized and audited there — and the port through which the gateway runs
//! such an agent ([`PublishedWorkflows`]): a call starts a run of the newest version as the
//! caller, the A2A task follows it, a cancellation of the task cancels it.
//!
//! Who a run started over A2A acts as: the caller — a user, through their session, or through
//! the API token they called with (the run keeps that token's limits). A caller without an
//! account (a federated peer, the public tier, the internal token, the CLI) has nobody to act
//! as but the workflow's owner, who chose to publish the workflow to it: its agent's visibility
//! decides who reaches it, as for every agent (a peer only `federation` and `public` agents,
//! the public tier only `public` ones).

use super::definition::{Definition, Problem, Trigger};
use super::error::WorkflowError;
use super::runs::{RunAs, RunRequest, Started};
use super::service::{Progress, Workflows};
use crate::agents::{AgentError, Publication};
use crate::kernel::audit::{AuditAction, AuditEvent};
use crate::kernel::caller::{Caller, Credential, RequestMeta};
use crate::kernel::ports::{RunProgress, WorkflowAgents, WorkflowCall, WorkflowCallRefusal};
use crate::kernel::refusal::Refusal;
use async_trait::async_trait;
use hive_store::{AgentLimits, AuditOutcome, RunTrigger, WorkflowRow};
use serde_json::json;
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;
use uuid::Uuid;

/// A published workflow's agent: requests a minute (as every agent's default).
const REQUESTS_PER_MINUTE: u32 = 60;
/// The longest an agent's `timeoutSeconds` may be: a blocking `SendMessage` waits that long
/// at most for a longer run (which goes on; its task says how it ends).
const MAX_AGENT_TIMEOUT_SECONDS: u64 = 3600;
/// The most concurrent tasks an agent may have.
const MAX_AGENT_CONCURRENT_TASKS: u32 = 1000;

/// The agent's limits, from the workflow's: as many concurrent tasks as the workflow's runs at
/// once, and its run's time limit (at most an hour) as the agent's timeout.
fn limits_of(definition: &Definition) -> AgentLimits {
    AgentLimits {
        requests_per_minute: REQUESTS_PER_MINUTE,
        tokens_per_day: 0,
        concurrent_tasks: definition
            .limits
            .max_concurrent_runs
            .clamp(1, MAX_AGENT_CONCURRENT_TASKS),
        timeout_seconds: u32::try_from(
            definition
                .limits
                .timeout
                .as_secs()
                .clamp(1, MAX_AGENT_TIMEOUT_SECONDS),
        )
        .unwrap_or(1),
    }
}

fn agent_error(error: AgentError) -> WorkflowError {
    match error {
        AgentError::Conflict(_) => WorkflowError::Conflict(
            "the version was saved, but its a2a trigger's agent could not be published (its \
             name is taken, or it changed meanwhile): save it again",
        ),
        other => Refusal::from(other).into(),
    }
}

impl Workflows {
    /// The problem of an a2a trigger whose agent name another agent has (none when it is free,
    /// or is the workflow's own agent already).
    pub(super) async fn check_publication(
        &self,
        caller: &Caller,
        definition: &Definition,
        workflow: Option<Uuid>,
    ) -> Option<Problem> {
        let Some(Trigger::A2a { id, agent, .. }) = definition.a2a_trigger() else {
            return None;
        };
        let workflow = match (workflow, caller.user_id()) {
            (Some(workflow), _) => Some(workflow),
            (None, Some(owner)) => self
                .parts
                .store
                .workflows()
                .find_workflow(owner, &definition.name)
                .await
                .ok()
                .flatten()
                .map(|workflow| workflow.id),
            (None, None) => None,
        };
        match self.parts.agents.name_free_for(agent, workflow).await {
            Ok(true) => None,
            Ok(false) => Some(Problem {
                node: None,
                rule: "agent_name_taken",
                message: format!(
                    "trigger '{id}': an agent named {agent:?} exists already; choose another name"
                ),
            }),
            Err(_) => Some(Problem {
                node: None,
                rule: "unavailable",
                message: "the agents cannot be read now".to_owned(),
            }),
        }
    }

    /// Brings the workflow's agent in line with its newest version: made or changed as its a2a
    /// trigger says, removed when it has none.
    pub(super) async fn publish(
        &self,
        caller: &Caller,
        workflow: &WorkflowRow,
        definition: &Definition,
        meta: &RequestMeta,
    ) -> Result<(), WorkflowError> {
        let Some(Trigger::A2a {
            agent,
            visibility,
            description,
            ..
        }) = definition.a2a_trigger()
        else {
            return self.unpublish(caller, workflow, meta).await;
        };
        let description = if description.is_empty() {
            // The workflow's own, as an agent's description takes it.
            definition
                .description
                .chars()
                .filter(|c| !c.is_control() || *c == '\n')
                .collect()
        } else {
            description.clone()
        };
        let publication = Publication {
            owner_id: workflow.owner_id,
            workflow_id: workflow.id,
            name: agent.clone(),
            description,
            visibility: *visibility,
            limits: limits_of(definition),
        };
        self.parts
            .agents
            .publish(caller, &publication, meta)
            .await
            .map(|_| ())
            .map_err(agent_error)
    }

    /// Removes the workflow's agent, if it has one.
    pub(super) async fn unpublish(
        &self,
        caller: &Caller,
        workflow: &WorkflowRow,
        meta: &RequestMeta,
    ) -> Result<(), WorkflowError> {
        self.parts
            .agents
            .unpublish(caller, workflow.owner_id, workflow.id, meta)
            .await
            .map(|_| ())
            .map_err(agent_error)
    }

    /// Starts a run of the published workflow for an A2A call (see the module's notes for
    /// who it acts as).
    async fn start_published(&self, call: WorkflowCall<'_>) -> Result<Uuid, WorkflowCallRefusal> {
        let gone = || WorkflowCallRefusal::Refused("the workflow is gone".into());
        let workflow = self
            .parts
            .store
            .workflows()
            .get_workflow(call.workflow_id)
            .await
            .map_err(|error| refusal(error.into()))?
            .filter(|workflow| workflow.owner_id == call.agent_owner)
            .ok_or_else(gone)?;
        let (version, definition) = self.definition_of(&workflow).await.map_err(refusal)?;
        let published = matches!(
            definition.a2a_trigger(),
            Some(Trigger::A2a { agent, .. }) if agent == call.agent_name
        );
        if !published {
            return Err(WorkflowCallRefusal::Refused(
                "the workflow is no longer published as this agent".into(),
            ));
        }
        let run_as = match call.caller.user_id() {
            Some(user) => RunAs {
                user,
                token: match call.caller.credential {
                    Credential::ApiToken { token_id, .. } => Some(token_id),
                    _ => None,
                },
            },
            None => RunAs {
                user: workflow.owner_id,
                token: None,
            },
        };
        let started = self
            .parts
            .starter
            .start(
                &RunRequest::new(
                    &workflow,
                    version.version,
                    &definition,
                    run_as,
                    RunTrigger::A2a,
                    call.input,
                    call.caller.principal(),
                )
                .keyed(format!("a2a:{}", call.task_id)),
                call.meta,
            )
            .await
            .map_err(refusal)?;
        Ok(match started {
            Started::Created(run) | Started::Existing(run) => run.id,
        })
    }

    /// Cancels a run an A2A task started, for the task's caller (the gateway found the task
    /// theirs). Audited as the caller.
    async fn cancel_published(
        &self,
        caller: &Caller,
        workflow_id: Uuid,
        run_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), WorkflowCallRefusal> {
        let store = self.parts.store.workflows();
        let run = store
            .get_run(run_id)
            .await
            .map_err(|error| refusal(error.into()))?
            .filter(|run| run.workflow_id == workflow_id && run.trigger == RunTrigger::A2a)
            .ok_or_else(|| WorkflowCallRefusal::Refused("no such run".into()))?;
        if run.status.is_final() {
            return Ok(());
        }
        let record = self.parts.auditor.in_transaction(
            AuditEvent {
                principal: caller.principal(),
                action: AuditAction::WorkflowRunCancel,
                target: Some(format!("workflow_run:{run_id}")),
                outcome: AuditOutcome::Success,
                detail: json!({ "workflowId": workflow_id, "via": "a2a" }),
            },
            meta,
        );
        let now = hive_store::truncate_to_micros(self.parts.clock.now());
        store
            .cancel_run(run_id, now, record.append())
            .await
            .map_err(|error| refusal(error.into()))?;
        Ok(())
    }
}

/// A workflows refusal, as the A2A caller is told it.
fn refusal(error: WorkflowError) -> WorkflowCallRefusal {
    match error {
        WorkflowError::Invalid(message) => WorkflowCallRefusal::Invalid(message),
        WorkflowError::Conflict(message) | WorkflowError::Forbidden(message) => {
            WorkflowCallRefusal::Refused(message.to_owned())
        }
        WorkflowError::NotFound => WorkflowCallRefusal::Refused("the workflow is gone".into()),
        WorkflowError::Unavailable => WorkflowCallRefusal::Unavailable,
        WorkflowError::Internal(detail) => {
            tracing::error!(%detail, "workflows: a published workflow's run did not start");
            WorkflowCallRefusal::Refused("Hive could not start the run".into())
        }
    }
}

/// The workflows domain as the gateway's [`WorkflowAgents`] port. It holds the service
/// weakly: the service holds the gateway, which holds this port, and a cycle of strong
/// references would keep every service (and the store, with its data directory's lock) alive
/// after Hive closes.
#[derive(Debug)]
pub struct PublishedWorkflows {
    workflows: Weak<Workflows>,
}

impl PublishedWorkflows {
    pub fn new(workflows: &Arc<Workflows>) -> Self {
        Self {
            workflows: Arc::downgrade(workflows),
        }
    }

    fn workflows(&self) -> Result<Arc<Workflows>, WorkflowCallRefusal> {
        self.workflows
            .upgrade()
            .ok_or(WorkflowCallRefusal::Unavailable)
    }
}

#[async_trait]
impl WorkflowAgents for PublishedWorkflows {
    async fn start(&self, call: WorkflowCall<'_>) -> Result<Uuid, WorkflowCallRefusal> {
        self.workflows()?.start_published(call).await
    }

    async fn follow(
        &self,
        run_id: Uuid,
    ) -> Result<mpsc::Receiver<RunProgress>, WorkflowCallRefusal> {
        let mut progress = self.workflows()?.follow_run(run_id);
        let (sender, receiver) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                // A follower that is gone (its task ended, canceled or at shutdown) stops the
                // reading of the journal at once, not at the run's next change.
                let item = tokio::select! {
                    () = sender.closed() => return,
                    item = progress.recv() => match item {
                        Some(item) => item,
                        None => return,
                    },
                };
                let told = match item {
                    Progress::Step(step) => RunProgress::Step {
                        key: step.step_key,
                        node: step.node_id,
                        status: step.status,
                        attempt: step.attempt,
                        error: step.error,
                    },
                    Progress::Run(run) if run.status.is_final() => RunProgress::Ended {
                        status: run.status,
                        output: run
                            .output
                            .as_deref()
                            .and_then(|output| serde_json::from_str(output).ok()),
                        error: run.error,
                    },
                    Progress::Run(_) => continue,
                };
                if sender.send(told).await.is_err() {
                    return;
                }
            }
        });
        Ok(receiver)
    }

    async fn cancel(
        &self,
        caller: &Caller,
        workflow_id: Uuid,
        run_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), WorkflowCallRefusal> {
        self.workflows()?
            .cancel_published(caller, workflow_id, run_id, meta)
            .await
    }
}
