//! The agent registry (operator and up; operators reach their own agents, admins all).

use super::users::query_error;
use super::views::page_request;
use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use hive_core::agents::import::ImportRequest;
use hive_core::agents::{AgentCall, AgentChange, DEFAULT_USAGE_DAYS, NewAgent, skills_of};
use hive_proto::ErrorCode;
use hive_proto::agents::{
    AgentCallView, AgentUsageView, AgentView, CreateAgentRequest, ImportAgentRequest,
    ImportAgentResponse, LimitsView, UpdateAgentRequest, UsageDayView, UsageQuery,
};
use hive_proto::auth::{PageQuery, PageResponse};
use hive_store::{AgentLimits, AgentRow};
use http::StatusCode;
use uuid::Uuid;

/// An agent as the API shows it.
pub fn view(agent: &AgentRow) -> AgentView {
    AgentView {
        id: agent.id.to_string(),
        owner_id: agent.owner_id.to_string(),
        name: agent.name.clone(),
        description: agent.description.clone(),
        visibility: agent.visibility,
        kind: agent.kind,
        runtime: serde_json::from_str(&agent.runtime).unwrap_or_default(),
        skills: skills_of(agent),
        limits: LimitsView {
            requests_per_minute: agent.limits.requests_per_minute,
            tokens_per_day: agent.limits.tokens_per_day,
            concurrent_tasks: agent.limits.concurrent_tasks,
            timeout_seconds: agent.limits.timeout_seconds,
        },
        status: agent.status,
        status_detail: agent.status_detail.clone(),
        version: agent.version,
        created_at: agent.created_at,
        updated_at: agent.updated_at,
    }
}

fn limits(view: LimitsView) -> AgentLimits {
    AgentLimits {
        requests_per_minute: view.requests_per_minute,
        tokens_per_day: view.tokens_per_day,
        concurrent_tasks: view.concurrent_tasks,
        timeout_seconds: view.timeout_seconds,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "agents",
    params(PageQuery),
    responses((status = 200, description = "OK.", body = PageResponse<AgentView>)),
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageResponse<AgentView>>, ApiError> {
    let page = state
        .hive
        .agents
        .list(&caller, &page_request(&query)?)
        .await?;
    Ok(Json(PageResponse {
        items: page.items.iter().map(view).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/agents",
    tag = "agents",
    request_body = CreateAgentRequest,
    responses((status = 201, description = "Created.", body = AgentView)),
)]
pub async fn create(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<CreateAgentRequest>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    let new = NewAgent {
        name: request.name,
        description: request.description,
        visibility: request.visibility,
        kind: request.kind,
        runtime: request.runtime,
        skills: request.skills,
        limits: request.limits.map(limits),
    };
    let agent = state.hive.agents.create(&caller, &new, &meta).await?;
    Ok((StatusCode::CREATED, Json(view(&agent))))
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = AgentView)),
)]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = state.hive.agents.get(&caller, id).await?;
    Ok(Json(view(&agent)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    params(("id" = Uuid, Path)),
    request_body = UpdateAgentRequest,
    responses((status = 200, description = "OK.", body = AgentView)),
)]
pub async fn update(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<UpdateAgentRequest>,
) -> Result<Json<AgentView>, ApiError> {
    let change = AgentChange {
        name: request.name,
        description: request.description,
        visibility: request.visibility,
        runtime: request.runtime,
        skills: request.skills,
        limits: request.limits.map(limits),
    };
    let agent = state
        .hive
        .agents
        .update(&caller, id, &change, &meta)
        .await?;
    Ok(Json(view(&agent)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Done.")),
)]
pub async fn delete(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.hive.agents.delete(&caller, id, &meta).await?;
    // A hosted agent's sandbox ends here and its files go (other replicas sweep theirs).
    state.hive.agent_lifecycle.hosted().remove(id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/import",
    tag = "agents",
    request_body = ImportAgentRequest,
    responses((status = 201, description = "The agent, created.", body = ImportAgentResponse), (status = 200, description = "Nothing created (a dry run).", body = ImportAgentResponse)),
)]
pub async fn import(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<ImportAgentRequest>,
) -> Result<(StatusCode, Json<ImportAgentResponse>), ApiError> {
    let credential_secret_id = request
        .credential_secret_id
        .as_deref()
        .map(str::parse::<Uuid>)
        .transpose()
        .map_err(|_| ApiError::new(ErrorCode::ValidationFailed, "credentialSecretId is no id"))?;
    let import = ImportRequest {
        url: request.url,
        name: request.name,
        visibility: request.visibility,
        credential_secret_id,
    };
    let importer = &state.hive.agent_import;
    let card = |card: &hive_core::agents::import::AgentCard| {
        serde_json::to_value(card).unwrap_or_default()
    };
    if request.create {
        let (preview, agent) = importer.import(&caller, &import, &meta).await?;
        let body = ImportAgentResponse {
            card_url: preview.card_url,
            card: card(&preview.card),
            agent: serde_json::to_value(view(&agent)).unwrap_or_default(),
        };
        return Ok((StatusCode::CREATED, Json(body)));
    }
    let preview = importer.preview(&caller, &import, &meta).await?;
    let proposed = &preview.agent;
    let body = ImportAgentResponse {
        card_url: preview.card_url.clone(),
        card: card(&preview.card),
        agent: serde_json::json!({
            "name": proposed.name,
            "description": proposed.description,
            "visibility": proposed.visibility,
            "kind": proposed.kind,
            "runtime": proposed.runtime,
            "skills": proposed.skills,
        }),
    };
    Ok((StatusCode::OK, Json(body)))
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/start",
    tag = "agents",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = AgentView)),
)]
pub async fn start(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = state.hive.agent_lifecycle.start(&caller, id, &meta).await?;
    Ok(Json(view(&agent)))
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/stop",
    tag = "agents",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK.", body = AgentView)),
)]
pub async fn stop(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = state.hive.agent_lifecycle.stop(&caller, id, &meta).await?;
    Ok(Json(view(&agent)))
}

/// `GET /api/v1/agents/{id}/usage?days=N`: calls and tokens per UTC day, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/usage",
    tag = "agents",
    params(("id" = Uuid, Path), UsageQuery),
    responses((status = 200, description = "OK.", body = AgentUsageView)),
)]
pub async fn usage(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<AgentUsageView>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let days = query.days.unwrap_or(DEFAULT_USAGE_DAYS);
    let used = state.hive.agents.usage_by_day(&caller, id, days).await?;
    Ok(Json(AgentUsageView {
        agent_id: id.to_string(),
        days: used
            .iter()
            .map(|day| UsageDayView {
                day: day.day.to_string(),
                calls: day.calls,
                prompt_tokens: day.prompt_tokens,
                completion_tokens: day.completion_tokens,
                total_tokens: day.prompt_tokens.saturating_add(day.completion_tokens),
            })
            .collect(),
    }))
}

fn call_view(call: AgentCall) -> AgentCallView {
    AgentCallView {
        id: call.id.to_string(),
        at: call.at,
        caller: call.caller,
        action: call.action,
        method: call.method,
        outcome: call.outcome,
        error_code: call.error_code,
        error_message: call.error_message,
        duration_ms: call.duration_ms,
    }
}

/// `GET /api/v1/agents/{id}/calls`: the calls to the agent, newest first, keyset paged.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/calls",
    tag = "agents",
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, description = "OK.", body = PageResponse<AgentCallView>)),
)]
pub async fn calls(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<PageResponse<AgentCallView>>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let page = state
        .hive
        .agents
        .calls(&caller, id, &page_request(&query)?)
        .await?;
    Ok(Json(PageResponse {
        items: page.items.into_iter().map(call_view).collect(),
        next_cursor: page.next_cursor,
    }))
}
