//! Hive's own accept loop, in place of `axum::serve`, which has no timeouts and no limits:
//! - a request head must arrive within `HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS` (from the
//!   connection's start, and for HTTP/1.1 from the end of the previous response);
//! - a connection with no request in flight for `HIVE_HTTP_IDLE_TIMEOUT_SECONDS` is closed (an
//!   HTTP/1.1 keep-alive connection as soon as either timeout runs out, the shorter one);
//! - one address holds at most `HIVE_HTTP_MAX_CONNECTIONS_PER_IP` connections and all of them
//!   together `HIVE_HTTP_MAX_CONNECTIONS`: a connection over a cap replaces the oldest idle one,
//!   or is closed unread when every one is busy (one log line per interval says so);
//! - HTTP/2 connections carry at most `HIVE_HTTP_MAX_STREAMS_PER_CONNECTION` streams at once;
//! - hyper's own refusals of unreadable requests get the API's error shape ([`refusals`]);
//! - each listener counts its connections under its own `listener` metric label.

mod refusals;
mod registry;

pub(crate) use registry::Listener;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hive_core::kernel::config::ConnectionLimits;
use hive_core::kernel::log_gate::LogGate;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use registry::{Admission, InFlight, Registry};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// A request head larger than this (request line and headers) is refused with 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// At most this many header lines in one request head.
const MAX_HEADERS: usize = 100;
/// The pause after a failed accept, so a failure that repeats does not spin.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// A failure that is not one of the transient kinds, this many times in a row, stops serving.
const ACCEPT_FAILURES_TO_GIVE_UP: u32 = 5;

/// Serves `app` on `listener` until `shutdown` fires, then lets open requests finish for up to
/// `grace` and closes what is left. Accepting goes on through transient failures (out of file
/// descriptors, a connection reset before it was accepted); any other failure that repeats
/// stops serving the same way and is returned.
pub(crate) async fn serve(
    listener: TcpListener,
    name: Listener,
    app: Router,
    limits: ConnectionLimits,
    uncapped: Vec<IpNet>,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    let server = Arc::new(Server::new(name, limits, uncapped));
    let connections = TaskTracker::new();
    // Open connections drain on a shutdown and on a listener that failed for good.
    let stop = shutdown.child_token();
    let hard_stop = CancellationToken::new();
    let mut failures = AcceptFailures::default();
    let outcome = loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break Ok(()),
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                failures.succeeded();
                accepted
            }
            Err(error) => {
                if failures.give_up(&error) {
                    tracing::error!(
                        listener = name.as_str(),
                        error = %error,
                        "accepting connections keeps failing; this listener stops"
                    );
                    break Err(error);
                }
                if let Some(held_back) = LOG.admit("accept", Instant::now()) {
                    tracing::error!(
                        listener = name.as_str(),
                        error = %error,
                        failed_since_last_line = held_back,
                        "accepting a connection failed"
                    );
                }
                tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
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
        let stop = stop.clone();
        let hard_stop = hard_stop.clone();
        connections.spawn(async move {
            server
                .connection(stream, peer, app, admission, stop, hard_stop)
                .await;
        });
    };
    // New connections are refused from now on; open ones finish their requests.
    drop(listener);
    stop.cancel();
    tracing::info!(
        listener = name.as_str(),
        grace_seconds = grace.as_secs(),
        "shutting down: draining in-flight requests"
    );
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name.as_str(),
            "grace period over; closing the connections still open"
        );
        hard_stop.cancel();
        connections.wait().await;
    }
    outcome
}

/// Accept failures and refusals repeat on every connection of a flood: one line per 10 s each.
static LOG: LazyLock<LogGate> = LazyLock::new(|| LogGate::new(Duration::from_secs(10)));

/// Counts the accept failures that are not transient, in a row.
#[derive(Debug, Default)]
struct AcceptFailures {
    in_a_row: u32,
}

impl AcceptFailures {
    fn succeeded(&mut self) {
        self.in_a_row = 0;
    }

    /// Whether `error` ends serving: a failure that is not transient, repeated.
    fn give_up(&mut self, error: &io::Error) -> bool {
        if is_transient(error) {
            return false;
        }
        self.in_a_row += 1;
        self.in_a_row >= ACCEPT_FAILURES_TO_GIVE_UP
    }
}

/// Failures of one accept, or of the process's momentary resources, that the next accept may
/// not meet: out of file descriptors or memory, a connection reset or aborted before it was
/// accepted, and the network errors Linux passes on from a pending connection (accept(2)).
fn is_transient(error: &io::Error) -> bool {
    use io::ErrorKind as Kind;
    /// The same numbers on Linux, the BSDs and macOS.
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    /// Linux's numbers for the rest.
    #[cfg(target_os = "linux")]
    const LINUX_TRANSIENT: [i32; 6] = [
        64,  // ENONET
        71,  // EPROTO
        92,  // ENOPROTOOPT
        95,  // EOPNOTSUPP
        105, // ENOBUFS
        112, // EHOSTDOWN
    ];
    #[cfg(not(target_os = "linux"))]
    const LINUX_TRANSIENT: [i32; 0] = [];
    matches!(
        error.kind(),
        Kind::ConnectionAborted
            | Kind::ConnectionReset
            | Kind::Interrupted
            | Kind::WouldBlock
            | Kind::TimedOut
            | Kind::OutOfMemory
            | Kind::PermissionDenied
            | Kind::HostUnreachable
            | Kind::NetworkUnreachable
            | Kind::NetworkDown
    ) || error
        .raw_os_error()
        .is_some_and(|code| code == ENFILE || code == EMFILE || LINUX_TRANSIENT.contains(&code))
}

/// A response body that counts its request as in flight until it is sent in full or dropped.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

struct Server {
    registry: Arc<Registry>,
    builder: auto::Builder<TokioExecutor>,
}

impl Server {
    fn new(name: Listener, limits: ConnectionLimits, uncapped: Vec<IpNet>) -> Self {
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
            registry: Arc::new(Registry::new(name, limits, uncapped)),
            builder,
        }
    }

    fn refused(&self, refusal: registry::Refusal, peer: SocketAddr) {
        if let Some(held_back) = LOG.admit(refusal.as_str(), Instant::now()) {
            let limits = self.registry.limits();
            let (cap, limit) = match refusal {
                registry::Refusal::PerAddress => (
                    "HIVE_HTTP_MAX_CONNECTIONS_PER_IP",
                    limits.max_connections_per_ip,
                ),
                registry::Refusal::Total => ("HIVE_HTTP_MAX_CONNECTIONS", limits.max_connections),
            };
            tracing::warn!(
                listener = self.registry.listener().as_str(),
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
        stop: CancellationToken,
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
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        });
        let io = TokioIo::new(refusals::ShapedRefusals::new(stream));
        let connection = self
            .builder
            .serve_connection(io, TowerToHyperService::new(service));
        tokio::pin!(connection);
        let limits = self.registry.limits();
        let mut in_flight = activity.watch();
        let mut served = false;
        let mut draining = false;
        loop {
            let idle = *in_flight.borrow_and_update() == 0;
            // Before the first request the head timeout applies; after it, the idle timeout
            // (for HTTP/1.1, hyper's head timeout runs again from each answer's end too).
            let limit = if served {
                limits.idle_timeout
            } else {
                limits.header_read_timeout
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
                () = stop.cancelled(), if !draining => {
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
                () = hard_stop.cancelled() => break,
            }
        }
        drop(admission);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    #[test]
    fn transient_accept_failures_never_stop_serving_and_others_do_when_repeated() {
        let mut failures = AcceptFailures::default();
        for transient in [
            io::Error::from_raw_os_error(24), // EMFILE
            io::Error::from_raw_os_error(23), // ENFILE
            io::ErrorKind::ConnectionAborted.into(),
            io::ErrorKind::ConnectionReset.into(),
        ] {
            for _ in 0..100 {
                assert!(!failures.give_up(&transient), "{transient}");
            }
        }
        let lasting = || io::Error::from(io::ErrorKind::InvalidInput);
        for _ in 1..ACCEPT_FAILURES_TO_GIVE_UP {
            assert!(!failures.give_up(&lasting()));
        }
        failures.succeeded();
        for _ in 1..ACCEPT_FAILURES_TO_GIVE_UP {
            assert!(
                !failures.give_up(&lasting()),
                "a success started the count anew"
            );
        }
        assert!(failures.give_up(&lasting()));
    }

    #[tokio::test]
    async fn a_listener_that_keeps_failing_ends_serving_with_its_error() {
        let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listening.set_nonblocking(true).unwrap();
        let same_socket = listening.try_clone().unwrap();
        let served = tokio::spawn(serve(
            TcpListener::from_std(listening).unwrap(),
            Listener::Api,
            Router::new(),
            ConnectionLimits::default(),
            Vec::new(),
            CancellationToken::new(),
            Duration::ZERO,
        ));
        // A listening socket shut down fails every accept from then on (EINVAL on Linux).
        std::net::TcpStream::from(OwnedFd::from(same_socket))
            .shutdown(std::net::Shutdown::Both)
            .unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(20), served)
            .await
            .expect("serving ends")
            .unwrap();
        assert_eq!(
            outcome.map_err(|error| error.kind()),
            Err(io::ErrorKind::InvalidInput)
        );
    }
}
