//! Tasks of the agents that run inside Hive (`conformance`, `llm`): an executor per running
//! task takes its events from the agent's [`Steps`], applies and stores each one and publishes
//! it, and stops at a cancellation — from this process, or asked for by another replica
//! through the task's event channel — or at shutdown.

use super::Refused;
use super::book::{Entry, TaskBook, is_cancel_request};
use crate::agents::conformance;
use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use hive_a2a::error::RpcError;
use hive_a2a::state_machine;
use hive_a2a::v1::{Message, Part, Role, StreamResponse, TaskState, TaskStatus};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Where a running task's next events come from.
#[async_trait]
pub(crate) trait Steps: Send {
    /// The next event, after whatever wait the agent needs; `None` when the task is done.
    async fn next(&mut self) -> Option<Result<StreamResponse, RpcError>>;
}

/// The conformance agent's script, its pauses waited out.
pub(crate) struct ScriptSteps {
    steps: VecDeque<conformance::Step>,
}

impl ScriptSteps {
    pub fn new(steps: impl IntoIterator<Item = conformance::Step>) -> Self {
        Self {
            steps: steps.into_iter().collect(),
        }
    }
}

#[async_trait]
impl Steps for ScriptSteps {
    async fn next(&mut self) -> Option<Result<StreamResponse, RpcError>> {
        // Popped only after its pause: a call dropped while waiting loses nothing.
        if let Some(pause) = self.steps.front()?.pause {
            tokio::time::sleep(pause).await;
        }
        self.steps.pop_front().map(|step| Ok(step.event))
    }
}

/// One task to run: its stored state, its first event (not yet applied: it is stored with
/// whatever the agent has ready at once), its steps, and what it holds while it runs.
pub(crate) struct Run {
    pub entry: Entry,
    pub first: StreamResponse,
    /// Told how the first write went (the first event as applied, or why it failed), so that
    /// the call is answered only once the task exists; after a failed first write the executor
    /// stops there.
    pub created: oneshot::Sender<Result<StreamResponse, Refused>>,
    pub steps: Box<dyn Steps>,
    /// This process's claim on the task (see [`TaskBook::claim`]).
    pub cancel: CancellationToken,
    /// A place among the agent's concurrent tasks.
    pub permit: OwnedSemaphorePermit,
}

/// Runs `run` to its end: the agent's last event, a cancellation, a failure or shutdown.
/// The events the agent has ready together are stored in one write, the task's first event with
/// them (an agent that answers at once, as the conformance agent does, costs one write a task).
pub(crate) async fn execute(book: Arc<TaskBook>, mut run: Run, shutdown: CancellationToken) {
    let task_id = run.entry.id;
    let mut control = book.subscribe(task_id);
    // A closed channel (never expected: this executor holds a receiver) is not polled again.
    let mut listening = true;
    // The steps as a stream that owns them: a wait for the next event that is given up (to
    // look at the control channel, or because nothing more was ready) leaves the step's own
    // progress inside the stream, as a step need not be safe to start over (a model request
    // would be sent twice).
    let mut steps = Box::pin(futures_util::stream::unfold(
        run.steps,
        |mut steps| async move {
            let step = steps.next().await?;
            Some((step, steps))
        },
    ));
    let mut stored_to_the_end = false;
    let mut created = Some(run.created);
    let mut first_event = Some(Some(Ok(run.first)));
    let ending = 'run: loop {
        let first = if let Some(first) = first_event.take() {
            first
        } else {
            loop {
                tokio::select! {
                    () = run.cancel.cancelled() => break 'run Ending::Canceled,
                    () = shutdown.cancelled() => break 'run Ending::Failed("Hive is shutting down".into()),
                    received = control.recv(), if listening => match received {
                        Ok(event) if is_cancel_request(&event) => break 'run Ending::Canceled,
                        // Its own events, or a lag: nothing to act on.
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => listening = false,
                    },
                    first = steps.next() => break first,
                }
            }
        };
        // This event and whatever follows it at once; `end` if the steps ended among them.
        let mut ready = Vec::new();
        let mut step = first;
        let end = loop {
            match step {
                None => break Some(Ending::Done),
                Some(Err(error)) => {
                    tracing::warn!(%task_id, code = error.code, "a2a: agent failed a task");
                    // The steps' messages are written for the caller (no internal detail).
                    break Some(Ending::Failed(error.message));
                }
                Some(Ok(event)) => ready.push(event),
            }
            match steps.next().now_or_never() {
                Some(more) => step = more,
                None => break None,
            }
        };
        if ready.is_empty() {
            // The steps ended before any event (`end` is set): nothing to store with it.
            break end.unwrap_or(Ending::Done);
        }
        // The last events carry the end of the run with them when the steps are done.
        let done = matches!(end, Some(Ending::Done));
        run.entry.stored.running = !done;
        let stored = book.advance_all(&mut run.entry, ready).await;
        if let Some(created) = created.take() {
            match stored {
                Ok(mut applied) => {
                    let _ = created.send(Ok(applied.swap_remove(0)));
                }
                // The task does not exist: nothing more is stored, the call is refused.
                Err(refused) => {
                    let _ = created.send(Err(refused));
                    book.release(task_id);
                    return;
                }
            }
        } else if stored.is_err() {
            break Ending::Done;
        }
        stored_to_the_end = done;
        if let Some(end) = end {
            break end;
        }
    };
    drop(steps);
    run.entry.stored.running = false;
    let closing = match ending {
        Ending::Done => None,
        Ending::Canceled => state_machine::cancel(&run.entry.stored.task)
            .ok()
            .map(|task| state_machine::status_update(&task)),
        Ending::Failed(why) => Some(failed(&run.entry, &why)),
    };
    let stored = match closing {
        Some(event) => book.advance(&mut run.entry, event).await.map(|_| ()),
        None if stored_to_the_end => Ok(()),
        None => book.save(&run.entry).await,
    };
    if stored.is_err() {
        tracing::error!(%task_id, "a2a: the end of a task was not stored");
    }
    book.release(task_id);
    drop(run.permit);
}

enum Ending {
    Done,
    Canceled,
    Failed(String),
}

/// The event that fails the task, with an agent message saying why (never an internal detail).
fn failed(entry: &Entry, why: &str) -> StreamResponse {
    let task = &entry.stored.task;
    let mut status = TaskStatus {
        state: TaskState::Failed,
        ..TaskStatus::default()
    };
    status.message = Some(Box::new(Message {
        message_id: Uuid::new_v4().to_string(),
        context_id: task.context_id.clone(),
        task_id: task.id.clone(),
        role: Role::Agent,
        parts: vec![Part::text(why)],
        ..Message::default()
    }));
    let mut failed = task.clone();
    failed.status = status;
    state_machine::status_update(&failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hive;
    use crate::gateway::book::StoredTask;
    use crate::kernel::config::{Config, EnvSource};
    use hive_a2a::v1::Task;
    use hive_state::{MemoryTaskStore, StateError, TaskEvents, TaskRecord, TaskStore};
    use hive_store::{Page, PageRequest};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::Semaphore;

    /// The real in-memory task store, counting the writes it is given.
    #[derive(Debug)]
    struct CountedWrites {
        tasks: MemoryTaskStore,
        puts: AtomicUsize,
    }

    #[async_trait]
    impl TaskStore for CountedWrites {
        async fn put(&self, task: &TaskRecord, ttl: Duration) -> Result<(), StateError> {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.tasks.put(task, ttl).await
        }
        async fn get(&self, owner: &str, id: Uuid) -> Result<Option<TaskRecord>, StateError> {
            self.tasks.get(owner, id).await
        }
        async fn list(
            &self,
            owner: &str,
            page: &PageRequest,
        ) -> Result<Page<TaskRecord>, StateError> {
            self.tasks.list(owner, page).await
        }
        async fn discard(&self, owner: &str, id: Uuid, ttl: Duration) -> Result<(), StateError> {
            self.tasks.discard(owner, id, ttl).await
        }
    }

    fn with_state(task: &Task, state: TaskState) -> StreamResponse {
        let mut next = task.clone();
        next.status = TaskStatus {
            state,
            ..TaskStatus::default()
        };
        state_machine::status_update(&next)
    }

    /// Runs a task whose steps are `working` then `completed`, the second after `pause`;
    /// returns how many writes it took, the events published and the task's stored document.
    async fn run(pause: Option<Duration>) -> (usize, Vec<u64>, serde_json::Value) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").display().to_string();
        let config = Config::load(&EnvSource::from_pairs([
            ("HIVE_DATA_DIR", data.as_str()),
            ("LOG_LEVEL", "warn"),
        ]))
        .unwrap();
        let clock: hive_proto::SharedClock = Arc::new(hive_proto::SystemClock);
        let hive = Hive::open(config, Arc::clone(&clock)).await.unwrap();
        if pause.is_some() {
            // The pause passes without waiting (the clock jumps when every task waits).
            tokio::time::pause();
        }
        let counted = Arc::new(CountedWrites {
            tasks: MemoryTaskStore::new(Arc::clone(&clock), 100),
            puts: AtomicUsize::new(0),
        });
        let book = Arc::new(TaskBook::new(
            Arc::clone(&counted) as Arc<dyn TaskStore>,
            Arc::new(TaskEvents::memory()),
            clock,
            Duration::from_secs(3600),
            Arc::clone(&hive.gateway.push),
        ));
        let id = Uuid::new_v4();
        let task = Task {
            id: id.to_string(),
            context_id: "ctx".into(),
            ..Task::default()
        };
        let mut first = task.clone();
        first.status.state = TaskState::Submitted;
        let steps = ScriptSteps::new([
            conformance::Step {
                pause: None,
                event: with_state(&task, TaskState::Working),
            },
            conformance::Step {
                pause,
                event: with_state(&task, TaskState::Completed),
            },
        ]);
        let mut events = book.subscribe(id);
        let (created, first_written) = oneshot::channel();
        let run = Run {
            entry: Entry {
                id,
                owner: "alice".into(),
                agent_id: Uuid::new_v4(),
                push_on_create: false,
                stored: StoredTask {
                    task,
                    seq: 0,
                    running: true,
                    upstream: None,
                },
            },
            first: StreamResponse::Task(first),
            created,
            steps: Box::new(steps),
            cancel: book.claim(id).unwrap(),
            permit: Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap(),
        };
        execute(Arc::clone(&book), run, CancellationToken::new()).await;
        assert!(matches!(
            first_written.await,
            Ok(Ok(StreamResponse::Task(_)))
        ));
        let mut published = Vec::new();
        while let Ok(event) = events.try_recv() {
            published.push(event.seq);
        }
        let stored = counted.tasks.get("alice", id).await.unwrap().unwrap();
        let document = serde_json::from_str(stored.document.as_str()).unwrap();
        hive.close().await;
        (counted.puts.load(Ordering::SeqCst), published, document)
    }

    #[tokio::test]
    async fn events_ready_together_are_stored_in_one_write_with_the_first() {
        let (writes, published, stored) = run(None).await;
        assert_eq!(writes, 1, "the task, working and completed in one write");
        assert_eq!(published, [1, 2, 3], "each event published with its number");
        assert_eq!(stored["seq"], 3);
        assert_eq!(stored["running"], false, "the run's end with it");
        assert_eq!(stored["task"]["status"]["state"], "TASK_STATE_COMPLETED");
    }

    #[tokio::test]
    async fn an_event_that_comes_later_is_a_write_of_its_own_and_is_not_lost() {
        let (writes, published, stored) = run(Some(Duration::from_secs(5))).await;
        assert_eq!(
            writes, 2,
            "the task with working; then completed, after the pause"
        );
        assert_eq!(published, [1, 2, 3]);
        assert_eq!(stored["running"], false);
        assert_eq!(stored["task"]["status"]["state"], "TASK_STATE_COMPLETED");
    }
}
