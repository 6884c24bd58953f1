use crate::identity::{append_audit, begin};
use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{AuditAppend, PutOutcome, SettingRow, SettingWrite, SettingsRepo, StoreError};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

pub(crate) struct SqliteSettings {
    pub writer: SqlitePool,
}

const COLUMNS: &str = "name, value, version, updated_at, updated_by";

fn to_setting(row: &SqliteRow) -> Result<SettingRow, StoreError> {
    Ok(SettingRow {
        name: row.try_get("name").map_err(map_error)?,
        value: row.try_get("value").map_err(map_error)?,
        version: row.try_get("version").map_err(map_error)?,
        updated_at: from_micros(row.try_get("updated_at").map_err(map_error)?)?,
        updated_by: row.try_get("updated_by").map_err(map_error)?,
    })
}

#[async_trait]
impl SettingsRepo for SqliteSettings {
    async fn get(&self, name: &str) -> Result<Option<SettingRow>, StoreError> {
        // The writer: a setting just changed (a security rule) must take effect at once.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM settings WHERE name = ?"
        )))
        .bind(name)
        .fetch_optional(&self.writer)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_setting).transpose()
    }

    async fn put(
        &self,
        write: &SettingWrite,
        audit: AuditAppend<'_>,
    ) -> Result<PutOutcome, StoreError> {
        // IMMEDIATE: the version check and the write see one state, writers queue.
        let mut tx = begin(&self.writer).await?;
        let written = match write.expected_version {
            None => sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO settings ({COLUMNS}) VALUES (?1, ?2, 1, ?3, ?4) \
                 ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
            )))
            .bind(&write.name)
            .bind(&write.value)
            .bind(to_micros(write.updated_at))
            .bind(&write.updated_by),
            Some(expected) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE settings SET value = ?2, version = version + 1, updated_at = ?3, \
                 updated_by = ?4 WHERE name = ?1 AND version = ?5 RETURNING {COLUMNS}"
            )))
            .bind(&write.name)
            .bind(&write.value)
            .bind(to_micros(write.updated_at))
            .bind(&write.updated_by)
            .bind(expected),
        }
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let Some(written) = written else {
            let current_version: Option<i64> =
                sqlx::query_scalar("SELECT version FROM settings WHERE name = ?")
                    .bind(&write.name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_error)?;
            // Nothing was written: the transaction rolls back when dropped.
            return Ok(PutOutcome::Stale { current_version });
        };
        let stored = to_setting(&written)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(PutOutcome::Written(stored))
    }

    async fn list(&self) -> Result<Vec<SettingRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM settings ORDER BY name"
        )))
        .fetch_all(&self.writer)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_setting).collect()
    }
}
