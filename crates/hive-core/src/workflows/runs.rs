//! Starting a run, the one way every trigger (by hand, a webhook, a schedule, A2A, a parent
//! run) goes: the caps counted in the insert's own transaction, a trigger key that makes a
//! repeated trigger answer the run it started, the audit record with the run.

use super::definition::Definition;
use super::error::WorkflowError;
use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal};
use crate::kernel::caller::RequestMeta;
use hive_proto::SharedClock;
use hive_store::{
    AuditOutcome, NewRun, RunCaps, RunInsert, RunRow, RunTrigger, Store, WorkflowRow,
};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

/// Largest run input kept (JSON text).
pub const MAX_RUN_INPUT_BYTES: usize = 256 * 1024;

/// Who a new run acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub user: Uuid,
    pub token: Option<Uuid>,
}

impl RunAs {
    /// Who the audit log names for the run's own records.
    pub fn principal(self) -> Principal {
        self.token
            .map_or(Principal::User(self.user), Principal::Token)
    }
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct RunRequest<'a> {
    pub workflow: &'a WorkflowRow,
    pub version: i64,
    pub run_as: RunAs,
    pub trigger: RunTrigger,
    pub trigger_key: Option<String>,
    pub input: serde_json::Value,
    pub parent: Option<(Uuid, &'a str)>,
    pub schedule: Option<(&'a str, OffsetDateTime)>,
    /// The run's time limit (its version's `limits.timeoutSeconds`).
    pub timeout: Duration,
    /// Its version's `limits.maxConcurrentRuns`.
    pub max_concurrent: u32,
    /// Who started it, for the audit record (the caller, a schedule's job, a webhook's token).
    pub actor: Principal,
}

impl<'a> RunRequest<'a> {
    /// A run of `version` of `workflow` (its `definition`'s limits), started by `actor` as
    /// `run_as`; no trigger key, no parent, no schedule (see the builder methods).
    pub fn new(
        workflow: &'a WorkflowRow,
        version: i64,
        definition: &Definition,
        run_as: RunAs,
        trigger: RunTrigger,
        input: serde_json::Value,
        actor: Principal,
    ) -> Self {
        Self {
            workflow,
            version,
            run_as,
            trigger,
            trigger_key: None,
            input,
            parent: None,
            schedule: None,
            timeout: definition.limits.timeout,
            max_concurrent: definition.limits.max_concurrent_runs,
            actor,
        }
    }

    /// What makes the run once: a second request with the same key answers the first run.
    pub fn keyed(mut self, key: String) -> Self {
        self.trigger_key = Some(key);
        self
    }

    /// A sub-workflow's run, for the parent run's step.
    pub fn child_of(mut self, run: Uuid, step: &'a str) -> Self {
        self.parent = Some((run, step));
        self
    }

    /// A schedule's run: its trigger's fire at `at`, recorded with it.
    pub fn fired(mut self, trigger: &'a str, at: OffsetDateTime) -> Self {
        self.schedule = Some((trigger, at));
        self
    }
}

/// What [`RunStarter::start`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    Created(RunRow),
    /// The trigger had started this run already (a webhook's redelivery, a schedule's fire
    /// seen twice, a parent step run again).
    Existing(RunRow),
}

impl Started {
    pub fn run(&self) -> &RunRow {
        match self {
            Self::Created(run) | Self::Existing(run) => run,
        }
    }
}

#[derive(Debug)]
pub struct RunStarter {
    store: Arc<dyn Store>,
    clock: SharedClock,
    auditor: Auditor,
    /// Wakes this replica's executor when a run is queued here.
    wake: Arc<Notify>,
    /// `HIVE_WORKFLOW_MAX_RUNS_PER_USER`.
    per_user: u32,
}

impl RunStarter {
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        auditor: Auditor,
        wake: Arc<Notify>,
        per_user: u32,
    ) -> Self {
        Self {
            store,
            clock,
            auditor,
            wake,
            per_user,
        }
    }

    pub fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    pub async fn start(
        &self,
        request: &RunRequest<'_>,
        meta: &RequestMeta,
    ) -> Result<Started, WorkflowError> {
        if !request.workflow.enabled {
            return Err(WorkflowError::Conflict("the workflow is disabled"));
        }
        let input = serde_json::to_string(&request.input)
            .map_err(|error| WorkflowError::Internal(error.to_string()))?;
        if input.len() > MAX_RUN_INPUT_BYTES {
            return Err(WorkflowError::Invalid(format!(
                "the run's input is {} bytes, over the {MAX_RUN_INPUT_BYTES} a run takes",
                input.len()
            )));
        }
        let now = hive_store::truncate_to_micros(self.clock.now());
        let timeout = time::Duration::try_from(request.timeout)
            .map_err(|error| WorkflowError::Internal(error.to_string()))?;
        let id = Uuid::now_v7();
        let run = NewRun {
            id,
            workflow_id: request.workflow.id,
            version: request.version,
            principal_user: request.run_as.user,
            principal_token: request.run_as.token,
            trigger: request.trigger,
            trigger_key: request.trigger_key.as_deref(),
            input: &input,
            parent_run: request.parent.map(|(run, _)| run),
            parent_step: request.parent.map(|(_, step)| step),
            deadline_at: now + timeout,
            created_at: now,
            schedule: request.schedule,
        };
        let record = self.auditor.in_transaction(
            AuditEvent {
                principal: request.actor.clone(),
                action: AuditAction::WorkflowRunStart,
                target: Some(format!("workflow_run:{id}")),
                outcome: AuditOutcome::Success,
                detail: serde_json::json!({
                    "workflowId": request.workflow.id,
                    "version": request.version,
                    "trigger": request.trigger.as_str(),
                    "runAs": request.run_as.principal().to_string(),
                }),
            },
            meta,
        );
        let caps = RunCaps {
            per_user: self.per_user,
            per_workflow: request.max_concurrent,
        };
        match self
            .store
            .workflows()
            .insert_run(&run, caps, record.append())
            .await?
        {
            RunInsert::Created(row) => {
                self.wake.notify_one();
                Ok(Started::Created(row))
            }
            RunInsert::Duplicate(row) => Ok(Started::Existing(row)),
            RunInsert::UserAtCap => Err(WorkflowError::Conflict(
                "too many active runs for this user (HIVE_WORKFLOW_MAX_RUNS_PER_USER)",
            )),
            RunInsert::WorkflowAtCap => Err(WorkflowError::Conflict(
                "too many active runs of this workflow (its limits.maxConcurrentRuns)",
            )),
        }
    }
}
