//! Ports: what a lower domain asks of a higher one, as traits the higher domain implements and
//! the composition root (`runtime`) connects. The lower domain names only the trait, so its
//! imports keep pointing down.
//!
//! - [`WorkflowAgents`]: the gateway runs an agent of kind `workflow` (a workflow published by
//!   its a2a trigger) through the workflows domain — a message starts a run, the task follows
//!   its progress, a cancellation cancels it.

use crate::kernel::caller::{Caller, RequestMeta};
use async_trait::async_trait;
use hive_store::{RunStatus, StepStatus};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

/// A call of a published workflow: who calls it, through which agent, with what input.
#[derive(Debug)]
pub struct WorkflowCall<'a> {
    /// The A2A caller, admitted and allowed to see the agent by the gateway.
    pub caller: &'a Caller,
    pub agent_id: Uuid,
    pub agent_name: &'a str,
    pub agent_owner: Uuid,
    /// The workflow the agent's settings name.
    pub workflow_id: Uuid,
    /// The A2A task the run answers (its trigger key: one run a task).
    pub task_id: Uuid,
    pub input: Value,
    pub meta: &'a RequestMeta,
}

/// Why a published workflow did not start or cannot be followed. Messages are safe to show to
/// the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowCallRefusal {
    /// The input is not one the workflow takes (too large, say).
    #[error("{0}")]
    Invalid(String),
    /// The workflow does not run now: disabled, no longer published as this agent, gone, or at
    /// one of its caps.
    #[error("{0}")]
    Refused(String),
    #[error("the workflows cannot be reached now")]
    Unavailable,
}

/// One change of a followed run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunProgress {
    /// A step started, waits, or ended (each change once).
    Step {
        key: String,
        node: String,
        status: StepStatus,
        attempt: i64,
        error: Option<String>,
    },
    /// The run ended: its output when it succeeded, its error when it failed.
    Ended {
        status: RunStatus,
        output: Option<Value>,
        error: Option<String>,
    },
}

/// The workflows domain, as the gateway runs published workflows.
#[async_trait]
pub trait WorkflowAgents: Send + Sync + std::fmt::Debug {
    /// Starts a run of the published workflow for the caller; answers the run's id. The run
    /// acts as the caller (a token's call through that token); a caller without an account (a
    /// federated peer, the public tier, the internal token, the CLI) runs it as the workflow's
    /// owner, who published it to them.
    async fn start(&self, call: WorkflowCall<'_>) -> Result<Uuid, WorkflowCallRefusal>;

    /// The run's progress from its start: every step's changes, then its end (the last item).
    async fn follow(
        &self,
        run_id: Uuid,
    ) -> Result<mpsc::Receiver<RunProgress>, WorkflowCallRefusal>;

    /// Cancels the run the A2A task of `caller` started (audited as the caller); a run that
    /// ended already is left as it is.
    async fn cancel(
        &self,
        caller: &Caller,
        workflow_id: Uuid,
        run_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), WorkflowCallRefusal>;
}
