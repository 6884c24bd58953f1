use crate::dialect::{SqliteDialect, begin, text, to_micros};
use crate::map_error;
use hive_store::sqlx_support::Pools;
use hive_store::sqlx_support::jobs::JobRunSql;
use hive_store::{JobOutcome, StoreError};
use sqlx::Sqlite;
use time::OffsetDateTime;
use uuid::Uuid;

impl JobRunSql for SqliteDialect {
    const START: &'static str = "INSERT INTO job_runs (id, job, node_id, started_at, outcome) \
         VALUES (?, ?, ?, ?, 'running')";
    const LIST: &'static str = "SELECT id, job, node_id, started_at, finished_at, outcome, detail \
         FROM job_runs WHERE 1 = 1";
    const PRUNE_FINISHED: &'static str =
        "DELETE FROM job_runs WHERE finished_at IS NOT NULL AND finished_at < ?";

    async fn finish_run(
        pools: &Pools<Sqlite>,
        id: Uuid,
        finished_at: OffsetDateTime,
        outcome: JobOutcome,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let id = text(id);
        // IMMEDIATE takes the write lock up front, so the check and the update see one state.
        let mut tx = begin(&pools.writer).await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT outcome FROM job_runs WHERE id = ?")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?;
        match current.as_deref() {
            None => return Err(StoreError::NotFound),
            Some("running") => {}
            Some(_) => return Err(StoreError::Conflict("the run has already ended".into())),
        }
        sqlx::query("UPDATE job_runs SET finished_at = ?, outcome = ?, detail = ? WHERE id = ?")
            .bind(to_micros(finished_at))
            .bind(outcome.as_str())
            .bind(detail)
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)
    }
}
