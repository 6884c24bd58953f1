//! Conversations: a caller's chat with one agent, kept as a paginated history of text
//! messages. A conversation is the A2A context of the tasks it makes; a turn (the caller's
//! message and the agent's reply) is claimed in the store, so two replicas never run two
//! turns of one conversation at once.

use crate::{AuditAppend, Page, PageRequest, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// Longest owner principal (`user:<uuid>`, `internal`…).
pub const CONVERSATION_OWNER_MAX_CHARS: usize = 200;
/// Longest title (the start of the first message).
pub const CONVERSATION_TITLE_MAX_CHARS: usize = 200;
/// Longest text a message keeps, in bytes (UTF-8); a longer reply is cut and marked.
pub const CONVERSATION_TEXT_MAX_BYTES: usize = 262_144;
/// Longest A2A task state name a message keeps.
pub const CONVERSATION_STATE_MAX_CHARS: usize = 32;

/// One conversation of one owner with one agent.
#[derive(Clone, PartialEq, Eq)]
pub struct ConversationRow {
    pub id: Uuid,
    /// The principal it belongs to (`user:<uuid>`, `internal`); nobody else sees it.
    pub owner: String,
    /// The account behind `owner`, if a user (the conversation goes with the account).
    pub user_id: Option<Uuid>,
    /// The agent it talks to (the conversation goes with the agent).
    pub agent_id: Uuid,
    pub title: String,
    /// The task the agent left waiting for the caller (input or auth required): the next
    /// message continues it.
    pub open_task_id: Option<Uuid>,
    /// When the turn under way was claimed; `None` between turns.
    pub turn_started_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    /// The latest message (or claim); lists are ordered by it.
    pub updated_at: OffsetDateTime,
}

hive_proto::debug_redacted!(ConversationRow {
    show: [
        id,
        owner,
        user_id,
        agent_id,
        open_task_id,
        turn_started_at,
        created_at,
        updated_at
    ],
    hide: [title]
});

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAuthor {
    User,
    Agent,
}

impl MessageAuthor {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
        }
    }

    /// The stored word back; anything else is a corrupt row.
    pub fn from_stored(word: &str) -> Result<Self, StoreError> {
        match word {
            "user" => Ok(Self::User),
            "agent" => Ok(Self::Agent),
            other => Err(StoreError::Backend(format!(
                "unknown conversation message author {other:?}"
            ))),
        }
    }
}

/// One message of a conversation.
#[derive(Clone, PartialEq, Eq)]
pub struct ConversationMessageRow {
    /// A UUIDv7 (also the A2A message id of the caller's messages).
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub author: MessageAuthor,
    /// The text parts of the message (an agent's reply: of its message and its artifacts).
    pub text: String,
    /// The text was cut at [`CONVERSATION_TEXT_MAX_BYTES`].
    pub truncated: bool,
    /// The A2A task the message belongs to, if any.
    pub task_id: Option<Uuid>,
    /// The task's state after the reply (`completed`, `input-required`, `failed`…); empty for
    /// the caller's messages and for replies without a task.
    pub state: String,
    pub created_at: OffsetDateTime,
}

hive_proto::debug_redacted!(ConversationMessageRow {
    show: [
        id,
        conversation_id,
        author,
        truncated,
        task_id,
        state,
        created_at
    ],
    hide: [text]
});

/// What [`ConversationRepo::begin_turn`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnStart {
    /// The turn is claimed and the caller's message stored; the conversation as it now is.
    Started(ConversationRow),
    /// A turn claimed after `stale_before` is still under way; nothing was written.
    Busy,
    /// The owner has no such conversation; nothing was written.
    NotFound,
}

#[async_trait]
pub trait ConversationRepo: Send + Sync {
    /// Creates the conversation (its turn claimed: `turn_started_at` set) with the caller's
    /// first message, in one transaction. [`StoreError::Conflict`] for an id used before;
    /// [`StoreError::Invalid`] for a field over its cap.
    async fn create(
        &self,
        conversation: &ConversationRow,
        first: &ConversationMessageRow,
    ) -> Result<(), StoreError>;

    /// Claims the next turn of the owner's conversation and stores the caller's message, in
    /// one transaction: only when no turn is under way, or the one under way was claimed
    /// before `stale_before` (its replica died). `updated_at` and `turn_started_at` become
    /// `message.created_at`.
    async fn begin_turn(
        &self,
        owner: &str,
        message: &ConversationMessageRow,
        stale_before: OffsetDateTime,
    ) -> Result<TurnStart, StoreError>;

    /// Ends the turn: stores the agent's reply (if there is one), records the task left open
    /// for the caller (or none) and releases the claim, in one transaction. `updated_at`
    /// becomes `now`. `Ok(false)` when the conversation is gone (deleted meanwhile).
    async fn finish_turn(
        &self,
        conversation_id: Uuid,
        reply: Option<&ConversationMessageRow>,
        open_task_id: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// The owner's conversation, if any.
    async fn get(&self, owner: &str, id: Uuid) -> Result<Option<ConversationRow>, StoreError>;

    /// The owner's conversations (with `agent_id` only, if given), latest `updated_at` first
    /// (ties by id, descending); the cursor is `(updated_at, id)` of the last row.
    async fn list(
        &self,
        owner: &str,
        agent_id: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<ConversationRow>, StoreError>;

    /// The conversation's messages, newest first (`(created_at, id)` descending); the
    /// caller checks the owner with [`Self::get`].
    async fn messages(
        &self,
        conversation_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<ConversationMessageRow>, StoreError>;

    /// Deletes the owner's conversation and its messages; `Ok(false)` when there was none (no
    /// audit record then).
    async fn delete(
        &self,
        owner: &str,
        id: Uuid,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Deletes conversations (and their messages) with no message since `before`; returns how
    /// many conversations.
    async fn prune_idle_since(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

/// Refuses a conversation the databases would refuse less clearly.
pub fn check_conversation(row: &ConversationRow) -> Result<(), StoreError> {
    if row.owner.is_empty() || row.owner.chars().count() > CONVERSATION_OWNER_MAX_CHARS {
        return Err(StoreError::Invalid(format!(
            "a conversation's owner must be 1 to {CONVERSATION_OWNER_MAX_CHARS} characters"
        )));
    }
    if row.title.chars().count() > CONVERSATION_TITLE_MAX_CHARS {
        return Err(StoreError::Invalid(format!(
            "a conversation's title must be at most {CONVERSATION_TITLE_MAX_CHARS} characters"
        )));
    }
    Ok(())
}

/// Refuses a message the databases would refuse less clearly.
pub fn check_conversation_message(row: &ConversationMessageRow) -> Result<(), StoreError> {
    if row.text.len() > CONVERSATION_TEXT_MAX_BYTES {
        return Err(StoreError::Invalid(format!(
            "a conversation message must be at most {CONVERSATION_TEXT_MAX_BYTES} bytes"
        )));
    }
    if row.state.chars().count() > CONVERSATION_STATE_MAX_CHARS {
        return Err(StoreError::Invalid(format!(
            "a conversation message's state must be at most {CONVERSATION_STATE_MAX_CHARS} characters"
        )));
    }
    Ok(())
}
