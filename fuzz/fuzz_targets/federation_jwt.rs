//! The federation JWT a peer presents (`hive_crypto::federation::Verifier::verify`), under both
//! pinned modes, and the key texts an operator configures (`SharedSecret::new`,
//! `Ed25519Seed::parse`, `parse_public_key`).
//!
//! The first byte picks how the rest becomes a token: as it is (header rules, signature), or
//! as `header NUL claims` signed here with the verifier's own HS256 secret or Ed25519 key, so
//! that the claims checks behind the signature are reached. Properties: an accepted token's
//! claims satisfy what `Expected` asked (issuer owns the key, audience, lifetime, times).

#![no_main]

use hive_crypto::federation::{
    Ed25519Seed, Expected, MAX_LEEWAY_SECONDS, SharedSecret, Verifier, parse_public_key,
};
use hive_fuzz::{FUZZ_SHARED_SECRET, ed25519_public_key, eddsa_token, fields, hs256_token};
use libfuzzer_sys::fuzz_target;

const PEER: &str = "https://peer.example";
const AUDIENCE: &str = "https://hive.example";
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = SharedSecret::new(text);
        let _ = Ed25519Seed::parse(text);
        let _ = parse_public_key(text);
    }
    let Ok(secret) = SharedSecret::new(FUZZ_SHARED_SECRET) else {
        panic!("the fuzz secret is refused as weak");
    };
    let shared = Verifier::shared(&secret, &[PEER.to_owned()]);
    let Ok(ed25519) = Verifier::ed25519(&[(PEER.to_owned(), ed25519_public_key())]) else {
        panic!("one peer key is refused");
    };

    let parts = fields(rest, 2);
    let (header, claims) = (parts[0], parts.get(1).copied().unwrap_or_default());
    let (token, verifier) = match mode % 3 {
        0 => (String::from_utf8_lossy(rest).into_owned(), &shared),
        1 => (
            hs256_token(header, claims, FUZZ_SHARED_SECRET.as_bytes()),
            &shared,
        ),
        _ => (eddsa_token(header, claims), &ed25519),
    };
    let expected = Expected {
        audience: AUDIENCE,
        require_audience: mode & 0x10 != 0,
        require_jti: mode & 0x20 != 0,
        now: NOW,
        leeway: i64::from(mode >> 6) * 100,
        max_lifetime: 3600,
    };
    // A token signed for one mode is never accepted by the other.
    match mode % 3 {
        1 => assert!(ed25519.verify(&token, &expected).is_err()),
        2 => assert!(shared.verify(&token, &expected).is_err()),
        _ => {}
    }
    for verifier in [verifier, &shared, &ed25519] {
        let Ok(claims) = verifier.verify(&token, &expected) else {
            continue;
        };
        let leeway = expected.leeway.min(MAX_LEEWAY_SECONDS);
        assert_eq!(claims.issuer, PEER);
        assert!((1..=255).contains(&claims.subject.chars().count()));
        assert!(claims.audience.as_deref().is_none_or(|aud| aud == AUDIENCE));
        assert!(!expected.require_audience || claims.audience.is_some());
        assert!(!expected.require_jti || claims.jti.is_some());
        assert!(claims.expires_at > claims.issued_at);
        assert!(claims.expires_at - claims.issued_at <= expected.max_lifetime);
        assert!(NOW < claims.expires_at.saturating_add(leeway));
        assert!(claims.issued_at <= NOW + leeway);
    }
});
