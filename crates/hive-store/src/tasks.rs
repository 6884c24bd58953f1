use crate::{Page, PageRequest, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// An A2A task kept in the database (the `db` task store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    pub id: Uuid,
    pub owner: String,
    pub agent_id: String,
    pub context_id: String,
    pub status_time: OffsetDateTime,
    /// The task document as JSON text.
    pub document: String,
    pub expires_at: OffsetDateTime,
}

/// Tasks by owner; expired rows are invisible and pruned by a job.
#[async_trait]
pub trait TaskRepo: Send + Sync {
    /// Inserts or replaces a task. `Ok(false)` when the id is held, unexpired, by another owner
    /// or by a discarded task (nothing is changed then).
    async fn put(&self, task: &TaskRow, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// [`Self::put`] for several tasks, in order, in one transaction (one commit): one answer
    /// per task. An error means none of them was written.
    async fn put_batch(
        &self,
        tasks: &[TaskRow],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError>;

    /// Discards `owner`'s task `id`, in one statement: the task (if any, or an expired one of
    /// anyone's) becomes a tombstone until `until`, which [`Self::put`] does not overwrite, so
    /// a write that was still in flight cannot bring the task back. Another owner's unexpired
    /// task is left alone. A tombstone is never read nor listed, and is pruned once expired.
    async fn discard(
        &self,
        owner: &str,
        id: Uuid,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// The task if it is `owner`'s and not expired at `now`.
    async fn get(
        &self,
        owner: &str,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<TaskRow>, StoreError>;

    /// `owner`'s unexpired tasks, newest status first (ties by id, descending).
    async fn list(
        &self,
        owner: &str,
        page: &PageRequest,
        now: OffsetDateTime,
    ) -> Result<Page<TaskRow>, StoreError>;

    /// Deletes tasks expired at `now`; returns how many.
    async fn prune_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
