use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    Cursor, JobOutcome, JobRun, JobRunRepo, NewJobRun, Page, PageRequest, StoreError,
};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct SqliteJobRuns {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

/// Times are stored as unix microseconds.
fn to_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| StoreError::Backend("a stored time is out of range".into()))
}

fn to_run(row: &SqliteRow) -> Result<JobRun, StoreError> {
    let id: String = row.try_get("id").map_err(map_error)?;
    let outcome: String = row.try_get("outcome").map_err(map_error)?;
    let finished: Option<i64> = row.try_get("finished_at").map_err(map_error)?;
    Ok(JobRun {
        id: Uuid::parse_str(&id)
            .map_err(|_| StoreError::Backend("a stored id is not a uuid".into()))?,
        job: row.try_get("job").map_err(map_error)?,
        node_id: row.try_get("node_id").map_err(map_error)?,
        started_at: from_micros(row.try_get("started_at").map_err(map_error)?)?,
        finished_at: finished.map(from_micros).transpose()?,
        outcome: JobOutcome::parse(&outcome)?,
        detail: row.try_get("detail").map_err(map_error)?,
    })
}

#[async_trait]
impl JobRunRepo for SqliteJobRuns {
    async fn start(&self, run: NewJobRun) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO job_runs (id, job, node_id, started_at, outcome) VALUES (?, ?, ?, ?, 'running')",
        )
        .bind(id.to_string())
        .bind(&run.job)
        .bind(&run.node_id)
        .bind(to_micros(run.started_at))
        .execute(&self.writer)
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
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_error)?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT outcome FROM job_runs WHERE id = ?")
                .bind(id.to_string())
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
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)
    }

    async fn list(
        &self,
        job: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<JobRun>, StoreError> {
        let after = page.after();
        let rows = sqlx::query(
            "SELECT id, job, node_id, started_at, finished_at, outcome, detail FROM job_runs \
             WHERE (?1 IS NULL OR job = ?1) \
               AND (?2 IS NULL OR started_at < ?2 OR (started_at = ?2 AND id < ?3)) \
             ORDER BY started_at DESC, id DESC LIMIT ?4",
        )
        .bind(job)
        .bind(after.map(|c| to_micros(c.at)))
        .bind(after.map(|c| c.id.to_string()))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        let items = rows.iter().map(to_run).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |run| Cursor {
            at: run.started_at,
            id: run.id,
        }))
    }

    async fn prune_finished_before(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM job_runs WHERE finished_at IS NOT NULL AND finished_at < ?")
            .bind(to_micros(before))
            .execute(&self.writer)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_error)
    }
}
