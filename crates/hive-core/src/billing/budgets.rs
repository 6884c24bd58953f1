//! Budgets and their alerts. Admins set a budget on a user (all their calls) or an agent (all
//! calls of it): tokens and/or cost per UTC day or month, local models included. Metering holds
//! and counts against them (`meter`); use at 80 % and 100 % of a limit raises an alert, shown to
//! the user the budget concerns (the agent's owner for an agent's) and, with
//! `HIVE_BILLING_ALERT_WEBHOOK_URL`, posted there through the egress guard, signed
//! (`Hive-Signature`, keyed with `HIVE_BILLING_ALERT_WEBHOOK_SECRET`).

use super::{Billing, BillingError};
use crate::kernel::audit::{AuditAction, AuditEvent};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::egress::Purpose;
use hive_egress::{CallLimits, EgressRequest};
use hive_store::billing::{AlertRow, BudgetPeriod, BudgetRow, BudgetScope, BudgetUse};
use hive_store::{Page, PageRequest};
use http::{HeaderValue, header};
use secrecy::ExposeSecret;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// The most any budget limits (tokens or minor units).
pub const MAX_LIMIT: i64 = 1_000_000_000_000_000;
/// Tries to post an alert before it is given up (it stays on the dashboard).
pub const MAX_ALERT_ATTEMPTS: u32 = 5;
/// One alert's post: from the first lookup to the answer.
const ALERT_TIMEOUT: Duration = Duration::from_secs(10);
/// Alerts posted per run of the job.
const ALERTS_PER_RUN: u32 = 50;

/// A budget to set: limits on tokens and/or cost, per day or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSpec {
    pub scope: BudgetScope,
    pub period: BudgetPeriod,
    pub max_tokens: Option<i64>,
    pub max_cost_minor: Option<i64>,
}

/// A budget with its use in the current period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStatus {
    pub budget: BudgetRow,
    pub period_start: OffsetDateTime,
    pub period_end: OffsetDateTime,
    pub used: BudgetUse,
}

impl Billing {
    /// Sets (or replaces, for the same scope and period) a budget; admins only.
    pub async fn set_budget(
        &self,
        caller: &Caller,
        spec: BudgetSpec,
        meta: &RequestMeta,
    ) -> Result<BudgetRow, BillingError> {
        if !caller.is_admin() {
            return Err(BillingError::Forbidden("only admins set budgets"));
        }
        if spec.max_tokens.is_none() && spec.max_cost_minor.is_none() {
            return Err(BillingError::Invalid(
                "a budget limits maxTokens, maxCostMinor or both".into(),
            ));
        }
        for limit in [spec.max_tokens, spec.max_cost_minor].into_iter().flatten() {
            if !(1..=MAX_LIMIT).contains(&limit) {
                return Err(BillingError::Invalid(format!(
                    "a budget's limit is 1 to {MAX_LIMIT}"
                )));
            }
        }
        let notify = match spec.scope {
            BudgetScope::User(user) => self
                .store()
                .users()
                .get(user)
                .await?
                .map(|row| row.id)
                .ok_or(BillingError::NotFound)?,
            BudgetScope::Agent(agent) => self
                .store()
                .agents()
                .get(agent, None)
                .await?
                .map(|row| row.owner_id)
                .ok_or(BillingError::NotFound)?,
        };
        let row = BudgetRow {
            id: Uuid::now_v7(),
            scope: spec.scope,
            period: spec.period,
            max_tokens: spec.max_tokens,
            max_cost_minor: spec.max_cost_minor,
            notify_user_id: notify,
            created_by: caller.principal().to_string(),
            created_at: self.now(),
        };
        let record = self.parts.auditor.in_transaction(
            AuditEvent::new(caller.principal(), AuditAction::BillingBudgetSet)
                .target(format!("{}:{}", spec.scope.kind(), spec.scope.id()))
                .detail(serde_json::json!({
                    "period": spec.period.as_str(),
                    "maxTokens": spec.max_tokens,
                    "maxCostMinor": spec.max_cost_minor,
                })),
            meta,
        );
        Ok(self
            .store()
            .billing()
            .put_budget(&row, record.append())
            .await?)
    }

    /// Deletes a budget; admins only.
    pub async fn delete_budget(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), BillingError> {
        if !caller.is_admin() {
            return Err(BillingError::Forbidden("only admins delete budgets"));
        }
        let record = self.parts.auditor.in_transaction(
            AuditEvent::new(caller.principal(), AuditAction::BillingBudgetDelete)
                .target(format!("budget:{id}")),
            meta,
        );
        if self
            .store()
            .billing()
            .delete_budget(id, record.append())
            .await?
        {
            Ok(())
        } else {
            Err(BillingError::NotFound)
        }
    }

    /// The budgets the caller may see with their use this period: an admin's, all; anyone
    /// else's, those that concern them (their own and their agents').
    pub async fn budgets(&self, caller: &Caller) -> Result<Vec<BudgetStatus>, BillingError> {
        let scope = if caller.is_admin() {
            None
        } else {
            Some(caller.user_id().ok_or(BillingError::NotFound)?)
        };
        let now = self.parts.clock.now();
        let mut found = Vec::new();
        for budget in self.store().billing().list_budgets(scope).await? {
            let period_start = budget.period.start(now);
            let used = self
                .store()
                .billing()
                .budget_use(budget.id, period_start)
                .await?;
            found.push(BudgetStatus {
                period_end: budget.period.end(now),
                period_start,
                used,
                budget,
            });
        }
        Ok(found)
    }

    /// The caller's alerts, newest first (an admin may ask for everyone's).
    pub async fn alerts(
        &self,
        caller: &Caller,
        everyone: bool,
        page: &PageRequest,
    ) -> Result<Page<AlertRow>, BillingError> {
        let user = if everyone {
            if !caller.is_admin() {
                return Err(BillingError::Forbidden(
                    "only admins read everyone's alerts",
                ));
            }
            None
        } else {
            Some(caller.user_id().ok_or(BillingError::NotFound)?)
        };
        Ok(self.store().billing().alerts(user, page).await?)
    }

    /// Posts the alerts not delivered yet to `HIVE_BILLING_ALERT_WEBHOOK_URL`; answers how many
    /// were delivered and how many failed. Without the URL, nothing is posted.
    pub async fn deliver_alerts(&self) -> Result<(usize, usize), BillingError> {
        let Some(url) = self.parts.config.alert_webhook_url.clone() else {
            return Ok((0, 0));
        };
        let pending = self
            .store()
            .billing()
            .undelivered_alerts(MAX_ALERT_ATTEMPTS, ALERTS_PER_RUN)
            .await?;
        let (mut delivered, mut failed) = (0, 0);
        for alert in pending {
            let Some(budget) = self.store().billing().get_budget(alert.budget_id).await? else {
                continue;
            };
            let body = serde_json::json!({
                "type": "billing.budget.alert",
                "alertId": alert.id,
                "budgetId": budget.id,
                "scope": budget.scope.kind(),
                "scopeId": budget.scope.id(),
                "period": budget.period.as_str(),
                "periodStart": alert.period_start.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                "thresholdPercent": alert.threshold,
                "maxTokens": budget.max_tokens,
                "maxCostMinor": budget.max_cost_minor,
                "currency": self.parts.config.currency.as_str(),
                "userId": alert.user_id,
            })
            .to_string();
            let ok = self.post_alert(url.as_str(), body).await;
            let at = ok.then(|| self.now());
            self.store()
                .billing()
                .note_alert_attempt(alert.id, at)
                .await?;
            if ok {
                delivered += 1;
            } else {
                failed += 1;
            }
        }
        Ok((delivered, failed))
    }

    async fn post_alert(&self, url: &str, body: String) -> bool {
        let mut request = EgressRequest::post(url.to_owned())
            .without_redirects()
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        if let Some(secret) = &self.parts.config.alert_webhook_secret {
            let signed = hive_crypto::webhook_signature::header(
                secret.expose_secret().as_bytes(),
                self.parts.clock.now().unix_timestamp(),
                body.as_bytes(),
            );
            if let Ok(value) = HeaderValue::from_str(&signed) {
                request = request.header(http::HeaderName::from_static("hive-signature"), value);
            }
        }
        let purpose = Purpose {
            principal: crate::kernel::audit::Principal::Job(super::jobs::DELIVER_ALERTS),
            feature: "billing_alert",
            meta: RequestMeta::default(),
        };
        match self
            .parts
            .egress
            .send(
                request.body(body),
                &CallLimits::new(ALERT_TIMEOUT, 64 * 1024),
                &purpose,
            )
            .await
        {
            Ok(response) if response.status().is_success() => true,
            Ok(response) => {
                tracing::warn!(
                    status = response.status().as_u16(),
                    "billing: the alert webhook refused an alert"
                );
                false
            }
            Err(error) => {
                tracing::warn!(%error, "billing: the alert webhook cannot be reached");
                false
            }
        }
    }
}
