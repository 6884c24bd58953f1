//! The agents' proxy: an HTTP/1.1 forward proxy that a hosted agent's sandbox is given as its
//! only way out (`HTTP_PROXY` / `HTTPS_PROXY`). Every request is decided by the same rules as
//! the rest of Hive's egress, with the agent's own hosts merged into the allowlist:
//!
//! - `CONNECT host:port` is decided as `https://host:port/`; the proxy connects to one of the
//!   addresses the check returned (the name is never resolved again), answers `200` and splices
//!   bytes both ways.
//! - An absolute-form `http://` request is decided as its URL and forwarded in origin form to a
//!   checked address, hop-by-hop headers and `Proxy-Authorization` dropped, the answer streamed
//!   back.
//! - A refusal is `403` naming the reason and the origin, and nothing is connected.
//!
//! The owner reads counters at any time through [`ProxyStats`] and hears of refusals and
//! finished transfers through [`ProxyEvents`]. Neither ever sees a path, a query, a header value
//! or a body: only `scheme://host:port`.

use crate::{Allowlist, Decision, EgressClient, EgressError, RefusalReason, parse_url};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The proxy's caps. [`Default`] gives the `DEFAULT_*` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyLimits {
    /// Client connections served at once, open tunnels included. One more is answered `503`
    /// and closed. `0` refuses every connection.
    pub max_connections: usize,
    /// Largest request head (request line and headers) read from the agent; a larger one is
    /// answered `431`. hyper cannot go below 8 KiB, so smaller values are raised to that.
    pub max_head_bytes: usize,
    /// Time an agent has to send a whole request head, the first or the next one on a
    /// kept-alive connection; a silent connection is closed and frees its slot.
    pub head_timeout: Duration,
    /// A tunnel, or a forwarded exchange, with no byte in either direction for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// Time to open the TCP connection to the target, all checked addresses tried within it.
    pub connect_timeout: Duration,
}

impl ProxyLimits {
    /// 64 connections: an agent's HTTP library keeps a handful per host, so this is ample for
    /// one agent and still bounds what a runaway one can hold open.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
    /// 16 KiB of request head: twice hyper's floor, above what ordinary clients send (cookies
    /// and bearer tokens included), far below what would let one connection hold much memory.
    pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
    /// 30 s to send a request head, so a connection that says nothing does not keep a slot.
    pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);
    /// 5 minutes without a byte either way closes a tunnel: long enough for a slow LLM stream
    /// or a long poll, short enough that forgotten connections give their slot back.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    /// 10 s to connect, the figure of `SECURITY-RULES.md` for every outbound connection.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for ProxyLimits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_head_bytes: Self::DEFAULT_MAX_HEAD_BYTES,
            head_timeout: Self::DEFAULT_HEAD_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// What the proxy tells its owner (hive-core audits refusals and adds bytes to an agent's
/// stats). Called on the proxy's tasks: keep it quick and do not block. `origin` is always
/// `scheme://host:port` (a CONNECT is `https://host:port`); nothing else of a request is told.
pub trait ProxyEvents: Send + Sync {
    /// The egress rules refused a request; nothing was connected.
    fn refused(&self, origin: &str, reason: RefusalReason);

    /// A request the rules allowed could not be carried. `kind` is `resolve` (the name did not
    /// resolve), `connect`, `connect_timeout` or `upstream` (the target broke the exchange).
    fn failed(&self, origin: &str, kind: &'static str) {
        let _ = (origin, kind);
    }

    /// A tunnel or a forwarded exchange ended: bytes written to the target (`up`) and read from
    /// it (`down`), HTTP heads included for forwarded requests.
    fn transferred(&self, origin: &str, bytes_up: u64, bytes_down: u64) {
        let _ = (origin, bytes_up, bytes_down);
    }
}

/// Counters of one proxy, updated as things happen (bytes as they flow, not when a tunnel
/// ends). Shared: read them at any time with [`snapshot`](Self::snapshot).
#[derive(Debug, Default)]
pub struct ProxyStats {
    requests: AtomicU64,
    refusals: AtomicU64,
    failures: AtomicU64,
    bad_requests: AtomicU64,
    busy: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// A copy of [`ProxyStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    /// Requests read from agents (CONNECT and forwarded ones, refused or not).
    pub requests: u64,
    /// Requests the egress rules refused (`403`).
    pub refusals: u64,
    /// Allowed requests that failed: lookup, connect, or the target (`502`, `504`).
    pub failures: u64,
    /// Requests that are not proxy requests (`400`).
    pub bad_requests: u64,
    /// Connections turned away at the connection cap (`503`).
    pub busy: u64,
    /// Bytes written to targets.
    pub bytes_up: u64,
    /// Bytes read from targets.
    pub bytes_down: u64,
}

impl ProxyStats {
    pub fn snapshot(&self) -> ProxyCounts {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ProxyCounts {
            requests: read(&self.requests),
            refusals: read(&self.refusals),
            failures: read(&self.failures),
            bad_requests: read(&self.bad_requests),
            busy: read(&self.busy),
            bytes_up: read(&self.bytes_up),
            bytes_down: read(&self.bytes_down),
        }
    }

    fn count(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Wait after a failed `accept` (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Headers that belong to one hop and are never passed on, in either direction, besides those
/// a `Connection` header names. `Proxy-Authorization` is the agent's credential for this proxy
/// (if any), never the target's.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// One agent's proxy: the egress client (operator's and admin's allowlist, resolver, Hive's own
/// addresses), the agent's own hosts, the caps, and where to report. Cheap to clone; clones
/// share the connection cap and the counters.
#[derive(Clone)]
pub struct EgressProxy {
    client: EgressClient,
    agent_hosts: Arc<Allowlist>,
    limits: ProxyLimits,
    slots: Arc<Semaphore>,
    stats: Arc<ProxyStats>,
    events: Option<Arc<dyn ProxyEvents>>,
    protected: Arc<[SocketAddr]>,
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressProxy")
            .field("agent_hosts", &self.agent_hosts.to_string())
            .field("limits", &self.limits)
            .field("protected", &self.protected)
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl EgressProxy {
    /// A proxy deciding with `client`'s allowlist of the moment merged with `agent_hosts` (the
    /// hosts an agent's manifest asks for), under the default limits and reporting nowhere but
    /// its [`stats`](Self::stats).
    pub fn new(client: EgressClient, agent_hosts: Allowlist) -> Self {
        let limits = ProxyLimits::default();
        Self {
            client,
            agent_hosts: Arc::new(agent_hosts),
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            stats: Arc::default(),
            events: None,
            protected: Arc::new([]),
        }
    }

    /// Addresses no request through this proxy reaches, whatever either allowlist says:
    /// Hive's own services on this machine (the database, Redis, the bus), so that an agent
    /// whose hosts name `127.0.0.1` still cannot reach them. Refused as `self_connection`. An
    /// unspecified address (`0.0.0.0:6379`, `[::]:6379`) stands for every loopback address on
    /// that port, as for Hive's own listen addresses.
    pub fn with_protected_addresses(
        mut self,
        addresses: impl IntoIterator<Item = SocketAddr>,
    ) -> Self {
        self.protected = addresses.into_iter().collect();
        self
    }

    /// Replaces the limits. Call before serving: clones made earlier keep the old cap.
    pub fn with_limits(mut self, limits: ProxyLimits) -> Self {
        self.slots = Arc::new(Semaphore::new(
            limits.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        self.limits = limits;
        self
    }

    /// Reports refusals, failures and finished transfers to `events`.
    pub fn with_events(mut self, events: Arc<dyn ProxyEvents>) -> Self {
        self.events = Some(events);
        self
    }

    pub fn limits(&self) -> &ProxyLimits {
        &self.limits
    }

    pub fn agent_hosts(&self) -> &Allowlist {
        &self.agent_hosts
    }

    /// The live counters, shared with the proxy.
    pub fn stats(&self) -> Arc<ProxyStats> {
        self.stats.clone()
    }

    /// Accepts connections on `listener` (the socket bind-mounted into the sandbox) and serves
    /// each one until this future is dropped. Dropping it closes every connection it accepted,
    /// open tunnels included.
    pub async fn serve(&self, listener: UnixListener) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let proxy = self.clone();
                        connections.spawn(async move { proxy.serve_connection(stream).await });
                    }
                    Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }

    /// Serves one client connection, of any transport: its requests, and the tunnel if one of
    /// them is a CONNECT that was allowed. Returns when the client is done (or gone). Past the
    /// connection cap the connection is answered `503` and closed.
    pub async fn serve_connection<IO>(&self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            ProxyStats::count(&self.stats.busy, 1);
            self.answer_busy(io).await;
            return;
        };
        let pending: Arc<Mutex<Option<Tunnel>>> = Arc::default();
        let proxy = self.clone();
        let slot = pending.clone();
        let service = service_fn(move |request| {
            let (proxy, slot) = (proxy.clone(), slot.clone());
            async move { Ok::<_, Infallible>(proxy.handle(request, &slot).await) }
        });
        // Ends when the client is done, or when an allowed CONNECT has been answered and the
        // connection handed over for the tunnel.
        let _ = self
            .http1()
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
            .await;
        let tunnel = pending.lock().ok().and_then(|mut tunnel| tunnel.take());
        if let Some(tunnel) = tunnel {
            self.run_tunnel(tunnel).await;
        }
    }

    fn http1(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.head_timeout)
            .max_buf_size(self.limits.max_head_bytes.max(8 * 1024));
        builder
    }

    async fn answer_busy<IO>(&self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(|_request| async {
            Ok::<_, Infallible>(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections through this proxy\n".into(),
            ))
        });
        let mut builder = self.http1();
        builder.keep_alive(false);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let _ = tokio::time::timeout(self.limits.head_timeout, connection).await;
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
        pending: &Mutex<Option<Tunnel>>,
    ) -> Response<ProxyBody> {
        ProxyStats::count(&self.stats.requests, 1);
        let result = if request.method() == Method::CONNECT {
            self.open_tunnel(request, pending).await
        } else {
            self.forward(request).await
        };
        result.unwrap_or_else(|response| response)
    }

    /// Decides `host:port` as `https://host:port/`, connects to a checked address and leaves
    /// the tunnel to be run once the `200` is out.
    async fn open_tunnel(
        &self,
        request: Request<Incoming>,
        pending: &Mutex<Option<Tunnel>>,
    ) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
        let uri = request.uri();
        let authority = match uri.authority() {
            Some(authority) if uri.scheme().is_none() && authority.port_u16().is_some() => {
                authority.as_str().to_owned()
            }
            _ => return Err(self.bad_request("CONNECT needs host:port\n")),
        };
        let (origin, addresses) = self.decide(&format!("https://{authority}/")).await?;
        let upstream = self.dial(&origin, &addresses).await?;
        let tunnel = Tunnel {
            upgrade: hyper::upgrade::on(request),
            upstream,
            origin,
        };
        match pending.lock() {
            Ok(mut slot) => *slot = Some(tunnel),
            Err(_) => return Err(text(StatusCode::INTERNAL_SERVER_ERROR, String::new())),
        }
        Ok(Response::new(Either::Right(Full::new(Bytes::new()))))
    }

    async fn run_tunnel(&self, tunnel: Tunnel) {
        let Tunnel {
            upgrade,
            mut upstream,
            origin,
        } = tunnel;
        let meter = upstream.meter.clone();
        if let Ok(upgraded) = upgrade.await {
            let mut agent = TokioIo::new(upgraded);
            let splice = tokio::io::copy_bidirectional(&mut agent, &mut upstream);
            let _ = within_idle(&meter, self.limits.idle_timeout, splice).await;
        }
        drop(upstream);
        self.report_transfer(&origin, &meter);
    }

    /// Forwards an absolute-form `http://` request in origin form to a checked address.
    async fn forward(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
        match request.uri().scheme_str() {
            Some("http") if request.uri().authority().is_some() => {}
            Some("https") => {
                return Err(self.bad_request("use CONNECT for https URLs\n"));
            }
            Some(_) => return Err(self.bad_request("only http and https URLs are proxied\n")),
            None => {
                return Err(self.bad_request(
                    "this is a proxy: send an absolute URL (http://host/path) or CONNECT\n",
                ));
            }
        }
        let url = request.uri().to_string();
        let (origin, addresses) = self.decide(&url).await?;
        // The same parse the rules decided on: the Host header names what was checked.
        let host = parse_url(&url)
            .ok()
            .and_then(|parsed| {
                let host = parsed.host_str()?.to_owned();
                Some(match parsed.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .and_then(|host| HeaderValue::try_from(host).ok());
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .parse::<Uri>()
            .ok();
        let (Some(host), Some(path)) = (host, path) else {
            return Err(self.bad_request("not a usable URL\n"));
        };

        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.insert(header::HOST, host);
        parts.uri = path;
        parts.version = Version::HTTP_11;

        let upstream = self.dial(&origin, &addresses).await?;
        let meter = upstream.meter.clone();
        let (mut sender, connection) = match hyper::client::conn::http1::handshake::<_, Incoming>(
            TokioIo::new(upstream),
        )
        .await
        {
            Ok(pair) => pair,
            Err(_) => return Err(self.upstream_failed(&origin, &meter)),
        };
        let driver = {
            let (proxy, origin, meter) = (self.clone(), origin.clone(), meter.clone());
            async move {
                let _ = within_idle(&meter, proxy.limits.idle_timeout, connection).await;
                proxy.report_transfer(&origin, &meter);
            }
        };
        tokio::spawn(driver);
        let response = match sender.send_request(Request::from_parts(parts, body)).await {
            Ok(response) => response,
            Err(_) => {
                self.failed(&origin, "upstream");
                return Err(text(
                    StatusCode::BAD_GATEWAY,
                    format!("the target broke the exchange: {origin}\n"),
                ));
            }
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Either::Left(body)))
    }

    /// The egress decision for `url` with the agent's hosts merged in; a refusal or a failure
    /// comes back as the answer to give.
    async fn decide(&self, url: &str) -> Result<(String, Vec<SocketAddr>), Response<ProxyBody>> {
        match self.client.check_for_agent(&self.agent_hosts, url).await {
            Decision::Allowed {
                origin, addresses, ..
            } => {
                if addresses.iter().any(|address| self.is_protected(*address)) {
                    return Err(self.refuse(&origin, RefusalReason::SelfConnection));
                }
                Ok((origin, addresses))
            }
            Decision::Refused(refusal) => Err(self.refuse(&refusal.origin, refusal.reason)),
            Decision::Failed(EgressError::InvalidUrl(_)) => {
                Err(self.bad_request("not a usable URL\n"))
            }
            Decision::Failed(error) => {
                let origin = error.origin().unwrap_or_default().to_owned();
                self.failed(&origin, "resolve");
                Err(text(
                    StatusCode::BAD_GATEWAY,
                    format!("could not resolve {origin}\n"),
                ))
            }
        }
    }

    /// Connects to the checked addresses in turn, within the connect timeout. The addresses
    /// are socket addresses: nothing here resolves a name.
    async fn dial(
        &self,
        origin: &str,
        addresses: &[SocketAddr],
    ) -> Result<Metered<TcpStream>, Response<ProxyBody>> {
        let deadline = Instant::now() + self.limits.connect_timeout;
        for &address in addresses {
            match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(Metered::new(stream, self.stats.clone()));
                }
                Ok(Err(_)) => continue,
                Err(_elapsed) => {
                    self.failed(origin, "connect_timeout");
                    return Err(text(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!("connecting to {origin} timed out\n"),
                    ));
                }
            }
        }
        self.failed(origin, "connect");
        Err(text(
            StatusCode::BAD_GATEWAY,
            format!("could not connect to {origin}\n"),
        ))
    }

    fn refuse(&self, origin: &str, reason: RefusalReason) -> Response<ProxyBody> {
        ProxyStats::count(&self.stats.refusals, 1);
        if let Some(events) = &self.events {
            events.refused(origin, reason);
        }
        text(
            StatusCode::FORBIDDEN,
            format!("refused by Hive's egress rules: {reason} {origin}\n"),
        )
    }

    fn is_protected(&self, address: SocketAddr) -> bool {
        let canonical = |ip: IpAddr| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let target = canonical(address.ip());
        self.protected.iter().any(|protected| {
            let ip = canonical(protected.ip());
            protected.port() == address.port()
                && (ip == target
                    || (ip.is_unspecified() && (target.is_loopback() || target.is_unspecified())))
        })
    }

    fn bad_request(&self, why: &str) -> Response<ProxyBody> {
        ProxyStats::count(&self.stats.bad_requests, 1);
        text(StatusCode::BAD_REQUEST, why.to_owned())
    }

    fn failed(&self, origin: &str, kind: &'static str) {
        ProxyStats::count(&self.stats.failures, 1);
        if let Some(events) = &self.events {
            events.failed(origin, kind);
        }
    }

    fn upstream_failed(&self, origin: &str, meter: &Meter) -> Response<ProxyBody> {
        self.failed(origin, "upstream");
        self.report_transfer(origin, meter);
        text(
            StatusCode::BAD_GATEWAY,
            format!("the target broke the exchange: {origin}\n"),
        )
    }

    fn report_transfer(&self, origin: &str, meter: &Meter) {
        if let Some(events) = &self.events {
            events.transferred(
                origin,
                meter.up.load(Ordering::Relaxed),
                meter.down.load(Ordering::Relaxed),
            );
        }
    }
}

/// An allowed CONNECT: the target is connected, the agent's side comes with the upgrade.
struct Tunnel {
    upgrade: hyper::upgrade::OnUpgrade,
    upstream: Metered<TcpStream>,
    origin: String,
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Runs `work` until it ends or the meter has seen no byte for `idle`; `None` when idle.
async fn within_idle<F: Future>(meter: &Meter, idle: Duration, work: F) -> Option<F::Output> {
    tokio::pin!(work);
    loop {
        let deadline = meter.last_active() + idle;
        tokio::select! {
            output = &mut work => return Some(output),
            () = tokio::time::sleep_until(deadline) => {
                if meter.last_active() + idle <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// Bytes through one connection to a target, and when the last one passed.
struct Meter {
    up: AtomicU64,
    down: AtomicU64,
    started: Instant,
    /// Milliseconds after `started`.
    last_active: AtomicU64,
    stats: Arc<ProxyStats>,
}

impl Meter {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(now, Ordering::Relaxed);
    }

    fn last_active(&self) -> Instant {
        self.started + Duration::from_millis(self.last_active.load(Ordering::Relaxed))
    }
}

/// A connection to a target that counts what passes, into its own meter and the proxy's stats.
struct Metered<T> {
    inner: T,
    meter: Arc<Meter>,
}

impl<T> Metered<T> {
    fn new(inner: T, stats: Arc<ProxyStats>) -> Self {
        Self {
            inner,
            meter: Arc::new(Meter {
                up: AtomicU64::new(0),
                down: AtomicU64::new(0),
                started: Instant::now(),
                last_active: AtomicU64::new(0),
                stats,
            }),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let read = (buf.filled().len().saturating_sub(before)) as u64;
            if read > 0 {
                this.meter.down.fetch_add(read, Ordering::Relaxed);
                ProxyStats::count(&this.meter.stats.bytes_down, read);
                this.meter.touch();
            }
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = poll
            && written > 0
        {
            let written = written as u64;
            this.meter.up.fetch_add(written, Ordering::Relaxed);
            ProxyStats::count(&this.meter.stats.bytes_up, written);
            this.meter.touch();
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic YWdlbnQ6cHc="),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-secret-hop", "1"),
            ("authorization", "Bearer kept"),
            ("accept", "*/*"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "authorization"]);
    }

    #[test]
    fn defaults_are_the_documented_numbers() {
        let limits = ProxyLimits::default();
        assert_eq!(limits.max_connections, 64);
        assert_eq!(limits.max_head_bytes, 16 * 1024);
        assert_eq!(limits.head_timeout, Duration::from_secs(30));
        assert_eq!(limits.idle_timeout, Duration::from_secs(300));
        assert_eq!(limits.connect_timeout, Duration::from_secs(10));
    }
}
