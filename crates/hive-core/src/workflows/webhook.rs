//! A workflow's webhook signature, in Stripe's scheme: the `Hive-Signature` header holds
//! `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…]`; the HMAC is over `"{t}.{raw body}"`, keyed
//! with the whole secret string; any `v1` may match (so a secret can be rotated), other schemes
//! are ignored, and `t` must be within five minutes of now. The body is parsed only after the
//! signature holds. The scheme itself is `hive_crypto::webhook_signature`; this adds the
//! refusals of a workflow's webhook (a replay, no secret) and what makes a delivery one.

use hive_crypto::webhook_signature::{self, SignatureError};
use time::OffsetDateTime;

/// The header a signed webhook call carries.
pub const SIGNATURE_HEADER: &str = "hive-signature";

/// Why a webhook call's signature was refused (the audit record's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefusal {
    #[error("the Hive-Signature header is missing")]
    Missing,
    #[error("the Hive-Signature header is not t=…,v1=…")]
    Malformed,
    #[error("the signature's time is more than five minutes from now")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
    #[error("this delivery was received already")]
    Replayed,
    #[error("the workflow has no webhook secret")]
    NoSecret,
}

impl From<SignatureError> for SignatureRefusal {
    fn from(error: SignatureError) -> Self {
        match error {
            SignatureError::Missing => Self::Missing,
            SignatureError::Malformed => Self::Malformed,
            SignatureError::Stale => Self::Stale,
            SignatureError::Mismatch => Self::Mismatch,
        }
    }
}

impl SignatureRefusal {
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Missing => "signature_missing",
            Self::Malformed => "signature_malformed",
            Self::Stale => "signature_stale",
            Self::Mismatch => "signature_mismatch",
            Self::Replayed => "replayed",
            Self::NoSecret => "no_secret",
        }
    }
}

/// A signature that held: its time and the `v1` that matched (what makes a delivery one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub timestamp: i64,
    pub signature: String,
}

impl Verified {
    /// What makes this delivery unique within its workflow: a second call with the same
    /// signature is a replay.
    pub fn delivery_key(&self) -> String {
        format!("webhook:{}:{}", self.timestamp, self.signature)
    }
}

/// Checks `header` against `body` with `secret` at `now`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now: OffsetDateTime,
) -> Result<Verified, SignatureRefusal> {
    let verified = webhook_signature::verify(header, body, secret, now.unix_timestamp())?;
    Ok(Verified {
        timestamp: verified.timestamp,
        signature: verified.signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"hello":"world"}"#;
    const T: i64 = 1_700_000_000;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn a_signature_that_holds_is_one_delivery() {
        let header = webhook_signature::header(SECRET, T, BODY);
        let verified = verify(Some(&header), BODY, SECRET, at(T + 10)).unwrap();
        assert_eq!(verified.timestamp, T);
        assert_eq!(
            verified.delivery_key(),
            format!("webhook:{T}:{}", webhook_signature::sign(SECRET, T, BODY))
        );
    }

    #[test]
    fn each_refusal_keeps_its_reason() {
        let good = webhook_signature::header(SECRET, T, BODY);
        let stale = T + webhook_signature::TOLERANCE_SECONDS + 1;
        for (header, body, now, refusal) in [
            (None, BODY, T, SignatureRefusal::Missing),
            (Some("t=abc,v1=00"), BODY, T, SignatureRefusal::Malformed),
            (Some(good.as_str()), BODY, stale, SignatureRefusal::Stale),
            (
                Some(good.as_str()),
                b"{}".as_slice(),
                T,
                SignatureRefusal::Mismatch,
            ),
        ] {
            assert_eq!(verify(header, body, SECRET, at(now)), Err(refusal));
        }
        for error in [
            SignatureError::Missing,
            SignatureError::Malformed,
            SignatureError::Stale,
            SignatureError::Mismatch,
        ] {
            assert_eq!(SignatureRefusal::from(error).reason(), error.reason());
        }
    }
}
