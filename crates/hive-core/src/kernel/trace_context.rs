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
