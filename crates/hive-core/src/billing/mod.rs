//! Billing: wallets and their double-entry ledger, Stripe's events, the price table, metering
//! of every billable use (held before it starts, settled after), budgets and their alerts.
//!
//! No domain imports this one: the composition root hands it to the domains that make
//! billable use as their [`crate::kernel::ports::UsageSink`] (`meter`). Stripe's webhook
//! (`stripe`) credits and debits wallets; admins adjust them with a reason. Every ledger
//! transaction carries a unique idempotency key and its audit record, written in the
//! transaction that makes its effect.

pub mod budgets;
pub mod checkout;
pub mod jobs;
pub mod meter;
pub mod pricing;
pub mod stripe;

use crate::kernel::audit::{AuditAction, AuditEvent, Auditor};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::config::BillingConfig;
use crate::kernel::egress::Egress;
use hive_proto::SharedClock;
use hive_store::billing::{
    EntryKind, LedgerEntry, Money, NewEntry, Posted, PriceRow, UsageGroup, UsageGrouping, WalletRow,
};
use hive_store::{AuditOutcome, Page, PageRequest, Store, UsageRow};
use pricing::{PriceTable, TokenPrice};
use serde::Serialize;
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

crate::kernel::refusal::domain_error!(
    /// Why a billing call was refused. Messages are safe to show to the caller.
    BillingError,
    "billing"
);

/// The longest reason an adjustment keeps.
pub const MAX_REASON_CHARS: usize = 500;
/// The longest span usage is read over at once.
pub const MAX_USAGE_DAYS: i64 = 366;
/// The most usage records one CSV export holds.
pub const MAX_EXPORT_ROWS: usize = 100_000;

/// What billing needs.
#[derive(Clone)]
pub struct BillingParts {
    pub store: Arc<dyn Store>,
    pub auditor: Auditor,
    pub clock: SharedClock,
    pub config: BillingConfig,
    pub egress: Arc<Egress>,
    /// `AUTH_URL`: where Stripe sends users back.
    pub public_url: String,
}

/// The billing service.
#[derive(Clone)]
pub struct Billing {
    parts: Arc<BillingParts>,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing")
            .field("currency", &self.parts.config.currency)
            .finish_non_exhaustive()
    }
}

/// What Stripe can do here, as the wallet shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StripeFeatures {
    pub checkout_enabled: bool,
    pub customer_portal_enabled: bool,
    pub subscription_checkout_enabled: bool,
}

/// A user's wallet as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletView {
    pub user_id: Uuid,
    pub balance_minor: i64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// Held by calls under way.
    pub held_minor: i64,
    /// What the user owes (a refund of spent money; a use that cost more than was free).
    pub owed_minor: i64,
    /// `BILLING_USAGE_MINOR_PER_1K_TOKENS` (0: tokens are free unless a model has a price).
    pub billing_usage_minor_per1k_tokens: i64,
    pub hosted_minor_per_hour: i64,
    pub workflow_step_minor: i64,
    /// Whether billable calls must be paid from the wallet.
    pub enforced: bool,
    pub stripe: StripeFeatures,
}

impl Billing {
    pub fn new(parts: BillingParts) -> Self {
        Self {
            parts: Arc::new(parts),
        }
    }

    pub fn config(&self) -> &BillingConfig {
        &self.parts.config
    }

    fn store(&self) -> &dyn Store {
        self.parts.store.as_ref()
    }

    fn now(&self) -> OffsetDateTime {
        hive_store::truncate_to_micros(self.parts.clock.now())
    }

    /// What Stripe can do, from the configuration.
    pub fn stripe_features(&self) -> StripeFeatures {
        let stripe = &self.parts.config.stripe;
        let key = stripe.secret_key.is_some();
        StripeFeatures {
            checkout_enabled: key,
            customer_portal_enabled: key,
            subscription_checkout_enabled: key && stripe.subscription_price_id.is_some(),
        }
    }

    /// Whose billing a caller reads: their own, or (admins only) the user they name.
    fn account_of(&self, caller: &Caller, user_id: Option<Uuid>) -> Result<Uuid, BillingError> {
        let own = caller.user_id().ok_or(BillingError::NotFound)?;
        match user_id {
            Some(other) if other != own => {
                if caller.is_admin() {
                    Ok(other)
                } else {
                    Err(BillingError::NotFound)
                }
            }
            _ => Ok(own),
        }
    }

    pub async fn wallet(
        &self,
        caller: &Caller,
        user_id: Option<Uuid>,
    ) -> Result<WalletView, BillingError> {
        let user = self.account_of(caller, user_id)?;
        let config = &self.parts.config;
        let row: WalletRow = self
            .store()
            .billing()
            .wallet(user, &config.currency)
            .await?;
        Ok(WalletView {
            user_id: user,
            balance_minor: row.balance.minor,
            currency: row.balance.currency.to_string(),
            updated_at: row.updated_at,
            held_minor: row.held.minor,
            owed_minor: row.owed.minor,
            billing_usage_minor_per1k_tokens: config.minor_per_1k_tokens,
            hosted_minor_per_hour: config.hosted_minor_per_hour,
            workflow_step_minor: config.workflow_step_minor,
            enforced: config.enforce,
            stripe: self.stripe_features(),
        })
    }

    pub async fn ledger(
        &self,
        caller: &Caller,
        user_id: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>, BillingError> {
        let user = self.account_of(caller, user_id)?;
        Ok(self.store().billing().entries(user, page).await?)
    }

    fn span(
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<(OffsetDateTime, OffsetDateTime), BillingError> {
        if until <= since || until - since > time::Duration::days(MAX_USAGE_DAYS) {
            return Err(BillingError::Invalid(format!(
                "usage is read over 1 second to {MAX_USAGE_DAYS} days (from before to)"
            )));
        }
        Ok((since, until))
    }

    /// The caller's (or, for admins, a user's) usage from `since` to `until`, grouped.
    pub async fn usage(
        &self,
        caller: &Caller,
        user_id: Option<Uuid>,
        since: OffsetDateTime,
        until: OffsetDateTime,
        grouping: UsageGrouping,
    ) -> Result<Vec<UsageGroup>, BillingError> {
        let user = self.account_of(caller, user_id)?;
        let (since, until) = Self::span(since, until)?;
        Ok(self
            .store()
            .billing()
            .usage_groups(user, since, until, grouping)
            .await?)
    }

    /// The usage records from `since` to `until` as CSV (RFC 4180), newest first, at most
    /// [`MAX_EXPORT_ROWS`].
    pub async fn usage_csv(
        &self,
        caller: &Caller,
        user_id: Option<Uuid>,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<String, BillingError> {
        let user = self.account_of(caller, user_id)?;
        let (since, until) = Self::span(since, until)?;
        let mut csv = String::from(
            "id,created_at,kind,agent_id,principal,model,prompt_tokens,completion_tokens,quantity,cost_minor,currency\r\n",
        );
        let mut cursor: Option<String> = None;
        let mut rows = 0;
        loop {
            let page = PageRequest::new(hive_store::MAX_PAGE_SIZE, cursor.as_deref())
                .map_err(|_| BillingError::Internal("a usage page cannot be read".into()))?;
            let found = self
                .store()
                .billing()
                .usage_records(user, since, until, &page)
                .await?;
            for row in &found.items {
                csv_row(&mut csv, row);
                rows += 1;
            }
            match found.next_cursor {
                Some(next) if rows < MAX_EXPORT_ROWS => cursor = Some(next),
                _ => break,
            }
        }
        Ok(csv)
    }

    /// The price table in force.
    pub async fn price_table(&self) -> Result<PriceTable, BillingError> {
        Ok(PriceTable {
            default: TokenPrice::flat(self.parts.config.minor_per_1k_tokens),
            models: self.store().billing().prices().await?,
        })
    }

    /// Sets (`Some`) or removes (`None`) a model's token price; admins only.
    pub async fn set_price(
        &self,
        caller: &Caller,
        model: &str,
        price: Option<TokenPrice>,
        meta: &RequestMeta,
    ) -> Result<bool, BillingError> {
        if !caller.is_admin() {
            return Err(BillingError::Forbidden("only admins set prices"));
        }
        let model = model.trim();
        if model.is_empty() || model.chars().count() > hive_store::USAGE_MODEL_MAX_CHARS {
            return Err(BillingError::Invalid(
                "a model's name is 1 to 200 characters".into(),
            ));
        }
        if let Some(price) = price
            && (price.prompt_minor_per_1k < 0
                || price.completion_minor_per_1k < 0
                || price.prompt_minor_per_1k > 1_000_000_000
                || price.completion_minor_per_1k > 1_000_000_000)
        {
            return Err(BillingError::Invalid(
                "a price is 0 to 1000000000 minor units per 1,000 tokens".into(),
            ));
        }
        let row = price.map(|price| PriceRow {
            model: model.to_owned(),
            prompt_minor_per_1k: price.prompt_minor_per_1k,
            completion_minor_per_1k: price.completion_minor_per_1k,
            updated_at: self.now(),
        });
        let record = self.parts.auditor.in_transaction(
            AuditEvent::new(caller.principal(), AuditAction::BillingPriceSet)
                .target(format!("model:{model}"))
                .detail(serde_json::json!({
                    "promptMinorPer1k": price.map(|p| p.prompt_minor_per_1k),
                    "completionMinorPer1k": price.map(|p| p.completion_minor_per_1k),
                })),
            meta,
        );
        Ok(self
            .store()
            .billing()
            .put_price(model, row.as_ref(), record.append())
            .await?)
    }

    /// An admin's adjustment of a user's wallet (positive: credit; negative: debit, beyond
    /// the wallet into arrears), with its reason. `key` makes a repeat of the same request
    /// change nothing (the request's `Idempotency-Key`, else its request id).
    pub async fn adjust(
        &self,
        caller: &Caller,
        user_id: Uuid,
        amount_minor: i64,
        reason: &str,
        key: &str,
        meta: &RequestMeta,
    ) -> Result<Adjusted, BillingError> {
        if !caller.is_admin() {
            return Err(BillingError::Forbidden("only admins adjust wallets"));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(BillingError::Invalid(format!(
                "an adjustment's reason is 1 to {MAX_REASON_CHARS} characters"
            )));
        }
        if amount_minor == 0 || amount_minor.unsigned_abs() > 1_000_000_000_000 {
            return Err(BillingError::Invalid(
                "an adjustment moves 1 to 1000000000000 minor units either way".into(),
            ));
        }
        if key.is_empty() || key.chars().count() > 128 {
            return Err(BillingError::Invalid(
                "an adjustment's idempotency key is 1 to 128 characters".into(),
            ));
        }
        if self.store().users().get(user_id).await?.is_none() {
            return Err(BillingError::NotFound);
        }
        let entry = NewEntry {
            id: Uuid::now_v7(),
            idempotency_key: format!("adjustment:{key}"),
            kind: EntryKind::Adjustment,
            user_id,
            amount: Money::new(amount_minor, self.parts.config.currency.clone()),
            reference: None,
            memo: reason.to_owned(),
            actor: caller.principal().to_string(),
            created_at: self.now(),
        };
        let record = self.parts.auditor.in_transaction(
            AuditEvent::new(caller.principal(), AuditAction::BillingAdjustment)
                .target(format!("user:{user_id}"))
                .detail(serde_json::json!({
                    "transactionId": entry.id,
                    "amountMinor": amount_minor,
                    "currency": entry.amount.currency.as_str(),
                    "reason": reason,
                })),
            meta,
        );
        match self.store().billing().post(&entry, record.append()).await? {
            Posted::Applied { entry, .. } => Ok(Adjusted {
                entry: *entry,
                repeated: false,
            }),
            Posted::Duplicate => {
                let earlier = self
                    .store()
                    .billing()
                    .entry_by_key(&entry.idempotency_key)
                    .await?
                    .ok_or(BillingError::Conflict(
                        "this idempotency key was used for another change",
                    ))?;
                if earlier.user_id != user_id || earlier.amount != entry.amount {
                    return Err(BillingError::Conflict(
                        "this idempotency key was used for another adjustment",
                    ));
                }
                Ok(Adjusted {
                    entry: earlier,
                    repeated: true,
                })
            }
        }
    }

    /// Builds a change record of billing's, for the store's transaction.
    fn record(
        &self,
        principal: crate::kernel::audit::Principal,
        action: AuditAction,
        target: String,
        detail: serde_json::Value,
        meta: &RequestMeta,
    ) -> crate::kernel::audit::TransactionRecord {
        self.parts.auditor.in_transaction(
            AuditEvent {
                principal,
                action,
                target: Some(target),
                outcome: AuditOutcome::Success,
                detail,
            },
            meta,
        )
    }
}

/// An adjustment made, or found made by an earlier request with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjusted {
    pub entry: LedgerEntry,
    pub repeated: bool,
}

/// One CSV field, quoted when it must be; a leading formula character is neutralized so a
/// spreadsheet never runs a principal or model name as a formula.
fn csv_field(out: &mut String, value: &str) {
    let risky = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let needs_quotes = risky || value.contains([',', '"', '\n', '\r']);
    if needs_quotes {
        out.push('"');
        if risky {
            out.push('\'');
        }
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn csv_row(out: &mut String, row: &UsageRow) {
    let created = row
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let fields = [
        row.id.to_string(),
        created,
        row.kind.as_str().to_owned(),
        row.agent_id.to_string(),
        row.principal.clone(),
        row.model.clone(),
        row.prompt_tokens.to_string(),
        row.completion_tokens.to_string(),
        row.quantity.to_string(),
        row.cost.minor.to_string(),
        row.cost.currency.to_string(),
    ];
    for (n, field) in fields.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        csv_field(out, field);
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralized() {
        let mut out = String::new();
        csv_field(&mut out, "plain");
        out.push('|');
        csv_field(&mut out, "a,b \"c\"");
        out.push('|');
        csv_field(&mut out, "=HYPERLINK(\"x\")");
        assert_eq!(out, "plain|\"a,b \"\"c\"\"\"|\"'=HYPERLINK(\"\"x\"\")\"");
    }
}
