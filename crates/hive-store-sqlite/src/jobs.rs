use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    Cursor, JobOutcome, JobRun, JobRunRepo, NewJobRun, Page, PageRequest, StoreError,
};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct SqliteJobRuns {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

/// Times are stored as unix microseconds, truncated towards the past (also before 1970).
pub(crate) fn to_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000)).unwrap_or(i64::MAX)
}

pub(crate) fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| StoreError::Backend("a stored time is out of range".into()))
}

fn to_run(row: &SqliteRow) -> Result<JobRun, StoreError> {
    let id: String = row.try_get("id").map_err(map_error)?;
    let outcome: String = row.try_get("outcome").map_err(map_error)?;
    let finished: Option<i64> = row.try_get("finished_at").map_err(map_error)?;
    Ok(JobRun {
        id: Uuid::try_parse(&id)
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
            "INSERT INTO job_runs (id, job, node_id, started_at, outcome) \
             VALUES (?, ?, ?, ?, 'running')",
        )
        .bind(id.hyphenated().to_string())
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
        let id = id.hyphenated().to_string();
        // IMMEDIATE takes the write lock up front, so the check and the update see one state.
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_error)?;
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

    async fn list(
        &self,
        job: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<JobRun>, StoreError> {
        // Only the conditions in use, so the planner can walk one of the two indexes.
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT id, job, node_id, started_at, finished_at, outcome, detail \
             FROM job_runs WHERE 1 = 1",
        );
        if let Some(job) = job {
            query.push(" AND job = ").push_bind(job);
        }
        if let Some(after) = page.after() {
            query
                .push(" AND (started_at, id) < (")
                .push_bind(to_micros(after.at))
                .push(", ")
                .push_bind(after.id.hyphenated().to_string())
                .push(")");
        }
        query
            .push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(page.limit()) + 1);
        let rows = query
            .build()
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn micros_truncate_towards_the_past() {
        let before_epoch = datetime!(1969-12-31 23:59:59.999999999 UTC);
        assert_eq!(to_micros(before_epoch), -1);
        let after = datetime!(2026-03-01 12:00:00.123456789 UTC);
        assert_eq!(
            from_micros(to_micros(after)).ok(),
            Some(datetime!(2026-03-01 12:00:00.123456 UTC))
        );
    }
}
