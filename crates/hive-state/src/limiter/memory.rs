//! The per-node limiter: the embedded default, and the fallback when Redis is down.

use super::{Decision, Gcra, Policy, RateLimiter};
use crate::StateError;
use async_trait::async_trait;
use hive_proto::SharedClock;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

const SHARDS: usize = 16;

/// GCRA in memory, sharded to keep lock contention low. Keys whose arrival time has passed are
/// indistinguishable from new ones and are pruned, so memory stays bounded by the number of keys
/// active within one period, and by `max_keys` at worst.
#[derive(Debug)]
pub struct MemoryLimiter {
    clock: SharedClock,
    shards: Vec<Mutex<HashMap<String, i64>>>,
    max_keys_per_shard: usize,
}

impl MemoryLimiter {
    /// `max_keys` bounds the whole table; a new key beyond it is refused (fail closed).
    pub fn new(clock: SharedClock, max_keys: usize) -> Self {
        Self {
            clock,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max_keys_per_shard: (max_keys / SHARDS).max(1),
        }
    }

    /// Keys held now (after pruning what has expired).
    pub fn len(&self) -> usize {
        let now = self.now();
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
                shard.retain(|_, tat| *tat > now);
                shard.len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> i64 {
        i64::try_from(self.clock.now().unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
    }

    fn shard_of(&self, key: &str) -> &Mutex<HashMap<String, i64>> {
        // FNV-1a: cheap and stable; the shard only spreads lock contention.
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let index = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// The decision for `key` (already namespaced by policy).
    fn decide(&self, gcra: Gcra, key: String) -> Result<Decision, StateError> {
        let now = self.now();
        let mut shard = self
            .shard_of(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let stored = shard.get(&key).copied().filter(|tat| *tat > now);
        if stored.is_none() && shard.len() >= self.max_keys_per_shard {
            shard.retain(|_, tat| *tat > now);
            if shard.len() >= self.max_keys_per_shard {
                return Err(StateError::Full("rate limiter key table"));
            }
        }
        let (decision, new_tat) = gcra.step(stored, now);
        if let Some(tat) = new_tat {
            shard.insert(key, tat);
        }
        Ok(decision)
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn check(&self, policy: &Policy, key: &str) -> Result<Decision, StateError> {
        self.decide(
            Gcra::new(policy.quota),
            format!("{}\u{0}{key}", policy.name),
        )
    }
}
