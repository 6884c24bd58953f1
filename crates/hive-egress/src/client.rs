//! The client: one hop at a time, each hop checked in full, resolved once, and connected only
//! to the addresses that were checked.
//!
//! Per hop a fresh `reqwest::Client` is built whose resolver answers exactly the checked
//! addresses for exactly that host and fails every other name. That makes the pin structural:
//! there is no connection pool shared between hops or requests (a pooled connection opened
//! under yesterday's allowlist is never reused), no proxy from the environment, no automatic
//! redirect and no retry. TLS is rustls with certificate verification on.

use crate::allowlist::Allowlist;
use crate::policy::{Destination, EgressConfig, EgressPolicy, Target, origin_of};
use crate::resolve::{HickoryResolver, Resolve};
use crate::{EgressError, Refusal, RefusalReason};
use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// Caps chosen by each call site: an agent-card import and a long LLM completion need
/// different ones, so there is no default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// From the first lookup to the last body byte, redirects included.
    pub total_timeout: Duration,
    /// Bytes of response body; one more and the read is refused as `too_large`.
    pub max_body_bytes: u64,
}

impl CallLimits {
    pub const fn new(total_timeout: Duration, max_body_bytes: u64) -> Self {
        Self {
            total_timeout,
            max_body_bytes,
        }
    }
}

/// An outbound request as the caller describes it.
#[derive(Debug, Clone)]
pub struct EgressRequest {
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Option<Bytes>,
    follow_redirects: bool,
}

impl EgressRequest {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: None,
            follow_redirects: true,
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::POST, url)
    }

    /// Adds a header. A `Host` header is ignored: the host is the URL's, which is what was
    /// checked.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Answers a redirect as it is, even for GET: for endpoints that must answer themselves
    /// (an identity provider's discovery document and keys).
    pub fn without_redirects(mut self) -> Self {
        self.follow_redirects = false;
        self
    }
}

/// Headers that carry no credential and may follow a redirect to another origin. Everything
/// else (`Authorization`, `Cookie`, `X-Api-Key`, a provider's own key header…) is dropped at
/// the first change of origin and stays dropped, even if the chain comes back.
const KEPT_ACROSS_ORIGINS: [HeaderName; 3] =
    [header::ACCEPT, header::ACCEPT_LANGUAGE, header::USER_AGENT];

/// The answer to "would this URL be fetched?", without connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every rule passed; these are the addresses a request would connect to.
    Allowed {
        origin: String,
        addresses: Vec<SocketAddr>,
        allowlisted: bool,
    },
    /// A rule refused it.
    Refused(Refusal),
    /// It could not be judged allowed (malformed URL, name that does not resolve); nothing
    /// would be sent. Never [`EgressError::Refused`].
    Failed(EgressError),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }

    pub fn reason(&self) -> Option<RefusalReason> {
        match self {
            Self::Refused(refusal) => Some(refusal.reason),
            _ => None,
        }
    }
}

impl From<Result<(Target, Vec<SocketAddr>), EgressError>> for Decision {
    fn from(result: Result<(Target, Vec<SocketAddr>), EgressError>) -> Self {
        match result {
            Ok((target, addresses)) => Self::Allowed {
                origin: target.origin,
                addresses,
                allowlisted: target.allowlisted,
            },
            Err(EgressError::Refused(refusal)) => Self::Refused(refusal),
            Err(other) => Self::Failed(other),
        }
    }
}

/// The SSRF-guarded HTTP client. Cheap to clone; clones share the allowlist.
#[derive(Clone)]
pub struct EgressClient {
    settings: Arc<Settings>,
    allowlist: Arc<ArcSwap<Allowlist>>,
    resolver: Arc<dyn Resolve>,
}

struct Settings {
    max_redirects: u8,
    dns_timeout: Duration,
    connect_timeout: Duration,
    self_addresses: Arc<[SocketAddr]>,
    user_agent: String,
}

impl std::fmt::Debug for EgressClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressClient")
            .field("allowlist", &self.allowlist.load().to_string())
            .field("max_redirects", &self.settings.max_redirects)
            .finish_non_exhaustive()
    }
}

impl EgressClient {
    pub fn new(config: EgressConfig, resolver: Arc<dyn Resolve>) -> Self {
        Self {
            settings: Arc::new(Settings {
                max_redirects: config.max_redirects.get(),
                dns_timeout: config.dns_timeout,
                connect_timeout: config.connect_timeout,
                self_addresses: config.self_addresses.into(),
                user_agent: config.user_agent,
            }),
            allowlist: Arc::new(ArcSwap::from_pointee(config.allowlist)),
            resolver,
        }
    }

    /// With hickory and the system's name servers.
    pub fn with_system_resolver(config: EgressConfig) -> Result<Self, EgressError> {
        let resolver =
            HickoryResolver::from_system(config.dns_timeout).map_err(|e| EgressError::Resolve {
                origin: "system resolver".into(),
                detail: e.0,
            })?;
        Ok(Self::new(config, Arc::new(resolver)))
    }

    /// Replaces the allowlist for every request that starts a hop from now on (the environment's
    /// list merged with the admin's, after an edit). Hops already past their check finish under
    /// the list they were checked with.
    pub fn set_allowlist(&self, allowlist: Allowlist) {
        self.allowlist.store(Arc::new(allowlist));
    }

    pub fn allowlist(&self) -> Arc<Allowlist> {
        self.allowlist.load_full()
    }

    /// The rules as they stand now, for one hop.
    pub fn policy(&self) -> EgressPolicy {
        EgressPolicy::new(
            self.allowlist.load_full(),
            self.settings.self_addresses.clone(),
        )
    }

    /// Decides `url` as a request would (resolving a name, with the DNS timeout) but connects
    /// to nothing. For `hive egress check URL`. Redirects cannot be judged without fetching.
    pub async fn check(&self, url: &str) -> Decision {
        self.decide(&self.policy(), url).await
    }

    /// The decision for a hosted agent's request: closed by default. A host the admins'
    /// allowlist names is judged as [`EgressClient::check`] does (private addresses too, when
    /// listed); one only the agent's own list names may be reached on public addresses only
    /// (its operator's manifest cannot open the inside of the network); any other host is
    /// refused as [`RefusalReason::NotListed`].
    pub async fn check_for_agent(&self, agent_hosts: &Allowlist, url: &str) -> Decision {
        let admins = self.policy();
        let listed_by_admins = match admins.precheck(url) {
            Ok(target) => target.allowlisted,
            // The admins' rules refuse it whatever the agent's list says (scheme, metadata…),
            // unless only the port rule spoke: the agent's list may name the port.
            Err(EgressError::Refused(refusal)) if refusal.reason != RefusalReason::Port => {
                return Decision::Refused(refusal);
            }
            Err(EgressError::Refused(_)) => false,
            Err(other) => return Decision::Failed(other),
        };
        if listed_by_admins {
            return self.decide(&admins, url).await;
        }
        let agents = EgressPolicy::naming_only(
            Arc::new(agent_hosts.clone()),
            self.settings.self_addresses.clone(),
        );
        match agents.precheck(url) {
            Ok(target) if target.allowlisted => self.decide(&agents, url).await,
            Ok(target) => Decision::Refused(Refusal::new(
                RefusalReason::NotListed,
                &target.origin,
                "neither the agent's hosts nor the admins' allowlist names it",
            )),
            Err(EgressError::Refused(refusal)) => Decision::Refused(refusal),
            Err(other) => Decision::Failed(other),
        }
    }

    async fn decide(&self, policy: &EgressPolicy, url: &str) -> Decision {
        let result = async {
            let target = policy.precheck(url)?;
            // Past the DNS timeout, so that a slow lookup reads as a DNS failure, not `timeout`.
            let deadline = Instant::now() + self.settings.dns_timeout + Duration::from_secs(1);
            let addresses = self.resolve_checked(policy, &target, deadline).await?;
            Ok((target, addresses))
        }
        .await;
        Decision::from(result)
    }

    pub async fn get(&self, url: &str, limits: &CallLimits) -> Result<EgressResponse, EgressError> {
        self.send(EgressRequest::get(url), limits).await
    }

    /// Sends `request`, following redirects by hand for GET and HEAD only. Any other method
    /// gets a 3xx back as it is: a POST (a webhook, an LLM call) is never replayed to a place
    /// the first server chose.
    pub async fn send(
        &self,
        request: EgressRequest,
        limits: &CallLimits,
    ) -> Result<EgressResponse, EgressError> {
        let deadline = Instant::now() + limits.total_timeout;
        let EgressRequest {
            mut method,
            url,
            mut headers,
            mut body,
            follow_redirects,
        } = request;
        headers.remove(header::HOST);

        let mut target = self.policy().precheck(&url)?;
        let first_origin = target.url.origin();
        let mut credentials_dropped = false;
        let mut redirects: u8 = 0;
        loop {
            let policy = self.policy();
            let addresses = self.resolve_checked(&policy, &target, deadline).await?;
            let response = self
                .exchange(
                    &target,
                    &addresses,
                    &method,
                    &headers,
                    body.clone(),
                    deadline,
                )
                .await?;

            let follow = follow_redirects
                && is_redirect(response.status())
                && (method == Method::GET || method == Method::HEAD);
            let location = response.headers().get(header::LOCATION).cloned();
            let (true, Some(location)) = (follow, location) else {
                return Ok(EgressResponse::new(
                    response, target, redirects, limits, deadline,
                ));
            };

            let next = location
                .to_str()
                .ok()
                .and_then(|location| target.url.join(location).ok())
                .ok_or_else(|| EgressError::Http {
                    origin: target.origin.clone(),
                    detail: "the redirect's Location is not a usable URL".into(),
                })?;
            if redirects >= self.settings.max_redirects {
                return Err(EgressError::refused(
                    RefusalReason::RedirectLimit,
                    &origin_of(&next),
                    format!(
                        "more than {} redirects (from {})",
                        self.settings.max_redirects, target.origin
                    ),
                ));
            }
            redirects += 1;
            if response.status() == StatusCode::SEE_OTHER && method != Method::HEAD {
                method = Method::GET;
            }
            body = None;
            if !credentials_dropped && next.origin() != first_origin {
                headers = keep_safe_headers(&headers);
                credentials_dropped = true;
            }
            drop(response);
            // The next hop is judged in full under the allowlist of the moment.
            target = self.policy().precheck_url(next)?;
        }
    }

    async fn resolve_checked(
        &self,
        policy: &EgressPolicy,
        target: &Target,
        deadline: Instant,
    ) -> Result<Vec<SocketAddr>, EgressError> {
        let name = match &target.destination {
            Destination::Literal(addr) => return Ok(vec![*addr]),
            Destination::Name(name) => name,
        };
        let dns_deadline = (Instant::now() + self.settings.dns_timeout).min(deadline);
        match tokio::time::timeout_at(dns_deadline, self.resolver.lookup(name)).await {
            Err(_elapsed) if dns_deadline >= deadline => Err(timeout(&target.origin)),
            Err(_elapsed) => Err(EgressError::Resolve {
                origin: target.origin.clone(),
                detail: format!(
                    "no answer within {} s",
                    self.settings.dns_timeout.as_secs_f32()
                ),
            }),
            Ok(Err(error)) => Err(EgressError::Resolve {
                origin: target.origin.clone(),
                detail: error.0,
            }),
            Ok(Ok(ips)) if ips.is_empty() => Err(EgressError::Resolve {
                origin: target.origin.clone(),
                detail: "the name has no address".into(),
            }),
            Ok(Ok(ips)) => Ok(policy.check_addresses(target, &ips)?),
        }
    }

    async fn exchange(
        &self,
        target: &Target,
        addresses: &[SocketAddr],
        method: &Method,
        headers: &HeaderMap,
        body: Option<Bytes>,
        deadline: Instant,
    ) -> Result<reqwest::Response, EgressError> {
        let host = target.url.host_str().unwrap_or_default().to_owned();
        let pinned = PinnedResolver {
            host,
            addresses: addresses.to_vec(),
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .referer(false)
            .connect_timeout(self.settings.connect_timeout)
            .pool_max_idle_per_host(0)
            .user_agent(self.settings.user_agent.as_str())
            .dns_resolver(Arc::new(pinned))
            .build()
            .map_err(|error| EgressError::Request {
                origin: target.origin.clone(),
                detail: describe(error),
            })?;
        let mut request = client
            .request(method.clone(), target.url.clone())
            .headers(headers.clone());
        if let Some(body) = body {
            request = request.body(body);
        }
        match tokio::time::timeout_at(deadline, request.send()).await {
            Err(_elapsed) => Err(timeout(&target.origin)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(classify(&target.origin, error)),
        }
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn keep_safe_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in &KEPT_ACROSS_ORIGINS {
        for value in headers.get_all(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

fn timeout(origin: &str) -> EgressError {
    EgressError::refused(
        RefusalReason::Timeout,
        origin,
        "the call's total time ran out",
    )
}

/// reqwest's own text, minus the URL (which may hold a secret in its query), and its causes.
/// The URL is dropped from the error itself first, so no part of it can reach the text.
fn describe(error: reqwest::Error) -> String {
    use std::error::Error as _;
    let error = error.without_url();
    let mut text = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.is_empty() {
        text = if error.is_timeout() {
            "timed out".into()
        } else {
            "request failed".into()
        };
    }
    text
}

fn classify(origin: &str, error: reqwest::Error) -> EgressError {
    let origin = origin.to_owned();
    let tls = is_tls(&error);
    let (connect, builder) = (error.is_connect(), error.is_builder());
    let detail = describe(error);
    if tls {
        EgressError::Tls { origin, detail }
    } else if connect {
        EgressError::Connect { origin, detail }
    } else if builder {
        EgressError::Request { origin, detail }
    } else {
        EgressError::Http { origin, detail }
    }
}

/// Whether a rustls error is somewhere in the chain. hyper-rustls wraps it in `io::Error`s
/// (nested), whose `source` skips the wrapped error, so step into each `io::Error` by hand.
fn is_tls(error: &reqwest::Error) -> bool {
    use std::error::Error;
    let mut next: Option<&(dyn Error + 'static)> = error.source();
    while let Some(cause) = next {
        if cause.is::<rustls::Error>() {
            return true;
        }
        next = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn Error + 'static)),
                None => None,
            },
            None => cause.source(),
        };
    }
    false
}

/// The per-hop resolver handed to reqwest: the checked addresses for the checked host, and a
/// failure for any other name, so the HTTP stack can never look a name up by itself.
struct PinnedResolver {
    host: String,
    addresses: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
#[error("name not checked by the egress guard")]
struct UncheckedName;

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let answer: Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> =
            if name.as_str().eq_ignore_ascii_case(&self.host) {
                Ok(Box::new(self.addresses.clone().into_iter()))
            } else {
                Err(Box::new(UncheckedName))
            };
        Box::pin(std::future::ready(answer))
    }
}

/// A response whose body is read under the call's caps: the body size and the total time.
#[derive(Debug)]
pub struct EgressResponse {
    inner: reqwest::Response,
    target: Target,
    redirects: u8,
    max_body_bytes: u64,
    received: u64,
    deadline: Instant,
}

impl EgressResponse {
    fn new(
        inner: reqwest::Response,
        target: Target,
        redirects: u8,
        limits: &CallLimits,
        deadline: Instant,
    ) -> Self {
        Self {
            inner,
            target,
            redirects,
            max_body_bytes: limits.max_body_bytes,
            received: 0,
            deadline,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The URL of the hop that answered (after redirects). It may carry a query; log
    /// [`origin`](Self::origin) instead.
    pub fn url(&self) -> &Url {
        &self.target.url
    }

    pub fn origin(&self) -> &str {
        &self.target.origin
    }

    /// How many redirects were followed to get here.
    pub fn redirects(&self) -> u8 {
        self.redirects
    }

    /// The address actually connected to: always one of the checked ones.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    /// The next piece of the body, or `None` at its end. Refused as `too_large` past the cap
    /// (a declared `Content-Length` over the cap is refused before reading) and as `timeout`
    /// past the call's deadline.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, EgressError> {
        if self.received == 0
            && let Some(length) = self.inner.content_length()
            && length > self.max_body_bytes
        {
            return Err(self.too_large(Some(length)));
        }
        let chunk = match tokio::time::timeout_at(self.deadline, self.inner.chunk()).await {
            Err(_elapsed) => return Err(timeout(&self.target.origin)),
            Ok(Err(error)) => return Err(classify(&self.target.origin, error)),
            Ok(Ok(chunk)) => chunk,
        };
        if let Some(bytes) = &chunk {
            self.received = self.received.saturating_add(bytes.len() as u64);
            if self.received > self.max_body_bytes {
                return Err(self.too_large(None));
            }
        }
        Ok(chunk)
    }

    /// The whole body, under the caps.
    pub async fn bytes(mut self) -> Result<Bytes, EgressError> {
        let mut body = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// The whole body as text (invalid UTF-8 replaced), under the caps.
    pub async fn text(self) -> Result<String, EgressError> {
        let bytes = self.bytes().await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn too_large(&self, declared: Option<u64>) -> EgressError {
        let detail = match declared {
            Some(length) => format!(
                "declared body of {length} bytes is over the cap of {} bytes",
                self.max_body_bytes
            ),
            None => format!("body is over the cap of {} bytes", self.max_body_bytes),
        };
        EgressError::refused(RefusalReason::TooLarge, &self.target.origin, detail)
    }
}
