//! Tokens used by `llm` agents, on any sqlx dialect: the dialect supplies its SQL.

use super::dialect::{BindValue, Dialect, Pools, keyset_page};
use super::{get, rows};
use crate::{
    Cursor, Page, PageRequest, StoreError, UsageRepo, UsageRow, check_usage, tokens_from_stored,
};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns of `inference_usage`.
#[macro_export]
macro_rules! usage_columns {
    () => {
        "id, agent_id, principal, model, prompt_tokens, completion_tokens, created_at"
    };
}

/// The statements of [`SqlUsage`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait UsageSql: Dialect {
    /// The columns of [`usage_columns!`].
    const INSERT: &'static str;
    /// agent id, since; returns `total`, failing rather than wrapping past `i64::MAX`.
    const TOKENS_SINCE: &'static str;
    /// agent id, cursor time, cursor id, limit.
    const LIST: &'static str;
}

pub struct SqlUsage<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: UsageSql> UsageRepo for SqlUsage<D> {
    async fn record(&self, row: &UsageRow) -> Result<(), StoreError> {
        let (prompt, completion) = check_usage(row)?;
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::INSERT)
            .bind_value(D::id(row.id))
            .bind_value(D::id(row.agent_id))
            .bind_value(row.principal.as_str())
            .bind_value(row.model.as_str())
            .bind_value(prompt)
            .bind_value(completion)
            .bind_value(D::time(row.created_at))
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(())
    }

    async fn tokens_since(&self, agent_id: Uuid, since: OffsetDateTime) -> Result<u64, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::TOKENS_SINCE)
            .bind_value(D::id(agent_id))
            .bind_value(D::time(since))
            .fetch_one(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        tokens_from_stored(get::<D, _>(&row, "total")?)
    }

    async fn list(&self, agent_id: Uuid, page: &PageRequest) -> Result<Page<UsageRow>, StoreError> {
        let query = sqlx::query(D::LIST).bind_value(D::id(agent_id));
        keyset_page::<D, _>(&self.pools, query, page, rows::usage::<D>, |u| Cursor {
            at: u.created_at,
            id: u.id,
        })
        .await
    }
}
