use crate::identity::{append_audit, begin, commit_if, commit_if_audited, text, uuid_at};
use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_proto::agents::AgentStatus;
use hive_store::{
    AgentRepo, AgentRow, AuditAppend, Cursor, Page, PageRequest, StoreError,
    agent_word_from_stored, check_agent, limits_from_stored, tokens_per_day_to_stored,
};
use sqlx::Row;
use sqlx::Sqlite;
use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteRow};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct SqliteAgents {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

/// The settings [`AgentRepo::update`] changes come first, in the order [`bind_settings`] binds
/// them.
const COLUMNS: &str = "name, description, visibility, runtime, skills, requests_per_minute, \
     tokens_per_day, concurrent_tasks, timeout_seconds, updated_at, \
     id, owner_id, kind, status, status_detail, version, created_at";

type AgentQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// Checks `agent` and binds its settings, the first ten of [`COLUMNS`].
fn bind_settings<'q>(
    query: AgentQuery<'q>,
    agent: &'q AgentRow,
) -> Result<AgentQuery<'q>, StoreError> {
    check_agent(agent)?;
    Ok(query
        .bind(&agent.name)
        .bind(&agent.description)
        .bind(agent.visibility.as_str())
        .bind(&agent.runtime)
        .bind(&agent.skills)
        .bind(i64::from(agent.limits.requests_per_minute))
        .bind(tokens_per_day_to_stored(agent.limits.tokens_per_day)?)
        .bind(i64::from(agent.limits.concurrent_tasks))
        .bind(i64::from(agent.limits.timeout_seconds))
        .bind(to_micros(agent.updated_at)))
}

fn to_agent(row: &SqliteRow) -> Result<AgentRow, StoreError> {
    let word =
        |column: &str| -> Result<String, StoreError> { row.try_get(column).map_err(map_error) };
    let number =
        |column: &str| -> Result<i64, StoreError> { row.try_get(column).map_err(map_error) };
    Ok(AgentRow {
        id: uuid_at(row, "id")?,
        owner_id: uuid_at(row, "owner_id")?,
        name: word("name")?,
        description: word("description")?,
        visibility: agent_word_from_stored(&word("visibility")?)?,
        kind: agent_word_from_stored(&word("kind")?)?,
        runtime: word("runtime")?,
        skills: word("skills")?,
        limits: limits_from_stored(
            number("requests_per_minute")?,
            number("tokens_per_day")?,
            number("concurrent_tasks")?,
            number("timeout_seconds")?,
        )?,
        status: agent_word_from_stored(&word("status")?)?,
        status_detail: word("status_detail")?,
        version: number("version")?,
        created_at: from_micros(number("created_at")?)?,
        updated_at: from_micros(number("updated_at")?)?,
    })
}

#[async_trait]
impl AgentRepo for SqliteAgents {
    async fn create(&self, agent: &AgentRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let insert = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO agents ({COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )));
        let insert = bind_settings(insert, agent)?
            .bind(text(agent.id))
            .bind(text(agent.owner_id))
            .bind(agent.kind.as_str())
            .bind(agent.status.as_str())
            .bind(&agent.status_detail)
            .bind(agent.version)
            .bind(to_micros(agent.created_at));
        let mut tx = begin(&self.writer).await?;
        insert.execute(&mut *tx).await.map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn get(&self, id: Uuid, owner: Option<Uuid>) -> Result<Option<AgentRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents WHERE id = ?1 AND (?2 IS NULL OR owner_id = ?2)"
        )))
        .bind(text(id))
        .bind(owner.map(text))
        .fetch_optional(&self.reader)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_agent).transpose()
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<AgentRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents WHERE name = ?"
        )))
        .bind(name)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_agent).transpose()
    }

    async fn list(
        &self,
        owner: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<AgentRow>, StoreError> {
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents WHERE (?1 IS NULL OR owner_id = ?1) \
             AND (?2 IS NULL OR (created_at, id) < (?2, ?3)) \
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        )))
        .bind(owner.map(text))
        .bind(after.map(|c| to_micros(c.at)))
        .bind(after.map(|c| text(c.id)))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        let items = rows.iter().map(to_agent).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |a| Cursor {
            at: a.created_at,
            id: a.id,
        }))
    }

    async fn update(&self, next: &AgentRow, audit: AuditAppend<'_>) -> Result<bool, StoreError> {
        let update = sqlx::query(
            "UPDATE agents SET name = ?1, description = ?2, visibility = ?3, runtime = ?4, \
             skills = ?5, requests_per_minute = ?6, tokens_per_day = ?7, concurrent_tasks = ?8, \
             timeout_seconds = ?9, updated_at = ?10, version = version + 1 \
             WHERE id = ?11 AND version = ?12",
        );
        let update = bind_settings(update, next)?
            .bind(text(next.id))
            .bind(next.version - 1);
        let mut tx = begin(&self.writer).await?;
        let updated = update
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected()
            == 1;
        commit_if(tx, updated, audit).await
    }

    async fn set_status(
        &self,
        id: Uuid,
        status: AgentStatus,
        detail: &str,
        at: OffsetDateTime,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError> {
        self.write_status(id, None, status, detail, at, audit).await
    }

    async fn set_status_from(
        &self,
        id: Uuid,
        from: AgentStatus,
        status: AgentStatus,
        detail: &str,
        at: OffsetDateTime,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError> {
        self.write_status(id, Some(from), status, detail, at, audit)
            .await
    }

    async fn delete(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let deleted =
            sqlx::query("DELETE FROM agents WHERE id = ?1 AND (?2 IS NULL OR owner_id = ?2)")
                .bind(text(id))
                .bind(owner.map(text))
                .execute(&mut *tx)
                .await
                .map_err(map_error)?
                .rows_affected()
                == 1;
        commit_if(tx, deleted, audit).await
    }
}

impl SqliteAgents {
    /// Sets the status (only while it is `from`, if given), audited in the same transaction.
    async fn write_status(
        &self,
        id: Uuid,
        from: Option<AgentStatus>,
        status: AgentStatus,
        detail: &str,
        at: OffsetDateTime,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let changed = sqlx::query(
            "UPDATE agents SET status = ?1, status_detail = ?2, updated_at = ?3 \
             WHERE id = ?4 AND (?5 IS NULL OR status = ?5)",
        )
        .bind(status.as_str())
        .bind(detail)
        .bind(to_micros(at))
        .bind(text(id))
        .bind(from.map(AgentStatus::as_str))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if_audited(tx, changed, audit).await
    }
}
