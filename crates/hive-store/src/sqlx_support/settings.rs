//! Instance settings, on any sqlx dialect: the dialect supplies its SQL. Reads go to the
//! writer: a setting just changed (a security rule) must take effect at once.

use super::dialect::{BindValue, Dialect, Pools};
use super::{commit_audited, get, rows};
use crate::{AuditAppend, PutOutcome, SettingRow, SettingWrite, SettingsRepo, StoreError};
use async_trait::async_trait;

/// The columns of `settings`.
#[macro_export]
macro_rules! setting_columns {
    () => {
        "name, value, version, updated_at, updated_by"
    };
}

/// The statements of [`SqlSettings`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait SettingSql: Dialect {
    /// name.
    const GET: &'static str;
    /// name, value, now, by whom; writes nothing when the name exists, else returns the row.
    const CREATE: &'static str;
    /// name, value, now, by whom, expected version; returns the row when it was written.
    const UPDATE: &'static str;
    /// name; returns `version`.
    const VERSION: &'static str;
    /// Every setting, by name in code point order.
    const LIST: &'static str;
}

pub struct SqlSettings<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: SettingSql> SettingsRepo for SqlSettings<D> {
    async fn get(&self, name: &str) -> Result<Option<SettingRow>, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::GET)
            .bind_value(name)
            .fetch_optional(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::setting::<D>).transpose()
    }

    async fn put(
        &self,
        write: &SettingWrite,
        audit: AuditAppend<'_>,
    ) -> Result<PutOutcome, StoreError> {
        // SQLite: IMMEDIATE, so the version check and the write see one state, writers queue.
        // PostgreSQL: concurrent writers of one name queue on its row (or its key, for a
        // create); each re-checks the version once the one before it committed, so exactly one
        // of several writers of the same version wins.
        let mut tx = D::begin(&self.pools).await?;
        let written = match write.expected_version {
            None => sqlx::query(D::CREATE)
                .bind_value(write.name.as_str())
                .bind_value(write.value.as_str())
                .bind_value(D::time(write.updated_at))
                .bind_value(write.updated_by.as_str()),
            Some(expected) => sqlx::query(D::UPDATE)
                .bind_value(write.name.as_str())
                .bind_value(write.value.as_str())
                .bind_value(D::time(write.updated_at))
                .bind_value(write.updated_by.as_str())
                .bind_value(expected),
        }
        .fetch_optional(D::on(&mut tx))
        .await
        .map_err(D::map_error)?;
        let Some(written) = written else {
            let current = sqlx::query(D::VERSION)
                .bind_value(write.name.as_str())
                .fetch_optional(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            let current_version = match current {
                Some(row) => Some(get::<D, i64>(&row, "version")?),
                None => None,
            };
            // Nothing was written: the transaction rolls back when dropped.
            return Ok(PutOutcome::Stale { current_version });
        };
        let stored = rows::setting::<D>(&written)?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(PutOutcome::Written(stored))
    }

    async fn list(&self) -> Result<Vec<SettingRow>, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::LIST)
            .fetch_all(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::setting::<D>).collect()
    }
}
