//! Sign-in flow state on PostgreSQL.

use crate::map_error;
use async_trait::async_trait;
use hive_store::{ChallengeRepo, ChallengeRow, StoreError, check_challenge, truncate_to_micros};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use time::OffsetDateTime;

pub(crate) struct PgChallenges {
    pub pool: PgPool,
}

fn to_challenge(row: &PgRow) -> Result<ChallengeRow, StoreError> {
    Ok(ChallengeRow {
        key_hash: row.try_get("key_hash").map_err(map_error)?,
        purpose: row.try_get("purpose").map_err(map_error)?,
        user_id: row.try_get("user_id").map_err(map_error)?,
        payload: row.try_get("payload").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        expires_at: row.try_get("expires_at").map_err(map_error)?,
    })
}

#[async_trait]
impl ChallengeRepo for PgChallenges {
    async fn put(&self, challenge: &ChallengeRow) -> Result<(), StoreError> {
        check_challenge(challenge)?;
        sqlx::query(
            "INSERT INTO auth_challenges \
             (key_hash, purpose, user_id, payload, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&challenge.key_hash)
        .bind(&challenge.purpose)
        .bind(challenge.user_id)
        .bind(&challenge.payload)
        .bind(truncate_to_micros(challenge.created_at))
        .bind(truncate_to_micros(challenge.expires_at))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn take(
        &self,
        purpose: &str,
        key_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ChallengeRow>, StoreError> {
        // DELETE … RETURNING locks the row: of concurrent takers exactly one gets it.
        let row = sqlx::query(
            "DELETE FROM auth_challenges WHERE key_hash = $1 AND purpose = $2 \
             RETURNING key_hash, purpose, user_id, payload, created_at, expires_at",
        )
        .bind(key_hash)
        .bind(purpose)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        let challenge = row.as_ref().map(to_challenge).transpose()?;
        Ok(challenge.filter(|c| now < c.expires_at))
    }

    async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM auth_challenges WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected())
    }
}
