//! Chat with an agent on the wire: the message a caller posts, the conversations and messages
//! the API lists, and the events of a chat stream.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/agents/{id}/chat`: one message, in a new conversation or an existing one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatRequest {
    /// The conversation to continue; none starts a new one.
    #[serde(default)]
    pub conversation_id: Option<String>,
    pub text: String,
    /// The A2A message id to send the agent (1 to 128 visible characters; default: the stored
    /// message's id), for a client that correlates its own records with the agent's.
    #[serde(default)]
    pub message_id: Option<String>,
}

/// `?agentId=&limit=&cursor=` of `GET /api/v1/conversations`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversationQuery {
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A conversation as the API shows it (to its owner only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub id: String,
    pub agent_id: String,
    /// The start of the first message.
    pub title: String,
    /// The task the agent left waiting for an answer; the next message continues it.
    pub open_task_id: Option<String>,
    /// A turn is under way (the agent has not finished answering).
    pub answering: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationMessageView {
    pub id: String,
    pub conversation_id: String,
    /// `user` or `agent`.
    pub author: String,
    pub text: String,
    /// The text was cut at 256 KiB.
    pub truncated: bool,
    pub task_id: Option<String>,
    /// After an agent's reply: the task's state (`completed`, `input-required`, `failed`…),
    /// `refused` when Hive did not deliver the message, `interrupted` when the stream ended
    /// without a final state; empty otherwise.
    pub state: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// `event: conversation`, the first event of a chat stream: the conversation and the
/// caller's message, stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatStarted {
    pub conversation: ConversationView,
    pub message: ConversationMessageView,
}

/// `event: status`: the task's state changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatStatus {
    pub task_id: String,
    pub state: String,
}

/// `event: delta`: more text of the reply, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatDelta {
    pub text: String,
}

/// `event: error`: what went wrong with the turn (no secrets); a `reply` event follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatFailure {
    pub message: String,
}
