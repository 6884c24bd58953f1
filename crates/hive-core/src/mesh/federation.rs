//! Federation between Hive instances (`MESH_FEDERATION_*`): the tokens this instance presents
//! to its peers, the check of theirs, the outbound proxy and the status.
//!
//! A peer proves itself with a short-lived JWT in `X-Hive-Federation-JWT` (EdDSA with pinned
//! keys, or HS256 with the mesh's shared secret; rules in `hive_crypto::federation`), whose
//! `jti` is consumed once in the shared replay store. The legacy raw-secret header is accepted
//! only when `MESH_FEDERATION_INBOUND_ALLOW_LEGACY_SECRET=true`. Every refusal is audited with
//! its reason; the caller gets one answer for all of them.

use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::config::{FederationConfig, FederationKeyMode, FederationPeer};
use crate::kernel::egress::{Egress, Purpose};
use bytes::Bytes;
use hive_crypto::federation::{Expected, Signer, SigningKey, Verifier};
use hive_egress::{CallLimits, EgressError, EgressRequest};
use hive_proto::SharedClock;
use hive_proto::mesh::{
    DirectoryEntry, FederationDirectory, FederationMode, FederationStatus, PeerProbe, PeerStatus,
};
use hive_state::ReplayCache;
use hive_store::AuditOutcome;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use secrecy::ExposeSecret;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The header of a peer's token.
pub const JWT_HEADER: HeaderName = HeaderName::from_static("x-hive-federation-jwt");
/// The legacy header carrying the shared secret itself.
pub const SECRET_HEADER: HeaderName = HeaderName::from_static("x-hive-federation-secret");

/// The audit action of a call that came from a peer (accepted or refused).
pub const INBOUND_ACTION: AuditAction = AuditAction::MeshFederationInbound;
/// The audit action of a call proxied to a peer.
pub const PROXY_ACTION: AuditAction = AuditAction::MeshFederationProxy;

/// The largest answer a peer may give a proxied call.
const MAX_PROXY_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;
/// The largest agent card a probe reads.
const MAX_CARD_BYTES: u64 = 256 * 1024;
/// How long a probe of one peer may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a peer presented.
#[derive(Debug, Clone, Copy)]
pub enum Inbound<'a> {
    Jwt(&'a str),
    LegacySecret(&'a str),
}

/// Why an inbound federation call was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InboundRefusal {
    /// 401, one answer for every reason (the audit record says which).
    #[error("the federation credentials were not accepted")]
    Unauthenticated,
    /// 403: the address is not in `MESH_FEDERATION_INBOUND_ALLOWLIST`.
    #[error("this address may not call as a federation peer")]
    AddressNotAllowed,
    /// 503: the replay store could not record the token's `jti`.
    #[error("federation is unavailable; retry later")]
    Unavailable,
}

/// Which configured peer a proxied call goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChoice {
    Index(usize),
    Origin(String),
}

/// One JSON-RPC request for a peer.
#[derive(Debug, Clone)]
pub struct ProxyCall<'a> {
    pub peer: PeerChoice,
    /// The agent at the peer (its own endpoint), or the peer's instance endpoint.
    pub agent: Option<uuid::Uuid>,
    /// One JSON-RPC request, as the caller sent it.
    pub body: Bytes,
    /// Its method, for the audit record.
    pub method: &'a str,
    /// Passed on as `A2A-Version`.
    pub a2a_version: Option<&'a HeaderValue>,
}

/// What the peer answered a proxied call.
#[derive(Debug, Clone)]
pub struct ProxyReply {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    UnknownPeer(String),
    #[error("the call could not be signed")]
    Signing,
    /// The egress guard refused the peer's address (its reason).
    #[error("the egress guard refused the peer: {0}")]
    Refused(String),
    #[error("the peer did not answer in time")]
    Timeout,
    #[error("the peer could not be reached or answered too much")]
    Unreachable,
    /// The audit record of the call could not be written.
    #[error("the call could not be audited")]
    Unavailable,
}

/// The federation service of one instance; exists only when `MESH_FEDERATION_ENABLED=true`.
pub struct Federation {
    settings: FederationConfig,
    own_origin: String,
    signer: Signer,
    verifier: Verifier,
    replay: Arc<dyn ReplayCache>,
    egress: Arc<Egress>,
    auditor: Auditor,
    clock: SharedClock,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("origin", &self.own_origin)
            .field("peers", &self.settings.peers.len())
            .finish_non_exhaustive()
    }
}

/// The parts of the federation service that come from the rest of Hive.
pub struct FederationParts {
    pub settings: FederationConfig,
    /// The `AUTH_URL` origin: `iss` of our tokens.
    pub own_origin: String,
    pub replay: Arc<dyn ReplayCache>,
    pub egress: Arc<Egress>,
    pub auditor: Auditor,
    pub clock: SharedClock,
}

#[derive(Debug, thiserror::Error)]
#[error("federation: {0}")]
pub struct FederationStartError(String);

impl Federation {
    pub fn new(parts: FederationParts) -> Result<Self, FederationStartError> {
        let settings = parts.settings;
        let (key, verifier) = match &settings.mode {
            FederationKeyMode::SharedSecret(secret) => {
                let origins: Vec<String> =
                    settings.peers.iter().map(|p| p.origin.clone()).collect();
                (
                    SigningKey::Shared(secret.as_ref().clone()),
                    Verifier::shared(secret, &origins),
                )
            }
            FederationKeyMode::Ed25519 { seed } => {
                let pinned: Vec<(String, [u8; 32])> = settings
                    .peers
                    .iter()
                    .flat_map(|peer| {
                        peer.public_keys
                            .iter()
                            .map(|key| (peer.origin.clone(), *key))
                    })
                    .collect();
                let verifier = Verifier::ed25519(&pinned).map_err(|duplicate| {
                    FederationStartError(format!(
                        "two peers are pinned to the same key ({})",
                        duplicate.kid
                    ))
                })?;
                (SigningKey::Ed25519(seed.as_ref().clone()), verifier)
            }
        };
        Ok(Self {
            signer: Signer::new(parts.own_origin.clone(), key),
            verifier,
            own_origin: parts.own_origin,
            settings,
            replay: parts.replay,
            egress: parts.egress,
            auditor: parts.auditor,
            clock: parts.clock,
        })
    }

    /// The `aud` inbound tokens must carry.
    fn expected_audience(&self) -> &str {
        self.settings
            .audience
            .as_deref()
            .unwrap_or(&self.own_origin)
    }

    fn leeway_seconds(&self) -> i64 {
        i64::try_from(self.settings.leeway.as_secs()).unwrap_or(0)
    }

    fn ttl_seconds(&self) -> i64 {
        i64::try_from(self.settings.jwt_ttl.as_secs()).unwrap_or(300)
    }

    /// Whether `ip` may call as a peer (any address when no allowlist is configured).
    pub fn address_allowed(&self, ip: Option<IpAddr>) -> bool {
        let list = &self.settings.inbound_allowlist;
        list.is_empty() || ip.is_some_and(|ip| list.iter().any(|net| net.contains(&ip)))
    }

    /// Checks what a peer presented; the caller it stands for, or why not (audited).
    pub async fn authenticate(
        &self,
        inbound: Inbound<'_>,
        ip: Option<IpAddr>,
        meta: &RequestMeta,
    ) -> Result<Caller, InboundRefusal> {
        if !self.address_allowed(ip) {
            self.refuse(None, "address_not_allowed", meta).await;
            return Err(InboundRefusal::AddressNotAllowed);
        }
        match inbound {
            Inbound::Jwt(token) => self.check_token(token, meta).await,
            Inbound::LegacySecret(secret) => self.check_legacy_secret(secret, meta).await,
        }
    }

    async fn check_token(&self, token: &str, meta: &RequestMeta) -> Result<Caller, InboundRefusal> {
        let now = self.clock.now().unix_timestamp();
        let leeway = self.leeway_seconds();
        let expected = Expected {
            audience: self.expected_audience(),
            require_audience: self.settings.require_audience,
            require_jti: self.settings.require_jti,
            now,
            leeway,
            max_lifetime: self.ttl_seconds(),
        };
        let claims = match self.verifier.verify(token, &expected) {
            Ok(claims) => claims,
            Err(rejection) => {
                self.refuse(None, rejection.reason(), meta).await;
                return Err(InboundRefusal::Unauthenticated);
            }
        };
        if let Some(jti) = &claims.jti {
            // Remembered for as long as the token could still be accepted.
            let remaining = claims.expires_at.saturating_add(leeway).saturating_sub(now);
            let ttl = Duration::from_secs(u64::try_from(remaining).unwrap_or(0).max(1));
            let key = format!("federation-jti:{}:{jti}", claims.issuer);
            match self.replay.consume(&key, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    self.refuse(Some(&claims.issuer), "replayed_jti", meta)
                        .await;
                    return Err(InboundRefusal::Unauthenticated);
                }
                Err(error) => {
                    tracing::error!(%error, "federation: the replay store cannot record a jti; refusing");
                    self.refuse(Some(&claims.issuer), "replay_store_unavailable", meta)
                        .await;
                    return Err(InboundRefusal::Unavailable);
                }
            }
        }
        Ok(Caller::peer(claims.issuer, claims.subject))
    }

    async fn check_legacy_secret(
        &self,
        presented: &str,
        meta: &RequestMeta,
    ) -> Result<Caller, InboundRefusal> {
        let matches = self.settings.shared_secret.as_ref().is_some_and(|secret| {
            hive_crypto::constant_time_eq(secret.expose_secret().as_bytes(), presented.as_bytes())
        });
        let reason = match (self.settings.allow_legacy_secret, matches) {
            (false, _) => "legacy_secret_disabled",
            (true, false) => "bad_legacy_secret",
            (true, true) => return Ok(Caller::peer("legacy".into(), "legacy-secret".into())),
        };
        self.refuse(None, reason, meta).await;
        Err(InboundRefusal::Unauthenticated)
    }

    async fn refuse(&self, issuer: Option<&str>, reason: &'static str, meta: &RequestMeta) {
        metrics::counter!("hive_federation_inbound_refusals_total", "reason" => reason)
            .increment(1);
        tracing::warn!(reason, "federation: inbound call refused");
        let actor = issuer.map_or(Principal::Anonymous, |iss| Principal::Peer(iss.to_owned()));
        self.auditor
            .record_refusal(AuditEvent::refused(actor, INBOUND_ACTION, reason), meta)
            .await;
    }

    fn peer(&self, choice: &PeerChoice) -> Result<(usize, &FederationPeer), ProxyError> {
        let peers = &self.settings.peers;
        let found = match choice {
            PeerChoice::Index(index) => peers.get(*index).map(|peer| (*index, peer)),
            PeerChoice::Origin(origin) => {
                let wanted = origin.trim().trim_end_matches('/');
                peers
                    .iter()
                    .enumerate()
                    .find(|(_, peer)| peer.origin == wanted)
            }
        };
        found.ok_or_else(|| {
            ProxyError::UnknownPeer(format!(
                "no such peer: MESH_FEDERATION_PEERS lists {} (by index from 0, or by origin)",
                peers.len()
            ))
        })
    }

    /// Forwards one JSON-RPC request to a configured peer with a fresh token, through the
    /// egress guard (no redirects: the token goes to the peer's origin only). Audited.
    pub async fn proxy(
        &self,
        caller: &Caller,
        call: ProxyCall<'_>,
        meta: &RequestMeta,
    ) -> Result<ProxyReply, ProxyError> {
        let span = tracing::info_span!(
            "federation.proxy",
            otel.name = "federation proxy",
            otel.kind = "client",
            a2a.method = call.method,
            hive.peer.origin = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let result = self
            .proxy_to_peer(caller, call, meta)
            .instrument(span.clone())
            .await;
        crate::kernel::trace_context::record_answer(
            &span,
            result.as_ref().ok().map(|reply| reply.status.as_u16()),
        );
        result
    }

    async fn proxy_to_peer(
        &self,
        caller: &Caller,
        call: ProxyCall<'_>,
        meta: &RequestMeta,
    ) -> Result<ProxyReply, ProxyError> {
        let ProxyCall {
            peer: choice,
            agent,
            body,
            method,
            a2a_version,
        } = call;
        let started = Instant::now();
        let (index, peer) = self.peer(&choice)?;
        tracing::Span::current().record("hive.peer.origin", peer.origin.as_str());
        let audience = self.settings.audience.as_deref().unwrap_or(&peer.origin);
        let now = self.clock.now().unix_timestamp();
        let minted = self
            .signer
            .mint(
                audience,
                &caller.principal().to_string(),
                now,
                self.ttl_seconds(),
            )
            .map_err(|_| ProxyError::Signing)?;
        let path = match agent {
            Some(id) => format!("/api/a2a/agents/{id}/jsonrpc"),
            None => "/api/a2a/jsonrpc".to_owned(),
        };
        let url = format!("{}{path}", peer.origin);
        // A peer that knows only the legacy header gets the secret instead of the token (a
        // Hive peer refuses a request carrying both).
        let (credential_header, credential) = match (
            self.settings.proxy_send_secret,
            &self.settings.shared_secret,
        ) {
            (true, Some(secret)) => (SECRET_HEADER, secret.expose_secret().to_owned()),
            _ => (JWT_HEADER, minted.token.clone()),
        };
        let credential = HeaderValue::from_str(&credential).map_err(|_| ProxyError::Signing)?;
        let sent_token = credential_header == JWT_HEADER;
        let mut request = EgressRequest::new(Method::POST, url)
            .without_redirects()
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(credential_header, credential)
            .body(body);
        if let Some(version) = a2a_version {
            request = request.header(HeaderName::from_static("a2a-version"), version.clone());
        }
        // The peer continues this trace.
        crate::kernel::trace_context::inject_into(request.headers_mut());
        let limits = CallLimits::new(self.settings.proxy_timeout, MAX_PROXY_RESPONSE_BYTES);
        let purpose = Purpose {
            principal: caller.principal(),
            feature: "federation_proxy",
            meta: meta.clone(),
        };
        let result = match self.egress.send(request, &limits, &purpose).await {
            Ok(response) => {
                let status = response.status();
                let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
                response
                    .bytes()
                    .await
                    .map(|body| ProxyReply {
                        status,
                        content_type,
                        body,
                    })
                    .map_err(proxy_error)
            }
            Err(error) => Err(proxy_error(error)),
        };
        let entry = AuditEvent {
            principal: caller.principal(),
            action: PROXY_ACTION,
            target: Some(format!("peer:{}", peer.origin)),
            outcome: if result.is_ok() {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failure
            },
            detail: serde_json::json!({
                "peerIndex": index,
                "method": method,
                "agentId": agent,
                "jti": sent_token.then_some(&minted.jti),
                "status": result.as_ref().ok().map(|reply| reply.status.as_u16()),
                "error": result.as_ref().err().map(ToString::to_string),
                "durationMs": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        };
        if self.auditor.record(entry, meta).await.is_err() {
            return Err(ProxyError::Unavailable);
        }
        result
    }

    /// The configuration as operators see it; with `probe`, each peer's agent card fetched
    /// through the egress guard.
    pub async fn status(&self, probe: Option<&Caller>, meta: &RequestMeta) -> FederationStatus {
        let mut peers = Vec::with_capacity(self.settings.peers.len());
        for (index, peer) in self.settings.peers.iter().enumerate() {
            let probe = match probe {
                Some(caller) => Some(self.probe(peer, caller, meta).await),
                None => None,
            };
            peers.push(PeerStatus {
                index,
                origin: peer.origin.clone(),
                can_call_in: match self.settings.mode {
                    FederationKeyMode::SharedSecret(_) => true,
                    FederationKeyMode::Ed25519 { .. } => !peer.public_keys.is_empty(),
                },
                probe,
            });
        }
        let (mode, public_key) = match &self.settings.mode {
            FederationKeyMode::SharedSecret(_) => (FederationMode::SharedSecret, None),
            FederationKeyMode::Ed25519 { seed } => {
                (FederationMode::Ed25519, Some(seed.public_key_text()))
            }
        };
        FederationStatus {
            enabled: true,
            origin: self.own_origin.clone(),
            mode: Some(mode),
            key_id: Some(self.signer.kid().to_owned()),
            public_key,
            audience: Some(self.expected_audience().to_owned()),
            require_audience: self.settings.require_audience,
            require_jti: self.settings.require_jti,
            legacy_secret_accepted: self.settings.allow_legacy_secret,
            token_ttl_seconds: self.settings.jwt_ttl.as_secs(),
            clock_skew_leeway_seconds: self.settings.leeway.as_secs(),
            inbound_allowlist: !self.settings.inbound_allowlist.is_empty(),
            peers,
        }
    }

    async fn probe(&self, peer: &FederationPeer, caller: &Caller, meta: &RequestMeta) -> PeerProbe {
        let started = Instant::now();
        let purpose = Purpose {
            principal: caller.principal(),
            feature: "federation_probe",
            meta: meta.clone(),
        };
        let request = EgressRequest::get(format!("{}/.well-known/agent-card.json", peer.origin));
        let limits = CallLimits::new(PROBE_TIMEOUT, MAX_CARD_BYTES);
        let (status, outcome) = match self.egress.send(request, &limits, &purpose).await {
            Ok(response) => {
                let status = response.status();
                let card = response
                    .bytes()
                    .await
                    .map_err(|error| error.kind().to_owned());
                let named = card.and_then(|body| {
                    serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|card| {
                            card.get("name")?
                                .as_str()
                                .map(|n| n.chars().take(200).collect::<String>())
                        })
                        .ok_or_else(|| "not_a_card".to_owned())
                });
                match (status.is_success(), named) {
                    (true, Ok(name)) => (Some(status.as_u16()), Ok(name)),
                    (true, Err(why)) => (Some(status.as_u16()), Err(why)),
                    (false, _) => (
                        Some(status.as_u16()),
                        Err(format!("status_{}", status.as_u16())),
                    ),
                }
            }
            Err(error) => (None, Err(probe_error(&error))),
        };
        PeerProbe {
            reachable: outcome.is_ok(),
            status,
            agent_name: outcome.as_ref().ok().cloned(),
            error: outcome.err(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The peers and their URLs, from the configuration alone.
    pub fn directory(&self) -> FederationDirectory {
        directory_of(&self.settings.peers)
    }

    /// The `kid` and, in Ed25519 mode, the public key of this instance's tokens.
    pub fn key_id(&self) -> &str {
        self.signer.kid()
    }

    /// `EdDSA` or `HS256`, and the public key when there is one.
    pub fn published_key(&self) -> (&'static str, Option<String>) {
        match &self.settings.mode {
            FederationKeyMode::SharedSecret(_) => ("HS256", None),
            FederationKeyMode::Ed25519 { seed } => ("EdDSA", Some(seed.public_key_text())),
        }
    }
}

fn directory_of(peers: &[FederationPeer]) -> FederationDirectory {
    FederationDirectory {
        peers: peers
            .iter()
            .enumerate()
            .map(|(index, peer)| DirectoryEntry {
                index,
                origin: peer.origin.clone(),
                agent_card_url: format!("{}/.well-known/agent-card.json", peer.origin),
                jsonrpc_url: format!("{}/api/a2a/jsonrpc", peer.origin),
                mesh_descriptor_url: format!("{}/.well-known/hive-mesh.json", peer.origin),
            })
            .collect(),
    }
}

fn probe_error(error: &EgressError) -> String {
    match error {
        EgressError::Refused(refusal) => format!("refused:{}", refusal.reason.as_str()),
        other => other.kind().to_owned(),
    }
}

fn proxy_error(error: EgressError) -> ProxyError {
    match &error {
        EgressError::Refused(refusal) => match refusal.reason.as_str() {
            "timeout" => ProxyError::Timeout,
            "too_large" => ProxyError::Unreachable,
            reason => ProxyError::Refused(reason.to_owned()),
        },
        _ => ProxyError::Unreachable,
    }
}
