//! Chat with an agent: a conversation is the A2A context of the tasks it makes, kept as a
//! paginated history of text messages that belongs to the caller's principal alone (admins
//! included, nobody else reads it).
//!
//! A turn is the caller's message and the agent's reply. It is claimed in the store before the
//! agent is called — so one conversation runs one turn at a time, across replicas — and the
//! caller's message is stored with the claim. The agent is called through the gateway (the
//! same checks, limits and audit as any A2A call); its events are relayed as chat events, and
//! the reply is stored when the task settles, whether or not the client still listens.

use crate::agents::AgentError;
use crate::gateway::{CallStream, Gateway, GatewayError, StreamItem, Target, principal};
use crate::kernel::audit::{AuditAction, Auditor};
use crate::kernel::caller::{Caller, RequestMeta};
use hive_a2a::error::ErrorCode as RpcCode;
use hive_a2a::jsonrpc::{Call, Id, Outcome, Request, Version};
use hive_a2a::v1::{self, Message, Part, PartContent, Role, SendMessageRequest, StreamResponse};
use hive_proto::SharedClock;
use hive_store::{
    CONVERSATION_TEXT_MAX_BYTES, ConversationMessageRow, ConversationRow, MessageAuthor, Page,
    PageRequest, Store, TurnStart, truncate_to_micros,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Longest message a caller may post, in bytes.
pub const CHAT_TEXT_MAX_BYTES: usize = 65_536;

/// Characters of the first message a conversation's title keeps.
const TITLE_CHARS: usize = 80;

/// A claimed turn counts as abandoned (its replica died) this long after the agent's timeout.
const TURN_GRACE: Duration = Duration::from_secs(60);

/// Chat events a stream buffers; text beyond that is dropped for a reader that lags (the
/// `reply` event carries all of it).
const EVENT_BUFFER: usize = 64;

/// How long the last event waits for a reader that stopped reading.
const REPLY_SEND_WAIT: Duration = Duration::from_secs(5);

/// The state of a reply Hive did not deliver (limits, outage, the agent's refusal).
pub const STATE_REFUSED: &str = "refused";
/// The state of a reply whose stream ended before the task settled (shutdown, lost upstream).
pub const STATE_INTERRUPTED: &str = "interrupted";

/// Longest A2A message id a caller may choose.
const MESSAGE_ID_MAX_CHARS: usize = 128;

/// What a caller posts: its text, in the conversation named or a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatInput {
    pub conversation_id: Option<Uuid>,
    pub text: String,
    /// The A2A message id to send (default: the stored message's id).
    pub message_id: Option<String>,
}

/// One event of a chat stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// The conversation and the caller's message, stored.
    Started {
        conversation: ConversationRow,
        message: ConversationMessageRow,
    },
    /// The task's state changed (its name as in A2A 0.3: `working`, `completed`…).
    Status { task_id: String, state: String },
    /// More text of the reply.
    Delta(String),
    /// The agent's stream ended in an error (its message; no secrets).
    Failed(String),
    /// The reply as stored; the last event.
    Reply(ConversationMessageRow),
}

crate::kernel::refusal::domain_error!(
    /// Why a chat call was refused (not found: no such conversation or agent, or one that is
    /// not the caller's to see). Messages are safe to show to the caller.
    ConversationError,
    "conversations"
);

/// The agent a conversation is with is looked up in the agents domain.
impl From<AgentError> for ConversationError {
    fn from(error: AgentError) -> Self {
        crate::kernel::refusal::Refusal::from(error).into()
    }
}

/// A chat message refused before a stream started.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Refused(#[from] ConversationError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The agent refused the message before doing anything (not ready, a task still running…).
    #[error("{0}")]
    Agent(String),
}

#[derive(Debug)]
pub struct Conversations {
    store: Arc<dyn Store>,
    gateway: Arc<Gateway>,
    auditor: Auditor,
    clock: SharedClock,
    turns: TaskTracker,
}

impl Conversations {
    pub fn new(
        store: Arc<dyn Store>,
        gateway: Arc<Gateway>,
        auditor: Auditor,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            gateway,
            auditor,
            clock,
            turns: TaskTracker::new(),
        }
    }

    /// Posts the caller's message to the agent, in the conversation named or a new one, and
    /// returns the turn's events. The route checked the caller's credential and scope.
    pub async fn chat(
        &self,
        caller: &Caller,
        agent_id: Uuid,
        input: ChatInput,
        meta: &RequestMeta,
    ) -> Result<mpsc::Receiver<ChatEvent>, ChatError> {
        if let Err(refused) = self.gateway.admit(caller, meta).await {
            return Err(ConversationError::Forbidden(refused.message()).into());
        }
        let ChatInput {
            conversation_id,
            text,
            message_id,
        } = input;
        check_text(&text)?;
        if let Some(id) = &message_id {
            check_message_id(id)?;
        }
        let agent = self
            .gateway
            .visible_agent(Some(caller), agent_id)
            .await
            .map_err(ConversationError::from)?
            .ok_or(ConversationError::NotFound)?;
        let owner = principal(caller);
        let now = truncate_to_micros(self.clock.now());
        let conversation = match conversation_id {
            Some(id) => {
                let existing = self.store.conversations().get(&owner, id).await;
                match existing.map_err(ConversationError::from)? {
                    Some(found) if found.agent_id == agent.id => {}
                    _ => return Err(ConversationError::NotFound.into()),
                }
                let grace = Duration::from_secs(u64::from(agent.limits.timeout_seconds.max(1)))
                    + TURN_GRACE;
                let stale_before = now - time::Duration::try_from(grace).unwrap_or_default();
                let message = user_message(id, &text, now);
                match self
                    .store
                    .conversations()
                    .begin_turn(&owner, &message, stale_before)
                    .await
                    .map_err(ConversationError::from)?
                {
                    TurnStart::Started(conversation) => (conversation, message),
                    TurnStart::Busy => {
                        return Err(ConversationError::Conflict(
                            "the agent is still answering this conversation's last message",
                        )
                        .into());
                    }
                    TurnStart::NotFound => return Err(ConversationError::NotFound.into()),
                }
            }
            None => {
                let conversation = ConversationRow {
                    id: Uuid::now_v7(),
                    owner: owner.clone(),
                    user_id: caller.user_id(),
                    agent_id: agent.id,
                    title: title_of(&text),
                    open_task_id: None,
                    turn_started_at: Some(now),
                    created_at: now,
                    updated_at: now,
                };
                let message = user_message(conversation.id, &text, now);
                self.store
                    .conversations()
                    .create(&conversation, &message)
                    .await
                    .map_err(ConversationError::from)?;
                (conversation, message)
            }
        };
        let (conversation, message) = conversation;
        let a2a_message_id = message_id.unwrap_or_else(|| message.id.to_string());
        let sent = self
            .send(caller, &conversation, &message, &a2a_message_id, meta)
            .await;
        let events = match sent {
            Ok(events) => events,
            Err(error) => {
                // Nothing reached the agent: the turn ends with a refused reply, and a task
                // that waited for the caller still waits.
                let reply = agent_message(conversation.id, String::new(), None, STATE_REFUSED);
                finish(
                    self.store.as_ref(),
                    self.clock.as_ref(),
                    &conversation,
                    reply,
                    conversation.open_task_id,
                )
                .await;
                return Err(error);
            }
        };
        let (out, receiver) = mpsc::channel(EVENT_BUFFER);
        // A fresh channel has room for the first event.
        let _ = out.try_send(ChatEvent::Started {
            conversation: conversation.clone(),
            message,
        });
        let relay = Relay {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            conversation,
        };
        self.turns.spawn(relay.run(events, out));
        Ok(receiver)
    }

    /// Calls the agent with the caller's message: on the task the conversation left open, or
    /// — if there is none, or it expired — on a new task in the conversation's context.
    async fn send(
        &self,
        caller: &Caller,
        conversation: &ConversationRow,
        message: &ConversationMessageRow,
        message_id: &str,
        meta: &RequestMeta,
    ) -> Result<CallStream, ChatError> {
        let mut open_task = conversation.open_task_id;
        loop {
            let request = Request {
                id: Id::String(message_id.to_owned()),
                version: Version::V1_0,
                call: Call::SendStreamingMessage(SendMessageRequest {
                    message: Message {
                        message_id: message_id.to_owned(),
                        // A continued task has its context already (an agent may have
                        // chosen its own); a new one joins the conversation's.
                        context_id: if open_task.is_some() {
                            String::new()
                        } else {
                            conversation.id.to_string()
                        },
                        task_id: open_task.map(|id| id.to_string()).unwrap_or_default(),
                        role: Role::User,
                        parts: vec![Part::text(message.text.clone())],
                        ..Message::default()
                    },
                    ..SendMessageRequest::default()
                }),
            };
            let reply = self
                .gateway
                .call(caller, Target::Agent(conversation.agent_id), request, meta)
                .await?;
            let outcome = match reply {
                crate::gateway::Reply::Stream(events) => return Ok(events),
                crate::gateway::Reply::Unary(outcome) => *outcome,
            };
            let event = match outcome {
                Ok(Outcome::Event(event)) => event,
                Ok(Outcome::SendMessage(v1::SendMessageResponse::Task(task))) => {
                    StreamResponse::Task(task)
                }
                Ok(Outcome::SendMessage(v1::SendMessageResponse::Message(message))) => {
                    StreamResponse::Message(message)
                }
                Ok(_) => return Err(ChatError::Agent("the agent answered out of turn".into())),
                // The task the agent left open has expired: the message starts a new one.
                Err(error) if error.code == RpcCode::TaskNotFound.code() && open_task.is_some() => {
                    open_task = None;
                    continue;
                }
                Err(error) => return Err(ChatError::Agent(error.message)),
            };
            let (sender, events) = mpsc::channel::<StreamItem>(1);
            let _ = sender.try_send(Ok(event));
            return Ok(events.into());
        }
    }

    /// The caller's conversations (with one agent, if named), latest activity first.
    pub async fn list(
        &self,
        caller: &Caller,
        agent_id: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<ConversationRow>, ConversationError> {
        Ok(self
            .store
            .conversations()
            .list(&principal(caller), agent_id, page)
            .await?)
    }

    /// The caller's conversation; anyone else's does not exist.
    pub async fn get(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<ConversationRow, ConversationError> {
        self.store
            .conversations()
            .get(&principal(caller), id)
            .await?
            .ok_or(ConversationError::NotFound)
    }

    /// The messages of the caller's conversation, newest first.
    pub async fn messages(
        &self,
        caller: &Caller,
        id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<ConversationMessageRow>, ConversationError> {
        let conversation = self.get(caller, id).await?;
        Ok(self
            .store
            .conversations()
            .messages(conversation.id, page)
            .await?)
    }

    /// Deletes the caller's conversation and its messages (audited; the contents are not).
    pub async fn delete(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), ConversationError> {
        let conversation = self.get(caller, id).await?;
        let record = self.auditor.in_transaction(
            crate::kernel::audit::AuditEvent {
                principal: caller.principal(),
                action: AuditAction::ConversationDelete,
                target: Some(format!("conversation:{}", conversation.id)),
                outcome: hive_store::AuditOutcome::Success,
                detail: serde_json::json!({ "agentId": conversation.agent_id }),
            },
            meta,
        );
        if self
            .store
            .conversations()
            .delete(&conversation.owner, conversation.id, record.append())
            .await?
        {
            Ok(())
        } else {
            Err(ConversationError::NotFound)
        }
    }

    /// Waits for the turns under way to store their replies (call after the gateway's tasks
    /// have ended, so that their streams have too).
    pub async fn drain(&self) {
        self.turns.close();
        self.turns.wait().await;
    }
}

/// One turn's relay: agent events in, chat events out, the reply stored at the end.
struct Relay {
    store: Arc<dyn Store>,
    clock: SharedClock,
    conversation: ConversationRow,
}

impl Relay {
    async fn run(self, mut events: CallStream, out: mpsc::Sender<ChatEvent>) {
        let mut reply = ReplyText::default();
        let mut failed = false;
        while let Some(item) = events.recv().await {
            match item {
                Ok(event) => {
                    for chat_event in reply.absorb(event) {
                        // A reader that lags loses text, not the reply.
                        let _ = out.try_send(chat_event);
                    }
                }
                Err(error) => {
                    failed = true;
                    let _ = out.try_send(ChatEvent::Failed(error.message));
                    break;
                }
            }
        }
        let (message, open_task) = reply.finish(self.conversation.id, failed);
        let message = finish(
            self.store.as_ref(),
            self.clock.as_ref(),
            &self.conversation,
            message,
            open_task,
        )
        .await;
        let _ = out
            .send_timeout(ChatEvent::Reply(message), REPLY_SEND_WAIT)
            .await;
    }
}

/// Stores the reply (timed now) and releases the turn; a failure is logged (the claim then
/// lapses after the agent's timeout and a grace period). Returns the reply as stored.
async fn finish(
    store: &dyn Store,
    clock: &dyn hive_proto::Clock,
    conversation: &ConversationRow,
    mut reply: ConversationMessageRow,
    open_task_id: Option<Uuid>,
) -> ConversationMessageRow {
    reply.created_at = truncate_to_micros(clock.now());
    match store
        .conversations()
        .finish_turn(
            conversation.id,
            Some(&reply),
            open_task_id,
            reply.created_at,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(conversation = %conversation.id, "conversation deleted during its turn");
        }
        Err(error) => {
            tracing::warn!(conversation = %conversation.id, %error, "the reply of a conversation turn was not stored");
        }
    }
    reply
}

/// What the agent has said so far in one turn: its artifacts' text and its latest status
/// message, or a direct message.
#[derive(Debug, Default)]
struct ReplyText {
    task_id: Option<String>,
    state: Option<v1::TaskState>,
    /// By artifact id, in the order they came.
    artifacts: Vec<(String, String)>,
    status_text: String,
    direct: Option<String>,
}

impl ReplyText {
    /// Takes one event; returns the chat events it makes.
    fn absorb(&mut self, event: StreamResponse) -> Vec<ChatEvent> {
        let before = self.text();
        let state_before = self.state;
        match event {
            StreamResponse::Task(task) => {
                self.task_id = Some(task.id);
                self.state = Some(task.status.state);
                self.artifacts = task
                    .artifacts
                    .iter()
                    .map(|artifact| (artifact.artifact_id.clone(), text_of(&artifact.parts)))
                    .collect();
                if let Some(text) = agent_text(task.status.message.as_deref()) {
                    self.status_text = text;
                }
            }
            StreamResponse::StatusUpdate(update) => {
                self.task_id = Some(update.task_id);
                self.state = Some(update.status.state);
                if let Some(text) = agent_text(update.status.message.as_deref()) {
                    self.status_text = text;
                }
            }
            StreamResponse::ArtifactUpdate(update) => {
                self.task_id = Some(update.task_id);
                let text = text_of(&update.artifact.parts);
                let id = update.artifact.artifact_id;
                match self.artifacts.iter_mut().find(|(known, _)| *known == id) {
                    Some((_, existing)) if update.append => existing.push_str(&text),
                    Some((_, existing)) => *existing = text,
                    None => self.artifacts.push((id, text)),
                }
            }
            StreamResponse::Message(message) => {
                self.direct = Some(text_of(&message.parts));
            }
        }
        let mut events = Vec::new();
        if let (Some(task_id), Some(state)) = (&self.task_id, self.state)
            && state_before != Some(state)
        {
            events.push(ChatEvent::Status {
                task_id: task_id.clone(),
                state: state_word(state),
            });
        }
        // New text that extends what was said is sent as it comes; text that replaced some
        // of it shows in the reply.
        let after = self.text();
        if let Some(added) = after.strip_prefix(before.as_str())
            && !added.is_empty()
        {
            events.push(ChatEvent::Delta(added.to_owned()));
        }
        events
    }

    /// Artifacts first, then the status message unless it repeats one of them (agents often
    /// end with the whole answer as their message); or the direct message.
    fn text(&self) -> String {
        if let Some(direct) = &self.direct {
            return direct.clone();
        }
        let repeated = self
            .artifacts
            .iter()
            .any(|(_, text)| *text == self.status_text);
        let status = (!repeated).then_some(self.status_text.as_str());
        let pieces: Vec<&str> = self
            .artifacts
            .iter()
            .map(|(_, text)| text.as_str())
            .chain(status)
            .filter(|text| !text.is_empty())
            .collect();
        pieces.join("\n\n")
    }

    /// The reply to store, and the task it leaves waiting for the caller.
    fn finish(
        &self,
        conversation_id: Uuid,
        failed: bool,
    ) -> (ConversationMessageRow, Option<Uuid>) {
        let task_id = self
            .task_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok());
        let state = match (self.direct.is_some(), self.state) {
            (true, _) => String::new(),
            (false, _) if failed => state_word(v1::TaskState::Failed),
            (false, Some(state)) if state.is_terminal() || state.is_interrupted() => {
                state_word(state)
            }
            (false, _) => STATE_INTERRUPTED.to_owned(),
        };
        let open = match self.state {
            Some(state) if state.is_interrupted() && !failed && self.direct.is_none() => task_id,
            _ => None,
        };
        (
            agent_message(conversation_id, self.text(), task_id, &state),
            open,
        )
    }
}

/// A task state's name as A2A 0.3 writes it (`input-required`), which reads well in an API.
fn state_word(state: v1::TaskState) -> String {
    serde_json::to_value(hive_a2a::v03::TaskState::from(state))
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The text parts, joined as the chunks of a streamed artifact are.
fn text_of(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|part| match &part.content {
            PartContent::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// The text of a status message, if the agent wrote it.
fn agent_text(message: Option<&Message>) -> Option<String> {
    message
        .filter(|message| message.role != Role::User)
        .map(|message| text_of(&message.parts))
}

fn check_text(text: &str) -> Result<(), ConversationError> {
    if text.trim().is_empty() {
        return Err(ConversationError::Invalid("text must not be empty".into()));
    }
    if text.len() > CHAT_TEXT_MAX_BYTES {
        return Err(ConversationError::Invalid(format!(
            "text must be at most {CHAT_TEXT_MAX_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_message_id(id: &str) -> Result<(), ConversationError> {
    let count = id.chars().count();
    if count == 0
        || count > MESSAGE_ID_MAX_CHARS
        || id.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ConversationError::Invalid(format!(
            "messageId must be 1 to {MESSAGE_ID_MAX_CHARS} visible characters"
        )));
    }
    Ok(())
}

/// The first line of the first message, shortened.
fn title_of(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or_default().trim();
    let mut title: String = line.chars().take(TITLE_CHARS).collect();
    if line.chars().count() > TITLE_CHARS {
        title.push('…');
    }
    title
}

fn user_message(
    conversation_id: Uuid,
    text: &str,
    at: time::OffsetDateTime,
) -> ConversationMessageRow {
    ConversationMessageRow {
        id: Uuid::now_v7(),
        conversation_id,
        author: MessageAuthor::User,
        text: text.to_owned(),
        truncated: false,
        task_id: None,
        state: String::new(),
        created_at: at,
    }
}

/// The agent's reply, cut to what a message keeps (at a character boundary).
fn agent_message(
    conversation_id: Uuid,
    mut text: String,
    task_id: Option<Uuid>,
    state: &str,
) -> ConversationMessageRow {
    let truncated = text.len() > CONVERSATION_TEXT_MAX_BYTES;
    if truncated {
        let mut end = CONVERSATION_TEXT_MAX_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    ConversationMessageRow {
        id: Uuid::now_v7(),
        conversation_id,
        author: MessageAuthor::Agent,
        text,
        truncated,
        task_id,
        state: state.to_owned(),
        // Timed when stored (see `finish`).
        created_at: time::OffsetDateTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_a2a::v1::{Artifact, TaskArtifactUpdateEvent, TaskStatus, TaskStatusUpdateEvent};

    fn status(state: v1::TaskState, text: Option<&str>) -> StreamResponse {
        StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
            task_id: "4a1f5bb0-0000-4000-8000-000000000001".into(),
            status: TaskStatus {
                state,
                message: text.map(|text| {
                    Box::new(Message {
                        role: Role::Agent,
                        parts: vec![Part::text(text)],
                        ..Message::default()
                    })
                }),
                ..TaskStatus::default()
            },
            ..TaskStatusUpdateEvent::default()
        })
    }

    fn chunk(id: &str, text: &str, append: bool) -> StreamResponse {
        StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
            task_id: "4a1f5bb0-0000-4000-8000-000000000001".into(),
            artifact: Artifact {
                artifact_id: id.into(),
                parts: vec![Part::text(text)],
                ..Artifact::default()
            },
            append,
            ..TaskArtifactUpdateEvent::default()
        })
    }

    #[test]
    fn streamed_chunks_become_deltas_and_one_reply() {
        let mut reply = ReplyText::default();
        let mut events = Vec::new();
        for event in [
            status(v1::TaskState::Working, None),
            chunk("answer", "Hel", false),
            chunk("answer", "lo", true),
            status(v1::TaskState::Completed, Some("Hello")),
        ] {
            events.extend(reply.absorb(event));
        }
        let deltas: Vec<_> = events
            .iter()
            .filter_map(|event| match event {
                ChatEvent::Delta(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deltas, ["Hel", "lo"]);
        let states: Vec<_> = events
            .iter()
            .filter_map(|event| match event {
                ChatEvent::Status { state, .. } => Some(state.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(states, ["working", "completed"]);
        let conversation = Uuid::now_v7();
        let (message, open) = reply.finish(conversation, false);
        assert_eq!(message.text, "Hello");
        assert_eq!(message.state, "completed");
        assert_eq!(
            message.task_id.map(|id| id.to_string()).as_deref(),
            Some("4a1f5bb0-0000-4000-8000-000000000001")
        );
        assert_eq!(open, None);
    }

    #[test]
    fn a_question_leaves_the_task_open_and_an_early_end_is_interrupted() {
        let mut reply = ReplyText::default();
        reply.absorb(status(v1::TaskState::InputRequired, Some("Which city?")));
        let (message, open) = reply.finish(Uuid::now_v7(), false);
        assert_eq!(message.text, "Which city?");
        assert_eq!(message.state, "input-required");
        assert!(open.is_some());

        let mut cut = ReplyText::default();
        cut.absorb(status(v1::TaskState::Working, None));
        let (message, open) = cut.finish(Uuid::now_v7(), false);
        assert_eq!(message.state, STATE_INTERRUPTED);
        assert_eq!(open, None);
        let (message, _) = cut.finish(Uuid::now_v7(), true);
        assert_eq!(message.state, "failed");
    }

    #[test]
    fn a_replaced_artifact_sends_no_delta_but_the_reply_has_it() {
        let mut reply = ReplyText::default();
        reply.absorb(chunk("a", "draft", false));
        let events = reply.absorb(chunk("a", "final", false));
        assert!(
            !events
                .iter()
                .any(|event| matches!(event, ChatEvent::Delta(_)))
        );
        assert_eq!(reply.finish(Uuid::now_v7(), false).0.text, "final");
    }

    #[test]
    fn long_replies_are_cut_at_a_character_boundary() {
        let text = "é".repeat(CONVERSATION_TEXT_MAX_BYTES);
        let message = agent_message(Uuid::now_v7(), text, None, "completed");
        assert!(message.truncated);
        assert!(message.text.len() <= CONVERSATION_TEXT_MAX_BYTES);
        assert!(message.text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn titles_take_the_first_line_shortened() {
        assert_eq!(title_of("  Plan a trip\nto Lisbon"), "Plan a trip");
        let long = "x".repeat(200);
        let title = title_of(&long);
        assert_eq!(title.chars().count(), TITLE_CHARS + 1);
        assert!(title.ends_with('…'));
        assert!(check_text("   ").is_err());
        assert!(check_text(&"x".repeat(CHAT_TEXT_MAX_BYTES + 1)).is_err());
    }
}
