//! Workflows as stored: each workflow's versions (the JSON document of each), its runs, and each
//! run's journal of steps. A run is held by one replica at a time through a lease with a fencing
//! token: every write of a run's executor names the token it was given, and a write whose token
//! is no longer the run's (the lease was lost, the run cancelled) changes nothing.

use crate::{AuditAppend, MAX_LEASE_NODE_CHARS, Page, PageRequest, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// Largest workflow document a version holds (the service refuses larger ones first).
pub const MAX_WORKFLOW_DOCUMENT_BYTES: usize = 256 * 1024;
/// Longest workflow name.
pub const MAX_WORKFLOW_NAME_CHARS: usize = 100;
/// Longest workflow description.
pub const MAX_WORKFLOW_DESCRIPTION_CHARS: usize = 2000;
/// Largest JSON value a run or step keeps (input, output); the service caps first.
pub const MAX_WORKFLOW_VALUE_BYTES: usize = 1024 * 1024;
/// Longest error text a run or step keeps.
pub const MAX_WORKFLOW_ERROR_CHARS: usize = 4000;
/// Longest step key (`node` or `node[index]`, nested for a map's items).
pub const MAX_STEP_KEY_CHARS: usize = 200;
/// Longest trigger key (what makes a triggered run unique within its workflow); also the
/// longest schedule trigger id.
pub const MAX_TRIGGER_KEY_CHARS: usize = 200;
/// Longest node id (a step key's first part) and edge label a branching step chose.
pub const MAX_STEP_LABEL_CHARS: usize = 200;
/// Largest sealed webhook secret (the vault's encoding of a short key).
pub const MAX_WEBHOOK_SECRET_BYTES: usize = 4096;

/// A workflow: its name and owner, and its newest version's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    /// Unique per owner.
    pub name: String,
    pub description: String,
    /// The newest version's number (1 for a new workflow).
    pub latest_version: i64,
    /// A disabled workflow keeps its versions and runs but starts no run.
    pub enabled: bool,
    /// Whether its newest version has schedule triggers (the scheduler reads only these).
    pub scheduled: bool,
    /// The workflow's webhook secret, sealed by the vault (the vault's own encoding), if one
    /// was set; never returned to clients.
    pub webhook_secret: Option<Vec<u8>>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One version of a workflow: the document as saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowVersionRow {
    pub workflow_id: Uuid,
    pub version: i64,
    /// The JSON document, as saved (validated by the service).
    pub document: String,
    /// Who saved it (none once that account is deleted).
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
}

/// What [`WorkflowRepo::save_workflow`] stores: a new workflow (`id` not yet stored) or a new
/// version of an existing one (then `owner_id` must be its owner's).
#[derive(Debug, Clone)]
pub struct WorkflowSave<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: &'a str,
    pub description: &'a str,
    pub document: &'a str,
    /// Whether the document has schedule triggers.
    pub scheduled: bool,
    pub created_by: Option<Uuid>,
    pub at: OffsetDateTime,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Waiting for a replica to take it.
    Queued,
    /// A replica holds its lease and executes it.
    Running,
    /// Nothing to do until `wake_at` (a delay) or a signal (an approval, a sub-workflow).
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "waiting" => Self::Waiting,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run is over (nothing will change it but a retry).
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// How a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunTrigger {
    Manual,
    Webhook,
    Schedule,
    A2a,
    /// As a sub-workflow of another run.
    Workflow,
}

impl RunTrigger {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Webhook => "webhook",
            Self::Schedule => "schedule",
            Self::A2a => "a2a",
            Self::Workflow => "workflow",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "manual" => Self::Manual,
            "webhook" => Self::Webhook,
            "schedule" => Self::Schedule,
            "a2a" => Self::A2a,
            "workflow" => Self::Workflow,
            _ => return None,
        })
    }
}

/// One run of one version of a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: Uuid,
    pub workflow_id: Uuid,
    /// The version it runs (fixed at its start).
    pub version: i64,
    /// Who the run acts as: a user, and the API token when it came with one (a webhook's
    /// token, an A2A caller's token). Checked again before every step.
    pub principal_user: Uuid,
    pub principal_token: Option<Uuid>,
    pub trigger: RunTrigger,
    /// Unique within the workflow when set: a schedule's fire time, a webhook signature, a
    /// parent step. A second run with the same key is not created.
    pub trigger_key: Option<String>,
    pub status: RunStatus,
    /// JSON.
    pub input: String,
    /// JSON, once it succeeded.
    pub output: Option<String>,
    pub error: Option<String>,
    /// The run and step that started it as a sub-workflow.
    pub parent_run: Option<Uuid>,
    pub parent_step: Option<String>,
    /// The replica that holds it, until `lease_expires_at`.
    pub lease_node: Option<String>,
    pub lease_expires_at: Option<OffsetDateTime>,
    /// When a waiting run is due again (none: only a signal wakes it).
    pub wake_at: Option<OffsetDateTime>,
    /// Counts the signals (decisions, sub-workflow ends, cancellation) that reached the run;
    /// an executor parks a run only if none arrived since it read the journal.
    pub signal: i64,
    /// The run fails if it has not ended by then.
    pub deadline_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

/// What [`WorkflowRepo::insert_run`] stores.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub id: Uuid,
    pub workflow_id: Uuid,
    pub version: i64,
    pub principal_user: Uuid,
    pub principal_token: Option<Uuid>,
    pub trigger: RunTrigger,
    pub trigger_key: Option<&'a str>,
    pub input: &'a str,
    pub parent_run: Option<Uuid>,
    pub parent_step: Option<&'a str>,
    pub deadline_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    /// For a schedule's run: the trigger's id and the fire time it stands for, recorded as the
    /// trigger's last fire in the same transaction.
    pub schedule: Option<(&'a str, OffsetDateTime)>,
}

/// The caps a new run must fit under, counted in the insert's own transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCaps {
    /// Active (queued, running, waiting) runs whose principal is the run's user.
    pub per_user: u32,
    /// Active runs of the workflow.
    pub per_workflow: u32,
}

/// What [`WorkflowRepo::insert_run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunInsert {
    Created(RunRow),
    /// A run with the same trigger key exists already: it is answered, nothing was written.
    Duplicate(RunRow),
    /// The principal has `per_user` active runs already; nothing was written.
    UserAtCap,
    /// The workflow has `per_workflow` active runs already; nothing was written.
    WorkflowAtCap,
}

/// Which runs [`WorkflowRepo::list_runs`] lists (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Runs of workflows this user owns (none: everyone's).
    pub owner_id: Option<Uuid>,
    pub workflow_id: Option<Uuid>,
    pub status: Option<RunStatus>,
    pub trigger: Option<RunTrigger>,
}

/// Where a step stands in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    /// Started (this attempt) and not ended: after a crash it runs again.
    Running,
    /// Waits for its time (`wake_at`), a decision or a sub-workflow.
    Waiting,
    Succeeded,
    Failed,
    /// Not on the path the run took.
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "running" => Self::Running,
            "waiting" => Self::Waiting,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "skipped" => Self::Skipped,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// One step of a run's journal: a node's execution, or one item of a map node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub run_id: Uuid,
    /// The node's id, or `node[i]` for a map's item `i`.
    pub step_key: String,
    pub node_id: String,
    pub status: StepStatus,
    /// 1 for the first attempt; a retry or a re-execution after a crash adds one.
    pub attempt: i64,
    /// JSON of what the step was given (secrets never: they are resolved after journaling).
    pub input: Option<String>,
    /// JSON of its result.
    pub output: Option<String>,
    /// The edge label a branching node chose (`true`, a switch's case, `approved`...).
    pub branch: Option<String>,
    pub error: Option<String>,
    /// When a waiting step is due (a delay), or when a failed attempt is retried.
    pub wake_at: Option<OffsetDateTime>,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

/// A step's start ([`WorkflowRepo::start_step`]): written before the step does anything.
#[derive(Debug, Clone)]
pub struct StepStart<'a> {
    pub step_key: &'a str,
    pub node_id: &'a str,
    pub attempt: i64,
    pub input: Option<&'a str>,
    pub at: OffsetDateTime,
}

/// A step's end or pause ([`WorkflowRepo::end_step`]).
#[derive(Debug, Clone)]
pub struct StepEnd<'a> {
    pub step_key: &'a str,
    /// Not `Running`.
    pub status: StepStatus,
    pub output: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub error: Option<&'a str>,
    pub wake_at: Option<OffsetDateTime>,
    /// For a waiting step: none (it has not finished).
    pub at: Option<OffsetDateTime>,
}

/// How a run ends ([`WorkflowRepo::finish_run`]).
#[derive(Debug, Clone)]
pub enum RunEnd<'a> {
    Succeeded { output: &'a str },
    Failed { error: &'a str },
}

/// A decision on a waiting step from outside its executor: an approval's, or a sub-workflow's
/// end reaching its parent.
#[derive(Debug, Clone)]
pub struct StepDecision<'a> {
    pub run_id: Uuid,
    pub step_key: &'a str,
    /// `Succeeded` or `Failed`.
    pub status: StepStatus,
    pub output: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub error: Option<&'a str>,
    pub at: OffsetDateTime,
}

/// Most waiting steps [`WorkflowRepo::waiting_steps`] answers.
pub const MAX_WAITING_STEPS: u32 = 500;

/// A schedule trigger's last fire, as [`WorkflowRepo::last_fires`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleFire {
    pub workflow_id: Uuid,
    pub trigger_id: String,
    pub fired_at: OffsetDateTime,
}

#[async_trait]
pub trait WorkflowRepo: Send + Sync {
    /// Saves a version of a workflow with the audit record in the same transaction: creates the
    /// workflow (version 1) if `save.id` is not stored, else adds the next version and updates
    /// its name and description. [`StoreError::Conflict`] when the owner has another workflow
    /// of that name; [`StoreError::NotFound`] when `save.id` exists with another owner.
    async fn save_workflow(
        &self,
        save: &WorkflowSave<'_>,
        audit: AuditAppend<'_>,
    ) -> Result<(WorkflowRow, WorkflowVersionRow), StoreError>;

    async fn get_workflow(&self, id: Uuid) -> Result<Option<WorkflowRow>, StoreError>;

    async fn find_workflow(
        &self,
        owner_id: Uuid,
        name: &str,
    ) -> Result<Option<WorkflowRow>, StoreError>;

    /// Workflows, newest first (by creation), of one owner or (none) everyone's.
    async fn list_workflows(
        &self,
        owner_id: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<WorkflowRow>, StoreError>;

    async fn get_version(
        &self,
        workflow_id: Uuid,
        version: i64,
    ) -> Result<Option<WorkflowVersionRow>, StoreError>;

    /// The workflow's versions, newest first, at most `limit`.
    async fn list_versions(
        &self,
        workflow_id: Uuid,
        limit: u32,
    ) -> Result<Vec<WorkflowVersionRow>, StoreError>;

    /// Enables or disables it, with the audit record. `Ok(false)` when it is gone.
    async fn set_workflow_enabled(
        &self,
        id: Uuid,
        enabled: bool,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Sets (or with none, removes) its sealed webhook secret, with the audit record.
    /// `Ok(false)` when it is gone.
    async fn set_webhook_secret(
        &self,
        id: Uuid,
        sealed: Option<&[u8]>,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Deletes the workflow with its versions, runs and their steps, with the audit record.
    /// `Ok(false)` when it is gone.
    async fn delete_workflow(&self, id: Uuid, audit: AuditAppend<'_>) -> Result<bool, StoreError>;

    /// Stores a queued run with the audit record, unless a run with its trigger key exists
    /// ([`RunInsert::Duplicate`]) or a cap is reached; for a schedule's run, records the
    /// trigger's last fire in the same transaction. [`StoreError::NotFound`] when the workflow
    /// or its version is gone.
    async fn insert_run(
        &self,
        run: &NewRun<'_>,
        caps: RunCaps,
        audit: AuditAppend<'_>,
    ) -> Result<RunInsert, StoreError>;

    async fn get_run(&self, id: Uuid) -> Result<Option<RunRow>, StoreError>;

    /// Runs, newest first, keyset-paged by (created_at, id).
    async fn list_runs(
        &self,
        filter: &RunFilter,
        page: &PageRequest,
    ) -> Result<Page<RunRow>, StoreError>;

    /// Takes one run that needs a replica — queued; waiting and due (`wake_at` ≤ `now`); or
    /// running under a lease that expired before `now` — oldest first, for `node` until
    /// `until` with the fencing token `token`: status running, `started_at` set if unset.
    /// Replicas never take the same run (`FOR UPDATE SKIP LOCKED` on PostgreSQL; the single
    /// writer on SQLite).
    async fn claim_run(
        &self,
        node: &str,
        token: Uuid,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<RunRow>, StoreError>;

    /// Extends the lease to `until` if `token` still holds it (the run is running under it).
    /// `Ok(false)`: the lease was lost or the run ended or was cancelled; the executor stops.
    async fn renew_run(
        &self,
        run_id: Uuid,
        token: Uuid,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Parks a run its executor has nothing to do for: status waiting until `wake_at` (none:
    /// until a signal), lease cleared, if `token` holds it and no signal arrived since the
    /// executor read `signal`. `Ok(false)` otherwise: the executor reads the journal again.
    async fn park_run(
        &self,
        run_id: Uuid,
        token: Uuid,
        signal: i64,
        wake_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;

    /// Ends the run if `token` holds it, with the audit record; for a sub-workflow's run whose
    /// parent has not ended, ends the parent's step with this run's output or error if that
    /// step is waiting, and signals the parent (a waiting parent is queued again), in the same
    /// transaction. The signal is counted even when the step was not waiting yet (its executor
    /// had not paused it): its park then fails and it reads the sub-workflow's end itself.
    /// `Ok(false)` when the token no longer holds it (nothing written).
    async fn finish_run(
        &self,
        run_id: Uuid,
        token: Uuid,
        end: &RunEnd<'_>,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Cancels a run that has not ended, and its sub-workflows' runs (at any depth), with the
    /// audit record: status cancelled, lease cleared, signal counted (its executor's next write
    /// fails and it stops), running and waiting steps cancelled; the sub-workflows cancelled
    /// with it do not signal their parents (they are cancelled too). A sub-workflow's run
    /// cancelled on its own ends its parent's waiting step as failed and signals the parent,
    /// as [`WorkflowRepo::finish_run`] would, so the parent does not wait for ever. `Ok(false)`
    /// when it had ended or is gone.
    async fn cancel_run(
        &self,
        run_id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Queues a failed or cancelled run again from where it stopped, with the audit record:
    /// its failed and cancelled steps, and those a failed run left running or waiting, are
    /// deleted from the journal (the succeeded and skipped ones stay and are not repeated),
    /// error, output, finish and lease cleared, the deadline moved to `deadline_at`.
    /// `Ok(false)` when it is not failed or cancelled.
    async fn retry_run(
        &self,
        run_id: Uuid,
        deadline_at: OffsetDateTime,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// The run's journal, in the order steps started (then by key).
    async fn steps(&self, run_id: Uuid) -> Result<Vec<StepRow>, StoreError>;

    /// Journals a step's start (a new row, or the next attempt of an existing one: status
    /// running, attempt, input and start replaced, end cleared) if `token` holds the run.
    /// `Ok(false)` otherwise, nothing written.
    async fn start_step(
        &self,
        run_id: Uuid,
        token: Uuid,
        start: &StepStart<'_>,
    ) -> Result<bool, StoreError>;

    /// Journals a step's end or pause if `token` holds the run. `Ok(false)` otherwise (or the
    /// step was never started), nothing written.
    async fn end_step(
        &self,
        run_id: Uuid,
        token: Uuid,
        end: &StepEnd<'_>,
    ) -> Result<bool, StoreError>;

    /// Records what a running step reports while it works (an agent's progress) as its output
    /// until it ends, if `token` holds the run and the step is running. `Ok(false)` otherwise,
    /// nothing written.
    async fn note_step(
        &self,
        run_id: Uuid,
        token: Uuid,
        step_key: &str,
        progress: &str,
    ) -> Result<bool, StoreError>;

    /// Ends a waiting step from outside its executor (an approval's decision), with the audit
    /// record, and signals its run (a waiting run is queued again). `Ok(false)` when the step is
    /// not waiting or the run has ended (nothing written): a decision is taken once.
    async fn decide_step(
        &self,
        decision: &StepDecision<'_>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// The waiting steps of runs that are waiting or running, each with its run, newest first
    /// (by the step's start), at most `limit` (capped at [`MAX_WAITING_STEPS`]).
    async fn waiting_steps(&self, limit: u32) -> Result<Vec<(RunRow, StepRow)>, StoreError>;

    /// The enabled workflows whose newest version has schedule triggers.
    async fn scheduled_workflows(&self) -> Result<Vec<WorkflowRow>, StoreError>;

    /// The last fire of each of the workflow's schedule triggers that ever fired.
    async fn last_fires(&self, workflow_id: Uuid) -> Result<Vec<ScheduleFire>, StoreError>;

    /// Deletes finished runs (with their steps) that finished before `before`, at most
    /// `limit`, oldest first, but never the parent of a run that has not finished; answers how
    /// many.
    async fn prune_runs(&self, before: OffsetDateTime, limit: u32) -> Result<u64, StoreError>;
}

/// Refuses a saved workflow the databases would refuse less clearly.
pub fn check_workflow_save(save: &WorkflowSave<'_>) -> Result<(), StoreError> {
    let name_chars = save.name.chars().count();
    if name_chars == 0 || name_chars > MAX_WORKFLOW_NAME_CHARS {
        return Err(StoreError::Invalid(format!(
            "a workflow's name is 1 to {MAX_WORKFLOW_NAME_CHARS} characters"
        )));
    }
    if save.description.chars().count() > MAX_WORKFLOW_DESCRIPTION_CHARS {
        return Err(StoreError::Invalid(format!(
            "a workflow's description is at most {MAX_WORKFLOW_DESCRIPTION_CHARS} characters"
        )));
    }
    if save.document.len() > MAX_WORKFLOW_DOCUMENT_BYTES {
        return Err(StoreError::Invalid(format!(
            "a workflow's document is at most {MAX_WORKFLOW_DOCUMENT_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Refuses text of `what` longer than `max` characters, or empty when `min` is 1.
fn check_chars(value: &str, min: usize, max: usize, what: &str) -> Result<(), StoreError> {
    let chars = value.chars().count();
    if chars < min || chars > max {
        return Err(StoreError::Invalid(if min == 0 {
            format!("{what} is at most {max} characters")
        } else {
            format!("{what} is {min} to {max} characters")
        }));
    }
    Ok(())
}

/// Refuses a JSON value larger than [`MAX_WORKFLOW_VALUE_BYTES`].
fn check_value(value: Option<&str>, what: &str) -> Result<(), StoreError> {
    if value.is_some_and(|v| v.len() > MAX_WORKFLOW_VALUE_BYTES) {
        return Err(StoreError::Invalid(format!(
            "{what} is at most {MAX_WORKFLOW_VALUE_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_error(error: Option<&str>, what: &str) -> Result<(), StoreError> {
    error.map_or(Ok(()), |e| {
        check_chars(e, 0, MAX_WORKFLOW_ERROR_CHARS, what)
    })
}

/// Refuses a run the databases would refuse less clearly: its keys, input and schedule
/// trigger over their caps, or a parent run without its step (or the other way round).
pub fn check_new_run(run: &NewRun<'_>) -> Result<(), StoreError> {
    if let Some(key) = run.trigger_key {
        check_chars(key, 1, MAX_TRIGGER_KEY_CHARS, "a run's trigger key")?;
    }
    check_value(Some(run.input), "a run's input")?;
    match (run.parent_run, run.parent_step) {
        (Some(_), Some(step)) => check_chars(step, 1, MAX_STEP_KEY_CHARS, "a parent's step key")?,
        (None, None) => {}
        _ => {
            return Err(StoreError::Invalid(
                "a sub-workflow's run names both its parent run and step".into(),
            ));
        }
    }
    if let Some((trigger_id, _)) = run.schedule {
        check_chars(
            trigger_id,
            1,
            MAX_TRIGGER_KEY_CHARS,
            "a schedule trigger's id",
        )?;
    }
    Ok(())
}

/// Refuses a replica's node name over [`MAX_LEASE_NODE_CHARS`] (or empty).
pub fn check_run_node(node: &str) -> Result<(), StoreError> {
    check_chars(node, 1, MAX_LEASE_NODE_CHARS, "a run's lease node name")
}

/// Refuses a sealed webhook secret that is empty or over [`MAX_WEBHOOK_SECRET_BYTES`].
pub fn check_webhook_secret(sealed: &[u8]) -> Result<(), StoreError> {
    if sealed.is_empty() || sealed.len() > MAX_WEBHOOK_SECRET_BYTES {
        return Err(StoreError::Invalid(format!(
            "a sealed webhook secret is 1 to {MAX_WEBHOOK_SECRET_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Refuses a run's end whose output or error is over its cap.
pub fn check_run_end(end: &RunEnd<'_>) -> Result<(), StoreError> {
    match end {
        RunEnd::Succeeded { output } => check_value(Some(output), "a run's output"),
        RunEnd::Failed { error } => check_error(Some(error), "a run's error"),
    }
}

/// Refuses a step's start whose key, node id or input is over its cap, or whose attempt is
/// not counted from 1.
pub fn check_step_start(start: &StepStart<'_>) -> Result<(), StoreError> {
    check_chars(start.step_key, 1, MAX_STEP_KEY_CHARS, "a step key")?;
    check_chars(start.node_id, 1, MAX_STEP_LABEL_CHARS, "a step's node id")?;
    if start.attempt < 1 {
        return Err(StoreError::Invalid("a step's attempts count from 1".into()));
    }
    check_value(start.input, "a step's input")
}

/// The caps of what a step's end or decision writes.
/// Refuses a step key, output, branch or error over its cap.
pub fn check_step_result(
    step_key: &str,
    output: Option<&str>,
    branch: Option<&str>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    check_chars(step_key, 1, MAX_STEP_KEY_CHARS, "a step key")?;
    check_value(output, "a step's output")?;
    if let Some(branch) = branch {
        check_chars(branch, 0, MAX_STEP_LABEL_CHARS, "a step's branch")?;
    }
    check_error(error, "a step's error")
}

/// Refuses a step's end over the caps, a `Running` one, a waiting one with an end time or an
/// ended one without.
pub fn check_step_end(end: &StepEnd<'_>) -> Result<(), StoreError> {
    check_step_result(end.step_key, end.output, end.branch, end.error)?;
    match (end.status, end.at) {
        (StepStatus::Running, _) => Err(StoreError::Invalid(
            "a step's end is not `running` (start_step journals that)".into(),
        )),
        (StepStatus::Waiting, Some(_)) => Err(StoreError::Invalid(
            "a waiting step has not finished: no end time".into(),
        )),
        (StepStatus::Waiting, None) | (_, Some(_)) => Ok(()),
        (_, None) => Err(StoreError::Invalid("an ended step has its end time".into())),
    }
}

/// Refuses a decision over the caps, or one that neither succeeds nor fails the step.
pub fn check_step_decision(decision: &StepDecision<'_>) -> Result<(), StoreError> {
    check_step_result(
        decision.step_key,
        decision.output,
        decision.branch,
        decision.error,
    )?;
    if !matches!(decision.status, StepStatus::Succeeded | StepStatus::Failed) {
        return Err(StoreError::Invalid(
            "a decision succeeds or fails the step".into(),
        ));
    }
    Ok(())
}
