use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    Cursor, JobOutcome, JobRun, JobRunRepo, NewJobRun, Page, PageRequest, StoreError,
    truncate_to_micros,
};
use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::{QueryBuilder, Row};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct PgJobRuns {
    pub pool: PgPool,
}

fn to_run(row: &PgRow) -> Result<JobRun, StoreError> {
    let outcome: String = row.try_get("outcome").map_err(map_error)?;
    Ok(JobRun {
        id: row.try_get("id").map_err(map_error)?,
        job: row.try_get("job").map_err(map_error)?,
        node_id: row.try_get("node_id").map_err(map_error)?,
        started_at: row.try_get("started_at").map_err(map_error)?,
        finished_at: row.try_get("finished_at").map_err(map_error)?,
        outcome: JobOutcome::parse(&outcome)?,
        detail: row.try_get("detail").map_err(map_error)?,
    })
}

#[async_trait]
impl JobRunRepo for PgJobRuns {
    async fn start(&self, run: NewJobRun) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO job_runs (id, job, node_id, started_at, outcome) VALUES ($1, $2, $3, $4, 'running')",
        )
        .bind(id)
        .bind(&run.job)
        .bind(&run.node_id)
        .bind(truncate_to_micros(run.started_at))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
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
        // One statement decides: the run ends only if it is still running.
        let previous: Option<String> = sqlx::query_scalar(
            "WITH target AS (SELECT id, outcome FROM job_runs WHERE id = $1 FOR UPDATE), \
                  ended AS (UPDATE job_runs j SET finished_at = $2, outcome = $3, detail = $4 \
                            FROM target WHERE j.id = target.id AND target.outcome = 'running' \
                            RETURNING j.id) \
             SELECT target.outcome FROM target",
        )
        .bind(id)
        .bind(truncate_to_micros(finished_at))
        .bind(outcome.as_str())
        .bind(detail)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        match previous.as_deref() {
            None => Err(StoreError::NotFound),
            Some("running") => Ok(()),
            Some(_) => Err(StoreError::Conflict("the run has already ended".into())),
        }
    }

    async fn list(
        &self,
        job: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<JobRun>, StoreError> {
        // Only the conditions in use, so the planner can walk one of the two indexes.
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT id, job, node_id, started_at, finished_at, outcome, detail \
             FROM job_runs WHERE true",
        );
        if let Some(job) = job {
            query.push(" AND job = ").push_bind(job);
        }
        if let Some(after) = page.after() {
            query
                .push(" AND (started_at, id) < (")
                .push_bind(truncate_to_micros(after.at))
                .push(", ")
                .push_bind(after.id)
                .push(")");
        }
        query
            .push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(page.limit()) + 1);
        let rows = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        let items = rows.iter().map(to_run).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |run| Cursor {
            at: run.started_at,
            id: run.id,
        }))
    }

    async fn prune_finished_before(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM job_runs WHERE finished_at IS NOT NULL AND finished_at < $1")
            .bind(truncate_to_micros(before))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_error)
    }
}
