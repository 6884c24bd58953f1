//! The workflows' background jobs, run by the leader: schedule triggers fire, and old runs are
//! pruned.
//!
//! A schedule's fire is recorded in the same transaction as the run it starts, and the run's
//! trigger key is the fire time: a leader that takes over reads the last fire and starts the
//! ones due since (none missed), and a fire started twice (two leaders for a moment) makes one
//! run (none doubled).

use super::definition::{Definition, Trigger};
use super::runs::{RunAs, RunRequest, RunStarter, Started};
use crate::kernel::audit::Principal;
use crate::kernel::caller::RequestMeta;
use crate::kernel::jobs::{Job, JobContext};
use async_trait::async_trait;
use hive_store::{RunTrigger, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Fires of one trigger started in one run of the job at most (the rest wait for the next).
const MAX_FIRES_PER_TRIGGER: usize = 100;

pub struct FireSchedules {
    pub starter: Arc<RunStarter>,
    pub every: Duration,
}

#[async_trait]
impl Job for FireSchedules {
    fn name(&self) -> &'static str {
        "workflow-schedules"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext) -> Result<String, String> {
        let now = ctx.clock.now();
        let workflows = ctx
            .store
            .workflows()
            .scheduled_workflows()
            .await
            .map_err(|e| e.to_string())?;
        let mut started = 0usize;
        let mut refused = 0usize;
        for workflow in workflows {
            match self.fire(ctx, &workflow, now).await {
                Ok((fired, held_back)) => {
                    started += fired;
                    refused += held_back;
                }
                Err(error) => {
                    tracing::warn!(%error, workflow = %workflow.id, "workflows: schedules not fired");
                    refused += 1;
                }
            }
        }
        Ok(format!(
            "started {started} scheduled runs; {refused} held back"
        ))
    }
}

impl FireSchedules {
    /// Starts the workflow's due fires; answers how many started and how many were held back
    /// (a cap reached: they start at a later run of the job).
    async fn fire(
        &self,
        ctx: &JobContext,
        workflow: &hive_store::WorkflowRow,
        now: OffsetDateTime,
    ) -> Result<(usize, usize), StoreError> {
        let store = ctx.store.workflows();
        let Some(version) = store
            .get_version(workflow.id, workflow.latest_version)
            .await?
        else {
            return Ok((0, 0));
        };
        let Ok(definition) = Definition::parse(&version.document) else {
            return Ok((0, 0));
        };
        let last: HashMap<String, OffsetDateTime> = store
            .last_fires(workflow.id)
            .await?
            .into_iter()
            .map(|fire| (fire.trigger_id, fire.fired_at))
            .collect();
        let (mut started, mut held_back) = (0, 0);
        for trigger in &definition.triggers {
            let Trigger::Schedule {
                id,
                schedule,
                input,
            } = trigger
            else {
                continue;
            };
            // A new trigger fires from the time its version was saved, not from the past.
            let since = last.get(id).copied().unwrap_or(version.created_at);
            let mut next = schedule.next_after(since);
            let mut fires = 0;
            while let Some(at) = next.filter(|at| *at <= now) {
                if fires == MAX_FIRES_PER_TRIGGER {
                    break;
                }
                let at = hive_store::truncate_to_micros(at);
                let request = RunRequest::new(
                    workflow,
                    version.version,
                    &definition,
                    RunAs {
                        user: workflow.owner_id,
                        token: None,
                    },
                    RunTrigger::Schedule,
                    input.clone(),
                    Principal::Job(self.name()),
                )
                .keyed(format!("schedule:{id}:{}", at.unix_timestamp()))
                .fired(id, at);
                match self.starter.start(&request, &RequestMeta::default()).await {
                    Ok(Started::Created(_)) => started += 1,
                    // Another run of the job (a leader of a moment before) started it.
                    Ok(Started::Existing(_)) => {}
                    Err(error) => {
                        tracing::info!(%error, workflow = %workflow.id, trigger = %id, "workflows: a scheduled run is held back");
                        held_back += 1;
                        break;
                    }
                }
                fires += 1;
                next = schedule.next_after(at);
            }
        }
        Ok((started, held_back))
    }
}

/// Deletes runs that ended longer ago than the retention.
pub struct PruneWorkflowRuns {
    pub retention: Duration,
    pub every: Duration,
}

/// Runs deleted per statement.
const PRUNE_BATCH: u32 = 1000;

#[async_trait]
impl Job for PruneWorkflowRuns {
    fn name(&self) -> &'static str {
        "prune-workflow-runs"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext) -> Result<String, String> {
        let retention = time::Duration::try_from(self.retention).map_err(|e| e.to_string())?;
        let before = ctx.clock.now() - retention;
        let mut deleted = 0;
        loop {
            let batch = ctx
                .store
                .workflows()
                .prune_runs(before, PRUNE_BATCH)
                .await
                .map_err(|e| e.to_string())?;
            deleted += batch;
            if batch < u64::from(PRUNE_BATCH) {
                return Ok(format!("deleted {deleted} workflow runs"));
            }
        }
    }
}
