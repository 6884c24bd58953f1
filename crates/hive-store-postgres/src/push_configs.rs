use crate::identity::{append_audit, commit_if};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    AuditAppend, PushConfigPut, PushConfigRepo, PushConfigRow, StoreError,
    truncate_to_micros as micros,
};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct PgPushConfigs {
    pub pool: PgPool,
}

const COLUMNS: &str =
    "owner, task_id, id, url, auth_scheme, key_id, secrets, created_at, updated_at";

/// The class of the two-key advisory locks that serialise writes to one task's configs (the
/// two-key form never meets the one-key locks of leadership and the audit chain).
const PUSH_CONFIG_LOCK_CLASS: i32 = 0x5055_5348; // "PUSH"

fn to_row(row: &PgRow) -> Result<PushConfigRow, StoreError> {
    let key_id: i64 = row.try_get("key_id").map_err(map_error)?;
    Ok(PushConfigRow {
        owner: row.try_get("owner").map_err(map_error)?,
        task_id: row.try_get("task_id").map_err(map_error)?,
        id: row.try_get("id").map_err(map_error)?,
        url: row.try_get("url").map_err(map_error)?,
        auth_scheme: row.try_get("auth_scheme").map_err(map_error)?,
        key_id: u32::try_from(key_id)
            .map_err(|_| StoreError::Backend("a stored key id is out of range".into()))?,
        secrets: row.try_get("secrets").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        updated_at: row.try_get("updated_at").map_err(map_error)?,
    })
}

#[async_trait]
impl PushConfigRepo for PgPushConfigs {
    async fn put(
        &self,
        row: &PushConfigRow,
        max_per_task: u32,
        audit: AuditAppend<'_>,
    ) -> Result<PushConfigPut, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // Concurrent writers of one task's configs take turns, so the count below sees what
        // the writer before committed (READ COMMITTED, one statement each).
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3::text))")
            .bind(PUSH_CONFIG_LOCK_CLASS)
            .bind(&row.owner)
            .bind(row.task_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        let (others, same): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE id != $3), count(*) FILTER (WHERE id = $3) \
             FROM a2a_push_configs WHERE owner = $1 AND task_id = $2",
        )
        .bind(&row.owner)
        .bind(row.task_id)
        .bind(&row.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_error)?;
        if others >= i64::from(max_per_task) {
            return Ok(PushConfigPut::LimitReached);
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO a2a_push_configs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (owner, task_id, id) DO UPDATE SET url = excluded.url, \
               auth_scheme = excluded.auth_scheme, key_id = excluded.key_id, \
               secrets = excluded.secrets, updated_at = excluded.updated_at"
        )))
        .bind(&row.owner)
        .bind(row.task_id)
        .bind(&row.id)
        .bind(&row.url)
        .bind(&row.auth_scheme)
        .bind(i64::from(row.key_id))
        .bind(&row.secrets)
        .bind(micros(row.created_at))
        .bind(micros(row.updated_at))
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
            "SELECT {COLUMNS} FROM a2a_push_configs WHERE owner = $1 AND task_id = $2 AND id = $3"
        )))
        .bind(owner)
        .bind(task_id)
        .bind(id)
        .fetch_optional(&self.pool)
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
        // Ids compare bytewise on both backends (SQLite's BINARY collation).
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM a2a_push_configs WHERE owner = $1 AND task_id = $2 \
             AND ($3::text IS NULL OR id COLLATE \"C\" > $3) ORDER BY id COLLATE \"C\" LIMIT $4"
        )))
        .bind(owner)
        .bind(task_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let deleted = sqlx::query(
            "DELETE FROM a2a_push_configs WHERE owner = $1 AND task_id = $2 AND id = $3",
        )
        .bind(owner)
        .bind(task_id)
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
            "UPDATE a2a_push_configs SET updated_at = greatest(updated_at, $3) \
             WHERE owner = $1 AND task_id = $2",
        )
        .bind(owner)
        .bind(task_id)
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected())
        .map_err(map_error)
    }

    async fn prune_unused_since(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM a2a_push_configs WHERE updated_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_error)
    }
}
