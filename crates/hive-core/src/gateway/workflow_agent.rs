//! `workflow` agents: a workflow published by its a2a trigger, run through the workflows
//! domain's port ([`WorkflowAgents`]). A message starts a run (its input: the message's data
//! part, else its text as `{"text": …}`), and the task follows it: WORKING with a status
//! message as each step starts, waits and ends, the run's output as one artifact
//! (`artifactId: "output"`), then COMPLETED with the output as the agent's message — or FAILED
//! with the run's error, or CANCELED.

use super::local::Steps;
use crate::kernel::ports::{RunProgress, WorkflowAgents, WorkflowCallRefusal};
use async_trait::async_trait;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::v1::{
    Artifact, Message, Metadata, Part, PartContent, Role, StreamResponse, Task,
    TaskArtifactUpdateEvent, TaskState, TaskStatus, TaskStatusUpdateEvent,
};
use hive_store::{RunStatus, StepStatus};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The artifact that carries the run's output.
pub(crate) const OUTPUT_ARTIFACT: &str = "output";
/// The task metadata key naming the run a task follows (and the workflow's).
pub(crate) const RUN_METADATA_KEY: &str = "workflowRunId";
pub(crate) const WORKFLOW_METADATA_KEY: &str = "workflowId";
/// The longest failure message a task ends with.
const MAX_FAILURE_CHARS: usize = 300;

/// The run's input from the caller's message: its first data part holding an object is the
/// input itself; else its text (text parts joined by new lines), as `{"text": …}`. A message
/// with neither is refused.
pub(crate) fn input_of(message: &Message) -> Result<Value, RpcError> {
    let data = message.parts.iter().find_map(|part| match &part.content {
        PartContent::Data(Value::Object(object)) => Some(Value::Object(object.clone())),
        _ => None,
    });
    if let Some(data) = data {
        return Ok(data);
    }
    let has_text = message
        .parts
        .iter()
        .any(|part| matches!(part.content, PartContent::Text(_)));
    if has_text {
        return Ok(json!({ "text": message.text() }));
    }
    Err(ErrorCode::InvalidParams.with_message(
        "a workflow agent takes a text part, or a data part holding an object, as the run's input",
    ))
}

/// The JSON-RPC error a refused start or follow answers.
pub(crate) fn refusal(refusal: WorkflowCallRefusal) -> super::Refused {
    match refusal {
        WorkflowCallRefusal::Invalid(message) => {
            ErrorCode::InvalidParams.with_message(message).into()
        }
        WorkflowCallRefusal::Refused(message) => ErrorCode::InternalError
            .with_message(format!("the workflow did not start: {message}"))
            .into(),
        WorkflowCallRefusal::Unavailable => {
            super::Refused::Gateway(super::GatewayError::Unavailable)
        }
    }
}

/// The task metadata that names the run (and its workflow).
pub(crate) fn run_metadata(workflow_id: Uuid, run_id: Uuid) -> Metadata {
    let mut map = Map::new();
    map.insert(WORKFLOW_METADATA_KEY.to_owned(), json!(workflow_id));
    map.insert(RUN_METADATA_KEY.to_owned(), json!(run_id));
    Metadata(map)
}

/// The workflow and run a task of a `workflow` agent follows, from its metadata.
pub(crate) fn run_of(task: &Task) -> Option<(Uuid, Uuid)> {
    let metadata = task.metadata.as_ref()?;
    let read = |key: &str| {
        metadata
            .get(key)
            .and_then(Value::as_str)
            .and_then(|text| Uuid::parse_str(text).ok())
    };
    Some((read(WORKFLOW_METADATA_KEY)?, read(RUN_METADATA_KEY)?))
}

enum Phase {
    Begin,
    Following(mpsc::Receiver<RunProgress>),
    Done,
}

pub(crate) struct WorkflowSteps {
    port: Arc<dyn WorkflowAgents>,
    run_id: Uuid,
    task_id: String,
    context_id: String,
    phase: Phase,
    /// The event that follows the one just answered (the completion after the output).
    next: Option<StreamResponse>,
}

impl WorkflowSteps {
    pub fn new(
        port: Arc<dyn WorkflowAgents>,
        run_id: Uuid,
        task_id: String,
        context_id: String,
    ) -> Self {
        Self {
            port,
            run_id,
            task_id,
            context_id,
            phase: Phase::Begin,
            next: None,
        }
    }

    fn message(&self, parts: Vec<Part>, metadata: Option<Metadata>) -> Message {
        Message {
            message_id: Uuid::new_v4().to_string(),
            context_id: self.context_id.clone(),
            task_id: self.task_id.clone(),
            role: Role::Agent,
            parts,
            metadata,
            ..Message::default()
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

    /// WORKING, saying what a step did; `None` for a step the run did not take.
    fn step(
        &self,
        key: &str,
        node: &str,
        status: StepStatus,
        attempt: i64,
        error: Option<&str>,
    ) -> Option<StreamResponse> {
        let said = match status {
            StepStatus::Running if attempt > 1 => format!("step '{key}' started (try {attempt})"),
            StepStatus::Running => format!("step '{key}' started"),
            StepStatus::Waiting => format!("step '{key}' is waiting"),
            StepStatus::Succeeded => format!("step '{key}' succeeded"),
            StepStatus::Failed => match error {
                Some(error) => format!("step '{key}' failed: {error}"),
                None => format!("step '{key}' failed"),
            },
            StepStatus::Cancelled => format!("step '{key}' was cancelled"),
            StepStatus::Skipped => return None,
        };
        let mut metadata = Map::new();
        metadata.insert(RUN_METADATA_KEY.to_owned(), json!(self.run_id));
        metadata.insert(
            "step".to_owned(),
            json!({ "key": key, "node": node, "status": status.as_str(), "attempt": attempt }),
        );
        let said = crate::agents::llm::cap_chars(said, MAX_FAILURE_CHARS);
        let message = self.message(vec![Part::text(said)], Some(Metadata(metadata)));
        Some(self.status(TaskState::Working, Some(message)))
    }

    /// The output as an artifact, and the completion with it as the agent's message: a string
    /// is a text part; an object a data part (and its JSON text in the message); anything else
    /// a data part `{"value": …}`.
    fn completed(&mut self, output: Option<Value>) -> StreamResponse {
        let output = output.unwrap_or(Value::Null);
        let (part, text) = match output {
            Value::String(text) => (Part::text(text.clone()), text),
            Value::Object(object) => {
                let text = Value::Object(object.clone()).to_string();
                (Part::data(Value::Object(object)), text)
            }
            other => {
                let text = other.to_string();
                (Part::data(json!({ "value": other })), text)
            }
        };
        let message = self.message(vec![Part::text(text)], None);
        self.next = Some(self.status(TaskState::Completed, Some(message)));
        StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
            task_id: self.task_id.clone(),
            context_id: self.context_id.clone(),
            artifact: Artifact {
                artifact_id: OUTPUT_ARTIFACT.to_owned(),
                name: "output".to_owned(),
                parts: vec![part],
                ..Artifact::default()
            },
            append: false,
            last_chunk: true,
            metadata: None,
        })
    }
}

fn failure(message: String) -> RpcError {
    ErrorCode::InternalError.with_message(crate::agents::llm::cap_chars(message, MAX_FAILURE_CHARS))
}

#[async_trait]
impl Steps for WorkflowSteps {
    async fn next(&mut self) -> Option<Result<StreamResponse, RpcError>> {
        if let Some(next) = self.next.take() {
            return Some(Ok(next));
        }
        loop {
            match &mut self.phase {
                Phase::Begin => match self.port.follow(self.run_id).await {
                    Ok(progress) => {
                        self.phase = Phase::Following(progress);
                        let mut metadata = Map::new();
                        metadata.insert(RUN_METADATA_KEY.to_owned(), json!(self.run_id));
                        let message = self.message(
                            vec![Part::text(format!("run {} started", self.run_id))],
                            Some(Metadata(metadata)),
                        );
                        return Some(Ok(self.status(TaskState::Working, Some(message))));
                    }
                    Err(error) => {
                        self.phase = Phase::Done;
                        return Some(Err(failure(format!("the run cannot be followed: {error}"))));
                    }
                },
                Phase::Following(progress) => match progress.recv().await {
                    Some(RunProgress::Step {
                        key,
                        node,
                        status,
                        attempt,
                        error,
                    }) => {
                        if let Some(event) =
                            self.step(&key, &node, status, attempt, error.as_deref())
                        {
                            return Some(Ok(event));
                        }
                    }
                    Some(RunProgress::Ended {
                        status,
                        output,
                        error,
                    }) => {
                        self.phase = Phase::Done;
                        return Some(match status {
                            RunStatus::Succeeded => Ok(self.completed(output)),
                            RunStatus::Cancelled => Ok(self.status(TaskState::Canceled, None)),
                            _ => Err(failure(format!(
                                "the workflow run failed: {}",
                                error.as_deref().unwrap_or("no reason given")
                            ))),
                        });
                    }
                    None => {
                        self.phase = Phase::Done;
                        return Some(Err(failure(format!(
                            "the run can no longer be followed; see /api/v1/workflow-runs/{}",
                            self.run_id
                        ))));
                    }
                },
                Phase::Done => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(parts: Vec<Part>) -> Message {
        Message {
            message_id: "m".into(),
            role: Role::User,
            parts,
            ..Message::default()
        }
    }

    #[test]
    fn the_input_is_the_data_object_else_the_text() {
        // Text parts joined by new lines, as every agent reads a message's text.
        let text = message(vec![Part::text("hello"), Part::text("there")]);
        assert_eq!(input_of(&text).unwrap(), json!({"text": "hello\nthere"}));
        let data = message(vec![
            Part::text("ignored"),
            Part::data(json!([1, 2])),
            Part::data(json!({"amount": 3})),
        ]);
        assert_eq!(input_of(&data).unwrap(), json!({"amount": 3}));
        let neither = message(vec![Part::data(json!([1]))]);
        assert_eq!(
            input_of(&neither).unwrap_err().code,
            ErrorCode::InvalidParams.code()
        );
    }

    #[test]
    fn a_task_names_its_run() {
        let (workflow, run) = (Uuid::now_v7(), Uuid::now_v7());
        let task = Task {
            metadata: Some(run_metadata(workflow, run)),
            ..Task::default()
        };
        assert_eq!(run_of(&task), Some((workflow, run)));
        assert_eq!(run_of(&Task::default()), None);
    }
}
