//! The built-in `conformance` agent: a scripted A2A 1.0 agent that exists to prove protocol
//! behaviour (the public A2A test kit drives it). It reacts to the prefix of the incoming
//! `messageId` — `tck-complete-task`, `tck-input-required`, `tck-stream-artifact-chunked`, … —
//! with a fixed script, see [`Behaviour`] and `docs/agents.md`.
//!
//! This module is pure: no I/O, no clock, no randomness. The caller (the A2A gateway) assigns
//! the ids ([`Ids`]), drives a [`Script`] — waiting each step's pause, stamping timestamps,
//! storing the task, sending each event to the stream's subscribers — or answers a blocking
//! `SendMessage` from [`Script::final_task`]. Its tasks follow the A2A task state machine of
//! `hive_a2a::state_machine`, like every other agent's.
//!
//! Follow-up messages on a task that is not terminal (the same `taskId`, e.g. the answer to
//! `tck-input-required`) go to [`follow_up`]. They are dispatched on their own `messageId`
//! prefix, as in the test kit's reference agents: the kit answers an input-required task with
//! `tck-complete-task-…` (or an id with no known prefix, which is the default: complete), and
//! the blocking send must return the completed task; `tck-input-required-…` asks again.

use base64::Engine as _;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::state_machine;
use hive_a2a::v1::{
    Artifact, Message, Part, PartContent, Role, StreamResponse, Task, TaskArtifactUpdateEvent,
    TaskState, TaskStatus, TaskStatusUpdateEvent,
};
use serde_json::json;
use std::time::Duration;

/// How long `test-resubscribe-message-id` stays WORKING before it completes: long enough for a
/// client to subscribe to the running task (the kit asks for at least twice its 2 s stream
/// timeout).
pub const RESUBSCRIBE_HOLD: Duration = Duration::from_secs(5);

/// How long `tck-delayed-complete` stays WORKING: one stream timeout of the kit (2 s), so a
/// blocking and a non-blocking send give observably different answers.
pub const DELAYED_COMPLETE_HOLD: Duration = Duration::from_secs(2);

/// The text of the agent's message when it completes a task by default.
pub const COMPLETE_TEXT: &str = "Hello from TCK";
/// The text of the direct reply of `tck-message-response`.
pub const MESSAGE_TEXT: &str = "Direct message response";

/// The file of `tck-artifact-file` and `tck-stream-artifact-file`.
pub const FILE_NAME: &str = "output.txt";
pub const FILE_MEDIA_TYPE: &str = "text/plain";
pub const FILE_BYTES: &[u8] = b"file output";
/// The URL of `tck-artifact-file-url`.
pub const FILE_URL: &str = "https://example.com/output.txt";

/// The ids the caller assigns to what the agent creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// The new task's id (unused when the agent answers with a message).
    pub task_id: String,
    /// The context id, used only when the incoming message carries none: a client-provided
    /// `contextId` is kept (the specification lets agents preserve it, and the test kit checks
    /// that the task comes back in the context it sent).
    pub context_id: String,
    /// The id of the agent's message, if the script has one (at most one per script).
    pub agent_message_id: String,
}

/// What the agent does with a new message.
#[derive(Debug, Clone, PartialEq)]
pub enum Reaction {
    /// A direct reply, no task (`tck-message-response`). Its `contextId` is the message's or
    /// the assigned one; it has no `taskId`.
    Message(Message),
    /// A task and its events.
    Task(Script),
}

/// One event of a script, sent after waiting `pause` (if any) from the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub pause: Option<Duration>,
    pub event: StreamResponse,
}

/// The events of a task, in order: first the task itself (a new task is SUBMITTED, with the
/// user's message as its history), then status and artifact updates; the last one leaves the
/// task terminal (completed, rejected) or interrupted (input required), and nothing follows it.
/// Every event carries the task's id and context id.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    steps: Vec<Step>,
}

impl Script {
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn into_steps(self) -> Vec<Step> {
        self.steps
    }

    /// The events without their pauses.
    pub fn events(&self) -> impl Iterator<Item = &StreamResponse> {
        self.steps.iter().map(|step| &step.event)
    }

    /// The task as it stands after the whole script: what a blocking `SendMessage` answers.
    pub fn final_task(&self) -> Task {
        let mut task = Task::default();
        for event in self.events() {
            state_machine::apply(&mut task, event);
        }
        task
    }
}

/// A behaviour of the agent, chosen by the prefix of the incoming `messageId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// `tck-complete-task`, and any id without a known prefix: completed with the agent
    /// message "Hello from TCK".
    CompleteTask,
    /// `tck-message-response`: a direct message "Direct message response", no task.
    MessageResponse,
    /// `tck-input-required`: left in INPUT_REQUIRED, with the agent message "Input required".
    InputRequired,
    /// `tck-reject-task`: REJECTED, with the agent message "rejected".
    RejectTask,
    /// `tck-artifact-text`: completed with a text artifact "Generated text content".
    ArtifactText,
    /// `tck-artifact-file`: completed with a file artifact (raw bytes, output.txt, text/plain).
    ArtifactFile,
    /// `tck-artifact-file-url`: completed with a file artifact by URL (output.txt, text/plain).
    ArtifactFileUrl,
    /// `tck-artifact-data`: completed with a data artifact `{"key":"value","count":42}`.
    ArtifactData,
    /// `tck-stream-001`: working, text artifact "Stream hello from TCK", completed.
    Stream001,
    /// `tck-stream-002`: completed, nothing else.
    Stream002,
    /// `tck-stream-003`: working, text artifact "Stream task lifecycle", completed.
    Stream003,
    /// `tck-stream-ordering-001`: working, text artifact "Ordered output", completed.
    StreamOrdering,
    /// `tck-stream-artifact-text`: working, text artifact "Streamed text content", completed.
    StreamArtifactText,
    /// `tck-stream-artifact-file`: working, the file artifact of `tck-artifact-file`, completed.
    StreamArtifactFile,
    /// `tck-stream-artifact-chunked`: working, one text artifact in two chunks ("chunk-1 ",
    /// then "chunk-2" appended with `lastChunk`), completed.
    StreamArtifactChunked,
    /// `test-resubscribe-message-id`: working, then after [`RESUBSCRIBE_HOLD`] completed.
    Resubscribe,
    /// `tck-delayed-complete` (newer test kits, execution-mode tests): working, then after
    /// [`DELAYED_COMPLETE_HOLD`] completed with the agent message "Done after delay".
    DelayedComplete,
}

/// The prefixes in the order they are tried: a prefix comes before any shorter prefix of it
/// (`tck-artifact-file-url` before `tck-artifact-file`).
const PREFIXES: [(&str, Behaviour); 17] = [
    (
        "tck-stream-artifact-chunked",
        Behaviour::StreamArtifactChunked,
    ),
    ("tck-stream-artifact-text", Behaviour::StreamArtifactText),
    ("tck-stream-artifact-file", Behaviour::StreamArtifactFile),
    ("tck-stream-ordering-001", Behaviour::StreamOrdering),
    ("tck-stream-001", Behaviour::Stream001),
    ("tck-stream-002", Behaviour::Stream002),
    ("tck-stream-003", Behaviour::Stream003),
    ("test-resubscribe-message-id", Behaviour::Resubscribe),
    ("tck-delayed-complete", Behaviour::DelayedComplete),
    ("tck-artifact-file-url", Behaviour::ArtifactFileUrl),
    ("tck-artifact-file", Behaviour::ArtifactFile),
    ("tck-artifact-text", Behaviour::ArtifactText),
    ("tck-artifact-data", Behaviour::ArtifactData),
    ("tck-message-response", Behaviour::MessageResponse),
    ("tck-input-required", Behaviour::InputRequired),
    ("tck-reject-task", Behaviour::RejectTask),
    ("tck-complete-task", Behaviour::CompleteTask),
];

impl Behaviour {
    /// Every behaviour with its prefix, in the order prefixes are tried.
    pub fn all() -> impl Iterator<Item = (&'static str, Behaviour)> {
        PREFIXES.into_iter()
    }

    /// The behaviour a message id asks for; [`Behaviour::CompleteTask`] when none matches.
    pub fn of(message_id: &str) -> Self {
        PREFIXES
            .iter()
            .find(|(prefix, _)| message_id.starts_with(prefix))
            .map_or(Self::CompleteTask, |(_, behaviour)| *behaviour)
    }

    /// What happens after the task event, in order.
    fn beats(self) -> Vec<Beat> {
        use Beat::{Artifact, Pause, Status};
        let completed = || Status(TaskState::Completed, None);
        let working = || Status(TaskState::Working, None);
        let streamed_text = |text| vec![working(), Artifact(text_parts(text)), completed()];
        match self {
            Self::CompleteTask => vec![Status(TaskState::Completed, Some(COMPLETE_TEXT))],
            // On a follow-up the reply goes into the task, which it completes.
            Self::MessageResponse => vec![Status(TaskState::Completed, Some(MESSAGE_TEXT))],
            Self::InputRequired => vec![Status(TaskState::InputRequired, Some("Input required"))],
            Self::RejectTask => vec![Status(TaskState::Rejected, Some("rejected"))],
            Self::ArtifactText => vec![Artifact(text_parts("Generated text content")), completed()],
            Self::ArtifactFile => vec![Artifact(vec![file_part()]), completed()],
            Self::ArtifactFileUrl => vec![Artifact(vec![file_url_part()]), completed()],
            Self::ArtifactData => vec![
                Artifact(vec![Part::data(json!({"key": "value", "count": 42}))]),
                completed(),
            ],
            Self::Stream001 => streamed_text("Stream hello from TCK"),
            Self::Stream002 => vec![completed()],
            Self::Stream003 => streamed_text("Stream task lifecycle"),
            Self::StreamOrdering => streamed_text("Ordered output"),
            Self::StreamArtifactText => streamed_text("Streamed text content"),
            Self::StreamArtifactFile => vec![working(), Artifact(vec![file_part()]), completed()],
            Self::StreamArtifactChunked => vec![
                working(),
                Beat::Chunk {
                    text: "chunk-1 ",
                    last: false,
                },
                Beat::Chunk {
                    text: "chunk-2",
                    last: true,
                },
                completed(),
            ],
            Self::Resubscribe => vec![working(), Pause(RESUBSCRIBE_HOLD), completed()],
            Self::DelayedComplete => vec![
                working(),
                Pause(DELAYED_COMPLETE_HOLD),
                Status(TaskState::Completed, Some("Done after delay")),
            ],
        }
    }
}

/// One thing a behaviour does after the task event.
#[derive(Debug, Clone)]
enum Beat {
    /// A status update, with an agent message of this text.
    Status(TaskState, Option<&'static str>),
    /// The script's artifact, whole.
    Artifact(Vec<Part>),
    /// A chunk of the script's artifact: the first creates it, the others are appended.
    Chunk { text: &'static str, last: bool },
    /// Wait before the next event.
    Pause(Duration),
}

fn text_parts(text: &str) -> Vec<Part> {
    vec![Part::text(text)]
}

fn file_part() -> Part {
    Part {
        content: PartContent::Raw(base64::engine::general_purpose::STANDARD.encode(FILE_BYTES)),
        filename: FILE_NAME.to_owned(),
        media_type: FILE_MEDIA_TYPE.to_owned(),
        ..Part::text("")
    }
}

fn file_url_part() -> Part {
    Part {
        content: PartContent::Url(FILE_URL.to_owned()),
        filename: FILE_NAME.to_owned(),
        media_type: FILE_MEDIA_TYPE.to_owned(),
        ..Part::text("")
    }
}

/// The agent's reaction to a new message (one without a `taskId`).
pub fn react(message: &Message, ids: &Ids) -> Reaction {
    let context_id = if message.context_id.is_empty() {
        ids.context_id.clone()
    } else {
        message.context_id.clone()
    };
    let behaviour = Behaviour::of(&message.message_id);
    if behaviour == Behaviour::MessageResponse {
        return Reaction::Message(agent_message(
            &ids.agent_message_id,
            &context_id,
            "",
            MESSAGE_TEXT,
        ));
    }
    let task = Task {
        id: ids.task_id.clone(),
        history: vec![in_task(message, &ids.task_id, &context_id)],
        context_id,
        status: TaskStatus {
            state: TaskState::Submitted,
            ..TaskStatus::default()
        },
        ..Task::default()
    };
    Reaction::Task(script(task, behaviour, &ids.agent_message_id))
}

/// The agent's reaction to a follow-up message on `task` (the message's `taskId` names it):
/// the script continues the task — its first event is the task with the new message added to
/// its history, WORKING again — and is dispatched on the message's own prefix, like a new message, except
/// that `tck-message-response` answers inside the task and completes it.
///
/// Refused, as the specification asks: a terminal task (`-32004` unsupported operation); a
/// `contextId` or `taskId` other than the task's (`-32602` invalid params).
pub fn follow_up(
    task: &Task,
    message: &Message,
    agent_message_id: &str,
) -> Result<Script, RpcError> {
    if task.status.state.is_terminal() {
        return Err(ErrorCode::UnsupportedOperation
            .with_message("The task is in a terminal state and accepts no more messages"));
    }
    if !message.context_id.is_empty() && message.context_id != task.context_id {
        return Err(ErrorCode::InvalidParams
            .with_message("message.contextId differs from the task's contextId"));
    }
    if !message.task_id.is_empty() && message.task_id != task.id {
        return Err(ErrorCode::InvalidParams.with_message("message.taskId names another task"));
    }
    let mut continued = task.clone();
    continued
        .history
        .push(in_task(message, &task.id, &task.context_id));
    // The client answered: the agent works on the task again.
    continued.status = TaskStatus {
        state: TaskState::Working,
        ..TaskStatus::default()
    };
    Ok(script(
        continued,
        Behaviour::of(&message.message_id),
        agent_message_id,
    ))
}

/// The user's message as the task records it: with the task's ids.
fn in_task(message: &Message, task_id: &str, context_id: &str) -> Message {
    Message {
        task_id: task_id.to_owned(),
        context_id: context_id.to_owned(),
        ..message.clone()
    }
}

fn agent_message(message_id: &str, context_id: &str, task_id: &str, text: &str) -> Message {
    Message {
        message_id: message_id.to_owned(),
        context_id: context_id.to_owned(),
        task_id: task_id.to_owned(),
        role: Role::Agent,
        parts: text_parts(text),
        ..Message::default()
    }
}

/// The script of a behaviour on a task (`task` is the first event as it will be sent).
fn script(task: Task, behaviour: Behaviour, agent_message_id: &str) -> Script {
    let task_id = task.id.clone();
    let context_id = task.context_id.clone();
    let artifact_id = format!("artifact-{}", task.artifacts.len() + 1);
    let artifact_update = |parts: Vec<Part>, append: bool, last_chunk: bool| {
        StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
            task_id: task_id.clone(),
            context_id: context_id.clone(),
            artifact: Artifact {
                artifact_id: artifact_id.clone(),
                parts,
                ..Artifact::default()
            },
            append,
            last_chunk,
            metadata: None,
        })
    };
    let mut steps = vec![Step {
        pause: None,
        event: StreamResponse::Task(task.clone()),
    }];
    let mut pause = None;
    let mut chunks_sent = false;
    for beat in behaviour.beats() {
        let event = match beat {
            Beat::Pause(wait) => {
                pause = Some(wait);
                continue;
            }
            Beat::Status(state, text) => StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
                task_id: task_id.clone(),
                context_id: context_id.clone(),
                status: TaskStatus {
                    state,
                    message: text.map(|text| {
                        Box::new(agent_message(agent_message_id, &context_id, &task_id, text))
                    }),
                    timestamp: None,
                },
                metadata: None,
            }),
            Beat::Artifact(parts) => artifact_update(parts, false, true),
            Beat::Chunk { text, last } => {
                let append = chunks_sent;
                chunks_sent = true;
                artifact_update(text_parts(text), append, last)
            }
        };
        steps.push(Step {
            pause: pause.take(),
            event,
        });
    }
    Script { steps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_a2a::v1::SendMessageResponse;
    use serde_json::Value;

    fn ids() -> Ids {
        Ids {
            task_id: "task-1".to_owned(),
            context_id: "ctx-assigned".to_owned(),
            agent_message_id: "agent-msg-1".to_owned(),
        }
    }

    fn user(message_id: &str) -> Message {
        Message {
            message_id: message_id.to_owned(),
            role: Role::User,
            parts: vec![Part::text("hi")],
            ..Message::default()
        }
    }

    fn script_of(message_id: &str) -> Script {
        match react(&user(message_id), &ids()) {
            Reaction::Task(script) => script,
            Reaction::Message(_) => panic!("{message_id}: a message, not a task"),
        }
    }

    fn state_of(event: &StreamResponse) -> Option<TaskState> {
        match event {
            StreamResponse::Task(task) => Some(task.status.state),
            StreamResponse::StatusUpdate(update) => Some(update.status.state),
            StreamResponse::Message(_) | StreamResponse::ArtifactUpdate(_) => None,
        }
    }

    /// An event in a few words: its kind, the state or part kind, and the flags.
    fn signature(event: &StreamResponse) -> String {
        match event {
            StreamResponse::Task(task) => format!("task {:?}", task.status.state),
            StreamResponse::Message(_) => "message".to_owned(),
            StreamResponse::StatusUpdate(update) => {
                let message = if update.status.message.is_some() {
                    " +message"
                } else {
                    ""
                };
                format!("status {:?}{message}", update.status.state)
            }
            StreamResponse::ArtifactUpdate(update) => {
                let kinds: Vec<&str> = update
                    .artifact
                    .parts
                    .iter()
                    .map(|part| match part.content {
                        PartContent::Text(_) => "text",
                        PartContent::Raw(_) => "raw",
                        PartContent::Url(_) => "url",
                        PartContent::Data(_) => "data",
                    })
                    .collect();
                let append = if update.append { " append" } else { "" };
                let last = if update.last_chunk { " last" } else { "" };
                format!("artifact {}{append}{last}", kinds.join(","))
            }
        }
    }

    fn signatures(script: &Script) -> Vec<String> {
        script.events().map(signature).collect()
    }

    fn pauses(script: &Script) -> Vec<Option<Duration>> {
        script.steps().iter().map(|step| step.pause).collect()
    }

    fn texts(parts: &[Part]) -> Vec<&str> {
        parts
            .iter()
            .filter_map(|part| match &part.content {
                PartContent::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Every message id the test kit sends, with the events it gets.
    const EXPECTED: [(&str, &[&str]); 18] = [
        (
            "tck-complete-task-001",
            &["task Submitted", "status Completed +message"],
        ),
        (
            "some-other-id",
            &["task Submitted", "status Completed +message"],
        ),
        (
            "tck-input-required-001",
            &["task Submitted", "status InputRequired +message"],
        ),
        (
            "tck-reject-task-001",
            &["task Submitted", "status Rejected +message"],
        ),
        (
            "tck-artifact-text-001",
            &["task Submitted", "artifact text last", "status Completed"],
        ),
        (
            "tck-artifact-file-001",
            &["task Submitted", "artifact raw last", "status Completed"],
        ),
        (
            "tck-artifact-file-url-001",
            &["task Submitted", "artifact url last", "status Completed"],
        ),
        (
            "tck-artifact-data-001",
            &["task Submitted", "artifact data last", "status Completed"],
        ),
        (
            "tck-stream-001-a",
            &[
                "task Submitted",
                "status Working",
                "artifact text last",
                "status Completed",
            ],
        ),
        ("tck-stream-002-a", &["task Submitted", "status Completed"]),
        (
            "tck-stream-003-a",
            &[
                "task Submitted",
                "status Working",
                "artifact text last",
                "status Completed",
            ],
        ),
        (
            "tck-stream-ordering-001-a",
            &[
                "task Submitted",
                "status Working",
                "artifact text last",
                "status Completed",
            ],
        ),
        (
            "tck-stream-artifact-text-a",
            &[
                "task Submitted",
                "status Working",
                "artifact text last",
                "status Completed",
            ],
        ),
        (
            "tck-stream-artifact-file-a",
            &[
                "task Submitted",
                "status Working",
                "artifact raw last",
                "status Completed",
            ],
        ),
        (
            "tck-stream-artifact-chunked-a",
            &[
                "task Submitted",
                "status Working",
                "artifact text",
                "artifact text append last",
                "status Completed",
            ],
        ),
        (
            "test-resubscribe-message-id-a",
            &["task Submitted", "status Working", "status Completed"],
        ),
        (
            "tck-delayed-complete-a",
            &[
                "task Submitted",
                "status Working",
                "status Completed +message",
            ],
        ),
        (
            "tck-complete-task",
            &["task Submitted", "status Completed +message"],
        ),
    ];

    #[test]
    fn every_prefix_gets_its_events_in_order() {
        for (message_id, expected) in EXPECTED {
            assert_eq!(signatures(&script_of(message_id)), expected, "{message_id}");
        }
    }

    #[test]
    fn every_behaviour_is_reached_by_its_prefix() {
        for (prefix, behaviour) in Behaviour::all() {
            assert_eq!(Behaviour::of(prefix), behaviour, "{prefix}");
            assert_eq!(
                Behaviour::of(&format!("{prefix}-123")),
                behaviour,
                "{prefix}"
            );
        }
        assert_eq!(Behaviour::of(""), Behaviour::CompleteTask);
        assert_eq!(Behaviour::of("TCK-REJECT-TASK"), Behaviour::CompleteTask);
        assert_eq!(Behaviour::of("x-tck-reject-task"), Behaviour::CompleteTask);
    }

    #[test]
    fn no_prefix_is_shadowed_by_an_earlier_one() {
        let prefixes: Vec<&str> = Behaviour::all().map(|(prefix, _)| prefix).collect();
        for (index, later) in prefixes.iter().enumerate() {
            for earlier in &prefixes[..index] {
                assert!(!later.starts_with(earlier), "{earlier} shadows {later}");
            }
        }
    }

    #[test]
    fn only_the_holding_behaviours_pause() {
        for (message_id, _) in EXPECTED {
            let expected = match Behaviour::of(message_id) {
                Behaviour::Resubscribe => vec![None, None, Some(RESUBSCRIBE_HOLD)],
                Behaviour::DelayedComplete => vec![None, None, Some(DELAYED_COMPLETE_HOLD)],
                _ => vec![None; script_of(message_id).steps().len()],
            };
            assert_eq!(pauses(&script_of(message_id)), expected, "{message_id}");
        }
        assert_eq!(RESUBSCRIBE_HOLD, Duration::from_secs(5));
    }

    #[test]
    fn scripts_start_with_the_task_and_end_at_their_first_settled_state() {
        for (message_id, _) in EXPECTED {
            let script = script_of(message_id);
            let events: Vec<&StreamResponse> = script.events().collect();
            let Some(StreamResponse::Task(first)) = events.first() else {
                panic!("{message_id}: does not start with the task");
            };
            assert_eq!(first.status.state, TaskState::Submitted, "{message_id}");
            assert_eq!(first.history, vec![in_history(message_id)], "{message_id}");
            assert!(first.artifacts.is_empty(), "{message_id}");
            assert!(
                events[1..]
                    .iter()
                    .all(|event| !matches!(event, StreamResponse::Task(_))),
                "{message_id}: a second task event"
            );
            let settled: Vec<usize> = events
                .iter()
                .enumerate()
                .filter(|(_, event)| {
                    state_of(event)
                        .is_some_and(|state| state.is_terminal() || state.is_interrupted())
                })
                .map(|(index, _)| index)
                .collect();
            assert_eq!(settled, vec![events.len() - 1], "{message_id}");
        }
    }

    fn in_history(message_id: &str) -> Message {
        Message {
            task_id: "task-1".to_owned(),
            context_id: "ctx-assigned".to_owned(),
            ..user(message_id)
        }
    }

    #[test]
    fn every_event_carries_the_task_and_context_ids() {
        for (message_id, _) in EXPECTED {
            for client_context in [None, Some("ctx-client")] {
                let mut message = user(message_id);
                message.context_id = client_context.unwrap_or_default().to_owned();
                let Reaction::Task(script) = react(&message, &ids()) else {
                    panic!("{message_id}: not a task");
                };
                let context = client_context.unwrap_or("ctx-assigned");
                for event in script.events() {
                    let (task_id, context_id) = match event {
                        StreamResponse::Task(task) => (&task.id, &task.context_id),
                        StreamResponse::StatusUpdate(update) => {
                            (&update.task_id, &update.context_id)
                        }
                        StreamResponse::ArtifactUpdate(update) => {
                            (&update.task_id, &update.context_id)
                        }
                        StreamResponse::Message(message) => (&message.task_id, &message.context_id),
                    };
                    assert_eq!(
                        (task_id.as_str(), context_id.as_str()),
                        ("task-1", context),
                        "{message_id}"
                    );
                    if let StreamResponse::StatusUpdate(update) = event
                        && let Some(agent) = &update.status.message
                    {
                        assert_eq!(agent.role, Role::Agent);
                        assert_eq!(agent.message_id, "agent-msg-1");
                        assert_eq!(
                            (agent.task_id.as_str(), agent.context_id.as_str()),
                            ("task-1", context)
                        );
                    }
                }
                let task = script.final_task();
                assert_eq!(
                    (task.id.as_str(), task.context_id.as_str()),
                    ("task-1", context)
                );
                for recorded in &task.history {
                    assert_eq!(
                        (recorded.task_id.as_str(), recorded.context_id.as_str()),
                        ("task-1", context)
                    );
                }
            }
        }
    }

    #[test]
    fn folded_tasks_hold_each_behaviours_outcome() {
        for (message_id, _) in EXPECTED {
            let task = script_of(message_id).final_task();
            let behaviour = Behaviour::of(message_id);
            let expected_state = match behaviour {
                Behaviour::InputRequired => TaskState::InputRequired,
                Behaviour::RejectTask => TaskState::Rejected,
                _ => TaskState::Completed,
            };
            assert_eq!(task.status.state, expected_state, "{message_id}");
            let agent_text = match behaviour {
                Behaviour::CompleteTask => Some(COMPLETE_TEXT),
                Behaviour::InputRequired => Some("Input required"),
                Behaviour::RejectTask => Some("rejected"),
                Behaviour::DelayedComplete => Some("Done after delay"),
                _ => None,
            };
            let status_text = task.status.message.as_ref().map(|message| message.text());
            assert_eq!(status_text.as_deref(), agent_text, "{message_id}");
            let mut history = vec![in_history(message_id)];
            history.extend(task.status.message.as_deref().cloned());
            assert_eq!(task.history, history, "{message_id}");

            let artifact_text = match behaviour {
                Behaviour::ArtifactText => vec!["Generated text content"],
                Behaviour::Stream001 => vec!["Stream hello from TCK"],
                Behaviour::Stream003 => vec!["Stream task lifecycle"],
                Behaviour::StreamOrdering => vec!["Ordered output"],
                Behaviour::StreamArtifactText => vec!["Streamed text content"],
                // Appended text chunks are kept as one part.
                Behaviour::StreamArtifactChunked => vec!["chunk-1 chunk-2"],
                _ => vec![],
            };
            let file = match behaviour {
                Behaviour::ArtifactFile | Behaviour::StreamArtifactFile => Some(file_part()),
                Behaviour::ArtifactFileUrl => Some(file_url_part()),
                Behaviour::ArtifactData => Some(Part::data(json!({"key": "value", "count": 42}))),
                _ => None,
            };
            let mut expected_parts: Vec<Part> = artifact_text.into_iter().map(Part::text).collect();
            expected_parts.extend(file);
            if expected_parts.is_empty() {
                assert!(task.artifacts.is_empty(), "{message_id}");
            } else {
                assert_eq!(task.artifacts.len(), 1, "{message_id}");
                assert_eq!(task.artifacts[0].artifact_id, "artifact-1", "{message_id}");
                assert_eq!(task.artifacts[0].parts, expected_parts, "{message_id}");
            }
        }
    }

    #[test]
    fn the_file_artifact_is_raw_bytes_named_output_txt() {
        let task = script_of("tck-artifact-file-1").final_task();
        let part = &task.artifacts[0].parts[0];
        let PartContent::Raw(raw) = &part.content else {
            panic!("not raw bytes");
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap();
        assert_eq!(bytes, FILE_BYTES);
        assert_eq!(
            (part.filename.as_str(), part.media_type.as_str()),
            ("output.txt", "text/plain")
        );

        let by_url = script_of("tck-artifact-file-url-1").final_task();
        let part = &by_url.artifacts[0].parts[0];
        assert_eq!(
            part.content,
            PartContent::Url("https://example.com/output.txt".to_owned())
        );
        assert_eq!(
            (part.filename.as_str(), part.media_type.as_str()),
            ("output.txt", "text/plain")
        );

        let data = script_of("tck-artifact-data-1").final_task();
        let wire = serde_json::to_value(&data.artifacts[0].parts[0]).unwrap();
        assert_eq!(wire, json!({"data": {"key": "value", "count": 42}}));
    }

    #[test]
    fn the_chunked_artifact_is_appended_and_its_last_chunk_says_so() {
        let script = script_of("tck-stream-artifact-chunked-1");
        let chunks: Vec<&TaskArtifactUpdateEvent> = script
            .events()
            .filter_map(|event| match event {
                StreamResponse::ArtifactUpdate(update) => Some(update),
                _ => None,
            })
            .collect();
        let flags: Vec<(bool, bool)> = chunks
            .iter()
            .map(|chunk| (chunk.append, chunk.last_chunk))
            .collect();
        // The first chunk creates the artifact (nothing to append to), the last closes it.
        assert_eq!(flags, vec![(false, false), (true, true)]);
        assert!(
            chunks
                .iter()
                .all(|chunk| chunk.artifact.artifact_id == "artifact-1")
        );
        let parts: Vec<&str> = chunks
            .iter()
            .flat_map(|chunk| texts(&chunk.artifact.parts))
            .collect();
        assert_eq!(parts, vec!["chunk-1 ", "chunk-2"]);
        // Stored, the appended text chunks are one part.
        let task = script.final_task();
        assert_eq!(task.artifacts.len(), 1);
        assert_eq!(texts(&task.artifacts[0].parts), vec!["chunk-1 chunk-2"]);
    }

    #[test]
    fn message_response_is_a_direct_agent_message() {
        let Reaction::Message(reply) = react(&user("tck-message-response-1"), &ids()) else {
            panic!("a task, not a message");
        };
        assert_eq!(reply.role, Role::Agent);
        assert_eq!(reply.text(), "Direct message response");
        assert_eq!(reply.message_id, "agent-msg-1");
        assert_eq!(reply.context_id, "ctx-assigned");
        assert!(reply.task_id.is_empty());
        assert!(reply.validate().is_ok());

        let mut in_context = user("tck-message-response-2");
        in_context.context_id = "ctx-client".to_owned();
        let Reaction::Message(reply) = react(&in_context, &ids()) else {
            panic!("a task, not a message");
        };
        assert_eq!(reply.context_id, "ctx-client");
    }

    fn input_required_task() -> Task {
        script_of("tck-input-required-1").final_task()
    }

    fn follow_up_message(message_id: &str) -> Message {
        Message {
            task_id: "task-1".to_owned(),
            ..user(message_id)
        }
    }

    #[test]
    fn a_follow_up_completes_an_input_required_task() {
        let task = input_required_task();
        // The kit answers with `tck-complete-task-…` or an id without a known prefix.
        for message_id in ["tck-complete-task-2", "tck-infer-ctx-2"] {
            let script = follow_up(&task, &follow_up_message(message_id), "agent-msg-2").unwrap();
            assert_eq!(
                signatures(&script),
                vec!["task Working", "status Completed +message"],
                "{message_id}"
            );
            let done = script.final_task();
            assert_eq!(done.status.state, TaskState::Completed);
            let history: Vec<(Role, String)> = done
                .history
                .iter()
                .map(|message| (message.role, message.message_id.clone()))
                .collect();
            assert_eq!(
                history,
                vec![
                    (Role::User, "tck-input-required-1".to_owned()),
                    (Role::Agent, "agent-msg-1".to_owned()),
                    (Role::User, message_id.to_owned()),
                    (Role::Agent, "agent-msg-2".to_owned()),
                ]
            );
            for recorded in &done.history {
                assert_eq!(
                    (recorded.task_id.as_str(), recorded.context_id.as_str()),
                    ("task-1", "ctx-assigned")
                );
            }
        }
    }

    #[test]
    fn a_follow_up_is_dispatched_on_its_own_prefix() {
        let task = input_required_task();
        let again = follow_up(
            &task,
            &follow_up_message("tck-input-required-2"),
            "agent-msg-2",
        )
        .unwrap();
        assert_eq!(again.final_task().status.state, TaskState::InputRequired);

        let with_artifact = follow_up(
            &task,
            &follow_up_message("tck-artifact-text-2"),
            "agent-msg-2",
        )
        .unwrap()
        .final_task();
        assert_eq!(with_artifact.status.state, TaskState::Completed);
        assert_eq!(with_artifact.artifacts[0].artifact_id, "artifact-1");

        let answered = follow_up(
            &task,
            &follow_up_message("tck-message-response-2"),
            "agent-msg-2",
        )
        .unwrap()
        .final_task();
        assert_eq!(answered.status.state, TaskState::Completed);
        let reply = answered.status.message.map(|message| message.text());
        assert_eq!(reply.as_deref(), Some("Direct message response"));

        // A second artifact on a task that has one gets a new id.
        let mut has_artifact = with_artifact.clone();
        has_artifact.status.state = TaskState::InputRequired;
        let second = follow_up(
            &has_artifact,
            &follow_up_message("tck-artifact-data-3"),
            "agent-msg-3",
        )
        .unwrap()
        .final_task();
        let ids: Vec<&str> = second
            .artifacts
            .iter()
            .map(|artifact| artifact.artifact_id.as_str())
            .collect();
        assert_eq!(ids, vec!["artifact-1", "artifact-2"]);
    }

    #[test]
    fn follow_ups_on_terminal_tasks_or_other_contexts_are_refused() {
        for terminal in [
            "tck-complete-task-1",
            "tck-reject-task-1",
            "tck-stream-002-1",
        ] {
            let task = script_of(terminal).final_task();
            let refusal = follow_up(
                &task,
                &follow_up_message("tck-complete-task-2"),
                "agent-msg-2",
            )
            .unwrap_err();
            assert_eq!(
                refusal.kind(),
                Some(ErrorCode::UnsupportedOperation),
                "{terminal}"
            );
        }
        let task = input_required_task();
        let mut elsewhere = follow_up_message("tck-complete-task-2");
        elsewhere.context_id = "ctx-other".to_owned();
        let refusal = follow_up(&task, &elsewhere, "agent-msg-2").unwrap_err();
        assert_eq!(refusal.kind(), Some(ErrorCode::InvalidParams));
        let mut other_task = follow_up_message("tck-complete-task-2");
        other_task.task_id = "task-2".to_owned();
        let refusal = follow_up(&task, &other_task, "agent-msg-2").unwrap_err();
        assert_eq!(refusal.kind(), Some(ErrorCode::InvalidParams));

        let mut same_context = follow_up_message("tck-complete-task-2");
        same_context.context_id = "ctx-assigned".to_owned();
        assert!(follow_up(&task, &same_context, "agent-msg-2").is_ok());
    }

    // ----- golden JSON -----

    /// A script as JSON: its steps, each with its pause in milliseconds when it has one.
    fn script_json(script: &Script) -> Value {
        let steps: Vec<Value> = script
            .steps()
            .iter()
            .map(|step| {
                let mut json = json!({"event": step.event});
                if let Some(pause) = step.pause {
                    json["pauseMillis"] = json!(pause.as_millis() as u64);
                }
                json
            })
            .collect();
        Value::Array(steps)
    }

    /// Compares with `tests/data/conformance/{name}`; `HIVE_UPDATE_GOLDEN=1` rewrites the file
    /// (then read the diff).
    fn assert_golden(name: &str, actual: &Value) {
        let path = format!(
            "{}/tests/data/conformance/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var_os("HIVE_UPDATE_GOLDEN").is_some() {
            let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
            std::fs::write(&path, text).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
        let expected: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(actual, &expected, "{name} differs from its golden file");
    }

    /// The golden file parses back (with hive-a2a's serde) into the same value.
    fn assert_reads_back(name: &str, value: &SendMessageResponse) {
        let path = format!(
            "{}/tests/data/conformance/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: SendMessageResponse = serde_json::from_str(&text).unwrap();
        assert_eq!(&parsed, value, "{name}");
    }

    #[test]
    fn golden_scripts() {
        for (name, message_id) in [
            ("complete_task.script.json", "tck-complete-task-001"),
            (
                "stream_artifact_chunked.script.json",
                "tck-stream-artifact-chunked-001",
            ),
            ("resubscribe.script.json", "test-resubscribe-message-id-001"),
        ] {
            assert_golden(name, &script_json(&script_of(message_id)));
        }
    }

    #[test]
    fn golden_send_message_results() {
        let Reaction::Message(reply) = react(&user("tck-message-response-001"), &ids()) else {
            panic!("not a message");
        };
        let reply = SendMessageResponse::Message(reply);
        assert_golden("message_response.result.json", &json!(reply));
        assert_reads_back("message_response.result.json", &reply);

        let file = SendMessageResponse::Task(script_of("tck-artifact-file-001").final_task());
        assert_golden("artifact_file.result.json", &json!(file));
        assert_reads_back("artifact_file.result.json", &file);

        let task = input_required_task();
        let done = follow_up(
            &task,
            &follow_up_message("tck-complete-task-002"),
            "agent-msg-2",
        )
        .unwrap()
        .final_task();
        assert_golden(
            "input_required_follow_up.result.json",
            &json!(SendMessageResponse::Task(done)),
        );

        let canceled = hive_a2a::state_machine::cancel(&task).unwrap();
        assert_golden("canceled.task.json", &json!(canceled));
    }
}
