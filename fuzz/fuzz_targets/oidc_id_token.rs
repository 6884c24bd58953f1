//! OpenID Connect ID tokens (`hive_crypto::jwt`): a provider's key set (`KeySet::parse`), the
//! header check (`read_header`) and `verify_id_token`. The first byte picks what the rest is:
//! a JWKS document, a token as it is, or `header NUL claims` signed here with the P-256 key the
//! key set holds (so the claims checks behind the signature are reached).
//!
//! Properties: an accepted token names the expected issuer, audience, nonce and a subject of
//! 1..=255 bytes, and is not expired, issued or valid only in the future beyond the leeway;
//! `read_header` accepts only RS256 and ES256.

#![no_main]

use hive_crypto::jwt::test_support::TestKey;
use hive_crypto::jwt::{self, Expected, KeySet, MAX_LEEWAY_SECONDS, SigningAlg};
use hive_fuzz::{base64url, fields, signing_input};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;

const ISSUER: &str = "https://idp.example";
const CLIENT: &str = "hive-client";
const NONCE: &str = "n-0S6_WzA2Mj";
const NOW: i64 = 1_700_000_000;

/// One P-256 key per fuzzing process, and its key set.
fn key() -> &'static (TestKey, KeySet) {
    static KEY: OnceLock<(TestKey, KeySet)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = TestKey::ec("fuzz-ec");
        let document = jwt::test_support::key_set(&[&key]).to_string();
        let keys = KeySet::parse(document.as_bytes(), &SigningAlg::ALL).unwrap_or_default();
        (key, keys)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (key, keys) = key();
    let token = match mode % 3 {
        0 => {
            if let Ok(parsed) = KeySet::parse(rest, &SigningAlg::ALL) {
                assert!(parsed.len() <= jwt::MAX_KEYS);
            }
            return;
        }
        1 => String::from_utf8_lossy(rest).into_owned(),
        _ => {
            let parts = fields(rest, 2);
            let input = signing_input(parts[0], parts.get(1).copied().unwrap_or_default());
            let signature = key.signature(input.as_bytes());
            format!("{input}.{}", base64url(&signature))
        }
    };
    if let Ok(header) = jwt::read_header(&token) {
        assert!(SigningAlg::ALL.contains(&header.alg));
    }
    let expected = Expected {
        issuer: ISSUER,
        client_id: CLIENT,
        nonce: NONCE,
        now: NOW,
        leeway: i64::from(mode >> 2),
    };
    let Ok(claims) = jwt::verify_id_token(&token, keys, &expected) else {
        return;
    };
    let leeway = expected.leeway.min(MAX_LEEWAY_SECONDS);
    let time = |name: &str| claims.all.get(name).and_then(Value::as_i64);
    assert_eq!(claims.all.get("iss").and_then(Value::as_str), Some(ISSUER));
    assert_eq!(claims.all.get("nonce").and_then(Value::as_str), Some(NONCE));
    let audience = &claims.all["aud"];
    assert!(
        audience == CLIENT
            || audience
                .as_array()
                .is_some_and(|many| many.contains(&CLIENT.into()))
    );
    assert!((1..=255).contains(&claims.subject.len()));
    assert!(time("exp").is_some_and(|exp| NOW < exp.saturating_add(leeway)));
    assert!(time("iat").is_some_and(|iat| iat <= NOW + leeway));
    assert!(
        claims
            .all
            .get("nbf")
            .is_none_or(|nbf| nbf.as_i64().is_some_and(|nbf| nbf <= NOW + leeway))
    );
});
