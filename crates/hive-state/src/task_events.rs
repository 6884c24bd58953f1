//! The fan-out of a task's events: every subscriber of a task, on any replica, receives its
//! events once, in the order they were published. In memory a broadcast channel per task; on
//! Redis one pattern subscription per process (`<prefix>:task-events:*`) dispatching to the local
//! subscribers of each task. Redis keeps the order of one publisher's messages, and one task's
//! events are published by the replica running it. Each event carries its sequence number, so a
//! subscriber that fell behind can tell.
//!
//! A publisher delivers to its own process's subscribers directly, and publishes on
//! `<prefix>:task-events:<task id>:<origin>`, `origin` naming this [`TaskEvents`]: what comes
//! back from Redis with its own origin is not delivered again. The origin is in the channel, not
//! the payload, so a replica that does not know of origins still reads the events.

use crate::redis_client::Subscription;
use crate::{RedisClient, StateError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Events one subscriber may fall behind by before it is told it lagged (and re-reads the
/// stored task instead). Every slot is allocated with the task's channel, that is with every
/// task: 32 keep that small (256 cost about 25 KiB a task) and are plenty for readers that
/// forward events as they come.
const CAPACITY: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskEvent {
    pub task_id: Uuid,
    /// 1, 2, 3… per task, set by the publisher.
    pub seq: u64,
    /// The A2A stream event; opaque here.
    pub event: serde_json::Value,
}

/// The control event (sequence 0) telling a subscriber to re-read its task.
const RESYNC: &str = "resync";

impl TaskEvent {
    fn resync(task_id: Uuid) -> Self {
        Self {
            task_id,
            seq: 0,
            event: serde_json::json!({ RESYNC: true }),
        }
    }

    /// Whether this is the event telling a subscriber that it may have missed events (after
    /// its process's subscription to the other replicas was restored): the stored task is the
    /// truth then.
    pub fn is_resync(&self) -> bool {
        self.seq == 0 && self.event.get(RESYNC).is_some()
    }
}

/// The channels of the tasks someone on this replica follows. A task's channel holds its last
/// events for late subscribers, so one whose last subscriber is gone must not stay: a task
/// that finished gets no further event to notice it by, and the table is swept instead each
/// time it has doubled since the last sweep (amortised, bounded by twice the live channels).
struct Subscribers {
    by_task: Mutex<Table>,
}

struct Table {
    channels: HashMap<Uuid, broadcast::Sender<TaskEvent>>,
    sweep_at: usize,
}

/// The table is never swept below this size.
const MIN_SWEEP: usize = 1_024;

impl Default for Subscribers {
    fn default() -> Self {
        Self {
            by_task: Mutex::new(Table {
                channels: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }
}

impl Subscribers {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.by_task.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn subscribe(&self, task_id: Uuid) -> broadcast::Receiver<TaskEvent> {
        let mut table = self.table();
        if table.channels.len() >= table.sweep_at {
            table
                .channels
                .retain(|_, sender| sender.receiver_count() > 0);
            table.sweep_at = (table.channels.len() * 2).max(MIN_SWEEP);
        }
        table
            .channels
            .entry(task_id)
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Tells every local subscriber that events may have been missed (the subscription to the
    /// other replicas was lost and is back): each re-reads its task.
    fn resync_all(&self) {
        self.table()
            .channels
            .retain(|task_id, sender| sender.send(TaskEvent::resync(*task_id)).is_ok());
    }

    fn deliver(&self, event: TaskEvent) {
        let mut table = self.table();
        if let Some(sender) = table.channels.get(&event.task_id) {
            let task_id = event.task_id;
            // A task nobody listens to any more is forgotten.
            if sender.send(event).is_err() {
                table.channels.remove(&task_id);
            }
        }
    }

    #[cfg(test)]
    fn channels(&self) -> usize {
        self.table().channels.len()
    }
}

enum Transport {
    Memory,
    Redis {
        redis: Box<RedisClient>,
        /// The last part of the channels this instance publishes on.
        origin: String,
    },
}

pub struct TaskEvents {
    subscribers: Arc<Subscribers>,
    transport: Transport,
    subscribed: watch::Receiver<bool>,
    stop: CancellationToken,
}

impl std::fmt::Debug for TaskEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskEvents")
    }
}

impl TaskEvents {
    /// Events a subscriber may fall behind by before it is told it lagged.
    pub const CAPACITY: usize = CAPACITY;

    pub fn memory() -> Self {
        Self {
            subscribers: Arc::default(),
            transport: Transport::Memory,
            subscribed: watch::channel(true).1,
            stop: CancellationToken::new(),
        }
    }

    /// Starts this process's pattern subscription; it reconnects by itself until [`Self::close`].
    pub fn redis(redis: RedisClient) -> Self {
        let subscribers: Arc<Subscribers> = Arc::default();
        let origin = Uuid::new_v4().simple().to_string();
        let own_channels = format!(":{origin}");
        let (subscribed_tx, subscribed) = watch::channel(false);
        let stop = CancellationToken::new();
        let local = Arc::clone(&subscribers);
        // Events published while the subscription was down are lost to it: every local
        // subscriber re-reads its task each time the subscription is (re)established.
        let mut restored = subscribed.clone();
        let resync = Arc::clone(&subscribers);
        let watching = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = watching.cancelled() => return,
                    changed = restored.changed() => if changed.is_err() { return },
                }
                if *restored.borrow_and_update() {
                    resync.resync_all();
                }
            }
        });
        tokio::spawn(redis.clone().subscribe_forever(
            Subscription {
                what: "task events",
                channels: Vec::new(),
                patterns: vec![redis.key(&["task-events", "*"])],
            },
            move |channel, payload| {
                // Delivered already, when it was published.
                if channel.ends_with(&own_channels) {
                    return;
                }
                match serde_json::from_slice::<TaskEvent>(payload) {
                    Ok(event) => local.deliver(event),
                    Err(_) => tracing::warn!("dropped a malformed task event"),
                }
            },
            subscribed_tx,
            stop.clone(),
        ));
        Self {
            subscribers,
            transport: Transport::Redis {
                redis: Box::new(redis),
                origin,
            },
            subscribed,
            stop,
        }
    }

    /// Waits until events from other replicas flow in (immediately in memory).
    pub async fn ready(&self) {
        let mut subscribed = self.subscribed.clone();
        let _ = subscribed.wait_for(|ready| *ready).await;
    }

    pub fn subscribe(&self, task_id: Uuid) -> broadcast::Receiver<TaskEvent> {
        self.subscribers.subscribe(task_id)
    }

    pub async fn publish(&self, event: TaskEvent) -> Result<(), StateError> {
        match &self.transport {
            Transport::Memory => {
                self.subscribers.deliver(event);
                Ok(())
            }
            Transport::Redis { redis, origin } => {
                let channel = redis.key(&["task-events", &event.task_id.to_string(), origin]);
                let raw = serde_json::to_vec(&event)
                    .map_err(|_| StateError::Invalid("the task event does not serialise".into()))?;
                // This process's subscribers get it at once, not through Redis, so they miss
                // nothing while the subscription is down.
                self.subscribers.deliver(event);
                redis.publish(&channel, &raw).await?;
                Ok(())
            }
        }
    }

    pub fn close(&self) {
        self.stop.cancel();
    }
}

impl Drop for TaskEvents {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channels_of_finished_tasks_do_not_pile_up() {
        let subscribers = Subscribers::default();
        let followed: Vec<_> = (0..10)
            .map(|_| subscribers.subscribe(Uuid::now_v7()))
            .collect();
        // Ten thousand tasks followed to their end: their subscribers are gone, and no event
        // comes after the last one to say so.
        for _ in 0..10_000 {
            drop(subscribers.subscribe(Uuid::now_v7()));
        }
        assert!(
            subscribers.channels() <= 2 * MIN_SWEEP,
            "{} channels kept",
            subscribers.channels()
        );
        assert!(
            followed
                .iter()
                .all(|receiver| receiver.sender_strong_count() > 0),
            "the channels still followed stay"
        );
    }
}
