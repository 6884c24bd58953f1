//! Usage records: every billable use, one row each — an `llm` agent's call (its tokens as the
//! endpoint counted them), a hosted agent's run time, a workflow's step — with who made it,
//! who pays for it and what it cost. Rows outlive the agent (they are the history billing
//! reads), so they do not reference the agents table.

use crate::{Page, PageRequest, StoreError};
use async_trait::async_trait;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// Longest principal (`user:<uuid>`, `token:<uuid>`, `federation:<peer>`…) a row keeps.
pub const USAGE_PRINCIPAL_MAX_CHARS: usize = 200;
/// Longest model name a row keeps.
pub const USAGE_MODEL_MAX_CHARS: usize = 200;

/// The most days [`UsageRepo::by_day`] answers at once.
pub const USAGE_DAYS_MAX: u32 = 90;

/// One UTC day of an agent's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageDay {
    pub day: Date,
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// What a usage record counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageKind {
    /// An `llm` agent's call: its prompt and completion tokens.
    Llm,
    /// A hosted agent's run time: `quantity` seconds.
    HostedRun,
    /// A workflow's step: `quantity` steps (one).
    WorkflowStep,
}

impl UsageKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Llm => "llm",
            Self::HostedRun => "hosted_run",
            Self::WorkflowStep => "workflow_step",
        }
    }

    pub fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "llm" => Ok(Self::Llm),
            "hosted_run" => Ok(Self::HostedRun),
            "workflow_step" => Ok(Self::WorkflowStep),
            other => Err(StoreError::Backend(format!("unknown usage kind {other:?}"))),
        }
    }
}

/// The currency of a record that cost nothing (ISO 4217's "no currency").
pub const NO_CURRENCY: &str = "xxx";

/// One billable use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub id: Uuid,
    pub kind: UsageKind,
    /// The agent (for a workflow's step: the workflow).
    pub agent_id: Uuid,
    /// Who the call was made for: the audit actor of the caller (`user:<uuid>`…).
    pub principal: String,
    /// Who pays for it (`None`: nobody).
    pub user_id: Option<Uuid>,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Seconds of run time, or steps.
    pub quantity: u64,
    /// Its price (nothing, in no currency, when it was free).
    pub cost: crate::billing::Money,
    pub created_at: OffsetDateTime,
}

impl UsageRow {
    /// An `llm` call's tokens, not priced.
    pub fn llm(
        id: Uuid,
        agent_id: Uuid,
        principal: impl Into<String>,
        model: impl Into<String>,
        prompt_tokens: u64,
        completion_tokens: u64,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            kind: UsageKind::Llm,
            agent_id,
            principal: principal.into(),
            user_id: None,
            model: model.into(),
            prompt_tokens,
            completion_tokens,
            quantity: 0,
            cost: crate::billing::Money::zero(crate::billing::Currency::none()),
            created_at,
        }
    }

    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

#[async_trait]
pub trait UsageRepo: Send + Sync {
    /// Stores one call's usage. [`StoreError::Invalid`] for a principal or model over its cap
    /// or a count over `i64::MAX`; [`StoreError::Conflict`] for an id used before.
    async fn record(&self, row: &UsageRow) -> Result<(), StoreError>;

    /// Prompt plus completion tokens of `agent_id`'s calls recorded at or after `since`.
    async fn tokens_since(&self, agent_id: Uuid, since: OffsetDateTime) -> Result<u64, StoreError>;

    /// `agent_id`'s calls, newest first.
    async fn list(&self, agent_id: Uuid, page: &PageRequest) -> Result<Page<UsageRow>, StoreError>;

    /// `agent_id`'s calls and tokens per UTC day, for the `days` days from `first` on (1 to
    /// [`USAGE_DAYS_MAX`], else [`StoreError::Invalid`]), oldest first; a day without calls is
    /// absent. Summed by the database (through the agent's time index), not row by row here.
    async fn by_day(
        &self,
        agent_id: Uuid,
        first: Date,
        days: u32,
    ) -> Result<Vec<UsageDay>, StoreError>;
}

/// The span [`UsageRepo::by_day`] reads: from `first`'s midnight UTC to `days` days later.
pub fn usage_days_span(
    first: Date,
    days: u32,
) -> Result<(OffsetDateTime, OffsetDateTime), StoreError> {
    if !(1..=USAGE_DAYS_MAX).contains(&days) {
        return Err(StoreError::Invalid(format!(
            "usage is read for 1 to {USAGE_DAYS_MAX} days"
        )));
    }
    let since = first.midnight().assume_utc();
    let until = since
        .checked_add(time::Duration::days(i64::from(days)))
        .ok_or_else(|| StoreError::Invalid("the days are out of range".into()))?;
    Ok((since, until))
}

/// Refuses a row the databases would refuse less clearly; answers its counts as stored.
pub fn check_usage(row: &UsageRow) -> Result<(i64, i64), StoreError> {
    if row.principal.is_empty() || row.principal.chars().count() > USAGE_PRINCIPAL_MAX_CHARS {
        return Err(StoreError::Invalid(format!(
            "a usage row's principal must be 1 to {USAGE_PRINCIPAL_MAX_CHARS} characters"
        )));
    }
    if row.model.chars().count() > USAGE_MODEL_MAX_CHARS {
        return Err(StoreError::Invalid(format!(
            "a usage row's model must be at most {USAGE_MODEL_MAX_CHARS} characters"
        )));
    }
    crate::billing::check_currency(row.cost.currency.as_str())?;
    if row.cost.minor < 0 {
        return Err(StoreError::Invalid("a usage row's cost is negative".into()));
    }
    let stored = |count: u64| {
        i64::try_from(count)
            .map_err(|_| StoreError::Invalid("a usage row's count is too large".into()))
    };
    stored(row.quantity)?;
    Ok((stored(row.prompt_tokens)?, stored(row.completion_tokens)?))
}

/// A stored count back; a negative one is a corrupt row.
pub fn tokens_from_stored(count: i64) -> Result<u64, StoreError> {
    u64::try_from(count).map_err(|_| StoreError::Backend("a stored token count is negative".into()))
}
