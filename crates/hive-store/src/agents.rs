//! Agents as stored: identity, visibility, runtime settings (secret ids, never secret values),
//! skills, limits and lifecycle status.

use crate::{AuditAppend, Page, PageRequest, StoreError};
use async_trait::async_trait;
use hive_proto::agents::{AgentKind, AgentStatus, AgentVisibility};
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

/// Longest JSON of an agent's runtime settings or skills.
pub const MAX_AGENT_JSON: usize = 64 * 1024;

/// An agent's limits; 0 means "no limit of Hive's" only where the field says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentLimits {
    pub requests_per_minute: u32,
    /// 0: no daily token budget.
    pub tokens_per_day: u64,
    pub concurrent_tasks: u32,
    pub timeout_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    /// Unique in the instance: `[a-z0-9-]`, 1 to 64 characters (it names the agent's skills
    /// in the instance's agent card).
    pub name: String,
    pub description: String,
    pub visibility: AgentVisibility,
    pub kind: AgentKind,
    /// The kind's settings as JSON text; credentials only as secret ids.
    pub runtime: String,
    /// The A2A skills as a JSON array text.
    pub skills: String,
    pub limits: AgentLimits,
    pub status: AgentStatus,
    /// Why the status is what it is (an error's summary), never a secret.
    pub status_detail: String,
    /// 1 on creation, +1 on every change of settings (not of status).
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[async_trait]
pub trait AgentRepo: Send + Sync {
    /// [`StoreError::Conflict`] when the name is taken; [`StoreError::Invalid`] for JSON over
    /// [`MAX_AGENT_JSON`].
    async fn create(&self, agent: &AgentRow, audit: AuditAppend<'_>) -> Result<(), StoreError>;

    /// The agent; with `owner`, only if it is theirs.
    async fn get(&self, id: Uuid, owner: Option<Uuid>) -> Result<Option<AgentRow>, StoreError>;

    async fn find_by_name(&self, name: &str) -> Result<Option<AgentRow>, StoreError>;

    /// Agents newest first; with `owner`, only theirs.
    async fn list(
        &self,
        owner: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<AgentRow>, StoreError>;

    /// Stores `next`'s settings (name, description, visibility, runtime, skills, limits,
    /// `updated_at`) as version `next.version`, only if the stored version is still
    /// `next.version - 1`: `Ok(false)` when someone else changed it first or it is gone.
    /// Owner, kind, status and creation time are kept as stored. A taken name is
    /// [`StoreError::Conflict`].
    async fn update(&self, next: &AgentRow, audit: AuditAppend<'_>) -> Result<bool, StoreError>;

    /// Sets the lifecycle status and its detail, `at` becoming `updated_at` (the version stays);
    /// `audit` is `None` for the health watchdog's own observations (which record their changes
    /// of state themselves). `Ok(false)` when the agent is gone.
    async fn set_status(
        &self,
        id: Uuid,
        status: AgentStatus,
        detail: &str,
        at: OffsetDateTime,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError>;

    /// [`Self::set_status`], only while the status is still `from` (a watchdog's observation
    /// must not undo a start or stop that came meanwhile): `Ok(false)`, with nothing written,
    /// when it is not, or the agent is gone.
    async fn set_status_from(
        &self,
        id: Uuid,
        from: AgentStatus,
        status: AgentStatus,
        detail: &str,
        at: OffsetDateTime,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError>;

    /// Deletes; with `owner`, only theirs.
    async fn delete(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;
}

/// Refuses a row the databases would refuse less clearly.
pub fn check_agent(agent: &AgentRow) -> Result<(), StoreError> {
    if agent.runtime.len() > MAX_AGENT_JSON || agent.skills.len() > MAX_AGENT_JSON {
        return Err(StoreError::Invalid(format!(
            "an agent's runtime settings and skills are limited to {MAX_AGENT_JSON} bytes each"
        )));
    }
    Ok(())
}

/// A stored visibility, kind or status back; an unknown word is a corrupt row.
pub fn agent_word_from_stored<W: FromStr>(text: &str) -> Result<W, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Backend("a stored agent word is unknown".into()))
}

/// The daily token budget as the databases store it (a signed 64-bit integer).
pub fn tokens_per_day_to_stored(tokens: u64) -> Result<i64, StoreError> {
    i64::try_from(tokens)
        .map_err(|_| StoreError::Invalid("an agent's daily token budget is too large".into()))
}

/// Limits read back from the stored integers; one out of range is a corrupt row.
pub fn limits_from_stored(
    requests_per_minute: i64,
    tokens_per_day: i64,
    concurrent_tasks: i64,
    timeout_seconds: i64,
) -> Result<AgentLimits, StoreError> {
    let corrupt = |_| StoreError::Backend("a stored agent limit is out of range".into());
    Ok(AgentLimits {
        requests_per_minute: u32::try_from(requests_per_minute).map_err(corrupt)?,
        tokens_per_day: u64::try_from(tokens_per_day).map_err(corrupt)?,
        concurrent_tasks: u32::try_from(concurrent_tasks).map_err(corrupt)?,
        timeout_seconds: u32::try_from(timeout_seconds).map_err(corrupt)?,
    })
}
