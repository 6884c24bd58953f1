use crate::{Page, PageRequest, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// A run about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJobRun {
    pub job: String,
    /// The replica that runs it (a random id per process).
    pub node_id: String,
    pub started_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Running,
    Succeeded,
    Failed,
}

impl JobOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        match raw {
            "running" => Ok(Self::Running),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            other => Err(StoreError::Backend(format!(
                "unknown job outcome {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub id: Uuid,
    pub job: String,
    pub node_id: String,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub outcome: JobOutcome,
    /// A short, secret-free note (an error summary, a count).
    pub detail: Option<String>,
}

/// The history of background job runs: what ran, where and how it ended.
#[async_trait]
pub trait JobRunRepo: Send + Sync {
    /// Records the start of a run (outcome `running`) and returns its id.
    async fn start(&self, run: NewJobRun) -> Result<Uuid, StoreError>;

    /// Records how a run ended. [`StoreError::NotFound`] for an unknown id, [`StoreError::Conflict`]
    /// for a run that already ended or when `outcome` is `Running`.
    async fn finish(
        &self,
        id: Uuid,
        finished_at: OffsetDateTime,
        outcome: JobOutcome,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Runs, newest start first (ties broken by id), optionally of one job only.
    async fn list(&self, job: Option<&str>, page: &PageRequest)
    -> Result<Page<JobRun>, StoreError>;

    /// Deletes runs that ended before `before`; returns how many were deleted.
    async fn prune_finished_before(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}
