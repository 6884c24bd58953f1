//! Registered agents, on any sqlx dialect: the dialect supplies its SQL.

use super::dialect::{BindValue, Dialect, DialectQuery, Pools, keyset_page};
use super::{commit_audited, commit_if, commit_if_audited, rows};
use crate::{
    AgentRepo, AgentRow, AuditAppend, Cursor, Page, PageRequest, StoreError, check_agent,
    tokens_per_day_to_stored,
};
use async_trait::async_trait;
use hive_proto::agents::AgentStatus;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns of `agents`. The settings [`AgentRepo::update`] changes come first, in the
/// order [`bind_settings`] binds them.
#[macro_export]
macro_rules! agent_columns {
    () => {
        "name, description, visibility, runtime, skills, requests_per_minute, tokens_per_day, \
         concurrent_tasks, timeout_seconds, updated_at, \
         id, owner_id, kind, status, status_detail, version, created_at"
    };
}

/// The statements of [`SqlAgents`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait AgentSql: Dialect {
    /// Every column of [`agent_columns!`], in its order.
    const INSERT: &'static str;
    /// id, owner (or null for any).
    const GET: &'static str;
    /// name.
    const FIND_BY_NAME: &'static str;
    /// owner (or null for any), cursor time, cursor id, limit.
    const LIST: &'static str;
    /// The ten settings, id, expected version; bumps the version.
    const UPDATE: &'static str;
    /// status, detail, now, id, expected status (or null for any).
    const SET_STATUS: &'static str;
    /// id, owner (or null for any).
    const DELETE: &'static str;
}

pub struct SqlAgents<D: Dialect> {
    pub pools: Pools<D::Db>,
}

/// Checks `agent` and binds its settings, the first ten of [`agent_columns!`].
fn bind_settings<'q, D: Dialect>(
    query: DialectQuery<'q, D::Db>,
    agent: &AgentRow,
) -> Result<DialectQuery<'q, D::Db>, StoreError> {
    check_agent(agent)?;
    Ok(query
        .bind_value(agent.name.as_str())
        .bind_value(agent.description.as_str())
        .bind_value(agent.visibility.as_str())
        .bind_value(agent.runtime.as_str())
        .bind_value(agent.skills.as_str())
        .bind_value(i64::from(agent.limits.requests_per_minute))
        .bind_value(tokens_per_day_to_stored(agent.limits.tokens_per_day)?)
        .bind_value(i64::from(agent.limits.concurrent_tasks))
        .bind_value(i64::from(agent.limits.timeout_seconds))
        .bind_value(D::time(agent.updated_at)))
}

#[async_trait]
impl<D: AgentSql> AgentRepo for SqlAgents<D> {
    async fn create(&self, agent: &AgentRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let insert = bind_settings::<D>(sqlx::query(D::INSERT), agent)?
            .bind_value(D::id(agent.id))
            .bind_value(D::id(agent.owner_id))
            .bind_value(agent.kind.as_str())
            .bind_value(agent.status.as_str())
            .bind_value(agent.status_detail.as_str())
            .bind_value(agent.version)
            .bind_value(D::time(agent.created_at));
        let mut tx = D::begin(&self.pools).await?;
        insert.execute(D::on(&mut tx)).await.map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn get(&self, id: Uuid, owner: Option<Uuid>) -> Result<Option<AgentRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::GET)
            .bind_value(D::id(id))
            .bind_value(owner.map(D::id))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::agent::<D>).transpose()
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<AgentRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::FIND_BY_NAME)
            .bind_value(name)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::agent::<D>).transpose()
    }

    async fn list(
        &self,
        owner: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<AgentRow>, StoreError> {
        let query = sqlx::query(D::LIST).bind_value(owner.map(D::id));
        keyset_page::<D, _>(&self.pools, query, page, rows::agent::<D>, |a| Cursor {
            at: a.created_at,
            id: a.id,
        })
        .await
    }

    async fn update(&self, next: &AgentRow, audit: AuditAppend<'_>) -> Result<bool, StoreError> {
        let update = bind_settings::<D>(sqlx::query(D::UPDATE), next)?
            .bind_value(D::id(next.id))
            .bind_value(next.version - 1);
        let mut tx = D::begin(&self.pools).await?;
        let done = update.execute(D::on(&mut tx)).await.map_err(D::map_error)?;
        let updated = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, updated, audit).await
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
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::DELETE)
            .bind_value(D::id(id))
            .bind_value(owner.map(D::id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let deleted = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, deleted, audit).await
    }
}

impl<D: AgentSql> SqlAgents<D> {
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
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::SET_STATUS)
            .bind_value(status.as_str())
            .bind_value(detail)
            .bind_value(D::time(at))
            .bind_value(D::id(id))
            .bind_value(from.map(AgentStatus::as_str))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        commit_if_audited::<D>(tx, changed, audit).await
    }
}
