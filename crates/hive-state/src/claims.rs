//! Exclusive claims: one holder of a key at a time, on one node and across replicas (one login
//! attempt in flight per account). A claim is taken atomically and held until it is released —
//! explicitly, or by dropping it (a cancelled request gives its claim back at once) — and lapses
//! by itself after its TTL, so a process that dies holding one frees the key anyway.
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

/// A claim held. [`Claim::release`] gives it back and says whether that worked; dropping it
/// gives it back too (on the current Tokio runtime, if there is one — otherwise it lapses after
/// its TTL), so that a holder whose future is cancelled does not keep the key for the TTL.
pub struct Claim {
    key: String,
    holder: String,
    /// The store that granted it; `None` once released.
    store: Option<Arc<dyn Release>>,
}

impl Claim {
    /// Gives the claim back (a claim that has lapsed and been taken by another is left alone).
    pub async fn release(mut self) -> Result<(), StateError> {
        match self.store.take() {
            Some(store) => store.release(&self.key, &self.holder).await,
            None => Ok(()),
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.release_dropped(
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.holder),
            );
        }
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("key", &self.key)
            .field("held", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

/// How a claim goes back to the store that granted it.
#[async_trait]
trait Release: Send + Sync + 'static {
    async fn release(&self, key: &str, holder: &str) -> Result<(), StateError>;

    /// The release of a claim dropped unreleased: spawned on the current runtime, as a drop
    /// cannot wait. Without a runtime the claim lapses after its TTL.
    fn release_dropped(self: Arc<Self>, key: String, holder: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("a claim dropped outside a runtime lapses after its TTL");
            return;
        };
        runtime.spawn(async move {
            if let Err(error) = self.release(&key, &holder).await {
                tracing::warn!(%error, "a dropped claim was not released; it lapses by itself");
            }
        });
    }
}

#[async_trait]
pub trait Claims: Send + Sync + std::fmt::Debug {
    /// Takes `key` for at most `ttl`: `None` while someone else holds it.
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Claim>, StateError>;
}

/// In memory, lapsing by the injected clock, bounded: when full of live claims a new key is
/// refused (an error), never granted.
#[derive(Debug)]
pub struct MemoryClaims {
    table: Arc<MemoryTable>,
}

#[derive(Debug)]
struct MemoryTable {
    clock: SharedClock,
    held: Mutex<HashMap<String, (u64, OffsetDateTime)>>,
    next_holder: AtomicU64,
    max_keys: usize,
}

impl MemoryTable {
    fn remove(&self, key: &str, holder: &str) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held
            .get(key)
            .is_some_and(|(current, _)| current.to_string() == holder)
        {
            held.remove(key);
        }
    }
}

#[async_trait]
impl Release for MemoryTable {
    async fn release(&self, key: &str, holder: &str) -> Result<(), StateError> {
        self.remove(key, holder);
        Ok(())
    }

    /// In memory a release does not wait on anything: done in the drop itself.
    fn release_dropped(self: Arc<Self>, key: String, holder: String) {
        self.remove(&key, &holder);
    }
}

impl MemoryClaims {
    pub fn new(clock: SharedClock, max_keys: usize) -> Self {
        Self {
            table: Arc::new(MemoryTable {
                clock,
                held: Mutex::new(HashMap::new()),
                next_holder: AtomicU64::new(1),
                max_keys: max_keys.max(1),
            }),
        }
    }
}

#[async_trait]
impl Claims for MemoryClaims {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Claim>, StateError> {
        let table = &self.table;
        let now = table.clock.now();
        let mut held = table.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.get(key).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        if !held.contains_key(key) && held.len() >= table.max_keys {
            held.retain(|_, (_, until)| *until > now);
            if held.len() >= table.max_keys {
                return Err(StateError::Full("claims"));
            }
        }
        let holder = table.next_holder.fetch_add(1, Ordering::Relaxed);
        let ttl = time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX);
        held.insert(key.to_owned(), (holder, now.saturating_add(ttl)));
        Ok(Some(Claim {
            key: key.to_owned(),
            holder: holder.to_string(),
            store: Some(Arc::clone(table) as Arc<dyn Release>),
        }))
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
    releaser: Arc<RedisRelease>,
}

#[derive(Debug)]
struct RedisRelease {
    redis: RedisClient,
    script: redis::Script,
}

#[async_trait]
impl Release for RedisRelease {
    async fn release(&self, key: &str, holder: &str) -> Result<(), StateError> {
        let script = &self.script;
        let _: i64 = self
            .redis
            .run(async |connection| script.key(key).arg(holder).invoke_async(connection).await)
            .await?;
        Ok(())
    }
}

impl RedisClaims {
    pub fn new(redis: RedisClient) -> Self {
        Self {
            releaser: Arc::new(RedisRelease {
                redis,
                script: redis::Script::new(RELEASE),
            }),
        }
    }
}

#[async_trait]
impl Claims for RedisClaims {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Claim>, StateError> {
        let redis = &self.releaser.redis;
        let redis_key = redis.key(&["claim", key]);
        let holder = uuid::Uuid::new_v4().simple().to_string();
        let taken = redis.set_if_absent(&redis_key, &holder, ttl).await?;
        Ok(taken.then(|| Claim {
            key: redis_key,
            holder,
            store: Some(Arc::clone(&self.releaser) as Arc<dyn Release>),
        }))
    }
}

/// How often claims had to degrade, per instance (the metric
/// `hive_claims_local_fallback_total` sums every instance of the process).
#[derive(Debug, Default)]
pub struct ClaimCounters {
    /// Claims taken by the per-node fallback because Redis could not answer.
    pub local_fallback_claims: AtomicU64,
}

/// Claims of the scaled shape: Redis first, this node's own claims while Redis cannot answer.
#[derive(Debug)]
pub struct ResilientClaims {
    shared: Arc<dyn Claims>,
    local: Arc<MemoryClaims>,
    degraded: AtomicBool,
    pub counters: Arc<ClaimCounters>,
}

impl ResilientClaims {
    pub fn new(shared: Arc<dyn Claims>, local: Arc<MemoryClaims>) -> Self {
        Self {
            shared,
            local,
            degraded: AtomicBool::new(false),
            counters: Arc::new(ClaimCounters::default()),
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
                self.counters
                    .local_fallback_claims
                    .fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hive_claims_local_fallback_total").increment(1);
                // The claim goes back to the store that granted it, whichever that was.
                self.local.claim(key, ttl).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_proto::ManualClock;

    fn memory_claims(max_keys: usize) -> (Arc<ManualClock>, MemoryClaims) {
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-01-01 0:00 UTC),
        ));
        let claims = MemoryClaims::new(clock.clone(), max_keys);
        (clock, claims)
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_release_or_lapse() {
        let (clock, claims) = memory_claims(2);
        let ttl = Duration::from_secs(30);
        let first = claims.claim("a", ttl).await.unwrap().unwrap();
        assert!(claims.claim("a", ttl).await.unwrap().is_none());
        first.release().await.unwrap();
        let second = claims.claim("a", ttl).await.unwrap().unwrap();
        clock.advance(time::Duration::seconds(31));
        let third = claims.claim("a", ttl).await.unwrap().unwrap();
        // The lapsed holder's release (explicit or by drop) leaves the new holder's claim alone.
        second.release().await.unwrap();
        assert!(claims.claim("a", ttl).await.unwrap().is_none());
        third.release().await.unwrap();
        let fourth = claims.claim("a", ttl).await.unwrap().unwrap();
        clock.advance(time::Duration::seconds(31));
        let fifth = claims.claim("a", ttl).await.unwrap().unwrap();
        drop(fourth);
        assert!(claims.claim("a", ttl).await.unwrap().is_none());
        drop(fifth);
        // Bounded: full of live claims, a new key is refused.
        let _b = claims.claim("b", ttl).await.unwrap().unwrap();
        let _c = claims.claim("c", ttl).await.unwrap().unwrap();
        assert_eq!(
            claims.claim("d", ttl).await.unwrap_err(),
            StateError::Full("claims")
        );
    }

    /// A holder cancelled mid-way (its future dropped) frees the key at once, not after the
    /// TTL: the clock never moves here.
    #[tokio::test]
    async fn a_cancelled_holder_gives_its_claim_back() {
        let (_clock, claims) = memory_claims(10);
        let claims = Arc::new(claims);
        let ttl = Duration::from_secs(60);
        let (held, was_held) = tokio::sync::oneshot::channel();
        let holder = tokio::spawn({
            let claims = Arc::clone(&claims);
            async move {
                let _claim = claims.claim("a", ttl).await.unwrap().unwrap();
                held.send(()).unwrap();
                std::future::pending::<()>().await;
            }
        });
        was_held.await.unwrap();
        assert!(claims.claim("a", ttl).await.unwrap().is_none());
        holder.abort();
        assert!(holder.await.unwrap_err().is_cancelled());
        assert!(claims.claim("a", ttl).await.unwrap().is_some());
    }

    /// Dropped where no runtime runs, an in-memory claim is still given back (it needs none).
    #[test]
    fn a_claim_dropped_outside_a_runtime_is_given_back_in_memory() {
        let (_clock, claims) = memory_claims(10);
        let ttl = Duration::from_secs(60);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let claim = runtime.block_on(claims.claim("a", ttl)).unwrap().unwrap();
        drop(claim);
        assert!(runtime.block_on(claims.claim("a", ttl)).unwrap().is_some());
    }
}
