//! Bearer tokens: API tokens (`hive_` + base62 of 32 random bytes, so that secret scanners
//! recognise a leaked one) and opaque 256-bit tokens for sessions and one-time links. Only the
//! SHA-256 of a token is ever stored.

use crate::{RandomError, random_bytes, random_token_hex, sha256_hex};

/// The prefix of every API token.
pub const API_TOKEN_PREFIX: &str = "hive_";

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of the base62 part for 32 bytes: ceil(256 / log2(62)) = 43, always padded to it.
const API_TOKEN_BODY_LEN: usize = 43;

/// A new API token: `hive_` and 43 base62 characters (256 random bits).
pub fn new_api_token() -> Result<String, RandomError> {
    let bytes = random_bytes::<32>()?;
    Ok(format!("{API_TOKEN_PREFIX}{}", base62_fixed(&bytes)))
}

/// Whether `candidate` has the shape of an API token (checked before any lookup).
pub fn looks_like_api_token(candidate: &str) -> bool {
    candidate
        .strip_prefix(API_TOKEN_PREFIX)
        .is_some_and(|body| {
            body.len() == API_TOKEN_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// A new opaque token (sessions, invitations, password resets): 64 hex characters.
pub fn new_opaque_token() -> Result<String, RandomError> {
    random_token_hex()
}

/// Whether `candidate` has the shape of an opaque token.
pub fn looks_like_opaque_token(candidate: &str) -> bool {
    candidate.len() == 64
        && candidate
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What is stored for a token: its SHA-256 as hex. High-entropy tokens need no slow hash.
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Big-endian bytes in base62, left-padded with `0` to the length 32 bytes need.
fn base62_fixed(bytes: &[u8; 32]) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(API_TOKEN_BODY_LEN);
    while number.iter().any(|&b| b != 0) {
        // One long division of the whole number by 62.
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = u8::try_from(value / 62).unwrap_or(0);
            remainder = value % 62;
        }
        digits.push(BASE62[remainder as usize]);
    }
    while digits.len() < API_TOKEN_BODY_LEN {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_matches_known_values() {
        let mut one = [0u8; 32];
        one[31] = 61;
        assert_eq!(base62_fixed(&one), format!("{}z", "0".repeat(42)));
        one[31] = 62;
        assert_eq!(base62_fixed(&one), format!("{}10", "0".repeat(41)));
        let max = base62_fixed(&[0xff; 32]);
        assert_eq!(max.len(), API_TOKEN_BODY_LEN);
        // 2^256 - 1 in base 62, computed independently (Python integer arithmetic).
        assert_eq!(max, "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1");
    }

    #[test]
    fn api_tokens_have_the_prefix_and_differ() {
        let a = new_api_token().unwrap();
        let b = new_api_token().unwrap();
        assert_ne!(a, b);
        assert!(looks_like_api_token(&a), "{a}");
        assert_eq!(a.len(), API_TOKEN_PREFIX.len() + API_TOKEN_BODY_LEN);
        assert!(!looks_like_api_token("hive_short"));
        assert!(!looks_like_api_token(&a.replace("hive_", "hivx_")));
        assert!(!looks_like_api_token(&format!("{a}!")));
    }

    #[test]
    fn opaque_tokens_and_hashes() {
        let token = new_opaque_token().unwrap();
        assert!(looks_like_opaque_token(&token));
        assert!(!looks_like_opaque_token(&token.to_uppercase()));
        assert!(!looks_like_opaque_token(&token[1..]));
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
