//! Gives every error response the one JSON shape, with the request id: errors returned by
//! handlers ([`ApiError`]) and bare statuses made by the router (404, 405) or by other layers
//! (413, timeout, panic). At a JSON-RPC endpoint that shape is a JSON-RPC error response, and
//! this layer is its only writer.

use crate::error::ApiError;
use crate::request::{PUBLIC_PATH, RequestId};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hive_a2a::error::RpcError;
use hive_a2a::jsonrpc::{self, Id, Version};
use hive_proto::{ErrorBody, ErrorCode, ErrorDetail};
use http::{HeaderValue, StatusCode, header};
use hyper::body::{Frame, SizeHint};
use std::any::Any;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

pub async fn render_errors(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<RequestId>().cloned();
    let (request, held) = if is_json_rpc_endpoint(&request) {
        let (request, held) = HeldBody::hold(request);
        (request, Some(held))
    } else {
        (request, None)
    };
    let mut response = next.run(request).await;
    let error = response.extensions_mut().remove::<ApiError>().or_else(|| {
        let status = response.status();
        ((status.is_client_error() || status.is_server_error())
            && !is_json(&response)
            && !is_html(&response))
        .then(|| ApiError::of(ErrorCode::for_status(status.as_u16())))
    });
    match (error, held) {
        (Some(error), Some(held)) => {
            let id = held.request_id().await;
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let body = json_rpc_error(&id, error, retry_after, request_id);
            with_body(response, body)
        }
        (Some(error), None) => with_error_body(response, error.code, &error.message, request_id),
        (None, _) => response,
    }
}

/// `POST` to a JSON-RPC endpoint of the A2A gateway, whose clients read every error body as a
/// JSON-RPC response.
fn is_json_rpc_endpoint(request: &Request) -> bool {
    let path = request.uri().path().trim_end_matches('/');
    request.method() == http::Method::POST
        && (path == "/api/a2a/jsonrpc"
            || path == PUBLIC_PATH
            || (path.starts_with("/api/a2a/agents/") && path.ends_with("/jsonrpc")))
}

/// The `id` of the JSON-RPC request being answered, in the request's extensions at the
/// JSON-RPC endpoints: the handler sets it once it has parsed the request, and a refusal made
/// after that (a stream cap, a busy agent, an outage) answers with it.
#[derive(Debug, Clone, Default)]
pub struct RpcIdSlot(Arc<OnceLock<Id>>);

impl RpcIdSlot {
    pub fn set(&self, id: &Id) {
        // Set once per request: a second parse of the same body has the same id.
        let _ = self.0.set(id.clone());
    }
}

/// How much of a refused JSON-RPC request's body is read to find its `id`, and for how long.
const ID_PEEK_BYTES: usize = 4096;
const ID_PEEK_TIME: std::time::Duration = std::time::Duration::from_millis(500);

/// What the render layer keeps of a JSON-RPC request's body for a refusal made before the
/// request was parsed: the body itself until something reads it, then the chunks that made up
/// its first [`ID_PEEK_BYTES`] (shared, not copied: a request that is answered never pays for
/// them).
struct Kept {
    unread: Option<Body>,
    prefix: Vec<Bytes>,
    prefix_len: usize,
}

/// The render layer's hold on a JSON-RPC request: its [`RpcIdSlot`] and what is [`Kept`] of
/// its body.
struct HeldBody {
    slot: RpcIdSlot,
    kept: Arc<Mutex<Kept>>,
}

/// The body the request goes on with: it takes the body from [`Kept`] when first read and
/// copies the first [`ID_PEEK_BYTES`] back there.
struct PassedBody {
    body: Option<Body>,
    kept: Arc<Mutex<Kept>>,
    /// Still copying: fewer than [`ID_PEEK_BYTES`] were read.
    recording: bool,
}

fn lock(kept: &Mutex<Kept>) -> std::sync::MutexGuard<'_, Kept> {
    kept.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HeldBody {
    fn hold(request: Request) -> (Request, Self) {
        let (mut parts, body) = request.into_parts();
        let kept = Arc::new(Mutex::new(Kept {
            unread: Some(body),
            prefix: Vec::new(),
            prefix_len: 0,
        }));
        let slot = RpcIdSlot::default();
        parts.extensions.insert(slot.clone());
        let passed = PassedBody {
            body: None,
            kept: Arc::clone(&kept),
            recording: true,
        };
        (
            Request::from_parts(parts, Body::new(passed)),
            Self { slot, kept },
        )
    }

    /// The request's `id`: the one the handler parsed; else, read from the first
    /// [`ID_PEEK_BYTES`] of the body — those already read, or, if nothing read the body, those
    /// that arrive within [`ID_PEEK_TIME`] (nothing more of it is read) — when they name it
    /// before any member that does not fit; else null.
    async fn request_id(self) -> Id {
        if let Some(id) = self.slot.0.get() {
            return id.clone();
        }
        let (unread, prefix) = {
            let mut kept = lock(&self.kept);
            (kept.unread.take(), std::mem::take(&mut kept.prefix))
        };
        let prefix = match unread {
            Some(body) => peek(body).await,
            None => {
                let mut prefix = prefix.concat();
                prefix.truncate(ID_PEEK_BYTES);
                prefix
            }
        };
        id_in_prefix(&prefix)
    }
}

async fn peek(body: Body) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut body = body.into_data_stream();
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
    prefix
}

impl HttpBody for PassedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.body.is_none() {
            this.body = lock(&this.kept).unread.take();
        }
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if this.recording
            && let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let mut kept = lock(&this.kept);
            kept.prefix_len += data.len();
            kept.prefix.push(data.clone());
            this.recording = kept.prefix_len < ID_PEEK_BYTES;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(body) => body.is_end_stream(),
            None => lock(&self.kept)
                .unread
                .as_ref()
                .is_none_or(HttpBody::is_end_stream),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(body) => body.size_hint(),
            None => lock(&self.kept)
                .unread
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint),
        }
    }
}

/// The `id` member of the JSON object `prefix` starts (a string, a number or null), found by
/// reading the object's members in order until `id` or the end of what is there.
fn id_in_prefix(prefix: &[u8]) -> Id {
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
        return Id::Null;
    };
    rest = after_brace;
    let mut found = Id::Null;
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
            match value {
                Value::String(id) => found = Id::String(id),
                Value::Number(id) => found = Id::Number(id),
                Value::Null => found = Id::Null,
                _ => {}
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

/// A refused JSON-RPC call as a JSON-RPC error response: the request's `id` (null when it
/// could not be read), and an error whose `data` is one `ErrorInfo` naming the reason, with the
/// HTTP status, `Retry-After` when the answer has one, and the request id in its metadata. The
/// error is the one the refusal brings for JSON-RPC ([`ApiError::for_json_rpc`]: its own
/// `ErrorInfo` reason, else Hive's error code in upper case), else one made from Hive's error
/// code and message. The HTTP status stays.
fn json_rpc_error(
    id: &Id,
    error: ApiError,
    retry_after: Option<String>,
    request_id: Option<RequestId>,
) -> Vec<u8> {
    let status = error.code.status();
    let rpc_error = match error.json_rpc {
        Some(rpc_error) => *rpc_error,
        None => RpcError {
            code: match status {
                415 => hive_a2a::error::ErrorCode::ContentTypeNotSupported.code(),
                429 => crate::error::SERVER_BUSY,
                status if status >= 500 => hive_a2a::error::ErrorCode::InternalError.code(),
                _ => hive_a2a::error::ErrorCode::InvalidRequest.code(),
            },
            message: error.message.into_owned(),
            data: None,
        },
    };
    let reason = rpc_error
        .error_info_reason()
        .map_or_else(|| error.code.as_str().to_ascii_uppercase(), str::to_owned);
    let mut metadata = serde_json::Map::new();
    metadata.insert("httpStatus".into(), status.to_string().into());
    if let Some(seconds) = retry_after {
        metadata.insert("retryAfter".into(), seconds.into());
    }
    if let Some(id) = request_id {
        metadata.insert("requestId".into(), id.as_str().to_owned().into());
    }
    let rpc_error = rpc_error.with_detail(&reason, hive_core::gateway::ERROR_DOMAIN, metadata);
    // The error has its `data`: both versions write it alike.
    jsonrpc::encode_error(id, &rpc_error, Version::V1_0)
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// A page's error, already written for a person (the dashboard's).
fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
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
            let found = serde_json::to_value(id_in_prefix(body.as_bytes())).unwrap();
            assert_eq!(found, id, "{body}");
        }
    }
}
