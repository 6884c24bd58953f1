//! Group commit: many callers' writes, one transaction. A single writer task per
//! [`GroupCommit`] takes every item waiting (up to a bound), hands them to its [`BatchWriter`]
//! in arrival order, and answers each caller once the batch is durable — one commit, one
//! fsync for all of them. A caller whose batch failed hears [`Unwritten`], exactly as if it had
//! written alone and failed. There is no timer: a batch is whatever queued while the previous
//! one committed, so a lone write waits for nothing.
//!
//! The queue is bounded: when the writer falls behind, callers wait for room and, after
//! [`Limits::enqueue_wait`], give up with [`Unwritten::QueueFull`], so memory never grows
//! without bound.

use hive_store::StoreError;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Writes one batch, in order, in one transaction.
pub trait BatchWriter: Send + Sync + 'static {
    type Item: Send + 'static;
    type Written: Send + 'static;

    /// One result per item, in the items' order; an error means none of them was written.
    fn write(
        &self,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Written>, StoreError>> + Send;
}

/// Why a write was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unwritten {
    #[error("the write queue stayed full")]
    QueueFull,
    #[error("the batch it joined could not be written")]
    Failed,
    #[error("the writer has stopped")]
    Stopped,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Items waiting for the writer, at most.
    pub queue: usize,
    /// Items in one batch, at most (a bound on the transaction, not on throughput: the next
    /// batch starts as soon as this one commits).
    pub max_batch: usize,
    /// How long a caller waits for room in a full queue.
    pub enqueue_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            queue: 8_192,
            max_batch: 1_024,
            enqueue_wait: Duration::from_secs(2),
        }
    }
}

struct Waiting<I, W> {
    item: I,
    answer: oneshot::Sender<Result<W, Unwritten>>,
}

type Queue<B> = mpsc::Sender<Waiting<<B as BatchWriter>::Item, <B as BatchWriter>::Written>>;

/// The queue in front of one writer. The writer starts with the first item, on the runtime of
/// its caller, and stops when the last handle is dropped.
pub struct GroupCommit<B: BatchWriter> {
    /// Names the writer in logs and metrics (`writer` label).
    name: &'static str,
    writer: Arc<B>,
    limits: Limits,
    queue: OnceLock<Queue<B>>,
}

impl<B: BatchWriter> std::fmt::Debug for GroupCommit<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("name", &self.name)
            .field("started", &self.queue.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<B: BatchWriter> GroupCommit<B> {
    pub fn new(name: &'static str, writer: B, limits: Limits) -> Self {
        Self {
            name,
            writer: Arc::new(writer),
            limits,
            queue: OnceLock::new(),
        }
    }

    /// Writes `item` with whatever else is waiting; returns once its batch is durable.
    pub async fn submit(&self, item: B::Item) -> Result<B::Written, Unwritten> {
        let queue = self.queue.get_or_init(|| {
            let (queue, waiting) = mpsc::channel(self.limits.queue.max(1));
            tokio::spawn(write_batches(
                self.name,
                Arc::clone(&self.writer),
                self.limits.max_batch.max(1),
                waiting,
            ));
            queue
        });
        let (answer, answered) = oneshot::channel();
        let queued = tokio::time::timeout(
            self.limits.enqueue_wait,
            queue.send(Waiting { item, answer }),
        )
        .await;
        match queued {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                tracing::error!(writer = self.name, "group-commit writer stopped");
                return Err(Unwritten::Stopped);
            }
            Err(_) => {
                metrics::counter!("hive_group_commit_queue_full_total", "writer" => self.name)
                    .increment(1);
                tracing::warn!(writer = self.name, "group-commit queue full");
                return Err(Unwritten::QueueFull);
            }
        }
        answered.await.unwrap_or(Err(Unwritten::Stopped))
    }
}

/// The writer: every item waiting, in arrival order, one batch at a time.
async fn write_batches<B: BatchWriter>(
    name: &'static str,
    writer: Arc<B>,
    max_batch: usize,
    mut waiting: mpsc::Receiver<Waiting<B::Item, B::Written>>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while waiting.recv_many(&mut batch, max_batch).await > 0 {
        let (items, answers): (Vec<B::Item>, Vec<_>) = batch
            .drain(..)
            .map(|Waiting { item, answer }| (item, answer))
            .unzip();
        metrics::histogram!("hive_group_commit_batch_items", "writer" => name)
            .record(items.len() as f64);
        let started = std::time::Instant::now();
        let outcome = writer.write(&items).await;
        metrics::histogram!("hive_group_commit_write_seconds", "writer" => name)
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(written) if written.len() == answers.len() => {
                for (answer, written) in answers.into_iter().zip(written) {
                    // A caller that gave up (its request was dropped) no longer listens.
                    let _ = answer.send(Ok(written));
                }
            }
            outcome => {
                let error = match outcome {
                    Err(error) => error.to_string(),
                    Ok(_) => "one result per item was not given".to_owned(),
                };
                metrics::counter!("hive_group_commit_failed_batches_total", "writer" => name)
                    .increment(1);
                tracing::error!(
                    writer = name,
                    %error,
                    items = answers.len(),
                    "a batch was not written; its callers are refused"
                );
                for answer in answers {
                    let _ = answer.send(Err(Unwritten::Failed));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps the batches it is given; refuses a batch holding a negative number.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<Vec<i64>>>,
    }

    impl BatchWriter for Arc<Recorder> {
        type Item = i64;
        type Written = i64;

        async fn write(&self, items: &[i64]) -> Result<Vec<i64>, StoreError> {
            if items.iter().any(|n| *n < 0) {
                return Err(StoreError::Backend("refused".into()));
            }
            self.batches.lock().unwrap().push(items.to_vec());
            Ok(items.iter().map(|n| n * 10).collect())
        }
    }

    fn group(recorder: &Arc<Recorder>, limits: Limits) -> Arc<GroupCommit<Arc<Recorder>>> {
        Arc::new(GroupCommit::new("test", Arc::clone(recorder), limits))
    }

    #[tokio::test]
    async fn callers_waiting_together_share_one_batch_in_arrival_order() {
        let recorder = Arc::new(Recorder::default());
        let group = group(&recorder, Limits::default());
        assert_eq!(group.submit(1).await, Ok(10));
        // On this single-threaded runtime all of them queue before the writer runs again.
        let calls: Vec<_> = (2..=20)
            .map(|n| {
                let group = Arc::clone(&group);
                tokio::spawn(async move { group.submit(n).await })
            })
            .collect();
        for (n, call) in (2..=20).zip(calls) {
            assert_eq!(
                call.await.unwrap(),
                Ok(n * 10),
                "each caller its own result"
            );
        }
        let batches = recorder.batches.lock().unwrap().clone();
        assert_eq!(batches, vec![vec![1], (2..=20).collect::<Vec<_>>()]);
    }

    #[tokio::test]
    async fn every_caller_of_a_failed_batch_is_refused_and_the_writer_goes_on() {
        let recorder = Arc::new(Recorder::default());
        let group = group(&recorder, Limits::default());
        let calls: Vec<_> = [1, 2, -3, 4]
            .into_iter()
            .map(|n| {
                let group = Arc::clone(&group);
                tokio::spawn(async move { group.submit(n).await })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), Err(Unwritten::Failed));
        }
        assert_eq!(group.submit(5).await, Ok(50));
        assert_eq!(recorder.batches.lock().unwrap().clone(), vec![vec![5]]);
    }

    #[tokio::test]
    async fn a_batch_is_never_larger_than_its_bound() {
        let recorder = Arc::new(Recorder::default());
        let limits = Limits {
            max_batch: 4,
            ..Limits::default()
        };
        let group = group(&recorder, limits);
        let calls: Vec<_> = (0..10)
            .map(|n| {
                let group = Arc::clone(&group);
                tokio::spawn(async move { group.submit(n).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let sizes: Vec<usize> = recorder
            .batches
            .lock()
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![4, 4, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_after_the_wait_instead_of_growing() {
        /// Never finishes a batch: the writer is stuck, as behind a locked database.
        struct Stuck;
        impl BatchWriter for Stuck {
            type Item = ();
            type Written = ();
            async fn write(&self, _: &[()]) -> Result<Vec<()>, StoreError> {
                std::future::pending().await
            }
        }
        let limits = Limits {
            queue: 2,
            max_batch: 1,
            enqueue_wait: Duration::from_secs(2),
        };
        let group = Arc::new(GroupCommit::new("stuck", Stuck, limits));
        // One in the writer's hands, two in the queue, two waiting for room.
        for _ in 0..5 {
            let group = Arc::clone(&group);
            tokio::spawn(async move { group.submit(()).await });
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // The paused clock moves on only when every task waits: the refusal comes at the
        // end of the wait, not before.
        let started = tokio::time::Instant::now();
        let refused = tokio::time::timeout(Duration::from_secs(10), group.submit(())).await;
        assert_eq!(refused, Ok(Err(Unwritten::QueueFull)));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
