//! Traces over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: spans are batched
//! on the SDK's own thread into a bounded queue (full: new spans are dropped) and posted by this
//! process's async HTTP client, so a slow or absent collector never holds up a request. The
//! W3C trace-context propagator is installed alongside (`hive_core::kernel::trace_context`).

use hive_core::kernel::config::TraceConfig;
use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one export may take (connecting included).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Spans waiting for export at most; past it new spans are dropped, never waited for.
const MAX_QUEUED_SPANS: usize = 4096;
/// How long a graceful shutdown waits for the last batch.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The exporting tracer provider of this process.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Builds the exporter and installs the W3C propagator. Called inside the async runtime:
    /// exports run on it.
    pub fn start(config: &TraceConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .connect_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the trace exporter's HTTP client: {e}"))?;
        let headers: HashMap<String, String> = config
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.expose_secret().to_owned()))
            .collect();
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| format!("traces need the async runtime: {e}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OnRuntime {
                client,
                runtime,
                failing: AtomicBool::new(false),
            })
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.endpoint.as_str())
            .with_headers(headers)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the trace exporter: {e}"))?;
        let batches = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(MAX_QUEUED_SPANS)
                    .build(),
            )
            .build();
        let resource = Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Ok(Self { provider })
    }

    /// The tracer the logging layer records spans with.
    pub fn tracer(&self) -> SdkTracer {
        use opentelemetry::trace::TracerProvider;
        self.provider.tracer("hive")
    }

    /// Exports what is still queued and stops (graceful shutdown). Blocks while the last batch
    /// goes out, so it runs off the executor, whose tasks send that batch.
    pub async fn flush_and_stop(self) {
        let provider = self.provider;
        let stopped =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .await;
        match stopped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "traces: the last spans were not exported"),
            Err(error) => tracing::warn!(%error, "traces: the exporter did not stop"),
        }
    }
}

/// Sends the exporter's requests on the async runtime: the SDK's batch thread has none, and
/// awaits the spawned task from there.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// Whether the last export failed: a failure is logged when it starts, not every batch.
    failing: AtomicBool,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move { HttpClient::send_bytes(&client, request).await })
            .await
            .map_err(|e| -> HttpError { Box::new(e) })
            .and_then(|answer| answer);
        let ok = matches!(&sent, Ok(response) if response.status().is_success());
        let was_failing = self.failing.swap(!ok, Ordering::Relaxed);
        match (&sent, was_failing, ok) {
            (_, true, true) => tracing::info!("traces: the collector accepts spans again"),
            (Ok(response), false, false) => tracing::warn!(
                status = response.status().as_u16(),
                "traces: the collector refused a batch; spans are dropped until it accepts them"
            ),
            // The error names the endpoint, never the headers.
            (Err(error), false, false) => tracing::warn!(
                %error,
                "traces: the collector cannot be reached; spans are dropped until it can"
            ),
            _ => {}
        }
        sent
    }
}
