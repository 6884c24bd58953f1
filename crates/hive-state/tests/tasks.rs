//! The task store on every backend: memory always, Redis when `HIVE_TEST_REDIS_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_proto::{ManualClock, SharedClock};
use hive_state::{
    MemoryTaskStore, RedisClient, RedisTaskStore, StateError, TaskDocument, TaskRecord, TaskStore,
};
use hive_store::PageRequest;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-05-01 10:00:00.250 UTC);
const TTL: Duration = Duration::from_secs(3600);

async fn sqlite(path: &std::path::Path) -> Arc<dyn hive_store::Store> {
    let db = hive_store_sqlite::SqliteStore::open(path, 2).await.unwrap();
    hive_store::Store::migrate(&db).await.unwrap();
    Arc::new(db)
}

/// The backends, and the directory of the SQLite one (kept until the test ends).
async fn stores() -> (Vec<(&'static str, Arc<dyn TaskStore>)>, tempfile::TempDir) {
    let clock: SharedClock = Arc::new(ManualClock::new(T0));
    // The database backend on SQLite; the store crates' own suites cover PostgreSQL.
    let dir = tempfile::tempdir().unwrap();
    let (db, single) = (
        sqlite(&dir.path().join("hive.db")).await,
        sqlite(&dir.path().join("single.db")).await,
    );
    let mut all: Vec<(&'static str, Arc<dyn TaskStore>)> = vec![
        (
            "memory",
            Arc::new(MemoryTaskStore::new(clock.clone(), 10_000)),
        ),
        (
            "db",
            Arc::new(hive_state::DbTaskStore::new(db, clock.clone())),
        ),
        (
            "db, single process",
            Arc::new(hive_state::DbTaskStore::single_process(single, clock)),
        ),
    ];
    if let Some((url, prefix)) = hive_state::test_support::test_redis() {
        all.push((
            "redis",
            Arc::new(RedisTaskStore::new(
                RedisClient::new(&url, &prefix).unwrap(),
            )),
        ));
    }
    (all, dir)
}

fn task(owner: &str, at: OffsetDateTime) -> TaskRecord {
    TaskRecord {
        id: Uuid::now_v7(),
        owner: owner.into(),
        agent_id: "agent-1".into(),
        context_id: "ctx-1".into(),
        status_time: at,
        document: TaskDocument::of(&serde_json::json!({"status": {"state": "TASK_STATE_WORKING"}}))
            .unwrap(),
    }
}

#[tokio::test]
async fn tasks_are_only_their_owners() {
    let (stores, _dir) = stores().await;
    for (backend, store) in stores {
        let mine = task("alice", T0);
        store.put(&mine, TTL).await.unwrap();
        assert_eq!(
            store.get("alice", mine.id).await.unwrap(),
            Some(mine.clone()),
            "{backend}"
        );
        assert_eq!(
            store.get("mallory", mine.id).await.unwrap(),
            None,
            "{backend}"
        );
        let mut stolen = mine.clone();
        stolen.owner = "mallory".into();
        assert!(
            matches!(store.put(&stolen, TTL).await, Err(StateError::Invalid(_))),
            "{backend}"
        );
        assert_eq!(
            store.get("alice", mine.id).await.unwrap(),
            Some(mine.clone()),
            "unchanged"
        );
        let listed = store
            .list("mallory", &PageRequest::first(10).unwrap())
            .await
            .unwrap();
        assert!(listed.items.is_empty(), "{backend}");
    }
}

#[tokio::test]
async fn listing_is_newest_status_first_with_keyset_pages() {
    let (stores, _dir) = stores().await;
    for (backend, store) in stores {
        let mut expected = Vec::new();
        for i in 0..10 {
            // Pairs share a status time: ties are ordered by id, descending.
            let t = task("alice", T0 + time::Duration::seconds(i / 2));
            store.put(&t, TTL).await.unwrap();
            expected.push(t);
        }
        store.put(&task("bob", T0), TTL).await.unwrap();
        expected.sort_by_key(|t| std::cmp::Reverse((t.status_time, t.id)));

        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list("alice", &PageRequest::new(3, cursor.as_deref()).unwrap())
                .await
                .unwrap();
            seen.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{backend}");

        // A status change moves the task to the front, once.
        let mut moved = expected[9].clone();
        moved.status_time = T0 + time::Duration::minutes(5);
        store.put(&moved, TTL).await.unwrap();
        let first = store
            .list("alice", &PageRequest::first(20).unwrap())
            .await
            .unwrap();
        assert_eq!(first.items.len(), 10, "{backend}");
        assert_eq!(first.items[0], moved, "{backend}");
    }
}

#[tokio::test]
async fn memory_tasks_expire_with_the_clock_and_are_bounded() {
    let clock = Arc::new(ManualClock::new(T0));
    let store = MemoryTaskStore::new(clock.clone() as SharedClock, 2);
    let (a, b) = (task("alice", T0), task("alice", T0));
    store.put(&a, Duration::from_secs(60)).await.unwrap();
    store.put(&b, Duration::from_secs(120)).await.unwrap();
    assert!(matches!(
        store.put(&task("alice", T0), TTL).await,
        Err(StateError::Full(_))
    ));
    clock.advance(time::Duration::seconds(61));
    assert_eq!(store.get("alice", a.id).await.unwrap(), None, "expired");
    let listed = store
        .list("alice", &PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert_eq!(listed.items, vec![b.clone()]);
    store.put(&task("alice", T0), TTL).await.unwrap();
}

#[tokio::test]
async fn redis_tasks_carry_their_ttl() {
    let Some((url, prefix)) = hive_state::test_support::test_redis() else {
        return;
    };
    let redis = RedisClient::new(&url, &prefix).unwrap();
    let store = RedisTaskStore::new(redis.clone());
    let t = task("alice", T0);
    store.put(&t, Duration::from_secs(90)).await.unwrap();
    let key = redis.key(&["task", &t.id.to_string()]);
    let ttl: i64 = redis
        .run(async |c| redis::cmd("PTTL").arg(&key).query_async(c).await)
        .await
        .unwrap();
    assert!((80_000..=90_000).contains(&ttl), "{ttl}");
    // A task whose record expired is skipped and its index entry removed.
    let _: i64 = redis
        .run(async |c| redis::cmd("DEL").arg(&key).query_async(c).await)
        .await
        .unwrap();
    let listed = store
        .list("alice", &PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    let index = redis.key(&["tasks", "owner", "alice"]);
    let left: i64 = redis
        .run(async |c| redis::cmd("ZCARD").arg(&index).query_async(c).await)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// As many events as a subscriber that reads none of them keeps.
const KEPT: u64 = hive_state::TaskEvents::CAPACITY as u64;

fn event(task_id: Uuid, seq: u64) -> hive_state::TaskEvent {
    hive_state::TaskEvent {
        task_id,
        seq,
        event: serde_json::json!({"statusUpdate": {"seq": seq}}),
    }
}

/// The first `count` events a subscriber takes; control events (sequence 0: a resync when the
/// subscription to Redis is established) are skipped.
async fn receive_all(
    mut receiver: tokio::sync::broadcast::Receiver<hive_state::TaskEvent>,
    count: u64,
) -> Vec<u64> {
    let mut seqs: Vec<u64> = Vec::new();
    while seqs.len() < usize::try_from(count).unwrap() {
        let next = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .expect("events arrive")
            .unwrap();
        if next.seq != 0 {
            seqs.push(next.seq);
        }
    }
    seqs
}

#[tokio::test]
async fn every_subscriber_sees_a_tasks_events_in_order_in_memory() {
    let events = hive_state::TaskEvents::memory();
    let (task, other) = (Uuid::now_v7(), Uuid::now_v7());
    let receivers: Vec<_> = (0..3).map(|_| events.subscribe(task)).collect();
    let mut unrelated = events.subscribe(other);
    for seq in 1..=KEPT {
        events.publish(event(task, seq)).await.unwrap();
    }
    for receiver in receivers {
        assert_eq!(
            receive_all(receiver, KEPT).await,
            (1..=KEPT).collect::<Vec<_>>()
        );
    }
    assert!(
        unrelated.try_recv().is_err(),
        "other tasks' subscribers get nothing"
    );
}

/// A subscriber that falls further behind than the channel keeps is told so (and the gateway
/// then reads the stored task again), rather than missing events without knowing.
#[tokio::test]
async fn a_subscriber_that_falls_behind_is_told_it_lagged() {
    let events = hive_state::TaskEvents::memory();
    let task = Uuid::now_v7();
    let mut behind = events.subscribe(task);
    for seq in 1..=KEPT + 1 {
        events.publish(event(task, seq)).await.unwrap();
    }
    assert!(matches!(
        behind.recv().await,
        Err(tokio::sync::broadcast::error::RecvError::Lagged(1))
    ));
    assert_eq!(
        behind.recv().await.unwrap().seq,
        2,
        "the oldest one was dropped"
    );
}

#[tokio::test]
async fn a_tasks_events_reach_subscribers_on_another_replica_in_order() {
    let Some((url, prefix)) = hive_state::test_support::test_redis() else {
        return;
    };
    let replica_a = hive_state::TaskEvents::redis(RedisClient::new(&url, &prefix).unwrap());
    let replica_b = hive_state::TaskEvents::redis(RedisClient::new(&url, &prefix).unwrap());
    replica_a.ready().await;
    replica_b.ready().await;
    let task = Uuid::now_v7();
    let on_a = replica_a.subscribe(task);
    let on_b = [replica_b.subscribe(task), replica_b.subscribe(task)];
    for seq in 1..=KEPT {
        replica_a.publish(event(task, seq)).await.unwrap();
    }
    let expected: Vec<u64> = (1..=KEPT).collect();
    assert_eq!(receive_all(on_a, KEPT).await, expected);
    for receiver in on_b {
        assert_eq!(receive_all(receiver, KEPT).await, expected);
    }
    replica_a.close();
    replica_b.close();
}

/// The publisher's own subscribers get each of its events once: directly, not again when it
/// comes back through Redis.
#[tokio::test]
async fn a_local_subscriber_gets_each_event_once_on_redis() {
    let Some((url, prefix)) = hive_state::test_support::test_redis() else {
        return;
    };
    let here = hive_state::TaskEvents::redis(RedisClient::new(&url, &prefix).unwrap());
    let there = hive_state::TaskEvents::redis(RedisClient::new(&url, &prefix).unwrap());
    here.ready().await;
    there.ready().await;
    let task = Uuid::now_v7();
    let local = here.subscribe(task);
    for seq in 1..KEPT {
        here.publish(event(task, seq)).await.unwrap();
    }
    // Redis ran those publications before this one, and sends this process their copies
    // before this one's: when it arrives, any copy of this process's own events has too.
    there.publish(event(task, KEPT)).await.unwrap();
    assert_eq!(
        receive_all(local, KEPT).await,
        (1..=KEPT).collect::<Vec<_>>()
    );
    here.close();
    there.close();
}

/// A discarded task is gone from reads and listings, another owner cannot discard it, and a
/// late write of it (one still in flight) is refused, on every backend.
#[tokio::test]
async fn a_discarded_task_stays_gone() {
    let (stores, _dir) = stores().await;
    for (backend, store) in stores {
        let kept = task("alice", T0);
        store.put(&kept, TTL).await.unwrap();
        store.discard("mallory", kept.id, TTL).await.unwrap();
        assert!(
            store.get("alice", kept.id).await.unwrap().is_some(),
            "{backend}"
        );

        let landed = task("alice", T0);
        store.put(&landed, TTL).await.unwrap();
        store.discard("alice", landed.id, TTL).await.unwrap();
        assert_eq!(
            store.get("alice", landed.id).await.unwrap(),
            None,
            "{backend}"
        );
        let page = PageRequest::first(10).unwrap();
        let listed = store.list("alice", &page).await.unwrap();
        assert_eq!(listed.items, vec![kept.clone()], "{backend}");

        // The write that was in flight lands after the discard: refused.
        let late = task("alice", T0);
        store.discard("alice", late.id, TTL).await.unwrap();
        assert!(
            matches!(store.put(&late, TTL).await, Err(StateError::Invalid(_))),
            "{backend}"
        );
        assert_eq!(
            store.get("alice", late.id).await.unwrap(),
            None,
            "{backend}"
        );
        // The write that landed before its discard cannot come back either.
        assert!(
            matches!(store.put(&landed, TTL).await, Err(StateError::Invalid(_))),
            "{backend}"
        );
        let listed = store.list("alice", &page).await.unwrap();
        assert_eq!(listed.items, vec![kept.clone()], "{backend}");
    }
}

/// In memory the tombstones take places like tasks: bounded with them, and freed when they
/// expire. A discard that finds no room is not refused: nothing can land later in memory.
#[tokio::test]
async fn memory_tombstones_are_bounded_and_expire() {
    let clock = Arc::new(ManualClock::new(T0));
    let store = MemoryTaskStore::new(clock.clone() as SharedClock, 2);
    let (a, b, c) = (task("alice", T0), task("alice", T0), task("alice", T0));
    store.put(&a, TTL).await.unwrap();
    store
        .discard("alice", b.id, Duration::from_secs(60))
        .await
        .unwrap();
    store.discard("alice", c.id, TTL).await.unwrap();
    assert!(
        matches!(store.put(&c, TTL).await, Err(StateError::Full(_))),
        "the tombstone holds its place"
    );
    assert!(matches!(
        store.put(&b, TTL).await,
        Err(StateError::Invalid(_))
    ));
    clock.advance(time::Duration::seconds(61));
    store.put(&b, TTL).await.unwrap();
    assert_eq!(store.get("alice", b.id).await.unwrap(), Some(b));
}

/// Concurrent writes to the database share a transaction; one the database refuses (over the
/// schema's bound) fails alone, not the writes that shared its batch.
#[tokio::test]
async fn a_refused_database_write_does_not_fail_the_others_of_its_batch() {
    let (stores, _dir) = stores().await;
    let (_, db) = stores
        .into_iter()
        .find(|(backend, _)| *backend == "db")
        .unwrap();
    let mut oversized = task("alice", T0);
    oversized.document =
        TaskDocument::of(&serde_json::json!({ "text": "x".repeat(4_194_305) })).unwrap();
    let writes: Vec<_> = (0..20)
        .map(|n| {
            let db = Arc::clone(&db);
            let record = if n == 10 {
                oversized.clone()
            } else {
                task("alice", T0)
            };
            tokio::spawn(async move { (db.put(&record, TTL).await, record.id) })
        })
        .collect();
    for (n, write) in writes.into_iter().enumerate() {
        let (written, id) = write.await.unwrap();
        if n == 10 {
            assert!(written.is_err(), "the oversized task is refused");
            assert_eq!(db.get("alice", id).await.unwrap(), None);
        } else {
            written.unwrap();
            assert!(db.get("alice", id).await.unwrap().is_some(), "task {n}");
        }
    }
}

/// A process alone on its database reads back what it wrote last without a query (here the
/// database is closed under it), and still never shows a task to another owner nor one it
/// discarded.
#[tokio::test]
async fn a_single_process_reads_its_recent_tasks_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(&dir.path().join("hive.db")).await;
    let clock: SharedClock = Arc::new(ManualClock::new(T0));
    let single = hive_state::DbTaskStore::single_process(Arc::clone(&db), clock);
    let (kept, discarded, contested) = (task("alice", T0), task("alice", T0), task("alice", T0));
    for task in [&kept, &discarded, &contested] {
        single.put(task, TTL).await.unwrap();
    }
    single.discard("alice", discarded.id, TTL).await.unwrap();
    assert_eq!(single.get("alice", discarded.id).await.unwrap(), None);
    // A write the database refuses leaves nothing in memory to answer for the task.
    let stolen = TaskRecord {
        owner: "mallory".into(),
        ..contested.clone()
    };
    assert!(single.put(&stolen, TTL).await.is_err());
    assert_eq!(
        single.get("alice", contested.id).await.unwrap(),
        Some(contested.clone())
    );
    db.close().await;
    assert_eq!(single.get("mallory", kept.id).await.unwrap(), None);
    assert_eq!(single.get("alice", kept.id).await.unwrap(), Some(kept));
    assert!(
        single.get("alice", discarded.id).await.is_err(),
        "a discarded task is not kept: the closed database is asked"
    );
    assert!(
        single.get("alice", contested.id).await.is_err(),
        "nor one whose last write was refused"
    );
}
