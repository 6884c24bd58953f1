//! Workflows, their versions, runs and journals, on any sqlx dialect: the dialect supplies its
//! SQL, including how it holds a workflow, a principal or a run still while it is written.
//!
//! Lock order on PostgreSQL: a workflow's row before its runs, and a parent run before its
//! sub-workflows' runs (a sub-workflow's end and a cancellation both go down the tree), so two
//! writers never wait for each other in a circle.

use super::dialect::{BindValue, Dialect, DialectConnection, Pools, keyset_page};
use super::{commit_audited, commit_if, get, rows};
use crate::{
    AuditAppend, Cursor, NewRun, Page, PageRequest, RunCaps, RunEnd, RunFilter, RunInsert, RunRow,
    RunStatus, RunTrigger, ScheduleFire, StepDecision, StepEnd, StepRow, StepStart, StepStatus,
    StoreError, WorkflowRepo, WorkflowRow, WorkflowSave, WorkflowVersionRow, check_new_run,
    check_run_end, check_run_node, check_step_decision, check_step_end, check_step_result,
    check_step_start, check_webhook_secret, check_workflow_save,
};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns of `workflows`, as [`rows::workflow`] reads them.
#[macro_export]
macro_rules! workflow_columns {
    () => {
        "id, owner_id, name, description, latest_version, enabled, scheduled, webhook_secret, \
         created_at, updated_at"
    };
}

/// The columns of `workflow_versions`, as [`rows::workflow_version`] reads them.
#[macro_export]
macro_rules! workflow_version_columns {
    () => {
        "workflow_id, version, document, created_by, created_at"
    };
}

/// The columns of `workflow_runs` but the lease token (internal), as [`rows::workflow_run`]
/// reads them.
#[macro_export]
macro_rules! workflow_run_columns {
    () => {
        "id, workflow_id, version, principal_user, principal_token, trigger, trigger_key, \
         status, input, output, error, parent_run, parent_step, lease_node, lease_expires_at, \
         wake_at, signal, deadline_at, created_at, started_at, finished_at"
    };
}

/// The columns of `workflow_steps`, as [`rows::workflow_step`] reads them.
#[macro_export]
macro_rules! workflow_step_columns {
    () => {
        "run_id, step_key, node_id, status, attempt, input, output, branch, error, wake_at, \
         started_at, finished_at"
    };
}

/// The error a sub-workflow's cancellation leaves on its parent's waiting step.
const CANCELLED_SUB_WORKFLOW: &str = "the sub-workflow's run was cancelled";

/// The statements of [`SqlWorkflows`] in one dialect; the parameters of each are listed in the
/// order they are bound. "Held" rows stay as read until the transaction ends: their other
/// writers wait (PostgreSQL's row locks; on SQLite every write transaction holds the database).
pub trait WorkflowSql: Dialect {
    /// id; the workflow's `owner_id`, held.
    const HOLD_WORKFLOW: &'static str;
    /// id, owner, name, description, scheduled, at; inserts it enabled at version 1 and returns
    /// the columns of [`workflow_columns!`].
    const INSERT_WORKFLOW: &'static str;
    /// id, name, description, scheduled, at; counts its version up, returns
    /// [`workflow_columns!`].
    const NEXT_VERSION: &'static str;
    /// workflow id, version, document, created by, created at; returns
    /// [`workflow_version_columns!`].
    const INSERT_VERSION: &'static str;
    /// id; [`workflow_columns!`].
    const GET_WORKFLOW: &'static str;
    /// owner, name; [`workflow_columns!`].
    const FIND_WORKFLOW: &'static str;
    /// owner (or null for any), cursor time, cursor id, limit; newest first.
    const LIST_WORKFLOWS: &'static str;
    /// workflow id, version; [`workflow_version_columns!`].
    const GET_VERSION: &'static str;
    /// workflow id, limit; newest first.
    const LIST_VERSIONS: &'static str;
    /// id, enabled, at.
    const SET_ENABLED: &'static str;
    /// id, sealed secret (or null), at.
    const SET_WEBHOOK_SECRET: &'static str;
    /// id.
    const DELETE_WORKFLOW: &'static str;
    /// The enabled workflows with schedule triggers: [`workflow_columns!`].
    const SCHEDULED: &'static str;
    /// workflow id; the fires' `workflow_id, trigger_id, fired_at`, by trigger id.
    const LAST_FIRES: &'static str;

    /// workflow id, version; a row when both are stored, the workflow held: run inserts of one
    /// workflow take turns (its cap and trigger keys are counted under the hold).
    const HOLD_VERSION: &'static str;
    /// principal user; run inserts of one principal take turns (the user's cap).
    const HOLD_PRINCIPAL: &'static str;
    /// workflow id, trigger key; [`workflow_run_columns!`].
    const FIND_BY_TRIGGER_KEY: &'static str;
    /// principal user; its active runs as `n`.
    const COUNT_ACTIVE_FOR_USER: &'static str;
    /// workflow id; its active runs as `n`.
    const COUNT_ACTIVE_FOR_WORKFLOW: &'static str;
    /// id, workflow id, version, principal user, principal token, trigger, trigger key, input,
    /// parent run, parent step, deadline, created at; stores it queued, returns
    /// [`workflow_run_columns!`].
    const INSERT_RUN: &'static str;
    /// workflow id, trigger id, fired at; the trigger's last fire (a later one is kept).
    const RECORD_FIRE: &'static str;
    /// id; [`workflow_run_columns!`].
    const GET_RUN: &'static str;
    /// owner, workflow id, status, trigger (each or null for any), cursor time, cursor id,
    /// limit; newest first.
    const LIST_RUNS: &'static str;

    /// node, token, now, until, now (as stored); takes the oldest run that needs a replica and
    /// returns [`workflow_run_columns!`].
    const CLAIM: &'static str;
    /// id, token, until.
    const RENEW: &'static str;
    /// id, token, signal, wake at.
    const PARK: &'static str;
    /// id, token; a row when the token holds the run, held.
    const HOLD_LEASED_RUN: &'static str;
    /// id; `parent_run, parent_step` (not held).
    const READ_PARENT: &'static str;
    /// id; a row when the run has not ended, held.
    const HOLD_ACTIVE_RUN: &'static str;
    /// id, token, status, output, error, at; ends the run if the token holds it, returning `id`.
    const FINISH: &'static str;
    /// run id, step key, status, output, branch, error, at; ends the step if it is waiting.
    const END_WAITING_STEP: &'static str;
    /// id; counts a signal; a waiting run is queued again.
    const SIGNAL: &'static str;
    /// id, at; cancels the run if it has not ended, returning `id`.
    const CANCEL_RUN: &'static str;
    /// parent id, at; cancels the parent's sub-workflows' runs that have not ended, returning
    /// their `id`s.
    const CANCEL_CHILDREN: &'static str;
    /// run id, at; cancels its running and waiting steps.
    const CANCEL_STEPS: &'static str;
    /// id, deadline; queues a failed or cancelled run again.
    const RETRY: &'static str;
    /// run id; deletes the steps that did not succeed or were skipped.
    const DELETE_UNFINISHED_STEPS: &'static str;
    /// run id; [`workflow_step_columns!`] in the order they started, then by key.
    const STEPS: &'static str;
    /// limit; [`workflow_step_columns!`] of the waiting steps of waiting or running runs,
    /// newest first (by start, then run and key).
    const WAITING_STEPS: &'static str;
    /// run id, step key, node id, attempt, input, at; a new step or the next attempt.
    const START_STEP: &'static str;
    /// run id, step key, status, output, branch, error, wake at, at.
    const END_STEP: &'static str;
    /// run id, step key, progress; sets the output of a running step.
    const NOTE_STEP: &'static str;
    /// before, limit; deletes finished runs but the parents of unfinished ones.
    const PRUNE: &'static str;
}

pub struct SqlWorkflows<D: Dialect> {
    pub pools: Pools<D::Db>,
}

/// Ends a sub-workflow's parent step (if it is waiting) and signals the parent, inside the
/// caller's transaction; the parent was held first (and is known not to have ended).
async fn end_parent_step<D: WorkflowSql>(
    connection: &mut DialectConnection<D>,
    parent: Uuid,
    step_key: &str,
    status: StepStatus,
    output: Option<&str>,
    error: Option<&str>,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(D::END_WAITING_STEP)
        .bind_value(D::id(parent))
        .bind_value(step_key)
        .bind_value(status.as_str())
        .bind_value(output.map(str::to_owned))
        .bind_value(None::<&str>)
        .bind_value(error.map(str::to_owned))
        .bind_value(D::time(at))
        .execute(D::on(connection))
        .await
        .map_err(D::map_error)?;
    signal::<D>(connection, parent).await
}

async fn signal<D: WorkflowSql>(
    connection: &mut DialectConnection<D>,
    run_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(D::SIGNAL)
        .bind_value(D::id(run_id))
        .execute(D::on(connection))
        .await
        .map(|_| ())
        .map_err(D::map_error)
}

/// The run's parent run (held, and only if it has not ended) and the parent's step, inside the
/// caller's transaction. Answers `None` when the run is gone.
async fn hold_parent<D: WorkflowSql>(
    connection: &mut DialectConnection<D>,
    run_id: Uuid,
) -> Result<Option<Option<(Uuid, String)>>, StoreError> {
    let Some(row) = sqlx::query(D::READ_PARENT)
        .bind_value(D::id(run_id))
        .fetch_optional(D::on(connection))
        .await
        .map_err(D::map_error)?
    else {
        return Ok(None);
    };
    let parent_run = D::optional_uuid_at(&row, "parent_run")?;
    let parent_step: Option<String> = get::<D, _>(&row, "parent_step")?;
    let (Some(parent_run), Some(parent_step)) = (parent_run, parent_step) else {
        return Ok(Some(None));
    };
    let active = sqlx::query(D::HOLD_ACTIVE_RUN)
        .bind_value(D::id(parent_run))
        .fetch_optional(D::on(connection))
        .await
        .map_err(D::map_error)?;
    Ok(Some(active.map(|_| (parent_run, parent_step))))
}

/// Whether `token` holds the run, which then stays so until the transaction ends.
async fn hold_leased_run<D: WorkflowSql>(
    connection: &mut DialectConnection<D>,
    run_id: Uuid,
    token: Uuid,
) -> Result<bool, StoreError> {
    let held = sqlx::query(D::HOLD_LEASED_RUN)
        .bind_value(D::id(run_id))
        .bind_value(D::id(token))
        .fetch_optional(D::on(connection))
        .await
        .map_err(D::map_error)?;
    Ok(held.is_some())
}

async fn count<D: WorkflowSql>(
    connection: &mut DialectConnection<D>,
    statement: &'static str,
    id: Uuid,
) -> Result<i64, StoreError> {
    let row = sqlx::query(statement)
        .bind_value(D::id(id))
        .fetch_one(D::on(connection))
        .await
        .map_err(D::map_error)?;
    get::<D, i64>(&row, "n")
}

#[async_trait]
impl<D: WorkflowSql> WorkflowRepo for SqlWorkflows<D> {
    async fn save_workflow(
        &self,
        save: &WorkflowSave<'_>,
        audit: AuditAppend<'_>,
    ) -> Result<(WorkflowRow, WorkflowVersionRow), StoreError> {
        check_workflow_save(save)?;
        let mut tx = D::begin(&self.pools).await?;
        let held = sqlx::query(D::HOLD_WORKFLOW)
            .bind_value(D::id(save.id))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let saved = match held {
            None => sqlx::query(D::INSERT_WORKFLOW)
                .bind_value(D::id(save.id))
                .bind_value(D::id(save.owner_id))
                .bind_value(save.name)
                .bind_value(save.description)
                .bind_value(save.scheduled)
                .bind_value(D::time(save.at))
                .fetch_one(D::on(&mut tx))
                .await
                .map_err(D::map_error)?,
            Some(row) => {
                // Dropping the transaction rolls back: nothing written, no audit record.
                if D::uuid_at(&row, "owner_id")? != save.owner_id {
                    return Err(StoreError::NotFound);
                }
                sqlx::query(D::NEXT_VERSION)
                    .bind_value(D::id(save.id))
                    .bind_value(save.name)
                    .bind_value(save.description)
                    .bind_value(save.scheduled)
                    .bind_value(D::time(save.at))
                    .fetch_one(D::on(&mut tx))
                    .await
                    .map_err(D::map_error)?
            }
        };
        let workflow = rows::workflow::<D>(&saved)?;
        let version = sqlx::query(D::INSERT_VERSION)
            .bind_value(D::id(save.id))
            .bind_value(workflow.latest_version)
            .bind_value(save.document)
            .bind_value(save.created_by.map(D::id))
            .bind_value(D::time(save.at))
            .fetch_one(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let version = rows::workflow_version::<D>(&version)?;
        commit_audited::<D>(tx, &audit).await?;
        Ok((workflow, version))
    }

    async fn get_workflow(&self, id: Uuid) -> Result<Option<WorkflowRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::GET_WORKFLOW)
            .bind_value(D::id(id))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::workflow::<D>).transpose()
    }

    async fn find_workflow(
        &self,
        owner_id: Uuid,
        name: &str,
    ) -> Result<Option<WorkflowRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::FIND_WORKFLOW)
            .bind_value(D::id(owner_id))
            .bind_value(name)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::workflow::<D>).transpose()
    }

    async fn list_workflows(
        &self,
        owner_id: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<WorkflowRow>, StoreError> {
        let query = sqlx::query(D::LIST_WORKFLOWS).bind_value(owner_id.map(D::id));
        keyset_page::<D, _>(&self.pools, query, page, rows::workflow::<D>, |w| Cursor {
            at: w.created_at,
            id: w.id,
        })
        .await
    }

    async fn get_version(
        &self,
        workflow_id: Uuid,
        version: i64,
    ) -> Result<Option<WorkflowVersionRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::GET_VERSION)
            .bind_value(D::id(workflow_id))
            .bind_value(version)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::workflow_version::<D>).transpose()
    }

    async fn list_versions(
        &self,
        workflow_id: Uuid,
        limit: u32,
    ) -> Result<Vec<WorkflowVersionRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::LIST_VERSIONS)
            .bind_value(D::id(workflow_id))
            .bind_value(i64::from(limit))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::workflow_version::<D>).collect()
    }

    async fn set_workflow_enabled(
        &self,
        id: Uuid,
        enabled: bool,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::SET_ENABLED)
            .bind_value(D::id(id))
            .bind_value(enabled)
            .bind_value(D::time(at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, changed, audit).await
    }

    async fn set_webhook_secret(
        &self,
        id: Uuid,
        sealed: Option<&[u8]>,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        if let Some(sealed) = sealed {
            check_webhook_secret(sealed)?;
        }
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::SET_WEBHOOK_SECRET)
            .bind_value(D::id(id))
            .bind_value(sealed.map(<[u8]>::to_vec))
            .bind_value(D::time(at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, changed, audit).await
    }

    async fn delete_workflow(&self, id: Uuid, audit: AuditAppend<'_>) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::DELETE_WORKFLOW)
            .bind_value(D::id(id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let deleted = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, deleted, audit).await
    }

    async fn insert_run(
        &self,
        run: &NewRun<'_>,
        caps: RunCaps,
        audit: AuditAppend<'_>,
    ) -> Result<RunInsert, StoreError> {
        check_new_run(run)?;
        let mut tx = D::begin(&self.pools).await?;
        // Every early return below drops the transaction: nothing written, no audit record.
        let version = sqlx::query(D::HOLD_VERSION)
            .bind_value(D::id(run.workflow_id))
            .bind_value(run.version)
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if version.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(D::HOLD_PRINCIPAL)
            .bind_value(D::id(run.principal_user))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if let Some(key) = run.trigger_key {
            let existing = sqlx::query(D::FIND_BY_TRIGGER_KEY)
                .bind_value(D::id(run.workflow_id))
                .bind_value(key)
                .fetch_optional(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            if let Some(existing) = existing {
                return Ok(RunInsert::Duplicate(rows::workflow_run::<D>(&existing)?));
            }
        }
        let user_active = count::<D>(&mut tx, D::COUNT_ACTIVE_FOR_USER, run.principal_user).await?;
        if user_active >= i64::from(caps.per_user) {
            return Ok(RunInsert::UserAtCap);
        }
        let workflow_active =
            count::<D>(&mut tx, D::COUNT_ACTIVE_FOR_WORKFLOW, run.workflow_id).await?;
        if workflow_active >= i64::from(caps.per_workflow) {
            return Ok(RunInsert::WorkflowAtCap);
        }
        let inserted = sqlx::query(D::INSERT_RUN)
            .bind_value(D::id(run.id))
            .bind_value(D::id(run.workflow_id))
            .bind_value(run.version)
            .bind_value(D::id(run.principal_user))
            .bind_value(run.principal_token.map(D::id))
            .bind_value(run.trigger.as_str())
            .bind_value(run.trigger_key.map(str::to_owned))
            .bind_value(run.input)
            .bind_value(run.parent_run.map(D::id))
            .bind_value(run.parent_step.map(str::to_owned))
            .bind_value(D::time(run.deadline_at))
            .bind_value(D::time(run.created_at))
            .fetch_one(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let row = rows::workflow_run::<D>(&inserted)?;
        if let Some((trigger_id, fired_at)) = run.schedule {
            sqlx::query(D::RECORD_FIRE)
                .bind_value(D::id(run.workflow_id))
                .bind_value(trigger_id)
                .bind_value(D::time(fired_at))
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
        }
        commit_audited::<D>(tx, &audit).await?;
        Ok(RunInsert::Created(row))
    }

    async fn get_run(&self, id: Uuid) -> Result<Option<RunRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::GET_RUN)
            .bind_value(D::id(id))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::workflow_run::<D>).transpose()
    }

    async fn list_runs(
        &self,
        filter: &RunFilter,
        page: &PageRequest,
    ) -> Result<Page<RunRow>, StoreError> {
        let query = sqlx::query(D::LIST_RUNS)
            .bind_value(filter.owner_id.map(D::id))
            .bind_value(filter.workflow_id.map(D::id))
            .bind_value(filter.status.map(RunStatus::as_str))
            .bind_value(filter.trigger.map(RunTrigger::as_str));
        keyset_page::<D, _>(&self.pools, query, page, rows::workflow_run::<D>, |r| {
            Cursor {
                at: r.created_at,
                id: r.id,
            }
        })
        .await
    }

    async fn claim_run(
        &self,
        node: &str,
        token: Uuid,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<RunRow>, StoreError> {
        check_run_node(node)?;
        let mut tx = D::begin(&self.pools).await?;
        let claimed = sqlx::query(D::CLAIM)
            .bind_value(node)
            .bind_value(D::id(token))
            .bind_value(D::instant(now))
            .bind_value(D::time(until))
            .bind_value(D::time(now))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let run = claimed.as_ref().map(rows::workflow_run::<D>).transpose()?;
        tx.commit().await.map_err(D::map_error)?;
        Ok(run)
    }

    async fn renew_run(
        &self,
        run_id: Uuid,
        token: Uuid,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let done = sqlx::query(D::RENEW)
            .bind_value(D::id(run_id))
            .bind_value(D::id(token))
            .bind_value(D::time(until))
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(D::rows_affected(&done) == 1)
    }

    async fn park_run(
        &self,
        run_id: Uuid,
        token: Uuid,
        signal: i64,
        wake_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let done = sqlx::query(D::PARK)
            .bind_value(D::id(run_id))
            .bind_value(D::id(token))
            .bind_value(signal)
            .bind_value(wake_at.map(D::time))
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(D::rows_affected(&done) == 1)
    }

    async fn finish_run(
        &self,
        run_id: Uuid,
        token: Uuid,
        end: &RunEnd<'_>,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        check_run_end(end)?;
        let (status, output, error) = match *end {
            RunEnd::Succeeded { output } => (RunStatus::Succeeded, Some(output), None),
            RunEnd::Failed { error } => (RunStatus::Failed, None, Some(error)),
        };
        let mut tx = D::begin(&self.pools).await?;
        // The parent first (the lock order): its step is ended in this same transaction.
        let Some(parent) = hold_parent::<D>(&mut tx, run_id).await? else {
            return Ok(false);
        };
        let finished = sqlx::query(D::FINISH)
            .bind_value(D::id(run_id))
            .bind_value(D::id(token))
            .bind_value(status.as_str())
            .bind_value(output.map(str::to_owned))
            .bind_value(error.map(str::to_owned))
            .bind_value(D::time(at))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if finished.is_none() {
            return Ok(false);
        }
        if let Some((parent_run, parent_step)) = parent {
            let step_status = match status {
                RunStatus::Succeeded => StepStatus::Succeeded,
                _ => StepStatus::Failed,
            };
            end_parent_step::<D>(
                &mut tx,
                parent_run,
                &parent_step,
                step_status,
                output,
                error,
                at,
            )
            .await?;
        }
        commit_audited::<D>(tx, &audit).await?;
        Ok(true)
    }

    async fn cancel_run(
        &self,
        run_id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let Some(parent) = hold_parent::<D>(&mut tx, run_id).await? else {
            return Ok(false);
        };
        let cancelled = sqlx::query(D::CANCEL_RUN)
            .bind_value(D::id(run_id))
            .bind_value(D::time(at))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if cancelled.is_none() {
            return Ok(false);
        }
        // Down the tree, each run held before its sub-workflows' runs.
        let mut pending = vec![run_id];
        while let Some(id) = pending.pop() {
            sqlx::query(D::CANCEL_STEPS)
                .bind_value(D::id(id))
                .bind_value(D::time(at))
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            let children = sqlx::query(D::CANCEL_CHILDREN)
                .bind_value(D::id(id))
                .bind_value(D::time(at))
                .fetch_all(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            for child in &children {
                pending.push(D::uuid_at(child, "id")?);
            }
        }
        // A sub-workflow's run cancelled on its own: its parent, which has not ended, would
        // wait for it for ever; its step fails instead.
        if let Some((parent_run, parent_step)) = parent {
            end_parent_step::<D>(
                &mut tx,
                parent_run,
                &parent_step,
                StepStatus::Failed,
                None,
                Some(CANCELLED_SUB_WORKFLOW),
                at,
            )
            .await?;
        }
        commit_audited::<D>(tx, &audit).await?;
        Ok(true)
    }

    async fn retry_run(
        &self,
        run_id: Uuid,
        deadline_at: OffsetDateTime,
        _at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::RETRY)
            .bind_value(D::id(run_id))
            .bind_value(D::time(deadline_at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if D::rows_affected(&done) != 1 {
            return Ok(false);
        }
        sqlx::query(D::DELETE_UNFINISHED_STEPS)
            .bind_value(D::id(run_id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_if::<D>(tx, true, audit).await
    }

    async fn steps(&self, run_id: Uuid) -> Result<Vec<StepRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::STEPS)
            .bind_value(D::id(run_id))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::workflow_step::<D>).collect()
    }

    async fn waiting_steps(&self, limit: u32) -> Result<Vec<(RunRow, StepRow)>, StoreError> {
        let limit = limit.min(crate::MAX_WAITING_STEPS);
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::WAITING_STEPS)
            .bind_value(i64::from(limit))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        let steps = found
            .iter()
            .map(rows::workflow_step::<D>)
            .collect::<Result<Vec<_>, _>>()?;
        // Each run read once; one that ended or went in between is left out.
        let mut runs: std::collections::HashMap<Uuid, Option<RunRow>> =
            std::collections::HashMap::new();
        let mut answer = Vec::with_capacity(steps.len());
        for step in steps {
            let run = match runs.entry(step.run_id) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let row = sqlx::query(D::GET_RUN)
                        .bind_value(D::id(step.run_id))
                        .fetch_optional(D::on(&mut reader))
                        .await
                        .map_err(D::map_error)?;
                    let run = row
                        .as_ref()
                        .map(rows::workflow_run::<D>)
                        .transpose()?
                        .filter(|run| {
                            matches!(run.status, RunStatus::Waiting | RunStatus::Running)
                        });
                    slot.insert(run)
                }
            };
            if let Some(run) = run {
                answer.push((run.clone(), step));
            }
        }
        Ok(answer)
    }

    async fn start_step(
        &self,
        run_id: Uuid,
        token: Uuid,
        start: &StepStart<'_>,
    ) -> Result<bool, StoreError> {
        check_step_start(start)?;
        let mut tx = D::begin(&self.pools).await?;
        if !hold_leased_run::<D>(&mut tx, run_id, token).await? {
            return Ok(false);
        }
        sqlx::query(D::START_STEP)
            .bind_value(D::id(run_id))
            .bind_value(start.step_key)
            .bind_value(start.node_id)
            .bind_value(start.attempt)
            .bind_value(start.input.map(str::to_owned))
            .bind_value(D::time(start.at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        tx.commit().await.map_err(D::map_error)?;
        Ok(true)
    }

    async fn end_step(
        &self,
        run_id: Uuid,
        token: Uuid,
        end: &StepEnd<'_>,
    ) -> Result<bool, StoreError> {
        check_step_end(end)?;
        let mut tx = D::begin(&self.pools).await?;
        if !hold_leased_run::<D>(&mut tx, run_id, token).await? {
            return Ok(false);
        }
        let done = sqlx::query(D::END_STEP)
            .bind_value(D::id(run_id))
            .bind_value(end.step_key)
            .bind_value(end.status.as_str())
            .bind_value(end.output.map(str::to_owned))
            .bind_value(end.branch.map(str::to_owned))
            .bind_value(end.error.map(str::to_owned))
            .bind_value(end.wake_at.map(D::time))
            .bind_value(end.at.map(D::time))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if D::rows_affected(&done) != 1 {
            return Ok(false);
        }
        tx.commit().await.map_err(D::map_error)?;
        Ok(true)
    }

    async fn note_step(
        &self,
        run_id: Uuid,
        token: Uuid,
        step_key: &str,
        progress: &str,
    ) -> Result<bool, StoreError> {
        check_step_result(step_key, Some(progress), None, None)?;
        let mut tx = D::begin(&self.pools).await?;
        if !hold_leased_run::<D>(&mut tx, run_id, token).await? {
            return Ok(false);
        }
        let done = sqlx::query(D::NOTE_STEP)
            .bind_value(D::id(run_id))
            .bind_value(step_key)
            .bind_value(progress)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if D::rows_affected(&done) != 1 {
            return Ok(false);
        }
        tx.commit().await.map_err(D::map_error)?;
        Ok(true)
    }

    async fn decide_step(
        &self,
        decision: &StepDecision<'_>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        check_step_decision(decision)?;
        let mut tx = D::begin(&self.pools).await?;
        let active = sqlx::query(D::HOLD_ACTIVE_RUN)
            .bind_value(D::id(decision.run_id))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if active.is_none() {
            return Ok(false);
        }
        let done = sqlx::query(D::END_WAITING_STEP)
            .bind_value(D::id(decision.run_id))
            .bind_value(decision.step_key)
            .bind_value(decision.status.as_str())
            .bind_value(decision.output.map(str::to_owned))
            .bind_value(decision.branch.map(str::to_owned))
            .bind_value(decision.error.map(str::to_owned))
            .bind_value(D::time(decision.at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if D::rows_affected(&done) != 1 {
            return Ok(false);
        }
        signal::<D>(&mut tx, decision.run_id).await?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(true)
    }

    async fn scheduled_workflows(&self) -> Result<Vec<WorkflowRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::SCHEDULED)
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::workflow::<D>).collect()
    }

    async fn last_fires(&self, workflow_id: Uuid) -> Result<Vec<ScheduleFire>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::LAST_FIRES)
            .bind_value(D::id(workflow_id))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::schedule_fire::<D>).collect()
    }

    async fn prune_runs(&self, before: OffsetDateTime, limit: u32) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let done = sqlx::query(D::PRUNE)
            .bind_value(D::time(before))
            .bind_value(i64::from(limit))
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(D::rows_affected(&done))
    }
}
