//! W3C trace context (`traceparent`, `tracestate`) across Hive's edges: an incoming request's is
//! continued, and the calls Hive makes to agents and peers carry the current span's. The
//! propagator is installed only when traces are exported (`OTEL_EXPORTER_OTLP_ENDPOINT`);
//! without it both do nothing and no header is added.

use opentelemetry::propagation::Injector;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `span` a child of the trace context in `headers`, if they hold a valid one.
pub fn continue_from(span: &tracing::Span, headers: &http::HeaderMap) {
    // Every request passes here: most carry no trace context, and those skip the propagator's
    // global lock.
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    if parent.span().span_context().is_valid() {
        // Refused only when no tracing layer is installed: nothing to continue then.
        let _ = span.set_parent(parent);
    }
}

/// Adds the current span's trace context to `headers` (an outgoing request).
pub fn inject_into(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// The current span's trace context as header pairs (for requests built as name/value lists).
pub fn current_headers() -> Vec<(&'static str, String)> {
    /// Collects what the propagator writes; it writes only the names below.
    struct Pairs(Vec<(&'static str, String)>);
    impl Injector for Pairs {
        fn set(&mut self, key: &str, value: String) {
            let name = match key {
                "traceparent" => "traceparent",
                "tracestate" => "tracestate",
                _ => return,
            };
            self.0.push((name, value));
        }
    }
    let context = tracing::Span::current().context();
    let mut pairs = Pairs(Vec::new());
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut pairs);
    });
    pairs.0
}

/// The span of one HTTP exchange with an agent (or an `llm` agent's model endpoint): the
/// endpoint's origin only, as a path or query may carry what is not ours to export.
pub fn agent_call_span(transport: &'static str, method: &str, url: &str) -> tracing::Span {
    let origin = url::Url::parse(url)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default();
    tracing::info_span!(
        "agent.call",
        otel.name = "agent call",
        otel.kind = "client",
        hive.agent.transport = transport,
        server.origin = origin,
        http.request.method = method,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Records how a client span's exchange ended: the status answered, or `None` when none was
/// (refused, unreachable, timed out). No status or a 5xx marks the span failed.
pub fn record_answer(span: &tracing::Span, status: Option<u16>) {
    if let Some(status) = status {
        span.record("http.response.status_code", status);
    }
    if status.is_none_or(|status| status >= 500) {
        span.record("otel.status_code", "error");
    }
}
