//! The calls on a caller's existing task: get (reaching it), list, cancel, subscribe, and its
//! push-notification configs.

use super::book::{Entry, shaped};
use super::{Ctx, Gateway, Refused, StreamItem, Target, push_error};
use hive_a2a::error::ErrorCode;
use hive_a2a::jsonrpc::{Call, Outcome};
use hive_a2a::state_machine;
use hive_a2a::v1::{self, StreamResponse, Task};
use hive_store::PageRequest;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Tasks a `ListTasks` page holds by default and at most.
const DEFAULT_PAGE_SIZE: u32 = 50;
pub(super) const MAX_PAGE_SIZE: u32 = 100;

/// How long a cancellation waits for the executor running the task to confirm it.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

impl Gateway {
    /// The caller's task, reached from this endpoint: at an agent's endpoint only that
    /// agent's tasks exist.
    pub(super) async fn task_of(
        &self,
        owner: &str,
        target: Target,
        id: &str,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<Entry, Refused> {
        let entry = self.book.load(owner, id).await?;
        let entry = entry.filter(|entry| match target {
            Target::Instance => true,
            Target::Agent(agent) => entry.agent_id == agent,
        });
        let entry = entry.ok_or_else(|| ErrorCode::TaskNotFound.error())?;
        *agent_seen = Some(entry.agent_id);
        Ok(entry)
    }

    /// Waits until the task is terminal or interrupted, or `timeout` passes.
    pub(super) async fn wait_until_settled(
        &self,
        events: tokio::sync::broadcast::Receiver<hive_state::TaskEvent>,
        owner: &str,
        task_id: Uuid,
        after: u64,
        timeout: Duration,
    ) {
        let mut stream = self.book.follow(
            events,
            owner.to_owned(),
            task_id,
            after,
            None,
            self.shutdown.clone(),
        );
        let drained = async { while stream.recv().await.is_some() {} };
        let _ = tokio::time::timeout(timeout, drained).await;
    }

    pub(super) async fn list(
        &self,
        owner: &str,
        target: Target,
        list: v1::ListTasksRequest,
    ) -> Result<Outcome, Refused> {
        let size = match list.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if (1..=100).contains(&n) => u32::try_from(n).unwrap_or(DEFAULT_PAGE_SIZE),
            Some(_) => {
                return Err(ErrorCode::InvalidParams
                    .with_message(format!("pageSize must be from 1 to {MAX_PAGE_SIZE}"))
                    .into());
            }
        };
        let cursor = (!list.page_token.is_empty()).then_some(list.page_token.as_str());
        let page = PageRequest::new(size, cursor)
            .map_err(|_| ErrorCode::InvalidParams.with_message("pageToken is not valid"))?;
        let with_artifacts = list.include_artifacts.unwrap_or(false);
        let (entries, next) = self.book.list(owner, &page).await?;
        let mut tasks = Vec::with_capacity(entries.len());
        for entry in entries {
            let wanted = match target {
                Target::Instance => true,
                Target::Agent(agent) => entry.agent_id == agent,
            } && (list.context_id.is_empty()
                || entry.stored.task.context_id == list.context_id)
                && (list.status == v1::TaskState::Unspecified
                    || entry.stored.task.status.state == list.status);
            if wanted {
                tasks.push(shaped(
                    entry.stored.task,
                    list.history_length,
                    with_artifacts,
                )?);
            }
        }
        let page_size = i32::try_from(tasks.len()).unwrap_or(i32::MAX);
        Ok(Outcome::ListTasks(v1::ListTasksResponse {
            total_size: page_size,
            page_size,
            tasks,
            next_page_token: next.unwrap_or_default(),
        }))
    }

    pub(super) async fn cancel(
        &self,
        ctx: &Ctx<'_>,
        target: Target,
        id: &str,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<Task, Refused> {
        let owner = ctx.owner.as_str();
        let entry = self.task_of(owner, target, id, agent_seen).await?;
        if !state_machine::is_cancelable(entry.stored.task.status.state) {
            return Err(ErrorCode::TaskNotCancelable.error().into());
        }
        if entry.stored.upstream.is_some() {
            return self.cancel_remote(ctx, entry).await;
        }
        self.cancel_workflow_run(ctx, &entry).await;
        if entry.stored.running {
            // The executor ends the task itself; wait for it to say so.
            let events = self.book.subscribe(entry.id);
            match self.book.local_executor(entry.id) {
                Some(token) => token.cancel(),
                None => self.book.request_cancel(entry.id).await,
            }
            self.wait_until_settled(events, owner, entry.id, entry.stored.seq, CANCEL_WAIT)
                .await;
            let now = self
                .book
                .load(owner, id)
                .await?
                .ok_or_else(|| ErrorCode::TaskNotFound.error())?;
            if now.stored.task.status.state.is_terminal() {
                return Ok(now.stored.task);
            }
            // No executor answered (its replica is gone): the task is canceled here.
            return self.cancel_stored(now).await;
        }
        self.cancel_stored(entry).await
    }

    /// A `workflow` agent's task: its run is cancelled first (the task then ends canceled,
    /// whichever replica follows it). A run that cannot be cancelled now is logged; the task
    /// is canceled all the same.
    async fn cancel_workflow_run(&self, ctx: &Ctx<'_>, entry: &Entry) {
        let Some((workflow_id, run_id)) = super::workflow_agent::run_of(&entry.stored.task) else {
            return;
        };
        let is_workflow = matches!(
            self.agents.get(entry.agent_id).await,
            Ok(Some(agent)) if agent.kind == hive_proto::agents::AgentKind::Workflow
        );
        let Some(port) = self.workflows.get().filter(|_| is_workflow) else {
            return;
        };
        if let Err(error) = port.cancel(ctx.caller, workflow_id, run_id, ctx.meta).await {
            tracing::warn!(%run_id, %error, "a2a: a canceled task's run was not cancelled");
        }
    }

    async fn cancel_stored(&self, mut entry: Entry) -> Result<Task, Refused> {
        let canceled = state_machine::cancel(&entry.stored.task)?;
        entry.stored.running = false;
        self.book
            .advance(&mut entry, state_machine::status_update(&canceled))
            .await?;
        Ok(entry.stored.task)
    }

    pub(super) async fn subscribe(
        &self,
        ctx: &Ctx<'_>,
        target: Target,
        id: &str,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<mpsc::Receiver<StreamItem>, Refused> {
        let owner = ctx.owner.as_str();
        let first = self.task_of(owner, target, id, agent_seen).await?;
        if first.stored.upstream.is_some() && !first.stored.running {
            return self.subscribe_remote(ctx, first).await;
        }
        let events = self.book.subscribe(first.id);
        // Read again after subscribing: nothing between the read and the stream is lost.
        let entry = self
            .book
            .load(owner, id)
            .await?
            .ok_or_else(|| ErrorCode::TaskNotFound.error())?;
        if entry.stored.task.status.state.is_terminal() {
            return Err(ErrorCode::UnsupportedOperation
                .with_message("the task is in a terminal state; there is nothing to subscribe to")
                .into());
        }
        Ok(self.book.follow(
            events,
            owner.to_owned(),
            entry.id,
            entry.stored.seq,
            Some(StreamResponse::Task(entry.stored.task)),
            self.shutdown.clone(),
        ))
    }

    /// The push-notification config methods, on the caller's own task.
    pub(super) async fn push_call(
        &self,
        owner: &str,
        target: Target,
        call: Call,
        agent_seen: &mut Option<Uuid>,
    ) -> Result<Outcome, Refused> {
        let task_id = match &call {
            Call::CreateTaskPushNotificationConfig(config) => &config.task_id,
            Call::GetTaskPushNotificationConfig(reference)
            | Call::DeleteTaskPushNotificationConfig(reference) => &reference.task_id,
            Call::ListTaskPushNotificationConfigs(list) => &list.task_id,
            _ => return Err(ErrorCode::MethodNotFound.error().into()),
        };
        let task = self.task_of(owner, target, task_id, agent_seen).await?.id;
        let push = &self.push;
        let done = match call {
            Call::CreateTaskPushNotificationConfig(config) => push
                .create(owner, task, config)
                .await
                .map(Outcome::PushConfig),
            Call::GetTaskPushNotificationConfig(reference) => push
                .get(owner, task, &reference.id)
                .await
                .map(Outcome::PushConfig),
            Call::ListTaskPushNotificationConfigs(list) => {
                let size = u32::try_from(list.page_size).unwrap_or(0);
                push.list(owner, task, size, &list.page_token)
                    .await
                    .map(Outcome::ListPushConfigs)
            }
            // Deleting is idempotent: a config that is not there is deleted.
            Call::DeleteTaskPushNotificationConfig(reference) => {
                match push.delete(owner, task, &reference.id).await {
                    Ok(()) | Err(crate::gateway::push::PushError::NotFound) => Ok(Outcome::Deleted),
                    Err(error) => Err(error),
                }
            }
            _ => return Err(ErrorCode::MethodNotFound.error().into()),
        };
        Ok(done.map_err(push_error)?)
    }
}
