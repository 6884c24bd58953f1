//! The A2A task state machine, for any agent or gateway: how the events of a stream fold into
//! the task they describe ([`apply`]), which tasks may still be canceled ([`is_cancelable`],
//! [`cancel`]) and the event that announces a task's status ([`status_update`]).
//!
//! Pure: no I/O, no clock. The caller stores the task and stamps timestamps.

use crate::error::{ErrorCode, RpcError};
use crate::v1::{
    Message, Part, PartContent, StreamResponse, Task, TaskState, TaskStatus, TaskStatusUpdateEvent,
};

/// Applies one event to a task: what keeps a running task's current state, and what a blocking
/// send answers once the events are folded. A task event replaces the task; a status update
/// sets the status, and its message (if any) joins the history; an artifact update adds the
/// artifact, replaces the one with its id, or — with `append` — adds its parts to it; a
/// message joins the history.
pub fn apply(task: &mut Task, event: &StreamResponse) {
    match event {
        StreamResponse::Task(snapshot) => *task = snapshot.clone(),
        StreamResponse::Message(message) => remember(task, message),
        StreamResponse::StatusUpdate(update) => {
            if let Some(message) = &update.status.message {
                remember(task, message);
            }
            task.status = update.status.clone();
        }
        StreamResponse::ArtifactUpdate(update) => {
            let artifact = &update.artifact;
            let existing = task
                .artifacts
                .iter_mut()
                .find(|known| known.artifact_id == artifact.artifact_id);
            match existing {
                Some(known) if update.append => append_parts(&mut known.parts, &artifact.parts),
                Some(known) => *known = artifact.clone(),
                None => task.artifacts.push(artifact.clone()),
            }
        }
    }
}

/// Whether a task in this state may still be canceled: any state but a terminal one.
pub fn is_cancelable(state: TaskState) -> bool {
    !state.is_terminal()
}

/// The task canceled (its status CANCELED, the rest unchanged), or `-32002` not cancelable for
/// a terminal task. Announce it to the task's streams with [`status_update`] of the canceled
/// task.
pub fn cancel(task: &Task) -> Result<Task, RpcError> {
    if !is_cancelable(task.status.state) {
        return Err(ErrorCode::TaskNotCancelable.error());
    }
    let mut canceled = task.clone();
    canceled.status = TaskStatus {
        state: TaskState::Canceled,
        ..TaskStatus::default()
    };
    Ok(canceled)
}

/// The event announcing a task's current status.
pub fn status_update(task: &Task) -> StreamResponse {
    StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
        task_id: task.id.clone(),
        context_id: task.context_id.clone(),
        status: task.status.clone(),
        metadata: None,
    })
}

/// Adds a message to the history unless it is there already (a status message repeated).
fn remember(task: &mut Task, message: &Message) {
    let known = task
        .history
        .iter()
        .any(|seen| !seen.message_id.is_empty() && seen.message_id == message.message_id);
    if !known {
        task.history.push(message.clone());
    }
}

/// Appends streamed chunks to an artifact's parts: a text chunk continues the text part before
/// it (same media type, no metadata or file name on either), so a task read once it is done
/// holds the whole text in one part, not one part per chunk.
fn append_parts(parts: &mut Vec<Part>, chunks: &[Part]) {
    for chunk in chunks {
        let plain = |part: &Part| part.metadata.is_none() && part.filename.is_empty();
        if let (Some(last), PartContent::Text(more)) = (parts.last_mut(), &chunk.content)
            && plain(last)
            && plain(chunk)
            && last.media_type == chunk.media_type
            && let PartContent::Text(text) = &mut last.content
        {
            text.push_str(more);
            continue;
        }
        parts.push(chunk.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{Artifact, Role, TaskArtifactUpdateEvent};

    fn message(id: &str, role: Role, text: &str) -> Message {
        Message {
            message_id: id.to_owned(),
            task_id: "task-1".to_owned(),
            context_id: "ctx-1".to_owned(),
            role,
            parts: vec![Part::text(text)],
            ..Message::default()
        }
    }

    /// A task waiting for the client, with a user's message, the agent's question and one
    /// text artifact.
    fn input_required_task() -> Task {
        let question = message("agent-msg-1", Role::Agent, "Input required");
        Task {
            id: "task-1".to_owned(),
            context_id: "ctx-1".to_owned(),
            history: vec![message("user-msg-1", Role::User, "hi"), question.clone()],
            status: TaskStatus {
                state: TaskState::InputRequired,
                message: Some(Box::new(question)),
                timestamp: None,
            },
            artifacts: vec![Artifact {
                artifact_id: "artifact-1".to_owned(),
                parts: vec![Part::text("Generated text content")],
                ..Artifact::default()
            }],
            ..Task::default()
        }
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

    #[test]
    fn apply_replaces_an_artifact_sent_again_without_append() {
        let mut task = input_required_task();
        let replacement = TaskArtifactUpdateEvent {
            task_id: task.id.clone(),
            context_id: task.context_id.clone(),
            artifact: Artifact {
                artifact_id: "artifact-1".to_owned(),
                parts: vec![Part::text("new")],
                ..Artifact::default()
            },
            ..TaskArtifactUpdateEvent::default()
        };
        apply(
            &mut task,
            &StreamResponse::ArtifactUpdate(replacement.clone()),
        );
        assert_eq!(texts(&task.artifacts[0].parts), vec!["new"]);
        let appended = TaskArtifactUpdateEvent {
            append: true,
            ..replacement
        };
        apply(&mut task, &StreamResponse::ArtifactUpdate(appended.clone()));
        assert_eq!(texts(&task.artifacts[0].parts), vec!["newnew"]);
        assert_eq!(task.artifacts.len(), 1);
        // A part that is not plain text (here: with a file name) is not merged into the text.
        let mut named = appended;
        named.artifact.parts[0].filename = "notes.txt".to_owned();
        apply(&mut task, &StreamResponse::ArtifactUpdate(named));
        assert_eq!(texts(&task.artifacts[0].parts), vec!["newnew", "new"]);
        // An artifact with another id is added beside it.
        let other = TaskArtifactUpdateEvent {
            artifact: Artifact {
                artifact_id: "artifact-2".to_owned(),
                parts: vec![Part::text("more")],
                ..Artifact::default()
            },
            ..TaskArtifactUpdateEvent::default()
        };
        apply(&mut task, &StreamResponse::ArtifactUpdate(other));
        assert_eq!(task.artifacts.len(), 2);
    }

    #[test]
    fn apply_keeps_each_message_once_and_takes_the_latest_status() {
        let mut task = Task::default();
        apply(&mut task, &StreamResponse::Task(input_required_task()));
        assert_eq!(task, input_required_task());
        let answer = message("user-msg-2", Role::User, "yes");
        apply(&mut task, &StreamResponse::Message(answer.clone()));
        let done = message("agent-msg-2", Role::Agent, "Hello from TCK");
        let completed = TaskStatus {
            state: TaskState::Completed,
            message: Some(Box::new(done.clone())),
            timestamp: None,
        };
        let update = StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
            task_id: task.id.clone(),
            context_id: task.context_id.clone(),
            status: completed.clone(),
            metadata: None,
        });
        // The same status sent twice (a replayed event) adds its message once.
        apply(&mut task, &update);
        apply(&mut task, &update);
        assert_eq!(task.status, completed);
        let ids: Vec<&str> = task
            .history
            .iter()
            .map(|message| message.message_id.as_str())
            .collect();
        assert_eq!(
            ids,
            vec!["user-msg-1", "agent-msg-1", "user-msg-2", "agent-msg-2"]
        );
    }

    #[test]
    fn only_tasks_that_are_not_terminal_can_be_canceled() {
        let all = [
            TaskState::Submitted,
            TaskState::Working,
            TaskState::InputRequired,
            TaskState::AuthRequired,
            TaskState::Unspecified,
            TaskState::Completed,
            TaskState::Failed,
            TaskState::Canceled,
            TaskState::Rejected,
        ];
        for state in all {
            let mut task = input_required_task();
            task.status.state = state;
            assert_eq!(is_cancelable(state), !state.is_terminal(), "{state:?}");
            match cancel(&task) {
                Ok(canceled) => {
                    assert!(is_cancelable(state), "{state:?}");
                    assert_eq!(canceled.status.state, TaskState::Canceled);
                    assert_eq!(
                        (canceled.history, canceled.artifacts),
                        (task.history, task.artifacts)
                    );
                }
                Err(refusal) => {
                    assert!(!is_cancelable(state), "{state:?}");
                    assert_eq!(refusal.code, -32002);
                    assert_eq!(refusal.kind(), Some(ErrorCode::TaskNotCancelable));
                }
            }
        }
        let Ok(canceled) = cancel(&input_required_task()) else {
            panic!("an input-required task is cancelable");
        };
        let StreamResponse::StatusUpdate(event) = status_update(&canceled) else {
            panic!("not a status update");
        };
        assert_eq!(
            (event.task_id.as_str(), event.context_id.as_str()),
            ("task-1", "ctx-1")
        );
        assert_eq!(event.status.state, TaskState::Canceled);
    }
}
