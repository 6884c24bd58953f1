use crate::identity::{append_audit, begin, commit_if};
use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{AuditAppend, StoreError, VaultKeyRepo, VaultKeyRow, count_to_stored};
use sqlx::sqlite::SqlitePool;
use time::OffsetDateTime;

pub(crate) struct SqliteVaultKeys {
    pub writer: SqlitePool,
}

#[async_trait]
impl VaultKeyRepo for SqliteVaultKeys {
    async fn list(&self) -> Result<Vec<VaultKeyRow>, StoreError> {
        // The writer: a key another connection just stored must be seen.
        let rows: Vec<(i64, String, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, wrapped, created_at, encryptions_reserved, retired_at \
             FROM vault_keys ORDER BY id",
        )
        .fetch_all(&self.writer)
        .await
        .map_err(map_error)?;
        rows.into_iter()
            .map(|(id, wrapped, created_at, reserved, retired_at)| {
                VaultKeyRow::from_stored(
                    id,
                    wrapped,
                    from_micros(created_at)?,
                    reserved,
                    retired_at.map(from_micros).transpose()?,
                )
            })
            .collect()
    }

    async fn insert(&self, key: &VaultKeyRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = begin(&self.writer).await?;
        sqlx::query(
            "INSERT INTO vault_keys (id, wrapped, created_at, encryptions_reserved, retired_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(i64::from(key.id))
        .bind(&key.wrapped)
        .bind(to_micros(key.created_at))
        .bind(count_to_stored(key.encryptions_reserved)?)
        .bind(key.retired_at.map(to_micros))
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
        sqlx::query(
            "UPDATE vault_keys SET encryptions_reserved = encryptions_reserved + ?1 \
             WHERE id = ?2 AND retired_at IS NULL AND encryptions_reserved + ?1 <= ?3",
        )
        .bind(count_to_stored(block)?)
        .bind(i64::from(id))
        .bind(count_to_stored(limit)?)
        .execute(&self.writer)
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
        // One statement in an IMMEDIATE transaction on the single writer: no secret can take
        // the key between the check and the mark.
        let mut tx = begin(&self.writer).await?;
        let retired = sqlx::query(
            "UPDATE vault_keys SET retired_at = ?1 WHERE id = ?2 AND retired_at IS NULL \
             AND id < (SELECT max(id) FROM vault_keys) \
             AND NOT EXISTS (SELECT 1 FROM secrets WHERE key_id = ?2) \
             AND NOT EXISTS (SELECT 1 FROM totp_credentials WHERE key_id = ?2) \
             AND NOT EXISTS (SELECT 1 FROM a2a_push_configs WHERE key_id = ?2)",
        )
        .bind(to_micros(now))
        .bind(i64::from(id))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if(tx, retired, audit).await
    }
}
