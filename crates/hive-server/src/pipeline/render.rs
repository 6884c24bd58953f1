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
    let json_rpc = is_json_rpc_endpoint(&request);
    let mut response = next.run(request).await;
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(error) => Some((error.code, error.message.into_owned())),
        None => {
            let status = response.status();
            ((status.is_client_error() || status.is_server_error()) && !is_json(&response)).then(
                || {
                    let code = ErrorCode::for_status(status.as_u16());
                    (code, code.default_message().to_owned())
                },
            )
        }
    };
    match error {
        Some((code, message)) if json_rpc => {
            with_body(response, json_rpc_error(code, &message, request_id))
        }
        Some((code, message)) => with_error_body(response, code, &message, request_id),
        None => response,
    }
}

/// `POST` to a JSON-RPC endpoint of the A2A gateway, whose clients read every error body as a
/// JSON-RPC response.
fn is_json_rpc_endpoint(request: &Request) -> bool {
    let path = request.uri().path().trim_end_matches('/');
    request.method() == http::Method::POST
        && (path == "/api/a2a/jsonrpc"
            || path == crate::routes::PUBLIC_PATH
            || (path.starts_with("/api/a2a/agents/") && path.ends_with("/jsonrpc")))
}

/// An error refused before the JSON-RPC layer (authentication, limits, content type) as a
/// JSON-RPC error response: `id` null, an A2A or JSON-RPC code, and in `data` one `ErrorInfo`
/// naming Hive's error code, the HTTP status and the request id. The HTTP status stays.
fn json_rpc_error(code: ErrorCode, message: &str, request_id: Option<RequestId>) -> Vec<u8> {
    let rpc_code = match code.status() {
        415 => -32005,
        status if status >= 500 || status == 429 => -32603,
        _ => -32600,
    };
    let mut metadata = serde_json::Map::new();
    metadata.insert("httpStatus".into(), code.status().to_string().into());
    if let Some(id) = request_id {
        metadata.insert("requestId".into(), id.as_str().to_owned().into());
    }
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": rpc_code,
            "message": message,
            "data": [{
                "@type": hive_a2a::error::ERROR_INFO_TYPE,
                "reason": code.as_str().to_ascii_uppercase(),
                "domain": "hive",
                "metadata": metadata,
            }],
        },
    });
    serde_json::to_vec(&body).unwrap_or_default()
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
    with_body(response, serde_json::to_vec(&body).unwrap_or_default())
}

fn with_body(response: Response, bytes: Vec<u8>) -> Response {
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
