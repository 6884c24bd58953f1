use crate::identity::{text, uuid_at};
use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    Cursor, Page, PageRequest, StoreError, UsageRepo, UsageRow, check_usage, tokens_from_stored,
    truncate_to_micros,
};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct SqliteUsage {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

const COLUMNS: &str =
    "id, agent_id, principal, model, prompt_tokens, completion_tokens, created_at";

fn to_usage(row: &SqliteRow) -> Result<UsageRow, StoreError> {
    let count = |column: &str| -> Result<u64, StoreError> {
        tokens_from_stored(row.try_get(column).map_err(map_error)?)
    };
    Ok(UsageRow {
        id: uuid_at(row, "id")?,
        agent_id: uuid_at(row, "agent_id")?,
        principal: row.try_get("principal").map_err(map_error)?,
        model: row.try_get("model").map_err(map_error)?,
        prompt_tokens: count("prompt_tokens")?,
        completion_tokens: count("completion_tokens")?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
    })
}

#[async_trait]
impl UsageRepo for SqliteUsage {
    async fn record(&self, row: &UsageRow) -> Result<(), StoreError> {
        let (prompt, completion) = check_usage(row)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO inference_usage ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        )))
        .bind(text(row.id))
        .bind(text(row.agent_id))
        .bind(&row.principal)
        .bind(&row.model)
        .bind(prompt)
        .bind(completion)
        .bind(to_micros(truncate_to_micros(row.created_at)))
        .execute(&self.writer)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn tokens_since(&self, agent_id: Uuid, since: OffsetDateTime) -> Result<u64, StoreError> {
        // SQLite's SUM fails on overflow rather than wrapping; TOTAL would lose precision.
        let total: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM inference_usage \
             WHERE agent_id = ?1 AND created_at >= ?2",
        )
        .bind(text(agent_id))
        .bind(to_micros(since))
        .fetch_one(&self.reader)
        .await
        .map_err(map_error)?;
        tokens_from_stored(total)
    }

    async fn list(&self, agent_id: Uuid, page: &PageRequest) -> Result<Page<UsageRow>, StoreError> {
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM inference_usage WHERE agent_id = ?1 \
             AND (?2 IS NULL OR (created_at, id) < (?2, ?3)) \
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        )))
        .bind(text(agent_id))
        .bind(after.map(|c| to_micros(c.at)))
        .bind(after.map(|c| text(c.id)))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        let items = rows.iter().map(to_usage).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |u| Cursor {
            at: u.created_at,
            id: u.id,
        }))
    }
}
