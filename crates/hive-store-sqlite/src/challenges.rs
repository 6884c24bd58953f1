//! Sign-in flow state on SQLite.

use crate::identity::{text, uuid_at};
use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{ChallengeRepo, ChallengeRow, StoreError, check_challenge};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use time::OffsetDateTime;

pub(crate) struct SqliteChallenges {
    pub writer: SqlitePool,
}

fn to_challenge(row: &SqliteRow) -> Result<ChallengeRow, StoreError> {
    let user_id: Option<String> = row.try_get("user_id").map_err(map_error)?;
    Ok(ChallengeRow {
        key_hash: row.try_get("key_hash").map_err(map_error)?,
        purpose: row.try_get("purpose").map_err(map_error)?,
        user_id: match user_id {
            Some(_) => Some(uuid_at(row, "user_id")?),
            None => None,
        },
        payload: row.try_get("payload").map_err(map_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
        expires_at: from_micros(row.try_get("expires_at").map_err(map_error)?)?,
    })
}

#[async_trait]
impl ChallengeRepo for SqliteChallenges {
    async fn put(&self, challenge: &ChallengeRow) -> Result<(), StoreError> {
        check_challenge(challenge)?;
        sqlx::query(
            "INSERT INTO auth_challenges \
             (key_hash, purpose, user_id, payload, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&challenge.key_hash)
        .bind(&challenge.purpose)
        .bind(challenge.user_id.map(text))
        .bind(&challenge.payload)
        .bind(to_micros(challenge.created_at))
        .bind(to_micros(challenge.expires_at))
        .execute(&self.writer)
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
        // One statement on the single writer: two takers cannot both get the row.
        let row = sqlx::query(
            "DELETE FROM auth_challenges WHERE key_hash = ?1 AND purpose = ?2 \
             RETURNING key_hash, purpose, user_id, payload, created_at, expires_at",
        )
        .bind(key_hash)
        .bind(purpose)
        .fetch_optional(&self.writer)
        .await
        .map_err(map_error)?;
        let challenge = row.as_ref().map(to_challenge).transpose()?;
        Ok(challenge.filter(|c| now < c.expires_at))
    }

    async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM auth_challenges WHERE expires_at <= ?")
            .bind(to_micros(now))
            .execute(&self.writer)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected())
    }
}
