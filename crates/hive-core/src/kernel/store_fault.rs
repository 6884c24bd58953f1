//! What a domain tells its caller about a store error it cannot handle itself: the database
//! (or the audit log) could not take the call now, the row is gone, or a fault of ours. Every
//! domain's error type is built from this one reading, so an outage is logged the same way
//! whichever service met it, and never shown to the caller.

use hive_store::StoreError;

#[derive(Debug)]
pub enum StoreFault {
    /// Retry later; nothing was changed.
    Unavailable,
    NotFound,
    /// Logged by the caller's error mapping; the text is for logs only.
    Internal(String),
}

impl StoreFault {
    /// Reads `error` for `domain` (named in the log lines).
    pub fn of(error: StoreError, domain: &'static str) -> Self {
        match error {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, domain, "database unavailable");
                Self::Unavailable
            }
            StoreError::AuditUnwritable(detail) => {
                tracing::error!(%detail, domain, "audit record not written; the change was rolled back");
                Self::Unavailable
            }
            StoreError::NotFound => Self::NotFound,
            other => Self::Internal(other.to_string()),
        }
    }
}
