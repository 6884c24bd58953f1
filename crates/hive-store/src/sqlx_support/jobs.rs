//! The history of background job runs, on any sqlx dialect: the dialect supplies its SQL and
//! how a run is ended exactly once.

use super::dialect::{BindValue, Dialect, Pools, PushValue};
use super::rows;
use crate::{Cursor, JobOutcome, JobRun, JobRunRepo, NewJobRun, Page, PageRequest, StoreError};
use async_trait::async_trait;
use sqlx::QueryBuilder;
use std::future::Future;
use time::OffsetDateTime;
use uuid::Uuid;

/// The statements of [`SqlJobRuns`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait JobRunSql: Dialect {
    /// id, job, node id, started at; the run is `running`.
    const START: &'static str;
    /// Every run, before the conditions [`JobRunRepo::list`] appends (`AND …`).
    const LIST: &'static str;
    /// before; finished runs only.
    const PRUNE_FINISHED: &'static str;

    /// Ends run `id` if it is still running: [`StoreError::NotFound`] without such a run,
    /// [`StoreError::Conflict`] when it has ended already.
    fn finish_run(
        pools: &Pools<Self::Db>,
        id: Uuid,
        finished_at: OffsetDateTime,
        outcome: JobOutcome,
        detail: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub struct SqlJobRuns<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: JobRunSql> JobRunRepo for SqlJobRuns<D> {
    async fn start(&self, run: NewJobRun) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::START)
            .bind_value(D::id(id))
            .bind_value(run.job.as_str())
            .bind_value(run.node_id.as_str())
            .bind_value(D::time(run.started_at))
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(id)
    }

    async fn finish(
        &self,
        id: Uuid,
        finished_at: OffsetDateTime,
        outcome: JobOutcome,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        if outcome == JobOutcome::Running {
            return Err(StoreError::Conflict(
                "a finished run needs an outcome".into(),
            ));
        }
        D::finish_run(&self.pools, id, finished_at, outcome, detail).await
    }

    async fn list(
        &self,
        job: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<JobRun>, StoreError> {
        // Only the conditions in use, so the planner can walk one of the two indexes.
        let mut query = QueryBuilder::<D::Db>::new(D::LIST);
        if let Some(job) = job {
            query.push(" AND job = ").push_value(job.to_owned());
        }
        if let Some(after) = page.after() {
            query
                .push(" AND (started_at, id) < (")
                .push_value(D::time(after.at))
                .push(", ")
                .push_value(D::id(after.id))
                .push(")");
        }
        query
            .push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_value(i64::from(page.limit()) + 1);
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = query
            .build()
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        let items = found
            .iter()
            .map(rows::job_run::<D>)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |run| Cursor {
            at: run.started_at,
            id: run.id,
        }))
    }

    async fn prune_finished_before(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::PRUNE_FINISHED)
            .bind_value(D::time(before))
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done))
            .map_err(D::map_error)
    }
}
