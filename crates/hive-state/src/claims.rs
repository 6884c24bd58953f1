//! Exclusive claims: one holder of a key at a time, on one node and across replicas (one login
//! attempt in flight per account). A claim is taken atomically, held until it is released, and
//! lapses by itself after its TTL, so a process that dies holding one frees the key anyway.
//!
//! With Redis, a claim is `SET key holder NX PX ttl`, released by a script that deletes the key
//! only while it still names the holder. When Redis cannot answer, [`ResilientClaims`] takes the
//! claim on this node instead (logged and counted): still one at a time per node, never open.

use crate::{RedisClient, StateError};
use async_trait::async_trait;
use hive_proto::SharedClock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;

/// A claim taken: give it back with [`Claims::release`].
#[derive(Debug)]
pub struct Claim {
    key: String,
    holder: String,
    /// Taken by the per-node fallback of [`ResilientClaims`].
    local: bool,
}

#[async_trait]
pub trait Claims: Send + Sync + std::fmt::Debug {
    /// Takes `key` for at most `ttl`: `None` while someone else holds it.
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Claim>, StateError>;
    /// Gives the claim back (a claim that has lapsed and been taken by another is left alone).
    async fn release(&self, claim: Claim) -> Result<(), StateError>;
}

/// In memory, lapsing by the injected clock, bounded: when full of live claims a new key is
/// refused (an error), never granted.
#[derive(Debug)]
pub struct MemoryClaims {
    clock: SharedClock,
    held: Mutex<HashMap<String, (u64, OffsetDateTime)>>,
    next_holder: AtomicU64,
    max_keys: usize,
}

impl MemoryClaims {
    pub fn new(clock: SharedClock, max_keys: usize) -> Self {
        Self {
            clock,
            held: Mutex::new(HashMap::new()),
            next_holder: AtomicU64::new(1),
            max_keys: max_keys.max(1),
        }
    }

    /// Claims held now.
    pub fn len(&self) -> usize {
        let now = self.clock.now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.retain(|_, (_, until)| *until > now);
        held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Claims for MemoryClaims {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Claim>, StateError> {
        let now = self.clock.now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.get(key).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        if !held.contains_key(key) && held.len() >= self.max_keys {
            held.retain(|_, (_, until)| *until > now);
            if held.len() >= self.max_keys {
                return Err(StateError::Full("claims"));
            }
        }
        let holder = self.next_holder.fetch_add(1, Ordering::Relaxed);
        let ttl = time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX);
        held.insert(key.to_owned(), (holder, now.saturating_add(ttl)));
        Ok(Some(Claim {
            key: key.to_owned(),
            holder: holder.to_string(),
            local: true,
        }))
    }

    async fn release(&self, claim: Claim) -> Result<(), StateError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held
            .get(&claim.key)
            .is_some_and(|(holder, _)| holder.to_string() == claim.holder)
        {
            held.remove(&claim.key);
        }
        Ok(())
    }
}

/// Deletes the claim's key only while it still names this holder.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// On Redis, atomic on the server for every replica.
#[derive(Debug, Clone)]
pub struct RedisClaims {
    redis: RedisClient,
    release: redis::Script,
}

impl RedisClaims {
    pub fn new(redis: RedisClient) -> Self {
        Self {
            redis,
            release: redis::Script::new(RELEASE),
        }
    }
}

#[async_trait]
impl Claims for RedisClaims {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Claim>, StateError> {
        let redis_key = self.redis.key(&["claim", key]);
        let holder = uuid::Uuid::new_v4().simple().to_string();
        let taken = self.redis.set_if_absent(&redis_key, &holder, ttl).await?;
        Ok(taken.then_some(Claim {
            key: redis_key,
            holder,
            local: false,
        }))
    }

    async fn release(&self, claim: Claim) -> Result<(), StateError> {
        let script = &self.release;
        let _: i64 = self
            .redis
            .run(async |connection| {
                script
                    .key(&claim.key)
                    .arg(&claim.holder)
                    .invoke_async(connection)
                    .await
            })
            .await?;
        Ok(())
    }
}

/// Claims of the scaled shape: Redis first, this node's own claims while Redis cannot answer.
#[derive(Debug)]
pub struct ResilientClaims {
    shared: Arc<dyn Claims>,
    local: Arc<MemoryClaims>,
    degraded: AtomicBool,
    /// Claims taken by the per-node fallback.
    pub local_fallback_claims: AtomicU64,
}

impl ResilientClaims {
    pub fn new(shared: Arc<dyn Claims>, local: Arc<MemoryClaims>) -> Self {
        Self {
            shared,
            local,
            degraded: AtomicBool::new(false),
            local_fallback_claims: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl Claims for ResilientClaims {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Claim>, StateError> {
        match self.shared.claim(key, ttl).await {
            Ok(claim) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("shared claims reachable again");
                }
                Ok(claim)
            }
            Err(error) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, "shared claims unreachable; claims are taken per node");
                }
                self.local_fallback_claims.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hive_claims_local_fallback_total").increment(1);
                self.local.claim(key, ttl).await
            }
        }
    }

    async fn release(&self, claim: Claim) -> Result<(), StateError> {
        if claim.local {
            self.local.release(claim).await
        } else {
            self.shared.release(claim).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_proto::ManualClock;

    #[tokio::test]
    async fn one_holder_at_a_time_until_release_or_lapse() {
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-01-01 0:00 UTC),
        ));
        let claims = MemoryClaims::new(clock.clone(), 2);
        let ttl = Duration::from_secs(30);
        let first = claims.claim("a", ttl).await.unwrap().unwrap();
        assert!(claims.claim("a", ttl).await.unwrap().is_none());
        claims.release(first).await.unwrap();
        let second = claims.claim("a", ttl).await.unwrap().unwrap();
        clock.advance(time::Duration::seconds(31));
        let third = claims.claim("a", ttl).await.unwrap().unwrap();
        // The lapsed holder's release leaves the new holder's claim alone.
        claims.release(second).await.unwrap();
        assert!(claims.claim("a", ttl).await.unwrap().is_none());
        claims.release(third).await.unwrap();
        // Bounded: full of live claims, a new key is refused.
        let _b = claims.claim("b", ttl).await.unwrap().unwrap();
        let _c = claims.claim("c", ttl).await.unwrap().unwrap();
        assert_eq!(
            claims.claim("d", ttl).await.unwrap_err(),
            StateError::Full("claims")
        );
    }
}
