//! API errors. A handler returns an [`ApiError`]; the error-rendering layer of the pipeline turns
//! it (and every bare error status produced by the router or another layer) into the one error
//! shape, with the request id. Internal detail never reaches the body: it is logged instead.

use axum::response::{IntoResponse, Response};
use hive_proto::ErrorCode;
use http::{HeaderValue, StatusCode};
use std::borrow::Cow;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The code with its fixed, safe message.
    pub fn of(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
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
