//! A2A push-notification configs, on any sqlx dialect: the dialect supplies its SQL and how it
//! serialises writers of one task's configs.

use super::dialect::{BindValue, Dialect, DialectConnection, Pools};
use super::{commit_audited, commit_if, get, rows};
use crate::{AuditAppend, PushConfigPut, PushConfigRepo, PushConfigRow, StoreError};
use async_trait::async_trait;
use std::future::Future;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns of `a2a_push_configs`.
#[macro_export]
macro_rules! push_config_columns {
    () => {
        "owner, task_id, id, url, auth_scheme, key_id, secrets, created_at, updated_at"
    };
}

/// The statements of [`SqlPushConfigs`] in one dialect; the parameters of each are listed in
/// the order they are bound.
pub trait PushConfigSql: Dialect {
    /// owner, task id, config id; returns `others` (configs of the task but this one) and
    /// `same` (this one).
    const COUNT_FOR_PUT: &'static str;
    /// The columns of [`push_config_columns!`]; an existing config is replaced.
    const UPSERT: &'static str;
    /// owner, task id, config id.
    const GET: &'static str;
    /// owner, task id, after config id (or null), limit; ids in byte order.
    const LIST: &'static str;
    /// owner, task id, config id.
    const DELETE: &'static str;
    /// owner, task id, now; never moves a time back.
    const TOUCH: &'static str;
    /// updated before.
    const PRUNE: &'static str;

    /// Makes concurrent writers of one task's configs take turns until the transaction ends,
    /// so that the count before a write sees what the writer before committed.
    fn hold_task_configs(
        connection: &mut DialectConnection<Self>,
        owner: &str,
        task_id: Uuid,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub struct SqlPushConfigs<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: PushConfigSql> PushConfigRepo for SqlPushConfigs<D> {
    async fn put(
        &self,
        row: &PushConfigRow,
        max_per_task: u32,
        audit: AuditAppend<'_>,
    ) -> Result<PushConfigPut, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        D::hold_task_configs(&mut tx, &row.owner, row.task_id).await?;
        let counts = sqlx::query(D::COUNT_FOR_PUT)
            .bind_value(row.owner.as_str())
            .bind_value(D::id(row.task_id))
            .bind_value(row.id.as_str())
            .fetch_one(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let others: i64 = get::<D, _>(&counts, "others")?;
        let same: i64 = get::<D, _>(&counts, "same")?;
        if others >= i64::from(max_per_task) {
            return Ok(PushConfigPut::LimitReached);
        }
        sqlx::query(D::UPSERT)
            .bind_value(row.owner.as_str())
            .bind_value(D::id(row.task_id))
            .bind_value(row.id.as_str())
            .bind_value(row.url.as_str())
            .bind_value(row.auth_scheme.as_str())
            .bind_value(i64::from(row.key_id))
            .bind_value(row.secrets.as_str())
            .bind_value(D::time(row.created_at))
            .bind_value(D::time(row.updated_at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await?;
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
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::GET)
            .bind_value(owner)
            .bind_value(D::id(task_id))
            .bind_value(id)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::push_config::<D>).transpose()
    }

    async fn list(
        &self,
        owner: &str,
        task_id: Uuid,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PushConfigRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::LIST)
            .bind_value(owner)
            .bind_value(D::id(task_id))
            .bind_value(after.map(str::to_owned))
            .bind_value(i64::from(limit))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::push_config::<D>).collect()
    }

    async fn delete(
        &self,
        owner: &str,
        task_id: Uuid,
        id: &str,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::DELETE)
            .bind_value(owner)
            .bind_value(D::id(task_id))
            .bind_value(id)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let deleted = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, deleted, audit).await
    }

    async fn touch(
        &self,
        owner: &str,
        task_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::TOUCH)
            .bind_value(owner)
            .bind_value(D::id(task_id))
            .bind_value(D::time(at))
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done))
            .map_err(D::map_error)
    }

    async fn prune_unused_since(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::PRUNE)
            .bind_value(D::time(before))
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done))
            .map_err(D::map_error)
    }
}
