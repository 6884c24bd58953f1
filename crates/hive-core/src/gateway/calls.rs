//! The audit record of each call, saying how it ended. A unary call's record is written before
//! it is answered; a stream's when the stream ends — its last event read, an error that ends
//! it, or the reader gone (the client disconnected, an idle timeout, shutdown) — so that it
//! holds the stream's real outcome and duration. One record a call either way, through the
//! auditor's group commit: nothing is written while a stream runs.

use super::StreamItem;
use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal};
use crate::kernel::caller::RequestMeta;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::jsonrpc::Outcome;
use hive_a2a::v1::{Message, SendMessageResponse, StreamResponse, TaskState};
use hive_store::AuditOutcome;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// The longest `errorMessage` a record keeps (characters; a longer one is cut, with `…`).
pub const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// How a call ended, as its record says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ending {
    /// `ok`, `error`, `failed`, `throttled`, `unavailable` (any call); `completed`,
    /// `canceled`, `input_required`, `auth_required`, `ended`, `disconnected` (streams).
    pub outcome: &'static str,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
}

impl Ending {
    pub fn plain(outcome: &'static str) -> Self {
        Self {
            outcome,
            error_code: None,
            error_message: None,
        }
    }

    fn error(error: &RpcError) -> Self {
        Self {
            outcome: "error",
            error_code: Some(error.code),
            error_message: Some(bounded(&error.message)),
        }
    }

    fn failed(message: Option<&Message>) -> Self {
        Self {
            outcome: "failed",
            error_code: None,
            error_message: message.map(|m| bounded(&m.text())),
        }
    }

    /// The record's coarse outcome.
    pub fn audit_outcome(&self) -> AuditOutcome {
        match self.outcome {
            "error" | "failed" | "unavailable" => AuditOutcome::Failure,
            "throttled" => AuditOutcome::Denied,
            _ => AuditOutcome::Success,
        }
    }

    /// How a unary answer went: a JSON-RPC error, a message answered with a task that failed or
    /// was rejected (its status message is what went wrong), or an answer.
    pub fn of_unary(result: &Result<Outcome, RpcError>) -> Self {
        match result {
            Err(error) => Self::error(error),
            Ok(Outcome::SendMessage(SendMessageResponse::Task(task)))
                if matches!(task.status.state, TaskState::Failed | TaskState::Rejected) =>
            {
                Self::failed(task.status.message.as_deref())
            }
            Ok(_) => Self::plain("ok"),
        }
    }
}

/// `text` cut to [`MAX_ERROR_MESSAGE_CHARS`].
fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Everything a call's record holds but its ending.
#[derive(Debug)]
pub(super) struct CallRecord {
    pub principal: Principal,
    pub action: AuditAction,
    pub target: Option<String>,
    pub method: Option<&'static str>,
    pub endpoint: &'static str,
    pub peer_subject: Option<String>,
    pub started: Instant,
}

impl CallRecord {
    /// The record of the call ended `ending`, timed from its start to now.
    pub fn event(&self, ending: &Ending) -> AuditEvent {
        let mut detail = serde_json::json!({
            "method": self.method,
            "endpoint": self.endpoint,
            "outcome": ending.outcome,
            "errorCode": ending.error_code,
            "durationMs": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(object) = detail.as_object_mut() {
            if let Some(message) = &ending.error_message {
                object.insert("errorMessage".to_owned(), message.as_str().into());
            }
            if let Some(subject) = &self.peer_subject {
                object.insert("peerSubject".to_owned(), subject.as_str().into());
            }
        }
        AuditEvent {
            principal: self.principal.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: ending.audit_outcome(),
            detail,
        }
    }

    pub fn count(&self, ending: &Ending) {
        metrics::counter!("hive_a2a_calls_total", "method" => self.method.unwrap_or("unknown"), "outcome" => ending.outcome).increment(1);
    }
}

/// The answer to a call whose audit record could not be written.
fn unrecorded() -> RpcError {
    ErrorCode::InternalError.with_message("the call could not be recorded in the audit log")
}

/// A stream's record, written once when the stream ends.
#[derive(Debug)]
struct Pending {
    record: CallRecord,
    auditor: Auditor,
    meta: RequestMeta,
    /// Shutdown waits for the records of streams that ended.
    tracker: TaskTracker,
}

impl Pending {
    /// Writes the record through the group commit in a task of its own, so that neither a
    /// dropped stream nor a reader that stops waiting loses it.
    fn write(self, ending: &Ending) -> Option<tokio::task::JoinHandle<bool>> {
        let event = self.record.event(ending);
        self.record.count(ending);
        let auditor = self.auditor;
        let meta = self.meta;
        // A failure is logged by the auditor; the answer says whether the record stands.
        let write = async move { auditor.record(event, &meta).await.is_ok() };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Some(runtime.spawn(self.tracker.track_future(write))),
            Err(_) => {
                tracing::error!("a2a: a stream ended outside the runtime; its call record is lost");
                None
            }
        }
    }
}

/// What a stream has shown so far of how it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Nothing that ends it.
    Open,
    /// The task's latest state (and, when it failed, what its status message said).
    State(TaskState, Option<String>),
    /// The agent answered with a message: nothing follows.
    Message,
    /// An error ended it.
    Error(i32, String),
}

impl Seen {
    fn observe(&mut self, event: &StreamResponse) {
        let status = match event {
            StreamResponse::Task(task) => &task.status,
            StreamResponse::StatusUpdate(update) => &update.status,
            StreamResponse::Message(_) => {
                *self = Self::Message;
                return;
            }
            StreamResponse::ArtifactUpdate(_) => return,
        };
        let message = matches!(status.state, TaskState::Failed | TaskState::Rejected)
            .then(|| status.message.as_deref().map(|m| bounded(&m.text())))
            .flatten();
        *self = Self::State(status.state, message);
    }

    /// How the stream ended: `finished` when it ran to its end, not when its reader left.
    fn ending(&self, finished: bool) -> Ending {
        match self {
            Self::Error(code, message) => Ending {
                outcome: "error",
                error_code: Some(*code),
                error_message: Some(message.clone()),
            },
            Self::Message | Self::State(TaskState::Completed, _) => Ending::plain("completed"),
            Self::State(TaskState::Failed | TaskState::Rejected, message) => Ending {
                outcome: "failed",
                error_code: None,
                error_message: message.clone(),
            },
            Self::State(TaskState::Canceled, _) => Ending::plain("canceled"),
            _ if !finished => Ending::plain("disconnected"),
            Self::State(TaskState::InputRequired, _) => Ending::plain("input_required"),
            Self::State(TaskState::AuthRequired, _) => Ending::plain("auth_required"),
            _ => Ending::plain("ended"),
        }
    }
}

/// The events of a streamed call, each one an event or the error that ends the stream. Read
/// with [`CallStream::recv`]; dropping it before its end (a client that went away) still
/// records the call, as `disconnected` unless its task had already ended.
#[derive(Debug)]
pub struct CallStream {
    events: mpsc::Receiver<StreamItem>,
    pending: Option<Box<Pending>>,
    seen: Seen,
}

impl From<mpsc::Receiver<StreamItem>> for CallStream {
    fn from(events: mpsc::Receiver<StreamItem>) -> Self {
        Self {
            events,
            pending: None,
            seen: Seen::Open,
        }
    }
}

impl CallStream {
    /// Records the call `record` describes when the stream ends.
    pub(super) fn record_at_end(
        &mut self,
        record: CallRecord,
        auditor: &Auditor,
        meta: &RequestMeta,
        tracker: TaskTracker,
    ) {
        self.pending = Some(Box::new(Pending {
            record,
            auditor: auditor.clone(),
            meta: meta.clone(),
            tracker,
        }));
    }

    /// The next event, or `None` at the end. The call's record is written when the stream ends
    /// (after the error that ends it, or before its `None`), durable before that is returned.
    pub async fn recv(&mut self) -> Option<StreamItem> {
        let item = self.events.recv().await;
        match &item {
            Some(Ok(event)) => {
                self.seen.observe(event);
                return item;
            }
            Some(Err(error)) => {
                self.seen = Seen::Error(error.code, bounded(&error.message));
            }
            None => {}
        }
        if let Some(pending) = self.pending.take() {
            let written = match pending.write(&self.seen.ending(true)) {
                Some(write) => write.await.unwrap_or(false),
                None => false,
            };
            // A call whose record cannot be written does not end as if it had been: in place of
            // its clean end, the reader gets the error a unary call would (its events were
            // already sent; this is the stream's last word).
            if !written && item.is_none() {
                return Some(Err(unrecorded()));
            }
        }
        item
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.write(&self.seen.ending(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_a2a::v1::{Part, Role, Task, TaskStatus, TaskStatusUpdateEvent};

    fn status(state: TaskState, text: Option<&str>) -> StreamResponse {
        StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
            status: TaskStatus {
                state,
                message: text.map(|text| {
                    Box::new(Message {
                        role: Role::Agent,
                        parts: vec![Part::text(text)],
                        ..Message::default()
                    })
                }),
                timestamp: None,
            },
            ..TaskStatusUpdateEvent::default()
        })
    }

    fn ending_of(events: &[StreamResponse], finished: bool) -> Ending {
        let mut seen = Seen::Open;
        for event in events {
            seen.observe(event);
        }
        seen.ending(finished)
    }

    #[test]
    fn a_stream_ends_as_its_task_did() {
        let working = status(TaskState::Working, None);
        let done = status(TaskState::Completed, Some("the answer"));
        assert_eq!(
            ending_of(&[working.clone(), done.clone()], true).outcome,
            "completed"
        );
        // Read to its last event, then dropped: still completed.
        assert_eq!(
            ending_of(&[working.clone(), done], false).outcome,
            "completed"
        );
        let failed = ending_of(
            &[
                working.clone(),
                status(TaskState::Failed, Some("the model endpoint failed: x")),
            ],
            false,
        );
        assert_eq!(
            (failed.outcome, failed.error_message.as_deref()),
            ("failed", Some("the model endpoint failed: x"))
        );
        assert_eq!(failed.audit_outcome(), AuditOutcome::Failure);
        assert_eq!(
            ending_of(std::slice::from_ref(&working), false).outcome,
            "disconnected"
        );
        assert_eq!(
            ending_of(std::slice::from_ref(&working), true).outcome,
            "ended"
        );
        assert_eq!(
            ending_of(
                &[working.clone(), status(TaskState::InputRequired, None)],
                true
            )
            .outcome,
            "input_required"
        );
        assert_eq!(
            ending_of(&[working, status(TaskState::Canceled, None)], false).outcome,
            "canceled"
        );
        let answered = StreamResponse::Message(Message::default());
        assert_eq!(ending_of(&[answered], true).outcome, "completed");
        let error = Seen::Error(-32603, bounded(&"é".repeat(400))).ending(false);
        assert_eq!((error.outcome, error.error_code), ("error", Some(-32603)));
        assert_eq!(
            error.error_message.map(|m| m.chars().count()),
            Some(MAX_ERROR_MESSAGE_CHARS + 1)
        );
    }

    #[test]
    fn a_unary_answer_with_a_failed_task_is_a_failure() {
        let mut task = Task::default();
        task.status.state = TaskState::Failed;
        task.status.message = Some(Box::new(Message {
            parts: vec![Part::text("the endpoint answered HTTP 401")],
            ..Message::default()
        }));
        let failed = Ending::of_unary(&Ok(Outcome::SendMessage(SendMessageResponse::Task(
            task.clone(),
        ))));
        assert_eq!(failed.outcome, "failed");
        assert_eq!(
            failed.error_message.as_deref(),
            Some("the endpoint answered HTTP 401")
        );
        // Reading a failed task is a call that went well.
        assert_eq!(Ending::of_unary(&Ok(Outcome::Task(task))).outcome, "ok");
        let error = Ending::of_unary(&Err(RpcError {
            code: -32001,
            message: "task not found".into(),
            data: None,
        }));
        assert_eq!(
            (
                error.outcome,
                error.error_code,
                error.error_message.as_deref()
            ),
            ("error", Some(-32001), Some("task not found"))
        );
    }
}
