use crate::identity::{append_audit, commit_if};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    AuditAppend, MfaRepo, StoreError, TotpRow, step_from_stored, step_to_stored,
    truncate_to_micros as micros,
};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct PgMfa {
    pub pool: PgPool,
}

const TOTP_COLUMNS: &str =
    "user_id, seed, key_id, created_at, enabled_at, last_used_step, failed_step, failures";

fn to_totp(row: &PgRow) -> Result<TotpRow, StoreError> {
    let key_id: i64 = row.try_get("key_id").map_err(map_error)?;
    let failures: i32 = row.try_get("failures").map_err(map_error)?;
    Ok(TotpRow {
        user_id: row.try_get("user_id").map_err(map_error)?,
        seed: row.try_get("seed").map_err(map_error)?,
        key_id: u32::try_from(key_id)
            .map_err(|_| StoreError::Backend("a stored key id is out of range".into()))?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        enabled_at: row.try_get("enabled_at").map_err(map_error)?,
        last_used_step: step_from_stored(row.try_get("last_used_step").map_err(map_error)?)?,
        failed_step: step_from_stored(row.try_get("failed_step").map_err(map_error)?)?,
        failures: u32::try_from(failures).unwrap_or(0),
    })
}

#[async_trait]
impl MfaRepo for PgMfa {
    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOTP_COLUMNS} FROM totp_credentials WHERE user_id = $1"
        )))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_totp).transpose()
    }

    async fn start_totp(&self, row: &TotpRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // One statement: a pending credential is replaced, an enabled one is kept (no row back).
        let stored = sqlx::query(
            "INSERT INTO totp_credentials (user_id, seed, key_id, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET seed = excluded.seed, key_id = excluded.key_id, \
             created_at = excluded.created_at, enabled_at = NULL, last_used_step = NULL, \
             failed_step = NULL, failures = 0 \
             WHERE totp_credentials.enabled_at IS NULL RETURNING user_id",
        )
        .bind(row.user_id)
        .bind(&row.seed)
        .bind(i64::from(row.key_id))
        .bind(micros(row.created_at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        if stored.is_none() {
            return Err(StoreError::Conflict(
                "the user has an enabled TOTP credential".into(),
            ));
        }
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn enable_totp(
        &self,
        user_id: Uuid,
        step: u64,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let step = step_to_stored(step)?;
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let changed = sqlx::query(
            "UPDATE totp_credentials SET enabled_at = $2, last_used_step = $3 \
             WHERE user_id = $1 AND enabled_at IS NULL",
        )
        .bind(user_id)
        .bind(micros(now))
        .bind(step)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if(tx, changed, audit).await
    }

    async fn consume_totp_step(&self, user_id: Uuid, step: u64) -> Result<bool, StoreError> {
        let step = step_to_stored(step)?;
        // One statement: concurrent callers queue on the row lock and re-check the step once the
        // one before them committed (READ COMMITTED), so exactly one passes.
        let changed = sqlx::query(
            "UPDATE totp_credentials SET last_used_step = $2 WHERE user_id = $1 \
             AND enabled_at IS NOT NULL AND (last_used_step IS NULL OR last_used_step < $2)",
        )
        .bind(user_id)
        .bind(step)
        .execute(&self.pool)
        .await
        .map_err(map_error)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn record_totp_failure(&self, user_id: Uuid, step: u64) -> Result<u32, StoreError> {
        let step = step_to_stored(step)?;
        let failures: Option<i32> = sqlx::query_scalar(
            "UPDATE totp_credentials SET \
             failures = CASE WHEN failed_step = $2 THEN failures + 1 ELSE 1 END, \
             failed_step = $2 WHERE user_id = $1 RETURNING failures",
        )
        .bind(user_id)
        .bind(step)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        let failures = failures.ok_or(StoreError::NotFound)?;
        Ok(u32::try_from(failures).unwrap_or(u32::MAX))
    }

    async fn remove_totp(&self, user_id: Uuid, audit: AuditAppend<'_>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let changed = sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected()
            == 1;
        commit_if(tx, changed, audit).await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        hashes: &[String],
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        for hash in hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
            )
            .bind(user_id)
            .bind(hash)
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        }
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // Concurrent users of one code queue on its row; the later ones find it used and write
        // no audit record.
        let changed = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 \
             WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(code_hash)
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if(tx, changed, audit).await
    }

    async fn recovery_codes_left(&self, user_id: Uuid) -> Result<u32, StoreError> {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(u32::try_from(left).unwrap_or(u32::MAX))
    }

    async fn totp_not_under_key(
        &self,
        key_id: u32,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<TotpRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOTP_COLUMNS} FROM totp_credentials \
             WHERE key_id <> $1 AND ($2::uuid IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3"
        )))
        .bind(i64::from(key_id))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_totp).collect()
    }

    async fn reseal_totp(
        &self,
        expected: &TotpRow,
        key_id: u32,
        seed: &str,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "UPDATE totp_credentials SET key_id = $1, seed = $2 \
             WHERE user_id = $3 AND key_id = $4 AND seed = $5",
        )
        .bind(i64::from(key_id))
        .bind(seed)
        .bind(expected.user_id)
        .bind(i64::from(expected.key_id))
        .bind(&expected.seed)
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(map_error)
    }
}
