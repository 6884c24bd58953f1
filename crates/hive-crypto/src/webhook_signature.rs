//! Webhook signatures in Stripe's scheme: a header holds `t=<unix seconds>,v1=<hex
//! HMAC-SHA256>[,v1=…]`; the HMAC is over `"{t}.{raw body}"`, keyed with the whole secret
//! string (a `whsec_…` secret included); any `v1` may match (so a secret can be rotated), other
//! schemes are ignored, and `t` must be within [`TOLERANCE_SECONDS`] of now. Hive's own
//! webhooks (`Hive-Signature`), its push notifications (`X-Hive-Signature`) and Stripe's calls
//! (`Stripe-Signature`) all use it; `tests/vectors/stripe_signatures.json` holds vectors made
//! with Stripe's own library.
//!
//! Where a header is odd, this reads it no more leniently than Stripe's library does, and in
//! places more strictly (Stripe never sends such headers):
//! - Items are not trimmed, as in Stripe's library: ` v1=…` is not a `v1` (it is ignored as
//!   another scheme) and ` t=…` is not a `t`. `t` must be an integer with nothing around it
//!   (Python's `int()` would skip spaces).
//! - Two `t` items are refused: Stripe's library takes the first, but a header with two times is
//!   ambiguous, and each reader of it could take another.
//! - An item without `=` is refused (Stripe's library skips it), and so is a header over
//!   1024 bytes.
//! - A time more than five minutes ahead is refused as well as one more than five minutes old
//!   (Stripe's library refuses only old ones).

/// How far a signature's time may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 300;
/// Longest header read (a few signatures at most).
const MAX_HEADER_BYTES: usize = 1024;
/// The one signature scheme read; others are ignored.
const SCHEME: &str = "v1";

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature header is not t=…,v1=…")]
    Malformed,
    #[error("the signature's time is more than five minutes from now")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

impl SignatureError {
    /// A stable name for records (an audit record's reason).
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Missing => "signature_missing",
            Self::Malformed => "signature_malformed",
            Self::Stale => "signature_stale",
            Self::Mismatch => "signature_mismatch",
        }
    }
}

/// A signature that held: its time and the `v1` that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub timestamp: i64,
    pub signature: String,
}

/// The `v1` of `body` sent at `timestamp`: lower-case hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    crate::hmac_sha256_hex(secret, &signed)
}

/// The header for `body` sent at `timestamp`: `t=<timestamp>,v1=<hex>`.
pub fn header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},{SCHEME}={}", sign(secret, timestamp, body))
}

/// Checks `header` (the header's value, `None` when the call had none) against the raw `body`
/// with `secret`, at `now_unix` (unix seconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now_unix: i64,
) -> Result<Verified, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let (key, value) = item.split_once('=').ok_or(SignatureError::Malformed)?;
        match key {
            "t" if timestamp.is_some() => return Err(SignatureError::Malformed),
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                );
            }
            SCHEME => candidates.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now_unix.abs_diff(timestamp) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected = sign(secret, timestamp, body);
    candidates
        .into_iter()
        .find(|candidate| crate::constant_time_eq(candidate.as_bytes(), expected.as_bytes()))
        .map(|signature| Verified {
            timestamp,
            signature: signature.to_owned(),
        })
        .ok_or(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"hello":"world"}"#;
    const T: i64 = 1_700_000_000;
    /// Computed with Python's `hmac` module, independently of this code.
    const KNOWN: &str = "86748dbec9cc87a9219f8a96632da703271bf5e85aa0afa2b310c37ba059d514";

    #[test]
    fn the_signature_matches_a_known_answer() {
        assert_eq!(sign(SECRET, T, BODY), KNOWN);
        assert_eq!(header(SECRET, T, BODY), format!("t={T},v1={KNOWN}"));
        let verified = verify(Some(&header(SECRET, T, BODY)), BODY, SECRET, T + 10).unwrap();
        assert_eq!(
            verified,
            Verified {
                timestamp: T,
                signature: KNOWN.to_owned()
            }
        );
    }

    #[test]
    fn any_v1_may_match_and_other_schemes_are_ignored() {
        let header = format!("t={T},v0=abc,v1={},v1={KNOWN}", "0".repeat(64));
        assert!(verify(Some(&header), BODY, SECRET, T).is_ok());
    }

    #[test]
    fn a_wrong_stale_missing_or_malformed_signature_is_refused() {
        let wrong = format!("t={T},v1={}", "0".repeat(64));
        assert_eq!(
            verify(Some(&wrong), BODY, SECRET, T),
            Err(SignatureError::Mismatch)
        );
        let good = format!("t={T},v1={KNOWN}");
        assert_eq!(
            verify(Some(&good), b"{\"hello\":\"there\"}", SECRET, T),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&good), BODY, b"another", T),
            Err(SignatureError::Mismatch)
        );
        assert!(verify(Some(&good), BODY, SECRET, T + TOLERANCE_SECONDS).is_ok());
        assert!(verify(Some(&good), BODY, SECRET, T - TOLERANCE_SECONDS).is_ok());
        assert_eq!(
            verify(Some(&good), BODY, SECRET, T + TOLERANCE_SECONDS + 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&good), BODY, SECRET, T - TOLERANCE_SECONDS - 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(verify(None, BODY, SECRET, T), Err(SignatureError::Missing));
        for bad in [
            "",
            "t=abc,v1=00",
            &format!("v1={KNOWN}"),
            &format!("t={T}"),
            "garbage",
            &format!("t={T},v1={KNOWN},junk"),
            &format!("t={T},t={T},v1={KNOWN}"),
            &format!("t={T}, v1={KNOWN}"),
            &format!(" t={T},v1={KNOWN}"),
            &format!("t= {T},v1={KNOWN}"),
            &format!("t={T},v1={KNOWN},{}", "v0=0,".repeat(200)),
        ] {
            assert_eq!(
                verify(Some(bad), BODY, SECRET, T),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_time_at_the_ends_of_the_range_is_stale_without_overflowing() {
        for t in [i64::MIN, i64::MAX] {
            let header = header(SECRET, t, BODY);
            assert_eq!(
                verify(Some(&header), BODY, SECRET, T),
                Err(SignatureError::Stale)
            );
        }
    }

    #[test]
    fn reasons_are_stable() {
        assert_eq!(SignatureError::Missing.reason(), "signature_missing");
        assert_eq!(SignatureError::Malformed.reason(), "signature_malformed");
        assert_eq!(SignatureError::Stale.reason(), "signature_stale");
        assert_eq!(SignatureError::Mismatch.reason(), "signature_mismatch");
    }
}
