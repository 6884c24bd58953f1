//! Tokens used by `llm` agents, on any sqlx dialect: the dialect supplies its SQL.

use super::dialect::{BindValue, Dialect, Pools, keyset_page};
use super::{get, rows};
use crate::{
    Cursor, Page, PageRequest, StoreError, UsageDay, UsageRepo, UsageRow, check_usage,
    tokens_from_stored, usage_days_span,
};
use async_trait::async_trait;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// The columns of `usage_records`.
#[macro_export]
macro_rules! usage_columns {
    () => {
        "id, kind, agent_id, principal, user_id, model, prompt_tokens, completion_tokens, \
         quantity, cost_minor, currency, created_at"
    };
}

/// The statements of [`SqlUsage`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait UsageSql: Dialect {
    /// The columns of [`usage_columns!`]; does nothing when the id exists.
    const INSERT: &'static str;
    /// agent id, since; returns `total`, failing rather than wrapping past `i64::MAX`.
    const TOKENS_SINCE: &'static str;
    /// agent id, cursor time, cursor id, limit.
    const LIST: &'static str;
    /// agent id, since, until; one row a UTC day with calls, oldest first: `day` (whole days
    /// after since's, which is a midnight UTC), `calls`, `prompt`, `completion`.
    const BY_DAY: &'static str;
}

/// Inserts a usage record on `connection` (inside a caller's transaction or alone); `false`
/// when a record with its id exists.
pub async fn insert_usage<D: UsageSql>(
    connection: &mut super::DialectConnection<D>,
    row: &UsageRow,
) -> Result<bool, StoreError> {
    let (prompt, completion) = check_usage(row)?;
    let quantity = i64::try_from(row.quantity)
        .map_err(|_| StoreError::Invalid("a usage row's count is too large".into()))?;
    let done = sqlx::query(D::INSERT)
        .bind_value(D::id(row.id))
        .bind_value(row.kind.as_str())
        .bind_value(D::id(row.agent_id))
        .bind_value(row.principal.as_str())
        .bind_value(row.user_id.map(D::id))
        .bind_value(row.model.as_str())
        .bind_value(prompt)
        .bind_value(completion)
        .bind_value(quantity)
        .bind_value(row.cost.minor)
        .bind_value(row.cost.currency.as_str())
        .bind_value(D::time(row.created_at))
        .execute(D::on(connection))
        .await
        .map_err(D::map_error)?;
    Ok(D::rows_affected(&done) == 1)
}

pub struct SqlUsage<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: UsageSql> UsageRepo for SqlUsage<D> {
    async fn record(&self, row: &UsageRow) -> Result<(), StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        if insert_usage::<D>(&mut writer, row).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(
                "a usage record with this id exists".into(),
            ))
        }
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

    async fn by_day(
        &self,
        agent_id: Uuid,
        first: Date,
        days: u32,
    ) -> Result<Vec<UsageDay>, StoreError> {
        let (since, until) = usage_days_span(first, days)?;
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::BY_DAY)
            .bind_value(D::id(agent_id))
            .bind_value(D::time(since))
            .bind_value(D::time(until))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found
            .iter()
            .map(|row| {
                let offset: i64 = get::<D, _>(row, "day")?;
                let day = first
                    .checked_add(time::Duration::days(offset))
                    .filter(|_| (0..i64::from(days)).contains(&offset))
                    .ok_or_else(|| StoreError::Backend("a usage day is out of its span".into()))?;
                let calls: i64 = get::<D, _>(row, "calls")?;
                Ok(UsageDay {
                    day,
                    calls: tokens_from_stored(calls)?,
                    prompt_tokens: tokens_from_stored(get::<D, _>(row, "prompt")?)?,
                    completion_tokens: tokens_from_stored(get::<D, _>(row, "completion")?)?,
                })
            })
            .collect()
    }
}
