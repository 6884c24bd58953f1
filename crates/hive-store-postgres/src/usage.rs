use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    Cursor, Page, PageRequest, StoreError, UsageRepo, UsageRow, check_usage, tokens_from_stored,
    truncate_to_micros as micros,
};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct PgUsage {
    pub pool: PgPool,
}

const COLUMNS: &str =
    "id, agent_id, principal, model, prompt_tokens, completion_tokens, created_at";

fn to_usage(row: &PgRow) -> Result<UsageRow, StoreError> {
    let count = |column: &str| -> Result<u64, StoreError> {
        tokens_from_stored(row.try_get(column).map_err(map_error)?)
    };
    Ok(UsageRow {
        id: row.try_get("id").map_err(map_error)?,
        agent_id: row.try_get("agent_id").map_err(map_error)?,
        principal: row.try_get("principal").map_err(map_error)?,
        model: row.try_get("model").map_err(map_error)?,
        prompt_tokens: count("prompt_tokens")?,
        completion_tokens: count("completion_tokens")?,
        created_at: row.try_get("created_at").map_err(map_error)?,
    })
}

#[async_trait]
impl UsageRepo for PgUsage {
    async fn record(&self, row: &UsageRow) -> Result<(), StoreError> {
        let (prompt, completion) = check_usage(row)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO inference_usage ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )))
        .bind(row.id)
        .bind(row.agent_id)
        .bind(&row.principal)
        .bind(&row.model)
        .bind(prompt)
        .bind(completion)
        .bind(micros(row.created_at))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn tokens_since(&self, agent_id: Uuid, since: OffsetDateTime) -> Result<u64, StoreError> {
        // SUM of bigint is numeric; the cast back fails loudly past i64::MAX.
        let total: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0)::bigint \
             FROM inference_usage WHERE agent_id = $1 AND created_at >= $2",
        )
        .bind(agent_id)
        .bind(micros(since))
        .fetch_one(&self.pool)
        .await
        .map_err(map_error)?;
        tokens_from_stored(total)
    }

    async fn list(&self, agent_id: Uuid, page: &PageRequest) -> Result<Page<UsageRow>, StoreError> {
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM inference_usage WHERE agent_id = $1 \
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        )))
        .bind(agent_id)
        .bind(after.map(|c| micros(c.at)))
        .bind(after.map(|c| c.id))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        let items = rows.iter().map(to_usage).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |u| Cursor {
            at: u.created_at,
            id: u.id,
        }))
    }
}
