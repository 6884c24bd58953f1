//! `remote` agents: an upstream A2A agent called through the egress guard, in the protocol
//! version its settings name. Hive keeps its own record of each task — its own task id, the
//! caller's context id, the upstream ids — so that tasks stay their callers', and so that one
//! caller's context never becomes another's upstream: the context id sent upstream is derived
//! from the caller, the agent and the caller's context id.

use super::book::{Entry, StoredTask, TaskBook, Upstream, ends_stream, shaped};
use super::upstream::{EgressTransport, UpstreamBody, UpstreamTransport};
use super::{Ctx, GatewayError, Refused, Reply, StreamItem, failed, unary};
use crate::agents::RemoteSettings;
use crate::agents::lifecycle::bearer_credential;
use crate::kernel::egress::Purpose;
use hive_a2a::client::TransportError;
use hive_a2a::client::{Client, ClientError, EventStream};
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::jsonrpc::{Call, Limits, Outcome, Version};
use hive_a2a::state_machine;
use hive_a2a::v1::{self, SendMessageRequest};
use hive_a2a::v1::{Message, StreamResponse, Task};
use hive_egress::CallLimits;
use hive_proto::agents::AgentKind;
use hive_store::AgentRow;
use http::HeaderValue;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use uuid::Uuid;
use zeroize::Zeroizing;

/// Events a stream buffers for its reader.
const STREAM_BUFFER: usize = 64;

/// The largest answer (or stream event) of an upstream agent.
pub(crate) const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// The context id Hive sends upstream for a caller's context: the same caller, agent and
/// context always give the same id, and no two callers share one.
pub(crate) fn upstream_context(owner: &str, agent_id: Uuid, context_id: &str) -> String {
    let digest = hive_crypto::sha256_hex(format!("{owner}\0{agent_id}\0{context_id}").as_bytes());
    format!("hive-{}", &digest[..32])
}

/// The ids the caller knows a task by.
#[derive(Debug, Clone)]
pub(crate) struct CallerIds {
    pub task_id: String,
    pub context_id: String,
}

fn message_to_caller(message: &mut Message, ids: &CallerIds) {
    if !message.task_id.is_empty() {
        message.task_id.clone_from(&ids.task_id);
    }
    message.context_id.clone_from(&ids.context_id);
    // Upstream task ids mean nothing to the caller.
    message.reference_task_ids.clear();
}

/// An upstream task with the caller's ids.
pub(crate) fn task_to_caller(mut task: Task, ids: &CallerIds) -> Task {
    task.id.clone_from(&ids.task_id);
    task.context_id.clone_from(&ids.context_id);
    for message in &mut task.history {
        message_to_caller(message, ids);
    }
    if let Some(message) = &mut task.status.message {
        message_to_caller(message, ids);
    }
    task
}

/// An upstream stream event with the caller's ids.
pub(crate) fn event_to_caller(event: StreamResponse, ids: &CallerIds) -> StreamResponse {
    match event {
        StreamResponse::Task(task) => StreamResponse::Task(task_to_caller(task, ids)),
        StreamResponse::Message(mut message) => {
            message_to_caller(&mut message, ids);
            StreamResponse::Message(message)
        }
        StreamResponse::StatusUpdate(mut update) => {
            update.task_id.clone_from(&ids.task_id);
            update.context_id.clone_from(&ids.context_id);
            if let Some(message) = &mut update.status.message {
                message_to_caller(message, ids);
            }
            StreamResponse::StatusUpdate(update)
        }
        StreamResponse::ArtifactUpdate(mut update) => {
            update.task_id.clone_from(&ids.task_id);
            update.context_id.clone_from(&ids.context_id);
            StreamResponse::ArtifactUpdate(update)
        }
    }
}

/// The upstream task id an event names, if any.
pub(crate) fn upstream_task_of(event: &StreamResponse) -> Option<(&str, &str)> {
    match event {
        StreamResponse::Task(task) => Some((&task.id, &task.context_id)),
        StreamResponse::StatusUpdate(update) => Some((&update.task_id, &update.context_id)),
        StreamResponse::ArtifactUpdate(update) => Some((&update.task_id, &update.context_id)),
        StreamResponse::Message(_) => None,
    }
}

impl super::Gateway {
    /// A client of the agent's upstream endpoint, with its credential, for this caller; every
    /// answer it gives back has the credential scrubbed out (see [`RemoteAgent`]).
    async fn remote_client(
        &self,
        ctx: &Ctx<'_>,
        agent: &AgentRow,
    ) -> Result<RemoteAgent, RpcError> {
        if agent.kind == AgentKind::Hosted {
            return self.hosted_client(agent).await;
        }
        let settings: RemoteSettings =
            serde_json::from_str(&agent.runtime).map_err(|_| super::internal())?;
        let authorization = bearer_credential(
            &self.secrets,
            agent,
            settings.credential_secret_id,
            "a2a_remote",
        )
        .await
        .map_err(|why| ErrorCode::InternalError.with_message(format!("the agent's {why}")))?;
        // A credential that could not be cut out of the answers is not sent at all.
        let scrub = Scrubber::of_authorization(authorization.as_ref()).ok_or_else(|| {
            ErrorCode::InternalError
                .with_message("the agent's credential is not text Hive can keep out of answers")
        })?;
        let version = if settings.protocol_version == "1.0" {
            Version::V1_0
        } else {
            Version::V0_3
        };
        let timeout = Duration::from_secs(u64::from(agent.limits.timeout_seconds.max(1)));
        let transport = UpstreamTransport::Egress(EgressTransport {
            egress: Arc::clone(&self.egress),
            authorization,
            limits: CallLimits::new(timeout, MAX_RESPONSE_BYTES),
            purpose: Purpose {
                principal: ctx.caller.principal(),
                feature: "a2a_remote",
                meta: ctx.meta.clone(),
            },
        });
        let client = Client::new(transport, settings.url, version).with_limits(Limits {
            max_body_bytes: usize::try_from(MAX_RESPONSE_BYTES).unwrap_or(usize::MAX),
            ..Limits::default()
        });
        Ok(RemoteAgent { client, scrub })
    }

    async fn agent_of(&self, entry: &Entry) -> Result<AgentRow, Refused> {
        self.agents
            .get(entry.agent_id)
            .await
            .map_err(super::store_error)?
            .ok_or_else(|| ErrorCode::TaskNotFound.error().into())
    }

    pub(super) async fn send_remote(
        &self,
        ctx: &Ctx<'_>,
        agent: &AgentRow,
        send: SendMessageRequest,
        existing: Option<Entry>,
        streaming: bool,
    ) -> Result<Reply, GatewayError> {
        let client = match self.remote_client(ctx, agent).await {
            Ok(client) => client,
            Err(error) => return failed(error),
        };
        let history_length = send
            .configuration
            .as_ref()
            .and_then(|configuration| configuration.history_length);
        let mut outgoing = send;
        let (id, caller_context) = match &existing {
            Some(entry) => {
                if entry.stored.running {
                    return failed(super::still_working());
                }
                let Some(upstream) = &entry.stored.upstream else {
                    return failed(super::internal());
                };
                outgoing.message.task_id.clone_from(&upstream.task_id);
                outgoing.message.context_id.clone_from(&upstream.context_id);
                (entry.id, entry.stored.task.context_id.clone())
            }
            None => {
                let context = if outgoing.message.context_id.is_empty() {
                    Uuid::new_v4().to_string()
                } else {
                    outgoing.message.context_id.clone()
                };
                outgoing.message.context_id = upstream_context(&ctx.owner, agent.id, &context);
                (Uuid::new_v4(), context)
            }
        };
        // References to the caller's own tasks of this agent become upstream ids; others go.
        let mut references = Vec::new();
        for reference in std::mem::take(&mut outgoing.message.reference_task_ids) {
            if let Ok(Some(entry)) = self.book.load(&ctx.owner, &reference).await
                && entry.agent_id == agent.id
                && let Some(upstream) = entry.stored.upstream
            {
                references.push(upstream.task_id);
            }
        }
        outgoing.message.reference_task_ids = references;
        // The skill named Hive's agent; upstream it would name one of the upstream's.
        for metadata in [&mut outgoing.message.metadata, &mut outgoing.metadata]
            .into_iter()
            .flatten()
        {
            metadata.remove(super::SKILL_METADATA_KEY);
        }
        let push_on_create = match self.attach_push(&ctx.owner, id, &outgoing).await {
            Ok(attached) => attached,
            Err(error) => return failed(error),
        };
        // Push notifications are Hive's to send, not the upstream agent's.
        if let Some(configuration) = &mut outgoing.configuration {
            configuration.task_push_notification_config = None;
        }
        let ids = CallerIds {
            task_id: id.to_string(),
            context_id: caller_context,
        };
        let permit = self.slot(agent)?;
        let new_entry = |existing: Option<Entry>| {
            existing.unwrap_or_else(|| Entry {
                id,
                owner: ctx.owner.clone(),
                agent_id: agent.id,
                push_on_create,
                stored: StoredTask {
                    task: Task {
                        id: ids.task_id.clone(),
                        context_id: ids.context_id.clone(),
                        ..Task::default()
                    },
                    seq: 0,
                    running: false,
                    upstream: None,
                },
            })
        };
        if streaming {
            let upstream = match client.stream(&Call::SendStreamingMessage(outgoing)).await {
                Ok(upstream) => upstream,
                Err(error) => return failed(error),
            };
            let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
            let pump = Pump {
                book: Arc::clone(&self.book),
                entry: new_entry(existing),
                known: false,
                ids,
            };
            tokio::spawn(pump.run(upstream, sender, permit));
            return Ok(Reply::Stream(receiver.into()));
        }
        let sent = client.call(&Call::SendMessage(outgoing)).await;
        drop(permit);
        let result = match sent {
            Ok(Outcome::SendMessage(v1::SendMessageResponse::Message(mut message))) => {
                message_to_caller(&mut message, &ids);
                if existing.is_none() {
                    message.task_id.clear();
                }
                Ok(Outcome::SendMessage(v1::SendMessageResponse::Message(
                    message,
                )))
            }
            Ok(Outcome::SendMessage(v1::SendMessageResponse::Task(task))) => {
                let mut entry = new_entry(existing);
                entry.stored.upstream = Some(Upstream {
                    task_id: task.id.clone(),
                    context_id: task.context_id.clone(),
                });
                let event = StreamResponse::Task(task_to_caller(task, &ids));
                match self.book.advance(&mut entry, event).await {
                    Ok(_) => shaped(entry.stored.task, history_length, true)
                        .map(|task| Outcome::SendMessage(v1::SendMessageResponse::Task(task)))
                        .map_err(Refused::Rpc),
                    Err(refused) => Err(refused),
                }
            }
            Ok(_) => Err(ErrorCode::InvalidAgentResponse.error().into()),
            Err(error) => Err(error.into()),
        };
        unary(result)
    }

    /// The task as the upstream agent has it now (stored for the next reader); the stored copy
    /// when the agent cannot say.
    pub(super) async fn refresh_remote(
        &self,
        ctx: &Ctx<'_>,
        mut entry: Entry,
        history_length: Option<i32>,
    ) -> Result<Task, Refused> {
        let Some(upstream) = entry.stored.upstream.clone() else {
            return Ok(entry.stored.task);
        };
        let agent = self.agent_of(&entry).await?;
        let client = match self.remote_client(ctx, &agent).await {
            Ok(client) => client,
            Err(_) => return Ok(entry.stored.task),
        };
        let request = v1::GetTaskRequest {
            id: upstream.task_id,
            history_length,
            ..v1::GetTaskRequest::default()
        };
        match client.call(&Call::GetTask(request)).await {
            Ok(Outcome::Task(task)) => {
                let ids = ids_of(&entry);
                let fresh = task_to_caller(task, &ids);
                if fresh != entry.stored.task {
                    entry.stored.task = fresh.clone();
                    self.book.save(&entry).await?;
                }
                Ok(fresh)
            }
            // The upstream's words are not logged: they may carry anything.
            Ok(_) => {
                tracing::warn!(task_id = %entry.id, "a2a: upstream task not read (not a task)");
                Ok(entry.stored.task)
            }
            Err(error) => {
                tracing::warn!(task_id = %entry.id, code = error.code, "a2a: upstream task not read");
                Ok(entry.stored.task)
            }
        }
    }

    pub(super) async fn cancel_remote(
        &self,
        ctx: &Ctx<'_>,
        mut entry: Entry,
    ) -> Result<Task, Refused> {
        let Some(upstream) = entry.stored.upstream.clone() else {
            return Err(super::internal().into());
        };
        let agent = self.agent_of(&entry).await?;
        let client = self.remote_client(ctx, &agent).await?;
        let request = v1::CancelTaskRequest {
            id: upstream.task_id,
            ..v1::CancelTaskRequest::default()
        };
        let Outcome::Task(task) = client.call(&Call::CancelTask(request)).await? else {
            return Err(ErrorCode::InvalidAgentResponse.error().into());
        };
        let task = task_to_caller(task, &ids_of(&entry));
        let update = state_machine::status_update(&task);
        entry.stored.task = task;
        self.book.advance(&mut entry, update).await?;
        Ok(entry.stored.task)
    }

    pub(super) async fn subscribe_remote(
        &self,
        ctx: &Ctx<'_>,
        entry: Entry,
    ) -> Result<mpsc::Receiver<StreamItem>, Refused> {
        let Some(upstream) = entry.stored.upstream.clone() else {
            return Err(super::internal().into());
        };
        if entry.stored.task.status.state.is_terminal() {
            return Err(ErrorCode::UnsupportedOperation
                .with_message("the task is in a terminal state; there is nothing to subscribe to")
                .into());
        }
        let agent = self.agent_of(&entry).await?;
        // A place among the agent's concurrent tasks before anything is asked upstream.
        let permit = self.slot(&agent)?;
        let client = self.remote_client(ctx, &agent).await?;
        let call = Call::SubscribeToTask(v1::SubscribeToTaskRequest {
            id: upstream.task_id,
            ..v1::SubscribeToTaskRequest::default()
        });
        let stream = client.stream(&call).await?;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let pump = Pump {
            book: Arc::clone(&self.book),
            ids: ids_of(&entry),
            entry,
            known: true,
        };
        tokio::spawn(pump.run(stream, sender, permit));
        Ok(receiver)
    }
}

fn ids_of(entry: &Entry) -> CallerIds {
    CallerIds {
        task_id: entry.id.to_string(),
        context_id: entry.stored.task.context_id.clone(),
    }
}

/// An upstream failure as the caller sees it, in Hive's words: an A2A or JSON-RPC error of the
/// agent keeps its code but not its message or data (an agent may put anything there — even
/// the credential it was sent); other failures get a summary that names no internal detail.
fn upstream_error(error: ClientError) -> RpcError {
    match error {
        ClientError::Rpc(error) => match ErrorCode::from_code(error.code) {
            Some(code) => {
                code.with_message(format!("the agent answered: {}", code.default_message()))
            }
            None => RpcError {
                code: error.code,
                message: "the agent answered an error".to_owned(),
                data: None,
            },
        },
        ClientError::Transport(TransportError(kind)) => ErrorCode::InternalError
            .with_message(format!("the agent could not be reached ({kind})")),
        ClientError::Status(status) => {
            ErrorCode::InternalError.with_message(format!("the agent answered HTTP {status}"))
        }
        ClientError::InvalidResponse(_) => ErrorCode::InvalidAgentResponse.error(),
    }
}

/// What replaces a secret value in anything an upstream agent sent.
const REDACTED: &str = "[redacted]";

/// The secret values an upstream call carried (the credential sent as `Authorization`),
/// to be cut out of whatever the agent answers before Hive returns, streams, stores, logs or
/// pushes any of it: an agent that echoes its request must not hand the owner's credential to
/// the agent's callers.
#[derive(Clone, Default)]
pub(crate) struct Scrubber {
    secrets: Arc<Vec<Zeroizing<String>>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

impl Scrubber {
    /// The secrets of an `Authorization` header: its whole value and its credential (what
    /// follows the scheme), longest first so that the whole is replaced as one. Read from the
    /// header's bytes, which may be any UTF-8 (a secret is text, sent as is), and also as
    /// ISO-8859-1, the way many HTTP servers hand a header to the agent's code. `None` when a
    /// header is set but is not UTF-8: what the agent echoes of it could not be recognised.
    pub(crate) fn of_authorization(header: Option<&HeaderValue>) -> Option<Self> {
        let Some(header) = header else {
            return Some(Self::default());
        };
        let bytes = header.as_bytes();
        let utf8 = std::str::from_utf8(bytes).ok()?;
        let latin1: Zeroizing<String> =
            Zeroizing::new(bytes.iter().copied().map(char::from).collect());
        let mut secrets = Vec::new();
        for value in [utf8, latin1.as_str()] {
            secrets.push(Zeroizing::new(value.trim().to_owned()));
            if let Some((_, credential)) = value.split_once(' ') {
                secrets.push(Zeroizing::new(credential.trim().to_owned()));
            }
        }
        secrets.retain(|secret| !secret.is_empty());
        // Longest first; equal ones side by side, to be kept once.
        secrets.sort_by(|a, b| {
            b.len()
                .cmp(&a.len())
                .then_with(|| a.as_str().cmp(b.as_str()))
        });
        secrets.dedup();
        Some(Self {
            secrets: Arc::new(secrets),
        })
    }

    /// The given secret values (a hosted agent's), longest first.
    pub(crate) fn of_values(values: &[Zeroizing<String>]) -> Self {
        let mut secrets: Vec<Zeroizing<String>> = values
            .iter()
            .filter(|value| !value.trim().is_empty())
            .cloned()
            .collect();
        secrets.sort_by(|a, b| {
            b.len()
                .cmp(&a.len())
                .then_with(|| a.as_str().cmp(b.as_str()))
        });
        secrets.dedup();
        Self {
            secrets: Arc::new(secrets),
        }
    }

    fn text(&self, text: &mut String) {
        for secret in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                *text = text.replace(secret.as_str(), REDACTED);
            }
        }
    }

    /// Every string and every object key in `value`.
    fn value(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(text) => self.text(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.value(item)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (mut key, mut item) in entries {
                    self.text(&mut key);
                    self.value(&mut item);
                    map.insert(key, item);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// `answer` with every secret cut out of every string in it; an answer that cannot be
    /// scrubbed (it does not survive the round trip) is refused, not passed on.
    fn typed<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        answer: T,
    ) -> Result<T, RpcError> {
        if self.secrets.is_empty() {
            return Ok(answer);
        }
        let refused = |_| ErrorCode::InvalidAgentResponse.error();
        let mut value = serde_json::to_value(answer).map_err(refused)?;
        self.value(&mut value);
        serde_json::from_value(value).map_err(refused)
    }
}

/// An upstream agent as Hive calls it: the A2A client, and the scrubbing of its answers. Every
/// remote call goes through here, so nothing an agent says reaches a caller, the task store,
/// a push delivery or a log line unscrubbed, and its errors come back in Hive's words.
pub(crate) struct RemoteAgent {
    client: Client<UpstreamTransport>,
    scrub: Scrubber,
}

impl RemoteAgent {
    pub(super) fn new(client: Client<UpstreamTransport>, scrub: Scrubber) -> Self {
        Self { client, scrub }
    }

    async fn call(&self, call: &Call) -> Result<Outcome, RpcError> {
        let outcome = self.client.call(call).await.map_err(upstream_error)?;
        if self.scrub.secrets.is_empty() {
            return Ok(outcome);
        }
        // Scrubbed in the 1.0 model (what Hive keeps and serves), whatever the upstream spoke.
        let mut value = hive_a2a::jsonrpc::encode_outcome(&outcome, Version::V1_0)
            .map_err(|_| ErrorCode::InvalidAgentResponse.error())?;
        self.scrub.value(&mut value);
        hive_a2a::jsonrpc::decode_result(call.method(), Version::V1_0, value)
            .map_err(|_| ErrorCode::InvalidAgentResponse.error())
    }

    async fn stream(&self, call: &Call) -> Result<ScrubbedStream, RpcError> {
        let events = self.client.stream(call).await.map_err(upstream_error)?;
        Ok(ScrubbedStream {
            events,
            scrub: self.scrub.clone(),
        })
    }
}

/// An upstream event stream whose events are scrubbed and whose errors are Hive's.
pub(crate) struct ScrubbedStream {
    events: EventStream<UpstreamBody>,
    scrub: Scrubber,
}

impl ScrubbedStream {
    async fn next(&mut self) -> Option<Result<StreamResponse, RpcError>> {
        let item = self.events.next().await?;
        Some(
            item.map_err(upstream_error)
                .and_then(|event| self.scrub.typed(event)),
        )
    }
}

/// Carries an upstream stream to its caller: each event with the caller's ids, applied to
/// Hive's record of the task (stored and published for Hive's own subscribers). It reads the
/// upstream stream to its end even when the caller has gone, so the record stays true.
struct Pump {
    book: Arc<TaskBook>,
    entry: Entry,
    /// Whether the record exists already (a follow-up or a subscription).
    known: bool,
    ids: CallerIds,
}

impl Pump {
    async fn run(
        mut self,
        mut upstream: ScrubbedStream,
        sender: mpsc::Sender<StreamItem>,
        permit: OwnedSemaphorePermit,
    ) {
        while let Some(item) = upstream.next().await {
            let event = match item {
                Ok(event) => event,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    break;
                }
            };
            if !self.known {
                match upstream_task_of(&event) {
                    Some((task_id, context_id)) => {
                        self.entry.stored.upstream = Some(Upstream {
                            task_id: task_id.to_owned(),
                            context_id: context_id.to_owned(),
                        });
                        self.entry.stored.running = true;
                        self.known = true;
                    }
                    // A direct reply: no task to keep.
                    None => {
                        let mut event = event_to_caller(event, &self.ids);
                        if let StreamResponse::Message(message) = &mut event {
                            message.task_id.clear();
                        }
                        let _ = sender.send(Ok(event)).await;
                        break;
                    }
                }
            }
            self.entry.stored.running = true;
            let event = event_to_caller(event, &self.ids);
            let done = ends_stream(&event);
            let forwarded = self
                .book
                .advance(&mut self.entry, event)
                .await
                .map_err(Refused::into_stream_error);
            let failed = forwarded.is_err();
            // The caller may be gone; the record is kept up to date regardless.
            let _ = sender.send(forwarded).await;
            if done || failed {
                break;
            }
        }
        if self.known {
            self.entry.stored.running = false;
            if self.book.save(&self.entry).await.is_err() {
                tracing::error!(task_id = %self.entry.id, "a2a: the end of a remote task was not stored");
            }
        }
        drop(permit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_get_their_own_upstream_contexts() {
        let agent = Uuid::new_v4();
        let alice = upstream_context("user:a", agent, "ctx-1");
        assert_eq!(alice, upstream_context("user:a", agent, "ctx-1"));
        assert_ne!(alice, upstream_context("user:b", agent, "ctx-1"));
        assert_ne!(alice, upstream_context("user:a", Uuid::new_v4(), "ctx-1"));
        assert_ne!(alice, upstream_context("user:a", agent, "ctx-2"));
        assert!(!alice.contains("ctx-1"));
    }

    #[test]
    fn a_non_ascii_credential_is_scrubbed_as_sent_and_as_servers_decode_it() {
        let header = HeaderValue::from_bytes("Bearer sécret-clé".as_bytes()).unwrap();
        assert!(
            header.to_str().is_err(),
            "the case a text-only reading missed"
        );
        let scrub = Scrubber::of_authorization(Some(&header)).unwrap();
        let latin1: String = "sécret-clé".bytes().map(char::from).collect();
        let mut value = serde_json::json!({
            "text": "whole Bearer sécret-clé, alone sécret-clé",
            "decoded": format!("as ISO-8859-1: {latin1}"),
            "sécret-clé": "as a key",
        });
        scrub.value(&mut value);
        let text = value.to_string();
        assert!(!text.contains("sécret-clé"), "{text}");
        assert!(!text.contains(&latin1), "{text}");
        assert_eq!(
            value["text"], "whole [redacted], alone [redacted]",
            "the whole header is replaced as one"
        );
    }

    #[test]
    fn a_credential_that_cannot_be_scrubbed_is_refused() {
        let header = HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
        assert!(Scrubber::of_authorization(Some(&header)).is_none());
        let none = Scrubber::of_authorization(None).unwrap();
        assert!(none.secrets.is_empty());
    }

    #[test]
    fn upstream_ids_are_replaced_by_the_callers() {
        let ids = CallerIds {
            task_id: "hive-task".into(),
            context_id: "caller-ctx".into(),
        };
        let upstream = Task {
            id: "up-task".into(),
            context_id: "up-ctx".into(),
            history: vec![Message {
                message_id: "m".into(),
                task_id: "up-task".into(),
                context_id: "up-ctx".into(),
                reference_task_ids: vec!["up-other".into()],
                ..Message::default()
            }],
            ..Task::default()
        };
        let task = task_to_caller(upstream, &ids);
        assert_eq!(task.id, "hive-task");
        assert_eq!(task.context_id, "caller-ctx");
        assert_eq!(task.history[0].task_id, "hive-task");
        assert_eq!(task.history[0].context_id, "caller-ctx");
        assert!(task.history[0].reference_task_ids.is_empty());
        let text = serde_json::to_string(&task).unwrap();
        assert!(!text.contains("up-"), "{text}");
    }
}
