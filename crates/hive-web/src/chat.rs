//! Chat with an agent: the conversation so far, rendered here; new turns are sent by the
//! page's script to the chat API, whose streamed reply it shows as it arrives.

use crate::page::{Chrome, problem, refusal, render};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use hive_proto::ErrorCode;
use hive_server::auth::Authenticated;
use hive_server::{ApiError, AppState};
use hive_store::PageRequest;
use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

/// The messages shown of a conversation: its latest ones.
const MESSAGES_SHOWN: u32 = 50;
/// Conversations listed beside the chat.
const CONVERSATIONS_SHOWN: u32 = 20;

struct Message {
    from_agent: bool,
    text: String,
    state: String,
}

struct ConversationLink {
    id: String,
    title: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage<'a> {
    chrome: Chrome,
    title: &'a str,
    agent_id: String,
    conversation_id: String,
    messages: Vec<Message>,
    earlier: bool,
    conversations: Vec<ConversationLink>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Which {
    conversation: Option<Uuid>,
}

fn page_request(limit: u32) -> Result<PageRequest, ApiError> {
    PageRequest::first(limit)
        .map_err(|error| ApiError::new(ErrorCode::ValidationFailed, error.to_string()))
}

pub async fn page(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(agent_id): Path<Uuid>,
    Query(which): Query<Which>,
) -> Response {
    let conversations = &state.hive.conversations;
    let listed = match page_request(CONVERSATIONS_SHOWN) {
        Ok(request) => conversations
            .list(&caller, Some(agent_id), &request)
            .await
            .map_err(refusal),
        Err(error) => Err(refusal(error)),
    };
    let listed = match listed {
        Ok(listed) => listed.items,
        Err((status, _)) => return problem(status, None),
    };
    let (mut messages, mut earlier) = (Vec::new(), false);
    if let Some(id) = which.conversation {
        let page = match page_request(MESSAGES_SHOWN) {
            Ok(request) => conversations
                .messages(&caller, id, &request)
                .await
                .map_err(refusal),
            Err(error) => Err(refusal(error)),
        };
        match page {
            Ok(page) => {
                earlier = page.next_cursor.is_some();
                // Newest first from the store; a chat reads oldest first.
                messages = page
                    .items
                    .into_iter()
                    .rev()
                    .map(|message| Message {
                        from_agent: message.author == hive_store::MessageAuthor::Agent,
                        text: message.text,
                        state: message.state,
                    })
                    .collect();
            }
            Err((status, _)) => return problem(status, None),
        }
    }
    let page = ChatPage {
        chrome: Chrome::of(&caller),
        title: "Chat",
        agent_id: agent_id.to_string(),
        conversation_id: which
            .conversation
            .map(|id| id.to_string())
            .unwrap_or_default(),
        messages,
        earlier,
        conversations: listed
            .into_iter()
            .map(|conversation| ConversationLink {
                current: Some(conversation.id) == which.conversation,
                id: conversation.id.to_string(),
                title: conversation.title,
            })
            .collect(),
    };
    render(StatusCode::OK, &page)
}
