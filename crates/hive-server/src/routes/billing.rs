//! Billing: a user's wallet, ledger and usage (admins may name another user); checkout and the
//! customer portal at Stripe; admins' adjustments, the price table and budgets; budget alerts;
//! and Stripe's webhook, which only a valid signature passes.

use super::users::query_error;
use super::views::page_request;
use crate::auth::{Authenticated, Meta};
use crate::error::ApiError;
use crate::json::{JsonBody, read_body};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use hive_core::billing::budgets::BudgetSpec;
use hive_core::billing::checkout::CheckoutMode;
use hive_core::billing::pricing::TokenPrice;
use hive_core::billing::stripe::{SIGNATURE_HEADER, WebhookError, WebhookOutcome};
use hive_proto::ErrorCode;
use hive_proto::auth::{PageQuery, PageResponse};
use hive_proto::billing::{
    AdjustmentRequest, AlertView, BudgetRequest, BudgetView, CheckoutRequest, CheckoutView,
    LedgerEntryView, PortalView, PriceRequest, PriceView, PricesView, StripeFeaturesView,
    StripeReceiptView, UsageGroupView, UsageView, WalletView,
};
use hive_store::billing::{BudgetPeriod, BudgetScope, LedgerEntry, UsageGrouping};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// The largest Stripe event read (Stripe's are a few kilobytes).
const MAX_STRIPE_BODY_BYTES: usize = 256 * 1024;
/// The span usage is read over when none is given.
const DEFAULT_USAGE_DAYS: i64 = 30;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WhoseQuery {
    #[serde(default)]
    user_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LedgerQuery {
    #[serde(default)]
    user_id: Option<Uuid>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default)]
    user_id: Option<Uuid>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    to: Option<OffsetDateTime>,
    #[serde(default)]
    group_by: Option<String>,
}

impl UsageQuery {
    fn span(&self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        let to = self.to.unwrap_or(now);
        let from = self
            .from
            .unwrap_or(to - time::Duration::days(DEFAULT_USAGE_DAYS));
        (from, to)
    }
}

fn entry_view(entry: &LedgerEntry) -> LedgerEntryView {
    LedgerEntryView {
        id: entry.id,
        kind: entry.kind.as_str().to_owned(),
        signed_amount_minor: entry.amount.minor,
        currency: entry.amount.currency.to_string(),
        reference: entry.reference.clone(),
        memo: entry.memo.clone(),
        actor: entry.actor.clone(),
        created_at: entry.created_at,
    }
}

/// `GET /api/v1/billing/wallet`.
#[utoipa::path(
    get,
    path = "/api/v1/billing/wallet",
    tag = "billing",
    params(WhoseQuery),
    responses((status = 200, description = "OK.", body = WalletView)),
)]
pub async fn wallet(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<WhoseQuery>, QueryRejection>,
) -> Result<Json<WalletView>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let wallet = state.hive.billing.wallet(&caller, query.user_id).await?;
    Ok(Json(WalletView {
        user_id: wallet.user_id,
        balance_minor: wallet.balance_minor,
        currency: wallet.currency,
        updated_at: wallet.updated_at,
        held_minor: wallet.held_minor,
        owed_minor: wallet.owed_minor,
        billing_usage_minor_per_1k_tokens: wallet.billing_usage_minor_per1k_tokens,
        hosted_minor_per_hour: wallet.hosted_minor_per_hour,
        workflow_step_minor: wallet.workflow_step_minor,
        enforced: wallet.enforced,
        stripe: StripeFeaturesView {
            checkout_enabled: wallet.stripe.checkout_enabled,
            customer_portal_enabled: wallet.stripe.customer_portal_enabled,
            subscription_checkout_enabled: wallet.stripe.subscription_checkout_enabled,
        },
    }))
}

/// `GET /api/v1/billing/ledger`: newest first, keyset pages.
#[utoipa::path(
    get,
    path = "/api/v1/billing/ledger",
    tag = "billing",
    params(LedgerQuery),
    responses((status = 200, description = "OK.", body = PageResponse<LedgerEntryView>)),
)]
pub async fn ledger(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<LedgerQuery>, QueryRejection>,
) -> Result<Json<PageResponse<LedgerEntryView>>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let page = page_request(&PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    })?;
    let page = state
        .hive
        .billing
        .ledger(&caller, query.user_id, &page)
        .await?;
    Ok(Json(PageResponse {
        items: page.items.iter().map(entry_view).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/billing/usage`: grouped by `agent`, `model` or `day` (default).
#[utoipa::path(
    get,
    path = "/api/v1/billing/usage",
    tag = "billing",
    params(UsageQuery),
    responses((status = 200, description = "OK.", body = UsageView)),
)]
pub async fn usage(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<UsageView>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let (from, to) = query.span(state.hive.clock.now());
    let group_by = query.group_by.as_deref().unwrap_or("day");
    let grouping = match group_by {
        "agent" => UsageGrouping::Agent,
        "model" => UsageGrouping::Model,
        "day" => UsageGrouping::Day,
        _ => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "groupBy is agent, model or day",
            ));
        }
    };
    let groups = state
        .hive
        .billing
        .usage(&caller, query.user_id, from, to, grouping)
        .await?;
    Ok(Json(UsageView {
        from,
        to,
        group_by: group_by.to_owned(),
        currency: state.hive.billing.config().currency.to_string(),
        groups: groups
            .into_iter()
            .map(|g| UsageGroupView {
                key: g.key,
                kind: g.kind,
                records: g.records,
                prompt_tokens: g.prompt_tokens,
                completion_tokens: g.completion_tokens,
                quantity: g.quantity,
                cost_minor: g.cost_minor,
            })
            .collect(),
    }))
}

/// `GET /api/v1/billing/usage.csv`: every usage record of the span, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/billing/usage.csv",
    tag = "billing",
    params(UsageQuery),
    responses((status = 200, description = "The usage as CSV.", content_type = "text/csv", body = String)),
)]
pub async fn usage_csv(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    if query.group_by.is_some() {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "the export lists records; groupBy is for /api/v1/billing/usage",
        ));
    }
    let (from, to) = query.span(state.hive.clock.now());
    let csv = state
        .hive
        .billing
        .usage_csv(&caller, query.user_id, from, to)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"hive-usage.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

/// `POST /api/v1/billing/adjustments` (admins): `Idempotency-Key` makes a repeat change nothing
/// (without one, the request id does, which a retry does not share).
#[utoipa::path(
    post,
    path = "/api/v1/billing/adjustments",
    tag = "billing",
    request_body = AdjustmentRequest,
    responses((status = 201, description = "The ledger entry.", body = LedgerEntryView), (status = 200, description = "The same adjustment again (idempotency key): the first entry.", body = LedgerEntryView)),
)]
pub async fn adjust(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    JsonBody(request): JsonBody<AdjustmentRequest>,
) -> Result<(StatusCode, Json<LedgerEntryView>), ApiError> {
    let key = match headers.get("idempotency-key") {
        Some(value) => value
            .to_str()
            .map_err(|_| ApiError::new(ErrorCode::ValidationFailed, "Idempotency-Key is not text"))?
            .to_owned(),
        None => meta
            .request_id
            .clone()
            .unwrap_or_else(|| Uuid::now_v7().to_string()),
    };
    let adjusted = state
        .hive
        .billing
        .adjust(
            &caller,
            request.user_id,
            request.amount_minor,
            &request.reason,
            &key,
            &meta,
        )
        .await?;
    let status = if adjusted.repeated {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(entry_view(&adjusted.entry))))
}

/// `GET /api/v1/billing/prices`.
#[utoipa::path(
    get,
    path = "/api/v1/billing/prices",
    tag = "billing",
    responses((status = 200, description = "OK.", body = PricesView)),
)]
pub async fn prices(
    State(state): State<AppState>,
    Authenticated(_caller): Authenticated,
) -> Result<Json<PricesView>, ApiError> {
    let billing = &state.hive.billing;
    let table = billing.price_table().await?;
    let config = billing.config();
    Ok(Json(PricesView {
        currency: config.currency.to_string(),
        default_minor_per_1k_tokens: config.minor_per_1k_tokens,
        hosted_minor_per_hour: config.hosted_minor_per_hour,
        workflow_step_minor: config.workflow_step_minor,
        models: table
            .models
            .into_iter()
            .map(|row| PriceView {
                model: row.model,
                prompt_minor_per_1k: row.prompt_minor_per_1k,
                completion_minor_per_1k: row.completion_minor_per_1k,
            })
            .collect(),
    }))
}

/// `PUT /api/v1/billing/prices/{model}` (admins).
#[utoipa::path(
    put,
    path = "/api/v1/billing/prices/{model}",
    tag = "billing",
    params(("model" = String, Path)),
    request_body = PriceRequest,
    responses((status = 200, description = "OK.", body = PriceView)),
)]
pub async fn set_price(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
    JsonBody(request): JsonBody<PriceRequest>,
) -> Result<Json<PriceView>, ApiError> {
    let price = TokenPrice {
        prompt_minor_per_1k: request.prompt_minor_per_1k,
        completion_minor_per_1k: request.completion_minor_per_1k,
    };
    state
        .hive
        .billing
        .set_price(&caller, &model, Some(price), &meta)
        .await?;
    Ok(Json(PriceView {
        model: model.trim().to_owned(),
        prompt_minor_per_1k: price.prompt_minor_per_1k,
        completion_minor_per_1k: price.completion_minor_per_1k,
    }))
}

/// `DELETE /api/v1/billing/prices/{model}` (admins): the model takes the default price again.
#[utoipa::path(
    delete,
    path = "/api/v1/billing/prices/{model}",
    tag = "billing",
    params(("model" = String, Path)),
    responses((status = 204, description = "Done.")),
)]
pub async fn delete_price(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
) -> Result<StatusCode, ApiError> {
    let removed = state
        .hive
        .billing
        .set_price(&caller, &model, None, &meta)
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::of(ErrorCode::NotFound))
    }
}

/// `POST /api/webhooks/stripe`: 503 without `STRIPE_WEBHOOK_SECRET`; 400 for a signature that
/// does not hold (nothing parsed) or a body that is not an event; 200 for every event taken,
/// acted on or not (a redelivery changes nothing).
#[utoipa::path(
    post,
    path = "/api/webhooks/stripe",
    tag = "billing",
    request_body(content = Object, description = "A Stripe event, signed (`Stripe-Signature`).", content_type = "application/json"),
    responses((status = 200, description = "OK.", body = StripeReceiptView)),
)]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    request: Request,
) -> Result<Json<StripeReceiptView>, ApiError> {
    if state.hive.billing.config().stripe.webhook_secret.is_none() {
        return Err(ApiError::of(ErrorCode::StripeWebhooksNotConfigured));
    }
    let body = read_body(request.into_body(), MAX_STRIPE_BODY_BYTES).await?;
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok());
    let outcome = state
        .hive
        .billing
        .stripe_webhook(signature, &body, &meta)
        .await
        .map_err(|error| match error {
            WebhookError::NotConfigured => ApiError::of(ErrorCode::StripeWebhooksNotConfigured),
            WebhookError::Signature(refusal) => ApiError::new(
                ErrorCode::BadRequest,
                format!("the Stripe-Signature header was refused: {refusal}"),
            ),
            WebhookError::Invalid(message) => ApiError::new(ErrorCode::BadRequest, message),
            WebhookError::Billing(error) => ApiError::from(error),
        })?;
    let (word, transaction_id) = match outcome {
        WebhookOutcome::Posted { transaction_id, .. } => ("posted", Some(transaction_id)),
        WebhookOutcome::Linked { .. } => ("linked", None),
        WebhookOutcome::Duplicate => ("duplicate", None),
        WebhookOutcome::Ignored(_) => ("ignored", None),
    };
    Ok(Json(StripeReceiptView {
        received: true,
        outcome: word.to_owned(),
        transaction_id,
    }))
}

fn budget_view(status: hive_core::billing::budgets::BudgetStatus) -> BudgetView {
    let budget = status.budget;
    BudgetView {
        id: budget.id,
        scope: budget.scope.kind().to_owned(),
        scope_id: budget.scope.id(),
        period: budget.period.as_str().to_owned(),
        max_tokens: budget.max_tokens,
        max_cost_minor: budget.max_cost_minor,
        notify_user_id: budget.notify_user_id,
        created_by: budget.created_by,
        created_at: budget.created_at,
        period_start: status.period_start,
        period_end: status.period_end,
        used_tokens: status.used.tokens,
        used_cost_minor: status.used.cost_minor,
        held_tokens: status.used.held_tokens,
        held_cost_minor: status.used.held_cost_minor,
    }
}

/// `GET /api/v1/billing/budgets`: an admin's, all; anyone else's, those that concern them.
#[utoipa::path(
    get,
    path = "/api/v1/billing/budgets",
    tag = "billing",
    responses((status = 200, description = "OK.", body = Vec<BudgetView>)),
)]
pub async fn budgets(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<BudgetView>>, ApiError> {
    let found = state.hive.billing.budgets(&caller).await?;
    Ok(Json(found.into_iter().map(budget_view).collect()))
}

/// `POST /api/v1/billing/budgets` (admins): sets the budget of a scope and period (replacing
/// one there).
#[utoipa::path(
    post,
    path = "/api/v1/billing/budgets",
    tag = "billing",
    request_body = BudgetRequest,
    responses((status = 201, description = "Created.", body = BudgetView)),
)]
pub async fn set_budget(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<BudgetRequest>,
) -> Result<(StatusCode, Json<BudgetView>), ApiError> {
    let invalid = |what: &str| ApiError::new(ErrorCode::ValidationFailed, what.to_owned());
    let scope = match request.scope.as_str() {
        "user" => BudgetScope::User(request.scope_id),
        "agent" => BudgetScope::Agent(request.scope_id),
        _ => return Err(invalid("scope is user or agent")),
    };
    let period =
        BudgetPeriod::parse(&request.period).map_err(|_| invalid("period is day or month"))?;
    let billing = &state.hive.billing;
    let row = billing
        .set_budget(
            &caller,
            BudgetSpec {
                scope,
                period,
                max_tokens: request.max_tokens,
                max_cost_minor: request.max_cost_minor,
            },
            &meta,
        )
        .await?;
    let status = billing
        .budgets(&caller)
        .await?
        .into_iter()
        .find(|status| status.budget.id == row.id)
        .ok_or_else(|| ApiError::of(ErrorCode::NotFound))?;
    Ok((StatusCode::CREATED, Json(budget_view(status))))
}

/// `DELETE /api/v1/billing/budgets/{id}` (admins).
#[utoipa::path(
    delete,
    path = "/api/v1/billing/budgets/{id}",
    tag = "billing",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Done.")),
)]
pub async fn delete_budget(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.hive.billing.delete_budget(&caller, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertsQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
    /// Admins: everyone's alerts.
    #[serde(default)]
    all: Option<bool>,
}

/// `GET /api/v1/billing/alerts`: the caller's budget alerts, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/billing/alerts",
    tag = "billing",
    params(AlertsQuery),
    responses((status = 200, description = "OK.", body = PageResponse<AlertView>)),
)]
pub async fn alerts(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<PageResponse<AlertView>>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let page = page_request(&PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    })?;
    let page = state
        .hive
        .billing
        .alerts(&caller, query.all.unwrap_or(false), &page)
        .await?;
    Ok(Json(PageResponse {
        items: page
            .items
            .into_iter()
            .map(|alert| AlertView {
                id: alert.id,
                budget_id: alert.budget_id,
                period_start: alert.period_start,
                threshold_percent: alert.threshold,
                user_id: alert.user_id,
                created_at: alert.created_at,
                delivered_at: alert.delivered_at,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `POST /api/v1/billing/checkout-session`: a top-up (`{"amountMinor"}`, within the bounds) or
/// the subscription (`{"mode": "subscription"}`); `503 stripe_not_configured` without
/// `STRIPE_SECRET_KEY`.
#[utoipa::path(
    post,
    path = "/api/v1/billing/checkout-session",
    tag = "billing",
    request_body = CheckoutRequest,
    responses((status = 200, description = "OK.", body = CheckoutView)),
)]
pub async fn checkout(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<CheckoutRequest>,
) -> Result<Json<CheckoutView>, ApiError> {
    let billing = &state.hive.billing;
    if let Some(currency) = &request.currency
        && !currency.eq_ignore_ascii_case(billing.config().currency.as_str())
    {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("wallets here are in {}", billing.config().currency),
        ));
    }
    let mode = match request.mode.as_deref().unwrap_or("payment") {
        "payment" => CheckoutMode::Payment {
            amount_minor: request.amount_minor.ok_or_else(|| {
                ApiError::new(ErrorCode::ValidationFailed, "a top-up needs amountMinor")
            })?,
        },
        "subscription" => CheckoutMode::Subscription,
        _ => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "mode is payment or subscription",
            ));
        }
    };
    // The request is checked first: a malformed one is the caller's to fix, whatever is set.
    if !billing.stripe_ready() {
        return Err(ApiError::of(ErrorCode::StripeNotConfigured));
    }
    let session = billing.checkout(&caller, mode, &meta).await?;
    Ok(Json(CheckoutView {
        url: session.url,
        session_id: session.id,
        mode: session.mode.to_owned(),
    }))
}

/// `POST /api/v1/billing/customer-portal`: the portal of the caller's Stripe customer (`409`
/// before a checkout linked one).
#[utoipa::path(
    post,
    path = "/api/v1/billing/customer-portal",
    tag = "billing",
    responses((status = 200, description = "OK.", body = PortalView)),
)]
pub async fn customer_portal(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Result<Json<PortalView>, ApiError> {
    let billing = &state.hive.billing;
    if !billing.stripe_ready() {
        // Without a customer the portal has nothing to show, configured or not.
        billing.linked_customer(&caller).await?;
        return Err(ApiError::of(ErrorCode::StripeNotConfigured));
    }
    let url = billing.customer_portal(&caller, &meta).await?;
    Ok(Json(PortalView { url }))
}
