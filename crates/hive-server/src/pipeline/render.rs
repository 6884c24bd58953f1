//! Gives every error response the one JSON shape, with the request id: errors returned by
//! handlers ([`ApiError`]) and bare statuses made by the router (404, 405) or by other layers
//! (413, timeout, panic).

use super::RequestId;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hive_proto::{ErrorBody, ErrorCode, ErrorDetail};
use http::{HeaderValue, StatusCode, header};
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub async fn render_errors(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<RequestId>().cloned();
    let json_rpc = is_json_rpc_endpoint(&request);
    let (request, held) = if json_rpc {
        let (request, held) = held_body(request);
        (request, Some(held))
    } else {
        (request, None)
    };
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
            let id = match held {
                Some(held) => held.request_id().await,
                None => serde_json::Value::Null,
            };
            with_body(response, json_rpc_error(code, &message, request_id, id))
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

/// How much of a refused JSON-RPC request's body is read to find its `id`, and for how long.
const ID_PEEK_BYTES: usize = 4096;
const ID_PEEK_TIME: std::time::Duration = std::time::Duration::from_millis(500);

/// A JSON-RPC request's body, passed on to the handler but kept within reach: when a layer
/// refuses the request before anything read the body (authentication, say), the start of the
/// body is read to answer with the request's `id`.
struct HeldBody {
    body: Arc<tokio::sync::Mutex<Option<axum::body::BodyDataStream>>>,
    touched: Arc<AtomicBool>,
}

fn held_body(request: Request) -> (Request, HeldBody) {
    let (parts, body) = request.into_parts();
    let held = HeldBody {
        body: Arc::new(tokio::sync::Mutex::new(Some(body.into_data_stream()))),
        touched: Arc::new(AtomicBool::new(false)),
    };
    let (shared, touched) = (Arc::clone(&held.body), Arc::clone(&held.touched));
    let stream = futures_util::stream::unfold((shared, touched), |(shared, touched)| async move {
        touched.store(true, Ordering::Relaxed);
        let next = shared.lock().await.as_mut()?.next().await?;
        Some((next, (shared, touched)))
    });
    (Request::from_parts(parts, Body::from_stream(stream)), held)
}

impl HeldBody {
    /// The request's `id` if the body was not read by anyone and its first
    /// [`ID_PEEK_BYTES`] arrive within [`ID_PEEK_TIME`] and name it before any member that does
    /// not fit; else null. Nothing more of the body is read.
    async fn request_id(self) -> serde_json::Value {
        if self.touched.load(Ordering::Relaxed) {
            return serde_json::Value::Null;
        }
        let Some(mut body) = self.body.lock().await.take() else {
            return serde_json::Value::Null;
        };
        let mut prefix = Vec::new();
        let read = async {
            while prefix.len() < ID_PEEK_BYTES {
                match body.next().await {
                    Some(Ok(chunk)) => prefix.extend_from_slice(&chunk),
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(ID_PEEK_TIME, read).await;
        prefix.truncate(ID_PEEK_BYTES);
        id_in_prefix(&prefix)
    }
}

/// The `id` member of the JSON object `prefix` starts (a string, a number or null), found by
/// reading the object's members in order until `id` or the end of what is there.
fn id_in_prefix(prefix: &[u8]) -> serde_json::Value {
    use serde_json::Value;
    fn next<T: serde::de::DeserializeOwned>(rest: &[u8]) -> Option<(T, usize)> {
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
        let value = values.next()?.ok()?;
        Some((value, values.byte_offset()))
    }
    fn skip_ws(rest: &[u8]) -> &[u8] {
        let start = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(rest.len());
        &rest[start..]
    }
    let mut rest = skip_ws(prefix);
    let Some(after_brace) = rest.strip_prefix(b"{") else {
        return Value::Null;
    };
    rest = after_brace;
    let mut found = Value::Null;
    loop {
        let Some((key, used)) = next::<String>(rest) else {
            return found;
        };
        rest = skip_ws(&rest[used..]);
        let Some(after_colon) = rest.strip_prefix(b":") else {
            return found;
        };
        rest = after_colon;
        if key == "id" {
            let Some((value, used)) = next::<Value>(rest) else {
                return found;
            };
            if matches!(value, Value::String(_) | Value::Number(_) | Value::Null) {
                found = value;
            }
            rest = &rest[used..];
        } else {
            let Some((_, used)) = next::<serde::de::IgnoredAny>(rest) else {
                return found;
            };
            rest = &rest[used..];
        }
        rest = skip_ws(rest);
        match rest.strip_prefix(b",") {
            Some(more) => rest = more,
            None => return found,
        }
    }
}

/// An error refused before the JSON-RPC layer (authentication, limits, content type) as a
/// JSON-RPC error response: the request's `id` when it could be read (else null), an A2A or
/// JSON-RPC code, and in `data` one `ErrorInfo` naming Hive's error code, the HTTP status and
/// the request id. The HTTP status stays.
fn json_rpc_error(
    code: ErrorCode,
    message: &str,
    request_id: Option<RequestId>,
    id: serde_json::Value,
) -> Vec<u8> {
    let rpc_code = match code.status() {
        415 => -32005,
        429 => crate::routes::a2a::SERVER_BUSY,
        status if status >= 500 => -32603,
        _ => -32600,
    };
    let mut metadata = serde_json::Map::new();
    metadata.insert("httpStatus".into(), code.status().to_string().into());
    if let Some(id) = request_id {
        metadata.insert("requestId".into(), id.as_str().to_owned().into());
    }
    let error = hive_a2a::error::RpcError {
        code: rpc_code,
        message: message.to_owned(),
        data: None,
    }
    .with_detail(
        &code.as_str().to_ascii_uppercase(),
        hive_core::gateway::ERROR_DOMAIN,
        metadata,
    );
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error });
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

#[cfg(test)]
mod tests {
    use super::id_in_prefix;
    use serde_json::json;

    #[test]
    fn the_id_is_read_from_the_start_of_the_body() {
        let cases = [
            (r#"{"jsonrpc":"2.0","id":7,"method":"GetTask"}"#, json!(7)),
            (
                r#" { "id" : "a-1" , "params": {"x": [1, 2]}}"#,
                json!("a-1"),
            ),
            (
                r#"{"params":{"deep":[[{"a":"}"}]]},"id":null}"#,
                json!(null),
            ),
            (r#"{"method":"x","params":{"cut off"#, json!(null)),
            (r#"{"id":{"not":"an id"}}"#, json!(null)),
            (r#"{"id":12, "params": {"never": "closed""#, json!(12)),
            ("[1,2]", json!(null)),
            ("", json!(null)),
        ];
        for (body, id) in cases {
            assert_eq!(id_in_prefix(body.as_bytes()), id, "{body}");
        }
    }
}
