//! The one error shape of the REST API:
//! `{"error":{"code":"snake_case_code","message":"human text","requestId":"…"}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Machine-readable error codes with the HTTP status each one is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    ValidationFailed,
    Unauthenticated,
    /// Login, setup token or one-time link refused (one answer for every reason).
    InvalidCredentials,
    /// A single sign-on callback refused (one answer for every reason; the audit record says
    /// which).
    SsoFailed,
    Forbidden,
    /// A sensitive change needs a password check in the last 10 minutes.
    ReauthenticationRequired,
    /// The MFA policy requires a second factor the user has not enrolled yet.
    MfaEnrollmentRequired,
    CorsOriginDenied,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    /// The request target is longer than the server reads.
    UriTooLong,
    UnsupportedMediaType,
    /// The request head (all header lines) is larger than the server reads.
    HeaderFieldsTooLarge,
    RateLimited,
    Internal,
    ServiceUnavailable,
    RequestTimeout,
    /// An upstream (a federation peer) answered wrongly or could not be reached.
    BadGateway,
    /// An upstream did not answer in time.
    GatewayTimeout,
    /// A billable call the caller's wallet cannot pay for.
    PaymentRequired,
    /// A budget (tokens or cost, per day or month) is spent.
    BudgetReached,
    /// `POST /api/webhooks/stripe` without `STRIPE_WEBHOOK_SECRET`.
    StripeWebhooksNotConfigured,
    /// Checkout or the customer portal without `STRIPE_SECRET_KEY`.
    StripeNotConfigured,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::ValidationFailed => "validation_failed",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::SsoFailed => "sso_failed",
            Self::ReauthenticationRequired => "reauthentication_required",
            Self::MfaEnrollmentRequired => "mfa_enrollment_required",
            Self::Forbidden => "forbidden",
            Self::CorsOriginDenied => "cors_origin_denied",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UriTooLong => "uri_too_long",
            Self::HeaderFieldsTooLarge => "request_header_fields_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal_error",
            Self::ServiceUnavailable => "service_unavailable",
            Self::RequestTimeout => "request_timeout",
            Self::BadGateway => "bad_gateway",
            Self::GatewayTimeout => "gateway_timeout",
            Self::PaymentRequired => "payment_required",
            Self::BudgetReached => "budget_reached",
            Self::StripeWebhooksNotConfigured => "stripe_webhooks_not_configured",
            Self::StripeNotConfigured => "stripe_not_configured",
        }
    }

    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest | Self::ValidationFailed => 400,
            Self::Unauthenticated | Self::InvalidCredentials | Self::SsoFailed => 401,
            Self::ReauthenticationRequired | Self::MfaEnrollmentRequired => 403,
            Self::Forbidden | Self::CorsOriginDenied => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UriTooLong => 414,
            Self::HeaderFieldsTooLarge => 431,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::ServiceUnavailable | Self::RequestTimeout => 503,
            Self::BadGateway => 502,
            Self::GatewayTimeout => 504,
            Self::PaymentRequired | Self::BudgetReached => 402,
            Self::StripeWebhooksNotConfigured | Self::StripeNotConfigured => 503,
        }
    }

    /// The code for a bare status produced outside a handler (router, body limit, timeout).
    pub const fn for_status(status: u16) -> Self {
        match status {
            401 => Self::Unauthenticated,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            414 => Self::UriTooLong,
            431 => Self::HeaderFieldsTooLarge,
            415 => Self::UnsupportedMediaType,
            429 => Self::RateLimited,
            502 => Self::BadGateway,
            503 => Self::ServiceUnavailable,
            504 => Self::GatewayTimeout,
            500..=599 => Self::Internal,
            _ => Self::BadRequest,
        }
    }

    /// A fixed, safe message for this code; handlers may give a more precise one.
    pub const fn default_message(self) -> &'static str {
        match self {
            Self::BadRequest => "The request is malformed.",
            Self::ValidationFailed => "The request failed validation.",
            Self::Unauthenticated => "Authentication is required.",
            Self::InvalidCredentials => "Invalid credentials.",
            Self::SsoFailed => {
                "Single sign-on failed. Start again; if you have no Hive account yet, ask an admin."
            }
            Self::ReauthenticationRequired => {
                "Confirm your password first (POST /api/v1/auth/reauthenticate)."
            }
            Self::MfaEnrollmentRequired => {
                "Set up a second factor first (POST /api/v1/auth/mfa/totp or a passkey)."
            }
            Self::Forbidden => "You may not do this.",
            Self::CorsOriginDenied => "This origin may not call the API.",
            Self::NotFound => "Nothing is here.",
            Self::MethodNotAllowed => "This method is not allowed here.",
            Self::Conflict => "The request conflicts with the current state.",
            Self::PayloadTooLarge => "The request body is too large.",
            Self::UriTooLong => "The request URI is too long.",
            Self::HeaderFieldsTooLarge => "The request headers are too large.",
            Self::UnsupportedMediaType => "The request body must be application/json.",
            Self::RateLimited => "Too many requests; retry later.",
            Self::Internal => "Internal error.",
            Self::ServiceUnavailable => "The service is unavailable; retry later.",
            Self::RequestTimeout => "The request took too long.",
            Self::BadGateway => "The upstream could not be reached or answered wrongly.",
            Self::GatewayTimeout => "The upstream did not answer in time.",
            Self::PaymentRequired => "The wallet cannot pay for this call; top it up.",
            Self::BudgetReached => "A budget is spent for this period.",
            Self::StripeWebhooksNotConfigured => {
                "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)."
            }
            Self::StripeNotConfigured => "Stripe is not configured (STRIPE_SECRET_KEY).",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_camel_case_and_omits_missing_request_id() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::NotFound.as_str().into(),
                message: "x".into(),
                request_id: Some("r1".into()),
            },
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"not_found","message":"x","requestId":"r1"}}"#
        );
        let bare = ErrorDetail {
            request_id: None,
            ..body.error
        };
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"code":"not_found","message":"x"}"#
        );
    }

    #[test]
    fn bare_statuses_map_to_their_codes() {
        for code in [
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UriTooLong,
            ErrorCode::HeaderFieldsTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::RateLimited,
            ErrorCode::ServiceUnavailable,
            ErrorCode::BadGateway,
            ErrorCode::GatewayTimeout,
        ] {
            assert_eq!(ErrorCode::for_status(code.status()), code);
        }
        assert_eq!(ErrorCode::for_status(500), ErrorCode::Internal);
    }
}
