//! The same behaviour from every backend: memory always, Redis when `HIVE_TEST_REDIS_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_proto::{ManualClock, SharedClock};
use hive_state::{
    Claims, MemoryClaims, MemoryLimiter, MemoryReplayCache, OutageMode, Policies, Policy, Quota,
    RateLimiter, RedisClaims, RedisClient, RedisLimiter, RedisReplayCache, ReplayCache,
    ResilientClaims, ResilientLimiter, StateError,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use time::macros::datetime;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)))
}

/// A client on the test Redis with a prefix of its own, so tests never share keys (`None`
/// without `HIVE_TEST_REDIS_URL`, which fails the test under CI).
fn redis() -> Option<RedisClient> {
    let (url, prefix) = hive_state::test_support::test_redis()?;
    Some(RedisClient::new(&url, &prefix).unwrap())
}

fn limiters() -> Vec<(&'static str, Arc<dyn RateLimiter>)> {
    let mut all: Vec<(&'static str, Arc<dyn RateLimiter>)> =
        vec![("memory", Arc::new(MemoryLimiter::new(clock(), 10_000)))];
    if let Some(redis) = redis() {
        all.push(("redis", Arc::new(RedisLimiter::new(redis))));
    }
    all
}

fn replay_caches() -> Vec<(&'static str, Arc<dyn ReplayCache>)> {
    let mut all: Vec<(&'static str, Arc<dyn ReplayCache>)> =
        vec![("memory", Arc::new(MemoryReplayCache::new(clock(), 10_000)))];
    if let Some(redis) = redis() {
        all.push(("redis", Arc::new(RedisReplayCache::new(redis))));
    }
    all
}

fn policy(name: &'static str, limit: u32, period: Duration) -> Policy {
    let mut policy = Policies::default().get("api").unwrap().clone();
    policy.name = name;
    policy.quota = Quota { limit, period };
    policy
}

#[tokio::test]
async fn a_burst_passes_then_the_limit_holds_with_a_retry_time() {
    // An hour-long window: the test never comes near crossing it.
    let policy = policy("api", 5, Duration::from_secs(3600));
    for (backend, limiter) in limiters() {
        for expected in (0..5).rev() {
            let decision = limiter.check(&policy, "10.0.0.1").await.unwrap();
            assert!(decision.allowed, "{backend}");
            assert_eq!(decision.remaining, expected, "{backend}");
            assert_eq!(decision.limit, 5);
        }
        let refused = limiter.check(&policy, "10.0.0.1").await.unwrap();
        assert!(!refused.allowed, "{backend}");
        assert_eq!(refused.remaining, 0);
        let retry = refused.retry_after.as_secs_f64();
        assert!(
            (700.0..=720.0).contains(&retry),
            "{backend}: one interval, got {retry}"
        );
        // Another key and another policy are counted apart.
        assert!(
            limiter.check(&policy, "10.0.0.2").await.unwrap().allowed,
            "{backend}"
        );
        let other = self::policy("health", 5, Duration::from_secs(3600));
        assert!(
            limiter.check(&other, "10.0.0.1").await.unwrap().allowed,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn concurrent_requests_never_exceed_the_limit() {
    let policy = policy("api", 10, Duration::from_secs(3600));
    for (backend, limiter) in limiters() {
        let checks = (0..50).map(|_| {
            let limiter = limiter.clone();
            let policy = policy.clone();
            tokio::spawn(async move { limiter.check(&policy, "racer").await.unwrap().allowed })
        });
        let allowed = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        assert_eq!(allowed, 10, "{backend}");
    }
}

#[tokio::test]
async fn the_memory_limiter_refills_with_the_clock_and_prunes_idle_keys() {
    let clock = clock();
    let limiter = MemoryLimiter::new(clock.clone() as SharedClock, 1_000_000);
    let policy = policy("api", 2, Duration::from_secs(60));
    assert!(limiter.check(&policy, "k").await.unwrap().allowed);
    assert!(limiter.check(&policy, "k").await.unwrap().allowed);
    assert!(!limiter.check(&policy, "k").await.unwrap().allowed);
    clock.advance(time::Duration::seconds(30));
    assert!(
        limiter.check(&policy, "k").await.unwrap().allowed,
        "one interval refills one"
    );

    for i in 0..10_000 {
        limiter.check(&policy, &format!("flood-{i}")).await.unwrap();
    }
    assert_eq!(limiter.len(), 10_001);
    clock.advance(time::Duration::seconds(61));
    assert!(limiter.is_empty(), "keys idle for a whole period are gone");
}

#[tokio::test]
async fn a_full_memory_limiter_refuses_new_keys_instead_of_forgetting() {
    let limiter = MemoryLimiter::new(clock(), 16);
    let policy = policy("api", 2, Duration::from_secs(60));
    let mut refused = 0;
    for i in 0..100 {
        match limiter.check(&policy, &format!("k{i}")).await {
            Ok(decision) => assert!(decision.allowed),
            Err(StateError::Full(_)) => refused += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert!(
        refused > 0 && limiter.len() <= 16,
        "bounded: {} keys",
        limiter.len()
    );
}

#[tokio::test]
async fn of_a_hundred_concurrent_replays_exactly_one_succeeds() {
    for (backend, cache) in replay_caches() {
        let attempts = (0..100).map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.consume("jti-1", Duration::from_secs(300)).await })
        });
        let firsts = futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap().as_ref().unwrap())
            .count();
        assert_eq!(firsts, 1, "{backend}");
        assert!(
            cache
                .consume("jti-2", Duration::from_secs(300))
                .await
                .unwrap(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn the_memory_replay_cache_forgets_after_the_ttl_and_is_bounded() {
    let clock = clock();
    let cache = MemoryReplayCache::new(clock.clone() as SharedClock, 3);
    let ttl = Duration::from_secs(60);
    assert!(cache.consume("a", ttl).await.unwrap());
    assert!(!cache.consume("a", ttl).await.unwrap());
    assert!(cache.consume("b", ttl).await.unwrap());
    assert!(cache.consume("c", ttl).await.unwrap());
    assert_eq!(
        cache.consume("d", ttl).await,
        Err(StateError::Full("replay cache"))
    );
    clock.advance(time::Duration::seconds(61));
    assert!(
        cache.consume("a", ttl).await.unwrap(),
        "remembered only for the TTL"
    );
    assert!(
        cache.consume("d", ttl).await.unwrap(),
        "expired keys make room"
    );
}

#[tokio::test]
async fn redis_keys_carry_the_prefix_and_the_ttl() {
    let Some(redis) = redis() else {
        return;
    };
    let cache = RedisReplayCache::new(redis.clone());
    assert!(
        cache
            .consume("step-7", Duration::from_secs(90))
            .await
            .unwrap()
    );
    let key = redis.key(&["replay", "step-7"]);
    assert!(key.starts_with("hive-test-"));
    let ttl: i64 = redis
        .run(async |c| redis::cmd("PTTL").arg(&key).query_async(c).await)
        .await
        .unwrap();
    assert!((80_000..=90_000).contains(&ttl), "{ttl}");
}

/// A Redis that is not there: a port nothing listens on.
fn unreachable_redis() -> RedisClient {
    RedisClient::new("redis://127.0.0.1:1", "hive-test-down").unwrap()
}

#[tokio::test]
async fn when_redis_is_down_auth_policies_keep_limiting_per_node() {
    let local = Arc::new(MemoryLimiter::new(clock(), 1_000));
    let limiter = ResilientLimiter::new(Arc::new(RedisLimiter::new(unreachable_redis())), local);
    let policies = Policies::default()
        .with_limits("login=2/15m,health=1/1m")
        .unwrap()
        .with_fail_open("health")
        .unwrap();
    let login = policies.get("login").unwrap();
    assert!(limiter.check(login, "ip").await.unwrap().allowed);
    assert!(limiter.check(login, "ip").await.unwrap().allowed);
    assert!(
        !limiter.check(login, "ip").await.unwrap().allowed,
        "still limiting"
    );
    assert!(limiter.is_degraded());

    let health = policies.get("health").unwrap();
    assert_eq!(health.outage, OutageMode::FailOpen);
    for _ in 0..3 {
        assert!(
            limiter.check(health, "ip").await.unwrap().allowed,
            "chosen fail-open"
        );
    }
    let counters = &limiter.counters;
    assert_eq!(counters.local_fallback_decisions.load(Ordering::Relaxed), 3);
    assert_eq!(counters.fail_open_decisions.load(Ordering::Relaxed), 3);
    assert_eq!(counters.shared_failures.load(Ordering::Relaxed), 6);
}

#[tokio::test]
async fn when_redis_is_down_replay_checks_fail_closed() {
    let cache = RedisReplayCache::new(unreachable_redis());
    let outcome = cache.consume("jti", Duration::from_secs(60)).await;
    assert!(
        matches!(outcome, Err(StateError::Unavailable(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_value_consumed_on_one_replica_is_refused_on_another() {
    let Some((url, prefix)) = hive_state::test_support::test_redis() else {
        return;
    };
    // Two replicas: two clients, two connections, one Redis and one prefix.
    let a = RedisReplayCache::new(RedisClient::new(&url, &prefix).unwrap());
    let b = RedisReplayCache::new(RedisClient::new(&url, &prefix).unwrap());
    assert!(a.consume("jti-77", Duration::from_secs(300)).await.unwrap());
    assert!(!b.consume("jti-77", Duration::from_secs(300)).await.unwrap());
    assert!(!a.consume("jti-77", Duration::from_secs(300)).await.unwrap());
}

fn claim_stores() -> Vec<(&'static str, Arc<dyn Claims>)> {
    let mut all: Vec<(&'static str, Arc<dyn Claims>)> =
        vec![("memory", Arc::new(MemoryClaims::new(clock(), 10_000)))];
    if let Some(redis) = redis() {
        all.push(("redis", Arc::new(RedisClaims::new(redis))));
    }
    all
}

#[tokio::test]
async fn of_a_hundred_concurrent_claims_one_holds_until_it_is_released() {
    let ttl = Duration::from_secs(60);
    for (backend, claims) in claim_stores() {
        let attempts = (0..100).map(|_| {
            let claims = claims.clone();
            tokio::spawn(async move { claims.claim("login:a", ttl).await })
        });
        let mut held: Vec<_> = futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .filter_map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(held.len(), 1, "{backend}");
        assert!(
            claims.claim("login:a", ttl).await.unwrap().is_none(),
            "{backend}"
        );
        let other = claims.claim("login:b", ttl).await.unwrap();
        assert!(other.is_some(), "another key is free: {backend}");
        held.remove(0).release().await.unwrap();
        let again = claims.claim("login:a", ttl).await.unwrap();
        assert!(again.is_some(), "free after the release: {backend}");
    }
}

/// A holder dropped without releasing (a cancelled request) frees the key well before the TTL
/// (an hour here): in memory at once, on Redis as soon as the release spawned by the drop runs.
#[tokio::test]
async fn a_dropped_claim_is_given_back_long_before_its_ttl() {
    let ttl = Duration::from_secs(3600);
    for (backend, claims) in claim_stores() {
        let held = claims.claim("login:dropped", ttl).await.unwrap().unwrap();
        assert!(claims.claim("login:dropped", ttl).await.unwrap().is_none());
        drop(held);
        let retaken = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(claim) = claims.claim("login:dropped", ttl).await.unwrap() {
                    return claim;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(retaken.is_ok(), "still held after the drop: {backend}");
    }
}

#[tokio::test]
async fn a_claim_held_on_one_replica_is_refused_on_another() {
    let Some((url, prefix)) = hive_state::test_support::test_redis() else {
        return;
    };
    let a = RedisClaims::new(RedisClient::new(&url, &prefix).unwrap());
    let b = RedisClaims::new(RedisClient::new(&url, &prefix).unwrap());
    let ttl = Duration::from_secs(60);
    let held = a.claim("login:x", ttl).await.unwrap().unwrap();
    assert!(b.claim("login:x", ttl).await.unwrap().is_none());
    held.release().await.unwrap();
    let taken = b.claim("login:x", ttl).await.unwrap();
    assert!(taken.is_some());
}

#[tokio::test]
async fn when_redis_is_down_claims_are_taken_per_node_never_granted_twice() {
    let claims = ResilientClaims::new(
        Arc::new(RedisClaims::new(unreachable_redis())),
        Arc::new(MemoryClaims::new(clock(), 100)),
    );
    let ttl = Duration::from_secs(60);
    let held = claims.claim("login:a", ttl).await.unwrap().unwrap();
    assert!(claims.claim("login:a", ttl).await.unwrap().is_none());
    held.release().await.unwrap();
    let again = claims.claim("login:a", ttl).await.unwrap().unwrap();
    // A per-node claim dropped goes back to this node's table.
    drop(again);
    assert!(claims.claim("login:a", ttl).await.unwrap().is_some());
    let fallbacks = &claims.counters.local_fallback_claims;
    assert_eq!(fallbacks.load(Ordering::Relaxed), 4);
}
