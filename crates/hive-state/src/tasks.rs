//! The A2A task store: tasks kept as documents with their owner, agent, context id and status
//! time, so that a caller's tasks can be listed newest status first with keyset paging, and
//! forgotten after `A2A_TASK_TTL_SECONDS`. In memory, on Redis, or in the database.

use crate::group_commit::{BatchWriter, GroupCommit, Limits};
use crate::{RedisClient, StateError};
use async_trait::async_trait;
use hive_proto::SharedClock;
use hive_store::{Cursor, Page, PageRequest, Store, TaskRow};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// One task. `document` is the A2A task as the gateway serves it; the store does not read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRecord {
    pub id: Uuid,
    /// The principal the task belongs to; no one else may read it.
    pub owner: String,
    pub agent_id: String,
    pub context_id: String,
    /// When the status last changed (the order of listings).
    #[serde(with = "time::serde::rfc3339")]
    pub status_time: OffsetDateTime,
    pub document: TaskDocument,
}

/// A task's document as JSON text, kept as the gateway wrote it: the store passes it through
/// without building a tree of it (a read parses it once, into the gateway's own type).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskDocument(Box<serde_json::value::RawValue>);

impl TaskDocument {
    /// `value` serialised. Fails only for a value serde_json cannot write (a map with keys
    /// that are not strings).
    pub fn of<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// `text` if it is one JSON value.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text).map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

// Two documents are equal when their text is: the store gives back what it was given.
impl PartialEq for TaskDocument {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TaskDocument {}

#[async_trait]
pub trait TaskStore: Send + Sync + std::fmt::Debug {
    /// Creates or replaces a task for `ttl`. Refused ([`StateError::Invalid`]) if the id belongs
    /// to another owner.
    async fn put(&self, task: &TaskRecord, ttl: Duration) -> Result<(), StateError>;

    /// The task if it exists and belongs to `owner` (another owner's task is "not found").
    async fn get(&self, owner: &str, id: Uuid) -> Result<Option<TaskRecord>, StateError>;

    /// `owner`'s tasks, newest status first (ties by id, descending).
    async fn list(&self, owner: &str, page: &PageRequest) -> Result<Page<TaskRecord>, StateError>;

    /// Forgets `owner`'s task `id` whose first write was not acknowledged (it timed out: it may
    /// still land). The task is replaced by a tombstone for `ttl` that no read or listing
    /// returns and that a write of the id does not replace (refused, [`StateError::Invalid`]),
    /// so a call that was refused leaves no task behind, whichever of the two the store runs
    /// first. Another owner's task is left alone. In one step on every backend.
    async fn discard(&self, owner: &str, id: Uuid, ttl: Duration) -> Result<(), StateError>;
}

fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn cursor_of(task: &TaskRecord) -> Cursor {
    Cursor {
        at: task.status_time,
        id: task.id,
    }
}

fn not_yours() -> StateError {
    StateError::Invalid("this task id belongs to another owner".into())
}

fn discarded() -> StateError {
    StateError::Invalid("this task was discarded".into())
}

fn expiry(now: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    now.saturating_add(time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX))
}

/// The position of a task in its owner's index: ordered as `(status time, id)`.
type Position = (i64, Uuid);

/// What an id holds in memory, until it expires.
#[derive(Debug)]
enum Slot {
    Task(TaskRecord),
    /// A discarded task (see [`TaskStore::discard`]): it takes a place like a task, so the
    /// tombstones are bounded with the tasks.
    Discarded,
}

#[derive(Debug, Default)]
struct MemoryTasks {
    slots: HashMap<Uuid, (Slot, OffsetDateTime)>,
    by_owner: HashMap<String, BTreeSet<Position>>,
}

impl MemoryTasks {
    fn remove(&mut self, id: Uuid) {
        if let Some((Slot::Task(task), _)) = self.slots.remove(&id)
            && let Some(index) = self.by_owner.get_mut(&task.owner)
        {
            index.remove(&(micros(task.status_time), id));
            if index.is_empty() {
                self.by_owner.remove(&task.owner);
            }
        }
    }

    fn prune(&mut self, now: OffsetDateTime) {
        let expired: Vec<Uuid> = self
            .slots
            .iter()
            .filter(|(_, (_, expires))| *expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.remove(id);
        }
    }
}

/// Tasks in this process, bounded in number (tombstones included); expired ones are pruned when
/// room is needed and never returned.
#[derive(Debug)]
pub struct MemoryTaskStore {
    clock: SharedClock,
    max_tasks: usize,
    inner: Mutex<MemoryTasks>,
}

impl MemoryTaskStore {
    pub fn new(clock: SharedClock, max_tasks: usize) -> Self {
        Self {
            clock,
            max_tasks: max_tasks.max(1),
            inner: Mutex::new(MemoryTasks::default()),
        }
    }

    /// Frees `id` for a new slot: an expired slot or `replaceable` one is removed; with none,
    /// room is made among the expired ones, or the store is full.
    fn make_room(
        &self,
        inner: &mut MemoryTasks,
        id: Uuid,
        now: OffsetDateTime,
        replaceable: impl FnOnce(&Slot) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        match inner.slots.get(&id) {
            Some((_, expires)) if *expires <= now => inner.remove(id),
            Some((slot, _)) => {
                replaceable(slot)?;
                inner.remove(id);
            }
            None if inner.slots.len() >= self.max_tasks => {
                inner.prune(now);
                if inner.slots.len() >= self.max_tasks {
                    return Err(StateError::Full("task store"));
                }
            }
            None => {}
        }
        Ok(())
    }
}

#[async_trait]
impl TaskStore for MemoryTaskStore {
    async fn put(&self, task: &TaskRecord, ttl: Duration) -> Result<(), StateError> {
        let now = self.clock.now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.make_room(&mut inner, task.id, now, |slot| match slot {
            Slot::Task(existing) if existing.owner == task.owner => Ok(()),
            Slot::Task(_) => Err(not_yours()),
            Slot::Discarded => Err(discarded()),
        })?;
        inner
            .by_owner
            .entry(task.owner.clone())
            .or_default()
            .insert((micros(task.status_time), task.id));
        inner
            .slots
            .insert(task.id, (Slot::Task(task.clone()), expiry(now, ttl)));
        Ok(())
    }

    async fn get(&self, owner: &str, id: Uuid) -> Result<Option<TaskRecord>, StateError> {
        let now = self.clock.now();
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(match inner.slots.get(&id) {
            Some((Slot::Task(task), expires)) if *expires > now && task.owner == owner => {
                Some(task.clone())
            }
            _ => None,
        })
    }

    /// The tombstone keeps the contract the same as on the other backends. In memory no write
    /// is ever left in flight, though: when the store is full, none is needed (and the discard
    /// is not refused, which would only have it retried).
    async fn discard(&self, owner: &str, id: Uuid, ttl: Duration) -> Result<(), StateError> {
        let now = self.clock.now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.make_room(&mut inner, id, now, |slot| match slot {
            Slot::Task(task) if task.owner != owner => Err(not_yours()),
            _ => Ok(()),
        });
        // Refused: another owner's task, left alone, or a full store, where none is needed.
        if room.is_ok() {
            inner.slots.insert(id, (Slot::Discarded, expiry(now, ttl)));
        }
        Ok(())
    }

    async fn list(&self, owner: &str, page: &PageRequest) -> Result<Page<TaskRecord>, StateError> {
        let now = self.clock.now();
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(index) = inner.by_owner.get(owner) else {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        let upper = page.after().map(|c| (micros(c.at), c.id));
        let rows: Vec<TaskRecord> = index
            .iter()
            .rev()
            .filter(|position| upper.is_none_or(|bound| **position < bound))
            .filter_map(|(_, id)| match inner.slots.get(id) {
                Some((Slot::Task(task), expires)) if *expires > now => Some(task.clone()),
                _ => None,
            })
            .take(usize::try_from(page.limit()).unwrap_or(usize::MAX) + 1)
            .collect();
        Ok(Page::from_overfetch(rows, page.limit(), cursor_of))
    }
}

/// Replaces a task and its place in the owner's index atomically; refuses another owner's id.
/// The index is a sorted set of `<status micros, zero-padded>:<id>` members, all of score 0, so
/// its lexical order is the listing order and a cursor is an exact bound.
/// A discarded task (see [`DISCARD_SCRIPT`]) is never written again: returns 2.
const PUT_SCRIPT: &str = r"
if redis.call('HEXISTS', KEYS[1], 'discarded') == 1 then return 2 end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[2] then return 0 end
local old = redis.call('HGET', KEYS[1], 'member')
if old then redis.call('ZREM', KEYS[2], old) end
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'owner', ARGV[2], 'member', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return 1
";

/// Removes a task of the owner ARGV[1] (and its place in the owner's index) and leaves in its
/// key a tombstone for ARGV[2] ms, which [`PUT_SCRIPT`] refuses to overwrite. Another owner's
/// task is left alone (returns 0).
const DISCARD_SCRIPT: &str = r"
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
local member = redis.call('HGET', KEYS[1], 'member')
if member then redis.call('ZREM', KEYS[2], member) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'discarded', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

#[derive(Debug, Clone)]
pub struct RedisTaskStore {
    redis: RedisClient,
    put: redis::Script,
    discard: redis::Script,
}

impl RedisTaskStore {
    pub fn new(redis: RedisClient) -> Self {
        Self {
            redis,
            put: redis::Script::new(PUT_SCRIPT),
            discard: redis::Script::new(DISCARD_SCRIPT),
        }
    }

    fn task_key(&self, id: Uuid) -> String {
        self.redis.key(&["task", &id.to_string()])
    }

    fn owner_key(&self, owner: &str) -> String {
        self.redis.key(&["tasks", "owner", owner])
    }
}

/// Micros are non-negative for any status time after 1970; padding keeps the lexical order.
fn member(task_micros: i64, id: Uuid) -> String {
    format!("{:020}:{}", task_micros.max(0), id)
}

fn decode(raw: &str) -> Result<TaskRecord, StateError> {
    serde_json::from_str(raw)
        .map_err(|_| StateError::Invalid("a stored task does not parse".into()))
}

#[async_trait]
impl TaskStore for RedisTaskStore {
    async fn put(&self, task: &TaskRecord, ttl: Duration) -> Result<(), StateError> {
        let record = serde_json::to_string(task)
            .map_err(|_| StateError::Invalid("the task does not serialise".into()))?;
        let (task_key, owner_key) = (self.task_key(task.id), self.owner_key(&task.owner));
        let position = member(micros(task.status_time), task.id);
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let script = &self.put;
        let stored: i64 = self
            .redis
            .run(async |c| {
                script
                    .key(&task_key)
                    .key(&owner_key)
                    .arg(&record)
                    .arg(&task.owner)
                    .arg(&position)
                    .arg(millis)
                    .invoke_async(c)
                    .await
            })
            .await?;
        match stored {
            1 => Ok(()),
            2 => Err(discarded()),
            _ => Err(not_yours()),
        }
    }

    async fn discard(&self, owner: &str, id: Uuid, ttl: Duration) -> Result<(), StateError> {
        let (task_key, owner_key) = (self.task_key(id), self.owner_key(owner));
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let script = &self.discard;
        let _: i64 = self
            .redis
            .run(async |c| {
                script
                    .key(&task_key)
                    .key(&owner_key)
                    .arg(owner)
                    .arg(millis)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn get(&self, owner: &str, id: Uuid) -> Result<Option<TaskRecord>, StateError> {
        let key = self.task_key(id);
        let raw: Option<String> = self
            .redis
            .run(async |c| {
                redis::cmd("HGET")
                    .arg(&key)
                    .arg("record")
                    .query_async(c)
                    .await
            })
            .await?;
        match raw {
            Some(raw) => Ok(Some(decode(&raw)?).filter(|task| task.owner == owner)),
            None => Ok(None),
        }
    }

    async fn list(&self, owner: &str, page: &PageRequest) -> Result<Page<TaskRecord>, StateError> {
        let owner_key = self.owner_key(owner);
        let upper = page.after().map_or_else(
            || "+".to_owned(),
            |c| format!("({}", member(micros(c.at), c.id)),
        );
        let mut rows = Vec::new();
        let mut bound = upper;
        let want = usize::try_from(page.limit()).unwrap_or(usize::MAX) + 1;
        // Members whose task expired are skipped (and removed); fetch until the page is full.
        while rows.len() < want {
            let batch = want - rows.len();
            let members: Vec<String> = self
                .redis
                .run(async |c| {
                    redis::cmd("ZREVRANGEBYLEX")
                        .arg(&owner_key)
                        .arg(&bound)
                        .arg("-")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(batch)
                        .query_async(c)
                        .await
                })
                .await?;
            let Some(last) = members.last() else { break };
            bound = format!("({last}");
            let exhausted = members.len() < batch;
            for position in members {
                let Some(id) = position
                    .split_once(':')
                    .and_then(|(_, id)| Uuid::parse_str(id).ok())
                else {
                    continue;
                };
                match self.get(owner, id).await? {
                    Some(task) => rows.push(task),
                    None => {
                        let _: i64 = self
                            .redis
                            .run(async |c| {
                                redis::cmd("ZREM")
                                    .arg(&owner_key)
                                    .arg(&position)
                                    .query_async(c)
                                    .await
                            })
                            .await?;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(Page::from_overfetch(rows, page.limit(), cursor_of))
    }
}

/// Tasks in the database (`A2A_TASK_STORE=db`): durable across restarts of every replica.
/// Writes are group-committed: the tasks of concurrent calls are written in one transaction.
#[derive(Debug, Clone)]
pub struct DbTaskStore {
    store: Arc<dyn Store>,
    clock: SharedClock,
    writes: Arc<GroupCommit<TaskWriter>>,
    recent: Option<Arc<Recent>>,
}

impl DbTaskStore {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock) -> Self {
        let writer = TaskWriter {
            store: Arc::clone(&store),
            clock: Arc::clone(&clock),
        };
        Self {
            store,
            clock,
            writes: Arc::new(GroupCommit::new("tasks", writer, Limits::default())),
            recent: None,
        }
    }

    /// For a database no other process writes (SQLite: the data directory is locked to one
    /// process): the tasks this process wrote last are also kept in memory, so reading one back
    /// (`GetTask` while a client polls) needs no query. Every write passes through this
    /// process, so what it keeps is what the database holds.
    pub fn single_process(store: Arc<dyn Store>, clock: SharedClock) -> Self {
        Self {
            recent: Some(Arc::new(Recent {
                rows: Mutex::new(lru::LruCache::new(RECENT_TASKS)),
                discards: AtomicU64::new(0),
            })),
            ..Self::new(store, clock)
        }
    }
}

/// Tasks a single process keeps in memory (their stored rows: about a task's JSON each).
const RECENT_TASKS: std::num::NonZeroUsize = std::num::NonZeroUsize::MIN.saturating_add(1_023);

/// The rows this process wrote last, as the database holds them. A discard (rare: the first
/// write of a task failed) takes its task out and counts itself; a write that overlapped any
/// discard does not keep its row, as it cannot tell which of the two the database applied
/// last. What is not kept is read from the database.
#[derive(Debug)]
struct Recent {
    rows: Mutex<lru::LruCache<Uuid, TaskRow>>,
    discards: AtomicU64,
}

impl Recent {
    fn rows(&self) -> std::sync::MutexGuard<'_, lru::LruCache<Uuid, TaskRow>> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes a batch of task puts in one transaction.
struct TaskWriter {
    store: Arc<dyn Store>,
    clock: SharedClock,
}

impl BatchWriter for TaskWriter {
    type Item = TaskRow;
    type Written = Result<bool, hive_store::StoreError>;

    async fn write(&self, rows: &[TaskRow]) -> Result<Vec<Self::Written>, hive_store::StoreError> {
        let now = self.clock.now();
        let tasks = self.store.tasks();
        match tasks.put_batch(rows, now).await {
            Ok(done) => Ok(done.into_iter().map(Ok).collect()),
            // One row the database refuses must not fail the others' writes: each alone.
            Err(_) if rows.len() > 1 => {
                let mut each = Vec::with_capacity(rows.len());
                for row in rows {
                    each.push(tasks.put(row, now).await);
                }
                Ok(each)
            }
            Err(error) => Err(error),
        }
    }
}

fn from_row(row: TaskRow) -> Result<TaskRecord, StateError> {
    Ok(TaskRecord {
        id: row.id,
        owner: row.owner,
        agent_id: row.agent_id,
        context_id: row.context_id,
        status_time: row.status_time,
        document: TaskDocument::parse(row.document)
            .map_err(|_| StateError::Invalid("a stored task does not parse".into()))?,
    })
}

fn store_error(error: hive_store::StoreError) -> StateError {
    match error {
        hive_store::StoreError::Invalid(why) => StateError::Invalid(why),
        other => StateError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl TaskStore for DbTaskStore {
    async fn put(&self, task: &TaskRecord, ttl: Duration) -> Result<(), StateError> {
        let now = self.clock.now();
        let row = TaskRow {
            id: task.id,
            owner: task.owner.clone(),
            agent_id: task.agent_id.clone(),
            context_id: task.context_id.clone(),
            status_time: task.status_time,
            document: task.document.as_str().to_owned(),
            expires_at: expiry(now, ttl),
        };
        let kept = self
            .recent
            .as_ref()
            .map(|recent| (recent.discards.load(Ordering::SeqCst), row.clone()));
        let written = match self.writes.submit(row).await {
            Ok(written) => written.map_err(store_error),
            Err(why) => Err(StateError::Unavailable(format!("task not written: {why}"))),
        };
        if let (Some(recent), Some((discards, row))) = (&self.recent, kept) {
            let mut rows = recent.rows();
            if matches!(written, Ok(true)) && recent.discards.load(Ordering::SeqCst) == discards {
                rows.put(row.id, row);
            } else {
                // Refused, or not known to be written: the database answers for it.
                rows.pop(&row.id);
            }
        }
        match written? {
            true => Ok(()),
            false => Err(StateError::Invalid(
                "this task id belongs to another owner, or was discarded".into(),
            )),
        }
    }

    async fn get(&self, owner: &str, id: Uuid) -> Result<Option<TaskRecord>, StateError> {
        let now = self.clock.now();
        if let Some(recent) = &self.recent {
            let kept = match recent.rows().get(&id) {
                Some(row) if row.expires_at > now => {
                    Some((row.owner == owner).then(|| row.clone()))
                }
                _ => None,
            };
            if let Some(row) = kept {
                return row.map(from_row).transpose();
            }
        }
        let row = self
            .store
            .tasks()
            .get(owner, id, now)
            .await
            .map_err(store_error)?;
        row.map(from_row).transpose()
    }

    /// One statement: a write whose connection failed may still commit, before or after it.
    async fn discard(&self, owner: &str, id: Uuid, ttl: Duration) -> Result<(), StateError> {
        let now = self.clock.now();
        let until = expiry(now, ttl);
        let discarded = self
            .store
            .tasks()
            .discard(owner, id, now, until)
            .await
            .map_err(store_error);
        if let Some(recent) = &self.recent {
            // Under the lock, so that no write in flight keeps its row after this.
            let mut rows = recent.rows();
            recent.discards.fetch_add(1, Ordering::SeqCst);
            rows.pop(&id);
        }
        discarded
    }

    async fn list(&self, owner: &str, page: &PageRequest) -> Result<Page<TaskRecord>, StateError> {
        let rows = self
            .store
            .tasks()
            .list(owner, page, self.clock.now())
            .await
            .map_err(store_error)?;
        Ok(Page {
            items: rows
                .items
                .into_iter()
                .map(from_row)
                .collect::<Result<_, _>>()?,
            next_cursor: rows.next_cursor,
        })
    }
}
