//! Why an agents call was refused: the registry, import from a card, and starting, stopping or
//! watching an agent share one error.

use crate::kernel::caller::NoAccount;
use crate::kernel::store_fault::StoreFault;
use hive_store::StoreError;

/// Why an agents call was refused. Messages are safe to show to the caller.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such agent, or one the caller may not see.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    Invalid(String),
    /// The database (or the audit log) cannot take the call now; nothing was changed.
    #[error("temporarily unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for AgentError {
    fn from(error: StoreError) -> Self {
        match StoreFault::of(error, "agents") {
            StoreFault::Unavailable => Self::Unavailable,
            StoreFault::NotFound => Self::NotFound,
            StoreFault::Internal(detail) => Self::Internal(detail),
        }
    }
}

/// A caller without an account owns no agents: it finds none.
impl From<NoAccount> for AgentError {
    fn from(_: NoAccount) -> Self {
        Self::NotFound
    }
}
