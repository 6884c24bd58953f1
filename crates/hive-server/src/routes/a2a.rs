//! The A2A endpoints: agent cards (public; what they list depends on the caller), the JSON-RPC
//! endpoints of the instance and of each agent (a session, an API token with the `execute`
//! scope or the internal token, of at least `A2A_JSONRPC_MIN_ROLE`), and the summary of the
//! A2A configuration for the dashboard.

use super::openapi::{JsonRpcRequest, JsonRpcResponse};
use crate::auth::{Authenticated, request_meta};
use crate::error::{ApiError, SERVER_BUSY};
use crate::pipeline::RpcIdSlot;
use crate::request::ClientIp;
use crate::state::AppState;
use crate::streams::{event_stream_body, event_stream_headers};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use hive_a2a::error::{ErrorCode as RpcCode, RpcError};
use hive_a2a::jsonrpc::{self, Id, Limits, Outcome, Version};
use hive_a2a::sse;
use hive_core::gateway::{CallStream, ERROR_DOMAIN, GatewayError, Reply, ServedCard, Target};
use hive_core::kernel::caller::{Caller, RequestMeta};
use hive_proto::ErrorCode;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

const VERSION_HEADER: &str = "a2a-version";

/// How long a client may keep a card before asking again.
const CARD_MAX_AGE: &str = "private, max-age=60";

/// The `A2A-Version` a request asks for (the one reader of it: the JSON-RPC endpoints, the
/// public tier, the federation proxy and the cards): the header, or — spec 3.6.1 lets a client
/// send it as a request parameter instead — the `A2A-Version` query parameter (its name
/// matched without regard to case, like a header's). A non-empty header wins over the
/// parameter; neither, or both empty, is 0.3. The parameter given twice with different values
/// is refused.
pub(crate) fn requested_version(headers: &HeaderMap, uri: &Uri) -> Result<Version, RpcError> {
    let header = headers
        .get(VERSION_HEADER)
        .map(|value| {
            value
                .to_str()
                .map_err(|_| RpcCode::VersionNotSupported.error())
        })
        .transpose()?
        .filter(|value| !value.trim().is_empty());
    if header.is_some() {
        return Version::from_header(header);
    }
    let mut asked: Option<String> = None;
    for (name, value) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        if !is_version_parameter(&name) {
            continue;
        }
        match &asked {
            Some(earlier) if earlier.trim() != value.trim() => {
                return Err(RpcCode::InvalidRequest
                    .with_message("A2A-Version is given twice with different values"));
            }
            Some(_) => {}
            None => asked = Some(value.into_owned()),
        }
    }
    Version::from_header(asked.as_deref())
}

/// Whether a query parameter is `A2A-Version` (its name matched without regard to case).
pub(crate) fn is_version_parameter(name: &str) -> bool {
    name.eq_ignore_ascii_case(VERSION_HEADER)
}

/// What a JSON-RPC call takes from its request besides the caller and the body: its context
/// for audit records, the client address (for the stream caps), the `A2A-Version` it asks for
/// ([`requested_version`]; an unsupported one is answered as a JSON-RPC error once the request
/// is read) and the slot for its `id` that the error-rendering layer answers refusals with.
pub struct RpcRequest {
    meta: RequestMeta,
    ip: Option<ClientIp>,
    version: Result<Version, RpcError>,
    id_slot: Option<RpcIdSlot>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RpcRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            meta: request_meta(&parts.headers, &parts.extensions),
            ip: parts.extensions.get::<ClientIp>().copied(),
            version: requested_version(&parts.headers, &parts.uri),
            id_slot: parts.extensions.get::<RpcIdSlot>().cloned(),
        })
    }
}

/// The caller, if the request carried credentials (cards are public).
fn optional_caller(caller: Option<axum::Extension<Caller>>) -> Option<Caller> {
    caller.map(|axum::Extension(caller)| caller)
}

#[utoipa::path(
    get,
    path = "/.well-known/agent-card.json",
    tag = "a2a",
    responses((status = 200, description = "The agent card.", body = Object), (status = 304, description = "Not modified (`If-None-Match`).")),
)]
pub async fn instance_card(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let version = requested_version(&headers, &uri).unwrap_or(Version::V0_3);
    let caller = optional_caller(caller);
    let served = state
        .hive
        .gateway
        .served_instance_card(caller.as_ref(), version)
        .await?;
    card_response(&headers, &served)
}

#[utoipa::path(
    get,
    path = "/api/a2a/agents/{id}/agent-card.json",
    tag = "a2a",
    params(("id" = String, Path)),
    responses((status = 200, description = "The agent card.", body = Object), (status = 304, description = "Not modified (`If-None-Match`).")),
)]
pub async fn agent_card(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let version = requested_version(&headers, &uri).unwrap_or(Version::V0_3);
    let caller = optional_caller(caller);
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::of(ErrorCode::NotFound))?;
    let agent = state
        .hive
        .gateway
        .visible_agent(caller.as_ref(), id)
        .await?
        .ok_or_else(|| ApiError::of(ErrorCode::NotFound))?;
    let served = state.hive.gateway.served_agent_card(&agent, version);
    card_response(&headers, &served)
}

/// The card in the caller's version, with its validators; `304` when the client has it. The
/// bytes and the validators are the served card's own, made once.
fn card_response(headers: &HeaderMap, served: &ServedCard) -> Result<Response, ApiError> {
    let encoded = served
        .encoded()
        .ok_or_else(|| ApiError::of(ErrorCode::Internal))?;
    let etag = encoded.etag.as_str();
    let body = encoded.body.clone();
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim().trim_start_matches("W/") == etag || tag.trim() == "*")
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CARD_MAX_AGE),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Authorization, Cookie, A2A-Version"),
    );
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if let Some(value) = encoded
        .last_modified
        .as_deref()
        .and_then(|text| HeaderValue::from_str(text).ok())
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    Ok(response)
}

#[utoipa::path(
    post,
    path = "/api/a2a/jsonrpc",
    tag = "a2a",
    request_body = JsonRpcRequest,
    responses((status = 200, description = "The JSON-RPC response, or a stream of them as server-sent events.", content((JsonRpcResponse = "application/json"), (String = "text/event-stream")))),
)]
pub async fn instance_rpc(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    call: RpcRequest,
    body: Body,
) -> Response {
    rpc(state, caller, call, body, Target::Instance).await
}

/// `POST /api/a2a/jsonrpc/public`: the instance endpoint for the public tier alone (its
/// caller was set by the mesh layer; without the public tier the route answers 404 there).
#[utoipa::path(
    post,
    path = "/api/a2a/jsonrpc/public",
    tag = "a2a",
    request_body = JsonRpcRequest,
    responses((status = 200, description = "The JSON-RPC response, or a stream of them as server-sent events.", content((JsonRpcResponse = "application/json"), (String = "text/event-stream")))),
)]
pub async fn public_rpc(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    call: RpcRequest,
    body: Body,
) -> Response {
    match optional_caller(caller) {
        Some(caller) if caller.is_remote() => {
            rpc(state, caller, call, body, Target::Instance).await
        }
        _ => ApiError::of(ErrorCode::Unauthenticated).into_response(),
    }
}

#[utoipa::path(
    post,
    path = "/api/a2a/agents/{id}/jsonrpc",
    tag = "a2a",
    params(("id" = String, Path)),
    request_body = JsonRpcRequest,
    responses((status = 200, description = "The JSON-RPC response, or a stream of them as server-sent events.", content((JsonRpcResponse = "application/json"), (String = "text/event-stream")))),
)]
pub async fn agent_rpc(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    call: RpcRequest,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    // An agent the caller may not see does not exist for it.
    let visible = match Uuid::parse_str(&id) {
        Ok(id) => state.hive.gateway.visible_agent(Some(&caller), id).await,
        Err(_) => Ok(None),
    };
    match visible {
        Ok(Some(agent)) => rpc(state, caller, call, body, Target::Agent(agent.id)).await,
        Ok(None) => ApiError::of(ErrorCode::NotFound).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn rpc_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Refusals of the whole call (the role, the body, the stream caps, a busy agent, an outage)
/// are [`ApiError`]s: the error-rendering layer writes them as JSON-RPC errors with the id
/// this sets in the request's [`RpcIdSlot`] once the request is parsed.
async fn rpc(
    state: AppState,
    caller: Caller,
    call: RpcRequest,
    body: Body,
    target: Target,
) -> Response {
    let RpcRequest {
        meta,
        ip,
        version,
        id_slot,
    } = call;
    let gateway = &state.hive.gateway;
    if let Err(refused) = gateway.admit(&caller, &meta).await {
        return ApiError::new(ErrorCode::Forbidden, refused.message()).into_response();
    }
    let limits = Limits {
        max_body_bytes: gateway.settings().max_body_bytes,
        ..Limits::default()
    };
    let bytes = match crate::json::read_body(body, limits.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused.into_response(),
    };
    let version = match version {
        Ok(version) => version,
        Err(error) => {
            // The request is not read in a version Hive does not speak; its id is the same in
            // both.
            let id = match jsonrpc::parse_request(&bytes, Version::V1_0, &limits) {
                Ok(request) => request.id,
                Err(rejection) => rejection.id,
            };
            return rpc_response(
                StatusCode::OK,
                jsonrpc::encode_error(&id, &error, Version::V1_0),
            );
        }
    };
    let request = match jsonrpc::parse_request(&bytes, version, &limits) {
        Ok(request) => request,
        Err(rejection) => {
            let status = if rejection.too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::OK
            };
            return rpc_response(
                status,
                jsonrpc::encode_error(&rejection.id, &rejection.error, version),
            );
        }
    };
    let id = request.id.clone();
    if let Some(slot) = &id_slot {
        slot.set(&id);
    }
    // A stream takes its place before it starts; one over the caps is refused.
    let slot = if request.call.method().is_streaming() {
        match state.streams.acquire_for(&caller, ip) {
            Ok(slot) => Some(slot),
            Err(refused) => return refused.into_response(),
        }
    } else {
        None
    };
    match gateway.call(&caller, target, request, &meta).await {
        Ok(Reply::Unary(result)) => {
            let body = match *result {
                Ok(outcome) => jsonrpc::encode_result(&id, &outcome, version)
                    .unwrap_or_else(|error| jsonrpc::encode_error(&id, &error, version)),
                Err(error) => jsonrpc::encode_error(&id, &error, version),
            };
            rpc_response(StatusCode::OK, body)
        }
        Ok(Reply::Stream(events)) => match slot {
            Some(slot) => stream_response(&state, id, version, events, slot),
            None => rpc_response(
                StatusCode::OK,
                jsonrpc::encode_error(&id, &RpcCode::InternalError.error(), version),
            ),
        },
        Err(error @ GatewayError::Throttled { retry_after }) => {
            let message = error.to_string();
            ApiError::new(ErrorCode::RateLimited, message.clone())
                .with_retry_after(retry_after)
                .for_json_rpc(
                    RpcError {
                        code: SERVER_BUSY,
                        message,
                        data: None,
                    }
                    .with_detail(
                        AGENT_BUSY,
                        ERROR_DOMAIN,
                        serde_json::Map::new(),
                    ),
                )
                .into_response()
        }
        Err(GatewayError::Unavailable) => ApiError::unavailable()
            .for_json_rpc(hive_core::gateway::unavailable())
            .into_response(),
        Err(GatewayError::Billing(refusal)) => crate::error::usage_refused(&refusal)
            .for_json_rpc(RpcError {
                code: SERVER_BUSY,
                message: refusal.to_string(),
                data: None,
            })
            .into_response(),
    }
}

/// The `ErrorInfo` reason of a call refused because the agent is busy.
const AGENT_BUSY: &str = "AGENT_BUSY";

fn stream_response(
    state: &AppState,
    id: Id,
    version: Version,
    mut events: CallStream,
    slot: crate::streams::StreamSlot,
) -> Response {
    let (frames, frames_out) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        loop {
            // A client that went away ends the stream at once, not at the agent's next event:
            // the call is recorded as disconnected when `events` is dropped.
            let item = tokio::select! {
                item = events.recv() => item,
                () = frames.closed() => break,
            };
            let Some(item) = item else { break };
            let (frame, last) = match item {
                Ok(event) => (
                    sse::encode_outcome_event(&id, &Outcome::Event(event), version)
                        .unwrap_or_else(|error| sse::encode_error_event(&id, &error, version)),
                    false,
                ),
                Err(error) => (sse::encode_error_event(&id, &error, version), true),
            };
            if frames.send(Bytes::from(frame)).await.is_err() || last {
                break;
            }
        }
    });
    let body = event_stream_body(
        frames_out,
        state.hive.gateway.settings().stream_idle,
        state.shutdown.clone(),
        slot,
    );
    (event_stream_headers(), body).into_response()
}

/// `GET /api/v1/a2a/status`: what the dashboard shows about A2A, nothing secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct A2aStatus {
    pub protocol_versions: [&'static str; 2],
    pub instance_endpoint: String,
    pub agent_card_url: String,
    pub min_role: &'static str,
    pub default_agent: Option<String>,
    pub max_body_bytes: usize,
    pub streams_per_ip: u32,
    pub streams_per_user: u32,
    pub stream_idle_seconds: u64,
    pub task_store: &'static str,
    pub task_ttl_seconds: u64,
    pub push_notifications: bool,
    /// Agents the caller may see that are ready to be called.
    pub ready_agents: usize,
}

#[utoipa::path(
    get,
    path = "/api/v1/a2a/status",
    tag = "a2a",
    responses((status = 200, description = "OK.", body = A2aStatus)),
)]
pub async fn status(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<A2aStatus>, ApiError> {
    let config = &state.hive.config;
    let settings = state.hive.gateway.settings();
    let base = config.auth_url.as_str().trim_end_matches('/').to_owned();
    let card = state
        .hive
        .gateway
        .instance_card(Some(&caller), Version::V1_0)
        .await?;
    Ok(Json(A2aStatus {
        protocol_versions: ["1.0", "0.3"],
        instance_endpoint: format!("{base}/api/a2a/jsonrpc"),
        agent_card_url: format!("{base}/.well-known/agent-card.json"),
        min_role: settings.min_role.as_str(),
        default_agent: settings.default_agent.clone(),
        max_body_bytes: settings.max_body_bytes,
        streams_per_ip: settings.streams_per_ip,
        streams_per_user: settings.streams_per_user,
        stream_idle_seconds: settings.stream_idle.as_secs(),
        task_store: match config.task_store {
            hive_core::kernel::config::TaskStoreKind::Memory => "memory",
            hive_core::kernel::config::TaskStoreKind::Redis => "redis",
            hive_core::kernel::config::TaskStoreKind::Database => "db",
        },
        task_ttl_seconds: config.task_ttl.as_secs(),
        push_notifications: card.capabilities.push_notifications.unwrap_or(false),
        ready_agents: card.skills.len(),
    }))
}
