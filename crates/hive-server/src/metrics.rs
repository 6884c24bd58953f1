//! Prometheus metrics on a listener of their own (`HIVE_METRICS_LISTEN`), never on the public
//! one: keep it on a private interface, reachable only by the scraper.

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Installs the process-wide metrics recorder (once per process; the `metrics` crate's design).
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    zero_failure_counters();
    Ok(handle)
}

/// The counters of failures start at zero, every label they take: a series that first appears
/// at 1 shows no `increase()`, so an alert on the first failure would never fire.
fn zero_failure_counters() {
    metrics::counter!("hive_rate_limiter_shared_failures_total").increment(0);
    metrics::counter!("hive_claims_local_fallback_total").increment(0);
    for writer in ["audit", "tasks"] {
        metrics::counter!("hive_group_commit_failed_batches_total", "writer" => writer)
            .increment(0);
        metrics::counter!("hive_group_commit_queue_full_total", "writer" => writer).increment(0);
    }
    for reason in ["bad_signature", "malformed"] {
        metrics::counter!("hive_bus_events_dropped_total", "reason" => reason).increment(0);
    }
    for listener in ["api", "metrics"] {
        for cap in ["per_address", "total"] {
            metrics::counter!("hive_http_connections_refused_total", "listener" => listener, "cap" => cap)
                .increment(0);
        }
    }
}

/// Serves `GET /metrics` in the Prometheus text format until `shutdown`, or until the listener
/// fails for good (its error).
pub async fn serve_metrics(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    // The default connection limits (the HIVE_HTTP_* variables tune the main listener): a
    // private address is no reason to let a stalled client hold a connection for ever.
    crate::connections::serve(
        listener,
        crate::connections::Listener::Metrics,
        app,
        hive_core::kernel::config::ConnectionLimits::default(),
        Vec::new(),
        shutdown,
        std::time::Duration::ZERO,
    )
    .await
}
