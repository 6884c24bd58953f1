//! Hosted agents (operator and up; operators reach their own, admins all): their bundles'
//! versions, restart, pause and resume, their logs (paged, and followed as Server-Sent Events)
//! and what they use. Start, stop and delete are the registry's routes.

use super::openapi::Binary;
use super::users::query_error;
use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::json::{JsonBody, read_body};
use crate::request::ClientIp;
use crate::state::AppState;
use crate::streams::event_stream_response;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use bytes::Bytes;
use hive_core::agents::hosted::bundle::MAX_ARCHIVE_BYTES;
use hive_core::agents::hosted::forward::{
    FORWARD_PREFIX, ForwardRefusal, Forwarded, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIME,
};
use hive_core::agents::hosted::logs::{LogLine, LogPage};
use hive_proto::agents::{
    AgentView, BundleView, HostedStatsView, LogLineView, LogPageView, RollbackRequest,
};
use hive_store::BundleRow;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

fn bundle_view(row: BundleRow) -> BundleView {
    BundleView {
        version: row.version,
        sha256: row.sha256,
        size_bytes: row.size_bytes,
        manifest: row.manifest,
        created_by: row.created_by.map(|id| id.to_string()),
        created_at: row.created_at,
        active: row.active,
    }
}

fn line_view(line: LogLine) -> LogLineView {
    LogLineView {
        seq: line.seq,
        at: line.at,
        stream: line.stream.as_str().to_owned(),
        text: line.text,
    }
}

fn page_view(page: LogPage) -> LogPageView {
    LogPageView {
        lines: page.lines.into_iter().map(line_view).collect(),
        next: page.next,
        first_kept: page.first_kept,
    }
}

/// `PUT /api/v1/agents/{id}/bundle`: the bundle's tar.gz as the body (`application/gzip`, at
/// most 64 MiB); it becomes the version the next start runs.
#[utoipa::path(
    put,
    path = "/api/v1/agents/{id}/bundle",
    tag = "hosted",
    params(("id" = Uuid, Path)),
    request_body(
        description = "The bundle: a gzipped tar archive.",
        content((Binary = "application/gzip"), (Binary = "application/octet-stream")),
    ),
    responses((status = 201, description = "Created.", body = BundleView)),
)]
pub async fn push_bundle(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    request: Request,
) -> Result<(StatusCode, Json<BundleView>), ApiError> {
    let limit = usize::try_from(MAX_ARCHIVE_BYTES).unwrap_or(usize::MAX);
    let archive = read_body(request.into_body(), limit).await?;
    let row = state
        .hive
        .agent_lifecycle
        .hosted()
        .push_bundle(&caller, id, archive.to_vec(), &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(bundle_view(row))))
}

/// `GET /api/v1/agents/{id}/bundles`: the kept versions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/bundles",
    tag = "hosted",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = Vec<BundleView>)),
)]
pub async fn bundles(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<BundleView>>, ApiError> {
    let rows = state
        .hive
        .agent_lifecycle
        .hosted()
        .bundles(&caller, id)
        .await?;
    Ok(Json(rows.into_iter().map(bundle_view).collect()))
}

/// `POST /api/v1/agents/{id}/bundle/rollback`: an earlier kept version runs from the next start.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/bundle/rollback",
    tag = "hosted",
    params(("id" = Uuid, Path)),
    request_body = RollbackRequest,
    responses((status = 200, description = "OK.", body = BundleView)),
)]
pub async fn rollback(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<RollbackRequest>,
) -> Result<Json<BundleView>, ApiError> {
    let row = state
        .hive
        .agent_lifecycle
        .hosted()
        .rollback(&caller, id, request.version, &meta)
        .await?;
    Ok(Json(bundle_view(row)))
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/restart",
    tag = "hosted",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = AgentView)),
)]
pub async fn restart(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = state
        .hive
        .agent_lifecycle
        .hosted()
        .restart(&caller, id, &meta)
        .await?;
    Ok(Json(super::agents::view(&agent)))
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/pause",
    tag = "hosted",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = AgentView)),
)]
pub async fn pause(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<AgentView>, ApiError> {
    paused(state, meta, caller, id, true).await
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/resume",
    tag = "hosted",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = AgentView)),
)]
pub async fn resume(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<AgentView>, ApiError> {
    paused(state, meta, caller, id, false).await
}

async fn paused(
    state: AppState,
    meta: hive_core::kernel::caller::RequestMeta,
    caller: hive_core::kernel::caller::Caller,
    id: Uuid,
    paused: bool,
) -> Result<Json<AgentView>, ApiError> {
    let agent = state
        .hive
        .agent_lifecycle
        .hosted()
        .set_paused(&caller, id, paused, &meta)
        .await?;
    Ok(Json(super::agents::view(&agent)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Lines after this one (none: from the oldest kept).
    after: Option<u64>,
    /// At most this many (1 to 1000; default 200).
    limit: Option<usize>,
}

/// `GET /api/v1/agents/{id}/logs?after=&limit=`: what the agent printed, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/logs",
    tag = "hosted",
    params(("id" = Uuid, Path), LogsQuery),
    responses((status = 200, description = "OK.", body = LogPageView)),
)]
pub async fn logs(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Json<LogPageView>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let page = state
        .hive
        .agent_lifecycle
        .hosted()
        .logs(&caller, id, query.after, query.limit.unwrap_or(200))
        .await?;
    Ok(Json(page_view(page)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FollowQuery {
    after: Option<u64>,
}

/// `GET /api/v1/agents/{id}/logs/stream?after=`: the lines kept after `after` (or after the
/// `Last-Event-ID` a reconnecting reader sends), then each new line as it is printed, as
/// Server-Sent Events (`event: log`, `id:` the line's number, `data:` the line as JSON). It
/// ends when the agent is not running on the replica answering.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/logs/stream",
    tag = "hosted",
    params(("id" = Uuid, Path), FollowQuery),
    responses((status = 200, description = "A stream of server-sent events.", content_type = "text/event-stream", body = String)),
)]
pub async fn follow(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ip: Option<axum::Extension<ClientIp>>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    query: Result<Query<FollowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let resumed = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let slot = state
        .streams
        .acquire_for(&caller, ip.map(|axum::Extension(ip)| ip))?;
    let hosted = state.hive.agent_lifecycle.hosted();
    let (backlog, live) = hosted.follow(&caller, id, resumed.or(query.after)).await?;
    let (frames, frames_out) = mpsc::channel::<Bytes>(64);
    let rereader = (std::sync::Arc::clone(hosted), caller);
    tokio::spawn(async move {
        let (hosted, caller) = rereader;
        let mut last = resumed.or(query.after);
        let mut page = backlog;
        // The whole backlog, page by page, before the live lines (subscribed to already, so
        // none printed meanwhile is missed; those read twice are skipped by number).
        loop {
            let more = page.next.is_some();
            for line in page.lines {
                last = Some(line.seq);
                if frames.send(frame(line)).await.is_err() {
                    return;
                }
            }
            if !more {
                break;
            }
            page = match hosted.logs(&caller, id, last, 1000).await {
                Ok(page) => page,
                Err(_) => return,
            };
        }
        let Some(mut live) = live else { return };
        loop {
            let line = tokio::select! {
                () = frames.closed() => return,
                received = live.recv() => received,
            };
            let lines = match line {
                Ok(line) => vec![line],
                // Fell behind: what was missed is read back from disk.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    match hosted.logs(&caller, id, last, 1000).await {
                        Ok(page) => page.lines,
                        Err(_) => return,
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            for line in lines {
                if last.is_some_and(|seen| line.seq <= seen) {
                    continue;
                }
                last = Some(line.seq);
                if frames.send(frame(line)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(event_stream_response(
        frames_out,
        state.hive.gateway.settings().stream_idle,
        state.shutdown.clone(),
        slot,
    ))
}

fn frame(line: LogLine) -> Bytes {
    let seq = line.seq;
    let data = serde_json::to_string(&line_view(line)).unwrap_or_default();
    Bytes::from(format!("event: log\nid: {seq}\ndata: {data}\n\n"))
}

/// `GET /api/v1/agents/{id}/stats`.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/stats",
    tag = "hosted",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = HostedStatsView)),
)]
pub async fn stats(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<HostedStatsView>, ApiError> {
    let stats = state
        .hive
        .agent_lifecycle
        .hosted()
        .stats(&caller, id)
        .await?;
    Ok(Json(stats))
}

/// A request another replica forwarded, as received: the agent, the signed path and every
/// part the signature covers. `None` (a 404) when the path names no agent.
async fn forwarded(params: &[(String, String)], request: Request) -> Result<Forwarded, StatusCode> {
    let agent = params
        .iter()
        .find(|(name, _)| name == "id")
        .and_then(|(_, id)| id.parse::<Uuid>().ok())
        .ok_or(StatusCode::NOT_FOUND)?;
    let (parts, body) = request.into_parts();
    let route = format!("{FORWARD_PREFIX}{agent}");
    let mut path = parts
        .uri
        .path()
        .strip_prefix(&route)
        .ok_or(StatusCode::NOT_FOUND)?
        .to_owned();
    if let Some(query) = parts.uri.query() {
        path = format!("{path}?{query}");
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let body = read_body(body, usize::MAX)
        .await
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(Forwarded {
        agent,
        method: parts.method.as_str().to_owned(),
        path,
        time: header(HEADER_TIME).parse().ok(),
        nonce: header(HEADER_NONCE),
        signature: header(HEADER_SIGNATURE),
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    })
}

/// The status a refused forwarded request gets (the reason is logged here, not told).
fn refused(agent: Uuid, refusal: ForwardRefusal) -> Response {
    use axum::response::IntoResponse;
    tracing::warn!(%agent, reason = %refusal, "a forwarded request was refused");
    match refusal {
        ForwardRefusal::BadSignature | ForwardRefusal::Stale | ForwardRefusal::Replayed => {
            StatusCode::FORBIDDEN
        }
        ForwardRefusal::NotHere => StatusCode::MISDIRECTED_REQUEST,
        ForwardRefusal::Unreachable => StatusCode::BAD_GATEWAY,
        ForwardRefusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
    .into_response()
}

/// Answers a request another replica forwarded: refused with a status when it names no agent
/// or `handle` refuses it, else `handle`'s answer.
async fn answer_forwarded<F, Fut>(
    params: &[(String, String)],
    request: Request,
    handle: F,
) -> Response
where
    F: FnOnce(Forwarded) -> Fut,
    Fut: Future<Output = Result<Response, ForwardRefusal>>,
{
    use axum::response::IntoResponse;
    let forwarded = match forwarded(params, request).await {
        Ok(forwarded) => forwarded,
        Err(status) => return status.into_response(),
    };
    let agent = forwarded.agent;
    handle(forwarded)
        .await
        .unwrap_or_else(|refusal| refused(agent, refusal))
}

/// `GET|POST /internal/v1/hosted/{id}/channel…`: a call another replica forwards to a hosted
/// agent this one runs. No session or token: the request is signed with the deployment's
/// forwarding key ([`hive_core::agents::hosted::forward`]), checked before anything is relayed.
pub async fn relay(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
) -> Response {
    answer_forwarded(&params, request, async |forwarded| {
        use axum::response::IntoResponse;
        let relayed = state
            .hive
            .agent_lifecycle
            .hosted()
            .relay(forwarded, &meta)
            .await?;
        let chunks = futures_util::stream::unfold(relayed.body, |mut body| async move {
            use hive_a2a::client::Body as _;
            match body.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), body)),
                _ => None,
            }
        });
        let mut response = axum::body::Body::from_stream(chunks).into_response();
        *response.status_mut() =
            StatusCode::from_u16(relayed.status).unwrap_or(StatusCode::BAD_GATEWAY);
        if let Ok(value) = http::HeaderValue::from_str(&relayed.content_type) {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        Ok(response)
    })
    .await
}

/// `GET /internal/v1/hosted/{id}/logs?after=&limit=`: the logs of an agent this replica runs,
/// for another replica (signed like [`relay`]'s calls).
pub async fn relay_logs(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
) -> Response {
    use axum::response::IntoResponse;
    let Ok(Query(query)) = Query::<LogsQuery>::try_from_uri(request.uri()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    answer_forwarded(&params, request, async |forwarded| {
        let page = state
            .hive
            .agent_lifecycle
            .hosted()
            .relay_logs(forwarded, query.after, query.limit.unwrap_or(200), &meta)
            .await?;
        Ok(Json(page).into_response())
    })
    .await
}

/// `GET /internal/v1/hosted/{id}/stats`: the measurements of an agent this replica runs, for
/// another replica (signed like [`relay`]'s calls).
pub async fn relay_stats(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
) -> Response {
    answer_forwarded(&params, request, async |forwarded| {
        use axum::response::IntoResponse;
        let stats = state
            .hive
            .agent_lifecycle
            .hosted()
            .relay_stats(forwarded, &meta)
            .await?;
        Ok(Json(stats).into_response())
    })
    .await
}
