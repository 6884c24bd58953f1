//! `X-Request-Id`: kept when the client's is sane, generated otherwise, always returned; and the
//! access log, whose span carries the id so every log line of a request can be found.

use crate::request::RequestId;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue};
use std::time::Duration;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_LEN: usize = 128;

/// A client's id is kept only if it is short and plain, so it cannot forge log structure.
fn is_sane(raw: &[u8]) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_LEN
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(&X_REQUEST_ID) {
        Some(value) if is_sane(value.as_bytes()) => value.clone(),
        _ => HeaderValue::try_from(uuid::Uuid::new_v4().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
    };
    request.headers_mut().insert(X_REQUEST_ID, id.clone());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID, id);
    response
}

#[derive(Clone, Copy)]
pub struct AccessSpan;

impl<B> MakeSpan<B> for AccessSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> Span {
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(RequestId::as_str)
            .unwrap_or("");
        // The route template names the span (few distinct names); unmatched paths share one.
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let method = request.method();
        // The path only: a query string may carry values that do not belong in logs.
        let span = tracing::info_span!(
            "http",
            request_id = id,
            method = %method,
            path = request.uri().path(),
            client_ip = tracing::field::Empty,
            otel.name = %format_args!("{method} {}", route.unwrap_or("unmatched")),
            otel.kind = "server",
            http.route = route,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        // A caller's `traceparent` is continued: this request's spans join its trace.
        hive_core::kernel::trace_context::continue_from(&span, request.headers());
        span
    }
}

#[derive(Clone, Copy)]
pub struct AccessLog;

impl<B> OnResponse<B> for AccessLog {
    fn on_response(self, response: &http::Response<B>, latency: Duration, span: &Span) {
        span.record("http.response.status_code", response.status().as_u16());
        if response.status().is_server_error() {
            span.record("otel.status_code", "error");
        }
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request served"
        );
    }
}

pub fn access_log()
-> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, AccessSpan, (), AccessLog> {
    TraceLayer::new_for_http()
        .make_span_with(AccessSpan)
        .on_request(())
        .on_response(AccessLog)
}

#[cfg(test)]
mod tests {
    use super::is_sane;

    #[test]
    fn only_short_plain_ids_are_kept() {
        assert!(is_sane(b"abc-123_x.y:z"));
        assert!(is_sane(&[b'a'; 128]));
        assert!(!is_sane(&[b'a'; 129]));
        assert!(!is_sane(b""));
        assert!(!is_sane(b"a b"));
        assert!(!is_sane(b"a\"b"));
        assert!(!is_sane("é".as_bytes()));
    }
}
