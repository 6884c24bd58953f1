//! The limits of each agent: requests a minute (across replicas), concurrent tasks (on this
//! replica), LLM tokens a day.

use super::{Gateway, GatewayError};
use hive_state::{OutageMode, Policy, Quota, Scope};
use hive_store::AgentRow;
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;

impl Gateway {
    /// The agent's requests-a-minute limit, counted per agent across replicas.
    pub(super) async fn within_rate_limit(&self, agent: &AgentRow) -> Result<(), GatewayError> {
        let policy = Policy {
            name: "agent",
            quota: Quota {
                limit: agent.limits.requests_per_minute.max(1),
                period: Duration::from_secs(60),
            },
            scope: Scope::Principal,
            auth_related: false,
            outage: OutageMode::LocalFallback,
        };
        let decision = self
            .limiter
            .check(&policy, &format!("agent:{}", agent.id))
            .await
            .map_err(|_| GatewayError::Unavailable)?;
        if decision.allowed {
            Ok(())
        } else {
            Err(GatewayError::Throttled {
                retry_after: decision.retry_after.as_secs().max(1),
            })
        }
    }

    /// A place among the agent's concurrent tasks, or a refusal.
    pub(super) fn slot(
        &self,
        agent: &AgentRow,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, GatewayError> {
        let limit = agent.limits.concurrent_tasks.max(1);
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = slots.entry(agent.id).or_insert_with(|| {
                (
                    limit,
                    Arc::new(Semaphore::new(usize::try_from(limit).unwrap_or(1))),
                )
            });
            // A changed limit takes a new set of permits; running tasks keep theirs.
            if entry.0 != limit {
                *entry = (
                    limit,
                    Arc::new(Semaphore::new(usize::try_from(limit).unwrap_or(1))),
                );
            }
            Arc::clone(&entry.1)
        };
        semaphore
            .try_acquire_owned()
            .map_err(|_| GatewayError::Throttled { retry_after: 1 })
    }

    /// Refuses a call once the agent's `tokensPerDay` (0: no budget) is spent for today (UTC).
    pub(super) async fn within_token_budget(&self, agent: &AgentRow) -> Result<(), GatewayError> {
        let budget = agent.limits.tokens_per_day;
        if budget == 0 {
            return Ok(());
        }
        let spent = self
            .usage
            .tokens_today(agent.id)
            .await
            .map_err(|_| GatewayError::Unavailable)?;
        if spent < budget {
            return Ok(());
        }
        let now = self.book.now();
        let tomorrow = crate::agents::llm::day_start(now) + time::Duration::days(1);
        let wait = u64::try_from((tomorrow - now).whole_seconds()).unwrap_or(1);
        Err(GatewayError::Throttled {
            retry_after: wait.max(1),
        })
    }
}
