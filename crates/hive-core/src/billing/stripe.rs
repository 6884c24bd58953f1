//! Stripe's webhook: `POST /api/webhooks/stripe`. The `Stripe-Signature` header is verified
//! (Stripe's scheme, `hive_crypto::webhook_signature`) before the body is parsed; each event
//! that moves money is one ledger transaction whose idempotency key is the event's id, so a
//! redelivery (or 50 concurrent copies) makes one effect.
//!
//! - `payment_intent.succeeded`: a top-up, unless the payment belongs to an invoice (then
//!   `invoice.paid` credits it);
//! - `invoice.paid`: an invoice (subscriptions included), by its customer;
//! - `refund.created`: money back out, found through its payment intent;
//! - `checkout.session.completed`: links the Stripe customer to the user it names.
//!
//! The user is `metadata.hive_user_id` when it names an account, else the account linked to
//! the event's customer. Other events are acknowledged and ignored.

use super::{Billing, BillingError};
use crate::kernel::audit::{AuditAction, AuditEvent, Principal};
use crate::kernel::caller::RequestMeta;
use hive_crypto::webhook_signature::{self, SignatureError};
use hive_store::billing::{EntryKind, Money, NewEntry, Posted};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// The header Stripe signs its deliveries with.
pub const SIGNATURE_HEADER: &str = "stripe-signature";
/// The largest amount one event may move (minor units).
const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("Stripe webhooks are not configured")]
    NotConfigured,
    #[error("{0}")]
    Signature(SignatureError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
}

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// A ledger transaction was made.
    Posted { transaction_id: Uuid, user_id: Uuid },
    /// A customer was linked to a user.
    Linked { user_id: Uuid },
    /// This event was applied before; nothing changed.
    Duplicate,
    /// Acknowledged without an effect, and why.
    Ignored(&'static str),
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Value,
}

fn text<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A field that is an id or an expanded object with an id.
fn id_of<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    match object.get(field) {
        Some(Value::String(id)) if !id.is_empty() => Some(id),
        Some(Value::Object(inner)) => inner.get("id").and_then(Value::as_str),
        _ => None,
    }
}

fn amount(object: &Value, field: &str) -> Result<i64, WebhookError> {
    object
        .get(field)
        .and_then(Value::as_i64)
        .filter(|n| (0..=MAX_AMOUNT_MINOR).contains(n))
        .ok_or_else(|| WebhookError::Invalid(format!("the event's {field} is not an amount")))
}

impl Billing {
    /// Handles one delivery of Stripe's webhook.
    pub async fn stripe_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
        meta: &RequestMeta,
    ) -> Result<WebhookOutcome, WebhookError> {
        let secret = self
            .parts
            .config
            .stripe
            .webhook_secret
            .as_ref()
            .ok_or(WebhookError::NotConfigured)?;
        let now = self.parts.clock.now().unix_timestamp();
        if let Err(refusal) =
            webhook_signature::verify(signature, body, secret.expose_secret().as_bytes(), now)
        {
            self.parts
                .auditor
                .record_refusal(
                    AuditEvent::refused(
                        Principal::Anonymous,
                        AuditAction::BillingStripeRefused,
                        refusal.reason(),
                    ),
                    meta,
                )
                .await;
            return Err(WebhookError::Signature(refusal));
        }
        let event: Event = serde_json::from_slice(body)
            .map_err(|_| WebhookError::Invalid("the body is not a Stripe event".into()))?;
        if !event.id.starts_with("evt_") || event.id.len() > 255 {
            return Err(WebhookError::Invalid(
                "the event's id is not Stripe's".into(),
            ));
        }
        let object = &event.data.object;
        let outcome = match event.kind.as_str() {
            "payment_intent.succeeded" => {
                if id_of(object, "invoice").is_some() {
                    WebhookOutcome::Ignored("an invoice's payment is credited by invoice.paid")
                } else {
                    let reference = text(object, "id").map(str::to_owned);
                    let received = amount(object, "amount_received")?;
                    self.credit(&event, EntryKind::TopUp, received, reference, meta)
                        .await?
                }
            }
            "invoice.paid" => {
                let paid = amount(object, "amount_paid")?;
                // A refund names the payment intent: keep it as the reference when there is one.
                let reference = id_of(object, "payment_intent")
                    .or_else(|| text(object, "id"))
                    .map(str::to_owned);
                self.credit(&event, EntryKind::Invoice, paid, reference, meta)
                    .await?
            }
            "refund.created" => self.refund(&event, meta).await?,
            "checkout.session.completed" => self.link_from_checkout(&event, meta).await?,
            _ => WebhookOutcome::Ignored("an event Hive does not act on"),
        };
        if let WebhookOutcome::Ignored(why) = outcome {
            tracing::info!(event = %event.id, kind = %event.kind, why, "billing: Stripe event ignored");
        }
        Ok(outcome)
    }

    /// The account an event is for: `metadata.hive_user_id` (or `user_id`) when it names an
    /// account, else the account linked to its customer.
    async fn user_of(&self, object: &Value) -> Result<Option<Uuid>, BillingError> {
        let metadata = object.get("metadata");
        let named = ["hive_user_id", "user_id"]
            .iter()
            .find_map(|key| metadata.and_then(|m| text(m, key)))
            .and_then(|raw| Uuid::parse_str(raw).ok());
        if let Some(user) = named
            && self.store().users().get(user).await?.is_some()
        {
            return Ok(Some(user));
        }
        match id_of(object, "customer") {
            Some(customer) => Ok(self.store().billing().user_of_customer(customer).await?),
            None => Ok(None),
        }
    }

    fn accepts(&self, object: &Value) -> bool {
        text(object, "currency")
            .is_some_and(|c| c.eq_ignore_ascii_case(self.parts.config.currency.as_str()))
    }

    async fn credit(
        &self,
        event: &Event,
        kind: EntryKind,
        amount_minor: i64,
        reference: Option<String>,
        meta: &RequestMeta,
    ) -> Result<WebhookOutcome, WebhookError> {
        let object = &event.data.object;
        if amount_minor == 0 {
            return Ok(WebhookOutcome::Ignored("nothing was paid"));
        }
        if !self.accepts(object) {
            return Ok(WebhookOutcome::Ignored("a currency other than Hive's"));
        }
        let Some(user) = self.user_of(object).await? else {
            return Ok(WebhookOutcome::Ignored(
                "no Hive account is named or linked",
            ));
        };
        let memo = match kind {
            EntryKind::Invoice => "Invoice paid",
            _ => "Top-up",
        };
        self.post_event(event, kind, user, amount_minor, reference, memo, meta)
            .await
    }

    async fn refund(
        &self,
        event: &Event,
        meta: &RequestMeta,
    ) -> Result<WebhookOutcome, WebhookError> {
        let object = &event.data.object;
        let refunded = amount(object, "amount")?;
        if refunded == 0 {
            return Ok(WebhookOutcome::Ignored("nothing was refunded"));
        }
        if !self.accepts(object) {
            return Ok(WebhookOutcome::Ignored("a currency other than Hive's"));
        }
        let payment = id_of(object, "payment_intent").map(str::to_owned);
        let mut user = self.user_of(object).await?;
        if user.is_none()
            && let Some(payment) = &payment
        {
            for kind in [EntryKind::TopUp, EntryKind::Invoice] {
                if let Some(paid) = self
                    .store()
                    .billing()
                    .entry_by_reference(kind, payment)
                    .await
                    .map_err(BillingError::from)?
                {
                    user = Some(paid.user_id);
                    break;
                }
            }
        }
        let Some(user) = user else {
            return Ok(WebhookOutcome::Ignored(
                "the refund's payment is not in Hive's ledger",
            ));
        };
        self.post_event(
            event,
            EntryKind::Refund,
            user,
            -refunded,
            payment,
            "Refund",
            meta,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn post_event(
        &self,
        event: &Event,
        kind: EntryKind,
        user_id: Uuid,
        amount_minor: i64,
        reference: Option<String>,
        memo: &str,
        meta: &RequestMeta,
    ) -> Result<WebhookOutcome, WebhookError> {
        let entry = NewEntry {
            id: Uuid::now_v7(),
            idempotency_key: event.id.clone(),
            kind,
            user_id,
            amount: Money::new(amount_minor, self.parts.config.currency.clone()),
            reference: reference.filter(|r| r.len() <= hive_store::billing::REFERENCE_MAX_CHARS),
            memo: memo.to_owned(),
            actor: Principal::Stripe.to_string(),
            created_at: self.now(),
        };
        let record = self.record(
            Principal::Stripe,
            AuditAction::BillingStripeEvent,
            format!("user:{user_id}"),
            serde_json::json!({
                "eventId": event.id,
                "type": event.kind,
                "transactionId": entry.id,
                "amountMinor": amount_minor,
                "currency": entry.amount.currency.as_str(),
            }),
            meta,
        );
        match self
            .store()
            .billing()
            .post(&entry, record.append())
            .await
            .map_err(BillingError::from)?
        {
            Posted::Applied { entry, .. } => Ok(WebhookOutcome::Posted {
                transaction_id: entry.id,
                user_id,
            }),
            Posted::Duplicate => Ok(WebhookOutcome::Duplicate),
        }
    }

    async fn link_from_checkout(
        &self,
        event: &Event,
        meta: &RequestMeta,
    ) -> Result<WebhookOutcome, WebhookError> {
        let object = &event.data.object;
        let Some(customer) = id_of(object, "customer").filter(|c| c.starts_with("cus_")) else {
            return Ok(WebhookOutcome::Ignored("the session has no customer"));
        };
        let named = object
            .get("metadata")
            .and_then(|m| text(m, "hive_user_id"))
            .or_else(|| text(object, "client_reference_id"))
            .and_then(|raw| Uuid::parse_str(raw).ok());
        let Some(user) = named else {
            return Ok(WebhookOutcome::Ignored("the session names no Hive account"));
        };
        if self
            .store()
            .users()
            .get(user)
            .await
            .map_err(BillingError::from)?
            .is_none()
        {
            return Ok(WebhookOutcome::Ignored("the session names no Hive account"));
        }
        let record = self.record(
            Principal::Stripe,
            AuditAction::BillingStripeEvent,
            format!("user:{user}"),
            serde_json::json!({ "eventId": event.id, "type": event.kind, "customer": customer }),
            meta,
        );
        let linked = self
            .store()
            .billing()
            .link_customer(user, customer, self.now(), record.append())
            .await
            .map_err(BillingError::from)?;
        Ok(if linked {
            WebhookOutcome::Linked { user_id: user }
        } else {
            WebhookOutcome::Duplicate
        })
    }
}
