//! Shared state that replicas must agree on, each behind one trait with an in-process backend
//! (the embedded default) and a Redis backend (the scaled shape): the rate limiter, the replay
//! cache, exclusive claims, the event bus, the A2A task store (also in the database) and the fan-out of task events;
//! group commit (many callers' writes in one transaction, `group_commit`);
//! and the WAN carrier on NATS JetStream (`wan`).
//!
//! Every Redis key starts with a configurable prefix (`HIVE_REDIS_KEY_PREFIX`, default `hive`),
//! so that several deployments — or several test runs — can share one Redis.

pub mod bus;
pub mod claims;
mod error;
pub mod group_commit;
pub mod limiter;
mod redis_client;
pub mod replay;
pub mod task_events;
pub mod tasks;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod wan;

pub use bus::{BusCounters, BusEvent, Channel, Envelope, EventBus, MeshMeta};
pub use claims::{Claim, ClaimCounters, Claims, MemoryClaims, RedisClaims, ResilientClaims};
pub use error::{PingFailure, StateError};
pub use group_commit::{BatchWriter, GroupCommit, Unwritten};
pub use limiter::{
    Decision, LimiterCounters, MemoryLimiter, OutageMode, Policies, Policy, Quota, RateLimiter,
    RedisLimiter, ResilientLimiter, Scope,
};
pub use redis_client::RedisClient;
pub use replay::{MemoryReplayCache, RedisReplayCache, ReplayCache};
pub use task_events::{TaskEvent, TaskEvents};
pub use tasks::{
    DbTaskStore, MemoryTaskStore, RedisTaskStore, TaskDocument, TaskRecord, TaskStore,
};
pub use wan::{CarrierCounts, CarrierSettings, Published, WanCarrier};
