//! The shared state of this process: in memory (embedded default) or on Redis (`REDIS_URL`).

use crate::config::Config;
use hive_proto::SharedClock;
use hive_state::{
    LimiterCounters, MemoryLimiter, MemoryReplayCache, Policies, RateLimiter, RedisClient,
    RedisLimiter, RedisReplayCache, ReplayCache, ResilientLimiter, StateError,
};
use secrecy::ExposeSecret;
use std::sync::Arc;

/// Bounds of the in-memory tables (a flood of distinct keys cannot grow them further).
const MAX_LIMITER_KEYS: usize = 1_000_000;
const MAX_REPLAY_KEYS: usize = 1_000_000;

#[derive(Debug, Clone)]
pub struct SharedState {
    pub limiter: Arc<dyn RateLimiter>,
    pub replay: Arc<dyn ReplayCache>,
    pub policies: Policies,
    /// How often the limiter degraded (scaled shape only).
    pub limiter_counters: Option<Arc<LimiterCounters>>,
    /// `memory` or `redis`.
    pub backend: &'static str,
}

impl SharedState {
    /// Builds the backends; Redis is connected lazily, so a start while Redis is down succeeds
    /// and degrades (limits per node, replay checks refused) until Redis answers.
    pub fn build(config: &Config, clock: &SharedClock) -> Result<Self, StateError> {
        let local = Arc::new(MemoryLimiter::new(Arc::clone(clock), MAX_LIMITER_KEYS));
        let policies = config.rate_limits.clone();
        let Some(url) = &config.redis_url else {
            return Ok(Self {
                limiter: local,
                replay: Arc::new(MemoryReplayCache::new(Arc::clone(clock), MAX_REPLAY_KEYS)),
                policies,
                limiter_counters: None,
                backend: "memory",
            });
        };
        let redis = RedisClient::new(url.expose_secret(), &config.redis_key_prefix)?;
        let limiter = ResilientLimiter::new(Arc::new(RedisLimiter::new(redis.clone())), local);
        Ok(Self {
            limiter_counters: Some(Arc::clone(&limiter.counters)),
            limiter: Arc::new(limiter),
            replay: Arc::new(RedisReplayCache::new(redis)),
            policies,
            backend: "redis",
        })
    }
}
