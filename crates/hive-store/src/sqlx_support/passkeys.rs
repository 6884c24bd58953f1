//! Passkeys (WebAuthn credentials), on any sqlx dialect: the dialect supplies its SQL and how
//! it serialises concurrent adds.

use super::dialect::{BindValue, Dialect, DialectConnection, Pools};
use super::identity::{SessionSql, delete_sessions};
use super::{commit_audited, commit_if, rows};
use crate::{AuditAppend, PasskeyAdded, PasskeyRepo, PasskeyRow, PasskeyUse, StoreError};
use async_trait::async_trait;
use std::future::Future;
use uuid::Uuid;

/// The columns of `passkeys`.
#[macro_export]
macro_rules! passkey_columns {
    () => {
        "id, user_id, credential_id, passkey, sign_count, backup_eligible, backup_state, name, \
         created_at, last_used_at"
    };
}

/// The statements of [`SqlPasskeys`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait PasskeySql: SessionSql {
    /// user id.
    const LIST_FOR_USER: &'static str;
    /// credential id.
    const FIND_BY_CREDENTIAL_ID: &'static str;
    /// The columns of [`passkey_columns!`] but the last use (null).
    const INSERT: &'static str;
    /// now, the session kept (or null), user id.
    const MARK_KEPT_SESSION: &'static str;
    /// id, passkey, sign count, backup eligible, backup state, now; only a counter that moved
    /// (or stays 0) passes.
    const RECORD_USE: &'static str;
    /// id, user id, name.
    const RENAME: &'static str;
    /// id, user id.
    const REMOVE: &'static str;
    /// user id.
    const REMOVE_ALL: &'static str;

    /// The user's passkeys, counted inside `connection`'s transaction so that a concurrent add
    /// cannot slip past the limit; `None` when the user does not exist.
    fn count_for_add(
        connection: &mut DialectConnection<Self>,
        user_id: Uuid,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
}

pub struct SqlPasskeys<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: PasskeySql> PasskeyRepo for SqlPasskeys<D> {
    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<PasskeyRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::LIST_FOR_USER)
            .bind_value(D::id(user_id))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::passkey::<D>).collect()
    }

    async fn find_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        // The writer: a counter just moved must be seen at once by the next assertion.
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::FIND_BY_CREDENTIAL_ID)
            .bind_value(credential_id)
            .fetch_optional(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::passkey::<D>).transpose()
    }

    async fn add(
        &self,
        row: &PasskeyRow,
        max_per_user: u32,
        keep_session: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<PasskeyAdded, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let count = D::count_for_add(&mut tx, row.user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if count >= i64::from(max_per_user) {
            return Ok(PasskeyAdded::LimitReached);
        }
        sqlx::query(D::INSERT)
            .bind_value(D::id(row.id))
            .bind_value(D::id(row.user_id))
            .bind_value(row.credential_id.as_str())
            .bind_value(row.passkey.as_str())
            .bind_value(i64::from(row.sign_count))
            .bind_value(row.backup_eligible)
            .bind_value(row.backup_state)
            .bind_value(row.name.as_str())
            .bind_value(D::time(row.created_at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let sessions_ended = delete_sessions::<D>(&mut tx, row.user_id, keep_session).await?;
        sqlx::query(D::MARK_KEPT_SESSION)
            .bind_value(D::time(row.created_at))
            .bind_value(keep_session.map(D::id))
            .bind_value(D::id(row.user_id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(PasskeyAdded::Added { sessions_ended })
    }

    async fn record_use(&self, used: &PasskeyUse<'_>) -> Result<bool, StoreError> {
        // Check and set in one statement: on SQLite's single writer no two uses of one counter
        // pass; on PostgreSQL concurrent uses queue on the row lock and re-check the counter
        // once the one before them committed (READ COMMITTED), so of one counter value one
        // passes.
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let done = sqlx::query(D::RECORD_USE)
            .bind_value(D::id(used.id))
            .bind_value(used.passkey)
            .bind_value(i64::from(used.sign_count))
            .bind_value(used.backup_eligible)
            .bind_value(used.backup_state)
            .bind_value(D::time(used.at))
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(D::rows_affected(&done) == 1)
    }

    async fn rename(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: &str,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::RENAME)
            .bind_value(D::id(id))
            .bind_value(D::id(user_id))
            .bind_value(name)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, changed, audit).await
    }

    async fn remove(
        &self,
        user_id: Uuid,
        id: Uuid,
        keep_session: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::REMOVE)
            .bind_value(D::id(id))
            .bind_value(D::id(user_id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        if changed {
            delete_sessions::<D>(&mut tx, user_id, keep_session).await?;
        }
        commit_if::<D>(tx, changed, audit).await
    }

    async fn remove_all(&self, user_id: Uuid, audit: AuditAppend<'_>) -> Result<u64, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::REMOVE_ALL)
            .bind_value(D::id(user_id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let removed = D::rows_affected(&done);
        commit_if::<D>(tx, removed > 0, audit).await?;
        Ok(removed)
    }
}
