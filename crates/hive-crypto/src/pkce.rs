//! Proof Key for Code Exchange (RFC 7636), S256 only: the verifier stays with Hive, the
//! provider sees its SHA-256 until the code is redeemed.

use crate::RandomError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A fresh verifier: 32 random bytes as 43 base64url characters (256 bits).
pub fn new_verifier() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(crate::random_bytes::<32>()?))
}

/// The `code_challenge` of `verifier` for `code_challenge_method=S256`.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_43_unreserved_characters_and_differ() {
        let (a, b) = (new_verifier().unwrap(), new_verifier().unwrap());
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, b);
    }
}
