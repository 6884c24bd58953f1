//! Password hashing: Argon2id with OWASP's parameters (m = 19 MiB, t = 2, p = 1). Imported
//! bcrypt hashes still verify and are reported as needing a rehash, so they are replaced with
//! Argon2id on the next successful login. Hashing is slow on purpose: callers run it off the
//! async executor, under a bound on concurrent hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP Password Storage Cheat Sheet: Argon2id, 19 MiB, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed")]
    Hashing,
    #[error(transparent)]
    Random(#[from] crate::RandomError),
}

/// How a stored hash relates to a candidate password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match,
    /// The password is right but the hash is old (bcrypt, or weaker Argon2 parameters):
    /// store a fresh [`hash_password`] of it.
    MatchNeedsRehash,
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params =
        Params::new(MEMORY_KIB, ITERATIONS, LANES, None).map_err(|_| PasswordError::Hashing)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) with a fresh 128-bit salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::encode_b64(&crate::random_bytes::<16>()?)
        .map_err(|_| PasswordError::Hashing)?;
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| PasswordError::Hashing)?;
    Ok(hash.to_string())
}

/// Checks `password` against a stored Argon2id or bcrypt hash. An unreadable hash is a
/// mismatch, never an error a caller could tell apart from a wrong password.
pub fn verify_password(password: &str, stored: &str) -> Verdict {
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Verdict::MatchNeedsRehash,
            _ => Verdict::Mismatch,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verdict::Mismatch;
    };
    let Ok(argon) = hasher() else {
        return Verdict::Mismatch;
    };
    if argon.verify_password(password.as_bytes(), &parsed).is_err() {
        return Verdict::Mismatch;
    }
    let current = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed).is_ok_and(|p| {
            p.m_cost() >= MEMORY_KIB && p.t_cost() >= ITERATIONS && p.p_cost() >= LANES
        });
    if current {
        Verdict::Match
    } else {
        Verdict::MatchNeedsRehash
    }
}

/// A hash to verify against when the account does not exist, so that an unknown user costs
/// the same time as a wrong password: today's parameters, a random salt and a random output
/// (no password hashes to it). Made without hashing, so that it costs neither the time nor the
/// 19 MiB of a hash where it is made (at start).
pub fn dummy_hash() -> Result<String, PasswordError> {
    let b64 = |bytes: &[u8]| {
        SaltString::encode_b64(bytes)
            .map(|encoded| encoded.as_str().to_owned())
            .map_err(|_| PasswordError::Hashing)
    };
    let salt = b64(&crate::random_bytes::<16>()?)?;
    let output = b64(&crate::random_bytes::<32>()?)?;
    Ok(format!(
        "$argon2id$v=19$m={MEMORY_KIB},t={ITERATIONS},p={LANES}${salt}${output}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_with_owasp_parameters_round_trips() {
        let hash = hash_password("correct horse battery staple").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            verify_password("correct horse battery staple", &hash),
            Verdict::Match
        );
        assert_eq!(
            verify_password("correct horse battery stapl", &hash),
            Verdict::Mismatch
        );
        assert_ne!(
            hash,
            hash_password("correct horse battery staple").unwrap(),
            "salted"
        );
    }

    #[test]
    fn passwords_are_neither_truncated_nor_normalised() {
        let long = "ä".repeat(128);
        let hash = hash_password(&long).unwrap();
        assert_eq!(verify_password(&long, &hash), Verdict::Match);
        assert_eq!(verify_password(&"ä".repeat(127), &hash), Verdict::Mismatch);
        // "é" precomposed and decomposed are different passwords.
        let hash = hash_password("caf\u{e9}-password").unwrap();
        assert_eq!(
            verify_password("cafe\u{301}-password", &hash),
            Verdict::Mismatch
        );
    }

    #[test]
    fn imported_bcrypt_verifies_and_asks_for_a_rehash() {
        let imported = bcrypt::hash("imported-password-123", 4).unwrap();
        assert_eq!(
            verify_password("imported-password-123", &imported),
            Verdict::MatchNeedsRehash
        );
        assert_eq!(
            verify_password("wrong-password-1234", &imported),
            Verdict::Mismatch
        );
    }

    #[test]
    fn weaker_argon2_parameters_ask_for_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let hash = weak
            .hash_password(b"an-old-password", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            verify_password("an-old-password", &hash),
            Verdict::MatchNeedsRehash
        );
    }

    #[test]
    fn garbage_hashes_are_mismatches() {
        for stored in ["", "plain", "$argon2id$broken", "$2b$04$short"] {
            assert_eq!(
                verify_password("anything-at-all", stored),
                Verdict::Mismatch
            );
        }
        let dummy = dummy_hash().unwrap();
        assert_eq!(
            verify_password("anything-at-all", &dummy),
            Verdict::Mismatch
        );
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_hash_costs() {
        // The same algorithm and parameters as a stored hash, so verifying against it does
        // the same work; and a fresh salt and output each time.
        let dummy = dummy_hash().unwrap();
        let real = hash_password("correct horse battery staple").unwrap();
        let (dummy, real) = (
            PasswordHash::new(&dummy).unwrap(),
            PasswordHash::new(&real).unwrap(),
        );
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        assert_ne!(dummy_hash().unwrap(), dummy_hash().unwrap());
    }
}
