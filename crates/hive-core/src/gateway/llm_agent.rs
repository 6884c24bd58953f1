//! `llm` agents: the built-in agent on an OpenAI-compatible chat-completions endpoint. A
//! message becomes a task: WORKING, the model's answer streamed as one artifact in appended
//! chunks (the last with `lastChunk`), then COMPLETED with the whole answer as the agent's
//! message. The conversation sent to the model is the task's history, after the earlier tasks
//! of the same caller, agent and context. Each call was held by billing before it started and
//! is settled with the endpoint's own token counts; an endpoint that reports none, or a call
//! cut off before its end, is settled at the upper bound of what it can have used (the
//! prompt's bound and the answer's bytes so far).

use super::local::Steps;
use crate::agents::LlmSettings;
use crate::agents::lifecycle::AgentLifecycle;
use crate::agents::llm::{ChatDelta, ChatMessage, ChatRole, ChatStream, LlmClient, LlmError};
use crate::kernel::egress::Purpose;
use crate::kernel::ports::{MeteredUse, Reservation, UsageSink};
use async_trait::async_trait;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::v1::{
    Artifact, Message, Part, Role, StreamResponse, TaskArtifactUpdateEvent, TaskState, TaskStatus,
    TaskStatusUpdateEvent,
};
use hive_store::AgentRow;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The artifact that carries the model's answer.
pub(crate) const ANSWER_ARTIFACT: &str = "answer";

/// What one run needs to call the model and to account for it.
pub(crate) struct LlmCall {
    pub client: Arc<LlmClient>,
    /// Billing, which held the call and settles it.
    pub meter: Arc<dyn UsageSink>,
    /// What billing held for the call (taken when it is settled or released).
    pub reservation: Option<Reservation>,
    pub owner_id: Uuid,
    pub settings: LlmSettings,
    pub messages: Vec<ChatMessage>,
    pub timeout: Duration,
    pub purpose: Purpose,
    /// The agent called, put in `error` by a refusal of its key.
    pub agent: AgentRow,
    pub lifecycle: Arc<AgentLifecycle>,
}

enum Phase {
    Begin,
    Connect,
    Streaming(Box<ChatStream>),
    Finishing,
    Done,
}

pub(crate) struct LlmSteps {
    call: LlmCall,
    task_id: String,
    context_id: String,
    phase: Phase,
    answer: String,
    /// The last chunk, held back until it is known whether another follows.
    held: Option<String>,
    chunks_sent: usize,
    /// The endpoint's own count of the call's tokens, given with the final status.
    usage: Option<crate::agents::llm::Usage>,
}

impl LlmSteps {
    pub fn new(call: LlmCall, task_id: String, context_id: String) -> Self {
        Self {
            call,
            task_id,
            context_id,
            phase: Phase::Begin,
            answer: String::new(),
            held: None,
            chunks_sent: 0,
            usage: None,
        }
    }

    fn status(&self, state: TaskState, message: Option<Message>) -> StreamResponse {
        StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
            task_id: self.task_id.clone(),
            context_id: self.context_id.clone(),
            status: TaskStatus {
                state,
                message: message.map(Box::new),
                timestamp: None,
            },
            metadata: None,
        })
    }

    fn chunk(&mut self, text: String, last: bool) -> StreamResponse {
        let append = self.chunks_sent > 0;
        self.chunks_sent += 1;
        StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
            task_id: self.task_id.clone(),
            context_id: self.context_id.clone(),
            artifact: Artifact {
                artifact_id: ANSWER_ARTIFACT.to_owned(),
                name: "answer".to_owned(),
                parts: vec![Part::text(text)],
                ..Artifact::default()
            },
            append,
            last_chunk: last,
            metadata: None,
        })
    }

    /// The most the call can have used: the prompt's bound and the answer's bytes so far.
    fn upper_bound(&self, reservation: &Reservation) -> MeteredUse {
        MeteredUse {
            prompt_tokens: reservation.billable.prompt_tokens,
            completion_tokens: u64::try_from(self.answer.len()).unwrap_or(u64::MAX),
            quantity: 0,
        }
    }

    /// Settles the call with what it used (once).
    async fn settle(&mut self, used: Option<crate::agents::llm::Usage>) {
        let Some(reservation) = self.call.reservation.take() else {
            return;
        };
        let used = match used {
            Some(usage) => MeteredUse {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                quantity: 0,
            },
            None => self.upper_bound(&reservation),
        };
        self.call.meter.settle(reservation, used).await;
    }

    /// Ends a call that failed: nothing sent yet is released; anything answered is settled.
    async fn fail(&mut self) {
        if self.answer.is_empty() {
            if let Some(reservation) = self.call.reservation.take() {
                self.call.meter.release(reservation).await;
            }
        } else {
            self.settle(None).await;
        }
    }
}

impl Drop for LlmSteps {
    /// A call dropped before its end (its caller went away, the task was cancelled) is
    /// settled at its upper bound: the model may have worked on after the last chunk read.
    fn drop(&mut self) {
        let Some(reservation) = self.call.reservation.take() else {
            return;
        };
        let used = self.upper_bound(&reservation);
        let meter = Arc::clone(&self.call.meter);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { meter.settle(reservation, used).await });
        }
    }
}

/// The tokens of the call as the final message's metadata (`usage`), so a caller that needs the
/// exact figures (a workflow's llm step) has the endpoint's own.
fn usage_metadata(usage: crate::agents::llm::Usage) -> hive_a2a::v1::Metadata {
    let mut map = serde_json::Map::new();
    map.insert(
        "usage".to_owned(),
        serde_json::json!({
            "promptTokens": usage.prompt_tokens,
            "completionTokens": usage.completion_tokens,
        }),
    );
    hive_a2a::v1::Metadata(map)
}

/// The longest failure message a task ends with.
const MAX_FAILURE_CHARS: usize = 300;

/// What the caller (and the call's audit record) is told: what went wrong, as an [`LlmError`]
/// says it — never the key, the prompt or the answer, no URL path or query, bounded.
fn failure(error: &LlmError) -> RpcError {
    let said = match error {
        LlmError::KeyRefused { status } => {
            format!("the model endpoint refused the key (HTTP {status})")
        }
        other => format!("the model endpoint failed: {other}"),
    };
    ErrorCode::InternalError.with_message(crate::agents::llm::cap_chars(said, MAX_FAILURE_CHARS))
}

#[async_trait]
impl Steps for LlmSteps {
    async fn next(&mut self) -> Option<Result<StreamResponse, RpcError>> {
        loop {
            match &mut self.phase {
                Phase::Begin => {
                    self.phase = Phase::Connect;
                    return Some(Ok(self.status(TaskState::Working, None)));
                }
                Phase::Connect => {
                    let call = &self.call;
                    let opened = call
                        .client
                        .stream(
                            call.owner_id,
                            &call.settings,
                            &call.messages,
                            call.timeout,
                            &call.purpose,
                        )
                        .await;
                    match opened {
                        Ok(stream) => self.phase = Phase::Streaming(Box::new(stream)),
                        Err(error) => {
                            self.phase = Phase::Done;
                            self.fail().await;
                            if let LlmError::KeyRefused { status } = error {
                                // Every call would fail alike: the agent is in error until its
                                // key is replaced (a start or the watchdog's probe clears it).
                                let call = &self.call;
                                call.lifecycle
                                    .key_refused(
                                        &call.agent,
                                        status,
                                        &call.purpose.principal,
                                        &call.purpose.meta,
                                    )
                                    .await;
                            }
                            return Some(Err(failure(&error)));
                        }
                    }
                }
                Phase::Streaming(stream) => match stream.next().await {
                    Some(Ok(ChatDelta::Text(text))) if text.is_empty() => {}
                    Some(Ok(ChatDelta::Text(text))) => {
                        self.answer.push_str(&text);
                        if let Some(previous) = self.held.replace(text) {
                            return Some(Ok(self.chunk(previous, false)));
                        }
                    }
                    Some(Ok(ChatDelta::Done { usage, .. })) => {
                        self.usage = usage;
                        self.settle(usage).await;
                        self.phase = Phase::Finishing;
                    }
                    Some(Err(error)) => {
                        self.phase = Phase::Done;
                        self.fail().await;
                        return Some(Err(failure(&error)));
                    }
                    None => {
                        self.settle(None).await;
                        self.phase = Phase::Finishing;
                    }
                },
                Phase::Finishing => {
                    if let Some(last) = self.held.take() {
                        return Some(Ok(self.chunk(last, true)));
                    }
                    self.phase = Phase::Done;
                    let message = Message {
                        message_id: Uuid::new_v4().to_string(),
                        context_id: self.context_id.clone(),
                        task_id: self.task_id.clone(),
                        role: Role::Agent,
                        parts: vec![Part::text(self.answer.clone())],
                        metadata: self.usage.map(usage_metadata),
                        ..Message::default()
                    };
                    return Some(Ok(self.status(TaskState::Completed, Some(message))));
                }
                Phase::Done => return None,
            }
        }
    }
}

/// The conversation for the model: each message's text, in order, users as `user` and the
/// agent as `assistant`.
pub(crate) fn conversation<'a>(
    messages: impl IntoIterator<Item = &'a Message>,
) -> Vec<ChatMessage> {
    messages
        .into_iter()
        .filter_map(|message| {
            let text = message.text();
            let role = match message.role {
                Role::Agent => ChatRole::Assistant,
                _ => ChatRole::User,
            };
            (!text.is_empty()).then(|| ChatMessage::new(role, text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_what_went_wrong() {
        let said = failure(&LlmError::Upstream { status: 500 });
        assert_eq!(
            said.message,
            "the model endpoint failed: the endpoint answered HTTP 500"
        );
        let said = failure(&LlmError::KeyRefused { status: 401 });
        assert_eq!(
            said.message,
            "the model endpoint refused the key (HTTP 401)"
        );
        let long = failure(&LlmError::InvalidResponse("x".repeat(5000)));
        assert_eq!(long.message.chars().count(), MAX_FAILURE_CHARS + 1);
    }
}
