//! Rows cached in process, and how every replica learns that they changed.
//!
//! Authenticating a request and routing an A2A call read rows that rarely change (a token, a
//! session, their user; an agent). Each replica keeps them for at most [`CACHE_LIFETIME`] in a
//! bounded [`ShortCache`], under a generation of their [`CacheTopic`]:
//!
//! - every change of such rows goes through the store as [`WatchedStore`] hands it out, which
//!   bumps the topic's generation on this replica once the change is made (an entry of an
//!   older generation is never served again) and announces it on the bus, where every other
//!   replica's [`Changes::follow`] bumps its own;
//! - a read that started before a bump cannot store what it read (it may predate the change);
//! - an announcement that is lost costs at most [`CACHE_LIFETIME`]: no entry is served longer
//!   than that after it was read, nor past the deadline of what it holds (a token's expiry).
//!
//! Time is the injected clock's, so tests move it instead of sleeping.

mod watched;

pub use watched::WatchedStore;

pub use hive_state::bus::CacheTopic;
use hive_state::{BusEvent, Channel, EventBus};
use lru::LruCache;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// The longest a cached row is served after it was read: the bound on how late a replica that
/// missed an announcement refuses a revoked credential.
pub const CACHE_LIFETIME: time::Duration = time::Duration::seconds(1);

/// The generations of the cached topics on this replica, and the bus that carries their bumps
/// to the others. One per process.
#[derive(Debug)]
pub struct Changes {
    generations: [AtomicU64; CacheTopic::ALL.len()],
    /// `None` for a process alone (its own bumps are all there is).
    bus: Option<Arc<EventBus>>,
    /// This replica's name on the bus: its own announcements come back and are skipped.
    node_id: String,
    /// Ends [`Self::follow`].
    stop: CancellationToken,
}

impl Changes {
    pub fn new(bus: Arc<EventBus>, node_id: &str) -> Arc<Self> {
        Arc::new(Self {
            generations: Default::default(),
            bus: Some(bus),
            node_id: node_id.to_owned(),
            stop: CancellationToken::new(),
        })
    }

    /// Without a bus: for a process that shares its database with no one (tests).
    pub fn local() -> Arc<Self> {
        Arc::new(Self {
            generations: Default::default(),
            bus: None,
            node_id: String::new(),
            stop: CancellationToken::new(),
        })
    }

    pub fn generation(&self, topic: CacheTopic) -> u64 {
        self.generations[topic.index()].load(Ordering::SeqCst)
    }

    fn bump(&self, topic: CacheTopic) {
        self.generations[topic.index()].fetch_add(1, Ordering::SeqCst);
    }

    /// Says that rows of `topic` changed (or may have: a failed write is counted too). Cached
    /// rows of it stop being served on this replica before this returns, and on the others
    /// when the announcement arrives; should it not, [`CACHE_LIFETIME`] bounds the delay.
    pub async fn changed(&self, topic: CacheTopic) {
        self.bump(topic);
        let Some(bus) = &self.bus else {
            return;
        };
        if let Err(error) = bus.publish(BusEvent::CacheInvalidate { topic }, None).await {
            tracing::warn!(
                %error,
                ?topic,
                "a cache invalidation was not announced; other replicas drop the rows within their lifetime"
            );
        }
    }

    /// An announcement of `topic` to be made once a write is done: by
    /// [`Pending::announce`], or, should the writer be dropped first (a request whose client
    /// went away mid-write, perhaps after the commit), when it is dropped.
    pub fn pending(self: &Arc<Self>, topic: CacheTopic) -> Pending {
        Pending {
            changes: Arc::clone(self),
            topic,
            announced: false,
        }
    }

    /// Follows other replicas' announcements until [`Self::close`] (or until this is dropped).
    /// The subscription is made before this returns, so no later announcement is missed.
    pub fn follow(self: &Arc<Self>) {
        let Some(bus) = &self.bus else {
            return;
        };
        let mut events = bus.subscribe(Channel::CacheInvalidations);
        // Weak: the task must not keep the bus (and its Redis subscriber) alive.
        let changes: Weak<Self> = Arc::downgrade(self);
        let cancel = self.stop.clone();
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    () = cancel.cancelled() => break,
                    received = events.recv() => received,
                };
                let Some(changes) = changes.upgrade() else {
                    break;
                };
                match received {
                    Ok(envelope) => {
                        if envelope.mesh_meta.producer == changes.node_id {
                            continue;
                        }
                        if let BusEvent::CacheInvalidate { topic } = envelope.payload {
                            changes.bump(topic);
                        }
                    }
                    // Announcements were missed: drop everything.
                    Err(RecvError::Lagged(_)) => {
                        CacheTopic::ALL
                            .into_iter()
                            .for_each(|topic| changes.bump(topic));
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    /// Stops following other replicas.
    pub fn close(&self) {
        self.stop.cancel();
    }
}

/// A change under way; see [`Changes::pending`].
#[derive(Debug)]
#[must_use = "a pending change is announced by `announce` or when dropped"]
pub struct Pending {
    changes: Arc<Changes>,
    topic: CacheTopic,
    announced: bool,
}

impl Pending {
    pub async fn announce(mut self) {
        self.announced = true;
        self.changes.changed(self.topic).await;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.announced {
            return;
        }
        // This replica stops serving at once; the others hear of it from a task of its own.
        self.changes.bump(self.topic);
        let (changes, topic) = (Arc::clone(&self.changes), self.topic);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { changes.changed(topic).await });
        }
    }
}

/// When a cached value was read and under which generation: taken before the read, so that a
/// change made during the read keeps the value out of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    generation: u64,
    read_at: OffsetDateTime,
}

struct Entry<V> {
    value: V,
    ticket: Ticket,
    /// `min(read_at + CACHE_LIFETIME, the value's own deadline)`.
    until: OffsetDateTime,
}

/// A bounded map of recently read rows of one topic, least recently used out first.
pub struct ShortCache<K: Hash + Eq, V> {
    changes: Arc<Changes>,
    topic: CacheTopic,
    entries: Mutex<LruCache<K, Entry<V>>>,
}

/// Neither keys (token hashes) nor rows: what is kept stays out of logs.
impl<K: Hash + Eq, V> std::fmt::Debug for ShortCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("ShortCache")
            .field("topic", &self.topic)
            .field("held", &held)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V: Clone> ShortCache<K, V> {
    pub fn new(changes: Arc<Changes>, topic: CacheTopic, capacity: NonZeroUsize) -> Self {
        Self {
            changes,
            topic,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Taken before reading what will be [`Self::put`].
    pub fn ticket(&self, now: OffsetDateTime) -> Ticket {
        Ticket {
            generation: self.changes.generation(self.topic),
            read_at: now,
        }
    }

    /// The value, while it is of the current generation and `now` is within its lifetime,
    /// with the ticket it was stored under (so that storing it again after a change of our
    /// own does not make it live longer).
    pub fn get(&self, key: &K, now: OffsetDateTime) -> Option<(V, Ticket)> {
        let generation = self.changes.generation(self.topic);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(key)?;
        // A clock that went back is no proof of freshness either.
        let fresh = entry.ticket.generation == generation
            && entry.ticket.read_at <= now
            && now < entry.until;
        if fresh {
            Some((entry.value.clone(), entry.ticket))
        } else {
            entries.pop(key);
            None
        }
    }

    /// Stores `value`, read under `ticket`, to be served until `deadline` at the latest (and
    /// never past the ticket's lifetime); nothing if the topic changed since the ticket.
    pub fn put(&self, key: K, value: V, ticket: Ticket, deadline: OffsetDateTime) {
        let until = deadline.min(ticket.read_at + CACHE_LIFETIME);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock so that a bump cannot fall between check and insert unseen:
        // an entry inserted just before a bump carries the old generation and is never served.
        if ticket.generation != self.changes.generation(self.topic) || until <= ticket.read_at {
            return;
        }
        entries.put(
            key,
            Entry {
                value,
                ticket,
                until,
            },
        );
    }

    /// Entries held, served or not.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);

    fn cache(capacity: usize) -> (Arc<Changes>, ShortCache<u32, &'static str>) {
        let changes = Changes::local();
        let cache = ShortCache::new(
            Arc::clone(&changes),
            CacheTopic::Credentials,
            NonZeroUsize::new(capacity).unwrap(),
        );
        (changes, cache)
    }

    #[test]
    fn an_entry_lives_one_second_at_most_and_never_past_its_deadline() {
        let (_, cache) = cache(8);
        let far = T0 + time::Duration::days(1);
        cache.put(1, "a", cache.ticket(T0), far);
        assert_eq!(cache.get(&1, T0).map(|(v, _)| v), Some("a"));
        let almost = T0 + CACHE_LIFETIME - time::Duration::milliseconds(1);
        assert_eq!(cache.get(&1, almost).map(|(v, _)| v), Some("a"));
        assert_eq!(cache.get(&1, T0 + CACHE_LIFETIME), None);

        let deadline = T0 + time::Duration::milliseconds(300);
        cache.put(2, "b", cache.ticket(T0), deadline);
        assert!(
            cache
                .get(&2, deadline - time::Duration::microseconds(1))
                .is_some()
        );
        assert_eq!(cache.get(&2, deadline), None, "the value's own deadline");

        cache.put(3, "c", cache.ticket(T0), far);
        assert_eq!(
            cache.get(&3, T0 - time::Duration::seconds(1)),
            None,
            "clock went back"
        );
    }

    #[tokio::test]
    async fn a_change_ends_every_entry_and_keeps_out_reads_made_before_it() {
        let (changes, cache) = cache(8);
        let far = T0 + time::Duration::days(1);
        cache.put(1, "a", cache.ticket(T0), far);
        let before = cache.ticket(T0);
        changes.changed(CacheTopic::Credentials).await;
        assert_eq!(cache.get(&1, T0), None);
        cache.put(2, "read before the change", before, far);
        assert_eq!(cache.get(&2, T0), None);
        cache.put(3, "c", cache.ticket(T0), far);
        assert!(cache.get(&3, T0).is_some());
        // Another topic's change leaves this one alone.
        changes.changed(CacheTopic::Agents).await;
        assert!(cache.get(&3, T0).is_some());
    }

    #[test]
    fn a_change_whose_writer_went_away_is_announced_all_the_same() {
        let (changes, cache) = cache(8);
        cache.put(1, "a", cache.ticket(T0), T0 + time::Duration::days(1));
        // The write's future dropped before it announced (its client went away).
        drop(changes.pending(CacheTopic::Credentials));
        assert_eq!(cache.get(&1, T0), None);
    }

    #[test]
    fn storing_again_under_the_old_ticket_does_not_extend_the_lifetime() {
        let (_, cache) = cache(8);
        let far = T0 + time::Duration::days(1);
        cache.put(1, "a", cache.ticket(T0), far);
        let later = T0 + time::Duration::milliseconds(900);
        let (_, ticket) = cache.get(&1, later).unwrap();
        cache.put(1, "a, touched", ticket, far);
        assert_eq!(cache.get(&1, later).map(|(v, _)| v), Some("a, touched"));
        assert_eq!(cache.get(&1, T0 + CACHE_LIFETIME), None);
    }

    #[test]
    fn what_is_kept_stays_out_of_debug_output() {
        let cache = ShortCache::new(Changes::local(), CacheTopic::Credentials, NonZeroUsize::MIN);
        cache.put(
            "a-token-hash".to_owned(),
            "a row",
            cache.ticket(T0),
            T0 + time::Duration::days(1),
        );
        let shown = format!("{cache:?}");
        assert!(
            !shown.contains("a-token-hash") && !shown.contains("a row"),
            "{shown}"
        );
        assert!(shown.contains("held: 1"), "{shown}");
    }

    #[test]
    fn the_cache_is_bounded() {
        let (_, cache) = cache(4);
        let far = T0 + time::Duration::days(1);
        for key in 0..100 {
            cache.put(key, "x", cache.ticket(T0), far);
        }
        assert_eq!(cache.len(), 4);
        assert!(cache.get(&99, T0).is_some(), "the newest stay");
        assert!(cache.get(&0, T0).is_none(), "the oldest went");
    }
}
