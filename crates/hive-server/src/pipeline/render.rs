//! Gives every error response the one JSON shape, with the request id: errors returned by
//! handlers ([`ApiError`]) and bare statuses made by the router (404, 405) or by other layers
//! (413, timeout, panic).

use super::RequestId;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hive_proto::{ErrorBody, ErrorCode, ErrorDetail};
use http::{HeaderValue, StatusCode, header};
use std::any::Any;

pub async fn render_errors(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<RequestId>().cloned();
    let mut response = next.run(request).await;
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        return with_error_body(response, error.code, &error.message, request_id);
    }
    let status = response.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(&response) {
        let code = ErrorCode::for_status(status.as_u16());
        return with_error_body(response, code, code.default_message(), request_id);
    }
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn with_error_body(
    response: Response,
    code: ErrorCode,
    message: &str,
    request_id: Option<RequestId>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.as_str().to_owned(),
            message: message.to_owned(),
            request_id: request_id.map(|id| id.as_str().to_owned()),
        },
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(bytes))
}

/// The panic's message is not logged: it may hold values from the request.
pub fn panic_response(_payload: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked; answered 500");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}
