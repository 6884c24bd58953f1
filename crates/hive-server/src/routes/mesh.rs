//! The mesh at the edge: who a JSON-RPC call comes from when it is not a local caller (a
//! federated peer, the public tier), the federation proxy and status, and the public mesh
//! descriptor.
//!
//! On the JSON-RPC routes two layers run before the route's own rule: [`limit`] counts
//! federation calls and public-tier calls per address (before any token is looked at), then
//! [`admit`] turns a peer's token or a public-tier request into its caller. A request with
//! federation headers is a peer's or nobody's: it never falls back to a bearer token or cookie
//! (the pipeline's authentication does not read them when these headers are present).

use super::a2a;
use super::openapi::{JsonRpcRequest, JsonRpcResponse};
use crate::auth::{Authenticated, Meta, request_meta};
use crate::error::ApiError;
use crate::pipeline::{Refusals, enforce_policy};
use crate::request::{ClientIp, PUBLIC_PATH, has_federation_headers};
use crate::state::AppState;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hive_a2a::jsonrpc::{self, Limits, Version};
use hive_core::kernel::audit::{AuditAction, AuditEvent, Principal};
use hive_core::kernel::caller::Caller;
use hive_core::mesh::federation::{
    Inbound, InboundRefusal, JWT_HEADER, PeerChoice, ProxyCall, ProxyError, SECRET_HEADER,
};
use hive_core::mesh::public_tier::{KEY_HEADER, REFUSAL_ACTION};
use hive_proto::mesh::{
    DESCRIPTOR_SCHEMA, FederationDirectory, FederationStatus, MeshA2aUrls, MeshDescriptor,
    MeshFederation,
};
use hive_proto::{ErrorCode, Role};
use http::{HeaderMap, HeaderValue, Uri, header};
use serde::Deserialize;
use uuid::Uuid;

fn is_public_path(request: &Request) -> bool {
    request.uri().path().trim_end_matches('/') == PUBLIC_PATH
}

/// Whether the public tier would take this request: at the public endpoint, or anonymous
/// elsewhere. A request presenting a bearer token is a local caller's or nobody's: one whose
/// token is unknown, revoked or expired is refused, not taken for an anonymous caller.
fn public_tier_request(state: &AppState, request: &Request) -> bool {
    state.hive.public_tier.is_some()
        && (is_public_path(request)
            || (request.extensions().get::<Caller>().is_none()
                && !request.headers().contains_key(header::AUTHORIZATION)))
}

/// Route layer: the per-address limits of peers (`federation`) and of the public tier
/// (`public_a2a`), counted before anything else is done with the request.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let policy = if has_federation_headers(request.headers()) {
        "federation"
    } else if public_tier_request(&state, &request) {
        "public_a2a"
    } else {
        return next.run(request).await;
    };
    match state.hive.state.policies.get(policy).cloned() {
        Some(policy) => enforce_policy(&state, &policy, Refusals::Recorded, request, next).await,
        None => next.run(request).await,
    }
}

fn unauthenticated() -> Response {
    let mut response = ApiError::of(ErrorCode::Unauthenticated).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"hive\""),
    );
    response
}

fn client_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<ClientIp>()
        .map(|ClientIp(ip)| *ip)
}

/// Route layer: a peer's credentials or the public tier become the request's caller.
pub async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if has_federation_headers(request.headers()) {
        return admit_peer(state, request, next).await;
    }
    if public_tier_request(&state, &request) {
        return admit_public(state, request, next).await;
    }
    if is_public_path(&request) {
        // The public tier is off: its endpoint does not exist.
        return ApiError::of(ErrorCode::NotFound).into_response();
    }
    next.run(request).await
}

async fn admit_peer(state: AppState, mut request: Request, next: Next) -> Response {
    let meta = request_meta(request.headers(), request.extensions());
    let headers = request.headers();
    let presented = match (headers.get(JWT_HEADER), headers.get(SECRET_HEADER)) {
        (Some(_), Some(_)) => {
            return ApiError::new(
                ErrorCode::BadRequest,
                "send either X-Hive-Federation-JWT or X-Hive-Federation-Secret, not both",
            )
            .into_response();
        }
        (Some(token), None) => token.to_str().ok().map(Inbound::Jwt),
        (None, Some(secret)) => secret.to_str().ok().map(Inbound::LegacySecret),
        (None, None) => None,
    };
    let Some(federation) = &state.hive.federation else {
        state
            .hive
            .auditor
            .record_refusal(
                AuditEvent::refused(
                    Principal::Anonymous,
                    hive_core::mesh::federation::INBOUND_ACTION,
                    "federation_disabled",
                ),
                &meta,
            )
            .await;
        return unauthenticated();
    };
    let Some(presented) = presented else {
        return unauthenticated();
    };
    let ip = client_ip(&request);
    match federation.authenticate(presented, ip, &meta).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(InboundRefusal::Unauthenticated) => unauthenticated(),
        Err(InboundRefusal::AddressNotAllowed) => ApiError::new(
            ErrorCode::Forbidden,
            "this address may not call as a federation peer",
        )
        .into_response(),
        Err(InboundRefusal::Unavailable) => ApiError::unavailable().into_response(),
    }
}

async fn public_refusal(
    state: &AppState,
    meta: &hive_core::kernel::caller::RequestMeta,
    reason: &'static str,
) {
    metrics::counter!("hive_public_tier_refusals_total", "reason" => reason).increment(1);
    tracing::info!(
        event = "mesh.a2a.public_tier.refused",
        reason,
        "public tier call refused"
    );
    state
        .hive
        .auditor
        .record_refusal(
            AuditEvent::refused(Principal::Public, REFUSAL_ACTION, reason),
            meta,
        )
        .await;
}

/// The public tier: an optional key, then the body, whole and well-formed, and an allowed
/// method — all before any handler runs.
async fn admit_public(state: AppState, request: Request, next: Next) -> Response {
    let Some(tier) = state.hive.public_tier.clone() else {
        return unauthenticated();
    };
    let meta = request_meta(request.headers(), request.extensions());
    let (mut parts, body) = request.into_parts();
    // Credentials meant for the local API are not the public tier's business.
    parts.extensions.remove::<Caller>();
    let key = match parts.headers.get(KEY_HEADER) {
        None => None,
        Some(value) => match value.to_str().ok().and_then(|value| tier.key(value)) {
            Some(key) => Some(key.clone()),
            None => {
                public_refusal(&state, &meta, "unknown_key").await;
                return unauthenticated();
            }
        },
    };
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        public_refusal(&state, &meta, "not_json").await;
        return ApiError::of(ErrorCode::UnsupportedMediaType).into_response();
    }
    let bytes = match crate::json::read_body(body, tier.max_body_bytes()).await {
        Ok(bytes) => bytes,
        Err(refused) if refused.code == ErrorCode::PayloadTooLarge => {
            public_refusal(&state, &meta, "oversize").await;
            return ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request is over the public tier's body limit (A2A_PUBLIC_JSONRPC_MAX_BODY_BYTES)",
            )
            .into_response();
        }
        Err(refused) => {
            public_refusal(&state, &meta, "unreadable").await;
            return refused.into_response();
        }
    };
    // A version Hive does not speak is answered by the handler (as a JSON-RPC error); the
    // method is read as 1.0's meanwhile.
    let version = a2a::requested_version(&parts.headers, &parts.uri).unwrap_or(Version::V1_0);
    let limits = Limits {
        max_body_bytes: tier.max_body_bytes(),
        ..Limits::default()
    };
    let method = match jsonrpc::parse_request(&bytes, version, &limits) {
        Ok(parsed) => parsed.call.method(),
        Err(rejection) => {
            let reason = if rejection.too_large {
                "oversize"
            } else {
                "malformed"
            };
            public_refusal(&state, &meta, reason).await;
            let code = if rejection.too_large {
                ErrorCode::PayloadTooLarge
            } else {
                ErrorCode::BadRequest
            };
            return ApiError::new(code, "not a JSON-RPC request the public tier accepts")
                .into_response();
        }
    };
    if !tier.allows(key.as_ref(), method) {
        public_refusal(&state, &meta, "method_not_allowed").await;
        return unauthenticated();
    }
    tracing::info!(
        event = "mesh.a2a.public_tier.entrypoint",
        method = method.name(Version::V1_0).unwrap_or("unknown"),
        key = key.as_ref().map(|key| key.name.as_str()),
        "public tier call"
    );
    parts
        .extensions
        .insert(Caller::public_tier(key.map(|key| key.name)));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `GET /.well-known/hive-mesh.json`: this instance's origin, A2A URLs and federation key.
#[utoipa::path(
    get,
    path = "/.well-known/hive-mesh.json",
    tag = "mesh",
    responses((status = 200, description = "OK.", body = MeshDescriptor)),
)]
pub async fn descriptor(State(state): State<AppState>) -> Json<MeshDescriptor> {
    let origin = state.hive.config.public_origin();
    let federation = match &state.hive.federation {
        Some(federation) => {
            let (algorithm, public_key) = federation.published_key();
            MeshFederation {
                enabled: true,
                algorithm: Some(algorithm.to_owned()),
                key_id: Some(federation.key_id().to_owned()),
                public_key,
                token_header: "X-Hive-Federation-JWT".to_owned(),
            }
        }
        None => MeshFederation {
            enabled: false,
            algorithm: None,
            key_id: None,
            public_key: None,
            token_header: "X-Hive-Federation-JWT".to_owned(),
        },
    };
    Json(MeshDescriptor {
        schema: DESCRIPTOR_SCHEMA.to_owned(),
        a2a: MeshA2aUrls {
            agent_card: format!("{origin}/.well-known/agent-card.json"),
            jsonrpc: format!("{origin}/api/a2a/jsonrpc"),
            public_jsonrpc: state
                .hive
                .public_tier
                .as_ref()
                .map(|_| format!("{origin}{PUBLIC_PATH}")),
        },
        origin,
        federation,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusQuery {
    #[serde(default)]
    probe: Option<String>,
}

/// `GET /api/v1/mesh/federation/status` (viewer); `?probe=1` (operator) fetches each peer's
/// agent card through the egress guard.
#[utoipa::path(
    get,
    path = "/api/v1/mesh/federation/status",
    tag = "mesh",
    params(StatusQuery),
    responses((status = 200, description = "OK.", body = FederationStatus)),
)]
pub async fn status(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Query(query): Query<StatusQuery>,
) -> Result<Json<FederationStatus>, ApiError> {
    let probe = match query.probe.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "probe is 1 or 0",
            ));
        }
    };
    if probe && caller.role < Role::Operator {
        state
            .hive
            .auditor
            .record_refusal(
                AuditEvent::refused(
                    caller.principal(),
                    AuditAction::MeshFederationProbe,
                    "role_too_low",
                ),
                &meta,
            )
            .await;
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "probing peers needs the operator role",
        ));
    }
    let Some(federation) = &state.hive.federation else {
        return Ok(Json(disabled_status(&state)));
    };
    let prober = probe.then_some(&caller);
    Ok(Json(federation.status(prober, &meta).await))
}

fn disabled_status(state: &AppState) -> FederationStatus {
    FederationStatus {
        enabled: false,
        origin: state.hive.config.public_origin(),
        mode: None,
        key_id: None,
        public_key: None,
        audience: None,
        require_audience: true,
        require_jti: true,
        legacy_secret_accepted: false,
        token_ttl_seconds: 0,
        clock_skew_leeway_seconds: 0,
        inbound_allowlist: false,
        peers: Vec::new(),
    }
}

/// `GET /api/v1/mesh/federation/directory`: the configured peers, no network call.
#[utoipa::path(
    get,
    path = "/api/v1/mesh/federation/directory",
    tag = "mesh",
    responses((status = 200, description = "OK.", body = FederationDirectory)),
)]
pub async fn directory(State(state): State<AppState>) -> Json<FederationDirectory> {
    Json(
        state
            .hive
            .federation
            .as_ref()
            .map_or(FederationDirectory { peers: Vec::new() }, |federation| {
                federation.directory()
            }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyQuery {
    #[serde(default)]
    peer_index: Option<usize>,
    #[serde(default)]
    peer: Option<String>,
    #[serde(default)]
    agent_id: Option<Uuid>,
}

/// `POST /api/v1/mesh/federation/proxy/jsonrpc?peerIndex=N|peer=ORIGIN[&agentId=ID]`
/// (operator): the body, one JSON-RPC request, goes to the peer with a fresh token; the
/// peer's answer comes back as it was (status, content type, body).
#[utoipa::path(
    post,
    path = "/api/v1/mesh/federation/proxy/jsonrpc",
    tag = "mesh",
    request_body = JsonRpcRequest,
    responses((status = 200, description = "The peer's JSON-RPC response.", content((JsonRpcResponse = "application/json"), (String = "text/event-stream")))),
)]
pub async fn proxy(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let query = proxy_query(&uri)?;
    // The peer reads the call in the version this instance read it in.
    let version = a2a::requested_version(&headers, &uri)
        .map_err(|error| ApiError::new(ErrorCode::ValidationFailed, error.message))?;
    let version = HeaderValue::from_static(version.header_value());
    let Some(federation) = &state.hive.federation else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "federation is not enabled (MESH_FEDERATION_ENABLED)",
        ));
    };
    let choice = match (query.peer_index, query.peer) {
        (Some(index), None) => PeerChoice::Index(index),
        (None, Some(origin)) => PeerChoice::Origin(origin),
        _ => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "name the peer with exactly one of peerIndex or peer (its origin)",
            ));
        }
    };
    let limit = state.hive.gateway.settings().max_body_bytes;
    let bytes: Bytes = crate::json::read_body(body, limit).await?;
    let method = rpc_method(&bytes, limit)?;
    let reply = federation
        .proxy(
            &caller,
            ProxyCall {
                peer: choice,
                agent: query.agent_id,
                body: bytes,
                method: &method,
                a2a_version: Some(&version),
            },
            &meta,
        )
        .await
        .map_err(proxy_error)?;
    let mut response = (reply.status, reply.body).into_response();
    if let Some(content_type) = reply.content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}

/// The proxy's own parameters: all but `A2A-Version`, which is the call's
/// ([`a2a::requested_version`]).
fn proxy_query(uri: &Uri) -> Result<ProxyQuery, ApiError> {
    let own = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .filter(|(name, _)| !a2a::is_version_parameter(name));
    let own = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(own)
        .finish();
    let refused = |status: http::StatusCode| ApiError::of(ErrorCode::for_status(status.as_u16()));
    let own = Uri::builder()
        .path_and_query(format!("/?{own}"))
        .build()
        .map_err(|_| refused(http::StatusCode::BAD_REQUEST))?;
    Query::try_from_uri(&own)
        .map(|Query(query)| query)
        .map_err(|rejection| refused(rejection.status()))
}

/// The method of a JSON-RPC request body (for the audit record); a body that is not one is
/// refused here rather than sent to a peer. The method is the peer's to know: any name goes.
fn rpc_method(bytes: &[u8], max_body_bytes: usize) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::ValidationFailed,
            "the body must be one JSON-RPC 2.0 request object with a method",
        )
    };
    let limits = Limits {
        max_body_bytes,
        ..Limits::default()
    };
    let head = jsonrpc::parse_request_head(bytes, &limits).map_err(|_| invalid())?;
    Some(head.method)
        .filter(|method| (1..=128).contains(&method.len()))
        .ok_or_else(invalid)
}

fn proxy_error(error: ProxyError) -> ApiError {
    match error {
        ProxyError::UnknownPeer(message) => ApiError::new(ErrorCode::ValidationFailed, message),
        ProxyError::Refused(reason) => ApiError::new(
            ErrorCode::BadGateway,
            format!("the egress guard refused the peer ({reason})"),
        ),
        ProxyError::Timeout => ApiError::of(ErrorCode::GatewayTimeout),
        ProxyError::Unreachable => ApiError::of(ErrorCode::BadGateway),
        ProxyError::Signing => {
            tracing::error!("federation: a token could not be minted");
            ApiError::of(ErrorCode::Internal)
        }
        ProxyError::Unavailable => ApiError::unavailable(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_rpc_requests_are_proxied() {
        const LIMIT: usize = 1 << 20;
        assert_eq!(
            rpc_method(br#"{"jsonrpc":"2.0","id":1,"method":"SendMessage"}"#, LIMIT).unwrap(),
            "SendMessage"
        );
        // A method this instance does not know, or a notification, is the peer's to answer.
        assert_eq!(
            rpc_method(br#"{"jsonrpc":"2.0","method":"x/custom"}"#, LIMIT).unwrap(),
            "x/custom"
        );
        let long = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{}"}}"#,
            "m".repeat(129)
        );
        for body in [
            &br#"[{"jsonrpc":"2.0","method":"x"}]"#[..],
            br#"{"jsonrpc":"1.0","method":"x"}"#,
            br#"{"jsonrpc":"2.0"}"#,
            br#"{"jsonrpc":"2.0","method":""}"#,
            br#"{"jsonrpc":"2.0","method":7}"#,
            long.as_bytes(),
            b"not json",
        ] {
            assert!(rpc_method(body, LIMIT).is_err());
        }
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(rpc_method(deep.as_bytes(), LIMIT).is_err());
    }
}
