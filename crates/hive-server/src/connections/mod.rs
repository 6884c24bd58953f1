//! Hive's own accept loop, in place of `axum::serve`, which has no timeouts and no limits:
//! - a request head must arrive within `HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS` (from the
//!   connection's start, and for HTTP/1.1 from the end of the previous response);
//! - a connection with no request in flight for `HIVE_HTTP_IDLE_TIMEOUT_SECONDS` is closed;
//! - one address holds at most `HIVE_HTTP_MAX_CONNECTIONS_PER_IP` connections and all of them
//!   together `HIVE_HTTP_MAX_CONNECTIONS`: a connection over a cap replaces the oldest idle one,
//!   or is closed unread when every one is busy (one log line per interval says so);
//! - HTTP/2 connections carry at most `HIVE_HTTP_MAX_STREAMS_PER_CONNECTION` streams at once;
//! - hyper's own refusals of unreadable requests get the API's error shape ([`refusals`]).

mod refusals;
mod registry;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hive_core::kernel::config::ConnectionLimits;
use hive_core::kernel::log_gate::LogGate;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use registry::{Admission, Registry};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// A request head larger than this (request line and headers) is refused with 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// At most this many header lines in one request head.
const MAX_HEADERS: usize = 100;

/// Serves `app` on `listener` until `shutdown` fires, then lets open requests finish for up to
/// `grace` and closes what is left.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ConnectionLimits,
    uncapped: Vec<IpNet>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let server = Arc::new(Server::new(limits, uncapped));
    let connections = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: go on after a
                // pause instead of spinning on the same error.
                if LOG.admit("accept", Instant::now()).is_some() {
                    tracing::error!(error = %error, "accepting a connection failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admission = match server.registry.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(refusal) => {
                server.refused(refusal, peer);
                drop(stream);
                continue;
            }
        };
        let server = Arc::clone(&server);
        let app = app.clone();
        let shutdown = shutdown.clone();
        let hard_stop = hard_stop.clone();
        connections.spawn(async move {
            server
                .connection(stream, peer, app, admission, shutdown, hard_stop)
                .await;
        });
    }
    // New connections are refused from now on; open ones finish their requests.
    drop(listener);
    tracing::info!(
        grace_seconds = grace.as_secs(),
        "shutting down: draining in-flight requests"
    );
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing the connections still open");
        hard_stop.cancel();
        connections.wait().await;
    }
}

/// Accept failures and refusals repeat on every connection of a flood: one line per 10 s each.
static LOG: LazyLock<LogGate> = LazyLock::new(|| LogGate::new(Duration::from_secs(10)));

struct Server {
    registry: Arc<Registry>,
    builder: auto::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_per_address: usize,
    max_total: usize,
}

impl Server {
    fn new(limits: &ConnectionLimits, uncapped: Vec<IpNet>) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_streams_per_connection)
            .max_header_list_size(u32::try_from(MAX_HEAD_BYTES).unwrap_or(u32::MAX))
            // A client that opens and resets streams in a loop is cut off (the "rapid reset"
            // attack).
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(256));
        Self {
            registry: Arc::new(Registry::new(
                limits.max_connections,
                limits.max_connections_per_ip,
                uncapped,
            )),
            builder,
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            max_per_address: limits.max_connections_per_ip,
            max_total: limits.max_connections,
        }
    }

    fn refused(&self, refusal: registry::Refusal, peer: SocketAddr) {
        metrics::counter!("hive_http_connections_refused_total", "cap" => refusal.as_str())
            .increment(1);
        if let Some(held_back) = LOG.admit(refusal.as_str(), Instant::now()) {
            let (cap, limit) = match refusal {
                registry::Refusal::PerAddress => {
                    ("HIVE_HTTP_MAX_CONNECTIONS_PER_IP", self.max_per_address)
                }
                registry::Refusal::Total => ("HIVE_HTTP_MAX_CONNECTIONS", self.max_total),
            };
            tracing::warn!(
                peer = %peer.ip(),
                cap,
                limit,
                refused_since_last_line = held_back,
                "connection refused: the connection cap is reached and every connection is busy"
            );
        }
    }

    async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        app: Router,
        admission: Admission,
        shutdown: CancellationToken,
        hard_stop: CancellationToken,
    ) {
        let activity = Arc::clone(&admission.activity);
        let per_request = Arc::clone(&activity);
        let service = tower::service_fn(move |mut request: http::Request<Incoming>| {
            let in_flight = per_request.begin();
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app
                    .oneshot(request.map(Body::new))
                    .await
                    .unwrap_or_else(|never| match never {});
                // The request counts as in flight until its body (a stream too) is done.
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &in_flight;
                        frame
                    }))
                }))
            }
        });
        let io = TokioIo::new(refusals::ShapedRefusals::new(stream));
        let connection = self
            .builder
            .serve_connection(io, TowerToHyperService::new(service));
        tokio::pin!(connection);
        let mut in_flight = activity.watch();
        let mut served = false;
        let mut draining = false;
        loop {
            let idle = *in_flight.borrow_and_update() == 0;
            let limit = if served {
                self.idle_timeout
            } else {
                self.header_read_timeout
            };
            tokio::select! {
                _ = connection.as_mut() => break,
                changed = in_flight.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    served = true;
                }
                () = tokio::time::sleep(limit), if idle => break,
                () = activity.evicted.cancelled(), if !draining => {
                    if activity.is_idle() {
                        break;
                    }
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
                () = shutdown.cancelled(), if !draining => {
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
                () = hard_stop.cancelled() => break,
            }
        }
        drop(admission);
    }
}
