//! Billing's pages: the wallet (balance, held, owed, the prices in force; a top-up or the
//! subscription through Stripe Checkout, and Stripe's customer portal; the newest ledger
//! entries), the whole ledger in keyset pages, and the admins' model prices. Usage is in
//! [`crate::usage`], budgets and their alerts in [`crate::budgets`]. Every page calls the same
//! `Billing` service as the API's routes, with the same checks and audit records; amounts are
//! integer minor units, written and read by [`crate::money`].

use crate::money::{self, money, signed};
use crate::page::{
    Chrome, Cursor, Refused, page_request, query_value, refusal, see_other, shown, shown_refused,
    when,
};
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Response};
use hive_core::billing::BillingError;
use hive_core::billing::checkout::CheckoutMode;
use hive_core::billing::pricing::TokenPrice;
use hive_core::kernel::caller::Caller;
use hive_proto::ErrorCode;
use hive_server::auth::{Authenticated, Meta};
use hive_server::{ApiError, AppState};
use hive_store::billing::LedgerEntry;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;

/// Entries on one page of the ledger.
const LEDGER_PAGE_SIZE: u32 = 50;
/// The newest entries the wallet's page shows.
const WALLET_ENTRIES: u32 = 10;

/// Where Stripe's hosted pages are: Checkout and the customer portal. The wallet's page may
/// send its forms' answers there (its policy's `form-action`): a top-up's form is answered
/// with a redirect to Stripe, which browsers check against the policy of the form's page.
const STRIPE_PAGES: &str = "https://checkout.stripe.com https://billing.stripe.com";

/// The billing pages' own menu: the page shown, and whether the admins' page is offered.
pub struct BillingNav {
    pub current: &'static str,
    pub admin: bool,
}

impl BillingNav {
    pub fn of(caller: &Caller, current: &'static str) -> Self {
        Self {
            current,
            admin: caller.is_admin(),
        }
    }
}

/// One ledger entry as the pages list it.
pub struct EntryLine {
    pub at: String,
    pub kind: &'static str,
    /// Signed, with its currency (`+12.50 USD`).
    pub amount: String,
    pub credit: bool,
    pub memo: String,
    pub reference: String,
    pub actor: String,
}

fn kind_word(entry: &LedgerEntry) -> &'static str {
    use hive_store::billing::EntryKind as K;
    match entry.kind {
        K::TopUp => "top-up",
        K::Invoice => "invoice",
        K::Refund => "refund",
        K::Usage => "usage",
        K::Adjustment => "adjustment",
    }
}

fn entry_line(entry: LedgerEntry) -> EntryLine {
    EntryLine {
        at: when(entry.created_at),
        kind: kind_word(&entry),
        amount: signed(entry.amount.minor, entry.amount.currency.as_str()),
        credit: entry.amount.minor > 0,
        memo: entry.memo,
        reference: entry.reference.unwrap_or_default(),
        actor: entry.actor,
    }
}

/// A model's own price, per 1,000 tokens.
pub struct PriceLine {
    pub model: String,
    pub prompt: String,
    pub completion: String,
}

/// A price per unit as the pages write it: free, or money.
fn price(minor: i64, currency: &str) -> String {
    if minor == 0 {
        "free".to_owned()
    } else {
        money(minor, currency)
    }
}

async fn price_lines(state: &AppState) -> Result<Vec<PriceLine>, Refused> {
    let billing = &state.hive.billing;
    let currency = billing.config().currency.as_str().to_owned();
    let table = billing.price_table().await.map_err(refusal)?;
    Ok(table
        .models
        .into_iter()
        .map(|row| PriceLine {
            prompt: price(row.prompt_minor_per_1k, &currency),
            completion: price(row.completion_minor_per_1k, &currency),
            model: row.model,
        })
        .collect())
}

#[derive(Template)]
#[template(path = "billing.html")]
struct WalletPage<'a> {
    chrome: Chrome,
    title: &'a str,
    nav: BillingNav,
    currency: String,
    balance: String,
    held: String,
    available: String,
    /// What the user owes, when they owe something.
    owed: Option<String>,
    updated: String,
    enforced: bool,
    default_price: String,
    hosted_price: String,
    step_price: String,
    models: Vec<PriceLine>,
    /// Stripe is set up (`STRIPE_SECRET_KEY`): the top-up form.
    stripe: bool,
    /// A Stripe customer is linked to the user: the portal's button.
    portal: bool,
    /// `STRIPE_SUBSCRIPTION_PRICE_ID` is set: the subscription's button.
    subscription: bool,
    top_up_min: String,
    top_up_max: String,
    /// What the amount field holds (kept after a refusal).
    amount: String,
    entries: Vec<EntryLine>,
    more_entries: bool,
    notice: Option<&'static str>,
    error: Option<String>,
}

async fn wallet_page(state: &AppState, caller: &Caller) -> Result<WalletPage<'static>, Refused> {
    let billing = &state.hive.billing;
    let wallet = billing.wallet(caller, None).await.map_err(refusal)?;
    let currency = wallet.currency.clone();
    let config = billing.config();
    let stripe = billing.stripe_ready();
    let portal = if stripe {
        match billing.linked_customer(caller).await {
            Ok(_) => true,
            Err(BillingError::Conflict(_)) => false,
            Err(error) => return Err(refusal(error)),
        }
    } else {
        false
    };
    let newest = billing
        .ledger(caller, None, &page_request(WALLET_ENTRIES, None)?)
        .await
        .map_err(refusal)?;
    Ok(WalletPage {
        chrome: Chrome::of(caller),
        title: "Billing",
        nav: BillingNav::of(caller, "wallet"),
        balance: money(wallet.balance_minor, &currency),
        held: money(wallet.held_minor, &currency),
        available: money(
            wallet.balance_minor.saturating_sub(wallet.held_minor),
            &currency,
        ),
        owed: (wallet.owed_minor > 0).then(|| money(wallet.owed_minor, &currency)),
        updated: wallet.updated_at.map_or_else(|| "never".to_owned(), when),
        enforced: wallet.enforced,
        default_price: price(wallet.billing_usage_minor_per1k_tokens, &currency),
        hosted_price: price(wallet.hosted_minor_per_hour, &currency),
        step_price: price(wallet.workflow_step_minor, &currency),
        models: price_lines(state).await?,
        stripe,
        portal,
        subscription: wallet.stripe.subscription_checkout_enabled,
        top_up_min: money::major(config.top_up_min_minor, &currency),
        top_up_max: money::major(config.top_up_max_minor, &currency),
        amount: String::new(),
        entries: newest.items.into_iter().map(entry_line).collect(),
        more_entries: newest.next_cursor.is_some(),
        currency: money::code(&currency),
        notice: None,
        error: None,
    })
}

/// The wallet's page with its policy: its forms may lead to Stripe's hosted pages.
fn wallet_response(response: Response) -> Response {
    let mut response = response;
    if let Ok(policy) = HeaderValue::from_str(&format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self' {STRIPE_PAGES}; frame-ancestors 'none'"
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

#[derive(Default, Deserialize)]
pub struct WalletQuery {
    #[serde(default)]
    checkout: Option<String>,
}

/// `GET /billing`: the caller's wallet; `?checkout=` is where Stripe sends them back.
pub async fn wallet(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<WalletQuery>,
) -> Response {
    let notice = match query.checkout.as_deref() {
        Some("success") => Some(
            "Thank you: Stripe took the payment. Your balance changes when Stripe's confirmation (its webhook) reaches Hive, usually within a minute: reload this page to see it.",
        ),
        Some("cancelled") => Some("The payment was cancelled: nothing was charged."),
        Some("portal") => Some(
            "Back from Stripe. What you changed there reaches Hive through Stripe's webhook, and may take a minute to show here.",
        ),
        _ => None,
    };
    let built = wallet_page(&state, &caller).await;
    wallet_response(shown_refused(built, StatusCode::OK, |page| {
        page.notice = notice;
    }))
}

/// The wallet's page again, saying what went wrong, the amount typed kept.
async fn wallet_refused(
    state: &AppState,
    caller: &Caller,
    (status, message): Refused,
    amount: String,
) -> Response {
    wallet_response(shown_refused(
        wallet_page(state, caller).await,
        status,
        |page| {
            page.error = Some(message);
            page.amount = amount;
        },
    ))
}

/// `303` to a page of Stripe's (an absolute `https` address, as Stripe's API answered it).
fn to_stripe(url: &str) -> Result<Response, Refused> {
    let usable = url.starts_with("https://") || url.starts_with("http://");
    match HeaderValue::from_str(url) {
        Ok(location) if usable => {
            Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
        }
        _ => Err(refusal(BillingError::Internal(
            "Stripe answered an address that is not one".into(),
        ))),
    }
}

/// Stripe is not set up here (`STRIPE_SECRET_KEY`): the API's refusal, in its words.
fn not_set_up() -> Refused {
    refusal(ApiError::of(ErrorCode::StripeNotConfigured))
}

#[derive(Deserialize)]
pub struct CheckoutForm {
    /// A top-up's amount, in major units as typed.
    #[serde(default)]
    amount: String,
    /// `payment` (a top-up, the default) or `subscription`.
    #[serde(default)]
    mode: String,
}

/// `POST /billing/checkout`: a top-up (the amount typed in major units) or the subscription,
/// opened at Stripe Checkout; the answer sends the browser there.
pub async fn checkout(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<CheckoutForm>,
) -> Response {
    let billing = &state.hive.billing;
    let currency = billing.config().currency.as_str().to_owned();
    // The form is checked first: a malformed one is the person's to fix, whatever is set up.
    let mode = match form.mode.as_str() {
        "" | "payment" => money::parse_major(&form.amount, &currency)
            .map(|amount_minor| CheckoutMode::Payment { amount_minor })
            .map_err(|message| (StatusCode::UNPROCESSABLE_ENTITY, message)),
        "subscription" => Ok(CheckoutMode::Subscription),
        _ => Err((
            StatusCode::BAD_REQUEST,
            "Choose a top-up or the subscription.".to_owned(),
        )),
    };
    let done = match mode {
        Ok(_) if !billing.stripe_ready() => Err(not_set_up()),
        Ok(mode) => billing
            .checkout(&caller, mode, &meta)
            .await
            .map_err(refusal)
            .and_then(|session| to_stripe(&session.url)),
        Err(refused) => Err(refused),
    };
    match done {
        Ok(redirect) => redirect,
        Err(refused) => wallet_refused(&state, &caller, refused, form.amount).await,
    }
}

/// `POST /billing/portal`: Stripe's customer portal for the caller's linked customer.
pub async fn portal(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Response {
    let billing = &state.hive.billing;
    // Without a customer the portal has nothing to show, set up or not (as the API says).
    let done = match billing.linked_customer(&caller).await {
        Ok(_) if !billing.stripe_ready() => Err(not_set_up()),
        Ok(_) => billing
            .customer_portal(&caller, &meta)
            .await
            .map_err(refusal)
            .and_then(|url| to_stripe(&url)),
        Err(error) => Err(refusal(error)),
    };
    match done {
        Ok(redirect) => redirect,
        Err(refused) => wallet_refused(&state, &caller, refused, String::new()).await,
    }
}

#[derive(Template)]
#[template(path = "billing_ledger.html")]
struct LedgerPage<'a> {
    chrome: Chrome,
    title: &'a str,
    nav: BillingNav,
    entries: Vec<EntryLine>,
    /// The next page's cursor, encoded for the link.
    next_cursor: Option<String>,
    /// Whether this is a later page (a link back to the newest).
    later: bool,
}

/// `GET /billing/ledger`: the caller's transactions, newest first, in keyset pages.
pub async fn ledger(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<Cursor>,
) -> Response {
    let built = async {
        let request = page_request(LEDGER_PAGE_SIZE, query.cursor.as_deref())?;
        let page = state
            .hive
            .billing
            .ledger(&caller, None, &request)
            .await
            .map_err(refusal)?;
        Ok(LedgerPage {
            chrome: Chrome::of(&caller),
            title: "Ledger",
            nav: BillingNav::of(&caller, "ledger"),
            entries: page.items.into_iter().map(entry_line).collect(),
            next_cursor: page.next_cursor.as_deref().map(query_value),
            later: query.cursor.is_some(),
        })
    };
    shown(built.await)
}

#[derive(Template)]
#[template(path = "billing_prices.html")]
struct PricesPage<'a> {
    chrome: Chrome,
    title: &'a str,
    nav: BillingNav,
    currency: String,
    default_price: String,
    models: Vec<PriceLine>,
    notice: Option<&'static str>,
    error: Option<String>,
    /// What the form held (kept after a refusal).
    model: String,
    prompt: String,
    completion: String,
}

async fn prices_page(state: &AppState, caller: &Caller) -> Result<PricesPage<'static>, Refused> {
    let config = state.hive.billing.config();
    Ok(PricesPage {
        chrome: Chrome::of(caller),
        title: "Prices",
        nav: BillingNav::of(caller, "prices"),
        currency: money::code(config.currency.as_str()),
        default_price: price(config.minor_per_1k_tokens, config.currency.as_str()),
        models: price_lines(state).await?,
        notice: None,
        error: None,
        model: String::new(),
        prompt: String::new(),
        completion: String::new(),
    })
}

#[derive(Default, Deserialize)]
pub struct PricesQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /billing/prices` (admins): each model's own price, and the form that sets one.
pub async fn prices(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<PricesQuery>,
) -> Response {
    let notice = match query.done.as_deref() {
        Some("set") => Some("The price is set: calls from now on are priced by it."),
        Some("removed") => Some("The price is removed: the model takes the default price again."),
        _ => None,
    };
    shown_refused(prices_page(&state, &caller).await, StatusCode::OK, |page| {
        page.notice = notice;
    })
}

#[derive(Deserialize)]
pub struct PriceForm {
    #[serde(default)]
    model: String,
    /// Per 1,000 tokens, in major units as typed.
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    completion: String,
}

/// `POST /billing/prices` (admins): sets a model's own price.
pub async fn set_price(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<PriceForm>,
) -> Response {
    let billing = &state.hive.billing;
    let currency = billing.config().currency.as_str().to_owned();
    let read = |text: &str, what: &str| {
        money::parse_major(text, &currency).map_err(|message| {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{what}: {message}"),
            )
        })
    };
    let done = match (
        read(&form.prompt, "Prompt tokens"),
        read(&form.completion, "Completion tokens"),
    ) {
        (Ok(prompt), Ok(completion)) => {
            let price = TokenPrice {
                prompt_minor_per_1k: prompt,
                completion_minor_per_1k: completion,
            };
            billing
                .set_price(&caller, &form.model, Some(price), &meta)
                .await
                .map_err(refusal)
        }
        (Err(refused), _) | (_, Err(refused)) => Err(refused),
    };
    match done {
        Ok(_) => see_other("/billing/prices?done=set"),
        Err((status, message)) => {
            shown_refused(prices_page(&state, &caller).await, status, |page| {
                page.error = Some(message);
                page.model = form.model;
                page.prompt = form.prompt;
                page.completion = form.completion;
            })
        }
    }
}

#[derive(Deserialize)]
pub struct RemovePriceForm {
    #[serde(default)]
    model: String,
}

/// `POST /billing/prices/remove` (admins): the model takes the default price again.
pub async fn remove_price(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<RemovePriceForm>,
) -> Response {
    match state
        .hive
        .billing
        .set_price(&caller, &form.model, None, &meta)
        .await
    {
        Ok(true) => see_other("/billing/prices?done=removed"),
        Ok(false) => shown_refused(
            prices_page(&state, &caller).await,
            StatusCode::NOT_FOUND,
            |page| page.error = Some("This model has no price of its own.".to_owned()),
        ),
        Err(error) => {
            let (status, message) = refusal(error);
            shown_refused(prices_page(&state, &caller).await, status, |page| {
                page.error = Some(message);
            })
        }
    }
}
