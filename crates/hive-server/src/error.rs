//! API errors. A handler returns an [`ApiError`]; the error-rendering layer of the pipeline turns
//! it (and every bare error status produced by the router or another layer) into the one error
//! shape, with the request id. Internal detail never reaches the body: it is logged instead.

use axum::response::{IntoResponse, Response};
use hive_a2a::error::RpcError;
use hive_core::agents::AgentError;
use hive_core::gateway::GatewayError;
use hive_core::gateway::conversations::{ChatError, ConversationError};
use hive_core::identity::IdentityError;
use hive_core::kernel::audit::AuditError;
use hive_core::kernel::refusal::Refusal;
use hive_core::kernel::settings::SettingsError;
use hive_core::mesh::wan::WanError;
use hive_core::vault::secrets::SecretError;
use hive_core::workflows::error::WorkflowError;
use hive_proto::ErrorCode;
use http::{HeaderValue, StatusCode};
use std::borrow::Cow;

/// The JSON-RPC code of a call refused as too many (an agent's limit reached, a rate limit):
/// A2A defines none, and JSON-RPC leaves -32000 to -32099 to the server (A2A's own codes are
/// -32001 to -32009).
pub(crate) const SERVER_BUSY: i32 = -32000;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
    /// The error a JSON-RPC endpoint answers with instead of one made from `code` and
    /// `message` (see the error-rendering layer).
    pub json_rpc: Option<Box<RpcError>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            json_rpc: None,
        }
    }

    /// The code with its fixed, safe message.
    pub fn of(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }

    /// A store Hive depends on is down: `503`, and a short wait before retrying.
    pub fn unavailable() -> Self {
        Self::of(ErrorCode::ServiceUnavailable).with_retry_after(5)
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// At a JSON-RPC endpoint, answer with `error` (its `ErrorInfo` reason, if it has one, is
    /// kept); the HTTP status stays that of the code.
    pub fn for_json_rpc(mut self, error: RpcError) -> Self {
        self.json_rpc = Some(Box::new(error));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // The body is written by the error-rendering layer, which knows the request id.
        response.extensions_mut().insert(self);
        response
    }
}

impl From<IdentityError> for ApiError {
    /// Maps a service refusal to the API's answer.
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::InvalidCredentials => ApiError::of(ErrorCode::InvalidCredentials),
            IdentityError::Unauthenticated => ApiError::of(ErrorCode::Unauthenticated),
            IdentityError::Forbidden(message) => ApiError::new(ErrorCode::Forbidden, message),
            IdentityError::ReauthenticationRequired => {
                ApiError::of(ErrorCode::ReauthenticationRequired)
            }
            IdentityError::NotFound => ApiError::of(ErrorCode::NotFound),
            IdentityError::Conflict(message) => ApiError::new(ErrorCode::Conflict, message),
            IdentityError::Invalid(message) => ApiError::new(ErrorCode::ValidationFailed, message),
            IdentityError::EnrollmentRequired => ApiError::of(ErrorCode::MfaEnrollmentRequired),
            IdentityError::Locked { retry_after } => ApiError::new(
                ErrorCode::RateLimited,
                "too many wrong codes; wait for the next one",
            )
            .with_retry_after(retry_after),
            IdentityError::Unavailable => ApiError::unavailable(),
            IdentityError::Internal(detail) => {
                tracing::error!(%detail, "identity: internal error");
                ApiError::of(ErrorCode::Internal)
            }
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::Forbidden => {
                ApiError::new(ErrorCode::Forbidden, "only an admin reads the audit log")
            }
            AuditError::Invalid(message) => ApiError::new(ErrorCode::ValidationFailed, message),
            AuditError::Unavailable => ApiError::unavailable(),
        }
    }
}

/// The answer to a domain's [`Refusal`]; an internal fault is logged under `domain`, never
/// shown.
fn refused(refusal: Refusal, domain: &'static str) -> ApiError {
    match refusal {
        Refusal::Forbidden(message) => ApiError::new(ErrorCode::Forbidden, message),
        Refusal::NotFound => ApiError::of(ErrorCode::NotFound),
        Refusal::Conflict(message) => ApiError::new(ErrorCode::Conflict, message),
        Refusal::Invalid(message) => ApiError::new(ErrorCode::ValidationFailed, message),
        Refusal::Unavailable => ApiError::unavailable(),
        Refusal::Internal(detail) => {
            tracing::error!(%detail, domain, "internal error");
            ApiError::of(ErrorCode::Internal)
        }
    }
}

impl From<SettingsError> for ApiError {
    fn from(error: SettingsError) -> Self {
        refused(error.into(), "settings")
    }
}

impl From<SecretError> for ApiError {
    fn from(error: SecretError) -> Self {
        refused(error.into(), "secrets")
    }
}

impl From<hive_core::backup::BackupError> for ApiError {
    fn from(error: hive_core::backup::BackupError) -> Self {
        refused(error.into(), "backup")
    }
}

impl From<AgentError> for ApiError {
    fn from(error: AgentError) -> Self {
        refused(error.into(), "agents")
    }
}

impl From<hive_core::billing::BillingError> for ApiError {
    fn from(error: hive_core::billing::BillingError) -> Self {
        refused(error.into(), "billing")
    }
}

/// A refusal of billing's: 402 with what the caller can do about it.
pub fn usage_refused(refusal: &hive_core::kernel::ports::UsageRefusal) -> ApiError {
    use hive_core::kernel::ports::UsageRefusal;
    match refusal {
        UsageRefusal::InsufficientFunds { .. } => {
            ApiError::new(ErrorCode::PaymentRequired, refusal.to_string())
        }
        UsageRefusal::BudgetReached { retry_after, .. } => {
            ApiError::new(ErrorCode::BudgetReached, refusal.to_string())
                .with_retry_after(*retry_after)
        }
        UsageRefusal::Unavailable => ApiError::unavailable(),
    }
}

impl From<WorkflowError> for ApiError {
    fn from(error: WorkflowError) -> Self {
        refused(error.into(), "workflows")
    }
}

impl From<ConversationError> for ApiError {
    fn from(error: ConversationError) -> Self {
        refused(error.into(), "conversations")
    }
}

/// A chat message refused before its stream started.
impl From<ChatError> for ApiError {
    fn from(error: ChatError) -> Self {
        match error {
            ChatError::Refused(error) => ApiError::from(error),
            ChatError::Gateway(GatewayError::Throttled { retry_after }) => {
                ApiError::new(ErrorCode::RateLimited, "the agent is busy; retry later")
                    .with_retry_after(retry_after)
            }
            ChatError::Gateway(GatewayError::Unavailable) => ApiError::unavailable(),
            ChatError::Gateway(GatewayError::Billing(refusal)) => usage_refused(&refusal),
            ChatError::Agent(message) => ApiError::new(
                ErrorCode::Conflict,
                format!("the agent did not take the message: {message}"),
            ),
        }
    }
}

impl From<WanError> for ApiError {
    fn from(error: WanError) -> Self {
        match error {
            WanError::Invalid(message) => ApiError::new(ErrorCode::ValidationFailed, message),
            WanError::Unavailable => ApiError::unavailable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outage_is_the_one_503() {
        let outages = [
            ApiError::from(IdentityError::Unavailable),
            ApiError::from(AuditError::Unavailable),
            ApiError::from(SettingsError::Unavailable),
            ApiError::from(SecretError::Unavailable),
            ApiError::from(AgentError::Unavailable),
            ApiError::from(ConversationError::Unavailable),
            ApiError::from(WanError::Unavailable),
        ];
        for error in outages {
            assert_eq!(error.code, ErrorCode::ServiceUnavailable);
            assert_eq!(error.retry_after, Some(5));
        }
        let response = ApiError::unavailable().into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "5");
    }

    fn answer(error: ApiError) -> (ErrorCode, String, Option<u64>) {
        (error.code, error.message.into_owned(), error.retry_after)
    }

    /// The domains' errors answer exactly what the identity error they replaced answered.
    #[test]
    fn domain_errors_answer_as_the_identity_error_did() {
        let invalid = || "a field is wrong".to_owned();
        let cases = [
            (
                ApiError::from(AgentError::Forbidden("no")),
                IdentityError::Forbidden("no"),
            ),
            (
                ApiError::from(AgentError::NotFound),
                IdentityError::NotFound,
            ),
            (
                ApiError::from(AgentError::Conflict("taken")),
                IdentityError::Conflict("taken"),
            ),
            (
                ApiError::from(AgentError::Invalid(invalid())),
                IdentityError::Invalid(invalid()),
            ),
            (
                ApiError::from(AgentError::Internal("detail".into())),
                IdentityError::Internal("detail".into()),
            ),
            (
                ApiError::from(ConversationError::Forbidden("no")),
                IdentityError::Forbidden("no"),
            ),
            (
                ApiError::from(ConversationError::NotFound),
                IdentityError::NotFound,
            ),
            (
                ApiError::from(ConversationError::Conflict("busy")),
                IdentityError::Conflict("busy"),
            ),
            (
                ApiError::from(ConversationError::Invalid(invalid())),
                IdentityError::Invalid(invalid()),
            ),
            (
                ApiError::from(ConversationError::Internal("detail".into())),
                IdentityError::Internal("detail".into()),
            ),
            (
                ApiError::from(WanError::Invalid(invalid())),
                IdentityError::Invalid(invalid()),
            ),
            (
                ApiError::from(SecretError::Forbidden("no")),
                IdentityError::Forbidden("no"),
            ),
            (
                ApiError::from(SecretError::NotFound),
                IdentityError::NotFound,
            ),
            (
                ApiError::from(SecretError::Conflict("taken")),
                IdentityError::Conflict("taken"),
            ),
            (
                ApiError::from(SecretError::Invalid(invalid())),
                IdentityError::Invalid(invalid()),
            ),
            (
                ApiError::from(SecretError::Internal("detail".into())),
                IdentityError::Internal("detail".into()),
            ),
        ];
        for (domain, identity) in cases {
            assert_eq!(answer(domain), answer(ApiError::from(identity)));
        }
    }
}
