//! What several fuzz targets share: splitting an input into fields, and signing the JWS they
//! build, so that a target reaches the checks that come after a signature (claims, payload) and
//! not only the header rules. Nothing here parses what the targets test.

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use std::sync::OnceLock;

/// A fixed, made-up Ed25519 seed for signed fuzz inputs (never a key of any deployment).
pub const FUZZ_ED25519_SEED: [u8; 32] = [7; 32];
/// A made-up HS256 mesh secret that passes the strength rules (never a real one).
pub const FUZZ_SHARED_SECRET: &str = "Zx8qL2vN7pR4tW9yB3cF6hJ1kM5nQ0sU2xA4dG7iK9o";

/// `data` cut at each NUL byte, at most `n` fields (the last keeps any further NULs).
pub fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |&b| b == 0).collect()
}

pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `base64url(header).base64url(payload)`: a JWS signing input of raw bytes.
pub fn signing_input(header: &[u8], payload: &[u8]) -> String {
    format!("{}.{}", base64url(header), base64url(payload))
}

/// A compact JWS of `header` and `payload` signed with HMAC-SHA256 under `secret`.
pub fn hs256_token(header: &[u8], payload: &[u8], secret: &[u8]) -> String {
    let input = signing_input(header, payload);
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return input;
    };
    mac.update(input.as_bytes());
    format!("{input}.{}", base64url(&mac.finalize().into_bytes()))
}

/// The key pair of [`FUZZ_ED25519_SEED`] (made once), or `None` if the library refuses it.
pub fn ed25519_pair() -> Option<&'static Ed25519KeyPair> {
    static PAIR: OnceLock<Option<Ed25519KeyPair>> = OnceLock::new();
    PAIR.get_or_init(|| Ed25519KeyPair::from_seed_unchecked(&FUZZ_ED25519_SEED).ok())
        .as_ref()
}

/// The public key of [`FUZZ_ED25519_SEED`].
pub fn ed25519_public_key() -> [u8; 32] {
    use aws_lc_rs::signature::KeyPair;
    ed25519_pair()
        .and_then(|pair| pair.public_key().as_ref().try_into().ok())
        .unwrap_or_default()
}

/// A compact JWS of `header` and `payload` signed with [`FUZZ_ED25519_SEED`].
pub fn eddsa_token(header: &[u8], payload: &[u8]) -> String {
    let input = signing_input(header, payload);
    match ed25519_pair() {
        Some(pair) => format!(
            "{input}.{}",
            base64url(pair.sign(input.as_bytes()).as_ref())
        ),
        None => input,
    }
}
