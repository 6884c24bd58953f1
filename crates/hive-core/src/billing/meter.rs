//! Metering: billing as the [`UsageSink`] of the domains that make billable use. Before a use
//! starts, its estimated cost is held on the payer's wallet (when `HIVE_BILLING_ENFORCE` is on
//! and it costs something) and its estimated tokens and cost on every budget that applies, all
//! or nothing, in one transaction; a use that cannot be held is refused before any work. After
//! it, its record and its debit are written with the hold's release, in one transaction whose
//! idempotency key is the record's id.
//!
//! An `llm` call's estimate is its prompt's bound (one token a byte, plus framing) and the
//! completion tokens it is granted: the agent's `maxTokens` (else
//! `HIVE_BILLING_RESERVE_TOKENS`), lowered to what the budgets have left; the grant is sent to
//! the model as `max_tokens`, so a budget runs out at its limit, mid-stream if need be.

use super::Billing;
use super::pricing::{TokenPrice, ceil_div};
use crate::kernel::audit::{AuditAction, AuditEvent, Principal};
use crate::kernel::ports::{Billable, MeteredUse, Reservation, UsageRefusal, UsageSink};
use async_trait::async_trait;
use hive_store::billing::{
    BudgetCharge, BudgetClaim, BudgetRow, Currency, EntryKind, HoldOutcome, Money, NewEntry,
    NewHold, Settlement,
};
use hive_store::{StoreError, UsageKind, UsageRow};
use std::time::Duration;
use uuid::Uuid;

/// How long a hold lasts before the leader's job releases it (a replica that died mid-call).
pub const HOLD_LIFETIME: Duration = Duration::from_secs(6 * 60 * 60);
/// Attempts to settle a use while the database is unreachable.
const SETTLE_ATTEMPTS: u32 = 4;

/// A refusal, or the store failing (which fails closed or open by configuration).
enum NotHeld {
    Refused(UsageRefusal),
    Store(StoreError),
}

impl From<StoreError> for NotHeld {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// What a use costs: its price and how its cost is counted.
#[derive(Debug, Clone, Copy)]
enum Price {
    Tokens(TokenPrice),
    /// Minor units per hour of run time.
    PerHour(i64),
    /// Minor units per step.
    PerStep(i64),
}

impl Price {
    fn cost(self, prompt: u64, completion: u64, quantity: u64) -> i64 {
        match self {
            Self::Tokens(price) => price.cost(prompt, completion),
            Self::PerHour(per_hour) => ceil_div(i128::from(quantity) * i128::from(per_hour), 3600),
            Self::PerStep(per_step) => {
                i64::try_from(i128::from(quantity) * i128::from(per_step)).unwrap_or(i64::MAX)
            }
        }
    }

    fn is_free(self) -> bool {
        match self {
            Self::Tokens(price) => price.is_free(),
            Self::PerHour(price) | Self::PerStep(price) => price == 0,
        }
    }
}

fn stored(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl Billing {
    async fn price_of(&self, billable: &Billable) -> Result<Price, StoreError> {
        let config = &self.parts.config;
        Ok(match billable.kind {
            UsageKind::Llm => {
                let table = self.price_table().await.map_err(|_| {
                    StoreError::Unavailable("the price table cannot be read".into())
                })?;
                Price::Tokens(table.for_model(&billable.model))
            }
            UsageKind::HostedRun => Price::PerHour(config.hosted_minor_per_hour),
            UsageKind::WorkflowStep => Price::PerStep(config.workflow_step_minor),
        })
    }

    fn budget_refusal(&self, budget: &BudgetRow) -> UsageRefusal {
        let now = self.parts.clock.now();
        let end = budget.period.end(now);
        UsageRefusal::BudgetReached {
            scope: budget.scope.kind(),
            period: budget.period.as_str(),
            retry_after: u64::try_from((end - now).whole_seconds())
                .unwrap_or(1)
                .max(1),
        }
    }

    async fn try_reserve(&self, billable: &Billable) -> Result<Reservation, NotHeld> {
        let config = &self.parts.config;
        let price = self.price_of(billable).await?;
        let budgets = self
            .store()
            .billing()
            .budgets_for(billable.payer, billable.agent_id)
            .await?;
        let paid = config.enforce && !price.is_free();
        if !paid && budgets.is_empty() {
            return Ok(Reservation {
                hold_id: None,
                billable: billable.clone(),
                max_completion_tokens: billable.max_completion_tokens,
            });
        }
        let now = hive_store::truncate_to_micros(self.parts.clock.now());
        let prompt = billable.prompt_tokens;
        let is_llm = billable.kind == UsageKind::Llm;
        let mut grant = u64::from(
            billable
                .max_completion_tokens
                .unwrap_or(config.reserve_tokens),
        );
        // The budgets' room lowers the grant; a budget without room refuses.
        let mut claims = Vec::with_capacity(budgets.len());
        for budget in &budgets {
            let start = budget.period.start(now);
            let used = self.store().billing().budget_use(budget.id, start).await?;
            if let Some(max) = budget.max_tokens {
                let room = max - used.tokens - used.held_tokens;
                let room = u64::try_from(room).unwrap_or(0);
                if room <= prompt || (!is_llm && room == 0) {
                    return Err(NotHeld::Refused(self.budget_refusal(budget)));
                }
                if is_llm {
                    grant = grant.min(room - prompt);
                }
            }
            if let Some(max) = budget.max_cost_minor {
                let room = max - used.cost_minor - used.held_cost_minor;
                let fixed = price.cost(prompt, 0, billable.quantity);
                if room <= 0 || fixed > room {
                    return Err(NotHeld::Refused(self.budget_refusal(budget)));
                }
                if let Price::Tokens(tokens) = price
                    && tokens.completion_minor_per_1k > 0
                {
                    let affordable = i128::from(room - fixed) * 1000
                        / i128::from(tokens.completion_minor_per_1k);
                    grant = grant.min(u64::try_from(affordable).unwrap_or(0));
                }
            }
            claims.push((budget, start));
        }
        if is_llm && grant == 0 {
            let budget = claims.first().map(|(budget, _)| *budget);
            return Err(NotHeld::Refused(match budget {
                Some(budget) => self.budget_refusal(budget),
                None => UsageRefusal::Unavailable,
            }));
        }
        let completion = if is_llm { grant } else { 0 };
        let cost = price.cost(prompt, completion, billable.quantity);
        let tokens = stored(prompt.saturating_add(completion));
        let hold = NewHold {
            id: Uuid::now_v7(),
            user_id: billable.payer,
            agent_id: billable.agent_id,
            cost: Money::new(if paid { cost } else { 0 }, config.currency.clone()),
            tokens,
            budgets: claims
                .iter()
                .map(|(budget, start)| BudgetCharge {
                    claim: BudgetClaim {
                        budget_id: budget.id,
                        period_start: *start,
                        tokens,
                        cost_minor: cost,
                    },
                    max_tokens: budget.max_tokens,
                    max_cost_minor: budget.max_cost_minor,
                    notify_user_id: budget.notify_user_id,
                })
                .collect(),
            created_at: now,
            expires_at: now + HOLD_LIFETIME,
        };
        match self.store().billing().hold(&hold).await? {
            HoldOutcome::Held => Ok(Reservation {
                hold_id: Some(hold.id),
                billable: billable.clone(),
                max_completion_tokens: if is_llm {
                    Some(u32::try_from(grant).unwrap_or(u32::MAX))
                } else {
                    billable.max_completion_tokens
                },
            }),
            HoldOutcome::InsufficientFunds { available } => {
                Err(NotHeld::Refused(UsageRefusal::InsufficientFunds {
                    needed: Money::new(cost, config.currency.clone()),
                    available,
                }))
            }
            HoldOutcome::BudgetReached { budget_id } => {
                let budget = budgets.iter().find(|b| b.id == budget_id);
                Err(NotHeld::Refused(match budget {
                    Some(budget) => self.budget_refusal(budget),
                    None => UsageRefusal::Unavailable,
                }))
            }
        }
    }

    async fn try_settle(
        &self,
        reservation: &Reservation,
        used: MeteredUse,
        usage_id: Uuid,
    ) -> Result<(), StoreError> {
        let billable = &reservation.billable;
        let config = &self.parts.config;
        let price = self.price_of(billable).await?;
        let now = hive_store::truncate_to_micros(self.parts.clock.now());
        let cost = price.cost(used.prompt_tokens, used.completion_tokens, used.quantity);
        let tokens = stored(used.prompt_tokens.saturating_add(used.completion_tokens));
        // A use that costs nothing, counts no tokens and held nothing (a free workflow step or
        // hosted period) has nothing to record: the engine's steps stay one write lighter.
        if cost == 0 && tokens == 0 && reservation.hold_id.is_none() {
            return Ok(());
        }
        let budgets = self
            .store()
            .billing()
            .budgets_for(billable.payer, billable.agent_id)
            .await?;
        let usage = UsageRow {
            id: usage_id,
            kind: billable.kind,
            agent_id: billable.agent_id,
            principal: billable.principal.clone(),
            user_id: Some(billable.payer),
            model: billable
                .model
                .chars()
                .take(hive_store::USAGE_MODEL_MAX_CHARS)
                .collect(),
            prompt_tokens: used.prompt_tokens,
            completion_tokens: used.completion_tokens,
            quantity: used.quantity,
            cost: if cost > 0 {
                Money::new(cost, config.currency.clone())
            } else {
                Money::zero(Currency::none())
            },
            created_at: now,
        };
        let debit = (cost > 0).then(|| NewEntry {
            id: Uuid::now_v7(),
            idempotency_key: format!("usage:{usage_id}"),
            kind: EntryKind::Usage,
            user_id: billable.payer,
            amount: Money::new(-cost, config.currency.clone()),
            reference: Some(usage_id.to_string()),
            memo: describe(billable, used),
            actor: billable.principal.clone(),
            created_at: now,
        });
        let principal =
            Principal::parse(&billable.principal).unwrap_or(Principal::User(billable.payer));
        let record = debit.as_ref().map(|entry| {
            self.parts.auditor.in_transaction(
                AuditEvent::new(principal, AuditAction::BillingUsageDebit)
                    .target(format!("user:{}", billable.payer))
                    .detail(serde_json::json!({
                        "transactionId": entry.id,
                        "usageId": usage_id,
                        "agentId": billable.agent_id,
                        "kind": billable.kind.as_str(),
                        "amountMinor": entry.amount.minor,
                        "currency": entry.amount.currency.as_str(),
                    })),
                &billable.meta,
            )
        });
        let settlement = Settlement {
            usage,
            hold_id: reservation.hold_id,
            debit,
            budgets: budgets
                .iter()
                .map(|budget| BudgetCharge {
                    claim: BudgetClaim {
                        budget_id: budget.id,
                        period_start: budget.period.start(now),
                        tokens,
                        cost_minor: cost,
                    },
                    max_tokens: budget.max_tokens,
                    max_cost_minor: budget.max_cost_minor,
                    notify_user_id: budget.notify_user_id,
                })
                .collect(),
            audit: record.as_ref().map(|r| r.append()),
        };
        if let hive_store::billing::Settled::Applied { alerts, .. } =
            self.store().billing().settle(&settlement).await?
        {
            for alert in alerts {
                tracing::info!(
                    budget = %alert.budget_id,
                    threshold = alert.threshold,
                    "billing: a budget reached {}% of its limit",
                    alert.threshold
                );
            }
        }
        Ok(())
    }
}

/// The ledger's memo of a use.
fn describe(billable: &Billable, used: MeteredUse) -> String {
    let text = match billable.kind {
        UsageKind::Llm => format!(
            "{} tokens of {} ({} prompt, {} completion)",
            used.prompt_tokens.saturating_add(used.completion_tokens),
            billable.model,
            used.prompt_tokens,
            used.completion_tokens
        ),
        UsageKind::HostedRun => format!("{} s of hosted run time", used.quantity),
        UsageKind::WorkflowStep => format!("{} workflow step(s)", used.quantity),
    };
    text.chars()
        .take(hive_store::billing::MEMO_MAX_CHARS)
        .collect()
}

#[async_trait]
impl UsageSink for Billing {
    async fn reserve(&self, billable: Billable) -> Result<Reservation, UsageRefusal> {
        match self.try_reserve(&billable).await {
            Ok(reservation) => Ok(reservation),
            Err(NotHeld::Refused(refusal)) => Err(refusal),
            Err(NotHeld::Store(error)) => {
                if self.parts.config.fail_open {
                    tracing::warn!(%error, "billing: the books cannot be reached; the call goes on unmetered (HIVE_BILLING_FAIL_OPEN)");
                    Ok(Reservation {
                        hold_id: None,
                        max_completion_tokens: billable.max_completion_tokens,
                        billable,
                    })
                } else {
                    tracing::warn!(%error, "billing: the books cannot be reached; the call is refused");
                    Err(UsageRefusal::Unavailable)
                }
            }
        }
    }

    async fn settle(&self, reservation: Reservation, used: MeteredUse) {
        // One id for every attempt: a retry after a commit whose answer was lost is a duplicate.
        let usage_id = Uuid::now_v7();
        let mut wait = Duration::from_millis(250);
        for attempt in 1..=SETTLE_ATTEMPTS {
            match self.try_settle(&reservation, used, usage_id).await {
                Ok(()) => return,
                Err(StoreError::Unavailable(error)) if attempt < SETTLE_ATTEMPTS => {
                    tracing::warn!(%error, attempt, "billing: a use is not settled yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(error) => {
                    tracing::error!(%error, usage = %usage_id, agent = %reservation.billable.agent_id, "billing: a use could not be settled; its hold is released when it expires");
                    return;
                }
            }
        }
    }

    async fn release(&self, reservation: Reservation) {
        if let Some(hold_id) = reservation.hold_id
            && let Err(error) = self.store().billing().release(hold_id).await
        {
            tracing::warn!(%error, hold = %hold_id, "billing: a hold was not released; it is when it expires");
        }
    }
}
