use crate::map_error;
use async_trait::async_trait;
use hive_store::{Cursor, Page, PageRequest, StoreError, TaskRepo, TaskRow, truncate_to_micros};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct PgTasks {
    pub pool: PgPool,
}

const COLUMNS: &str = "id, owner, agent_id, context_id, status_time, document, expires_at";

fn to_task(row: &PgRow) -> Result<TaskRow, StoreError> {
    Ok(TaskRow {
        id: row.try_get("id").map_err(map_error)?,
        owner: row.try_get("owner").map_err(map_error)?,
        agent_id: row.try_get("agent_id").map_err(map_error)?,
        context_id: row.try_get("context_id").map_err(map_error)?,
        status_time: row.try_get("status_time").map_err(map_error)?,
        document: row.try_get("document").map_err(map_error)?,
        expires_at: row.try_get("expires_at").map_err(map_error)?,
    })
}

#[async_trait]
impl TaskRepo for PgTasks {
    async fn put(&self, task: &TaskRow, now: OffsetDateTime) -> Result<bool, StoreError> {
        // The update applies only to the same owner's task, or over an expired one.
        let done = sqlx::query(
            "INSERT INTO a2a_tasks (id, owner, agent_id, context_id, status_time, document, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, agent_id = excluded.agent_id, \
               context_id = excluded.context_id, status_time = excluded.status_time, \
               document = excluded.document, expires_at = excluded.expires_at \
             WHERE a2a_tasks.owner = excluded.owner OR a2a_tasks.expires_at <= $8",
        )
        .bind(task.id)
        .bind(&task.owner)
        .bind(&task.agent_id)
        .bind(&task.context_id)
        .bind(truncate_to_micros(task.status_time))
        .bind(&task.document)
        .bind(truncate_to_micros(task.expires_at))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get(
        &self,
        owner: &str,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<TaskRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM a2a_tasks WHERE id = $1 AND owner = $2 AND expires_at > $3"
        )))
        .bind(id)
        .bind(owner)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_task).transpose()
    }

    async fn list(
        &self,
        owner: &str,
        page: &PageRequest,
        now: OffsetDateTime,
    ) -> Result<Page<TaskRow>, StoreError> {
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM a2a_tasks WHERE owner = $1 AND expires_at > $2 \
             AND ($3::timestamptz IS NULL OR (status_time, id) < ($3, $4::uuid)) \
             ORDER BY status_time DESC, id DESC LIMIT $5"
        )))
        .bind(owner)
        .bind(now)
        .bind(after.map(|c| truncate_to_micros(c.at)))
        .bind(after.map(|c| c.id))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        let items = rows.iter().map(to_task).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |task| Cursor {
            at: task.status_time,
            id: task.id,
        }))
    }

    async fn prune_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM a2a_tasks WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_error)
    }
}
