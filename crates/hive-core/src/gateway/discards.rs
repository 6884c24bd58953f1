//! The undoing of first writes of new tasks that the task store did not acknowledge (see
//! [`hive_state::TaskStore::discard`]): a bounded queue and one worker per gateway, which
//! retries each discard with backoff until the store acknowledges it. During an outage the
//! discards wait in the worker, a bounded number of them at once; when the store comes back
//! they are sent a bounded number at a time, not all at once.
//!
//! The order of a discard and its write does not matter (the tombstone the discard leaves
//! refuses a write that lands after it), so a discard may wait for its turn.

use futures_util::StreamExt;
use hive_state::{StateError, TaskStore};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

/// How much the worker holds and how it retries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Discards waiting to be taken up by the worker.
    pub queue: usize,
    /// Discards the worker is retrying at most; it takes no more from the queue past that.
    pub pending: usize,
    /// Discards sent to the store at once.
    pub concurrent: usize,
    /// The wait before the first retry; it doubles with each failure, up to `max_retry`.
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// How long a discard is retried before it is given up (and logged).
    pub give_up_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            queue: 1024,
            pending: 1024,
            concurrent: 32,
            first_retry: Duration::from_millis(250),
            max_retry: Duration::from_secs(30),
            give_up_after: Duration::from_secs(3600),
        }
    }
}

impl Limits {
    /// The wait after the `failures`-th failed attempt of a discard.
    fn retry_delay(&self, failures: u32) -> Duration {
        let doubled = self
            .first_retry
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)));
        doubled.min(self.max_retry)
    }
}

#[derive(Debug)]
struct Discard {
    owner: String,
    id: Uuid,
    failures: u32,
    since: Instant,
    next_attempt: Instant,
}

#[derive(Debug)]
pub(crate) struct Discards {
    tasks: Arc<dyn TaskStore>,
    ttl: Duration,
    limits: Limits,
    /// The worker's queue; the worker starts with the first discard (inside the runtime) and
    /// ends when this is dropped and it has nothing left to retry.
    queue: OnceLock<mpsc::Sender<Discard>>,
}

impl Discards {
    pub fn new(tasks: Arc<dyn TaskStore>, ttl: Duration, limits: Limits) -> Self {
        Self {
            tasks,
            ttl,
            limits,
            queue: OnceLock::new(),
        }
    }

    /// Queues the discard of `owner`'s task `id`; `false` (logged) when the queue is full.
    pub fn discard(&self, owner: &str, id: Uuid) -> bool {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(self.limits.queue.max(1));
            tokio::spawn(work(
                Arc::clone(&self.tasks),
                self.ttl,
                self.limits,
                receiver,
            ));
            sender
        });
        let now = Instant::now();
        let queued = queue.try_send(Discard {
            owner: owner.to_owned(),
            id,
            failures: 0,
            since: now,
            next_attempt: now,
        });
        if queued.is_err() {
            tracing::error!(task_id = %id, "a2a: too many tasks to discard; this one may remain");
        }
        queued.is_ok()
    }
}

async fn work(
    tasks: Arc<dyn TaskStore>,
    ttl: Duration,
    limits: Limits,
    mut queue: mpsc::Receiver<Discard>,
) {
    let mut pending: Vec<Discard> = Vec::new();
    let mut open = true;
    loop {
        while open && pending.len() < limits.pending {
            match queue.try_recv() {
                Ok(discard) => pending.push(discard),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = pending
            .drain(..)
            .partition(|discard| discard.next_attempt <= now);
        pending = waiting;
        if due.is_empty() {
            let next_attempt = pending.iter().map(|discard| discard.next_attempt).min();
            let room = pending.len() < limits.pending;
            tokio::select! {
                () = sleep_until(next_attempt), if next_attempt.is_some() => {}
                received = queue.recv(), if open && room => match received {
                    Some(discard) => pending.push(discard),
                    None => open = false,
                },
                else => return,
            }
            continue;
        }
        let attempts = futures_util::stream::iter(due)
            .map(|discard| {
                let tasks = Arc::clone(&tasks);
                async move {
                    let result = tasks.discard(&discard.owner, discard.id, ttl).await;
                    (discard, result)
                }
            })
            .buffer_unordered(limits.concurrent.max(1))
            .collect::<Vec<_>>()
            .await;
        for (mut discard, result) in attempts {
            match result {
                // Acknowledged, or refused for good (nothing a retry would change).
                Ok(()) | Err(StateError::Invalid(_)) => {}
                Err(_) if discard.since.elapsed() >= limits.give_up_after => {
                    tracing::error!(task_id = %discard.id, "a2a: a task could not be discarded; it may remain");
                }
                Err(_) => {
                    discard.failures += 1;
                    discard.next_attempt = Instant::now() + limits.retry_delay(discard.failures);
                    pending.push(discard);
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use hive_state::TaskRecord;
    use hive_store::{Page, PageRequest};
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
    use tokio::sync::{Semaphore, watch};

    /// A task store whose discards wait for a permit of `gate`, the first `failing` of them
    /// failing as an outage does; it tells `changed` of every step.
    #[derive(Debug)]
    struct FakeStore {
        gate: Semaphore,
        failing: AtomicU32,
        attempts: AtomicUsize,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        discarded: Mutex<HashSet<Uuid>>,
        changed: watch::Sender<()>,
    }

    impl FakeStore {
        fn new(permits: usize, failing: u32) -> Arc<Self> {
            Arc::new(Self {
                gate: Semaphore::new(permits),
                failing: AtomicU32::new(failing),
                attempts: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
                discarded: Mutex::new(HashSet::new()),
                changed: watch::channel(()).0,
            })
        }

        async fn until(&self, what: &str, done: impl Fn(&Self) -> bool) {
            let mut changed = self.changed.subscribe();
            tokio::time::timeout(Duration::from_secs(10), changed.wait_for(|()| done(self)))
                .await
                .unwrap_or_else(|_| panic!("{what}"))
                .unwrap();
        }

        fn discarded(&self) -> usize {
            self.discarded.lock().unwrap().len()
        }
    }

    #[async_trait]
    impl TaskStore for FakeStore {
        async fn put(&self, _: &TaskRecord, _: Duration) -> Result<(), StateError> {
            unreachable!()
        }
        async fn get(&self, _: &str, _: Uuid) -> Result<Option<TaskRecord>, StateError> {
            unreachable!()
        }
        async fn list(&self, _: &str, _: &PageRequest) -> Result<Page<TaskRecord>, StateError> {
            unreachable!()
        }
        async fn discard(&self, _: &str, id: Uuid, _: Duration) -> Result<(), StateError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            self.changed.send_replace(());
            self.gate.acquire().await.unwrap().forget();
            let failed = self
                .failing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if !failed {
                self.discarded.lock().unwrap().insert(id);
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.changed.send_replace(());
            if failed {
                Err(StateError::Unavailable("redis: timed out".into()))
            } else {
                Ok(())
            }
        }
    }

    fn quick(limits: Limits) -> Limits {
        Limits {
            first_retry: Duration::from_millis(1),
            max_retry: Duration::from_millis(4),
            ..limits
        }
    }

    #[tokio::test]
    async fn a_failed_discard_is_retried_until_acknowledged() {
        let store = FakeStore::new(1000, 3);
        let discards = Discards::new(
            store.clone(),
            Duration::from_secs(60),
            quick(Limits::default()),
        );
        assert!(discards.discard("alice", Uuid::new_v4()));
        store.until("discarded", |s| s.discarded() == 1).await;
        assert_eq!(
            store.attempts.load(Ordering::SeqCst),
            4,
            "three failures, then done"
        );
    }

    #[tokio::test]
    async fn one_worker_sends_a_bounded_number_of_discards_at_once() {
        let store = FakeStore::new(0, 0);
        let limits = quick(Limits {
            concurrent: 3,
            ..Limits::default()
        });
        let discards = Discards::new(store.clone(), Duration::from_secs(60), limits);
        for _ in 0..20 {
            assert!(discards.discard("alice", Uuid::new_v4()));
        }
        store
            .until("three in flight", |s| {
                s.in_flight.load(Ordering::SeqCst) == 3
            })
            .await;
        store.gate.add_permits(1000);
        store.until("all discarded", |s| s.discarded() == 20).await;
        assert_eq!(store.most_in_flight.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn past_the_queue_a_discard_is_refused_not_spawned() {
        let store = FakeStore::new(0, 0);
        let limits = quick(Limits {
            queue: 4,
            pending: 4,
            concurrent: 1,
            ..Limits::default()
        });
        let discards = Discards::new(store.clone(), Duration::from_secs(60), limits);
        assert!(discards.discard("alice", Uuid::new_v4()));
        // The worker took the first and is stuck on it: the queue fills up behind it.
        store
            .until("the first in flight", |s| {
                s.in_flight.load(Ordering::SeqCst) == 1
            })
            .await;
        for _ in 0..4 {
            assert!(discards.discard("alice", Uuid::new_v4()));
        }
        assert!(
            !discards.discard("alice", Uuid::new_v4()),
            "the queue is full"
        );
        store.gate.add_permits(1000);
        store
            .until("the queued ones discarded", |s| s.discarded() == 5)
            .await;
    }

    #[test]
    fn retries_back_off_up_to_a_ceiling() {
        let limits = Limits::default();
        let delays: Vec<_> = (1..=10).map(|n| limits.retry_delay(n)).collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[1], Duration::from_millis(500));
        assert_eq!(delays[4], Duration::from_secs(4));
        assert_eq!(delays[9], Duration::from_secs(30));
        assert_eq!(limits.retry_delay(u32::MAX), Duration::from_secs(30));
    }
}
