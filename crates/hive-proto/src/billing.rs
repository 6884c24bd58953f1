//! Billing's wire types: the wallet, the ledger, usage, prices and adjustments; and how an
//! amount of minor units is written as a decimal of its currency (integers only).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// What Stripe can do here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StripeFeaturesView {
    pub checkout_enabled: bool,
    pub customer_portal_enabled: bool,
    pub subscription_checkout_enabled: bool,
}

/// `GET /api/v1/billing/wallet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletView {
    pub user_id: Uuid,
    /// The wallet's money, in minor units of `currency` (cents for `usd`).
    pub balance_minor: i64,
    pub currency: String,
    /// The last change (`null`: never).
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// Held by calls under way.
    pub held_minor: i64,
    /// What the user owes (paid first by the next money in).
    pub owed_minor: i64,
    /// `BILLING_USAGE_MINOR_PER_1K_TOKENS`: the default price of 1,000 tokens (0: free).
    #[serde(rename = "billingUsageMinorPer1kTokens")]
    pub billing_usage_minor_per_1k_tokens: i64,
    pub hosted_minor_per_hour: i64,
    pub workflow_step_minor: i64,
    /// Whether billable calls must be paid from the wallet (`HIVE_BILLING_ENFORCE`).
    pub enforced: bool,
    pub stripe: StripeFeaturesView,
}

/// One ledger transaction, as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntryView {
    pub id: Uuid,
    /// `top_up`, `invoice`, `refund`, `usage` or `adjustment`.
    pub kind: String,
    /// Positive: money in; negative: money out.
    pub signed_amount_minor: i64,
    pub currency: String,
    pub reference: Option<String>,
    pub memo: String,
    pub actor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One group of `GET /api/v1/billing/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageGroupView {
    /// The agent's id, the model, or the UTC day (`YYYY-MM-DD`).
    pub key: String,
    /// `llm`, `hosted_run` or `workflow_step`.
    pub kind: String,
    pub records: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Seconds of run time or steps.
    pub quantity: i64,
    pub cost_minor: i64,
}

/// `GET /api/v1/billing/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub group_by: String,
    pub currency: String,
    pub groups: Vec<UsageGroupView>,
}

/// A model's token price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceView {
    pub model: String,
    pub prompt_minor_per_1k: i64,
    pub completion_minor_per_1k: i64,
}

/// `GET /api/v1/billing/prices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricesView {
    pub currency: String,
    /// `BILLING_USAGE_MINOR_PER_1K_TOKENS`, for every model without its own price.
    pub default_minor_per_1k_tokens: i64,
    pub hosted_minor_per_hour: i64,
    pub workflow_step_minor: i64,
    pub models: Vec<PriceView>,
}

/// `PUT /api/v1/billing/prices/{model}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceRequest {
    pub prompt_minor_per_1k: i64,
    pub completion_minor_per_1k: i64,
}

/// `POST /api/v1/billing/adjustments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustmentRequest {
    pub user_id: Uuid,
    /// Positive: credit; negative: debit.
    pub amount_minor: i64,
    pub reason: String,
}

/// What `POST /api/webhooks/stripe` answers when it took the delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StripeReceiptView {
    pub received: bool,
    /// `posted`, `linked`, `duplicate` or `ignored`.
    pub outcome: String,
    pub transaction_id: Option<Uuid>,
}

/// `POST /api/v1/billing/budgets` (admins): a budget on a user or an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetRequest {
    /// `user` or `agent`.
    pub scope: String,
    pub scope_id: Uuid,
    /// `day` or `month` (UTC).
    pub period: String,
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub max_cost_minor: Option<i64>,
}

/// A budget with its use in the current period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetView {
    pub id: Uuid,
    pub scope: String,
    pub scope_id: Uuid,
    pub period: String,
    pub max_tokens: Option<i64>,
    pub max_cost_minor: Option<i64>,
    /// Who is told when it nears and reaches a limit.
    pub notify_user_id: Uuid,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub period_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub period_end: OffsetDateTime,
    pub used_tokens: i64,
    pub used_cost_minor: i64,
    /// Held by calls under way.
    pub held_tokens: i64,
    pub held_cost_minor: i64,
}

/// A budget's use that reached 80 % or 100 % of a limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    pub id: Uuid,
    pub budget_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub period_start: OffsetDateTime,
    pub threshold_percent: u8,
    pub user_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the alert webhook took it (`null`: not posted, or no webhook).
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

/// `POST /api/v1/billing/checkout-session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckoutRequest {
    /// `payment` (a top-up, the default) or `subscription`.
    #[serde(default)]
    pub mode: Option<String>,
    /// A top-up's amount, in minor units of Hive's currency.
    #[serde(default)]
    pub amount_minor: Option<i64>,
    /// Must be Hive's currency when given.
    #[serde(default)]
    pub currency: Option<String>,
}

/// Where to send the user to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutView {
    pub url: String,
    pub session_id: String,
    pub mode: String,
}

/// `POST /api/v1/billing/customer-portal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalView {
    pub url: String,
}

/// ISO 4217's currencies without a minor unit (exponent 0): their minor unit is the unit.
pub const ZERO_DECIMAL_CURRENCIES: [&str; 17] = [
    "bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "pyg", "rwf", "ugx", "uyi", "vnd",
    "vuv", "xaf", "xof", "xpf",
];

/// ISO 4217's currencies whose minor unit is a thousandth (exponent 3).
pub const THREE_DECIMAL_CURRENCIES: [&str; 7] = ["bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"];

/// A currency's decimals (ISO 4217's exponent): 0, 3, or 2 for every other currency.
pub fn currency_decimals(currency: &str) -> u32 {
    let code = currency.to_ascii_lowercase();
    if ZERO_DECIMAL_CURRENCIES.contains(&code.as_str()) {
        0
    } else if THREE_DECIMAL_CURRENCIES.contains(&code.as_str()) {
        3
    } else {
        2
    }
}

/// `units` minor units as a decimal of major units after `sign` (`12.34`, `-0.05`, `1234`),
/// without the currency's code; integer arithmetic only.
pub fn decimal_of(sign: &str, units: u64, currency: &str) -> String {
    let places = currency_decimals(currency);
    if places == 0 {
        return format!("{sign}{units}");
    }
    let scale = 10u64.pow(places);
    let width = places as usize;
    format!("{sign}{}.{:0width$}", units / scale, units % scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_with_their_currencys_decimals() {
        assert_eq!(decimal_of("", 1234, "usd"), "12.34");
        assert_eq!(decimal_of("-", 5, "eur"), "-0.05");
        assert_eq!(decimal_of("", 1234, "jpy"), "1234");
        assert_eq!(decimal_of("+", 1234, "KWD"), "+1.234");
        assert_eq!(decimal_of("", u64::MAX, "usd"), "184467440737095516.15");
        for code in ZERO_DECIMAL_CURRENCIES {
            assert_eq!(currency_decimals(code), 0, "{code}");
        }
        for code in THREE_DECIMAL_CURRENCIES {
            assert_eq!(currency_decimals(code), 3, "{code}");
        }
    }
}
