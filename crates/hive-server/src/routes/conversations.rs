//! Chat with an agent (`POST /api/v1/agents/{id}/chat`, an event stream) and the caller's
//! conversations with their paginated history. Conversations belong to the caller alone.

use super::views::page_request;
use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::request::ClientIp;
use crate::state::AppState;
use crate::streams::event_stream_response;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use bytes::Bytes;
use hive_core::gateway::conversations::{ChatEvent, ChatInput};
use hive_proto::ErrorCode;
use hive_proto::auth::{PageQuery, PageResponse};
use hive_proto::conversations::{
    ChatDelta, ChatFailure, ChatRequest, ChatStarted, ChatStatus, ConversationMessageView,
    ConversationQuery, ConversationView,
};
use hive_store::{ConversationMessageRow, ConversationRow};
use http::StatusCode;
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

fn view(conversation: &ConversationRow) -> ConversationView {
    ConversationView {
        id: conversation.id.to_string(),
        agent_id: conversation.agent_id.to_string(),
        title: conversation.title.clone(),
        open_task_id: conversation.open_task_id.map(|id| id.to_string()),
        answering: conversation.turn_started_at.is_some(),
        created_at: conversation.created_at,
        updated_at: conversation.updated_at,
    }
}

fn message_view(message: &ConversationMessageRow) -> ConversationMessageView {
    ConversationMessageView {
        id: message.id.to_string(),
        conversation_id: message.conversation_id.to_string(),
        author: message.author.as_str().to_owned(),
        text: message.text.clone(),
        truncated: message.truncated,
        task_id: message.task_id.map(|id| id.to_string()),
        state: message.state.clone(),
        created_at: message.created_at,
    }
}

fn path_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::of(ErrorCode::NotFound))
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/chat",
    tag = "conversations",
    params(("id" = String, Path)),
    request_body = ChatRequest,
    responses((status = 200, description = "A stream of server-sent events.", content_type = "text/event-stream", body = String)),
)]
pub async fn chat(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    ip: Option<axum::Extension<ClientIp>>,
    Path(agent_id): Path<String>,
    JsonBody(request): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    let agent_id = path_id(&agent_id)?;
    let conversation = request
        .conversation_id
        .as_deref()
        .map(|raw| {
            Uuid::parse_str(raw).map_err(|_| {
                ApiError::new(
                    ErrorCode::ValidationFailed,
                    "conversationId must be a conversation's id",
                )
            })
        })
        .transpose()?;
    // The stream takes its place before the agent is called; one over the caps is refused.
    let slot = state
        .streams
        .acquire_for(&caller, ip.map(|axum::Extension(ip)| ip))?;
    let events = state
        .hive
        .conversations
        .chat(
            &caller,
            agent_id,
            ChatInput {
                conversation_id: conversation,
                text: request.text,
                message_id: request.message_id,
            },
            &meta,
        )
        .await?;
    let (frames, frames_out) = mpsc::channel::<Bytes>(16);
    tokio::spawn(relay(events, frames));
    Ok(event_stream_response(
        frames_out,
        state.hive.gateway.settings().stream_idle,
        state.shutdown.clone(),
        slot,
    ))
}

/// Chat events as SSE frames, until the reply (or the reader leaves).
async fn relay(mut events: mpsc::Receiver<ChatEvent>, frames: mpsc::Sender<Bytes>) {
    while let Some(event) = events.recv().await {
        let last = matches!(event, ChatEvent::Reply(_));
        let frame = match &event {
            ChatEvent::Started {
                conversation,
                message,
            } => frame(
                "conversation",
                &ChatStarted {
                    conversation: view(conversation),
                    message: message_view(message),
                },
            ),
            ChatEvent::Status { task_id, state } => frame(
                "status",
                &ChatStatus {
                    task_id: task_id.clone(),
                    state: state.clone(),
                },
            ),
            ChatEvent::Delta(text) => frame("delta", &ChatDelta { text: text.clone() }),
            ChatEvent::Failed(message) => frame(
                "error",
                &ChatFailure {
                    message: message.clone(),
                },
            ),
            ChatEvent::Reply(message) => frame("reply", &message_view(message)),
        };
        if frames.send(frame).await.is_err() || last {
            return;
        }
    }
}

/// One SSE event: its name and its JSON (one line: serde_json escapes newlines).
fn frame(event: &str, data: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

#[utoipa::path(
    get,
    path = "/api/v1/conversations",
    tag = "conversations",
    params(ConversationQuery),
    responses((status = 200, description = "OK.", body = PageResponse<ConversationView>)),
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<ConversationQuery>,
) -> Result<Json<PageResponse<ConversationView>>, ApiError> {
    let agent_id = query
        .agent_id
        .as_deref()
        .map(|raw| {
            Uuid::parse_str(raw).map_err(|_| {
                ApiError::new(ErrorCode::ValidationFailed, "agentId must be an agent's id")
            })
        })
        .transpose()?;
    let page = page_request(&PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    })?;
    let found = state
        .hive
        .conversations
        .list(&caller, agent_id, &page)
        .await?;
    Ok(Json(PageResponse {
        items: found.items.iter().map(view).collect(),
        next_cursor: found.next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}",
    tag = "conversations",
    params(("id" = String, Path)),
    responses((status = 200, description = "OK.", body = ConversationView)),
)]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = state.hive.conversations.get(&caller, path_id(&id)?).await?;
    Ok(Json(view(&conversation)))
}

#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}/messages",
    tag = "conversations",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, description = "OK.", body = PageResponse<ConversationMessageView>)),
)]
pub async fn messages(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageResponse<ConversationMessageView>>, ApiError> {
    let found = state
        .hive
        .conversations
        .messages(&caller, path_id(&id)?, &page_request(&query)?)
        .await?;
    Ok(Json(PageResponse {
        items: found.items.iter().map(message_view).collect(),
        next_cursor: found.next_cursor,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/conversations/{id}",
    tag = "conversations",
    params(("id" = String, Path)),
    responses((status = 204, description = "Done.")),
)]
pub async fn delete(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .hive
        .conversations
        .delete(&caller, path_id(&id)?, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
