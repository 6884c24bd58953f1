use crate::map_error;
use async_trait::async_trait;
use hive_store::{StoreError, VaultKeyRepo, VaultKeyRow, truncate_to_micros};
use sqlx::postgres::PgPool;
use time::OffsetDateTime;

pub(crate) struct PgVaultKeys {
    pub pool: PgPool,
}

#[async_trait]
impl VaultKeyRepo for PgVaultKeys {
    async fn list(&self) -> Result<Vec<VaultKeyRow>, StoreError> {
        let rows: Vec<(i64, String, OffsetDateTime)> =
            sqlx::query_as("SELECT id, wrapped, created_at FROM vault_keys ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(map_error)?;
        rows.into_iter()
            .map(|(id, wrapped, created_at)| VaultKeyRow::from_stored(id, wrapped, created_at))
            .collect()
    }

    async fn insert(&self, key: &VaultKeyRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO vault_keys (id, wrapped, created_at) VALUES ($1, $2, $3)")
            .bind(i64::from(key.id))
            .bind(&key.wrapped)
            .bind(truncate_to_micros(key.created_at))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_error)
    }
}
