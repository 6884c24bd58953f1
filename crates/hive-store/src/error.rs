use thiserror::Error;

/// Errors of every store backend. Messages never carry connection strings, credentials or row
/// values: they may reach logs.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be reached or the pool is closed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness or state rule was violated.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// An argument was refused before reaching the database (a bad cursor, a bad limit).
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error(
        "the database schema (version {current}) is newer than this binary knows (unknown migrations: {unknown:?}); run a newer Hive"
    )]
    SchemaNewer { current: i64, unknown: Vec<i64> },
    #[error("migration failed: {0}")]
    Migration(String),
    /// The data directory is locked by another Hive process.
    #[error("{0}")]
    Locked(String),
    /// The audit record of a change could not be written, so the change was rolled back.
    #[error("audit record not written (the change was rolled back): {0}")]
    AuditUnwritable(String),
    /// Anything else the database said.
    #[error("database error: {0}")]
    Backend(String),
}
