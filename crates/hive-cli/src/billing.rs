//! `hive billing wallet|ledger|usage|adjust|prices`: billing through a running server's HTTP
//! API (the shared client is [`crate::remote`]), as the token's user (admins may name another).
//!
//! Money is printed as the server keeps it, an integer of minor units, and as a decimal amount
//! of its currency, computed with integers only.

use crate::remote::{Api, CALL_TIMEOUT, CallFailure, Remote, emit, rfc3339, shown, size};
use clap::Subcommand;
use hive_core::kernel::config::Config;
use hive_proto::auth::PageResponse;
use hive_proto::billing::{
    AdjustmentRequest, LedgerEntryView, PriceRequest, PriceView, PricesView, UsageView, WalletView,
};
use reqwest::{Method, StatusCode};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Rows asked for per page (the API's most).
const PAGE: u32 = 100;
/// The longest `Idempotency-Key` the server takes.
const MAX_KEY_CHARS: usize = 128;
/// The most a price may be (the server's rule, checked here first).
const MAX_PRICE: i64 = 1_000_000_000;

#[derive(Subcommand)]
pub enum BillingAction {
    /// A wallet: balance, held, owed, the prices in force and whether they are enforced.
    Wallet {
        /// Another user's (admins only): their id.
        #[arg(long, value_name = "ID")]
        user: Option<Uuid>,
        #[command(flatten)]
        remote: Remote,
    },
    /// The ledger's transactions, newest first.
    Ledger {
        /// Another user's (admins only): their id.
        #[arg(long, value_name = "ID")]
        user: Option<Uuid>,
        /// At most this many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Usage grouped by agent, model or day (default: the last 30 days, by day); with --csv,
    /// every record of the span as CSV.
    Usage {
        /// Another user's (admins only): their id.
        #[arg(long, value_name = "ID")]
        user: Option<Uuid>,
        /// From this RFC 3339 time (default: 30 days before --to).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        from: Option<OffsetDateTime>,
        /// Up to this RFC 3339 time (default: now).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        to: Option<OffsetDateTime>,
        /// Group by agent, model or day (default: day).
        #[arg(long, value_parser = ["agent", "model", "day"], conflicts_with = "csv")]
        by: Option<String>,
        /// Write the records as CSV to FILE (`-`: standard output) instead.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Credit (positive) or debit (negative) a user's wallet (admins only), once per key.
    Adjust {
        /// The user's id.
        #[arg(long, value_name = "ID")]
        user: Uuid,
        /// Minor units (cents for usd); negative for a debit.
        #[arg(long, value_name = "MINOR", allow_negative_numbers = true)]
        amount: i64,
        /// Why (kept in the ledger and the audit log).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// The Idempotency-Key: the same key again changes nothing (default: a new one, printed
        /// on standard error so the command can be repeated safely).
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// The price table: the defaults and each model's own price; `set` and `rm` (admins only).
    #[command(args_conflicts_with_subcommands = true)]
    Prices {
        #[command(subcommand)]
        action: Option<PricesAction>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
pub enum PricesAction {
    /// Set a model's own price, in minor units per 1,000 tokens.
    Set {
        model: String,
        /// Per 1,000 prompt tokens.
        #[arg(long, value_name = "MINOR", value_parser = clap::value_parser!(i64).range(0..=MAX_PRICE))]
        prompt: i64,
        /// Per 1,000 completion tokens.
        #[arg(long, value_name = "MINOR", value_parser = clap::value_parser!(i64).range(0..=MAX_PRICE))]
        completion: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove a model's own price: it takes the default again.
    Rm {
        model: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub async fn billing(config: &Config, action: BillingAction) -> Result<(), CallFailure> {
    match action {
        BillingAction::Wallet { user, remote } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let query: Vec<(&str, String)> = whose(user).into_iter().collect();
            let request = api.get("/billing/wallet", &query)?.timeout(CALL_TIMEOUT);
            let wallet: WalletView = api.json(request).await?;
            print_wallet(&wallet)
        }
        BillingAction::Ledger {
            user,
            limit,
            remote,
        } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            ledger(&api, user, limit).await
        }
        BillingAction::Usage {
            user,
            from,
            to,
            by,
            csv,
            remote,
        } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let mut query: Vec<(&str, String)> = whose(user).into_iter().collect();
            query.extend(from.map(|from| ("from", rfc3339(from))));
            query.extend(to.map(|to| ("to", rfc3339(to))));
            match csv {
                Some(path) => usage_csv(&api, &query, &path).await,
                None => {
                    query.extend(by.map(|by| ("groupBy", by)));
                    let request = api.get("/billing/usage", &query)?.timeout(CALL_TIMEOUT);
                    let usage: UsageView = api.json(request).await?;
                    print_usage(&usage)
                }
            }
        }
        BillingAction::Adjust {
            user,
            amount,
            reason,
            key,
            remote,
        } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let key = match key {
                Some(key) => check_key(key)?,
                None => {
                    let key = Uuid::new_v4().to_string();
                    // Before the call: whatever becomes of it, the operator can repeat it.
                    eprintln!(
                        "hive: idempotency key {key} (repeat with --key {key}: applied once)"
                    );
                    key
                }
            };
            let request = api
                .request(Method::POST, "/billing/adjustments")
                .timeout(CALL_TIMEOUT)
                .header("Idempotency-Key", &key)
                .json(&AdjustmentRequest {
                    user_id: user,
                    amount_minor: amount,
                    reason,
                });
            let response = api.send(request).await?;
            // 201: made now; 200: a repeat of the same key, which changed nothing.
            let repeated = response.status() == StatusCode::OK;
            let entry: LedgerEntryView = api.read_json(response).await?;
            emit(&if repeated {
                format!(
                    "adjustment {} was already made with this key: nothing changed",
                    entry.id
                )
            } else {
                format!("adjustment {} created", entry.id)
            })?;
            print_entry(&entry)?;
            Ok(emit(&format!("key: {}", shown(&key)))?)
        }
        BillingAction::Prices { action, remote } => match action {
            None => {
                let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
                let prices: PricesView = api.call(Method::GET, "/billing/prices", None).await?;
                print_prices(&prices)
            }
            Some(PricesAction::Set {
                model,
                prompt,
                completion,
                remote,
            }) => {
                let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
                let body = serde_json::to_value(PriceRequest {
                    prompt_minor_per_1k: prompt,
                    completion_minor_per_1k: completion,
                })
                .map_err(|e| format!("cannot write the request: {e}"))?;
                let price: PriceView = api
                    .call(Method::PUT, &price_path(&model)?, Some(body))
                    .await?;
                Ok(emit(&format!(
                    "{}: prompt {}, completion {} minor units per 1,000 tokens",
                    shown(&price.model),
                    price.prompt_minor_per_1k,
                    price.completion_minor_per_1k
                ))?)
            }
            Some(PricesAction::Rm { model, remote }) => {
                let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
                api.send(
                    api.request(Method::DELETE, &price_path(&model)?)
                        .timeout(CALL_TIMEOUT),
                )
                .await?;
                Ok(emit(&format!(
                    "{}: its own price is removed; it takes the default",
                    shown(model.trim())
                ))?)
            }
        },
    }
}

/// `userId` for another user's data.
fn whose(user: Option<Uuid>) -> Option<(&'static str, String)> {
    user.map(|user| ("userId", user.to_string()))
}

fn parse_time(raw: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(raw.trim(), &Rfc3339)
        .map_err(|_| "expected an RFC 3339 time, e.g. 2025-01-31T00:00:00Z".to_owned())
}

/// An `Idempotency-Key` the server takes: 1 to 128 characters of visible ASCII or spaces,
/// not starting or ending with a space (a header's value is trimmed on the way).
fn check_key(key: String) -> Result<String, CallFailure> {
    let fits = !key.is_empty()
        && key.len() <= MAX_KEY_CHARS
        && key.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && !key.starts_with(' ')
        && !key.ends_with(' ');
    if fits {
        Ok(key)
    } else {
        Err(format!(
            "--key is 1 to {MAX_KEY_CHARS} characters of visible ASCII (spaces inside only)"
        )
        .into())
    }
}

/// `/billing/prices/{model}`, the model's name as one path segment.
fn price_path(model: &str) -> Result<String, CallFailure> {
    // The server trims the name; `.` and `..` would be read as the path's own steps.
    let model = model.trim();
    if model.is_empty() || model == "." || model == ".." {
        return Err(format!("{} cannot name a model", shown(model)).into());
    }
    let mut path = String::from("/billing/prices/");
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            path.push(char::from(b));
        } else {
            let _ = write!(path, "%{b:02X}");
        }
    }
    Ok(path)
}

async fn ledger(api: &Api, user: Option<Uuid>, limit: u32) -> Result<(), CallFailure> {
    let mut rows = Vec::new();
    let mut left = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut cursor: Option<String> = None;
    while left > 0 {
        let mut query: Vec<(&str, String)> = whose(user).into_iter().collect();
        query.push(("limit", left.min(PAGE as usize).to_string()));
        query.extend(cursor.iter().map(|cursor| ("cursor", cursor.clone())));
        let request = api.get("/billing/ledger", &query)?.timeout(CALL_TIMEOUT);
        let page: PageResponse<LedgerEntryView> = api.json(request).await?;
        let count = page.items.len().min(left);
        for entry in page.items.iter().take(count) {
            let mut memo = shown(&entry.memo).into_owned();
            if let Some(reference) = &entry.reference {
                let _ = write!(memo, " [{}]", shown(reference));
            }
            rows.push(vec![
                entry.id.to_string(),
                crate::output::time(entry.created_at),
                shown(&entry.kind).into_owned(),
                signed(entry.signed_amount_minor, &entry.currency),
                shown(&entry.actor).into_owned(),
                memo,
            ]);
        }
        left -= count;
        match page.next_cursor {
            Some(next) if count > 0 && cursor.as_ref() != Some(&next) => cursor = Some(next),
            _ => break,
        }
    }
    Ok(crate::output::grid(
        &["ID", "CREATED", "KIND", "AMOUNT", "ACTOR", "MEMO"],
        rows,
    )?)
}

/// The usage records as CSV, to a file or (`-`) standard output.
async fn usage_csv(api: &Api, query: &[(&str, String)], path: &Path) -> Result<(), CallFailure> {
    let request = api.get("/billing/usage.csv", query)?.timeout(CALL_TIMEOUT);
    let response = api.send(request).await?;
    let body = response.bytes().await.map_err(|e| api.unreachable(e))?;
    if path == Path::new("-") {
        // Cells hold names users chose: no control character but the CSV's own reaches a
        // terminal.
        let text = String::from_utf8_lossy(&body);
        let mut out = std::io::stdout().lock();
        return Ok(out
            .write_all(csv_shown(&text).as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to standard output: {e}"))?);
    }
    std::fs::write(path, &body).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(emit(&format!(
        "wrote {} of CSV to {}",
        size(body.len() as u64),
        path.display()
    ))?)
}

/// CSV as it may reach a terminal: tabs and line ends kept, other control characters escaped.
fn csv_shown(text: &str) -> Cow<'_, str> {
    let escaped = |c: char| c.is_control() && !matches!(c, '\t' | '\r' | '\n');
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !escaped(c) {
            out.push(c);
        } else if c.is_ascii() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

fn print_wallet(wallet: &WalletView) -> Result<(), CallFailure> {
    let currency = &wallet.currency;
    let lines = [
        ("user", wallet.user_id.to_string()),
        ("currency", shown(currency).into_owned()),
        ("balance", amount(wallet.balance_minor, currency)),
        ("held", amount(wallet.held_minor, currency)),
        ("owed", amount(wallet.owed_minor, currency)),
        (
            "updated",
            wallet
                .updated_at
                .map_or_else(|| "never".to_owned(), |at| rfc3339(whole_seconds(at))),
        ),
        (
            "enforced",
            if wallet.enforced {
                "yes: a billable call the wallet cannot cover is refused (402)".to_owned()
            } else {
                "no: uses are recorded and debited; a short wallet goes into arrears".to_owned()
            },
        ),
        (
            "price per 1,000 tokens",
            format!(
                "{} (models without their own price: hive billing prices)",
                amount(wallet.billing_usage_minor_per_1k_tokens, currency)
            ),
        ),
        (
            "price per hosted hour",
            amount(wallet.hosted_minor_per_hour, currency),
        ),
        (
            "price per workflow step",
            amount(wallet.workflow_step_minor, currency),
        ),
    ];
    for (key, value) in lines {
        emit(&format!("{key}: {value}"))?;
    }
    Ok(())
}

fn print_entry(entry: &LedgerEntryView) -> Result<(), CallFailure> {
    let mut lines = vec![
        ("kind", shown(&entry.kind).into_owned()),
        (
            "amount",
            format!(
                "{:+} minor units ({})",
                entry.signed_amount_minor,
                decimal(entry.signed_amount_minor, &entry.currency, true)
            ),
        ),
        ("reason", shown(&entry.memo).into_owned()),
        ("by", shown(&entry.actor).into_owned()),
        ("at", rfc3339(whole_seconds(entry.created_at))),
    ];
    if let Some(reference) = &entry.reference {
        lines.push(("reference", shown(reference).into_owned()));
    }
    for (key, value) in lines {
        emit(&format!("{key}: {value}"))?;
    }
    Ok(())
}

fn print_usage(usage: &UsageView) -> Result<(), CallFailure> {
    let currency = &usage.currency;
    emit(&format!(
        "usage from {} to {}, by {}",
        rfc3339(whole_seconds(usage.from)),
        rfc3339(whole_seconds(usage.to)),
        shown(&usage.group_by)
    ))?;
    let mut total: i64 = 0;
    let mut rows = Vec::new();
    for group in &usage.groups {
        total = total.saturating_add(group.cost_minor);
        rows.push(vec![
            shown(&group.key).into_owned(),
            shown(&group.kind).into_owned(),
            group.records.to_string(),
            group.prompt_tokens.to_string(),
            group.completion_tokens.to_string(),
            group.quantity.to_string(),
            short(group.cost_minor, currency),
        ]);
    }
    let group_by = shown(&usage.group_by).to_uppercase();
    crate::output::grid(
        &[
            &group_by,
            "KIND",
            "RECORDS",
            "PROMPT",
            "COMPLETION",
            "QUANTITY",
            "COST",
        ],
        rows,
    )?;
    Ok(emit(&format!("total: {}", amount(total, currency)))?)
}

fn print_prices(prices: &PricesView) -> Result<(), CallFailure> {
    let currency = &prices.currency;
    let lines = [
        ("currency", shown(currency).into_owned()),
        (
            "default per 1,000 tokens",
            amount(prices.default_minor_per_1k_tokens, currency),
        ),
        (
            "per hosted hour",
            amount(prices.hosted_minor_per_hour, currency),
        ),
        (
            "per workflow step",
            amount(prices.workflow_step_minor, currency),
        ),
    ];
    for (key, value) in lines {
        emit(&format!("{key}: {value}"))?;
    }
    let rows = prices
        .models
        .iter()
        .map(|price| {
            vec![
                shown(&price.model).into_owned(),
                short(price.prompt_minor_per_1k, currency),
                short(price.completion_minor_per_1k, currency),
            ]
        })
        .collect();
    Ok(crate::output::grid(
        &["MODEL", "PROMPT PER 1,000", "COMPLETION PER 1,000"],
        rows,
    )?)
}

fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

/// `1234 minor units (12.34 USD)`.
fn amount(minor: i64, currency: &str) -> String {
    format!("{minor} minor units ({})", decimal(minor, currency, false))
}

/// `1234 (12.34 USD)`, for tables.
fn short(minor: i64, currency: &str) -> String {
    format!("{minor} ({})", decimal(minor, currency, false))
}

/// `+1234 (+12.34 USD)`: a ledger's signed amount.
fn signed(minor: i64, currency: &str) -> String {
    format!("{minor:+} ({})", decimal(minor, currency, true))
}

/// The minor units of `currency` as a decimal amount of it (`12.34 USD`, `1234 JPY`), computed
/// with integers only.
fn decimal(minor: i64, currency: &str, plus: bool) -> String {
    let code = currency.to_ascii_uppercase();
    let code = shown(&code);
    let sign = if minor < 0 {
        "-"
    } else if minor > 0 && plus {
        "+"
    } else {
        ""
    };
    let number = hive_proto::billing::decimal_of(sign, minor.unsigned_abs(), currency);
    format!("{number} {code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_in_minor_units_and_as_a_decimal_without_floats() {
        assert_eq!(amount(1234, "usd"), "1234 minor units (12.34 USD)");
        assert_eq!(amount(5, "eur"), "5 minor units (0.05 EUR)");
        assert_eq!(amount(-5, "usd"), "-5 minor units (-0.05 USD)");
        assert_eq!(amount(0, "usd"), "0 minor units (0.00 USD)");
        assert_eq!(signed(500, "usd"), "+500 (+5.00 USD)");
        assert_eq!(signed(-1, "usd"), "-1 (-0.01 USD)");
        assert_eq!(signed(0, "usd"), "+0 (0.00 USD)");
        // Beyond what a float holds exactly.
        assert_eq!(decimal(i64::MAX, "usd", false), "92233720368547758.07 USD");
        assert_eq!(decimal(i64::MIN, "usd", false), "-92233720368547758.08 USD");
        assert_eq!(
            decimal(9_007_199_254_740_993, "usd", false),
            "90071992547409.93 USD"
        );
    }

    #[test]
    fn zero_decimal_currencies_have_no_fraction() {
        assert_eq!(amount(1234, "jpy"), "1234 minor units (1234 JPY)");
        assert_eq!(amount(1234, "kwd"), "1234 minor units (1.234 KWD)");
        assert_eq!(amount(-5, "bhd"), "-5 minor units (-0.005 BHD)");
        assert_eq!(amount(-70, "KRW"), "-70 minor units (-70 KRW)");
        assert_eq!(signed(3, "isk"), "+3 (+3 ISK)");
        for code in hive_proto::billing::ZERO_DECIMAL_CURRENCIES {
            assert_eq!(
                decimal(1, code, false),
                format!("1 {}", code.to_uppercase())
            );
        }
        // Every other currency has 2.
        assert_eq!(decimal(1234, "gbp", false), "12.34 GBP");
    }

    #[test]
    fn a_currency_from_the_server_cannot_drive_the_terminal() {
        assert_eq!(decimal(1, "u\x1b[2J", false), "0.01 U\\x1b[2J");
    }

    #[test]
    fn a_model_is_one_path_segment() {
        assert_eq!(
            price_path(" openai/gpt-4o:mini ").unwrap(),
            "/billing/prices/openai%2Fgpt-4o%3Amini"
        );
        assert_eq!(price_path("a b?#").unwrap(), "/billing/prices/a%20b%3F%23");
        assert!(price_path("..").is_err());
        assert!(price_path(" ").is_err());
    }

    #[test]
    fn keys_the_server_would_refuse_are_refused_here() {
        assert!(check_key("k-1 two".to_owned()).is_ok());
        assert!(check_key(String::new()).is_err());
        assert!(check_key(" k".to_owned()).is_err());
        assert!(check_key("k\n".to_owned()).is_err());
        assert!(check_key("é".to_owned()).is_err());
        assert!(check_key("k".repeat(129)).is_err());
        assert!(check_key("k".repeat(128)).is_ok());
    }

    #[test]
    fn csv_to_a_terminal_keeps_its_line_ends_only() {
        assert_eq!(
            csv_shown("a,b\r\n\"x\ny\",\t\r\n"),
            "a,b\r\n\"x\ny\",\t\r\n"
        );
        assert_eq!(csv_shown("a,\x1b]0;t\x07\r\n"), "a,\\x1b]0;t\\x07\r\n");
    }
}
