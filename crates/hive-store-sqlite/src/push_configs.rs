use crate::identity::{append_audit, begin, commit_if, text, uuid_at};
use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{AuditAppend, PushConfigPut, PushConfigRepo, PushConfigRow, StoreError};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct SqlitePushConfigs {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

const COLUMNS: &str =
    "owner, task_id, id, url, auth_scheme, key_id, secrets, created_at, updated_at";

fn to_row(row: &SqliteRow) -> Result<PushConfigRow, StoreError> {
    let key_id: i64 = row.try_get("key_id").map_err(map_error)?;
    Ok(PushConfigRow {
        owner: row.try_get("owner").map_err(map_error)?,
        task_id: uuid_at(row, "task_id")?,
        id: row.try_get("id").map_err(map_error)?,
        url: row.try_get("url").map_err(map_error)?,
        auth_scheme: row.try_get("auth_scheme").map_err(map_error)?,
        key_id: u32::try_from(key_id)
            .map_err(|_| StoreError::Backend("a stored key id is out of range".into()))?,
        secrets: row.try_get("secrets").map_err(map_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
        updated_at: from_micros(row.try_get("updated_at").map_err(map_error)?)?,
    })
}

#[async_trait]
impl PushConfigRepo for SqlitePushConfigs {
    async fn put(
        &self,
        row: &PushConfigRow,
        max_per_task: u32,
        audit: AuditAppend<'_>,
    ) -> Result<PushConfigPut, StoreError> {
        // IMMEDIATE on the single writer: the count and the write are one step.
        let mut tx = begin(&self.writer).await?;
        let (others, same): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE id != ?3), count(*) FILTER (WHERE id = ?3) \
             FROM a2a_push_configs WHERE owner = ?1 AND task_id = ?2",
        )
        .bind(&row.owner)
        .bind(text(row.task_id))
        .bind(&row.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_error)?;
        if others >= i64::from(max_per_task) {
            return Ok(PushConfigPut::LimitReached);
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO a2a_push_configs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (owner, task_id, id) DO UPDATE SET url = excluded.url, \
               auth_scheme = excluded.auth_scheme, key_id = excluded.key_id, \
               secrets = excluded.secrets, updated_at = excluded.updated_at"
        )))
        .bind(&row.owner)
        .bind(text(row.task_id))
        .bind(&row.id)
        .bind(&row.url)
        .bind(&row.auth_scheme)
        .bind(i64::from(row.key_id))
        .bind(&row.secrets)
        .bind(to_micros(row.created_at))
        .bind(to_micros(row.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(if same > 0 {
            PushConfigPut::Replaced
        } else {
            PushConfigPut::Created
        })
    }

    async fn get(
        &self,
        owner: &str,
        task_id: Uuid,
        id: &str,
    ) -> Result<Option<PushConfigRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM a2a_push_configs WHERE owner = ?1 AND task_id = ?2 AND id = ?3"
        )))
        .bind(owner)
        .bind(text(task_id))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_row).transpose()
    }

    async fn list(
        &self,
        owner: &str,
        task_id: Uuid,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PushConfigRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM a2a_push_configs WHERE owner = ?1 AND task_id = ?2 \
             AND (?3 IS NULL OR id > ?3) ORDER BY id LIMIT ?4"
        )))
        .bind(owner)
        .bind(text(task_id))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_row).collect()
    }

    async fn delete(
        &self,
        owner: &str,
        task_id: Uuid,
        id: &str,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let deleted = sqlx::query(
            "DELETE FROM a2a_push_configs WHERE owner = ?1 AND task_id = ?2 AND id = ?3",
        )
        .bind(owner)
        .bind(text(task_id))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if(tx, deleted, audit).await
    }

    async fn touch(
        &self,
        owner: &str,
        task_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        sqlx::query(
            "UPDATE a2a_push_configs SET updated_at = max(updated_at, ?3) \
             WHERE owner = ?1 AND task_id = ?2",
        )
        .bind(owner)
        .bind(text(task_id))
        .bind(to_micros(at))
        .execute(&self.writer)
        .await
        .map(|done| done.rows_affected())
        .map_err(map_error)
    }

    async fn prune_unused_since(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM a2a_push_configs WHERE updated_at < ?")
            .bind(to_micros(before))
            .execute(&self.writer)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_error)
    }
}
