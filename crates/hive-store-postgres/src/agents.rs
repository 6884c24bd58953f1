use crate::identity::{append_audit, commit_if, commit_if_audited};
use crate::map_error;
use async_trait::async_trait;
use hive_proto::agents::AgentStatus;
use hive_store::{
    AgentRepo, AgentRow, AuditAppend, Cursor, Page, PageRequest, StoreError,
    agent_word_from_stored, check_agent, limits_from_stored, tokens_per_day_to_stored,
    truncate_to_micros as micros,
};
use sqlx::Postgres;
use sqlx::Row;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct PgAgents {
    pub pool: PgPool,
}

/// The settings [`AgentRepo::update`] changes come first, in the order [`bind_settings`] binds
/// them.
const COLUMNS: &str = "name, description, visibility, runtime, skills, requests_per_minute, \
     tokens_per_day, concurrent_tasks, timeout_seconds, updated_at, \
     id, owner_id, kind, status, status_detail, version, created_at";

type AgentQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

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
        .bind(micros(agent.updated_at)))
}

fn to_agent(row: &PgRow) -> Result<AgentRow, StoreError> {
    let word =
        |column: &str| -> Result<String, StoreError> { row.try_get(column).map_err(map_error) };
    let number =
        |column: &str| -> Result<i64, StoreError> { row.try_get(column).map_err(map_error) };
    Ok(AgentRow {
        id: row.try_get("id").map_err(map_error)?,
        owner_id: row.try_get("owner_id").map_err(map_error)?,
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
        created_at: row.try_get("created_at").map_err(map_error)?,
        updated_at: row.try_get("updated_at").map_err(map_error)?,
    })
}

#[async_trait]
impl AgentRepo for PgAgents {
    async fn create(&self, agent: &AgentRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let insert = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO agents ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        )));
        let insert = bind_settings(insert, agent)?
            .bind(agent.id)
            .bind(agent.owner_id)
            .bind(agent.kind.as_str())
            .bind(agent.status.as_str())
            .bind(&agent.status_detail)
            .bind(agent.version)
            .bind(micros(agent.created_at));
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        insert.execute(&mut *tx).await.map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn get(&self, id: Uuid, owner: Option<Uuid>) -> Result<Option<AgentRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)"
        )))
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_agent).transpose()
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<AgentRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
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
            "SELECT {COLUMNS} FROM agents WHERE ($1::uuid IS NULL OR owner_id = $1) \
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        )))
        .bind(owner)
        .bind(after.map(|c| micros(c.at)))
        .bind(after.map(|c| c.id))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.pool)
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
            "UPDATE agents SET name = $1, description = $2, visibility = $3, runtime = $4, \
             skills = $5, requests_per_minute = $6, tokens_per_day = $7, concurrent_tasks = $8, \
             timeout_seconds = $9, updated_at = $10, version = version + 1 \
             WHERE id = $11 AND version = $12",
        );
        let update = bind_settings(update, next)?
            .bind(next.id)
            .bind(next.version - 1);
        let mut tx = self.pool.begin().await.map_err(map_error)?;
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
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let deleted =
            sqlx::query("DELETE FROM agents WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)")
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?
                .rows_affected()
                == 1;
        commit_if(tx, deleted, audit).await
    }
}

impl PgAgents {
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
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let changed = sqlx::query(
            "UPDATE agents SET status = $1, status_detail = $2, updated_at = $3 \
             WHERE id = $4 AND ($5::text IS NULL OR status = $5)",
        )
        .bind(status.as_str())
        .bind(detail)
        .bind(micros(at))
        .bind(id)
        .bind(from.map(AgentStatus::as_str))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if_audited(tx, changed, audit).await
    }
}
