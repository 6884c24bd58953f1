//! `SendMessage` and `SendStreamingMessage`: which agent a message is for, and starting its task
//! on the agent (the conformance agent's script, an LLM call, a workflow's run; remote agents
//! in `remote`).

use super::book::{Entry, StoredTask, shaped};
use super::tasks::MAX_PAGE_SIZE;
use super::{
    Ctx, Gateway, GatewayError, Refused, Reply, SKILL_METADATA_KEY, Target, failed, internal,
    llm_agent, local, push_error, sees, still_working, store_error, unary, workflow_agent,
};
use crate::agents::conformance;
use crate::kernel::caller::Caller;
use crate::kernel::ports::WorkflowCall;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::jsonrpc::Outcome;
use hive_a2a::v1::{self, Message, SendMessageRequest, StreamResponse, Task};
use hive_proto::agents::{AgentKind, AgentStatus};
use hive_store::{AgentRow, PageRequest};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// A task of a local agent about to run: its record, its first event, the rest to come.
struct LocalRun {
    entry: Entry,
    first: StreamResponse,
    steps: Box<dyn local::Steps>,
    /// The agent's place taken already (else [`Gateway::run_local`] takes one).
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Undoes what was started for the task when the task does not come to exist (a workflow
    /// agent's run is cancelled).
    abandon: Option<Box<dyn FnOnce() + Send>>,
}

/// The skill a message names: in its own metadata, else in the request's.
fn skill_of(send: &SendMessageRequest) -> Option<&str> {
    fn named(metadata: Option<&v1::Metadata>) -> Option<&str> {
        metadata
            .and_then(|m| m.get(SKILL_METADATA_KEY))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    }
    named(send.message.metadata.as_ref()).or_else(|| named(send.metadata.as_ref()))
}

fn direct_message(message: Message, streaming: bool) -> Reply {
    if streaming {
        let (sender, receiver) = mpsc::channel(1);
        let _ = sender.try_send(Ok(StreamResponse::Message(message)));
        Reply::Stream(receiver.into())
    } else {
        Reply::Unary(Box::new(Ok(Outcome::SendMessage(
            v1::SendMessageResponse::Message(message),
        ))))
    }
}

impl Gateway {
    /// The agent a new message is for: the endpoint's, the one its metadata's skill names, or
    /// the default; it must be one the caller may see, and ready.
    async fn agent_for(
        &self,
        caller: &Caller,
        target: Target,
        send: &SendMessageRequest,
    ) -> Result<AgentRow, Refused> {
        let unknown = || {
            ErrorCode::InvalidParams.with_message(
                "no such agent: name one of the agent card's skills in metadata.skill",
            )
        };
        let agent = match target {
            Target::Agent(id) => self.agents.get(id).await.map_err(store_error)?,
            Target::Instance => {
                let named = skill_of(send)
                    .map(str::to_owned)
                    .or_else(|| self.settings.default_agent.clone());
                let Some(name) = named else {
                    return Err(ErrorCode::InvalidParams
                        .with_message(
                            "no agent named: set metadata.skill to one of the agent card's skills",
                        )
                        .into());
                };
                self.agents.find(&name).await.map_err(store_error)?
            }
        };
        let agent = agent
            .filter(|agent| sees(Some(caller), agent))
            .ok_or_else(unknown)?;
        if agent.status != AgentStatus::Ready {
            return Err(ErrorCode::InternalError
                .with_message(format!("the agent is not ready ({})", agent.status))
                .into());
        }
        Ok(agent)
    }

    pub(super) async fn send(
        &self,
        ctx: &Ctx<'_>,
        target: Target,
        send: SendMessageRequest,
        streaming: bool,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<Reply, GatewayError> {
        let (caller, owner) = (ctx.caller, ctx.owner.as_str());
        if let Err(invalid) = send.message.validate() {
            return failed(ErrorCode::InvalidParams.with_message(invalid.to_string()));
        }
        // A message on an existing task goes to that task's agent.
        let existing = if send.message.task_id.is_empty() {
            None
        } else {
            match self
                .task_of(owner, target, &send.message.task_id, agent_seen)
                .await
            {
                Ok(entry) => Some(entry),
                Err(error) => return failed(error),
            }
        };
        let agent = match &existing {
            Some(entry) => match self.agents.get(entry.agent_id).await {
                Ok(Some(agent)) if agent.status == AgentStatus::Ready => agent,
                Ok(Some(agent)) => {
                    return failed(
                        ErrorCode::InternalError
                            .with_message(format!("the agent is not ready ({})", agent.status)),
                    );
                }
                Ok(None) => return failed(ErrorCode::TaskNotFound.error()),
                Err(error) => return failed(store_error(error)),
            },
            None => match self.agent_for(caller, target, &send).await {
                Ok(agent) => agent,
                Err(error) => return failed(error),
            },
        };
        *agent_seen = Some(agent.id);
        self.within_rate_limit(&agent).await?;
        match agent.kind {
            AgentKind::Conformance => {
                self.send_conformance(owner, &agent, send, existing, streaming)
                    .await
            }
            AgentKind::Remote | AgentKind::Hosted => {
                self.send_remote(ctx, &agent, send, existing, streaming)
                    .await
            }
            AgentKind::Llm => self.send_llm(ctx, &agent, send, existing, streaming).await,
            AgentKind::Workflow => {
                self.send_workflow(ctx, &agent, send, existing, streaming)
                    .await
            }
        }
    }

    async fn send_conformance(
        &self,
        owner: &str,
        agent: &AgentRow,
        send: SendMessageRequest,
        existing: Option<Entry>,
        streaming: bool,
    ) -> Result<Reply, GatewayError> {
        let agent_message_id = Uuid::new_v4().to_string();
        let (entry, script) = match existing {
            Some(entry) => {
                if entry.stored.running {
                    return failed(still_working());
                }
                match conformance::follow_up(&entry.stored.task, &send.message, &agent_message_id) {
                    Ok(script) => (entry, script),
                    Err(error) => return failed(error),
                }
            }
            None => {
                let task_id = Uuid::new_v4();
                // A context the client names is kept (a conversation's, a caller's own).
                let context_id = if send.message.context_id.is_empty() {
                    Uuid::new_v4().to_string()
                } else {
                    send.message.context_id.clone()
                };
                let ids = conformance::Ids {
                    task_id: task_id.to_string(),
                    context_id,
                    agent_message_id,
                };
                match conformance::react(&send.message, &ids) {
                    conformance::Reaction::Message(message) => {
                        return Ok(direct_message(message, streaming));
                    }
                    conformance::Reaction::Task(script) => (
                        Entry {
                            id: task_id,
                            owner: owner.to_owned(),
                            agent_id: agent.id,
                            push_on_create: false,
                            stored: StoredTask {
                                task: Task::default(),
                                seq: 0,
                                running: true,
                                upstream: None,
                            },
                        },
                        script,
                    ),
                }
            }
        };
        let mut steps = script.into_steps().into_iter();
        let Some(first) = steps.next() else {
            return failed(internal());
        };
        let run = LocalRun {
            entry,
            first: first.event,
            steps: Box::new(local::ScriptSteps::new(steps)),
            permit: None,
            abandon: None,
        };
        self.run_local(owner, agent, &send, run, streaming).await
    }

    async fn send_llm(
        &self,
        ctx: &Ctx<'_>,
        agent: &AgentRow,
        send: SendMessageRequest,
        existing: Option<Entry>,
        streaming: bool,
    ) -> Result<Reply, GatewayError> {
        let Ok(settings) = serde_json::from_str::<crate::agents::LlmSettings>(&agent.runtime)
        else {
            return failed(internal());
        };
        self.within_token_budget(agent).await?;
        let owner = ctx.owner.as_str();
        let (mut entry, earlier) = match existing {
            Some(entry) => {
                if entry.stored.running {
                    return failed(still_working());
                }
                if entry.stored.task.status.state.is_terminal() {
                    return failed(ErrorCode::UnsupportedOperation.with_message(
                        "The task is in a terminal state and accepts no more messages",
                    ));
                }
                (entry, Vec::new())
            }
            None => {
                let id = Uuid::new_v4();
                // A new context has no history to read.
                let (context_id, earlier) = if send.message.context_id.is_empty() {
                    (Uuid::new_v4().to_string(), Vec::new())
                } else {
                    let context_id = send.message.context_id.clone();
                    let earlier = self.context_history(owner, agent.id, &context_id).await;
                    (context_id, earlier)
                };
                let entry = Entry {
                    id,
                    owner: owner.to_owned(),
                    agent_id: agent.id,
                    push_on_create: false,
                    stored: StoredTask {
                        task: Task {
                            id: id.to_string(),
                            context_id,
                            ..Task::default()
                        },
                        seq: 0,
                        running: true,
                        upstream: None,
                    },
                };
                (entry, earlier)
            }
        };
        let mut first = entry.stored.task.clone();
        first.history.push(Message {
            task_id: first.id.clone(),
            context_id: first.context_id.clone(),
            ..send.message.clone()
        });
        first.status = v1::TaskStatus {
            state: v1::TaskState::Submitted,
            ..v1::TaskStatus::default()
        };
        entry.stored.running = true;
        let messages = llm_agent::conversation(earlier.iter().chain(first.history.iter()));
        // Held before any work: a call billing refuses starts nothing.
        let billable = crate::kernel::ports::Billable {
            payer: ctx.caller.user_id().unwrap_or(agent.owner_id),
            principal: ctx.owner.clone(),
            agent_id: agent.id,
            kind: hive_store::UsageKind::Llm,
            model: settings.model.clone(),
            prompt_tokens: crate::agents::llm::prompt_token_bound(
                // The system prompt is sent only when there is one.
                std::iter::once(settings.system_prompt.as_str())
                    .filter(|prompt| !prompt.is_empty())
                    .chain(messages.iter().map(|m| m.content.as_str())),
            ),
            max_completion_tokens: settings.max_tokens,
            quantity: 0,
            meta: ctx.meta.clone(),
        };
        let reservation = self
            .meter
            .reserve(billable)
            .await
            .map_err(GatewayError::Billing)?;
        let mut settings = settings;
        settings.max_tokens = reservation.max_completion_tokens;
        let call = llm_agent::LlmCall {
            client: Arc::clone(&self.llm),
            meter: Arc::clone(&self.meter),
            reservation: Some(reservation),
            owner_id: agent.owner_id,
            messages,
            settings,
            timeout: Duration::from_secs(u64::from(agent.limits.timeout_seconds.max(1))),
            purpose: crate::kernel::egress::Purpose {
                principal: ctx.caller.principal(),
                feature: crate::agents::llm::FEATURE,
                meta: ctx.meta.clone(),
            },
            agent: agent.clone(),
            lifecycle: Arc::clone(&self.lifecycle),
        };
        let steps = llm_agent::LlmSteps::new(call, first.id.clone(), first.context_id.clone());
        let run = LocalRun {
            entry,
            first: StreamResponse::Task(first),
            steps: Box::new(steps),
            permit: None,
            abandon: None,
        };
        self.run_local(owner, agent, &send, run, streaming).await
    }

    /// A message to a published workflow: a run of it starts, for the caller, with the message
    /// as its input, and the new task follows the run. A task takes one message (one run); a
    /// follow-up is refused.
    async fn send_workflow(
        &self,
        ctx: &Ctx<'_>,
        agent: &AgentRow,
        send: SendMessageRequest,
        existing: Option<Entry>,
        streaming: bool,
    ) -> Result<Reply, GatewayError> {
        let Some(port) = self.workflows.get().map(Arc::clone) else {
            return failed(
                ErrorCode::InternalError.with_message("the agent is not ready (workflows are off)"),
            );
        };
        if existing.is_some() {
            return failed(ErrorCode::UnsupportedOperation.with_message(
                "a workflow agent's task is one run and takes no more messages; send a new message",
            ));
        }
        let Some(workflow_id) = crate::agents::published_workflow(agent) else {
            return failed(internal());
        };
        let input = match workflow_agent::input_of(&send.message) {
            Ok(input) => input,
            Err(error) => return failed(error),
        };
        // The agent's place first: a run is started only for a task that may run.
        let permit = self.slot(agent)?;
        let id = Uuid::new_v4();
        let run_id = match port
            .start(WorkflowCall {
                caller: ctx.caller,
                agent_id: agent.id,
                agent_name: &agent.name,
                agent_owner: agent.owner_id,
                workflow_id,
                task_id: id,
                input,
                meta: ctx.meta,
            })
            .await
        {
            Ok(run_id) => run_id,
            Err(refusal) => return failed(workflow_agent::refusal(refusal)),
        };
        let context_id = if send.message.context_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            send.message.context_id.clone()
        };
        let mut first = Task {
            id: id.to_string(),
            context_id,
            metadata: Some(workflow_agent::run_metadata(workflow_id, run_id)),
            ..Task::default()
        };
        first.history.push(Message {
            task_id: first.id.clone(),
            context_id: first.context_id.clone(),
            ..send.message.clone()
        });
        first.status = v1::TaskStatus {
            state: v1::TaskState::Submitted,
            ..v1::TaskStatus::default()
        };
        let entry = Entry {
            id,
            owner: ctx.owner.clone(),
            agent_id: agent.id,
            push_on_create: false,
            stored: StoredTask {
                task: first.clone(),
                seq: 0,
                running: true,
                upstream: None,
            },
        };
        let steps = workflow_agent::WorkflowSteps::new(
            Arc::clone(&port),
            run_id,
            first.id.clone(),
            first.context_id.clone(),
        );
        let (caller, meta) = (ctx.caller.clone(), ctx.meta.clone());
        let abandon = move || {
            tokio::spawn(async move {
                if let Err(error) = port.cancel(&caller, workflow_id, run_id, &meta).await {
                    tracing::warn!(%run_id, %error, "a2a: the run of a task that was not created stays");
                }
            });
        };
        let run = LocalRun {
            entry,
            first: StreamResponse::Task(first),
            steps: Box::new(steps),
            permit: Some(permit),
            abandon: Some(Box::new(abandon)),
        };
        self.run_local(ctx.owner.as_str(), agent, &send, run, streaming)
            .await
    }

    /// The messages of the caller's earlier tasks of this agent in this context, oldest first
    /// (among the caller's 100 latest tasks).
    async fn context_history(&self, owner: &str, agent_id: Uuid, context_id: &str) -> Vec<Message> {
        let Ok(page) = PageRequest::first(MAX_PAGE_SIZE) else {
            return Vec::new();
        };
        let Ok((entries, _)) = self.book.list(owner, &page).await else {
            return Vec::new();
        };
        entries
            .into_iter()
            .rev()
            .filter(|entry| {
                entry.agent_id == agent_id && entry.stored.task.context_id == context_id
            })
            .flat_map(|entry| entry.stored.task.history)
            .collect()
    }

    /// Starts a task of an agent that runs inside Hive: its first event (the task itself) is
    /// stored before anything is answered, so the task exists for every call that follows;
    /// then an executor takes the rest, and the caller gets the stream or — unless it asked to
    /// return at once — the task once settled.
    async fn run_local(
        &self,
        owner: &str,
        agent: &AgentRow,
        send: &SendMessageRequest,
        run: LocalRun,
        streaming: bool,
    ) -> Result<Reply, GatewayError> {
        let configuration = send.configuration.clone().unwrap_or_default();
        let LocalRun {
            mut entry,
            first,
            steps,
            permit,
            abandon,
        } = run;
        let abandoned = |abandon: Option<Box<dyn FnOnce() + Send>>| {
            if let Some(abandon) = abandon {
                abandon();
            }
        };
        let permit = match permit {
            Some(permit) => permit,
            None => self.slot(agent)?,
        };
        let Some(cancel) = self.book.claim(entry.id) else {
            abandoned(abandon);
            return failed(still_working());
        };
        match self.attach_push(owner, entry.id, send).await {
            Ok(attached) => entry.push_on_create = attached,
            Err(error) => {
                self.book.release(entry.id);
                abandoned(abandon);
                return failed(error);
            }
        }
        entry.stored.running = true;
        let events = self.book.subscribe(entry.id);
        let task_id = entry.id;
        let after = entry.stored.seq + 1;
        let (created, first_written) = oneshot::channel();
        let run = local::Run {
            entry,
            first,
            created,
            steps,
            cancel,
            permit,
        };
        self.executors.spawn(local::execute(
            Arc::clone(&self.book),
            run,
            self.shutdown.clone(),
        ));
        // The executor stores the first event with whatever the agent has ready at once (for
        // an agent that answers at once, the whole task in one write); it releases the task
        // itself if that write fails.
        let first = match first_written.await {
            Ok(Ok(event)) => event,
            Ok(Err(error)) => {
                abandoned(abandon);
                return failed(error);
            }
            Err(_) => {
                abandoned(abandon);
                return failed(internal());
            }
        };
        if streaming {
            let stream = self.book.follow(
                events,
                owner.to_owned(),
                task_id,
                after,
                Some(first),
                self.shutdown.clone(),
            );
            return Ok(Reply::Stream(stream.into()));
        }
        let timeout = Duration::from_secs(u64::from(agent.limits.timeout_seconds.max(1)));
        if !configuration.return_immediately {
            self.wait_until_settled(events, owner, task_id, after, timeout)
                .await;
        }
        let result = match self.book.load(owner, &task_id.to_string()).await {
            Ok(Some(entry)) => shaped(entry.stored.task, configuration.history_length, true)
                .map(|task| Outcome::SendMessage(v1::SendMessageResponse::Task(task)))
                .map_err(Refused::Rpc),
            Ok(None) => Err(ErrorCode::TaskNotFound.error().into()),
            Err(refused) => Err(refused),
        };
        unary(result)
    }

    /// The push-notification config a message asked for, set on its new task before the task
    /// starts, so its first notification is not missed; whether there was one.
    pub(super) async fn attach_push(
        &self,
        owner: &str,
        task_id: Uuid,
        send: &SendMessageRequest,
    ) -> Result<bool, RpcError> {
        let Some(config) = send
            .configuration
            .as_ref()
            .and_then(|configuration| configuration.task_push_notification_config.clone())
        else {
            return Ok(false);
        };
        self.push
            .create(owner, task_id, config)
            .await
            .map(|_| true)
            .map_err(push_error)
    }
}
