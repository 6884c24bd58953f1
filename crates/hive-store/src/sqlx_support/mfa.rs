//! TOTP credentials and recovery codes, on any sqlx dialect: the dialect supplies its SQL.
//! Reads go to the writer: a step just used must be seen as used at once.

use super::dialect::{BindValue, Dialect, Pools};
use super::vault::rows_not_under_key;
use super::{commit_audited, commit_if, get, rows};
use crate::{AuditAppend, MfaRepo, StoreError, TotpRow, step_to_stored};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns of `totp_credentials`.
#[macro_export]
macro_rules! totp_columns {
    () => {
        "user_id, seed, key_id, created_at, enabled_at, last_used_step, failed_step, failures"
    };
}

/// The statements of [`SqlMfa`] in one dialect; the parameters of each are listed in the order
/// they are bound.
pub trait MfaSql: Dialect {
    /// user id.
    const TOTP: &'static str;
    /// user id, seed, key id, created at; replaces a pending credential, keeps an enabled one
    /// (no row back then).
    const START_TOTP: &'static str;
    /// user id, now, step.
    const ENABLE_TOTP: &'static str;
    /// user id, step; only a later step passes.
    const CONSUME_STEP: &'static str;
    /// user id, step; returns `failures`.
    const RECORD_FAILURE: &'static str;
    /// user id.
    const REMOVE_TOTP: &'static str;
    /// user id.
    const DELETE_RECOVERY_CODES: &'static str;
    /// user id, code hash, now.
    const INSERT_RECOVERY_CODE: &'static str;
    /// user id, code hash, now.
    const USE_RECOVERY_CODE: &'static str;
    /// user id; returns `remaining`.
    const RECOVERY_CODES_LEFT: &'static str;
    /// key id, after user id (or null), limit.
    const TOTP_NOT_UNDER_KEY: &'static str;
    /// new key id, new seed, user id, expected key id, expected seed.
    const RESEAL_TOTP: &'static str;
}

pub struct SqlMfa<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: MfaSql> MfaRepo for SqlMfa<D> {
    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpRow>, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::TOTP)
            .bind_value(D::id(user_id))
            .fetch_optional(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::totp::<D>).transpose()
    }

    async fn start_totp(&self, row: &TotpRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        // One statement: a pending credential is replaced, an enabled one is kept (no row back).
        let stored = sqlx::query(D::START_TOTP)
            .bind_value(D::id(row.user_id))
            .bind_value(row.seed.as_str())
            .bind_value(i64::from(row.key_id))
            .bind_value(D::time(row.created_at))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if stored.is_none() {
            return Err(StoreError::Conflict(
                "the user has an enabled TOTP credential".into(),
            ));
        }
        commit_audited::<D>(tx, &audit).await
    }

    async fn enable_totp(
        &self,
        user_id: Uuid,
        step: u64,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let step = step_to_stored(step)?;
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::ENABLE_TOTP)
            .bind_value(D::id(user_id))
            .bind_value(D::time(now))
            .bind_value(step)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, changed, audit).await
    }

    async fn consume_totp_step(&self, user_id: Uuid, step: u64) -> Result<bool, StoreError> {
        let step = step_to_stored(step)?;
        // Check and set in one statement: on SQLite's single writer no two callers both pass;
        // on PostgreSQL concurrent callers queue on the row lock and re-check the step once the
        // one before them committed (READ COMMITTED), so exactly one passes.
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let done = sqlx::query(D::CONSUME_STEP)
            .bind_value(D::id(user_id))
            .bind_value(step)
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(D::rows_affected(&done) == 1)
    }

    async fn record_totp_failure(&self, user_id: Uuid, step: u64) -> Result<u32, StoreError> {
        let step = step_to_stored(step)?;
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::RECORD_FAILURE)
            .bind_value(D::id(user_id))
            .bind_value(step)
            .fetch_optional(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        let failures = D::small_int_at(&row.ok_or(StoreError::NotFound)?, "failures")?;
        Ok(u32::try_from(failures).unwrap_or(u32::MAX))
    }

    async fn remove_totp(&self, user_id: Uuid, audit: AuditAppend<'_>) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::REMOVE_TOTP)
            .bind_value(D::id(user_id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, changed, audit).await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        hashes: &[String],
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::DELETE_RECOVERY_CODES)
            .bind_value(D::id(user_id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        for hash in hashes {
            sqlx::query(D::INSERT_RECOVERY_CODE)
                .bind_value(D::id(user_id))
                .bind_value(hash.as_str())
                .bind_value(D::time(now))
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
        }
        commit_audited::<D>(tx, &audit).await
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        // On PostgreSQL concurrent users of one code queue on its row; the later ones find it
        // used and write no audit record.
        let done = sqlx::query(D::USE_RECOVERY_CODE)
            .bind_value(D::id(user_id))
            .bind_value(code_hash)
            .bind_value(D::time(now))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, changed, audit).await
    }

    async fn recovery_codes_left(&self, user_id: Uuid) -> Result<u32, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::RECOVERY_CODES_LEFT)
            .bind_value(D::id(user_id))
            .fetch_one(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        let left: i64 = get::<D, _>(&row, "remaining")?;
        Ok(u32::try_from(left).unwrap_or(u32::MAX))
    }

    async fn totp_not_under_key(
        &self,
        key_id: u32,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<TotpRow>, StoreError> {
        rows_not_under_key::<D, _>(
            &self.pools,
            D::TOTP_NOT_UNDER_KEY,
            key_id,
            after,
            limit,
            rows::totp::<D>,
        )
        .await
    }

    async fn reseal_totp(
        &self,
        expected: &TotpRow,
        key_id: u32,
        seed: &str,
    ) -> Result<bool, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::RESEAL_TOTP)
            .bind_value(i64::from(key_id))
            .bind_value(seed)
            .bind_value(D::id(expected.user_id))
            .bind_value(i64::from(expected.key_id))
            .bind_value(expected.seed.as_str())
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done) == 1)
            .map_err(D::map_error)
    }
}
