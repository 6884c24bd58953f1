//! `BILLING_*`, `HIVE_BILLING_*` and `STRIPE_*`: metering, prices, enforcement and Stripe.

use super::sources::{ConfigError, Sources, invalid};
use super::{BillingConfig, StripeConfig};
use secrecy::ExposeSecret;
use url::Url;

/// An http(s) URL without credentials, for `name`.
pub(super) fn plain_url(name: &str, raw: &str) -> Result<Url, ConfigError> {
    Url::parse(raw.trim())
        .ok()
        .filter(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.username().is_empty()
                && url.password().is_none()
        })
        .ok_or_else(|| invalid(name, "an http or https URL without credentials"))
}

pub(super) fn load(src: &mut Sources) -> Result<BillingConfig, ConfigError> {
    let currency = src.parsed("HIVE_BILLING_CURRENCY", None, |raw| {
        hive_store::billing::Currency::new(raw).ok().map(Some)
    })?;
    let currency = match currency {
        Some(currency) => currency,
        None => hive_store::billing::Currency::new("usd")
            .map_err(|_| invalid("HIVE_BILLING_CURRENCY", "an ISO 4217 code in lower case"))?,
    };
    let price = |src: &mut Sources, name: &str| -> Result<i64, ConfigError> {
        Ok(i64::try_from(src.integer(name, 0, 0, 1_000_000_000)?).unwrap_or(0))
    };
    let minor_per_1k_tokens = price(src, "BILLING_USAGE_MINOR_PER_1K_TOKENS")?;
    let hosted_minor_per_hour = price(src, "HIVE_BILLING_HOSTED_MINOR_PER_HOUR")?;
    let workflow_step_minor = price(src, "HIVE_BILLING_WORKFLOW_STEP_MINOR")?;
    let top_up_min_minor =
        i64::try_from(src.integer("HIVE_BILLING_TOPUP_MIN_MINOR", 100, 1, 1_000_000_000)?)
            .unwrap_or(100);
    let top_up_max_minor =
        i64::try_from(src.integer("HIVE_BILLING_TOPUP_MAX_MINOR", 100_000, 1, 1_000_000_000)?)
            .unwrap_or(100_000);
    if top_up_max_minor < top_up_min_minor {
        return Err(invalid(
            "HIVE_BILLING_TOPUP_MAX_MINOR",
            "at least HIVE_BILLING_TOPUP_MIN_MINOR",
        ));
    }
    let alert_webhook_url = match src.value("HIVE_BILLING_ALERT_WEBHOOK_URL")? {
        None => None,
        Some(raw) => Some(plain_url("HIVE_BILLING_ALERT_WEBHOOK_URL", &raw)?),
    };
    let alert_webhook_secret = src.secret("HIVE_BILLING_ALERT_WEBHOOK_SECRET")?;
    if let Some(secret) = &alert_webhook_secret
        && secret.expose_secret().chars().count() < 32
    {
        return Err(invalid(
            "HIVE_BILLING_ALERT_WEBHOOK_SECRET",
            "at least 32 characters",
        ));
    }
    let webhook_secret = src.secret("STRIPE_WEBHOOK_SECRET")?;
    if let Some(secret) = &webhook_secret
        && secret.expose_secret().chars().count() < 32
    {
        return Err(invalid(
            "STRIPE_WEBHOOK_SECRET",
            "at least 32 characters (Stripe's signing secret, whsec_…)",
        ));
    }
    let api_base = match src.value("STRIPE_API_BASE")? {
        None => Url::parse("https://api.stripe.com").map_err(|_| {
            invalid(
                "STRIPE_API_BASE",
                "an http or https URL without credentials",
            )
        })?,
        Some(raw) => plain_url("STRIPE_API_BASE", &raw)?,
    };
    Ok(BillingConfig {
        currency,
        minor_per_1k_tokens,
        hosted_minor_per_hour,
        hosted_meter_every: src.seconds("HIVE_BILLING_HOSTED_METER_SECONDS", 60, 1, 3600)?,
        workflow_step_minor,
        enforce: src.boolean("HIVE_BILLING_ENFORCE", false)?,
        fail_open: src.boolean("HIVE_BILLING_FAIL_OPEN", false)?,
        reserve_tokens: u32::try_from(src.integer(
            "HIVE_BILLING_RESERVE_TOKENS",
            1024,
            1,
            1_000_000,
        )?)
        .unwrap_or(1024),
        top_up_min_minor,
        top_up_max_minor,
        alert_webhook_url,
        alert_webhook_secret,
        stripe: StripeConfig {
            webhook_secret,
            secret_key: src.secret("STRIPE_SECRET_KEY")?,
            subscription_price_id: src
                .value("STRIPE_SUBSCRIPTION_PRICE_ID")?
                .map(|raw| raw.trim().to_owned())
                .filter(|raw| !raw.is_empty()),
            api_base,
        },
    })
}
