//! The gateway's book of tasks: each task stored with its owner, agent and the sequence number
//! of the last event applied to it, and every change published to the task's subscribers in
//! the same order, on any replica.
//!
//! A writer stores a change before it publishes it, so a subscriber that subscribes first and
//! then reads the stored task (with its sequence number) misses nothing and sees nothing
//! twice: it forwards only the events numbered after what it read.

use super::discards::{self, Discards};
use super::{GatewayError, Refused};
use crate::kernel::log_gate::LogGate;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::state_machine;
use hive_a2a::v1::{StreamResponse, Task, TaskState};
use hive_proto::SharedClock;
use hive_state::{StateError, TaskDocument, TaskEvent, TaskEvents, TaskRecord, TaskStore};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The stored document of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct StoredTask {
    /// The task as its caller sees it (Hive's ids).
    pub task: Task,
    /// The number of the last event applied (the task's first event is 1).
    pub seq: u64,
    /// Whether an executor is working on it (a local agent's script or model call).
    #[serde(default)]
    pub running: bool,
    /// For a remote agent: the task's ids upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Upstream {
    pub task_id: String,
    pub context_id: String,
}

/// A task as read from the store, with whose and which agent's it is.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub id: Uuid,
    pub owner: String,
    pub agent_id: Uuid,
    pub stored: StoredTask,
    /// The call creating this task attached a push-notification config to it. A new task's
    /// first write is announced to push configs only then: before that write nobody else
    /// knows the task's id, so no other config can exist (and the lookup, a database read,
    /// is saved for every task created without one).
    pub push_on_create: bool,
}

/// What a stream forwards: an event, or the error that ends it.
pub type StreamItem = Result<StreamResponse, RpcError>;

/// Events a stream may buffer before its reader is considered gone.
const STREAM_BUFFER: usize = 64;

/// The control event (sequence 0) asking the replica that runs a task to cancel it.
const CANCEL_REQUEST: &str = "cancelRequested";

#[derive(Debug)]
pub(crate) struct TaskBook {
    tasks: Arc<dyn TaskStore>,
    events: Arc<TaskEvents>,
    clock: SharedClock,
    ttl: Duration,
    /// The executors running in this process, by task.
    running: Mutex<HashMap<Uuid, CancellationToken>>,
    /// Told of every change of a task's status, for its push-notification configs.
    push: Arc<crate::gateway::push::PushConfigs>,
    /// The undoing of first writes that were not acknowledged.
    discards: Discards,
    failures: Failures,
}

/// How often a failure of one kind is logged (with how many went unlogged meanwhile), so that
/// an outage does not flood the log.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// The failures of the book, for the caller and the log. An outage of the task store (it did
/// not answer, or is full) refuses the whole call ([`GatewayError::Unavailable`]: 503 with
/// `Retry-After`); anything else is an internal error of the call. An outage is logged on a
/// gate of its own, so that it cannot hide a task that does not encode or decode (a bug, not an
/// outage), nor a write the store refused. Lines carry the store's error, whose text names
/// no key, value or task content ([`StateError`]), and never a task's document.
#[derive(Debug)]
pub(crate) struct Failures {
    outage: LogGate,
    other: LogGate,
}

impl Default for Failures {
    fn default() -> Self {
        Self {
            outage: LogGate::new(FAILURE_LOG_EVERY),
            other: LogGate::new(FAILURE_LOG_EVERY),
        }
    }
}

impl Failures {
    /// A failure of the task store while doing `what`.
    pub fn store(&self, what: &'static str, error: &StateError) -> Refused {
        let now = std::time::Instant::now();
        match error {
            StateError::Unavailable(_) | StateError::Full(_) => {
                if let Some(suppressed) = self.outage.admit(what, now) {
                    tracing::error!(what, %error, suppressed, "a2a: the task store is unavailable");
                }
                Refused::Gateway(GatewayError::Unavailable)
            }
            StateError::Invalid(_) => {
                if let Some(suppressed) = self.other.admit(what, now) {
                    tracing::error!(what, %error, suppressed, "a2a: the task store refused");
                }
                Refused::Rpc(
                    ErrorCode::InternalError.with_message("the task store failed; try again"),
                )
            }
        }
    }

    /// A task that could not be encoded or decoded (`what`), `why` in words that quote none of
    /// it.
    pub fn corrupt(&self, what: &'static str, task_id: Uuid, why: &str) -> Refused {
        if let Some(suppressed) = self.other.admit(what, std::time::Instant::now()) {
            tracing::error!(what, %task_id, why, suppressed, "a2a: a task could not be encoded or decoded");
        }
        Refused::Rpc(super::internal())
    }
}

/// Where a JSON error is in a document, without any of its text (which may quote the document).
fn json_position(error: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        error.classify(),
        error.line(),
        error.column()
    )
}

impl TaskBook {
    pub fn new(
        tasks: Arc<dyn TaskStore>,
        events: Arc<TaskEvents>,
        clock: SharedClock,
        ttl: Duration,
        push: Arc<crate::gateway::push::PushConfigs>,
    ) -> Self {
        let discards = Discards::new(Arc::clone(&tasks), ttl, discards::Limits::default());
        Self {
            tasks,
            events,
            clock,
            ttl,
            running: Mutex::new(HashMap::new()),
            push,
            discards,
            failures: Failures::default(),
        }
    }

    /// The caller's task with this id; any other (another's, malformed, expired) is none.
    pub async fn load(&self, owner: &str, id: &str) -> Result<Option<Entry>, Refused> {
        let Ok(id) = Uuid::parse_str(id) else {
            return Ok(None);
        };
        let Some(record) = self
            .tasks
            .get(owner, id)
            .await
            .map_err(|error| self.failures.store("get", &error))?
        else {
            return Ok(None);
        };
        Ok(Some(self.entry_of(record)?))
    }

    /// The caller's tasks, newest status first.
    pub async fn list(
        &self,
        owner: &str,
        page: &hive_store::PageRequest,
    ) -> Result<(Vec<Entry>, Option<String>), Refused> {
        let page = self
            .tasks
            .list(owner, page)
            .await
            .map_err(|error| self.failures.store("list", &error))?;
        let entries = page
            .items
            .into_iter()
            .map(|record| self.entry_of(record))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((entries, page.next_cursor))
    }

    pub async fn save(&self, entry: &Entry) -> Result<(), Refused> {
        let document = TaskDocument::of(&entry.stored).map_err(|error| {
            self.failures
                .corrupt("encode", entry.id, &json_position(&error))
        })?;
        let record = TaskRecord {
            id: entry.id,
            owner: entry.owner.clone(),
            agent_id: entry.agent_id.to_string(),
            context_id: entry.stored.task.context_id.clone(),
            status_time: self.clock.now(),
            document,
        };
        self.tasks
            .put(&record, self.ttl)
            .await
            .map_err(|error| self.failures.store("put", &error))
    }

    fn entry_of(&self, record: TaskRecord) -> Result<Entry, Refused> {
        let stored: StoredTask =
            serde_json::from_str(record.document.as_str()).map_err(|error| {
                self.failures
                    .corrupt("decode", record.id, &json_position(&error))
            })?;
        let agent_id = Uuid::parse_str(&record.agent_id).map_err(|_| {
            self.failures
                .corrupt("agent id", record.id, "the agent id is not a UUID")
        })?;
        Ok(Entry {
            id: record.id,
            owner: record.owner,
            agent_id,
            stored,
            push_on_create: false,
        })
    }

    /// Applies `event` to the task (its timestamps stamped now), stores it, then publishes it.
    /// The first write of a new task that fails is undone ([`Discards`]): the call that made
    /// it is refused, so the task must not appear later, even if the write was only delayed (a
    /// Redis write that timed out is still queued on the connection, and runs when a frozen
    /// server resumes).
    pub async fn advance(
        &self,
        entry: &mut Entry,
        event: StreamResponse,
    ) -> Result<StreamResponse, Refused> {
        let mut applied = self.advance_all(entry, vec![event]).await?;
        applied.pop().ok_or(Refused::Rpc(super::internal()))
    }

    /// [`Self::advance`] for events that are ready together: all applied in order, the task
    /// stored once with all of them, then each published with its own number. A subscriber
    /// that read the task before the write gets every one of them; one that read it after
    /// skips them by their numbers, as it skips any event it has seen.
    pub async fn advance_all(
        &self,
        entry: &mut Entry,
        mut events: Vec<StreamResponse>,
    ) -> Result<Vec<StreamResponse>, Refused> {
        let creating = entry.stored.seq == 0;
        let first_seq = entry.stored.seq + 1;
        for event in &mut events {
            self.stamp(event);
            state_machine::apply(&mut entry.stored.task, event);
            entry.stored.seq += 1;
        }
        if let Err(error) = self.save(entry).await {
            if creating {
                self.discards.discard(&entry.owner, entry.id);
            }
            return Err(error);
        }
        for (seq, event) in (first_seq..).zip(&events) {
            self.publish(entry.id, seq, event).await;
        }
        if (!creating || entry.push_on_create)
            && events.iter().any(|event| {
                matches!(
                    event,
                    StreamResponse::Task(_) | StreamResponse::StatusUpdate(_)
                )
            })
        {
            self.push.notify(&entry.owner, &entry.stored.task);
        }
        Ok(events)
    }

    async fn publish(&self, task_id: Uuid, seq: u64, event: &StreamResponse) {
        let Ok(event) = serde_json::to_value(event) else {
            return;
        };
        let published = self
            .events
            .publish(TaskEvent {
                task_id,
                seq,
                event,
            })
            .await;
        if let Err(error) = published
            && let Some(suppressed) = self
                .failures
                .outage
                .admit("publish", std::time::Instant::now())
        {
            // The change is stored; subscribers on other replicas see it when they read it.
            tracing::warn!(%task_id, %error, suppressed, "a2a: a task event was not published");
        }
    }

    /// Asks the replica running the task to cancel it.
    pub async fn request_cancel(&self, task_id: Uuid) {
        let _ = self
            .events
            .publish(TaskEvent {
                task_id,
                seq: 0,
                event: serde_json::json!({ CANCEL_REQUEST: true }),
            })
            .await;
    }

    pub fn subscribe(&self, task_id: Uuid) -> broadcast::Receiver<TaskEvent> {
        self.events.subscribe(task_id)
    }

    /// Registers an executor of this process; `None` if one already runs the task here.
    pub fn claim(&self, task_id: Uuid) -> Option<CancellationToken> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.contains_key(&task_id) {
            return None;
        }
        let token = CancellationToken::new();
        running.insert(task_id, token.clone());
        Some(token)
    }

    pub fn release(&self, task_id: Uuid) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&task_id);
    }

    /// The cancellation of the executor running the task in this process, if any.
    pub fn local_executor(&self, task_id: Uuid) -> Option<CancellationToken> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&task_id)
            .cloned()
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    pub fn now_rfc3339(&self) -> String {
        self.clock.now().format(&Rfc3339).unwrap_or_default()
    }

    fn stamp(&self, event: &mut StreamResponse) {
        let status = match event {
            StreamResponse::Task(task) => &mut task.status,
            StreamResponse::StatusUpdate(update) => &mut update.status,
            _ => return,
        };
        if status.timestamp.is_none() {
            status.timestamp = Some(self.now_rfc3339());
        }
    }

    /// A stream of the task's events numbered after `after`, starting with `first` if given,
    /// until the task is terminal or interrupted, `stop` fires, or the reader goes away.
    pub fn follow(
        self: &Arc<Self>,
        mut events: broadcast::Receiver<TaskEvent>,
        owner: String,
        task_id: Uuid,
        mut after: u64,
        first: Option<StreamResponse>,
        stop: CancellationToken,
    ) -> mpsc::Receiver<StreamItem> {
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let book = Arc::clone(self);
        tokio::spawn(async move {
            if let Some(first) = first
                && sender.send(Ok(first)).await.is_err()
            {
                return;
            }
            loop {
                let received = tokio::select! {
                    () = stop.cancelled() => return,
                    () = sender.closed() => return,
                    received = events.recv() => received,
                };
                let event = match received {
                    Ok(event) if event.is_resync() => None,
                    Ok(event) if event.seq == 0 || event.seq <= after => continue,
                    Ok(event) => Some(event),
                    Err(broadcast::error::RecvError::Closed) => return,
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                };
                // Fell behind, or events may have been lost (the subscription to the other
                // replicas was down): start again from the stored task, if it moved on.
                let Some(event) = event else {
                    match book.load(&owner, &task_id.to_string()).await {
                        Ok(Some(entry)) if entry.stored.seq > after => {
                            after = entry.stored.seq;
                            let done = ends_stream_state(entry.stored.task.status.state);
                            let snapshot = StreamResponse::Task(entry.stored.task);
                            if sender.send(Ok(snapshot)).await.is_err() || done {
                                return;
                            }
                            continue;
                        }
                        Ok(Some(_)) => continue,
                        _ => return,
                    }
                };
                after = event.seq;
                let Ok(event) = serde_json::from_value::<StreamResponse>(event.event) else {
                    continue;
                };
                let done = ends_followed_stream(&event);
                if sender.send(Ok(event)).await.is_err() || done {
                    return;
                }
            }
        });
        receiver
    }
}

/// Whether a stream closes after this event: the task became terminal or waits for the client.
pub(crate) fn ends_stream(event: &StreamResponse) -> bool {
    match event {
        StreamResponse::Task(task) => ends_stream_state(task.status.state),
        StreamResponse::StatusUpdate(update) => ends_stream_state(update.status.state),
        StreamResponse::Message(_) => true,
        StreamResponse::ArtifactUpdate(_) => false,
    }
}

/// [`ends_stream`] for an event that arrives while a stream is followed: a task snapshot there
/// starts a follow-up turn (it still carries the interrupted state the client answered), so it
/// closes the stream only if the task is terminal. A subscriber of an input-required task keeps
/// following it through the client's answer to its end.
pub(crate) fn ends_followed_stream(event: &StreamResponse) -> bool {
    match event {
        StreamResponse::Task(task) => task.status.state.is_terminal(),
        other => ends_stream(other),
    }
}

pub(crate) fn ends_stream_state(state: TaskState) -> bool {
    state.is_terminal() || state.is_interrupted()
}

/// Whether a control event asks for a cancellation.
pub(crate) fn is_cancel_request(event: &TaskEvent) -> bool {
    event.seq == 0 && event.event.get(CANCEL_REQUEST).is_some()
}

/// The task as a caller asked for it: the last `history_length` messages (unset: all; 0:
/// none), artifacts only if `with_artifacts`.
pub(crate) fn shaped(
    mut task: Task,
    history_length: Option<i32>,
    with_artifacts: bool,
) -> Result<Task, RpcError> {
    match history_length {
        None => {}
        Some(n) if n < 0 => {
            return Err(ErrorCode::InvalidParams.with_message("historyLength must not be negative"));
        }
        Some(n) => {
            let keep = usize::try_from(n).unwrap_or(usize::MAX);
            let drop = task.history.len().saturating_sub(keep);
            task.history.drain(..drop);
        }
    }
    if !with_artifacts {
        task.artifacts.clear();
    }
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A subscriber that keeps each event's fields as one line of text.
    #[derive(Default, Clone)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl tracing::Subscriber for Lines {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Text(String);
            impl tracing::field::Visit for Text {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    self.0.push_str(&format!("{}={value:?} ", field.name()));
                }
            }
            let mut text = Text(String::new());
            event.record(&mut text);
            self.0.lock().unwrap().push(text.0);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    fn logged(run: impl FnOnce()) -> Vec<String> {
        let lines = Lines::default();
        tracing::subscriber::with_default(lines.clone(), run);
        lines.0.lock().unwrap().clone()
    }

    #[test]
    fn an_outage_refuses_the_call_and_is_logged_with_its_error_once_a_period() {
        let failures = Failures::default();
        let mut refusals = Vec::new();
        let lines = logged(|| {
            for _ in 0..3 {
                refusals.push(
                    failures.store("put", &StateError::Unavailable("redis: timed out".into())),
                );
            }
            refusals.push(failures.store("list", &StateError::Full("task store")));
        });
        assert!(
            refusals
                .iter()
                .all(|refused| matches!(refused, Refused::Gateway(GatewayError::Unavailable))),
            "{refusals:?}"
        );
        assert_eq!(lines.len(), 2, "one line per kind: {lines:?}");
        assert!(lines[0].contains("redis: timed out"), "{lines:?}");
        assert!(
            lines[1].contains("shared state full: task store"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_task_that_does_not_decode_is_an_internal_error_logged_apart_from_an_outage() {
        let failures = Failures::default();
        let task_id = Uuid::new_v4();
        let undecodable = serde_json::from_value::<StoredTask>(serde_json::json!({
            "task": "a message the caller wrote", "seq": 1
        }))
        .unwrap_err();
        let mut refusals = Vec::new();
        let lines = logged(|| {
            refusals
                .push(failures.store("get", &StateError::Unavailable("redis: timed out".into())));
            refusals.push(failures.corrupt("decode", task_id, &json_position(&undecodable)));
            refusals.push(failures.store(
                "put",
                &StateError::Invalid("this task id belongs to another owner".into()),
            ));
        });
        assert!(matches!(refusals[1], Refused::Rpc(ref error) if error.code == -32603));
        assert!(matches!(refusals[2], Refused::Rpc(ref error) if error.code == -32603));
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[1].contains("could not be encoded or decoded"),
            "{lines:?}"
        );
        assert!(lines[1].contains(&task_id.to_string()), "{lines:?}");
        assert!(lines[1].contains("Data error at line"), "{lines:?}");
        assert!(
            !lines[1].contains("the caller wrote"),
            "no task content: {lines:?}"
        );
        assert!(lines[2].contains("belongs to another owner"), "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|line| !line.contains("the task store failed")),
            "{lines:?}"
        );
    }
}
