//! Billing's books: a double-entry ledger in integer minor units, the holds of calls under way,
//! budgets and their counters, alerts, Stripe customers and the price table.
//!
//! Every ledger transaction carries a unique idempotency key, enforced by the database in the
//! transaction that makes its effect; its postings sum to zero. A user has two accounts per
//! currency: the wallet (never below zero, nor below what is held on it) and arrears (what the
//! user owes, never above zero: a refund of spent money or a call that cost more than it could
//! pay). The system accounts (funding from Stripe, usage income, adjustments) are the other side
//! of each transaction; only users' accounts keep a balance row, updated in the same
//! transaction as their postings, so no row is written by every user's calls.

use crate::{Page, PageRequest, StoreError, UsageRow};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AuditAppend;

/// Longest idempotency key (a Stripe event id, `usage:<uuid>`, an adjustment's request id).
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 255;
/// Longest reference (a payment intent, an invoice, a usage record).
pub const REFERENCE_MAX_CHARS: usize = 255;
/// Longest memo (what the user reads in the ledger).
pub const MEMO_MAX_CHARS: usize = 500;
/// Longest Stripe customer id kept.
pub const CUSTOMER_ID_MAX_CHARS: usize = 255;

/// A currency's ISO 4217 code, three lower-case letters.
pub fn check_currency(code: &str) -> Result<(), StoreError> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "a currency is three lower-case letters (ISO 4217)".into(),
        ))
    }
}

/// A currency: its ISO 4217 code in lower case, checked when made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(String);

impl Currency {
    pub fn new(code: &str) -> Result<Self, StoreError> {
        check_currency(code)?;
        Ok(Self(code.to_owned()))
    }

    /// ISO 4217's "no currency" (`xxx`): what a use that cost nothing is counted in.
    pub fn none() -> Self {
        Self(crate::NO_CURRENCY.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount of money: whole minor units (cents for `usd`) of a currency. Money is never a
/// float; sums of different currencies are never made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// The same amount the other way (money in becomes money out); saturates at the edge.
    pub fn negated(&self) -> Self {
        Self::new(self.minor.saturating_neg(), self.currency.clone())
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (minor units)", self.minor, self.currency)
    }
}

/// The accounts of the books.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountKind {
    /// A user's money.
    Wallet,
    /// What a user owes (zero or negative).
    Arrears,
    /// Money from and back to Stripe (top-ups, invoices, refunds).
    Funding,
    /// Income from usage.
    Usage,
    /// The other side of admins' adjustments.
    Adjustments,
}

impl AccountKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Wallet => "wallet",
            Self::Arrears => "arrears",
            Self::Funding => "funding",
            Self::Usage => "usage",
            Self::Adjustments => "adjustments",
        }
    }

    pub fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "wallet" => Self::Wallet,
            "arrears" => Self::Arrears,
            "funding" => Self::Funding,
            "usage" => Self::Usage,
            "adjustments" => Self::Adjustments,
            other => {
                return Err(StoreError::Backend(format!(
                    "unknown billing account kind {other:?}"
                )));
            }
        })
    }

    /// Whether the account belongs to a user (and keeps a balance row).
    pub const fn is_users(self) -> bool {
        matches!(self, Self::Wallet | Self::Arrears)
    }

    /// The account's unique key: a user's per user and currency, a system one per currency.
    pub fn key(self, user_id: Option<Uuid>, currency: &str) -> String {
        match user_id.filter(|_| self.is_users()) {
            Some(user) => format!("{}:{currency}:{user}", self.as_str()),
            None => format!("{}:{currency}", self.as_str()),
        }
    }
}

/// What a ledger transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A one-time payment (Stripe `payment_intent.succeeded`).
    TopUp,
    /// An invoice paid (Stripe `invoice.paid`, subscriptions included).
    Invoice,
    /// Money returned (Stripe `refund.created`).
    Refund,
    /// A billable use, priced.
    Usage,
    /// An admin's correction, with its reason.
    Adjustment,
}

impl EntryKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "top_up",
            Self::Invoice => "invoice",
            Self::Refund => "refund",
            Self::Usage => "usage",
            Self::Adjustment => "adjustment",
        }
    }

    pub fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "top_up" => Self::TopUp,
            "invoice" => Self::Invoice,
            "refund" => Self::Refund,
            "usage" => Self::Usage,
            "adjustment" => Self::Adjustment,
            other => {
                return Err(StoreError::Backend(format!(
                    "unknown ledger entry kind {other:?}"
                )));
            }
        })
    }

    /// The system account on the other side of the user's.
    pub const fn counter_account(self) -> AccountKind {
        match self {
            Self::TopUp | Self::Invoice | Self::Refund => AccountKind::Funding,
            Self::Usage => AccountKind::Usage,
            Self::Adjustment => AccountKind::Adjustments,
        }
    }
}

/// A ledger transaction to make: `amount_minor` is its effect on the user (positive: money
/// in, negative: money out), which the store splits between the wallet and arrears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub id: Uuid,
    pub idempotency_key: String,
    pub kind: EntryKind,
    pub user_id: Uuid,
    /// Positive: money in for the user; negative: money out.
    pub amount: Money,
    pub reference: Option<String>,
    pub memo: String,
    /// Who made it, as the audit log names them.
    pub actor: String,
    pub created_at: OffsetDateTime,
}

/// Refuses an entry the databases would refuse less clearly.
pub fn check_entry(entry: &NewEntry) -> Result<(), StoreError> {
    check_currency(entry.amount.currency.as_str())?;
    let key = entry.idempotency_key.chars().count();
    if key == 0 || key > IDEMPOTENCY_KEY_MAX_CHARS {
        return Err(StoreError::Invalid(format!(
            "an idempotency key is 1 to {IDEMPOTENCY_KEY_MAX_CHARS} characters"
        )));
    }
    if entry.amount.minor == 0 || entry.amount.minor == i64::MIN {
        return Err(StoreError::Invalid(
            "a ledger entry moves a non-zero amount".into(),
        ));
    }
    if entry
        .reference
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.chars().count() > REFERENCE_MAX_CHARS)
    {
        return Err(StoreError::Invalid(format!(
            "a reference is 1 to {REFERENCE_MAX_CHARS} characters"
        )));
    }
    if entry.memo.chars().count() > MEMO_MAX_CHARS {
        return Err(StoreError::Invalid(format!(
            "a memo is at most {MEMO_MAX_CHARS} characters"
        )));
    }
    Ok(())
}

/// One line of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub account: AccountKind,
    pub amount_minor: i64,
}

/// A user's two accounts as a transaction finds them (held still until it ends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserBalances {
    pub wallet_minor: i64,
    pub held_minor: i64,
    /// Zero or negative.
    pub arrears_minor: i64,
}

/// The postings of a transaction moving `amount` for a user whose accounts stand at `found`,
/// against `counter`: money in pays arrears first, then fills the wallet; money out takes what
/// the wallet has free (beyond what is held) and puts the rest in arrears. The postings always
/// sum to zero, and the wallet never goes below what is held on it.
pub fn split_postings(amount: i64, found: UserBalances, counter: AccountKind) -> Vec<Posting> {
    let free = found.wallet_minor.saturating_sub(found.held_minor).max(0);
    let owed = found.arrears_minor.saturating_neg().max(0);
    let (mut wallet, mut arrears) = if amount > 0 {
        let to_arrears = amount.min(owed);
        (amount - to_arrears, to_arrears)
    } else {
        let from_wallet = amount.saturating_neg().min(free);
        (-from_wallet, amount + from_wallet)
    };
    // Money freed while something is owed (a hold released after a refund) pays it off.
    let sweep = (free + wallet).min(owed - arrears).max(0);
    wallet -= sweep;
    arrears += sweep;
    [
        (AccountKind::Wallet, wallet),
        (AccountKind::Arrears, arrears),
        (counter, -amount),
    ]
    .into_iter()
    .filter(|(_, amount_minor)| *amount_minor != 0)
    .map(|(account, amount_minor)| Posting {
        account,
        amount_minor,
    })
    .collect()
}

/// A ledger transaction as stored, with what it did to the user's accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub idempotency_key: String,
    pub kind: EntryKind,
    pub user_id: Uuid,
    /// Its effect on the user: positive in, negative out.
    pub amount: Money,
    pub reference: Option<String>,
    pub memo: String,
    pub actor: String,
    pub created_at: OffsetDateTime,
}

/// What posting an entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// The entry is in the books, with its postings.
    Applied {
        entry: Box<LedgerEntry>,
        postings: Vec<Posting>,
    },
    /// An entry with this idempotency key is in the books already; nothing changed.
    Duplicate,
}

/// A user's money in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRow {
    pub user_id: Uuid,
    pub balance: Money,
    pub held: Money,
    /// What the user owes, zero or more.
    pub owed: Money,
    /// The last change (`None`: never).
    pub updated_at: Option<OffsetDateTime>,
}

/// Whose budget: a user's (all their calls) or an agent's (all calls of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetScope {
    User(Uuid),
    Agent(Uuid),
}

impl BudgetScope {
    pub const fn kind(self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Agent(_) => "agent",
        }
    }

    pub const fn id(self) -> Uuid {
        match self {
            Self::User(id) | Self::Agent(id) => id,
        }
    }

    pub fn from_stored(kind: &str, id: Uuid) -> Result<Self, StoreError> {
        match kind {
            "user" => Ok(Self::User(id)),
            "agent" => Ok(Self::Agent(id)),
            other => Err(StoreError::Backend(format!(
                "unknown budget scope {other:?}"
            ))),
        }
    }
}

/// A budget's period, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetPeriod {
    Day,
    Month,
}

impl BudgetPeriod {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    pub fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            other => Err(StoreError::Invalid(format!(
                "a budget's period is day or month, not {other:?}"
            ))),
        }
    }

    /// The start (00:00 UTC) of the period `now` falls in.
    pub fn start(self, now: OffsetDateTime) -> OffsetDateTime {
        let day = now.to_offset(time::UtcOffset::UTC).date();
        let first = match self {
            Self::Day => day,
            Self::Month => day.replace_day(1).unwrap_or(day),
        };
        first.midnight().assume_utc()
    }

    /// The start of the next period.
    pub fn end(self, now: OffsetDateTime) -> OffsetDateTime {
        let start = self.start(now);
        match self {
            Self::Day => start + time::Duration::days(1),
            Self::Month => {
                let date = start.date();
                let (year, month) = match date.month() {
                    time::Month::December => (date.year() + 1, time::Month::January),
                    month => (date.year(), month.next()),
                };
                time::Date::from_calendar_date(year, month, 1)
                    .map_or(start + time::Duration::days(31), |d| {
                        d.midnight().assume_utc()
                    })
            }
        }
    }
}

/// A limit on tokens and/or cost over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRow {
    pub id: Uuid,
    pub scope: BudgetScope,
    pub period: BudgetPeriod,
    pub max_tokens: Option<i64>,
    pub max_cost_minor: Option<i64>,
    /// Who is told when it nears and reaches its limit: the user, or the agent's owner.
    pub notify_user_id: Uuid,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

/// A budget's use in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetUse {
    pub tokens: i64,
    pub cost_minor: i64,
    pub held_tokens: i64,
    pub held_cost_minor: i64,
}

/// What one call takes from (or holds on) one budget.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BudgetClaim {
    pub budget_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub period_start: OffsetDateTime,
    pub tokens: i64,
    pub cost_minor: i64,
}

/// A call's hold: its estimated cost on the wallet (when `wallet` says so) and its estimated
/// tokens and cost on each budget, until it is settled or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    pub id: Uuid,
    pub user_id: Uuid,
    pub agent_id: Uuid,
    /// Held on the wallet of its currency (0: nothing held there).
    pub cost: Money,
    pub tokens: i64,
    /// What it holds on each budget, with the budget's limits.
    pub budgets: Vec<BudgetCharge>,
    pub created_at: OffsetDateTime,
    /// A hold not settled by then is released by the leader's job.
    pub expires_at: OffsetDateTime,
}

/// Whether a hold was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    Held,
    /// The wallet's free money (less what its user owes) is short of the hold.
    InsufficientFunds {
        available: Money,
    },
    /// This budget has no room for the hold.
    BudgetReached {
        budget_id: Uuid,
    },
}

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub agent_id: Uuid,
    pub cost: Money,
    pub tokens: i64,
    pub budgets: Vec<BudgetClaim>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A budget whose use crossed 80 % or 100 % of a limit in a period (once each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub id: Uuid,
    pub budget_id: Uuid,
    pub period_start: OffsetDateTime,
    pub threshold: u8,
    pub user_id: Uuid,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
    pub attempts: u32,
}

/// What a call takes from one budget, with the budget's limits (a hold checks them; a
/// settlement raises alerts by them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetCharge {
    pub claim: BudgetClaim,
    pub max_tokens: Option<i64>,
    pub max_cost_minor: Option<i64>,
    pub notify_user_id: Uuid,
}

/// The end of a billable use: its record, its debit (when it cost something), the hold it
/// releases and the budgets it counts against.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub usage: UsageRow,
    pub hold_id: Option<Uuid>,
    pub debit: Option<NewEntry>,
    pub budgets: Vec<BudgetCharge>,
    /// The debit's audit record (required with a debit).
    pub audit: Option<AuditAppend<'a>>,
}

/// What settling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Applied {
        entry: Option<Box<LedgerEntry>>,
        postings: Vec<Posting>,
        /// Alerts this use raised.
        alerts: Vec<AlertRow>,
    },
    /// The usage record exists already; nothing changed.
    Duplicate,
}

/// The price of a model's tokens, in minor units per 1,000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRow {
    pub model: String,
    pub prompt_minor_per_1k: i64,
    pub completion_minor_per_1k: i64,
    pub updated_at: OffsetDateTime,
}

/// The usage of one group (an agent, a model, a day) over a span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageGroup {
    /// The agent's id, the model, or the day (`YYYY-MM-DD`).
    pub key: String,
    pub kind: String,
    pub records: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub quantity: i64,
    pub cost_minor: i64,
}

/// How [`BillingRepo::usage_groups`] groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGrouping {
    Agent,
    Model,
    Day,
}

/// Something wrong in the books, found by [`BillingRepo::verify_books`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BooksFault {
    /// A transaction's postings do not sum to zero.
    Unbalanced { transaction_id: Uuid, sum: i64 },
    /// A user account's balance row is not the sum of its postings.
    BalanceDrift {
        account_key: String,
        stored: i64,
        summed: i64,
    },
    /// A wallet's held amount is not the sum of its open holds.
    HeldDrift {
        account_key: String,
        stored: i64,
        summed: i64,
    },
}

#[async_trait]
pub trait BillingRepo: Send + Sync {
    /// Posts `entry` with its audit record, in one transaction; [`Posted::Duplicate`] (and no
    /// change) when its idempotency key is in the books.
    async fn post(&self, entry: &NewEntry, audit: AuditAppend<'_>) -> Result<Posted, StoreError>;

    /// The user's wallet in `currency` (zeros when nothing was ever posted).
    async fn wallet(&self, user_id: Uuid, currency: &Currency) -> Result<WalletRow, StoreError>;

    /// The user's ledger, newest first.
    async fn entries(
        &self,
        user_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>, StoreError>;

    /// The entry with this idempotency key.
    async fn entry_by_key(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError>;

    /// The first entry of `kind` with this reference (a refund finds its payment this way).
    async fn entry_by_reference(
        &self,
        kind: EntryKind,
        reference: &str,
    ) -> Result<Option<LedgerEntry>, StoreError>;

    /// Takes a hold: on each budget (its counter's use plus holds plus this one within its
    /// limits) and on the wallet when `cost_minor` > 0, all or nothing.
    async fn hold(&self, hold: &NewHold) -> Result<HoldOutcome, StoreError>;

    /// Settles a use: records it, releases its hold (if still there), counts it against its
    /// budgets (raising alerts), and posts its debit, in one transaction.
    async fn settle(&self, settlement: &Settlement<'_>) -> Result<Settled, StoreError>;

    /// Releases a hold without a charge; `false` when it is gone already.
    async fn release(&self, hold_id: Uuid) -> Result<bool, StoreError>;

    /// Holds that expired before `now`, oldest first.
    async fn expired_holds(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<HoldRow>, StoreError>;

    /// Adds or replaces (by scope and period) a budget, with its audit record.
    async fn put_budget(
        &self,
        budget: &BudgetRow,
        audit: AuditAppend<'_>,
    ) -> Result<BudgetRow, StoreError>;

    /// Deletes a budget, with its audit record; `false` when there is none.
    async fn delete_budget(&self, id: Uuid, audit: AuditAppend<'_>) -> Result<bool, StoreError>;

    async fn get_budget(&self, id: Uuid) -> Result<Option<BudgetRow>, StoreError>;

    /// Every budget (`None`), or those that notify one user.
    async fn list_budgets(&self, notify_user: Option<Uuid>) -> Result<Vec<BudgetRow>, StoreError>;

    /// The budgets that apply to a call by `user_id` of `agent_id`.
    async fn budgets_for(
        &self,
        user_id: Uuid,
        agent_id: Uuid,
    ) -> Result<Vec<BudgetRow>, StoreError>;

    /// A budget's use in the period starting at `period_start`.
    async fn budget_use(
        &self,
        budget_id: Uuid,
        period_start: OffsetDateTime,
    ) -> Result<BudgetUse, StoreError>;

    /// Alerts, newest first: every one (`None`) or one user's.
    async fn alerts(
        &self,
        user_id: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<AlertRow>, StoreError>;

    /// Alerts whose webhook is not delivered yet and has been tried fewer than `max_attempts`.
    async fn undelivered_alerts(
        &self,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<AlertRow>, StoreError>;

    /// Notes a delivery attempt (`delivered_at` when it succeeded).
    async fn note_alert_attempt(
        &self,
        id: Uuid,
        delivered_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;

    /// Links a user to a Stripe customer, with its audit record (replacing an earlier link of
    /// either); `false` when it was linked so already.
    async fn link_customer(
        &self,
        user_id: Uuid,
        customer_id: &str,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    async fn customer_of(&self, user_id: Uuid) -> Result<Option<String>, StoreError>;

    async fn user_of_customer(&self, customer_id: &str) -> Result<Option<Uuid>, StoreError>;

    /// The per-model prices.
    async fn prices(&self) -> Result<Vec<PriceRow>, StoreError>;

    /// Sets (`Some`) or removes (`None`) a model's price, with its audit record.
    async fn put_price(
        &self,
        model: &str,
        price: Option<&PriceRow>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// A user's usage between `since` and `until`, grouped, largest cost first.
    async fn usage_groups(
        &self,
        user_id: Uuid,
        since: OffsetDateTime,
        until: OffsetDateTime,
        grouping: UsageGrouping,
    ) -> Result<Vec<UsageGroup>, StoreError>;

    /// A user's usage records, newest first.
    async fn usage_records(
        &self,
        user_id: Uuid,
        since: OffsetDateTime,
        until: OffsetDateTime,
        page: &PageRequest,
    ) -> Result<Page<UsageRow>, StoreError>;

    /// Checks every transaction balances and every user account's stored balance and held
    /// amount match its postings and holds; answers what does not.
    async fn verify_books(&self) -> Result<Vec<BooksFault>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn balances(wallet: i64, held: i64, arrears: i64) -> UserBalances {
        UserBalances {
            wallet_minor: wallet,
            held_minor: held,
            arrears_minor: arrears,
        }
    }

    #[test]
    fn a_currency_is_an_iso_code_in_lower_case() {
        for bad in ["USD", "us", "usdd", "", "u$d", "ÜSD"] {
            assert!(Currency::new(bad).is_err(), "{bad:?}");
        }
        let usd = Currency::new("usd").unwrap();
        assert_eq!(usd.as_str(), "usd");
        let money = Money::new(-250, usd.clone());
        assert_eq!(money.to_string(), "-250 usd (minor units)");
        assert_eq!(money.negated(), Money::new(250, usd.clone()));
        assert_eq!(Money::new(i64::MIN, usd).negated().minor, i64::MAX);
    }

    #[test]
    fn money_in_pays_arrears_first() {
        let postings = split_postings(1000, balances(0, 0, -700), AccountKind::Funding);
        assert_eq!(
            postings,
            vec![
                Posting {
                    account: AccountKind::Wallet,
                    amount_minor: 300
                },
                Posting {
                    account: AccountKind::Arrears,
                    amount_minor: 700
                },
                Posting {
                    account: AccountKind::Funding,
                    amount_minor: -1000
                },
            ]
        );
    }

    #[test]
    fn money_out_beyond_the_free_wallet_goes_to_arrears() {
        let postings = split_postings(-1000, balances(500, 200, 0), AccountKind::Funding);
        assert_eq!(
            postings,
            vec![
                Posting {
                    account: AccountKind::Wallet,
                    amount_minor: -300
                },
                Posting {
                    account: AccountKind::Arrears,
                    amount_minor: -700
                },
                Posting {
                    account: AccountKind::Funding,
                    amount_minor: 1000
                },
            ]
        );
    }

    #[test]
    fn month_periods_roll_over_the_year() {
        let at = time::macros::datetime!(2026-12-31 23:59 UTC);
        assert_eq!(
            BudgetPeriod::Month.start(at),
            time::macros::datetime!(2026-12-01 0:00 UTC)
        );
        assert_eq!(
            BudgetPeriod::Month.end(at),
            time::macros::datetime!(2027-01-01 0:00 UTC)
        );
        assert_eq!(
            BudgetPeriod::Day.end(at),
            time::macros::datetime!(2027-01-01 0:00 UTC)
        );
    }

    proptest! {
        #[test]
        fn every_split_balances_and_keeps_the_wallet_whole(
            amount in (-1_000_000_000i64..1_000_000_000).prop_filter("non-zero", |a| *a != 0),
            wallet in 0i64..1_000_000_000,
            held_share in 0u8..=100,
            arrears in -1_000_000_000i64..=0,
        ) {
            let held = wallet / 100 * i64::from(held_share);
            let found = balances(wallet, held, arrears);
            let postings = split_postings(amount, found, AccountKind::Usage);
            prop_assert_eq!(postings.iter().map(|p| p.amount_minor).sum::<i64>(), 0);
            let wallet_change: i64 = postings.iter()
                .filter(|p| p.account == AccountKind::Wallet).map(|p| p.amount_minor).sum();
            let arrears_change: i64 = postings.iter()
                .filter(|p| p.account == AccountKind::Arrears).map(|p| p.amount_minor).sum();
            prop_assert!(wallet + wallet_change >= held);
            prop_assert!(arrears + arrears_change <= 0);
            // Nothing is owed while the wallet has money free.
            prop_assert!(arrears + arrears_change == 0 || wallet + wallet_change == held);
            prop_assert_eq!(wallet_change + arrears_change, amount);
        }
    }
}
