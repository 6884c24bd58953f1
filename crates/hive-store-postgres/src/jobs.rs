use crate::dialect::PgDialect;
use crate::map_error;
use hive_store::sqlx_support::Pools;
use hive_store::sqlx_support::jobs::JobRunSql;
use hive_store::{JobOutcome, StoreError, truncate_to_micros};
use sqlx::Postgres;
use time::OffsetDateTime;
use uuid::Uuid;

impl JobRunSql for PgDialect {
    const START: &'static str = "INSERT INTO job_runs (id, job, node_id, started_at, outcome) \
         VALUES ($1, $2, $3, $4, 'running')";
    const LIST: &'static str = "SELECT id, job, node_id, started_at, finished_at, outcome, detail \
         FROM job_runs WHERE true";
    const PRUNE_FINISHED: &'static str =
        "DELETE FROM job_runs WHERE finished_at IS NOT NULL AND finished_at < $1";

    async fn finish_run(
        pools: &Pools<Postgres>,
        id: Uuid,
        finished_at: OffsetDateTime,
        outcome: JobOutcome,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
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
        .fetch_optional(&pools.writer)
        .await
        .map_err(map_error)?;
        match previous.as_deref() {
            None => Err(StoreError::NotFound),
            Some("running") => Ok(()),
            Some(_) => Err(StoreError::Conflict("the run has already ended".into())),
        }
    }
}
