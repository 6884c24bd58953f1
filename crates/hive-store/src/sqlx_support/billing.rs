//! Billing's books on any sqlx dialect: the dialect supplies its SQL, this module the order of
//! the statements inside each transaction.
//!
//! Lock order, the same in every transaction that takes several: budget counters (by budget id,
//! then period), then the user's wallet, then the user's arrears. System accounts are never
//! locked or updated (their balances are summed from postings), so no row is shared by every
//! user's calls.

use super::dialect::{BindValue, Dialect, DialectConnection, Pools, keyset_page};
use super::usage::{UsageSql, insert_usage};
use super::{append_audit, get, rows};
use crate::billing::{
    AccountKind, AlertRow, BillingRepo, BooksFault, BudgetCharge, BudgetPeriod, BudgetRow,
    BudgetScope, BudgetUse, Currency, EntryKind, HoldOutcome, HoldRow, LedgerEntry, Money,
    NewEntry, NewHold, Posted, Posting, PriceRow, Settled, Settlement, UsageGroup, UsageGrouping,
    UserBalances, WalletRow, check_entry, split_postings,
};
use crate::{AuditAppend, Cursor, Page, PageRequest, StoreError, UsageRow};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns of `billing_transactions`.
#[macro_export]
macro_rules! ledger_columns {
    () => {
        "id, idempotency_key, kind, user_id, currency, amount_minor, reference, memo, actor, \
         created_at"
    };
}

/// The columns of `billing_budgets`.
#[macro_export]
macro_rules! budget_columns {
    () => {
        "id, scope, scope_id, period, max_tokens, max_cost_minor, notify_user_id, created_by, \
         created_at"
    };
}

/// The columns of `billing_alerts`.
#[macro_export]
macro_rules! alert_columns {
    () => {
        "id, budget_id, period_start, threshold, user_id, created_at, delivered_at, attempts"
    };
}

/// The columns of `billing_holds`.
#[macro_export]
macro_rules! hold_columns {
    () => {
        "id, user_id, agent_id, currency, cost_minor, tokens, budgets, created_at, expires_at"
    };
}

/// The statements of [`SqlBilling`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait BillingSql: UsageSql {
    /// [`ledger_columns!`]; does nothing when the idempotency key is taken.
    const INSERT_ENTRY: &'static str;
    /// id, key, kind, user id (or null), currency; does nothing when the key exists.
    const ENSURE_ACCOUNT: &'static str;
    /// key; `id`, `balance_minor`, `held_minor`, the row held until the transaction ends.
    const HOLD_ACCOUNT: &'static str;
    /// key; `balance_minor`, `held_minor`, `updated_at` (not held).
    const READ_ACCOUNT: &'static str;
    /// account id, delta, now.
    const ADD_BALANCE: &'static str;
    /// transaction id, account id, amount.
    const INSERT_POSTING: &'static str;
    /// user id, cursor time, cursor id, limit.
    const LIST_ENTRIES: &'static str;
    /// idempotency key.
    const ENTRY_BY_KEY: &'static str;
    /// kind, reference; the oldest.
    const ENTRY_BY_REFERENCE: &'static str;
    /// budget id, period start; does nothing when the row exists.
    const ENSURE_BUDGET_USE: &'static str;
    /// budget id, period start, tokens, cost, max tokens (or null), max cost (or null); adds
    /// to the held amounts only when use plus holds plus these stay within the limits.
    const HOLD_BUDGET: &'static str;
    /// wallet key, cost, arrears key; adds to the wallet's held amount only when its free money,
    /// less what the user owes, covers it (money freed while something is owed pays that first).
    const HOLD_WALLET: &'static str;
    /// [`hold_columns!`].
    const INSERT_HOLD: &'static str;
    /// id; deletes the hold, returning [`hold_columns!`].
    const TAKE_HOLD: &'static str;
    /// key, cost; takes the amount off the wallet's held.
    const RELEASE_WALLET: &'static str;
    /// budget id, period start, held tokens, held cost released, tokens, cost used; returns
    /// `tokens`, `cost_minor` after.
    const COUNT_BUDGET: &'static str;
    /// [`alert_columns!`]; does nothing when the budget's period has this alert.
    const INSERT_ALERT: &'static str;
    /// now, limit.
    const EXPIRED_HOLDS: &'static str;
    /// [`budget_columns!`]; replaces the budget of the same scope and period; returns
    /// [`budget_columns!`].
    const PUT_BUDGET: &'static str;
    /// id.
    const DELETE_BUDGET: &'static str;
    /// id.
    const GET_BUDGET: &'static str;
    /// notify user id or null.
    const LIST_BUDGETS: &'static str;
    /// user id, agent id.
    const BUDGETS_FOR: &'static str;
    /// budget id, period start.
    const BUDGET_USE: &'static str;
    /// user id or null, cursor time, cursor id, limit.
    const LIST_ALERTS: &'static str;
    /// max attempts, limit.
    const UNDELIVERED_ALERTS: &'static str;
    /// id, delivered at (or null).
    const NOTE_ALERT: &'static str;
    /// user id, customer id; the customer's link to any other user.
    const UNLINK_CUSTOMER: &'static str;
    /// user id, customer id, at; inserts or replaces the user's link, unless it is this one.
    const LINK_CUSTOMER: &'static str;
    /// user id.
    const CUSTOMER_OF: &'static str;
    /// customer id.
    const USER_OF_CUSTOMER: &'static str;
    const PRICES: &'static str;
    /// model, prompt, completion, at.
    const PUT_PRICE: &'static str;
    /// model.
    const DELETE_PRICE: &'static str;
    /// user id, since, until; `key` the agent id as text, then `kind`, `records`, `prompt`,
    /// `completion`, `quantity`, `cost`.
    const USAGE_BY_AGENT: &'static str;
    /// As [`Self::USAGE_BY_AGENT`], `key` the model.
    const USAGE_BY_MODEL: &'static str;
    /// As [`Self::USAGE_BY_AGENT`], `key` the UTC day as `YYYY-MM-DD`.
    const USAGE_BY_DAY: &'static str;
    /// user id, since, until, cursor time, cursor id, limit.
    const USAGE_RECORDS: &'static str;
    /// `transaction_id`, `total` of every transaction whose postings do not sum to zero.
    const UNBALANCED: &'static str;
    /// `key`, `stored`, `summed` of every user account whose balance drifted.
    const BALANCE_DRIFT: &'static str;
    /// `key`, `stored`, `summed` of every wallet whose held amount drifted.
    const HELD_DRIFT: &'static str;
}

pub struct SqlBilling<D: Dialect> {
    pub pools: Pools<D::Db>,
}

fn entry<D: Dialect>(row: &super::DialectRow<D>) -> Result<LedgerEntry, StoreError> {
    let kind: String = get::<D, _>(row, "kind")?;
    Ok(LedgerEntry {
        id: D::uuid_at(row, "id")?,
        idempotency_key: get::<D, _>(row, "idempotency_key")?,
        kind: EntryKind::parse(&kind)?,
        user_id: D::uuid_at(row, "user_id")?,
        amount: stored_money::<D>(row, "amount_minor", "currency")?,
        reference: get::<D, _>(row, "reference")?,
        memo: get::<D, _>(row, "memo")?,
        actor: get::<D, _>(row, "actor")?,
        created_at: D::time_at(row, "created_at")?,
    })
}

/// An amount and its currency as stored; a stored currency that is not one is a corrupt row.
fn stored_money<D: Dialect>(
    row: &super::DialectRow<D>,
    amount: &str,
    currency: &str,
) -> Result<Money, StoreError> {
    let code: String = get::<D, _>(row, currency)?;
    let currency = Currency::new(&code)
        .map_err(|_| StoreError::Backend("a stored currency is not an ISO 4217 code".into()))?;
    Ok(Money::new(get::<D, _>(row, amount)?, currency))
}

fn budget<D: Dialect>(row: &super::DialectRow<D>) -> Result<BudgetRow, StoreError> {
    let scope: String = get::<D, _>(row, "scope")?;
    let period: String = get::<D, _>(row, "period")?;
    Ok(BudgetRow {
        id: D::uuid_at(row, "id")?,
        scope: BudgetScope::from_stored(&scope, D::uuid_at(row, "scope_id")?)?,
        period: BudgetPeriod::parse(&period)
            .map_err(|_| StoreError::Backend("a stored budget period is unknown".into()))?,
        max_tokens: get::<D, _>(row, "max_tokens")?,
        max_cost_minor: get::<D, _>(row, "max_cost_minor")?,
        notify_user_id: D::uuid_at(row, "notify_user_id")?,
        created_by: get::<D, _>(row, "created_by")?,
        created_at: D::time_at(row, "created_at")?,
    })
}

fn alert<D: Dialect>(row: &super::DialectRow<D>) -> Result<AlertRow, StoreError> {
    let threshold: i64 = D::small_int_at(row, "threshold")?;
    Ok(AlertRow {
        id: D::uuid_at(row, "id")?,
        budget_id: D::uuid_at(row, "budget_id")?,
        period_start: D::time_at(row, "period_start")?,
        threshold: u8::try_from(threshold)
            .map_err(|_| StoreError::Backend("a stored alert threshold is out of range".into()))?,
        user_id: D::uuid_at(row, "user_id")?,
        created_at: D::time_at(row, "created_at")?,
        delivered_at: D::optional_time_at(row, "delivered_at")?,
        attempts: D::count_at(row, "attempts")?,
    })
}

fn hold<D: Dialect>(row: &super::DialectRow<D>) -> Result<HoldRow, StoreError> {
    let budgets: String = get::<D, _>(row, "budgets")?;
    Ok(HoldRow {
        id: D::uuid_at(row, "id")?,
        user_id: D::uuid_at(row, "user_id")?,
        agent_id: D::uuid_at(row, "agent_id")?,
        cost: stored_money::<D>(row, "cost_minor", "currency")?,
        tokens: get::<D, _>(row, "tokens")?,
        budgets: serde_json::from_str(&budgets)
            .map_err(|_| StoreError::Backend("a stored hold's budgets are unreadable".into()))?,
        created_at: D::time_at(row, "created_at")?,
        expires_at: D::time_at(row, "expires_at")?,
    })
}

async fn ensure_account<D: BillingSql>(
    connection: &mut DialectConnection<D>,
    kind: AccountKind,
    user_id: Option<Uuid>,
    currency: &Currency,
) -> Result<String, StoreError> {
    let key = kind.key(user_id, currency.as_str());
    sqlx::query(D::ENSURE_ACCOUNT)
        .bind_value(D::id(Uuid::now_v7()))
        .bind_value(key.as_str())
        .bind_value(kind.as_str())
        .bind_value(user_id.filter(|_| kind.is_users()).map(D::id))
        .bind_value(currency.as_str())
        .execute(D::on(connection))
        .await
        .map_err(D::map_error)?;
    Ok(key)
}

/// The account's id and balances, held until the transaction ends.
async fn hold_account<D: BillingSql>(
    connection: &mut DialectConnection<D>,
    key: &str,
) -> Result<(Uuid, i64, i64), StoreError> {
    let row = sqlx::query(D::HOLD_ACCOUNT)
        .bind_value(key)
        .fetch_one(D::on(connection))
        .await
        .map_err(D::map_error)?;
    Ok((
        D::uuid_at(&row, "id")?,
        get::<D, _>(&row, "balance_minor")?,
        get::<D, _>(&row, "held_minor")?,
    ))
}

/// Inserts the entry and its postings and moves the user's balances, inside the caller's
/// transaction; `None` when its idempotency key is taken (nothing written).
async fn post_in<D: BillingSql>(
    connection: &mut DialectConnection<D>,
    new: &NewEntry,
) -> Result<Option<(LedgerEntry, Vec<Posting>)>, StoreError> {
    check_entry(new)?;
    let inserted = sqlx::query(D::INSERT_ENTRY)
        .bind_value(D::id(new.id))
        .bind_value(new.idempotency_key.as_str())
        .bind_value(new.kind.as_str())
        .bind_value(D::id(new.user_id))
        .bind_value(new.amount.currency.as_str())
        .bind_value(new.amount.minor)
        .bind_value(new.reference.clone())
        .bind_value(new.memo.as_str())
        .bind_value(new.actor.as_str())
        .bind_value(D::time(new.created_at))
        .execute(D::on(connection))
        .await
        .map_err(D::map_error)?;
    if D::rows_affected(&inserted) == 0 {
        return Ok(None);
    }
    let counter = new.kind.counter_account();
    let wallet_key = ensure_account::<D>(
        connection,
        AccountKind::Wallet,
        Some(new.user_id),
        &new.amount.currency,
    )
    .await?;
    let arrears_key = ensure_account::<D>(
        connection,
        AccountKind::Arrears,
        Some(new.user_id),
        &new.amount.currency,
    )
    .await?;
    let counter_key = ensure_account::<D>(connection, counter, None, &new.amount.currency).await?;
    let (wallet_id, wallet_minor, held_minor) = hold_account::<D>(connection, &wallet_key).await?;
    let (arrears_id, arrears_minor, _) = hold_account::<D>(connection, &arrears_key).await?;
    let counter_row = sqlx::query(D::READ_ACCOUNT)
        .bind_value(counter_key.as_str())
        .fetch_one(D::on(connection))
        .await
        .map_err(D::map_error)?;
    let counter_id = D::uuid_at(&counter_row, "id")?;
    let found = UserBalances {
        wallet_minor,
        held_minor,
        arrears_minor,
    };
    let postings = split_postings(new.amount.minor, found, counter);
    if postings
        .iter()
        .map(|p| i128::from(p.amount_minor))
        .sum::<i128>()
        != 0
    {
        return Err(StoreError::Invalid(
            "a ledger transaction's postings must sum to zero".into(),
        ));
    }
    for posting in &postings {
        let account = match posting.account {
            AccountKind::Wallet => wallet_id,
            AccountKind::Arrears => arrears_id,
            _ => counter_id,
        };
        sqlx::query(D::INSERT_POSTING)
            .bind_value(D::id(new.id))
            .bind_value(D::id(account))
            .bind_value(posting.amount_minor)
            .execute(D::on(connection))
            .await
            .map_err(D::map_error)?;
        if posting.account.is_users() {
            sqlx::query(D::ADD_BALANCE)
                .bind_value(D::id(account))
                .bind_value(posting.amount_minor)
                .bind_value(D::time(new.created_at))
                .execute(D::on(connection))
                .await
                .map_err(D::map_error)?;
        }
    }
    let entry = LedgerEntry {
        id: new.id,
        idempotency_key: new.idempotency_key.clone(),
        kind: new.kind,
        user_id: new.user_id,
        amount: new.amount.clone(),
        reference: new.reference.clone(),
        memo: new.memo.clone(),
        actor: new.actor.clone(),
        created_at: new.created_at,
    };
    Ok(Some((entry, postings)))
}

/// The thresholds (percent) an alert is raised at.
const THRESHOLDS: [u8; 2] = [80, 100];

/// Whether `used` is at or past `threshold` percent of `limit`.
fn reached(used: i64, limit: Option<i64>, threshold: u8) -> bool {
    limit.is_some_and(|limit| {
        limit > 0 && i128::from(used) * 100 >= i128::from(limit) * i128::from(threshold)
    })
}

/// Counts a use against a budget (releasing what its hold held there) and raises the alerts
/// its new total reaches, inside the caller's transaction.
async fn count_budget<D: BillingSql>(
    connection: &mut DialectConnection<D>,
    charge: &BudgetCharge,
    released: (i64, i64),
    at: OffsetDateTime,
) -> Result<Vec<AlertRow>, StoreError> {
    let claim = &charge.claim;
    sqlx::query(D::ENSURE_BUDGET_USE)
        .bind_value(D::id(claim.budget_id))
        .bind_value(D::time(claim.period_start))
        .execute(D::on(connection))
        .await
        .map_err(D::map_error)?;
    let Some(row) = sqlx::query(D::COUNT_BUDGET)
        .bind_value(D::id(claim.budget_id))
        .bind_value(D::time(claim.period_start))
        .bind_value(released.0)
        .bind_value(released.1)
        .bind_value(claim.tokens)
        .bind_value(claim.cost_minor)
        .fetch_optional(D::on(connection))
        .await
        .map_err(D::map_error)?
    else {
        // The budget was deleted while the call ran.
        return Ok(Vec::new());
    };
    let tokens: i64 = get::<D, _>(&row, "tokens")?;
    let cost: i64 = get::<D, _>(&row, "cost_minor")?;
    let mut raised = Vec::new();
    for threshold in THRESHOLDS {
        if !reached(tokens, charge.max_tokens, threshold)
            && !reached(cost, charge.max_cost_minor, threshold)
        {
            continue;
        }
        let alert = AlertRow {
            id: Uuid::now_v7(),
            budget_id: claim.budget_id,
            period_start: claim.period_start,
            threshold,
            user_id: charge.notify_user_id,
            created_at: at,
            delivered_at: None,
            attempts: 0,
        };
        let done = sqlx::query(D::INSERT_ALERT)
            .bind_value(D::id(alert.id))
            .bind_value(D::id(alert.budget_id))
            .bind_value(D::time(alert.period_start))
            .bind_value(i64::from(threshold))
            .bind_value(D::id(alert.user_id))
            .bind_value(D::time(at))
            .bind_value(None::<D::Time>)
            .bind_value(0_i64)
            .execute(D::on(connection))
            .await
            .map_err(D::map_error)?;
        if D::rows_affected(&done) == 1 {
            raised.push(alert);
        }
    }
    Ok(raised)
}

/// An account's balance, held amount and last change, when it exists.
async fn read_account<D: BillingSql>(
    connection: &mut DialectConnection<D>,
    key: &str,
) -> Result<Option<(i64, i64, Option<OffsetDateTime>)>, StoreError> {
    sqlx::query(D::READ_ACCOUNT)
        .bind_value(key)
        .fetch_optional(D::on(connection))
        .await
        .map_err(D::map_error)?
        .map(|row| -> Result<_, StoreError> {
            Ok((
                get::<D, i64>(&row, "balance_minor")?,
                get::<D, i64>(&row, "held_minor")?,
                D::optional_time_at(&row, "updated_at")?,
            ))
        })
        .transpose()
}

/// Frees what a taken hold held, inside the caller's transaction: its claims on the budgets
/// (but those `counted` by a settlement, which released them itself), in lock order, and its
/// money on the wallet.
async fn release_in<D: BillingSql>(
    connection: &mut DialectConnection<D>,
    held: &HoldRow,
    at: OffsetDateTime,
    counted: impl Fn(&crate::billing::BudgetClaim) -> bool,
) -> Result<(), StoreError> {
    let mut claims: Vec<_> = held
        .budgets
        .iter()
        .filter(|claim| !counted(claim))
        .collect();
    claims.sort_by_key(|claim| (claim.budget_id, claim.period_start));
    for claim in claims {
        let release = BudgetCharge {
            claim: crate::billing::BudgetClaim {
                tokens: 0,
                cost_minor: 0,
                ..claim.clone()
            },
            max_tokens: None,
            max_cost_minor: None,
            notify_user_id: held.user_id,
        };
        count_budget::<D>(connection, &release, (claim.tokens, claim.cost_minor), at).await?;
    }
    if held.cost.minor > 0 {
        sqlx::query(D::RELEASE_WALLET)
            .bind_value(AccountKind::Wallet.key(Some(held.user_id), held.cost.currency.as_str()))
            .bind_value(held.cost.minor)
            .execute(D::on(connection))
            .await
            .map_err(D::map_error)?;
    }
    Ok(())
}

fn usage_group<D: Dialect>(row: &super::DialectRow<D>) -> Result<UsageGroup, StoreError> {
    Ok(UsageGroup {
        key: get::<D, _>(row, "key")?,
        kind: get::<D, _>(row, "kind")?,
        records: get::<D, _>(row, "records")?,
        prompt_tokens: get::<D, _>(row, "prompt")?,
        completion_tokens: get::<D, _>(row, "completion")?,
        quantity: get::<D, _>(row, "quantity")?,
        cost_minor: get::<D, _>(row, "cost")?,
    })
}

fn drift<D: Dialect>(
    row: &super::DialectRow<D>,
    make: fn(String, i64, i64) -> BooksFault,
) -> Result<BooksFault, StoreError> {
    Ok(make(
        get::<D, _>(row, "key")?,
        get::<D, _>(row, "stored")?,
        get::<D, _>(row, "summed")?,
    ))
}

#[async_trait]
impl<D: BillingSql> BillingRepo for SqlBilling<D> {
    async fn post(&self, new: &NewEntry, audit: AuditAppend<'_>) -> Result<Posted, StoreError> {
        check_entry(new)?;
        let mut tx = D::begin(&self.pools).await?;
        let Some((entry, postings)) = post_in::<D>(&mut tx, new).await? else {
            // Rolled back on drop: the key is someone else's effect.
            return Ok(Posted::Duplicate);
        };
        append_audit::<D>(&mut tx, &audit).await?;
        tx.commit().await.map_err(D::map_error)?;
        Ok(Posted::Applied {
            entry: Box::new(entry),
            postings,
        })
    }

    async fn wallet(&self, user_id: Uuid, currency: &Currency) -> Result<WalletRow, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let code = currency.as_str();
        let wallet =
            read_account::<D>(&mut reader, &AccountKind::Wallet.key(Some(user_id), code)).await?;
        let arrears =
            read_account::<D>(&mut reader, &AccountKind::Arrears.key(Some(user_id), code)).await?;
        let (balance_minor, held_minor, wallet_at) = wallet.unwrap_or((0, 0, None));
        let (arrears_minor, _, arrears_at) = arrears.unwrap_or((0, 0, None));
        let money = |minor| Money::new(minor, currency.clone());
        Ok(WalletRow {
            user_id,
            balance: money(balance_minor),
            held: money(held_minor),
            owed: money(arrears_minor.saturating_neg()),
            updated_at: wallet_at.max(arrears_at),
        })
    }

    async fn entries(
        &self,
        user_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        let query = sqlx::query(D::LIST_ENTRIES).bind_value(D::id(user_id));
        keyset_page::<D, _>(&self.pools, query, page, entry::<D>, |e| Cursor {
            at: e.created_at,
            id: e.id,
        })
        .await
    }

    async fn entry_by_key(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::ENTRY_BY_KEY)
            .bind_value(key)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .map(|row| entry::<D>(&row))
            .transpose()
    }

    async fn entry_by_reference(
        &self,
        kind: EntryKind,
        reference: &str,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::ENTRY_BY_REFERENCE)
            .bind_value(kind.as_str())
            .bind_value(reference)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .map(|row| entry::<D>(&row))
            .transpose()
    }

    async fn hold(&self, hold: &NewHold) -> Result<HoldOutcome, StoreError> {
        if hold.cost.minor < 0 || hold.tokens < 0 {
            return Err(StoreError::Invalid("a hold is never negative".into()));
        }
        let mut charges: Vec<_> = hold.budgets.iter().collect();
        charges.sort_by_key(|charge| (charge.claim.budget_id, charge.claim.period_start));
        let claims: Vec<_> = hold.budgets.iter().map(|charge| &charge.claim).collect();
        let budgets = serde_json::to_string(&claims)
            .map_err(|_| StoreError::Invalid("a hold's budgets cannot be stored".into()))?;
        let mut tx = D::begin(&self.pools).await?;
        for charge in charges {
            let claim = &charge.claim;
            sqlx::query(D::ENSURE_BUDGET_USE)
                .bind_value(D::id(claim.budget_id))
                .bind_value(D::time(claim.period_start))
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            let done = sqlx::query(D::HOLD_BUDGET)
                .bind_value(D::id(claim.budget_id))
                .bind_value(D::time(claim.period_start))
                .bind_value(claim.tokens)
                .bind_value(claim.cost_minor)
                .bind_value(charge.max_tokens)
                .bind_value(charge.max_cost_minor)
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            if D::rows_affected(&done) == 0 {
                return Ok(HoldOutcome::BudgetReached {
                    budget_id: claim.budget_id,
                });
            }
        }
        if hold.cost.minor > 0 {
            let currency = &hold.cost.currency;
            let key =
                ensure_account::<D>(&mut tx, AccountKind::Wallet, Some(hold.user_id), currency)
                    .await?;
            let arrears_key = AccountKind::Arrears.key(Some(hold.user_id), currency.as_str());
            let done = sqlx::query(D::HOLD_WALLET)
                .bind_value(key.as_str())
                .bind_value(hold.cost.minor)
                .bind_value(arrears_key.as_str())
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            if D::rows_affected(&done) == 0 {
                let (_, balance, held) = hold_account::<D>(&mut tx, &key).await?;
                let owed = read_account::<D>(&mut tx, &arrears_key)
                    .await?
                    .map_or(0, |(arrears, _, _)| arrears.saturating_neg());
                let free = balance.saturating_sub(held).saturating_sub(owed).max(0);
                return Ok(HoldOutcome::InsufficientFunds {
                    available: Money::new(free, currency.clone()),
                });
            }
        }
        sqlx::query(D::INSERT_HOLD)
            .bind_value(D::id(hold.id))
            .bind_value(D::id(hold.user_id))
            .bind_value(D::id(hold.agent_id))
            .bind_value(hold.cost.currency.as_str())
            .bind_value(hold.cost.minor)
            .bind_value(hold.tokens)
            .bind_value(budgets)
            .bind_value(D::time(hold.created_at))
            .bind_value(D::time(hold.expires_at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        tx.commit().await.map_err(D::map_error)?;
        Ok(HoldOutcome::Held)
    }

    async fn settle(&self, settlement: &Settlement<'_>) -> Result<Settled, StoreError> {
        if settlement.debit.is_some() != settlement.audit.is_some() {
            return Err(StoreError::Invalid(
                "a debit is settled with its audit record".into(),
            ));
        }
        let usage = &settlement.usage;
        let mut tx = D::begin(&self.pools).await?;
        if !insert_usage::<D>(&mut tx, usage).await? {
            return Ok(Settled::Duplicate);
        }
        let taken = match settlement.hold_id {
            Some(id) => sqlx::query(D::TAKE_HOLD)
                .bind_value(D::id(id))
                .fetch_optional(D::on(&mut tx))
                .await
                .map_err(D::map_error)?
                .map(|row| hold::<D>(&row))
                .transpose()?,
            None => None,
        };
        // Budgets in lock order; each releases what the hold held on it and counts the use.
        let mut charges: Vec<&BudgetCharge> = settlement.budgets.iter().collect();
        charges.sort_by_key(|charge| (charge.claim.budget_id, charge.claim.period_start));
        let mut alerts = Vec::new();
        for charge in &charges {
            let released = taken
                .as_ref()
                .and_then(|held| {
                    held.budgets.iter().find(|claim| {
                        claim.budget_id == charge.claim.budget_id
                            && claim.period_start == charge.claim.period_start
                    })
                })
                .map_or((0, 0), |claim| (claim.tokens, claim.cost_minor));
            alerts.extend(count_budget::<D>(&mut tx, charge, released, usage.created_at).await?);
        }
        // What the hold held and the settlement did not count (a period that ended) is freed.
        if let Some(held) = &taken {
            release_in::<D>(&mut tx, held, usage.created_at, |claim| {
                charges.iter().any(|charge| {
                    charge.claim.budget_id == claim.budget_id
                        && charge.claim.period_start == claim.period_start
                })
            })
            .await?;
        }
        let mut posted = None;
        if let (Some(debit), Some(audit)) = (&settlement.debit, &settlement.audit) {
            posted = post_in::<D>(&mut tx, debit).await?;
            if posted.is_none() {
                return Ok(Settled::Duplicate);
            }
            append_audit::<D>(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(D::map_error)?;
        let (entry, postings) = match posted {
            Some((entry, postings)) => (Some(Box::new(entry)), postings),
            None => (None, Vec::new()),
        };
        Ok(Settled::Applied {
            entry,
            postings,
            alerts,
        })
    }

    async fn release(&self, hold_id: Uuid) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let Some(row) = sqlx::query(D::TAKE_HOLD)
            .bind_value(D::id(hold_id))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?
        else {
            return Ok(false);
        };
        let held = hold::<D>(&row)?;
        release_in::<D>(&mut tx, &held, held.created_at, |_| false).await?;
        tx.commit().await.map_err(D::map_error)?;
        Ok(true)
    }

    async fn expired_holds(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<HoldRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::EXPIRED_HOLDS)
            .bind_value(D::time(now))
            .bind_value(i64::from(limit))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .iter()
            .map(hold::<D>)
            .collect()
    }

    async fn put_budget(
        &self,
        row: &BudgetRow,
        audit: AuditAppend<'_>,
    ) -> Result<BudgetRow, StoreError> {
        if row.max_tokens.is_none() && row.max_cost_minor.is_none() {
            return Err(StoreError::Invalid(
                "a budget limits tokens, cost or both".into(),
            ));
        }
        if row.max_tokens.is_some_and(|n| n <= 0) || row.max_cost_minor.is_some_and(|n| n <= 0) {
            return Err(StoreError::Invalid("a budget's limits are positive".into()));
        }
        let mut tx = D::begin(&self.pools).await?;
        let stored = sqlx::query(D::PUT_BUDGET)
            .bind_value(D::id(row.id))
            .bind_value(row.scope.kind())
            .bind_value(D::id(row.scope.id()))
            .bind_value(row.period.as_str())
            .bind_value(row.max_tokens)
            .bind_value(row.max_cost_minor)
            .bind_value(D::id(row.notify_user_id))
            .bind_value(row.created_by.as_str())
            .bind_value(D::time(row.created_at))
            .fetch_one(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let stored = budget::<D>(&stored)?;
        append_audit::<D>(&mut tx, &audit).await?;
        tx.commit().await.map_err(D::map_error)?;
        Ok(stored)
    }

    async fn delete_budget(&self, id: Uuid, audit: AuditAppend<'_>) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::DELETE_BUDGET)
            .bind_value(D::id(id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        super::commit_if::<D>(tx, D::rows_affected(&done) == 1, audit).await
    }

    async fn get_budget(&self, id: Uuid) -> Result<Option<BudgetRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::GET_BUDGET)
            .bind_value(D::id(id))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .map(|row| budget::<D>(&row))
            .transpose()
    }

    async fn list_budgets(&self, notify_user: Option<Uuid>) -> Result<Vec<BudgetRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::LIST_BUDGETS)
            .bind_value(notify_user.map(D::id))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .iter()
            .map(budget::<D>)
            .collect()
    }

    async fn budgets_for(
        &self,
        user_id: Uuid,
        agent_id: Uuid,
    ) -> Result<Vec<BudgetRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::BUDGETS_FOR)
            .bind_value(D::id(user_id))
            .bind_value(D::id(agent_id))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .iter()
            .map(budget::<D>)
            .collect()
    }

    async fn budget_use(
        &self,
        budget_id: Uuid,
        period_start: OffsetDateTime,
    ) -> Result<BudgetUse, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let Some(row) = sqlx::query(D::BUDGET_USE)
            .bind_value(D::id(budget_id))
            .bind_value(D::time(period_start))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
        else {
            return Ok(BudgetUse::default());
        };
        Ok(BudgetUse {
            tokens: get::<D, _>(&row, "tokens")?,
            cost_minor: get::<D, _>(&row, "cost_minor")?,
            held_tokens: get::<D, _>(&row, "held_tokens")?,
            held_cost_minor: get::<D, _>(&row, "held_cost_minor")?,
        })
    }

    async fn alerts(
        &self,
        user_id: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<AlertRow>, StoreError> {
        let query = sqlx::query(D::LIST_ALERTS).bind_value(user_id.map(D::id));
        keyset_page::<D, _>(&self.pools, query, page, alert::<D>, |a| Cursor {
            at: a.created_at,
            id: a.id,
        })
        .await
    }

    async fn undelivered_alerts(
        &self,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<AlertRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::UNDELIVERED_ALERTS)
            .bind_value(i64::from(max_attempts))
            .bind_value(i64::from(limit))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .iter()
            .map(alert::<D>)
            .collect()
    }

    async fn note_alert_attempt(
        &self,
        id: Uuid,
        delivered_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::NOTE_ALERT)
            .bind_value(D::id(id))
            .bind_value(delivered_at.map(D::time))
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(())
    }

    async fn link_customer(
        &self,
        user_id: Uuid,
        customer_id: &str,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        if customer_id.is_empty()
            || customer_id.chars().count() > crate::billing::CUSTOMER_ID_MAX_CHARS
        {
            return Err(StoreError::Invalid(
                "a Stripe customer id is 1 to 255 characters".into(),
            ));
        }
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::UNLINK_CUSTOMER)
            .bind_value(D::id(user_id))
            .bind_value(customer_id)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let done = sqlx::query(D::LINK_CUSTOMER)
            .bind_value(D::id(user_id))
            .bind_value(customer_id)
            .bind_value(D::time(at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        super::commit_if::<D>(tx, D::rows_affected(&done) == 1, audit).await
    }

    async fn customer_of(&self, user_id: Uuid) -> Result<Option<String>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::CUSTOMER_OF)
            .bind_value(D::id(user_id))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .map(|row| get::<D, String>(&row, "customer_id"))
            .transpose()
    }

    async fn user_of_customer(&self, customer_id: &str) -> Result<Option<Uuid>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::USER_OF_CUSTOMER)
            .bind_value(customer_id)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .map(|row| D::uuid_at(&row, "user_id"))
            .transpose()
    }

    async fn prices(&self) -> Result<Vec<PriceRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::PRICES)
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .iter()
            .map(|row| {
                Ok(PriceRow {
                    model: get::<D, _>(row, "model")?,
                    prompt_minor_per_1k: get::<D, _>(row, "prompt_minor_per_1k")?,
                    completion_minor_per_1k: get::<D, _>(row, "completion_minor_per_1k")?,
                    updated_at: D::time_at(row, "updated_at")?,
                })
            })
            .collect()
    }

    async fn put_price(
        &self,
        model: &str,
        price: Option<&PriceRow>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        if model.is_empty() || model.chars().count() > crate::USAGE_MODEL_MAX_CHARS {
            return Err(StoreError::Invalid(
                "a model's name is 1 to 200 characters".into(),
            ));
        }
        let mut tx = D::begin(&self.pools).await?;
        let done = match price {
            Some(price) => {
                if price.prompt_minor_per_1k < 0 || price.completion_minor_per_1k < 0 {
                    return Err(StoreError::Invalid("a price is never negative".into()));
                }
                sqlx::query(D::PUT_PRICE)
                    .bind_value(model)
                    .bind_value(price.prompt_minor_per_1k)
                    .bind_value(price.completion_minor_per_1k)
                    .bind_value(D::time(price.updated_at))
                    .execute(D::on(&mut tx))
                    .await
            }
            None => {
                sqlx::query(D::DELETE_PRICE)
                    .bind_value(model)
                    .execute(D::on(&mut tx))
                    .await
            }
        }
        .map_err(D::map_error)?;
        super::commit_if::<D>(tx, D::rows_affected(&done) == 1, audit).await
    }

    async fn usage_groups(
        &self,
        user_id: Uuid,
        since: OffsetDateTime,
        until: OffsetDateTime,
        grouping: UsageGrouping,
    ) -> Result<Vec<UsageGroup>, StoreError> {
        let statement = match grouping {
            UsageGrouping::Agent => D::USAGE_BY_AGENT,
            UsageGrouping::Model => D::USAGE_BY_MODEL,
            UsageGrouping::Day => D::USAGE_BY_DAY,
        };
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        sqlx::query(statement)
            .bind_value(D::id(user_id))
            .bind_value(D::time(since))
            .bind_value(D::time(until))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
            .iter()
            .map(usage_group::<D>)
            .collect()
    }

    async fn usage_records(
        &self,
        user_id: Uuid,
        since: OffsetDateTime,
        until: OffsetDateTime,
        page: &PageRequest,
    ) -> Result<Page<UsageRow>, StoreError> {
        let query = sqlx::query(D::USAGE_RECORDS)
            .bind_value(D::id(user_id))
            .bind_value(D::time(since))
            .bind_value(D::time(until));
        keyset_page::<D, _>(&self.pools, query, page, rows::usage::<D>, |u| Cursor {
            at: u.created_at,
            id: u.id,
        })
        .await
    }

    async fn verify_books(&self) -> Result<Vec<BooksFault>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let mut faults = Vec::new();
        for row in sqlx::query(D::UNBALANCED)
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?
        {
            faults.push(BooksFault::Unbalanced {
                transaction_id: D::uuid_at(&row, "transaction_id")?,
                sum: get::<D, _>(&row, "total")?,
            });
        }
        for (statement, make) in [
            (
                D::BALANCE_DRIFT,
                (|account_key, stored, summed| BooksFault::BalanceDrift {
                    account_key,
                    stored,
                    summed,
                }) as fn(String, i64, i64) -> BooksFault,
            ),
            (D::HELD_DRIFT, |account_key, stored, summed| {
                BooksFault::HeldDrift {
                    account_key,
                    stored,
                    summed,
                }
            }),
        ] {
            for row in sqlx::query(statement)
                .fetch_all(D::on(&mut reader))
                .await
                .map_err(D::map_error)?
            {
                faults.push(drift::<D>(&row, make)?);
            }
        }
        Ok(faults)
    }
}
