/// Errors of the shared state. Messages never hold keys' secrets or connection strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The shared store (Redis) did not answer in time or refused.
    #[error("shared state unavailable: {0}")]
    Unavailable(String),
    /// A value was refused before it reached the shared store.
    #[error("invalid: {0}")]
    Invalid(String),
    /// An in-memory structure reached its bound; refusing is safer than forgetting.
    #[error("shared state full: {0}")]
    Full(&'static str),
}

/// Why a service failed a health check: a fixed kind, never the driver's text (which may quote
/// an address or credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PingFailure {
    #[error("no answer in time")]
    TimedOut,
    #[error("unreachable")]
    Unreachable,
}
