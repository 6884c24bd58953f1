//! Chat with an agent: the conversation so far, rendered here; new turns are sent by the
//! page's script to the chat API, whose streamed reply it shows as it arrives.

use crate::page::{Chrome, Refused, page_request, refusal, shown};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use hive_core::kernel::caller::Caller;
use hive_server::AppState;
use hive_server::auth::Authenticated;
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

pub async fn page(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(agent_id): Path<Uuid>,
    Query(which): Query<Which>,
) -> Response {
    shown(page_of(&state, &caller, agent_id, which.conversation).await)
}

async fn page_of(
    state: &AppState,
    caller: &Caller,
    agent_id: Uuid,
    open: Option<Uuid>,
) -> Result<ChatPage<'static>, Refused> {
    let conversations = &state.hive.conversations;
    let listed = conversations
        .list(
            caller,
            Some(agent_id),
            &page_request(CONVERSATIONS_SHOWN, None)?,
        )
        .await
        .map_err(refusal)?;
    let (mut messages, mut earlier) = (Vec::new(), false);
    if let Some(id) = open {
        let page = conversations
            .messages(caller, id, &page_request(MESSAGES_SHOWN, None)?)
            .await
            .map_err(refusal)?;
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
    Ok(ChatPage {
        chrome: Chrome::of(caller),
        title: "Chat",
        agent_id: agent_id.to_string(),
        conversation_id: open.map(|id| id.to_string()).unwrap_or_default(),
        messages,
        earlier,
        conversations: listed
            .items
            .into_iter()
            .map(|conversation| ConversationLink {
                current: Some(conversation.id) == open,
                id: conversation.id.to_string(),
                title: conversation.title,
            })
            .collect(),
    })
}
