//! `Stripe-Signature` (and Hive's own `Hive-Signature` / `X-Hive-Signature`) headers:
//! `webhook_signature::verify` of an arbitrary header over an arbitrary body.
//!
//! Input: the header, a NUL byte, the body (no NUL: the whole input is the header and the body
//! is empty). Properties: an accepted header's time is within the tolerance of now and its
//! `v1` is the one `sign` computes; the header `header()` writes for the body verifies.

#![no_main]

use hive_crypto::webhook_signature::{self, TOLERANCE_SECONDS};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"whsec_fuzz-not-a-real-secret";
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let Ok(verified) = webhook_signature::verify(Some(header), body, SECRET, NOW) {
        assert!((verified.timestamp - NOW).abs() <= TOLERANCE_SECONDS);
        assert_eq!(
            verified.signature,
            webhook_signature::sign(SECRET, verified.timestamp, body)
        );
    }
    let genuine = webhook_signature::header(SECRET, NOW, body);
    assert!(webhook_signature::verify(Some(&genuine), body, SECRET, NOW).is_ok());
});
