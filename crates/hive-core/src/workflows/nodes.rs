//! What each node type does, once the executor has journaled its start: render its templates
//! against the run so far, act as the run's principal (an agent call through the gateway, an
//! HTTP request through the egress guard, …) and answer an output, a branch, or a wait.
//!
//! Nothing here writes the journal; the executor does, before and after.

use super::code::CodeRunner;
use super::definition::{
    AgentNode, ApprovalNode, CodeNode, DelayNode, HttpNode, LlmNode, NodeKind, WorkflowNode,
};
use super::plan::{APPROVED, REJECTED};
use super::template::{Rendered, SecretValues, Template};
use crate::gateway::{Gateway, Reply, Target};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::egress::{Egress, Purpose};
use hive_a2a::jsonrpc::{Call, Id, Request, Version};
use hive_a2a::v1::{
    Message, Part, PartContent, Role as A2aRole, SendMessageRequest, StreamResponse, TaskState,
};
use hive_egress::{CallLimits, EgressRequest};
use hive_proto::agents::AgentKind;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Largest response body an http step reads.
pub const MAX_HTTP_BODY_BYTES: u64 = 1024 * 1024;
/// The timeout of a step whose node names none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// How a step ended.
#[derive(Debug)]
pub enum Outcome {
    Done {
        output: Value,
        branch: Option<String>,
    },
    /// The step waits: until `wake_at` (a delay) or for a signal (an approval's decision, a
    /// sub-workflow's end).
    Wait { wake_at: Option<OffsetDateTime> },
    /// A sub-workflow must be started; the step then waits for it.
    StartChild { workflow: String, input: Value },
}

impl Outcome {
    fn done(output: Value) -> Self {
        Self::Done {
            output,
            branch: None,
        }
    }
}

/// Why a step failed, and whether another attempt may do better.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub retryable: bool,
}

impl Failure {
    /// A failure another attempt would meet again (bad input, a refusal).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }

    /// A failure another attempt may not meet (a timeout, a 5xx, an agent's error).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }
}

/// What a node's step runs with.
pub struct StepInput<'a> {
    pub run_id: Uuid,
    pub workflow_id: Uuid,
    pub step_key: &'a str,
    pub kind: &'a NodeKind,
    /// `input`, `nodes`, `run` (and `item`, `index` in a map's item).
    pub scope: &'a Value,
    pub secrets: &'a SecretValues,
    pub caller: &'a Caller,
    pub meta: &'a RequestMeta,
    /// When the step first started (a delay counts from there, across attempts and crashes).
    pub first_started: OffsetDateTime,
    /// Outputs of the node's predecessors (a join's output).
    pub predecessors: &'a [(String, Value)],
    /// Where a step reports its progress while it works (an agent's status messages); the
    /// executor records the latest in the journal.
    pub progress: Option<&'a tokio::sync::mpsc::Sender<Value>>,
    /// The step's time limit (its node's `timeoutSeconds`, else [`DEFAULT_STEP_TIMEOUT`]).
    pub timeout: Duration,
}

/// The services node types act through.
pub struct NodeServices {
    pub gateway: Arc<Gateway>,
    pub egress: Arc<Egress>,
    /// Code steps, in this replica's sandbox.
    pub code: Arc<CodeRunner>,
}

fn render(template: &Template, input: &StepInput<'_>) -> Result<Rendered, Failure> {
    template
        .render(input.scope, input.secrets)
        .map_err(|error| Failure::permanent(error.to_string()))
}

fn render_plain(template: &Template, input: &StepInput<'_>) -> Result<Value, Failure> {
    render(template, input).map(|rendered| rendered.value)
}

/// What a step is given, as the journal keeps it: its templates rendered, each secret's value
/// replaced by its name. `None` for nodes that take nothing worth keeping.
pub fn journal_input(kind: &NodeKind, input: &StepInput<'_>) -> Result<Option<Value>, Failure> {
    let journal = |template: &Template| render(template, input).map(|rendered| rendered.journal);
    Ok(Some(match kind {
        NodeKind::Output(node) => journal(&node.value)?,
        NodeKind::Transform(node) => journal(&node.value)?,
        NodeKind::Agent(node) => json!({ "agent": node.agent, "message": journal(&node.message)? }),
        NodeKind::Llm(node) => json!({
            "agent": node.agent,
            "prompt": journal(&node.prompt)?,
            "system": node.system.as_ref().map(journal).transpose()?,
        }),
        NodeKind::Http(node) => {
            let mut headers = serde_json::Map::new();
            for (name, value) in &node.headers {
                headers.insert(name.clone(), journal(value)?);
            }
            json!({
                "method": node.method.as_str(),
                "url": journal(&node.url)?,
                "headers": headers,
                "body": node.body.as_ref().map(journal).transpose()?,
            })
        }
        NodeKind::Approval(node) => json!({
            "users": node.users,
            "role": node.role.map(|role| role.as_str()),
            "message": journal(&node.message)?,
        }),
        NodeKind::Workflow(node) => {
            json!({ "workflow": node.workflow, "input": journal(&node.input)? })
        }
        NodeKind::Code(node) => {
            let mut env = serde_json::Map::new();
            for (name, value) in &node.env {
                env.insert(name.clone(), journal(value)?);
            }
            json!({ "language": node.language.as_str(), "env": env })
        }
        NodeKind::Delay(node) => match &node.until {
            Some(until) => json!({ "until": journal(until)? }),
            None => json!({ "seconds": node.seconds }),
        },
        _ => return Ok(None),
    }))
}

impl NodeServices {
    /// Runs one node's step (a map's items are the executor's: it journals each).
    pub async fn run(&self, input: &StepInput<'_>) -> Result<Outcome, Failure> {
        match input.kind {
            NodeKind::Input(node) => {
                let run_input = input.scope.get("input").cloned().unwrap_or(Value::Null);
                node.check(&run_input).map_err(Failure::permanent)?;
                Ok(Outcome::done(run_input))
            }
            NodeKind::Output(node) => Ok(Outcome::done(render_plain(&node.value, input)?)),
            NodeKind::Transform(node) => Ok(Outcome::done(render_plain(&node.value, input)?)),
            NodeKind::Condition(node) => {
                let result = node
                    .expression
                    .evaluate_bool(input.scope)
                    .map_err(|error| Failure::permanent(error.to_string()))?;
                Ok(Outcome::Done {
                    output: json!({ "result": result }),
                    branch: Some(result.to_string()),
                })
            }
            NodeKind::Switch(node) => {
                let value = node
                    .expression
                    .evaluate_case(input.scope)
                    .map_err(|error| Failure::permanent(error.to_string()))?;
                let branch = if node.cases.contains(&value) {
                    value.clone()
                } else {
                    "default".to_owned()
                };
                Ok(Outcome::Done {
                    output: json!({ "value": value, "case": branch }),
                    branch: Some(branch),
                })
            }
            NodeKind::Parallel => Ok(Outcome::done(json!({}))),
            NodeKind::Join => {
                let outputs: serde_json::Map<String, Value> =
                    input.predecessors.iter().cloned().collect();
                Ok(Outcome::done(Value::Object(outputs)))
            }
            NodeKind::Delay(node) => delay(node, input),
            NodeKind::Approval(ApprovalNode { .. }) => Ok(Outcome::Wait { wake_at: None }),
            NodeKind::Workflow(WorkflowNode {
                workflow,
                input: template,
            }) => Ok(Outcome::StartChild {
                workflow: workflow.clone(),
                input: render_plain(template, input)?,
            }),
            NodeKind::Agent(node) => self.agent(node, input).await,
            NodeKind::Llm(node) => self.llm(node, input).await,
            NodeKind::Http(node) => self.http(node, input).await,
            NodeKind::Map(_) => Err(Failure::permanent(
                "a map's items are run by the executor, not as one step",
            )),
            NodeKind::Code(node) => self.code_step(node, input).await,
        }
    }

    /// A code step: its `env` rendered (secrets included: the executor cuts their values out
    /// of whatever the step answers), then its source run in the sandbox.
    async fn code_step(&self, node: &CodeNode, input: &StepInput<'_>) -> Result<Outcome, Failure> {
        let mut env = Vec::with_capacity(node.env.len());
        for (name, template) in &node.env {
            env.push((name.clone(), text_of_value(&render_plain(template, input)?)));
        }
        self.code.run(node, input, env, input.timeout).await
    }

    /// Finds the agent by id or name among those the run's principal may see.
    async fn agent_row(
        &self,
        reference: &str,
        caller: &Caller,
    ) -> Result<hive_store::AgentRow, Failure> {
        self.gateway
            .find_visible_agent(caller, reference)
            .await
            .map_err(|_| Failure::transient("the agents cannot be read now"))?
            .ok_or_else(|| Failure::permanent(format!("no agent {reference:?} the run may call")))
    }

    async fn agent(&self, node: &AgentNode, input: &StepInput<'_>) -> Result<Outcome, Failure> {
        let agent = self.agent_row(&node.agent, input.caller).await?;
        let message = render_plain(&node.message, input)?;
        let reply = self
            .call_agent(agent.id, message_of(message)?, input)
            .await?;
        Ok(Outcome::done(reply.output()))
    }

    async fn llm(&self, node: &LlmNode, input: &StepInput<'_>) -> Result<Outcome, Failure> {
        let agent = self.agent_row(&node.agent, input.caller).await?;
        if agent.kind != AgentKind::Llm {
            return Err(Failure::permanent(format!(
                "agent {:?} is not an llm agent",
                node.agent
            )));
        }
        let prompt = render_plain(&node.prompt, input)?;
        let mut text = text_of_value(&prompt);
        if let Some(system) = &node.system {
            let system = text_of_value(&render_plain(system, input)?);
            text = format!("{system}\n\n{text}");
        }
        let reply = self
            .call_agent(agent.id, vec![Part::text(text)], input)
            .await?;
        let mut output = reply.output();
        if let Some(usage) = reply.usage {
            output["usage"] = usage;
        }
        Ok(Outcome::done(output))
    }

    /// One A2A call as the run's principal, through the gateway (its admission, limits and
    /// audit), with a message id stable across the step's attempts so the agent can tell a
    /// repeat from a new request.
    async fn call_agent(
        &self,
        agent_id: Uuid,
        parts: Vec<Part>,
        input: &StepInput<'_>,
    ) -> Result<AgentReply, Failure> {
        self.gateway
            .admit(input.caller, input.meta)
            .await
            .map_err(|_| Failure::permanent("the run's principal may not call agents"))?;
        let message_id = format!("wf-{}-{}", input.run_id, input.step_key);
        let request = Request {
            id: Id::String(message_id.clone()),
            version: Version::V1_0,
            call: Call::SendStreamingMessage(SendMessageRequest {
                message: Message {
                    message_id,
                    role: A2aRole::User,
                    parts,
                    ..Message::default()
                },
                ..SendMessageRequest::default()
            }),
        };
        let reply = self
            .gateway
            .call(input.caller, Target::Agent(agent_id), request, input.meta)
            .await
            .map_err(|error| Failure::transient(error.to_string()))?;
        let mut absorbed = AgentReply::default();
        match reply {
            Reply::Unary(outcome) => match *outcome {
                Ok(hive_a2a::jsonrpc::Outcome::SendMessage(
                    hive_a2a::v1::SendMessageResponse::Task(task),
                )) => absorbed.absorb(StreamResponse::Task(task)),
                Ok(hive_a2a::jsonrpc::Outcome::SendMessage(
                    hive_a2a::v1::SendMessageResponse::Message(message),
                )) => absorbed.absorb(StreamResponse::Message(message)),
                Ok(hive_a2a::jsonrpc::Outcome::Event(event)) => absorbed.absorb(event),
                Ok(_) => return Err(Failure::transient("the agent answered out of turn")),
                Err(error) => return Err(agent_error(&error)),
            },
            Reply::Stream(mut events) => {
                while let Some(item) = events.recv().await {
                    match item {
                        Ok(event) => {
                            absorbed.absorb(event);
                            if let Some(progress) = input.progress {
                                // The latest is what counts: a report the writer has no room
                                // for is replaced by the next.
                                let _ = progress.try_send(absorbed.progress());
                            }
                        }
                        Err(error) => return Err(agent_error(&error)),
                    }
                }
            }
        }
        match absorbed.state {
            Some(TaskState::Failed | TaskState::Rejected | TaskState::Canceled) => {
                Err(Failure::transient(format!(
                    "the agent's task ended {}{}",
                    state_name(absorbed.state),
                    if absorbed.text.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", crate::agents::llm::cap_chars(absorbed.text, 300))
                    }
                )))
            }
            Some(TaskState::InputRequired | TaskState::AuthRequired) => {
                Err(Failure::permanent(format!(
                    "the agent asked for more ({}); a workflow step cannot answer it",
                    state_name(absorbed.state)
                )))
            }
            _ => Ok(absorbed),
        }
    }

    async fn http(&self, node: &HttpNode, input: &StepInput<'_>) -> Result<Outcome, Failure> {
        let url = render_plain(&node.url, input)?;
        let Some(url) = url.as_str() else {
            return Err(Failure::permanent("the url must render to text"));
        };
        let method = reqwest::Method::from_bytes(node.method.as_str().as_bytes())
            .map_err(|_| Failure::permanent("bad method"))?;
        let mut request = EgressRequest::new(method, url);
        for (name, template) in &node.headers {
            let value = text_of_value(&render_plain(template, input)?);
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Failure::permanent(format!("bad header name {name:?}")))?;
            let value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                Failure::permanent(format!("the value of header {name} is not valid"))
            })?;
            request = request.header(name, value);
        }
        // Stable across attempts: the receiver can tell a retry from a new request.
        let key = format!("wf-{}-{}", input.run_id, input.step_key);
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&key) {
            request = request.header(
                reqwest::header::HeaderName::from_static("idempotency-key"),
                value,
            );
        }
        if let Some(body) = &node.body {
            let body = render_plain(body, input)?;
            let (bytes, media) = match body {
                Value::String(text) => (text.into_bytes(), "text/plain; charset=utf-8"),
                other => (
                    serde_json::to_vec(&other).map_err(|error| {
                        Failure::permanent(format!("the body cannot be sent: {error}"))
                    })?,
                    "application/json",
                ),
            };
            request = request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    reqwest::header::HeaderValue::from_static(media),
                )
                .body(bytes);
        }
        let purpose = Purpose {
            principal: input.caller.principal(),
            feature: "workflow_http",
            meta: input.meta.clone(),
        };
        let limits = CallLimits::new(DEFAULT_STEP_TIMEOUT, MAX_HTTP_BODY_BYTES);
        let response = self
            .egress
            .send(request, &limits, &purpose)
            .await
            .map_err(|error| match error {
                hive_egress::EgressError::Refused(_) => Failure::permanent(error.to_string()),
                other => Failure::transient(other.to_string()),
            })?;
        let status = response.status().as_u16();
        let media = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response
            .bytes()
            .await
            .map_err(|error| Failure::transient(error.to_string()))?;
        let body = if media.contains("json") {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        } else {
            Value::String(String::from_utf8_lossy(&body).into_owned())
        };
        let expected = if node.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            node.expect_status.contains(&status)
        };
        if !expected {
            let message = format!("the server answered HTTP {status}");
            // A server's own trouble may pass; a refusal of the request will not.
            return Err(if status >= 500 || status == 429 || status == 408 {
                Failure::transient(message)
            } else {
                Failure::permanent(message)
            });
        }
        Ok(Outcome::done(json!({
            "status": status,
            "contentType": media,
            "body": body,
        })))
    }
}

fn delay(node: &DelayNode, input: &StepInput<'_>) -> Result<Outcome, Failure> {
    let wake_at = match (&node.until, node.seconds) {
        (Some(until), _) => {
            let value = render_plain(until, input)?;
            let text = value
                .as_str()
                .ok_or_else(|| Failure::permanent("`until` must render to an RFC 3339 time"))?;
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(
                |_| Failure::permanent(format!("`until` is not an RFC 3339 time: {text:?}")),
            )?
        }
        (None, Some(seconds)) => {
            let seconds =
                i64::try_from(seconds).map_err(|_| Failure::permanent("the delay is too long"))?;
            input.first_started + time::Duration::seconds(seconds)
        }
        (None, None) => return Err(Failure::permanent("a delay needs seconds or until")),
    };
    Ok(Outcome::Wait {
        wake_at: Some(wake_at),
    })
}

/// An approval's decision, as its step's output.
pub fn decision_output(approved: bool, by: &str, comment: Option<&str>) -> (Value, &'static str) {
    (
        json!({ "approved": approved, "by": by, "comment": comment }),
        if approved { APPROVED } else { REJECTED },
    )
}

/// A rendered message: text, or an object with `parts` (A2A parts) or `text`/`data`.
fn message_of(value: Value) -> Result<Vec<Part>, Failure> {
    match value {
        Value::String(text) => Ok(vec![Part::text(text)]),
        Value::Object(map) if map.contains_key("parts") => {
            serde_json::from_value::<Vec<Part>>(map.get("parts").cloned().unwrap_or_default())
                .map_err(|error| Failure::permanent(format!("the message's parts: {error}")))
        }
        other => Ok(vec![Part {
            content: PartContent::Data(other),
            metadata: None,
            filename: String::new(),
            media_type: "application/json".to_owned(),
        }]),
    }
}

fn text_of_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn agent_error(error: &hive_a2a::error::RpcError) -> Failure {
    Failure::transient(format!("the agent call failed: {}", error.message))
}

fn state_name(state: Option<TaskState>) -> String {
    state
        .and_then(|state| serde_json::to_value(state).ok())
        .and_then(|value| value.as_str().map(str::to_owned))
        .map(|name| {
            name.trim_start_matches("TASK_STATE_")
                .to_ascii_lowercase()
                .replace('_', "-")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// What an agent's events added up to.
#[derive(Debug, Default)]
struct AgentReply {
    task_id: Option<String>,
    state: Option<TaskState>,
    /// The agent's final text: its last status message's, else its artifacts' text.
    text: String,
    artifacts: String,
    data: Vec<Value>,
    usage: Option<Value>,
    /// The agent's last status messages, for the step's progress.
    notes: Vec<String>,
}

/// Status messages a step's progress keeps (the latest).
const MAX_PROGRESS_NOTES: usize = 20;
/// Characters of one status message a step's progress keeps.
const MAX_NOTE_CHARS: usize = 500;

impl AgentReply {
    fn absorb(&mut self, event: StreamResponse) {
        match event {
            StreamResponse::Task(task) => {
                self.task_id = Some(task.id);
                self.state = Some(task.status.state);
                if let Some(message) = task.status.message {
                    self.message(&message);
                }
                for artifact in task.artifacts {
                    self.parts(&artifact.parts);
                }
            }
            StreamResponse::Message(message) => {
                self.state = Some(TaskState::Completed);
                self.message(&message);
            }
            StreamResponse::StatusUpdate(update) => {
                self.task_id = Some(update.task_id);
                self.state = Some(update.status.state);
                if let Some(message) = update.status.message {
                    self.message(&message);
                }
                if let Some(usage) = update
                    .metadata
                    .as_ref()
                    .and_then(|metadata| metadata.0.get("usage"))
                {
                    self.usage = Some(usage.clone());
                }
            }
            StreamResponse::ArtifactUpdate(update) => {
                if !update.append {
                    self.artifacts.clear();
                }
                self.parts(&update.artifact.parts);
            }
        }
    }

    fn message(&mut self, message: &Message) {
        if message.role == A2aRole::User {
            return;
        }
        let text = message.text();
        if !text.is_empty() {
            if self.notes.len() == MAX_PROGRESS_NOTES {
                self.notes.remove(0);
            }
            self.notes
                .push(crate::agents::llm::cap_chars(text.clone(), MAX_NOTE_CHARS));
            self.text = text;
        }
        if let Some(usage) = message
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.0.get("usage"))
        {
            self.usage = Some(usage.clone());
        }
        self.data_parts(&message.parts);
    }

    fn parts(&mut self, parts: &[Part]) {
        for part in parts {
            if let PartContent::Text(text) = &part.content {
                self.artifacts.push_str(text);
            }
        }
        self.data_parts(parts);
    }

    fn data_parts(&mut self, parts: &[Part]) {
        for part in parts {
            if let PartContent::Data(data) = &part.content {
                self.data.push(data.clone());
            }
        }
    }

    /// What the step reports while the agent works: the task, its state, its last messages
    /// and how much text it has produced so far.
    fn progress(&self) -> Value {
        json!({
            "progress": {
                "taskId": self.task_id,
                "state": state_name(self.state),
                "messages": self.notes,
                "artifactChars": self.artifacts.chars().count(),
            }
        })
    }

    fn output(&self) -> Value {
        let text = if self.text.is_empty() {
            &self.artifacts
        } else {
            &self.text
        };
        let mut output = json!({
            "text": text,
            "taskId": self.task_id,
            "state": state_name(self.state),
        });
        if !self.data.is_empty() {
            output["data"] = Value::Array(self.data.clone());
        }
        output
    }
}
