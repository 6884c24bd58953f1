use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{StoreError, VaultKeyRepo, VaultKeyRow};
use sqlx::sqlite::SqlitePool;

pub(crate) struct SqliteVaultKeys {
    pub writer: SqlitePool,
}

#[async_trait]
impl VaultKeyRepo for SqliteVaultKeys {
    async fn list(&self) -> Result<Vec<VaultKeyRow>, StoreError> {
        // The writer: a key another connection just stored must be seen.
        let rows: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT id, wrapped, created_at FROM vault_keys ORDER BY id")
                .fetch_all(&self.writer)
                .await
                .map_err(map_error)?;
        rows.into_iter()
            .map(|(id, wrapped, created_at)| {
                VaultKeyRow::from_stored(id, wrapped, from_micros(created_at)?)
            })
            .collect()
    }

    async fn insert(&self, key: &VaultKeyRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO vault_keys (id, wrapped, created_at) VALUES (?, ?, ?)")
            .bind(i64::from(key.id))
            .bind(&key.wrapped)
            .bind(to_micros(key.created_at))
            .execute(&self.writer)
            .await
            .map(|_| ())
            .map_err(map_error)
    }
}
