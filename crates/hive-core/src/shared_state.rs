//! The shared state of this process — rate limiter, replay cache, event bus — in memory
//! (embedded default) or on Redis (`REDIS_URL`).

use crate::kernel::config::{Config, TaskStoreKind};
use hive_proto::SharedClock;
use hive_state::{
    ClaimCounters, Claims, DbTaskStore, EventBus, LimiterCounters, MemoryClaims, MemoryLimiter,
    MemoryReplayCache, MemoryTaskStore, Policies, RateLimiter, RedisClaims, RedisClient,
    RedisLimiter, RedisReplayCache, RedisTaskStore, ReplayCache, ResilientClaims, ResilientLimiter,
    StateError, TaskEvents, TaskStore,
};
use hive_store::{Backend, Store};
use secrecy::ExposeSecret;
use std::sync::Arc;

/// Bounds of the in-memory tables (a flood of distinct keys cannot grow them further).
const MAX_LIMITER_KEYS: usize = 1_000_000;
const MAX_REPLAY_KEYS: usize = 1_000_000;
const MAX_CLAIMS: usize = 1_000_000;
const MAX_TASKS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct SharedState {
    pub limiter: Arc<dyn RateLimiter>,
    pub replay: Arc<dyn ReplayCache>,
    /// Exclusive claims (one login attempt in flight per account); per node while Redis is down.
    pub claims: Arc<dyn Claims>,
    pub bus: Arc<EventBus>,
    /// A2A tasks (`A2A_TASK_STORE`) and the fan-out of their events.
    pub tasks: Arc<dyn TaskStore>,
    pub task_events: Arc<TaskEvents>,
    pub policies: Policies,
    /// How often the limiter degraded (scaled shape only).
    pub limiter_counters: Option<Arc<LimiterCounters>>,
    /// How often claims were taken per node for want of Redis (scaled shape only).
    pub claim_counters: Option<Arc<ClaimCounters>>,
    /// `memory` or `redis`.
    pub backend: &'static str,
    /// The Redis connection, with `REDIS_URL` (the system health report pings it).
    pub redis: Option<RedisClient>,
}

impl SharedState {
    /// Builds the backends; Redis is connected lazily, so a start while Redis is down succeeds
    /// and degrades (limits per node, replay checks refused) until Redis answers.
    ///
    /// The bus on Redis is always signed: with `MESH_BUS_HMAC_SECRET` (a secret shared with
    /// subscribers outside Hive), else with a key derived from the master key, which every
    /// replica of the installation holds — so whoever can publish on Redis cannot forge Hive's
    /// events. The in-process bus, which nobody else can publish on, is signed only with the
    /// secret (no HMAC per change otherwise).
    pub fn build(
        config: &Config,
        clock: &SharedClock,
        node_id: &str,
        store: &Arc<dyn Store>,
        master: &hive_crypto::vault::MasterKey,
    ) -> Result<Self, StateError> {
        let configured_key = config
            .secrets
            .bus_hmac_secret
            .as_ref()
            .map(|secret| secret.expose_secret().as_bytes().to_vec());
        let local = Arc::new(MemoryLimiter::new(Arc::clone(clock), MAX_LIMITER_KEYS));
        let local_claims = Arc::new(MemoryClaims::new(Arc::clone(clock), MAX_CLAIMS));
        let policies = config.rate_limits.clone();
        let database_tasks = || -> Arc<dyn TaskStore> {
            let (store, clock) = (Arc::clone(store), Arc::clone(clock));
            // SQLite is opened by one process only: what it wrote last may be read back from
            // memory. Replicas sharing PostgreSQL each read the database.
            Arc::new(match store.backend() {
                Backend::Sqlite => DbTaskStore::single_process(store, clock),
                Backend::Postgres => DbTaskStore::new(store, clock),
            })
        };
        let Some(url) = &config.redis_url else {
            let tasks: Arc<dyn TaskStore> = match config.task_store {
                TaskStoreKind::Database => database_tasks(),
                // A Redis task store without REDIS_URL is refused by the configuration.
                TaskStoreKind::Memory | TaskStoreKind::Redis => {
                    Arc::new(MemoryTaskStore::new(Arc::clone(clock), MAX_TASKS))
                }
            };
            return Ok(Self {
                tasks,
                task_events: Arc::new(TaskEvents::memory()),
                limiter: local,
                replay: Arc::new(MemoryReplayCache::new(Arc::clone(clock), MAX_REPLAY_KEYS)),
                claims: local_claims,
                bus: Arc::new(EventBus::memory(node_id, configured_key.as_deref())),
                policies,
                limiter_counters: None,
                claim_counters: None,
                backend: "memory",
                redis: None,
            });
        };
        let redis = RedisClient::new(url.expose_secret(), &config.redis_key_prefix)?;
        let signing_key = configured_key.unwrap_or_else(|| {
            let key = master.derive(hive_crypto::vault::Purpose::BusSigning);
            key.expose().to_vec()
        });
        let tasks: Arc<dyn TaskStore> = match config.task_store {
            TaskStoreKind::Database => database_tasks(),
            TaskStoreKind::Redis => Arc::new(RedisTaskStore::new(redis.clone())),
            TaskStoreKind::Memory => Arc::new(MemoryTaskStore::new(Arc::clone(clock), MAX_TASKS)),
        };
        let limiter = ResilientLimiter::new(Arc::new(RedisLimiter::new(redis.clone())), local);
        let claims = ResilientClaims::new(Arc::new(RedisClaims::new(redis.clone())), local_claims);
        Ok(Self {
            limiter_counters: Some(Arc::clone(&limiter.counters)),
            limiter: Arc::new(limiter),
            replay: Arc::new(RedisReplayCache::new(redis.clone())),
            claim_counters: Some(Arc::clone(&claims.counters)),
            claims: Arc::new(claims),
            bus: Arc::new(EventBus::redis(redis.clone(), node_id, Some(&signing_key))),
            tasks,
            task_events: Arc::new(TaskEvents::redis(redis.clone())),
            policies,
            backend: "redis",
            redis: Some(redis),
        })
    }
}
