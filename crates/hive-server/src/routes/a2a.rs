//! The A2A endpoints: agent cards (public; what they list depends on the caller), the JSON-RPC
//! endpoints of the instance and of each agent (a session, an API token with the `execute`
//! scope or the internal token, of at least `A2A_JSONRPC_MIN_ROLE`), and the summary of the
//! A2A configuration for the dashboard.

use crate::auth::{Authenticated, Meta, identity_error};
use crate::error::ApiError;
use crate::pipeline::ClientIp;
use crate::state::AppState;
use crate::streams::event_stream_body;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use hive_a2a::error::{ErrorCode as RpcCode, RpcError};
use hive_a2a::jsonrpc::{self, Id, Limits, Outcome, Version};
use hive_a2a::sse;
use hive_core::a2a::{GatewayError, Reply, ServedCard, StreamItem, Target};
use hive_core::identity::Caller;
use hive_proto::ErrorCode;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use time::format_description::well_known::Rfc2822;
use tokio::sync::mpsc;
use uuid::Uuid;

const VERSION_HEADER: &str = "a2a-version";

/// How long a client may keep a card before asking again.
const CARD_MAX_AGE: &str = "private, max-age=60";

fn requested_version(headers: &HeaderMap) -> Result<Version, RpcError> {
    Version::from_header(
        headers
            .get(VERSION_HEADER)
            .and_then(|value| value.to_str().ok()),
    )
}

/// The caller, if the request carried credentials (cards are public).
fn optional_caller(caller: Option<axum::Extension<Caller>>) -> Option<Caller> {
    caller.map(|axum::Extension(caller)| caller)
}

pub async fn instance_card(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let version = requested_version(&headers).unwrap_or(Version::V0_3);
    let caller = optional_caller(caller);
    let served = state
        .hive
        .gateway
        .served_instance_card(caller.as_ref(), version)
        .await
        .map_err(identity_error)?;
    card_response(&headers, &served, version)
}

pub async fn agent_card(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let version = requested_version(&headers).unwrap_or(Version::V0_3);
    let caller = optional_caller(caller);
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::of(ErrorCode::NotFound))?;
    let agent = state
        .hive
        .gateway
        .visible_agent(caller.as_ref(), id)
        .await
        .map_err(identity_error)?
        .ok_or_else(|| ApiError::of(ErrorCode::NotFound))?;
    let served = state.hive.gateway.served_agent_card(&agent, version);
    card_response(&headers, &served, version)
}

/// The card in the caller's version, with its validators; `304` when the client has it.
fn card_response(
    headers: &HeaderMap,
    served: &ServedCard,
    version: Version,
) -> Result<Response, ApiError> {
    let body = jsonrpc::encode_outcome(&Outcome::AgentCard(Box::new(served.card.clone())), version)
        .ok()
        .and_then(|value| serde_json::to_vec(&value).ok())
        .ok_or_else(|| ApiError::of(ErrorCode::Internal))?;
    let etag = format!("\"{}\"", &hive_crypto::sha256_hex(&body)[..32]);
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
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if let Some(value) = served
        .modified
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc2822)
        .ok()
        .map(|text| text.replace("+0000", "GMT"))
        .and_then(|text| HeaderValue::from_str(&text).ok())
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    Ok(response)
}

pub async fn instance_rpc(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    ip: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    rpc(state, meta, caller, ip, headers, body, Target::Instance).await
}

/// `POST /api/a2a/jsonrpc/public`: the instance endpoint for the public tier alone (its
/// caller was set by the mesh layer; without the public tier the route answers 404 there).
pub async fn public_rpc(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Option<axum::Extension<Caller>>,
    ip: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match optional_caller(caller) {
        Some(caller) if caller.is_remote() => {
            rpc(state, meta, caller, ip, headers, body, Target::Instance).await
        }
        _ => ApiError::of(ErrorCode::Unauthenticated).into_response(),
    }
}

pub async fn agent_rpc(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    ip: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    // An agent the caller may not see does not exist for it.
    let visible = match Uuid::parse_str(&id) {
        Ok(id) => state.hive.gateway.visible_agent(Some(&caller), id).await,
        Err(_) => Ok(None),
    };
    match visible {
        Ok(Some(agent)) => {
            rpc(
                state,
                meta,
                caller,
                ip,
                headers,
                body,
                Target::Agent(agent.id),
            )
            .await
        }
        Ok(None) => ApiError::of(ErrorCode::NotFound).into_response(),
        Err(error) => identity_error(error).into_response(),
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

async fn rpc(
    state: AppState,
    meta: hive_core::identity::RequestMeta,
    caller: Caller,
    ip: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    body: Body,
    target: Target,
) -> Response {
    let gateway = &state.hive.gateway;
    if !gateway.may_call(&caller) {
        state
            .hive
            .identity
            .audit_refusal(caller.actor(), "a2a.call", "role_below_a2a_minimum", &meta)
            .await;
        return ApiError::new(
            ErrorCode::Forbidden,
            "your role may not call agents here (A2A_JSONRPC_MIN_ROLE)",
        )
        .into_response();
    }
    let version = match requested_version(&headers) {
        Ok(version) => version,
        Err(error) => {
            return rpc_response(
                StatusCode::OK,
                jsonrpc::encode_error(&Id::Null, &error, Version::V1_0),
            );
        }
    };
    let limits = Limits {
        max_body_bytes: gateway.settings().max_body_bytes,
        ..Limits::default()
    };
    let bytes = match crate::json::read_body(body, limits.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused.into_response(),
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
    // A stream takes its place before it starts; one over the caps is refused.
    let slot = if request.call.method().is_streaming() {
        match state
            .streams
            .acquire_for(&caller, ip.map(|axum::Extension(ip)| ip))
        {
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
        Err(GatewayError::Throttled { retry_after }) => {
            ApiError::new(ErrorCode::RateLimited, "the agent is busy; retry later")
                .with_retry_after(retry_after)
                .into_response()
        }
        Err(GatewayError::Unavailable) => ApiError::of(ErrorCode::ServiceUnavailable)
            .with_retry_after(5)
            .into_response(),
    }
}

fn stream_response(
    state: &AppState,
    id: Id,
    version: Version,
    mut events: mpsc::Receiver<StreamItem>,
    slot: crate::streams::StreamSlot,
) -> Response {
    let (frames, frames_out) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        while let Some(item) = events.recv().await {
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
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(sse::CONTENT_TYPE),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(sse::CACHE_CONTROL),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/v1/a2a/status`: what the dashboard shows about A2A, nothing secret.
#[derive(Debug, Serialize)]
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
        .await
        .map_err(identity_error)?;
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
            hive_core::config::TaskStoreKind::Memory => "memory",
            hive_core::config::TaskStoreKind::Redis => "redis",
            hive_core::config::TaskStoreKind::Database => "db",
        },
        task_ttl_seconds: config.task_ttl.as_secs(),
        push_notifications: card.capabilities.push_notifications.unwrap_or(false),
        ready_agents: card.skills.len(),
    }))
}
