//! Server-side state of sign-in flows, on any sqlx dialect: the dialect supplies its SQL. A
//! challenge is taken by one statement, so of concurrent takers exactly one gets it.

use super::dialect::{BindValue, Dialect, Pools};
use super::rows;
use crate::{ChallengeRepo, ChallengeRow, StoreError, check_challenge};
use async_trait::async_trait;
use time::OffsetDateTime;

/// The statements of [`SqlChallenges`] in one dialect; the parameters of each are listed in
/// the order they are bound.
pub trait ChallengeSql: Dialect {
    /// key hash, purpose, user id, payload, created at, expires at.
    const INSERT: &'static str;
    /// key hash, purpose; deletes the row and returns it.
    const TAKE: &'static str;
    /// now; deletes what expired.
    const PRUNE: &'static str;
}

pub struct SqlChallenges<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: ChallengeSql> ChallengeRepo for SqlChallenges<D> {
    async fn put(&self, challenge: &ChallengeRow) -> Result<(), StoreError> {
        check_challenge(challenge)?;
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::INSERT)
            .bind_value(challenge.key_hash.as_str())
            .bind_value(challenge.purpose.as_str())
            .bind_value(challenge.user_id.map(D::id))
            .bind_value(challenge.payload.as_str())
            .bind_value(D::time(challenge.created_at))
            .bind_value(D::time(challenge.expires_at))
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(())
    }

    async fn take(
        &self,
        purpose: &str,
        key_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ChallengeRow>, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::TAKE)
            .bind_value(key_hash)
            .bind_value(purpose)
            .fetch_optional(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        let challenge = row.as_ref().map(rows::challenge::<D>).transpose()?;
        Ok(challenge.filter(|c| now < c.expires_at))
    }

    async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let done = sqlx::query(D::PRUNE)
            .bind_value(D::instant(now))
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(D::rows_affected(&done))
    }
}
