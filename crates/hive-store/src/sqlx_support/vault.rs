//! The vault's wrapped data keys, on any sqlx dialect: the dialect supplies its SQL and how a
//! key is held still while it is retired. Reads go to the writer: a key another connection
//! just stored must be seen.

use super::dialect::{BindValue, Dialect, DialectConnection, DialectRow, Pools};
use super::{commit_audited, commit_if, get};
use crate::{AuditAppend, StoreError, VaultKeyRepo, VaultKeyRow, count_to_stored};
use async_trait::async_trait;
use std::future::Future;
use time::OffsetDateTime;
use uuid::Uuid;

/// Rows still sealed under a vault key other than `key_id`, after `after` in id order, at most
/// `limit`, read by `sql` (parameters: key id, after id or null, limit) and mapped by `read`:
/// the re-sealing jobs' page of work. Read on the writer: the job must see what writers just
/// stored.
pub async fn rows_not_under_key<D: Dialect, R>(
    pools: &Pools<D::Db>,
    sql: &'static str,
    key_id: u32,
    after: Option<Uuid>,
    limit: u32,
    read: fn(&DialectRow<D>) -> Result<R, StoreError>,
) -> Result<Vec<R>, StoreError> {
    let mut writer = pools.writer.acquire().await.map_err(D::map_error)?;
    let found = sqlx::query(sql)
        .bind_value(i64::from(key_id))
        .bind_value(after.map(D::id))
        .bind_value(i64::from(limit))
        .fetch_all(D::on(&mut writer))
        .await
        .map_err(D::map_error)?;
    found.iter().map(read).collect()
}

/// The statements of [`SqlVaultKeys`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait VaultKeySql: Dialect {
    /// Every key by id: `id, wrapped, created_at, encryptions_reserved, retired_at`.
    const LIST: &'static str;
    /// id, wrapped, created at, encryptions reserved, retired at.
    const INSERT: &'static str;
    /// block, id, limit; only a live key under the limit.
    const RESERVE: &'static str;
    /// now, id; only a key that is not the newest and that nothing is sealed under.
    const RETIRE_IF_UNUSED: &'static str;

    /// Holds writers that would seal a value under key `id` off until the transaction ends;
    /// `false` when there is no such key.
    fn hold_key(
        connection: &mut DialectConnection<Self>,
        id: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

pub struct SqlVaultKeys<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: VaultKeySql> VaultKeyRepo for SqlVaultKeys<D> {
    async fn list(&self) -> Result<Vec<VaultKeyRow>, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::LIST)
            .fetch_all(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        found
            .iter()
            .map(|row| {
                VaultKeyRow::from_stored(
                    get::<D, _>(row, "id")?,
                    get::<D, _>(row, "wrapped")?,
                    D::time_at(row, "created_at")?,
                    get::<D, _>(row, "encryptions_reserved")?,
                    D::optional_time_at(row, "retired_at")?,
                )
            })
            .collect()
    }

    async fn insert(&self, key: &VaultKeyRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::INSERT)
            .bind_value(i64::from(key.id))
            .bind_value(key.wrapped.as_str())
            .bind_value(D::time(key.created_at))
            .bind_value(count_to_stored(key.encryptions_reserved)?)
            .bind_value(key.retired_at.map(D::time))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn reserve_encryptions(
        &self,
        id: u32,
        block: u64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        // One UPDATE: on PostgreSQL the row lock serialises replicas reserving at one moment.
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::RESERVE)
            .bind_value(count_to_stored(block)?)
            .bind_value(i64::from(id))
            .bind_value(count_to_stored(limit)?)
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done) == 1)
            .map_err(D::map_error)
    }

    async fn retire_if_unused(
        &self,
        id: u32,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        if !D::hold_key(&mut tx, id).await? {
            return Ok(false);
        }
        let done = sqlx::query(D::RETIRE_IF_UNUSED)
            .bind_value(D::time(now))
            .bind_value(i64::from(id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let retired = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, retired, audit).await
    }
}
