use crate::identity::{append_audit, commit_if};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    AuditAppend, StoreError, VaultKeyRepo, VaultKeyRow, count_to_stored, truncate_to_micros,
};
use sqlx::postgres::PgPool;
use time::OffsetDateTime;

pub(crate) struct PgVaultKeys {
    pub pool: PgPool,
}

#[async_trait]
impl VaultKeyRepo for PgVaultKeys {
    async fn list(&self) -> Result<Vec<VaultKeyRow>, StoreError> {
        let rows: Vec<(i64, String, OffsetDateTime, i64, Option<OffsetDateTime>)> = sqlx::query_as(
            "SELECT id, wrapped, created_at, encryptions_reserved, retired_at \
                 FROM vault_keys ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.into_iter()
            .map(|(id, wrapped, created_at, reserved, retired_at)| {
                VaultKeyRow::from_stored(id, wrapped, created_at, reserved, retired_at)
            })
            .collect()
    }

    async fn insert(&self, key: &VaultKeyRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query(
            "INSERT INTO vault_keys (id, wrapped, created_at, encryptions_reserved, retired_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(i64::from(key.id))
        .bind(&key.wrapped)
        .bind(truncate_to_micros(key.created_at))
        .bind(count_to_stored(key.encryptions_reserved)?)
        .bind(key.retired_at.map(truncate_to_micros))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn reserve_encryptions(
        &self,
        id: u32,
        block: u64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        // One UPDATE: the row lock serialises replicas reserving at the same moment.
        sqlx::query(
            "UPDATE vault_keys SET encryptions_reserved = encryptions_reserved + $1 \
             WHERE id = $2 AND retired_at IS NULL AND encryptions_reserved + $1 <= $3",
        )
        .bind(count_to_stored(block)?)
        .bind(i64::from(id))
        .bind(count_to_stored(limit)?)
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(map_error)
    }

    async fn retire_if_unused(
        &self,
        id: u32,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // FOR UPDATE conflicts with the KEY SHARE lock a secret's foreign-key check takes: it
        // waits for writers still storing a value under this key, and holds new ones off until
        // the check below is done.
        let locked: Option<i64> =
            sqlx::query_scalar("SELECT id FROM vault_keys WHERE id = $1 FOR UPDATE")
                .bind(i64::from(id))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?;
        if locked.is_none() {
            return Ok(false);
        }
        let retired = sqlx::query(
            "UPDATE vault_keys SET retired_at = $1 WHERE id = $2 AND retired_at IS NULL \
             AND id < (SELECT max(id) FROM vault_keys) \
             AND NOT EXISTS (SELECT 1 FROM secrets WHERE key_id = $2) \
             AND NOT EXISTS (SELECT 1 FROM totp_credentials WHERE key_id = $2) \
             AND NOT EXISTS (SELECT 1 FROM a2a_push_configs WHERE key_id = $2)",
        )
        .bind(truncate_to_micros(now))
        .bind(i64::from(id))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if(tx, retired, audit).await
    }
}
