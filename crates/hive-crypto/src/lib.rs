//! Hive's cryptography: randomness from the OS, SHA-256, HMAC-SHA256, constant-time
//! comparison, password hashing (Argon2id; bcrypt imports), tokens, and the vault's keys and
//! AEAD (AES-256-GCM keyring, HKDF purpose keys), TOTP and recovery codes, the verifier of
//! OpenID Connect ID tokens, the federation JWT instances present to their peers, the
//! operator-signed manifest of peers' keys, and webhook signatures in Stripe's scheme.

pub mod federation;
mod jose;
pub mod jwt;
pub mod manifest;
pub mod password;
pub mod pkce;
pub mod token;
pub mod totp;
pub mod vault;
pub mod webhook_signature;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The operating system's random generator failed (it essentially never does; when it does,
/// nothing that needs a secret may go on).
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random generator failed: {0}")]
pub struct RandomError(String);

/// `N` bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(bytes)
}

/// `bytes` random bytes as `2 * bytes` lowercase hex characters (e.g. 14 bytes for a 112-bit
/// recovery code). Tokens use [`random_token_hex`].
pub fn random_hex(bytes: usize) -> Result<String, RandomError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| RandomError(e.to_string()))?;
    Ok(hex::encode(buffer))
}

/// 32 random bytes (256 bits) as 64 lowercase hex characters: every token and generated secret.
pub fn random_token_hex() -> Result<String, RandomError> {
    Ok(hex::encode(random_bytes::<32>()?))
}

/// Equality that takes the same time wherever the inputs differ (lengths are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

type HmacSha256 = hmac::Hmac<Sha256>;

/// HMAC-SHA256 of `data` under `key`, as lowercase hex.
pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    use hmac::Mac;
    // HMAC takes keys of any length; this constructor cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return String::new();
    };
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature_hex` is the HMAC-SHA256 of `data` under `key`, compared in constant time.
pub fn verify_hmac_sha256_hex(key: &[u8], data: &[u8], signature_hex: &str) -> bool {
    use hmac::Mac;
    let Ok(signature) = hex::decode(signature_hex) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    mac.update(data);
    mac.verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_hex_and_distinct() {
        let a = random_token_hex().unwrap();
        let b = random_token_hex().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        assert_ne!(a, b);
    }

    #[test]
    fn random_bytes_fill_the_array_and_differ() {
        let a = random_bytes::<32>().unwrap();
        let b = random_bytes::<32>().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32], "filled, not left zero");
        assert_eq!(random_bytes::<0>().unwrap(), [0u8; 0]);
    }

    #[test]
    fn random_hex_has_the_asked_length() {
        for bytes in [0, 1, 14, 32, 64] {
            let text = random_hex(bytes).unwrap();
            assert_eq!(text.len(), 2 * bytes);
            assert!(text.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        }
        assert_ne!(random_hex(16).unwrap(), random_hex(16).unwrap());
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"samf"));
        assert!(!constant_time_eq(b"same", b"same-but-longer"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn hmac_sha256_rfc4231_vectors() {
        // Test case 1: key 0x0b × 20, data "Hi There".
        let expected = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
        assert_eq!(hmac_sha256_hex(&[0x0b; 20], b"Hi There"), expected);
        assert!(verify_hmac_sha256_hex(&[0x0b; 20], b"Hi There", expected));
        // Test case 2: key "Jefe", data "what do ya want for nothing?".
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            expected
        );
        assert!(!verify_hmac_sha256_hex(
            b"Jefe",
            b"what do ya want for nothing!",
            expected
        ));
        assert!(!verify_hmac_sha256_hex(b"Jefe", b"x", "not hex"));
    }

    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2 example: SHA-256("abc").
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
