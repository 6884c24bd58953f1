//! One-time values (federation `jti`, webhook event ids, TOTP steps, reset tokens): the first
//! `consume` of a key answers `true`, every later one within the TTL `false`, atomically even
//! across replicas. Errors must be treated as "refuse" (fail closed) by callers.

use crate::{RedisClient, StateError};
use async_trait::async_trait;
use hive_proto::SharedClock;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;

#[async_trait]
pub trait ReplayCache: Send + Sync + std::fmt::Debug {
    /// Records `key` for `ttl`; `true` the first time, `false` while it is remembered.
    async fn consume(&self, key: &str, ttl: Duration) -> Result<bool, StateError>;
}

/// In memory, with expiry by the injected clock and a hard bound: when full of live keys, new
/// ones are refused (an error) rather than old ones forgotten, which would reopen replays.
#[derive(Debug)]
pub struct MemoryReplayCache {
    clock: SharedClock,
    seen: Mutex<HashMap<String, OffsetDateTime>>,
    max_keys: usize,
}

impl MemoryReplayCache {
    pub fn new(clock: SharedClock, max_keys: usize) -> Self {
        Self {
            clock,
            seen: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn consume(&self, key: &str, ttl: Duration) -> Result<bool, StateError> {
        let now = self.clock.now();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.get(key).is_some_and(|expires| *expires > now) {
            return Ok(false);
        }
        if !seen.contains_key(key) && seen.len() >= self.max_keys {
            seen.retain(|_, expires| *expires > now);
            if seen.len() >= self.max_keys {
                return Err(StateError::Full("replay cache"));
            }
        }
        let ttl = time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX);
        seen.insert(key.to_owned(), now.saturating_add(ttl));
        Ok(true)
    }
}

/// `SET key 1 NX PX ttl` on Redis: atomic on the server for every replica.
#[derive(Debug, Clone)]
pub struct RedisReplayCache {
    redis: RedisClient,
}

impl RedisReplayCache {
    pub fn new(redis: RedisClient) -> Self {
        Self { redis }
    }
}

#[async_trait]
impl ReplayCache for RedisReplayCache {
    async fn consume(&self, key: &str, ttl: Duration) -> Result<bool, StateError> {
        let redis_key = self.redis.key(&["replay", key]);
        self.redis.set_if_absent(&redis_key, "1", ttl).await
    }
}
