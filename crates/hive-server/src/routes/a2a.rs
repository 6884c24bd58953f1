//! The A2A endpoints: agent cards (public; what they list depends on the caller), the JSON-RPC
//! endpoints of the instance and of each agent (a session, an API token with the `execute`
//! scope or the internal token, of at least `A2A_JSONRPC_MIN_ROLE`), and the summary of the
//! A2A configuration for the dashboard.

use crate::auth::{Authenticated, Meta};
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
use hive_core::gateway::{GatewayError, Reply, ServedCard, StreamItem, Target};
use hive_core::kernel::audit::{AuditAction, AuditEvent};
use hive_core::kernel::caller::Caller;
use hive_proto::ErrorCode;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Serialize;
use time::format_description::well_known::Rfc2822;
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

/// The `A2A-Version` a call asks for ([`requested_version`]); an unsupported one is answered
/// as a JSON-RPC error once the request is read.
pub struct AskedVersion(Result<Version, RpcError>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for AskedVersion {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(requested_version(&parts.headers, &parts.uri)))
    }
}

/// The caller, if the request carried credentials (cards are public).
fn optional_caller(caller: Option<axum::Extension<Caller>>) -> Option<Caller> {
    caller.map(|axum::Extension(caller)| caller)
}

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
    card_response(&headers, &served, version)
}

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
    AskedVersion(version): AskedVersion,
    body: Body,
) -> Response {
    rpc(state, meta, caller, ip, version, body, Target::Instance).await
}

/// `POST /api/a2a/jsonrpc/public`: the instance endpoint for the public tier alone (its
/// caller was set by the mesh layer; without the public tier the route answers 404 there).
pub async fn public_rpc(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Option<axum::Extension<Caller>>,
    ip: Option<axum::Extension<ClientIp>>,
    AskedVersion(version): AskedVersion,
    body: Body,
) -> Response {
    match optional_caller(caller) {
        Some(caller) if caller.is_remote() => {
            rpc(state, meta, caller, ip, version, body, Target::Instance).await
        }
        _ => ApiError::of(ErrorCode::Unauthenticated).into_response(),
    }
}

pub async fn agent_rpc(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    ip: Option<axum::Extension<ClientIp>>,
    AskedVersion(version): AskedVersion,
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
                version,
                body,
                Target::Agent(agent.id),
            )
            .await
        }
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

async fn rpc(
    state: AppState,
    meta: hive_core::kernel::caller::RequestMeta,
    caller: Caller,
    ip: Option<axum::Extension<ClientIp>>,
    version: Result<Version, RpcError>,
    body: Body,
    target: Target,
) -> Response {
    let gateway = &state.hive.gateway;
    if !gateway.may_call(&caller) {
        state
            .hive
            .auditor
            .record_refusal(
                AuditEvent::refused(
                    caller.principal(),
                    AuditAction::A2aCall,
                    "role_below_a2a_minimum",
                ),
                &meta,
            )
            .await;
        return ApiError::new(
            ErrorCode::Forbidden,
            "your role may not call agents here (A2A_JSONRPC_MIN_ROLE)",
        )
        .into_response();
    }
    let version = match version {
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
        Err(GatewayError::Throttled { retry_after }) => refusal(
            StatusCode::TOO_MANY_REQUESTS,
            &id,
            version,
            RpcError {
                code: SERVER_BUSY,
                message: format!("the agent is busy; retry in {retry_after} s"),
                data: None,
            },
            "AGENT_BUSY",
            retry_after,
        ),
        Err(GatewayError::Unavailable) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            &id,
            version,
            RpcCode::InternalError.with_message(
                "Hive cannot complete the call now: a store it depends on is unavailable",
            ),
            "SERVICE_UNAVAILABLE",
            UNAVAILABLE_RETRY_AFTER,
        ),
    }
}

/// The JSON-RPC code of a call refused because the agent is busy (a limit of it is reached):
/// A2A defines none, and JSON-RPC leaves -32000 to -32099 to the server (A2A's own codes are
/// -32001 to -32009).
pub(crate) const SERVER_BUSY: i32 = -32000;

/// What a client waits before retrying a call refused for an outage.
const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// A call refused as a whole: the HTTP status a load balancer or client acts on, with
/// `Retry-After`, and the JSON-RPC error body with the request's id and an `ErrorInfo` naming
/// the reason.
fn refusal(
    status: StatusCode,
    id: &Id,
    version: Version,
    error: RpcError,
    reason: &str,
    retry_after: u64,
) -> Response {
    let mut metadata = serde_json::Map::new();
    metadata.insert("retryAfter".into(), retry_after.to_string().into());
    metadata.insert("httpStatus".into(), status.as_u16().to_string().into());
    let error = error.with_detail(reason, hive_core::gateway::ERROR_DOMAIN, metadata);
    let mut response = rpc_response(status, jsonrpc::encode_error(id, &error, version));
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
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
