//! Stripe Checkout and the customer portal: sessions opened at Stripe's API (`STRIPE_API_BASE`)
//! with `STRIPE_SECRET_KEY`, always through the egress guard. A top-up's session carries the
//! user's id in its metadata and in its payment intent's, so the webhook credits the right
//! wallet; the user never chooses whose wallet it is.

use super::{Billing, BillingError};
use crate::kernel::audit::{AuditAction, AuditEvent};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::egress::Purpose;
use hive_egress::{CallLimits, EgressRequest};
use http::{HeaderValue, header};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::time::Duration;

/// One call to Stripe's API: from the first lookup to the last byte.
const STRIPE_TIMEOUT: Duration = Duration::from_secs(20);
/// Stripe's answers are a few kilobytes.
const MAX_STRIPE_ANSWER_BYTES: u64 = 256 * 1024;
/// The feature name of the egress requests made here.
const FEATURE: &str = "stripe";

/// What a checkout is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutMode {
    /// A one-time top-up of this many minor units.
    Payment { amount_minor: i64 },
    /// The subscription of `STRIPE_SUBSCRIPTION_PRICE_ID`.
    Subscription,
}

/// A session opened at Stripe: where to send the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
    pub mode: &'static str,
}

#[derive(Deserialize)]
struct StripeSession {
    #[serde(default)]
    id: String,
    url: Option<String>,
}

impl Billing {
    fn stripe_key(&self) -> Result<String, BillingError> {
        self.parts
            .config
            .stripe
            .secret_key
            .as_ref()
            .map(|key| key.expose_secret().to_owned())
            .ok_or(BillingError::Unavailable)
    }

    /// Whether checkout and the portal can be used (`STRIPE_SECRET_KEY`).
    pub fn stripe_ready(&self) -> bool {
        self.parts.config.stripe.secret_key.is_some()
    }

    /// POSTs a form to Stripe's API and reads its session answer.
    async fn stripe_post(
        &self,
        path: &str,
        form: String,
        idempotency_key: Option<&str>,
        caller: &Caller,
        meta: &RequestMeta,
    ) -> Result<StripeSession, BillingError> {
        let key = self.stripe_key()?;
        let base = self
            .parts
            .config
            .stripe
            .api_base
            .as_str()
            .trim_end_matches('/');
        let mut bearer = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            BillingError::Internal("STRIPE_SECRET_KEY is not a header value".into())
        })?;
        bearer.set_sensitive(true);
        let mut request = EgressRequest::post(format!("{base}{path}"))
            .without_redirects()
            .header(header::AUTHORIZATION, bearer)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(form);
        if let Some(key) = idempotency_key.and_then(|k| HeaderValue::from_str(k).ok()) {
            request = request.header(http::HeaderName::from_static("idempotency-key"), key);
        }
        let purpose = Purpose {
            principal: caller.principal(),
            feature: FEATURE,
            meta: meta.clone(),
        };
        let response = self
            .parts
            .egress
            .send(
                request,
                &CallLimits::new(STRIPE_TIMEOUT, MAX_STRIPE_ANSWER_BYTES),
                &purpose,
            )
            .await
            .map_err(|error| {
                tracing::warn!(%error, "billing: Stripe's API cannot be reached");
                BillingError::Unavailable
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| {
            tracing::warn!(%error, "billing: Stripe's answer was cut short");
            BillingError::Unavailable
        })?;
        if !status.is_success() {
            // Stripe's error names the parameter at fault; it never holds the key.
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            tracing::warn!(status = status.as_u16(), %message, "billing: Stripe refused a session");
            return Err(BillingError::Conflict("Stripe refused to open the session"));
        }
        serde_json::from_slice::<StripeSession>(&body)
            .ok()
            .filter(|session| session.url.is_some())
            .ok_or_else(|| BillingError::Internal("Stripe's session answer is unreadable".into()))
    }

    fn return_url(&self, outcome: &str) -> String {
        format!(
            "{}/billing?checkout={outcome}",
            self.parts.public_url.trim_end_matches('/')
        )
    }

    /// Opens a Checkout session for the caller: a top-up within
    /// `HIVE_BILLING_TOPUP_MIN_MINOR`..`_MAX_MINOR`, or the subscription.
    pub async fn checkout(
        &self,
        caller: &Caller,
        mode: CheckoutMode,
        meta: &RequestMeta,
    ) -> Result<CheckoutSession, BillingError> {
        let user = caller.user_id().ok_or(BillingError::NotFound)?;
        if !self.stripe_ready() {
            return Err(BillingError::Unavailable);
        }
        let config = &self.parts.config;
        let user_text = user.to_string();
        let success = self.return_url("success");
        let cancel = self.return_url("cancelled");
        let customer = self.store().billing().customer_of(user).await?;
        // The form is built whole before the next await (its builder is not `Send`).
        let (form, word, amount) = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("success_url", &success)
                .append_pair("cancel_url", &cancel)
                .append_pair("client_reference_id", &user_text)
                .append_pair("metadata[hive_user_id]", &user_text);
            if let Some(customer) = &customer {
                form.append_pair("customer", customer);
            }
            let (word, amount) = match mode {
                CheckoutMode::Payment { amount_minor } => {
                    if !(config.top_up_min_minor..=config.top_up_max_minor).contains(&amount_minor)
                    {
                        return Err(BillingError::Invalid(format!(
                            "a top-up is {} to {} minor units",
                            config.top_up_min_minor, config.top_up_max_minor
                        )));
                    }
                    let amount = amount_minor.to_string();
                    form.append_pair("mode", "payment")
                        .append_pair("line_items[0][quantity]", "1")
                        .append_pair(
                            "line_items[0][price_data][currency]",
                            config.currency.as_str(),
                        )
                        .append_pair("line_items[0][price_data][unit_amount]", &amount)
                        .append_pair(
                            "line_items[0][price_data][product_data][name]",
                            "Hive credit",
                        )
                        .append_pair("payment_intent_data[metadata][hive_user_id]", &user_text);
                    ("payment", Some(amount_minor))
                }
                CheckoutMode::Subscription => {
                    let price =
                        config
                            .stripe
                            .subscription_price_id
                            .as_deref()
                            .ok_or_else(|| {
                                BillingError::Invalid(
                                "subscriptions are off (STRIPE_SUBSCRIPTION_PRICE_ID is not set)"
                                    .into(),
                            )
                            })?;
                    form.append_pair("mode", "subscription")
                        .append_pair("line_items[0][price]", price)
                        .append_pair("line_items[0][quantity]", "1")
                        .append_pair("subscription_data[metadata][hive_user_id]", &user_text);
                    ("subscription", None)
                }
            };
            (form.finish(), word, amount)
        };
        let session = self
            .stripe_post(
                "/v1/checkout/sessions",
                form,
                meta.request_id.as_deref(),
                caller,
                meta,
            )
            .await?;
        self.audit_session(caller, "checkout", word, amount, &session.id, meta)
            .await?;
        Ok(CheckoutSession {
            id: session.id,
            url: session.url.unwrap_or_default(),
            mode: word,
        })
    }

    /// The Stripe customer linked to the caller (a conflict before a checkout linked one).
    pub async fn linked_customer(&self, caller: &Caller) -> Result<String, BillingError> {
        let user = caller.user_id().ok_or(BillingError::NotFound)?;
        self.store()
            .billing()
            .customer_of(user)
            .await?
            .ok_or(BillingError::Conflict(
                "no Stripe customer is linked to you yet; pay once through checkout first",
            ))
    }

    /// Opens the customer portal for the caller's linked Stripe customer.
    pub async fn customer_portal(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
    ) -> Result<String, BillingError> {
        let customer = self.linked_customer(caller).await?;
        if !self.stripe_ready() {
            return Err(BillingError::Unavailable);
        }
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("customer", &customer)
            .append_pair("return_url", &self.return_url("portal"))
            .finish();
        let session = self
            .stripe_post("/v1/billing_portal/sessions", form, None, caller, meta)
            .await?;
        self.audit_session(caller, "portal", "portal", None, &session.id, meta)
            .await?;
        Ok(session.url.unwrap_or_default())
    }

    async fn audit_session(
        &self,
        caller: &Caller,
        kind: &str,
        mode: &str,
        amount_minor: Option<i64>,
        session_id: &str,
        meta: &RequestMeta,
    ) -> Result<(), BillingError> {
        self.parts
            .auditor
            .record(
                AuditEvent::new(caller.principal(), AuditAction::BillingCheckout)
                    .target(format!("user:{}", caller.user_id().unwrap_or_default()))
                    .detail(serde_json::json!({
                        "session": kind,
                        "mode": mode,
                        "amountMinor": amount_minor,
                        "sessionId": session_id,
                    })),
                meta,
            )
            .await
            .map_err(|_| BillingError::Unavailable)
    }
}
