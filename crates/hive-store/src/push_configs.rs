//! A2A push-notification configs as stored: where to send a task's updates, with the
//! receiver's token and credentials sealed by the vault.

use crate::{AuditAppend, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// Longest config id (`[A-Za-z0-9._-]`, checked by the service and the schema).
pub const PUSH_CONFIG_ID_MAX_CHARS: usize = 64;
/// Longest webhook URL.
pub const PUSH_CONFIG_URL_MAX_CHARS: usize = 2048;

/// One push config of one owner's task.
#[derive(Clone, PartialEq, Eq)]
pub struct PushConfigRow {
    /// The principal that owns the task (`user:<uuid>`, `internal`…).
    pub owner: String,
    pub task_id: Uuid,
    /// Unique per owner and task.
    pub id: String,
    pub url: String,
    /// The `Authorization` scheme the receiver asked for; empty for none.
    pub auth_scheme: String,
    /// The data key the secrets are sealed with (for rotation and per-key counts).
    pub key_id: u32,
    /// The sealed secrets (token and credentials; `hive_crypto::vault::Sealed` as text),
    /// bound to the row.
    pub secrets: String,
    pub created_at: OffsetDateTime,
    /// Creation, replacement or the last notification; pruning counts from here.
    pub updated_at: OffsetDateTime,
}

hive_proto::debug_redacted!(PushConfigRow {
    show: [
        owner,
        task_id,
        id,
        auth_scheme,
        key_id,
        created_at,
        updated_at
    ],
    hide: [url, secrets]
});

/// What [`PushConfigRepo::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushConfigPut {
    Created,
    /// A config of the same id was replaced (its creation time kept).
    Replaced,
    /// The task has the most configs allowed already; nothing was written.
    LimitReached,
}

#[async_trait]
pub trait PushConfigRepo: Send + Sync {
    /// Creates the config, or replaces the owner's config of the same task and id, unless that
    /// would give the task more than `max_per_task` configs (of this owner). The audit record
    /// is written with the change, and only if there is one.
    async fn put(
        &self,
        row: &PushConfigRow,
        max_per_task: u32,
        audit: AuditAppend<'_>,
    ) -> Result<PushConfigPut, StoreError>;

    /// The owner's config of the task, if any.
    async fn get(
        &self,
        owner: &str,
        task_id: Uuid,
        id: &str,
    ) -> Result<Option<PushConfigRow>, StoreError>;

    /// Up to `limit` of the owner's configs of the task, by id, after `after`.
    async fn list(
        &self,
        owner: &str,
        task_id: Uuid,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PushConfigRow>, StoreError>;

    /// Deletes the owner's config; `Ok(false)` when there was none (no audit record then).
    async fn delete(
        &self,
        owner: &str,
        task_id: Uuid,
        id: &str,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Marks the owner's configs of the task as used at `at` (a notification went out), so
    /// that pruning spares them while the task lives; returns how many.
    async fn touch(
        &self,
        owner: &str,
        task_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Deletes configs not created, replaced or used since `before` (their task has expired);
    /// returns how many.
    async fn prune_unused_since(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}
