//! The limiter of the scaled shape: Redis first; when Redis cannot answer, each policy degrades
//! as it says — to this node's own limiter (always for authentication) or, where an operator
//! chose it, open. Never silently: the change of state is logged and every degraded decision is
//! counted.

use super::{Decision, MemoryLimiter, OutageMode, Policy, RateLimiter};
use crate::StateError;
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How often the limiter had to degrade.
#[derive(Debug, Default)]
pub struct LimiterCounters {
    /// Calls to the shared limiter that failed.
    pub shared_failures: AtomicU64,
    /// Decisions taken by the per-node fallback.
    pub local_fallback_decisions: AtomicU64,
    /// Requests let through unmetered by a fail-open policy.
    pub fail_open_decisions: AtomicU64,
}

#[derive(Debug)]
pub struct ResilientLimiter {
    shared: Arc<dyn RateLimiter>,
    local: Arc<MemoryLimiter>,
    degraded: AtomicBool,
    pub counters: Arc<LimiterCounters>,
}

impl ResilientLimiter {
    pub fn new(shared: Arc<dyn RateLimiter>, local: Arc<MemoryLimiter>) -> Self {
        Self {
            shared,
            local,
            degraded: AtomicBool::new(false),
            counters: Arc::new(LimiterCounters::default()),
        }
    }

    /// Whether the last call to the shared limiter failed.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl RateLimiter for ResilientLimiter {
    async fn check(&self, policy: &Policy, key: &str) -> Result<Decision, StateError> {
        match self.shared.check(policy, key).await {
            Ok(decision) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("shared rate limiter reachable again");
                }
                Ok(decision)
            }
            Err(error) => {
                self.counters
                    .shared_failures
                    .fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hive_rate_limiter_shared_failures_total").increment(1);
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, "shared rate limiter unreachable; policies degrade as configured");
                }
                // Authentication never fails open, whatever the configuration says.
                if policy.outage == OutageMode::FailOpen && !policy.auth_related {
                    self.counters
                        .fail_open_decisions
                        .fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("hive_rate_limiter_degraded_decisions_total", "policy" => policy.name, "mode" => "open").increment(1);
                    return Ok(Decision {
                        allowed: true,
                        limit: policy.quota.limit,
                        remaining: policy.quota.limit,
                        retry_after: std::time::Duration::ZERO,
                        reset_after: std::time::Duration::ZERO,
                    });
                }
                self.counters
                    .local_fallback_decisions
                    .fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hive_rate_limiter_degraded_decisions_total", "policy" => policy.name, "mode" => "local").increment(1);
                self.local.check(policy, key).await
            }
        }
    }
}
