//! Conversions between A2A 0.3 ([`crate::v03`]) and 1.0 ([`crate::v1`]), as `From` in both
//! directions.
//!
//! 0.3 → 1.0 → 0.3 gives back the same value for every object here, with these exceptions
//! (1.0 has no place for them; the conversion to 1.0 drops them):
//! - `final` of a status-update event: 1.0 ends a stream by closing it. Going back, `final` is
//!   true when the state is terminal or interrupted (input or auth required), which is what 0.3
//!   servers send;
//! - `metadata` of `tasks/get`, `tasks/resubscribe` and push-config params;
//! - push-notification authentication with several `schemes`: 1.0 has one `scheme`, the first;
//! - the card's `capabilities.stateTransitionHistory`, and OAuth flows beyond the first (1.0
//!   has exactly one flow; an OAuth scheme without any flow becomes an empty client-credentials
//!   flow);
//! - an empty `preferredTransport` becomes `JSONRPC`, the 0.3 default.
//!
//! 1.0 → 0.3 cannot express (and drops): `tenant` everywhere, `mediaType` and `filename` of a
//! text part, `ROLE_UNSPECIFIED` (becomes `user`), the device-code OAuth flow and
//! `pkceRequired`, `nextPageToken` of the push-config list, and the paging fields of
//! `ListTasks` (0.3 has no such method). A data part whose value is not a JSON object becomes
//! `{"value": <the value>}`, since 0.3 data parts are objects.
//!
//! Here: states, roles, parts, messages, tasks, artifacts and events; push configs and method
//! params in `requests`, the agent card in `card`.

mod card;
mod requests;

pub use requests::push_config_to_v1;

use crate::v1;
use crate::v03;
use serde_json::Value;

fn vec_into<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(B::from).collect()
}

// ----- states, roles, parts -----

impl From<v03::TaskState> for v1::TaskState {
    fn from(state: v03::TaskState) -> Self {
        match state {
            v03::TaskState::Submitted => Self::Submitted,
            v03::TaskState::Working => Self::Working,
            v03::TaskState::InputRequired => Self::InputRequired,
            v03::TaskState::Completed => Self::Completed,
            v03::TaskState::Canceled => Self::Canceled,
            v03::TaskState::Failed => Self::Failed,
            v03::TaskState::Rejected => Self::Rejected,
            v03::TaskState::AuthRequired => Self::AuthRequired,
            v03::TaskState::Unknown => Self::Unspecified,
        }
    }
}

impl From<v1::TaskState> for v03::TaskState {
    fn from(state: v1::TaskState) -> Self {
        match state {
            v1::TaskState::Submitted => Self::Submitted,
            v1::TaskState::Working => Self::Working,
            v1::TaskState::InputRequired => Self::InputRequired,
            v1::TaskState::Completed => Self::Completed,
            v1::TaskState::Canceled => Self::Canceled,
            v1::TaskState::Failed => Self::Failed,
            v1::TaskState::Rejected => Self::Rejected,
            v1::TaskState::AuthRequired => Self::AuthRequired,
            v1::TaskState::Unspecified => Self::Unknown,
        }
    }
}

impl From<v03::Role> for v1::Role {
    fn from(role: v03::Role) -> Self {
        match role {
            v03::Role::User => Self::User,
            v03::Role::Agent => Self::Agent,
        }
    }
}

impl From<v1::Role> for v03::Role {
    fn from(role: v1::Role) -> Self {
        match role {
            v1::Role::Agent => Self::Agent,
            v1::Role::User | v1::Role::Unspecified => Self::User,
        }
    }
}

impl From<v03::Part> for v1::Part {
    fn from(part: v03::Part) -> Self {
        match part {
            v03::Part::Text(text) => Self {
                metadata: text.metadata,
                ..Self::text(text.text)
            },
            v03::Part::File(file) => Self {
                content: match file.file.content {
                    v03::FileContent::Bytes(bytes) => v1::PartContent::Raw(bytes),
                    v03::FileContent::Uri(uri) => v1::PartContent::Url(uri),
                },
                metadata: file.metadata,
                filename: file.file.name,
                media_type: file.file.mime_type,
            },
            v03::Part::Data(data) => Self {
                metadata: data.metadata,
                ..Self::data(Value::Object(data.data.0))
            },
        }
    }
}

impl From<v1::Part> for v03::Part {
    fn from(part: v1::Part) -> Self {
        let file = |content| {
            Self::File(v03::FilePart {
                file: v03::File {
                    name: part.filename.clone(),
                    mime_type: part.media_type.clone(),
                    content,
                },
                metadata: part.metadata.clone(),
            })
        };
        match part.content {
            v1::PartContent::Text(ref text) => Self::Text(v03::TextPart {
                text: text.clone(),
                metadata: part.metadata.clone(),
            }),
            v1::PartContent::Raw(ref raw) => file(v03::FileContent::Bytes(raw.clone())),
            v1::PartContent::Url(ref url) => file(v03::FileContent::Uri(url.clone())),
            v1::PartContent::Data(ref data) => Self::Data(v03::DataPart {
                data: match data {
                    Value::Object(object) => object.clone().into(),
                    other => v1::Metadata::from_iter([("value".to_owned(), other.clone())]),
                },
                metadata: part.metadata.clone(),
            }),
        }
    }
}

// ----- messages, tasks, artifacts, events -----

impl From<v03::Message> for v1::Message {
    fn from(message: v03::Message) -> Self {
        Self {
            message_id: message.message_id,
            context_id: message.context_id,
            task_id: message.task_id,
            role: message.role.into(),
            parts: vec_into(message.parts),
            metadata: message.metadata,
            extensions: message.extensions,
            reference_task_ids: message.reference_task_ids,
        }
    }
}

impl From<v1::Message> for v03::Message {
    fn from(message: v1::Message) -> Self {
        Self {
            message_id: message.message_id,
            context_id: message.context_id,
            task_id: message.task_id,
            role: message.role.into(),
            parts: vec_into(message.parts),
            metadata: message.metadata,
            extensions: message.extensions,
            reference_task_ids: message.reference_task_ids,
            kind: v03::MessageKind,
        }
    }
}

impl From<v03::TaskStatus> for v1::TaskStatus {
    fn from(status: v03::TaskStatus) -> Self {
        Self {
            state: status.state.into(),
            message: status.message.map(|m| Box::new((*m).into())),
            timestamp: status.timestamp,
        }
    }
}

impl From<v1::TaskStatus> for v03::TaskStatus {
    fn from(status: v1::TaskStatus) -> Self {
        Self {
            state: status.state.into(),
            message: status.message.map(|m| Box::new((*m).into())),
            timestamp: status.timestamp,
        }
    }
}

impl From<v03::Artifact> for v1::Artifact {
    fn from(artifact: v03::Artifact) -> Self {
        Self {
            artifact_id: artifact.artifact_id,
            name: artifact.name,
            description: artifact.description,
            parts: vec_into(artifact.parts),
            metadata: artifact.metadata,
            extensions: artifact.extensions,
        }
    }
}

impl From<v1::Artifact> for v03::Artifact {
    fn from(artifact: v1::Artifact) -> Self {
        Self {
            artifact_id: artifact.artifact_id,
            name: artifact.name,
            description: artifact.description,
            parts: vec_into(artifact.parts),
            metadata: artifact.metadata,
            extensions: artifact.extensions,
        }
    }
}

impl From<v03::Task> for v1::Task {
    fn from(task: v03::Task) -> Self {
        Self {
            id: task.id,
            context_id: task.context_id,
            status: task.status.into(),
            artifacts: vec_into(task.artifacts),
            history: vec_into(task.history),
            metadata: task.metadata,
        }
    }
}

impl From<v1::Task> for v03::Task {
    fn from(task: v1::Task) -> Self {
        Self {
            id: task.id,
            context_id: task.context_id,
            status: task.status.into(),
            artifacts: vec_into(task.artifacts),
            history: vec_into(task.history),
            metadata: task.metadata,
            kind: v03::TaskKind,
        }
    }
}

impl From<v03::TaskStatusUpdateEvent> for v1::TaskStatusUpdateEvent {
    fn from(event: v03::TaskStatusUpdateEvent) -> Self {
        Self {
            task_id: event.task_id,
            context_id: event.context_id,
            status: event.status.into(),
            metadata: event.metadata,
        }
    }
}

impl From<v1::TaskStatusUpdateEvent> for v03::TaskStatusUpdateEvent {
    fn from(event: v1::TaskStatusUpdateEvent) -> Self {
        let state = event.status.state;
        Self {
            task_id: event.task_id,
            context_id: event.context_id,
            status: event.status.into(),
            is_final: state.is_terminal() || state.is_interrupted(),
            metadata: event.metadata,
            kind: v03::StatusUpdateKind,
        }
    }
}

impl From<v03::TaskArtifactUpdateEvent> for v1::TaskArtifactUpdateEvent {
    fn from(event: v03::TaskArtifactUpdateEvent) -> Self {
        Self {
            task_id: event.task_id,
            context_id: event.context_id,
            artifact: event.artifact.into(),
            append: event.append,
            last_chunk: event.last_chunk,
            metadata: event.metadata,
        }
    }
}

impl From<v1::TaskArtifactUpdateEvent> for v03::TaskArtifactUpdateEvent {
    fn from(event: v1::TaskArtifactUpdateEvent) -> Self {
        Self {
            task_id: event.task_id,
            context_id: event.context_id,
            artifact: event.artifact.into(),
            append: event.append,
            last_chunk: event.last_chunk,
            metadata: event.metadata,
            kind: v03::ArtifactUpdateKind,
        }
    }
}

impl From<v03::StreamEvent> for v1::StreamResponse {
    fn from(event: v03::StreamEvent) -> Self {
        match event {
            v03::StreamEvent::Task(task) => Self::Task(task.into()),
            v03::StreamEvent::Message(message) => Self::Message(message.into()),
            v03::StreamEvent::StatusUpdate(update) => Self::StatusUpdate(update.into()),
            v03::StreamEvent::ArtifactUpdate(update) => Self::ArtifactUpdate(update.into()),
        }
    }
}

impl From<v1::StreamResponse> for v03::StreamEvent {
    fn from(event: v1::StreamResponse) -> Self {
        match event {
            v1::StreamResponse::Task(task) => Self::Task(task.into()),
            v1::StreamResponse::Message(message) => Self::Message(message.into()),
            v1::StreamResponse::StatusUpdate(update) => Self::StatusUpdate(update.into()),
            v1::StreamResponse::ArtifactUpdate(update) => Self::ArtifactUpdate(update.into()),
        }
    }
}

impl From<v03::SendMessageResult> for v1::SendMessageResponse {
    fn from(result: v03::SendMessageResult) -> Self {
        match result {
            v03::SendMessageResult::Task(task) => Self::Task(task.into()),
            v03::SendMessageResult::Message(message) => Self::Message(message.into()),
        }
    }
}

impl From<v1::SendMessageResponse> for v03::SendMessageResult {
    fn from(response: v1::SendMessageResponse) -> Self {
        match response {
            v1::SendMessageResponse::Task(task) => Self::Task(task.into()),
            v1::SendMessageResponse::Message(message) => Self::Message(message.into()),
        }
    }
}
