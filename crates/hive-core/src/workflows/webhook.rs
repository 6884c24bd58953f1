//! A workflow's webhook signature, in Stripe's scheme: the `Hive-Signature` header holds
//! `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…]`; the HMAC is over `"{t}.{raw body}"`, keyed
//! with the whole secret string; any `v1` may match (so a secret can be rotated), other schemes
//! are ignored, and `t` must be within five minutes of now. The body is parsed only after the
//! signature holds.

use time::OffsetDateTime;

/// The header a signed webhook call carries.
pub const SIGNATURE_HEADER: &str = "hive-signature";
/// How far a signature's time may be from now.
pub const TOLERANCE_SECONDS: i64 = 300;
/// Longest header read (a few signatures at most).
const MAX_HEADER_BYTES: usize = 1024;

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
    let header = header.ok_or(SignatureRefusal::Missing)?;
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureRefusal::Malformed);
    }
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            return Err(SignatureRefusal::Malformed);
        };
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureRefusal::Malformed)?,
                );
            }
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureRefusal::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureRefusal::Malformed);
    }
    if (now.unix_timestamp() - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(SignatureRefusal::Stale);
    }
    let expected = sign(secret, timestamp, body);
    candidates
        .into_iter()
        .find(|candidate| hive_crypto::constant_time_eq(candidate.as_bytes(), expected.as_bytes()))
        .map(|signature| Verified {
            timestamp,
            signature: signature.to_owned(),
        })
        .ok_or(SignatureRefusal::Mismatch)
}

/// The `v1` of `body` sent at `timestamp` (lower-case hex).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    hive_crypto::hmac_sha256_hex(secret, &signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"hello":"world"}"#;
    const T: i64 = 1_700_000_000;
    /// Computed with Python's `hmac` module, independently of this code.
    const KNOWN: &str = "86748dbec9cc87a9219f8a96632da703271bf5e85aa0afa2b310c37ba059d514";

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn the_signature_matches_a_known_answer() {
        assert_eq!(sign(SECRET, T, BODY), KNOWN);
        let header = format!("t={T},v1={KNOWN}");
        let verified = verify(Some(&header), BODY, SECRET, at(T + 10)).unwrap();
        assert_eq!(verified.signature, KNOWN);
    }

    #[test]
    fn any_v1_may_match_and_other_schemes_are_ignored() {
        let header = format!("t={T},v0=abc,v1={},v1={KNOWN}", "0".repeat(64));
        assert!(verify(Some(&header), BODY, SECRET, at(T)).is_ok());
    }

    #[test]
    fn a_wrong_stale_missing_or_malformed_signature_is_refused() {
        let wrong = format!("t={T},v1={}", "0".repeat(64));
        assert_eq!(
            verify(Some(&wrong), BODY, SECRET, at(T)),
            Err(SignatureRefusal::Mismatch)
        );
        let good = format!("t={T},v1={KNOWN}");
        assert_eq!(
            verify(Some(&good), b"{\"hello\":\"there\"}", SECRET, at(T)),
            Err(SignatureRefusal::Mismatch)
        );
        assert_eq!(
            verify(Some(&good), BODY, b"another", at(T)),
            Err(SignatureRefusal::Mismatch)
        );
        assert_eq!(
            verify(Some(&good), BODY, SECRET, at(T + TOLERANCE_SECONDS + 1)),
            Err(SignatureRefusal::Stale)
        );
        assert_eq!(
            verify(Some(&good), BODY, SECRET, at(T - TOLERANCE_SECONDS - 1)),
            Err(SignatureRefusal::Stale)
        );
        assert_eq!(
            verify(None, BODY, SECRET, at(T)),
            Err(SignatureRefusal::Missing)
        );
        for bad in [
            "",
            "t=abc,v1=00",
            &format!("v1={KNOWN}"),
            &format!("t={T}"),
            "garbage",
        ] {
            assert_eq!(
                verify(Some(bad), BODY, SECRET, at(T)),
                Err(SignatureRefusal::Malformed),
                "{bad:?}"
            );
        }
    }
}
