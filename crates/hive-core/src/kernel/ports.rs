//! Ports: what a lower domain asks of a higher one, as traits the higher domain implements and
//! the composition root (`runtime`) connects. The lower domain names only the trait, so its
//! imports keep pointing down.
//!
//! - [`WorkflowAgents`]: the gateway runs an agent of kind `workflow` (a workflow published by
//!   its a2a trigger) through the workflows domain — a message starts a run, the task follows
//!   its progress, a cancellation cancels it.
//! - [`UsageSink`]: the domains that make billable use (the gateway's `llm` calls, hosted
//!   agents' run time, workflows' steps) hold its cost before it starts and settle it after,
//!   through the billing domain.

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

/// A billable use about to start, as the domain that makes it knows it.
#[derive(Debug, Clone)]
pub struct Billable {
    /// Who pays: the calling account (never an id taken from a request body).
    pub payer: Uuid,
    /// Who made the call, as the audit log names them (`user:<uuid>`, `token:<uuid>`…).
    pub principal: String,
    /// The agent (for a workflow's step: the workflow).
    pub agent_id: Uuid,
    pub kind: hive_store::UsageKind,
    /// The model (llm calls), or empty.
    pub model: String,
    /// At most this many prompt tokens (llm calls; counted from the prompt's bytes).
    pub prompt_tokens: u64,
    /// The completion tokens the agent allows (`None`: no limit of its own).
    pub max_completion_tokens: Option<u32>,
    /// Seconds or steps (other kinds).
    pub quantity: u64,
    /// The request it serves (for the debit's audit record).
    pub meta: RequestMeta,
}

/// What was held for a use; settled or released once.
#[derive(Debug, Clone)]
pub struct Reservation {
    /// The hold in the books (`None`: nothing was held, e.g. metering failed open).
    pub hold_id: Option<Uuid>,
    pub billable: Billable,
    /// The completion tokens the call may use (sent to the model as `max_tokens`): what the
    /// wallet and the budgets allow, within the agent's own limit.
    pub max_completion_tokens: Option<u32>,
}

/// What a use consumed, as measured (an endpoint's own token counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeteredUse {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub quantity: u64,
}

/// Why a billable use may not start. Messages are safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageRefusal {
    /// The wallet's free money is short of the use's estimated cost.
    #[error("the wallet cannot pay for this call: it needs {needed} and has {available} free")]
    InsufficientFunds {
        needed: hive_store::billing::Money,
        available: hive_store::billing::Money,
    },
    /// A budget of the caller or the agent is spent until its period ends.
    #[error("the {scope} budget for this {period} is spent; it renews in {retry_after} s")]
    BudgetReached {
        scope: &'static str,
        period: &'static str,
        retry_after: u64,
    },
    /// The books cannot be reached and metering fails closed.
    #[error("billing cannot be reached now; retry later")]
    Unavailable,
}

/// Billing, as the domains that make billable use see it.
#[async_trait]
pub trait UsageSink: Send + Sync + std::fmt::Debug {
    /// Holds the use's estimated cost (and its tokens on the budgets that apply), or refuses it.
    async fn reserve(&self, billable: Billable) -> Result<Reservation, UsageRefusal>;

    /// Records what the use consumed and charges it, releasing the rest of the hold. Never
    /// fails the use: a failure is retried, then logged.
    async fn settle(&self, reservation: Reservation, used: MeteredUse);

    /// Releases the hold without a charge (the use did not happen).
    async fn release(&self, reservation: Reservation);
}
