//! Why a call is not answered with a result: the caller's role, a busy agent, an outage (answered
//! at the HTTP level), or a JSON-RPC error of the call; and the JSON-RPC errors the gateway writes.

use super::Reply;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::jsonrpc::Outcome;

/// The caller's role is below `A2A_JSONRPC_MIN_ROLE`: it may call no agent here (the refusal
/// is audited by [`super::Gateway::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct RoleBelowMinimum;

impl RoleBelowMinimum {
    /// What the caller is told.
    pub fn message(self) -> &'static str {
        "your role may not call agents here (A2A_JSONRPC_MIN_ROLE)"
    }
}

/// A call refused before it reached an agent, answered at the HTTP level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// A limit of the agent (requests a minute, concurrent tasks) is reached.
    #[error("the agent is busy; retry in {retry_after} s")]
    Throttled { retry_after: u64 },
    /// The audit record of the call could not be written, or shared state is down.
    #[error("unavailable")]
    Unavailable,
    /// Billing refused the call before it started: the wallet cannot pay for it, or a budget
    /// is spent.
    #[error("{0}")]
    Billing(crate::kernel::ports::UsageRefusal),
}

/// Why a call was not answered with a result: a JSON-RPC error of the call, or a refusal of
/// the whole call (busy, or a store Hive depends on is unavailable), answered at the HTTP level.
#[derive(Debug)]
pub(crate) enum Refused {
    Rpc(RpcError),
    Gateway(GatewayError),
}

impl From<RpcError> for Refused {
    fn from(error: RpcError) -> Self {
        Self::Rpc(error)
    }
}

impl From<GatewayError> for Refused {
    fn from(error: GatewayError) -> Self {
        Self::Gateway(error)
    }
}

impl Refused {
    /// The error that ends a stream already answered (its HTTP status is sent): a refusal of
    /// the whole call is told in JSON-RPC terms there.
    pub(crate) fn into_stream_error(self) -> RpcError {
        match self {
            Self::Rpc(error) => error,
            Self::Gateway(GatewayError::Unavailable) => unavailable(),
            Self::Gateway(GatewayError::Throttled { retry_after }) => ErrorCode::InternalError
                .with_message(format!("the agent is busy; retry in {retry_after} s")),
            Self::Gateway(GatewayError::Billing(refusal)) => {
                ErrorCode::InternalError.with_message(refusal.to_string())
            }
        }
    }
}

/// The answer to a call that is not a stream.
pub(super) fn unary(result: Result<Outcome, Refused>) -> Result<Reply, GatewayError> {
    match result {
        Ok(outcome) => Ok(Reply::Unary(Box::new(Ok(outcome)))),
        Err(refused) => failed(refused),
    }
}

/// The answer to a call that failed: a JSON-RPC error, or the refusal of the whole call.
pub(super) fn failed(error: impl Into<Refused>) -> Result<Reply, GatewayError> {
    match error.into() {
        Refused::Rpc(error) => Ok(Reply::Unary(Box::new(Err(error)))),
        Refused::Gateway(error) => Err(error),
    }
}

pub(super) fn push_error(error: crate::gateway::push::PushError) -> RpcError {
    use crate::gateway::push::PushError;
    match error {
        PushError::NotFound => {
            ErrorCode::TaskNotFound.with_message("no such push notification config for this task")
        }
        PushError::Invalid(why) => ErrorCode::InvalidParams.with_message(why),
        PushError::TooMany => ErrorCode::InvalidParams.with_message(format!(
            "a task has at most {} push notification configs",
            crate::gateway::push::MAX_CONFIGS_PER_TASK
        )),
        PushError::Store(_) => internal(),
    }
}

/// A message for a task an executor or a stream is still working on.
pub(crate) fn still_working() -> RpcError {
    ErrorCode::UnsupportedOperation
        .with_message("the task is still working; wait for it or cancel it")
}

pub(super) fn internal() -> RpcError {
    ErrorCode::InternalError.with_message("Hive could not complete the call; try again")
}

/// The `domain` of the `ErrorInfo` details Hive adds to JSON-RPC errors of its own (A2A's are
/// `a2a-protocol.org`).
pub const ERROR_DOMAIN: &str = "hive";

/// A store Hive depends on went down while a stream was being answered (a call is refused as
/// a whole before: [`GatewayError::Unavailable`], HTTP 503 with `Retry-After`, whose JSON-RPC
/// error is this one too): the error that ends the stream, with the `ErrorInfo` reason of that
/// refusal.
pub fn unavailable() -> RpcError {
    ErrorCode::InternalError
        .with_message("a store Hive depends on is unavailable; retry shortly")
        .with_detail("SERVICE_UNAVAILABLE", ERROR_DOMAIN, serde_json::Map::new())
}

/// A failure of the database: the whole call is refused when it cannot be reached.
pub(super) fn store_error(error: hive_store::StoreError) -> Refused {
    match error {
        hive_store::StoreError::Unavailable(_) => Refused::Gateway(GatewayError::Unavailable),
        _ => Refused::Rpc(internal()),
    }
}
