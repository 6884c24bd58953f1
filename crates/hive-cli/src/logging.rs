use hive_core::kernel::config::LogConfig;
use opentelemetry_sdk::trace::SdkTracer;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Logs on stdout, filtered by `LOG_LEVEL`: human-readable on a terminal, JSON lines when
/// stdout is not one (`LOG_FORMAT=auto`, the default) or when `LOG_FORMAT` says so. Spans also
/// go to `tracer` when traces are exported.
pub fn init(config: &LogConfig, tracer: Option<SdkTracer>) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.level)
        .map_err(|e| format!("LOG_LEVEL: not a valid filter ({e})"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = if config.format.is_json(std::io::stdout().is_terminal()) {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .finish()
            .with(trace_layer(tracer))
            .try_init()
    } else {
        builder.finish().with(trace_layer(tracer)).try_init()
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}

/// The OpenTelemetry bridge: every span `LOG_LEVEL` lets through becomes an exported span.
fn trace_layer<S>(
    tracer: Option<SdkTracer>,
) -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracer.map(|tracer| tracing_opentelemetry::layer().with_tracer(tracer))
}
