//! Rate limiting with GCRA (the generic cell rate algorithm): one stored number per key, the
//! "theoretical arrival time", so both backends decide the same way and Redis needs one atomic
//! script call per decision.

mod memory;
mod policies;
mod redis;
mod resilient;

pub use memory::MemoryLimiter;
pub use policies::Policies;
pub use redis::RedisLimiter;
pub use resilient::{LimiterCounters, ResilientLimiter};

use crate::StateError;
use async_trait::async_trait;
use std::time::Duration;

/// `limit` requests per `period`, all of which may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period: Duration,
}

/// What a policy counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The client IP (anonymous endpoints).
    ClientIp,
    /// The authenticated principal, or the client IP when there is none.
    Principal,
}

/// What a policy does when the shared store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageMode {
    /// Decide with this node's own limiter: still limiting, per node.
    LocalFallback,
    /// Let requests through unmetered (only for policies an operator chose; never auth ones).
    FailOpen,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: &'static str,
    pub quota: Quota,
    pub scope: Scope,
    /// Protects authentication (login, setup, federation…): can never fail open.
    pub auth_related: bool,
    pub outage: OutageMode,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// When refused: the wait before the next request can pass.
    pub retry_after: Duration,
    /// The wait until the full quota is available again.
    pub reset_after: Duration,
}

#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Counts one request of `key` under `policy` and says whether it may pass.
    async fn check(&self, policy: &Policy, key: &str) -> Result<Decision, StateError>;
}

/// The GCRA step in microseconds, shared by the memory backend and mirrored by the Lua script.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gcra {
    /// Time one request "costs": period / limit.
    pub interval: i64,
    /// The whole window: a key may be at most this far ahead of now.
    pub window: i64,
    pub limit: u32,
}

impl Gcra {
    pub fn new(quota: Quota) -> Self {
        let window = i64::try_from(quota.period.as_micros()).unwrap_or(i64::MAX);
        let limit = quota.limit.max(1);
        Self {
            interval: (window / i64::from(limit)).max(1),
            window,
            limit,
        }
    }

    /// Given the stored arrival time (if any) and now, the decision and the time to store.
    pub fn step(&self, stored: Option<i64>, now: i64) -> (Decision, Option<i64>) {
        let tat = stored.unwrap_or(now).max(now);
        let new_tat = tat.saturating_add(self.interval);
        let ahead = new_tat - now;
        if ahead > self.window {
            let decision = Decision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                retry_after: micros(ahead - self.window),
                reset_after: micros(tat - now),
            };
            return (decision, None);
        }
        let decision = Decision {
            allowed: true,
            limit: self.limit,
            remaining: u32::try_from((self.window - ahead) / self.interval).unwrap_or(0),
            retry_after: Duration::ZERO,
            reset_after: micros(ahead),
        };
        (decision, Some(new_tat))
    }
}

pub(crate) fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        let gcra = Gcra::new(Quota {
            limit: 4,
            period: Duration::from_secs(60),
        });
        let mut tat = None;
        for expected_remaining in [3, 2, 1, 0] {
            let (decision, next) = gcra.step(tat, 0);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            tat = next;
        }
        let (refused, next) = gcra.step(tat, 0);
        assert!(!refused.allowed);
        assert_eq!(next, None, "a refusal stores nothing");
        assert_eq!(refused.retry_after, Duration::from_secs(15));
        assert_eq!(refused.reset_after, Duration::from_secs(60));
        let (later, _) = gcra.step(tat, 15_000_000);
        assert!(later.allowed, "one interval later one more passes");
        assert_eq!(later.remaining, 0);
    }
}
