//! A real Redis killed mid-run and started again: nothing panics, authentication limits keep
//! limiting per node, replay checks fail closed, and everything recovers on its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_proto::ManualClock;
use hive_state::test_support::OwnRedis;
use hive_state::{
    MemoryLimiter, Policies, RateLimiter, RedisClient, RedisLimiter, RedisReplayCache, ReplayCache,
    ResilientLimiter, StateError,
};
use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;

/// Polls `ready` until it holds (Redis starting, or reconnecting), under a deadline.
async fn eventually(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let waiting = async {
        while !ready().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 20 s"));
}

#[tokio::test]
async fn redis_killed_and_restarted() {
    if !OwnRedis::available() {
        return;
    }
    let mut redis = OwnRedis::start();
    let client = RedisClient::new(&redis.url(), "hive-outage").unwrap();
    let local = Arc::new(MemoryLimiter::new(
        Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC))),
        10_000,
    ));
    let limiter = ResilientLimiter::new(Arc::new(RedisLimiter::new(client.clone())), local);
    let replay = RedisReplayCache::new(client);
    let policies = Policies::default().with_limits("login=3/15m").unwrap();
    let (login, api) = (policies.get("login").unwrap(), policies.get("api").unwrap());

    eventually("redis answering", async || {
        limiter.check(api, "probe").await.is_ok() && !limiter.is_degraded()
    })
    .await;
    assert!(limiter.check(login, "ip").await.unwrap().allowed);
    assert!(
        replay
            .consume("before", Duration::from_secs(60))
            .await
            .unwrap()
    );

    redis.kill();
    // Authentication keeps limiting, per node: a fresh local count of 3, then refusals.
    let mut allowed = 0;
    for _ in 0..5 {
        if limiter.check(login, "ip").await.unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "the per-node limiter took over");
    assert!(limiter.is_degraded());
    let refused = replay.consume("during", Duration::from_secs(60)).await;
    assert!(
        matches!(refused, Err(StateError::Unavailable(_))),
        "fail closed: {refused:?}"
    );

    let _restarted = OwnRedis::start_on(redis.port);
    eventually("recovery", async || {
        limiter.check(api, "probe").await.is_ok() && !limiter.is_degraded()
    })
    .await;
    assert!(
        replay
            .consume("after", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        !replay
            .consume("after", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let counters = &limiter.counters;
    assert!(
        counters
            .local_fallback_decisions
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 5
    );
}

/// Task events across a Redis restart: a publisher's own subscribers get its events even while
/// Redis is down, and every subscriber is told to re-read its task once the subscription is
/// back (what was published meanwhile never reached it).
#[tokio::test]
async fn task_subscribers_miss_nothing_across_a_redis_restart() {
    if !OwnRedis::available() {
        return;
    }
    let mut redis = OwnRedis::start();
    let port = redis.port;
    let replica =
        |url: &str| hive_state::TaskEvents::redis(RedisClient::new(url, "hive-events").unwrap());
    eventually("Redis starts", async || {
        RedisClient::new(&redis.url(), "probe")
            .unwrap()
            .publish("probe", b"x")
            .await
            .is_ok()
    })
    .await;
    let (a, b) = (replica(&redis.url()), replica(&redis.url()));
    a.ready().await;
    b.ready().await;
    let task = uuid::Uuid::now_v7();
    let (mut on_a, mut on_b) = (a.subscribe(task), b.subscribe(task));

    redis.kill();
    let event = hive_state::TaskEvent {
        task_id: task,
        seq: 1,
        event: serde_json::json!({"statusUpdate": {}}),
    };
    assert!(a.publish(event.clone()).await.is_err(), "Redis is down");
    assert_eq!(
        on_a.try_recv().unwrap(),
        event,
        "delivered in its own process"
    );

    let _redis = OwnRedis::start_on(port);
    let resynced = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if on_b.recv().await.unwrap().is_resync() {
                break;
            }
        }
    })
    .await;
    assert!(
        resynced.is_ok(),
        "the other replica's subscriber is told to re-read"
    );
    a.close();
    b.close();
}
