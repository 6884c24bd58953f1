//! The signed peer manifest (`hive_crypto::manifest::verify_manifest`): as it is, or as
//! `header NUL payload` signed here with the operator key the verifier pins, so that the
//! payload rules behind the signature are reached.
//!
//! Properties: an accepted manifest obeys its content rules (issuer, expiry, peer count,
//! distinct origins and keys), and `sign_manifest` of it verifies back to the same manifest
//! (the module promises that signing never writes what verifying refuses).

#![no_main]

use hive_crypto::federation::Ed25519Seed;
use hive_crypto::manifest::{MAX_MANIFEST_PEERS, sign_manifest, verify_manifest};
use hive_fuzz::{FUZZ_ED25519_SEED, ed25519_public_key, eddsa_token, fields};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let operator_key = ed25519_public_key();
    let text = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let parts = fields(rest, 2);
        eddsa_token(parts[0], parts.get(1).copied().unwrap_or_default())
    };
    let Ok(manifest) = verify_manifest(&text, &operator_key, NOW) else {
        return;
    };
    assert!(!manifest.issuer.is_empty());
    assert!(
        manifest
            .expires_at
            .is_none_or(|exp| exp > manifest.issued_at && exp > NOW)
    );
    assert!(manifest.peers.len() <= MAX_MANIFEST_PEERS);
    for (index, peer) in manifest.peers.iter().enumerate() {
        for other in &manifest.peers[..index] {
            assert_ne!(other.origin, peer.origin);
            assert_ne!(other.public_key, peer.public_key);
        }
    }
    let Ok(seed) = Ed25519Seed::parse(&hex(&FUZZ_ED25519_SEED)) else {
        panic!("the fuzz seed is refused");
    };
    let signed = sign_manifest(&seed, &manifest)
        .unwrap_or_else(|error| panic!("an accepted manifest does not sign: {error}"));
    let again = verify_manifest(&signed, &operator_key, NOW)
        .unwrap_or_else(|error| panic!("a signed manifest does not verify: {error}"));
    assert_eq!(again, manifest);
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
