use crate::identity::append_audit;
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    AuditAppend, PutOutcome, SettingRow, SettingWrite, SettingsRepo, StoreError,
    truncate_to_micros as micros,
};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

pub(crate) struct PgSettings {
    pub pool: PgPool,
}

const COLUMNS: &str = "name, value, version, updated_at, updated_by";

fn to_setting(row: &PgRow) -> Result<SettingRow, StoreError> {
    Ok(SettingRow {
        name: row.try_get("name").map_err(map_error)?,
        value: row.try_get("value").map_err(map_error)?,
        version: row.try_get("version").map_err(map_error)?,
        updated_at: row.try_get("updated_at").map_err(map_error)?,
        updated_by: row.try_get("updated_by").map_err(map_error)?,
    })
}

#[async_trait]
impl SettingsRepo for PgSettings {
    async fn get(&self, name: &str) -> Result<Option<SettingRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM settings WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_setting).transpose()
    }

    async fn put(
        &self,
        write: &SettingWrite,
        audit: AuditAppend<'_>,
    ) -> Result<PutOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // Concurrent writers of one name queue on its row (or its key, for a create); each
        // re-checks the version once the one before it committed, so exactly one of several
        // writers of the same version wins.
        let written = match write.expected_version {
            None => sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO settings ({COLUMNS}) VALUES ($1, $2, 1, $3, $4) \
                 ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
            )))
            .bind(&write.name)
            .bind(&write.value)
            .bind(micros(write.updated_at))
            .bind(&write.updated_by),
            Some(expected) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE settings SET value = $2, version = version + 1, updated_at = $3, \
                 updated_by = $4 WHERE name = $1 AND version = $5 RETURNING {COLUMNS}"
            )))
            .bind(&write.name)
            .bind(&write.value)
            .bind(micros(write.updated_at))
            .bind(&write.updated_by)
            .bind(expected),
        }
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let Some(written) = written else {
            let current_version: Option<i64> =
                sqlx::query_scalar("SELECT version FROM settings WHERE name = $1")
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
        // COLLATE "C": by code point, the same order as SQLite's.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM settings ORDER BY name COLLATE \"C\""
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_setting).collect()
    }
}
