//! The second factor's cryptography: TOTP (RFC 6238) over HOTP (RFC 4226), the `otpauth://`
//! enrollment URI, and recovery codes. No storage and no HTTP here. The caller:
//!
//! - keeps the seed sealed in the vault ([`TotpSecret::expose_bytes`] to seal,
//!   [`TotpSecret::from_bytes`] after opening);
//! - consumes the step that [`TotpSecret::verify`] returns atomically, so that a step once used
//!   is never accepted again (replay);
//! - counts wrong codes (3 lock TOTP until [`step_end`] of the current step);
//! - stores only [`recovery_code_hash`] of each recovery code, and deletes it when used.
//!
//! HOTP is written here over the `hmac` crate rather than taken from `totp-rs`: it is a few
//! lines, and owning them keeps the parts that matter under our control: the window is exactly
//! {previous, current} step, both candidates are always computed and compared in constant time
//! with no early return, input that is not exactly six ASCII digits is refused before any
//! comparison, the expected codes never pass through a `String`, and the seed lives only in a
//! zeroizing buffer with a redacted `Debug`.

use crate::{RandomError, random_bytes, sha256_hex};
use data_encoding::BASE32_NOPAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use std::fmt;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

/// Length of a generated seed: 160 bits (RFC 4226 recommends it; the security rules require it).
pub const SECRET_LEN: usize = 20;
/// Shortest seed accepted on import: 160 bits too.
pub const MIN_SECRET_LEN: usize = 20;
/// Longest seed accepted: the 64 bytes of the RFC 6238 SHA-512 vectors.
pub const MAX_SECRET_LEN: usize = 64;
/// The TOTP time step (X in RFC 6238), counted from the Unix epoch (T0 = 0).
pub const STEP_SECONDS: u64 = 30;
/// Digits of an authenticator code.
pub const DIGITS: usize = 6;

/// Recovery codes issued at a time.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Random bytes in one recovery code: 256 bits, like every token of Hive (DESIGN.md); the
/// security rules' floor for recovery codes is 112.
pub const RECOVERY_CODE_BYTES: usize = 32;
/// Base32 characters in one recovery code (5 bits a character, the last one partly filled).
const RECOVERY_CODE_CHARS: usize = (RECOVERY_CODE_BYTES * 8).div_ceil(5);
/// Characters between two dashes.
const RECOVERY_GROUP: usize = 4;
/// Length of a formatted recovery code, dashes included: `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`.
pub const RECOVERY_CODE_LEN: usize = RECOVERY_CODE_CHARS + RECOVERY_CODE_CHARS / RECOVERY_GROUP - 1;

// The rules, checked when compiling: 160-bit seeds; recovery codes of at least 112 bits that
// fill whole base32 characters.
const _: () = assert!(SECRET_LEN * 8 == 160 && MIN_SECRET_LEN * 8 >= 160);
const _: () =
    assert!(RECOVERY_CODE_BYTES * 8 >= 256 && RECOVERY_CODE_CHARS.is_multiple_of(RECOVERY_GROUP));

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// Not RFC 4648 base32 (any case; spaces and `=` padding are ignored).
    #[error("the TOTP secret is not valid base32")]
    BadBase32,
    #[error("a TOTP secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes, not {0}")]
    BadLength(usize),
    #[error(
        "the issuer and the account name must be non-empty, without colons or control characters"
    )]
    BadLabel,
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// The HMAC hash. Authenticator apps use SHA-1; SHA-256 and SHA-512 exist for the RFC vectors
/// and for clients that support them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name in an `otpauth://` URI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// Code length (RFC 4226 allows 6 to 8 here; authenticators use 6, the RFC 6238 tables 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digits {
    Six,
    Seven,
    Eight,
}

impl Digits {
    pub const fn count(self) -> usize {
        match self {
            Self::Six => 6,
            Self::Seven => 7,
            Self::Eight => 8,
        }
    }

    const fn modulus(self) -> u32 {
        match self {
            Self::Six => 1_000_000,
            Self::Seven => 10_000_000,
            Self::Eight => 100_000_000,
        }
    }
}

/// The TOTP step that contains `unix_seconds`.
pub const fn step_at(unix_seconds: u64) -> u64 {
    unix_seconds / STEP_SECONDS
}

/// The first second after `step`: when a lock taken during that step ends.
pub const fn step_end(step: u64) -> u64 {
    step.saturating_add(1).saturating_mul(STEP_SECONDS)
}

/// A TOTP seed. Zeroized on drop; `Debug` never shows it.
pub struct TotpSecret {
    bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A new 160-bit seed from the OS CSPRNG.
    pub fn generate() -> Result<Self, RandomError> {
        let bytes = Zeroizing::new(random_bytes::<SECRET_LEN>()?);
        Ok(Self {
            bytes: Zeroizing::new(bytes.to_vec()),
        })
    }

    /// A seed from its raw bytes (as opened from the vault), [`MIN_SECRET_LEN`] to
    /// [`MAX_SECRET_LEN`] long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TotpError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(TotpError::BadLength(bytes.len()));
        }
        Ok(Self {
            bytes: Zeroizing::new(bytes.to_vec()),
        })
    }

    /// A seed from base32 (RFC 4648), as shown by other systems: any case, spaces and `=`
    /// padding ignored; other characters, impossible lengths and non-zero trailing bits refused.
    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        // Sized up front so that no growth leaves a copy of the secret behind.
        let mut normalised = Zeroizing::new(String::with_capacity(text.len()));
        for c in text.chars().filter(|c| !c.is_ascii_whitespace()) {
            normalised.push(c.to_ascii_uppercase());
        }
        let unpadded = normalised.trim_end_matches('=').as_bytes();
        let len = BASE32_NOPAD
            .decode_len(unpadded.len())
            .map_err(|_| TotpError::BadBase32)?;
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        let written = BASE32_NOPAD
            .decode_mut(unpadded, bytes.as_mut_slice())
            .map_err(|_| TotpError::BadBase32)?;
        Self::from_bytes(bytes.get(..written).unwrap_or_default())
    }

    /// The seed in base32 without padding, as an authenticator takes it.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE32_NOPAD.encode(self.bytes.as_slice()))
    }

    /// The raw seed, to seal in the vault. Never log or return it.
    pub fn expose_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// HOTP (RFC 4226) of `counter`. Empty only if HMAC could not be keyed, which cannot
    /// happen (HMAC takes keys of any length); an empty code never verifies.
    pub fn hotp(&self, algorithm: Algorithm, digits: Digits, counter: u64) -> String {
        match self.hotp_value(algorithm, counter) {
            Some(value) => format!(
                "{:0width$}",
                value % digits.modulus(),
                width = digits.count()
            ),
            None => String::new(),
        }
    }

    /// TOTP (RFC 6238, T0 = 0, 30 s steps) at `unix_seconds`, with any algorithm and length.
    pub fn totp(&self, algorithm: Algorithm, digits: Digits, unix_seconds: u64) -> String {
        self.hotp(algorithm, digits, step_at(unix_seconds))
    }

    /// The authenticator code (SHA-1, 6 digits, 30 s) at `unix_seconds`.
    pub fn code_at(&self, unix_seconds: u64) -> String {
        self.totp(Algorithm::Sha1, Digits::Six, unix_seconds)
    }

    /// Whether `code` is the authenticator code of the current or the previous step at
    /// `now_unix`; if so, the step it matched, which the caller must consume atomically and
    /// never accept again. `code` must be exactly six ASCII digits (no spaces). Both steps are
    /// computed and compared in constant time; if both match, the current step is returned.
    pub fn verify(&self, code: &str, now_unix: u64) -> Option<u64> {
        let given: [u8; DIGITS] = code.as_bytes().try_into().ok()?;
        if !given.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let current = step_at(now_unix);
        let mut matched = Choice::from(0);
        let mut step = 0u64;
        // Previous first, so that the current step, assigned last, wins a tie.
        for candidate in [current.checked_sub(1), Some(current)]
            .into_iter()
            .flatten()
        {
            let Some(expected) = self.code_bytes(candidate) else {
                continue;
            };
            let hit = expected.as_slice().ct_eq(given.as_slice());
            step.conditional_assign(&candidate, hit);
            matched |= hit;
        }
        bool::from(matched).then_some(step)
    }

    /// The `otpauth://` URI for enrollment (Google Authenticator key URI format): issuer and
    /// account percent-encoded (RFC 3986, unreserved characters kept). Contains the secret.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Result<Zeroizing<String>, TotpError> {
        for part in [issuer, account] {
            if part.trim().is_empty() || part.contains(':') || part.chars().any(char::is_control) {
                return Err(TotpError::BadLabel);
            }
        }
        let issuer = utf8_percent_encode(issuer, URI_COMPONENT).to_string();
        let account = utf8_percent_encode(account, URI_COMPONENT).to_string();
        let secret = self.to_base32();
        let parts = [
            "otpauth://totp/",
            issuer.as_str(),
            ":",
            account.as_str(),
            "?secret=",
            secret.as_str(),
            "&issuer=",
            issuer.as_str(),
            "&algorithm=SHA1&digits=6&period=30",
        ];
        // Sized up front so that no growth leaves a copy of the secret behind.
        let mut uri = Zeroizing::new(String::with_capacity(parts.iter().map(|p| p.len()).sum()));
        for part in parts {
            uri.push_str(part);
        }
        Ok(uri)
    }

    fn hotp_value(&self, algorithm: Algorithm, counter: u64) -> Option<u32> {
        let digest = hmac_digest(algorithm, self.bytes.as_slice(), &counter.to_be_bytes())?;
        dynamic_truncation(digest.as_slice())
    }

    /// The 6-digit SHA-1 code of `step` as ASCII digits, without passing through a `String`.
    fn code_bytes(&self, step: u64) -> Option<Zeroizing<[u8; DIGITS]>> {
        let mut rest = self.hotp_value(Algorithm::Sha1, step)? % Digits::Six.modulus();
        let mut code = Zeroizing::new([0u8; DIGITS]);
        for slot in code.iter_mut().rev() {
            // A remainder of 10 is below 10: the conversion cannot fail.
            *slot = b'0' + u8::try_from(rest % 10).unwrap_or(0);
            rest /= 10;
        }
        Some(code)
    }
}

/// Everything but RFC 3986's unreserved characters is percent-encoded (space as `%20`).
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn hmac_digest(algorithm: Algorithm, key: &[u8], message: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    fn run<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
        mac.update(message);
        Some(Zeroizing::new(mac.finalize().into_bytes().to_vec()))
    }
    match algorithm {
        Algorithm::Sha1 => run::<Hmac<Sha1>>(key, message),
        Algorithm::Sha256 => run::<Hmac<Sha256>>(key, message),
        Algorithm::Sha512 => run::<Hmac<Sha512>>(key, message),
    }
}

/// RFC 4226 section 5.3: 31 bits at the offset named by the low nibble of the last byte.
fn dynamic_truncation(digest: &[u8]) -> Option<u32> {
    let offset = usize::from(digest.last()? & 0x0f);
    let chunk: [u8; 4] = digest.get(offset..offset + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(chunk) & 0x7fff_ffff)
}

/// A recovery code, shown once: 256 random bits as 52 base32 characters in 13 groups of four,
/// `XXXX-XXXX-…-XXXX`. Zeroized on drop; `Debug` never shows it.
pub struct RecoveryCode {
    text: Zeroizing<String>,
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

impl RecoveryCode {
    fn generate() -> Result<Self, RandomError> {
        let bytes = Zeroizing::new(random_bytes::<RECOVERY_CODE_BYTES>()?);
        let plain = Zeroizing::new(BASE32_NOPAD.encode(bytes.as_slice()));
        let mut text = Zeroizing::new(String::with_capacity(RECOVERY_CODE_LEN));
        for (index, c) in plain.chars().enumerate() {
            if index > 0 && index % RECOVERY_GROUP == 0 {
                text.push('-');
            }
            text.push(c);
        }
        Ok(Self { text })
    }

    /// The code, to show the user once.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// What is stored: [`recovery_code_hash`] of this code.
    pub fn hash(&self) -> String {
        recovery_code_hash(self.as_str())
    }
}

/// [`RECOVERY_CODE_COUNT`] new recovery codes from the OS CSPRNG.
pub fn new_recovery_codes() -> Result<Vec<RecoveryCode>, RandomError> {
    (0..RECOVERY_CODE_COUNT)
        .map(|_| RecoveryCode::generate())
        .collect()
}

/// The stored form of a recovery code: SHA-256 hex of the code with case, dashes and
/// whitespace ignored (a 256-bit random code needs no slow hash).
pub fn recovery_code_hash(code: &str) -> String {
    sha256_hex(normalise_recovery_code(code).as_bytes())
}

/// Whether `code` has the shape of a recovery code (checked before any lookup).
pub fn looks_like_recovery_code(code: &str) -> bool {
    let normalised = normalise_recovery_code(code);
    normalised.len() == RECOVERY_CODE_CHARS
        && normalised
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

fn normalise_recovery_code(code: &str) -> Zeroizing<String> {
    let mut normalised = Zeroizing::new(String::with_capacity(code.len()));
    for c in code.chars().filter(|&c| c != '-' && !c.is_whitespace()) {
        normalised.push(c.to_ascii_uppercase());
    }
    normalised
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    /// The RFC 4226 / RFC 6238 SHA-1 seed, "12345678901234567890".
    const RFC_SEED: &[u8] = b"12345678901234567890";
    const RFC_SEED_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../tests/vectors/totp.json")).unwrap()
    }

    fn text<'a>(value: &'a serde_json::Value, field: &str) -> &'a str {
        value[field].as_str().unwrap()
    }

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(RFC_SEED).unwrap()
    }

    #[test]
    fn rfc4226_appendix_d() {
        let all = vectors();
        let hotp = &all["hotp"];
        assert_eq!(text(hotp, "algorithm"), "SHA1");
        assert_eq!(hotp["digits"], 6);
        let secret_text = text(hotp, "secret_ascii");
        assert_eq!(secret_text.as_bytes(), RFC_SEED);
        let secret = TotpSecret::from_bytes(secret_text.as_bytes()).unwrap();
        let rows = hotp["vectors"].as_array().unwrap();
        assert_eq!(rows.len(), 10);
        for (index, row) in rows.iter().enumerate() {
            let counter = row["counter"].as_u64().unwrap();
            assert_eq!(counter, index as u64);
            let digest = hmac_digest(Algorithm::Sha1, RFC_SEED, &counter.to_be_bytes()).unwrap();
            assert_eq!(
                hex::encode(digest.as_slice()),
                text(row, "hmac_hex"),
                "{counter}"
            );
            assert_eq!(
                u64::from(dynamic_truncation(digest.as_slice()).unwrap()),
                row["truncated"].as_u64().unwrap(),
                "{counter}"
            );
            assert_eq!(
                secret.hotp(Algorithm::Sha1, Digits::Six, counter),
                text(row, "hotp"),
                "{counter}"
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b() {
        let all = vectors();
        let totp = &all["totp"];
        assert_eq!(totp["t0"], 0);
        assert_eq!(totp["step_seconds"].as_u64().unwrap(), STEP_SECONDS);
        assert_eq!(totp["digits"], 8);
        let seeds = &totp["seeds_ascii"];
        let secrets: BTreeMap<&str, (Algorithm, TotpSecret)> = [
            ("SHA1", Algorithm::Sha1, 20),
            ("SHA256", Algorithm::Sha256, 32),
            ("SHA512", Algorithm::Sha512, 64),
        ]
        .into_iter()
        .map(|(name, algorithm, len)| {
            let seed = text(seeds, name).as_bytes();
            // The RFC's SHA-256 and SHA-512 rows use 32- and 64-byte seeds.
            assert_eq!(seed.len(), len, "{name}");
            (name, (algorithm, TotpSecret::from_bytes(seed).unwrap()))
        })
        .collect();
        let rows = totp["vectors"].as_array().unwrap();
        assert_eq!(rows.len(), 18, "six times, three algorithms");
        let mut seen = HashSet::new();
        for row in rows {
            let time = row["time"].as_u64().unwrap();
            let name = text(row, "algorithm");
            seen.insert((time, name.to_owned()));
            let (algorithm, secret) = &secrets[name];
            assert_eq!(algorithm.as_str(), name);
            let step = u64::from_str_radix(text(row, "step_hex"), 16).unwrap();
            assert_eq!(step_at(time), step, "{time}");
            let expected = text(row, "totp");
            assert_eq!(
                secret.totp(*algorithm, Digits::Eight, time),
                expected,
                "{time} {name}"
            );
            if *algorithm == Algorithm::Sha1 {
                // Six digits are the last six of eight: the authenticator code at that time.
                assert_eq!(secret.code_at(time), expected[2..], "{time}");
                assert_eq!(secret.verify(&expected[2..], time), Some(step), "{time}");
            }
        }
        assert_eq!(seen.len(), 18, "no row twice");
    }

    #[test]
    fn verify_accepts_the_current_and_previous_step_only() {
        let secret = rfc_secret();
        let step = 0x23523ED_u64;
        let code = |s: u64| secret.code_at(s * STEP_SECONDS);
        let codes: HashSet<String> = (step - 2..=step + 1).map(code).collect();
        assert_eq!(
            codes.len(),
            4,
            "the four codes differ, so the test means something"
        );
        for now in [
            step * STEP_SECONDS,
            step * STEP_SECONDS + 17,
            step_end(step) - 1,
        ] {
            assert_eq!(secret.verify(&code(step), now), Some(step), "{now}");
            assert_eq!(secret.verify(&code(step - 1), now), Some(step - 1), "{now}");
            assert_eq!(
                secret.verify(&code(step + 1), now),
                None,
                "next step, {now}"
            );
            assert_eq!(secret.verify(&code(step - 2), now), None, "two back, {now}");
        }
        // Once the step is over, its previous step is two back.
        assert_eq!(secret.verify(&code(step - 1), step_end(step)), None);
        assert_eq!(secret.verify(&code(step), step_end(step)), Some(step));
    }

    #[test]
    fn when_both_steps_match_the_current_one_is_returned() {
        // Steps 37079356 and 37079357 share the code 186519 under the RFC seed (found by a
        // search with Python's hmac module), so the caller consumes the newer step.
        let secret = rfc_secret();
        let step = 37_079_357_u64;
        assert_eq!(secret.code_at((step - 1) * STEP_SECONDS), "186519");
        assert_eq!(secret.code_at(step * STEP_SECONDS), "186519");
        assert_eq!(secret.verify("186519", step * STEP_SECONDS), Some(step));
        assert_eq!(secret.verify("186519", step_end(step)), Some(step));
        assert_eq!(
            secret.verify("186519", (step - 1) * STEP_SECONDS),
            Some(step - 1)
        );
        assert_eq!(secret.verify("186519", step_end(step + 1)), None);
    }

    #[test]
    fn verify_at_the_epoch_has_no_previous_step() {
        let secret = rfc_secret();
        assert_eq!(secret.verify(&secret.code_at(0), 0), Some(0));
        assert_eq!(secret.verify(&secret.code_at(0), 29), Some(0));
        assert_eq!(secret.verify(&secret.code_at(30), 29), None);
        let last = step_at(u64::MAX);
        assert_eq!(
            secret.verify(&secret.code_at(u64::MAX), u64::MAX),
            Some(last)
        );
        assert_eq!(step_end(last), u64::MAX, "saturates, no overflow");
    }

    #[test]
    fn codes_that_are_not_six_ascii_digits_are_refused() {
        let secret = rfc_secret();
        let now = 1_111_111_111;
        let good = secret.code_at(now);
        assert_eq!(good, "050471");
        assert!(secret.verify(&good, now).is_some());
        let fullwidth: String = good
            .chars()
            .map(|c| char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).unwrap())
            .collect();
        for bad in [
            String::new(),
            good[..5].to_owned(),
            format!("{good}0"),
            format!("0{good}"),
            format!(" {good}"),
            format!("{good} "),
            format!("{good}\n"),
            format!("{} {}", &good[..3], &good[3..]),
            format!("{}-{}", &good[..3], &good[3..]),
            format!("+{}", &good[1..]),
            format!("-{}", &good[1..]),
            format!("{}a", &good[..5]),
            "abcdef".to_owned(),
            "12345\0".to_owned(),
            fullwidth,
            "٠٥٠٤٧١".to_owned(),
        ] {
            assert_eq!(secret.verify(&bad, now), None, "{bad:?}");
        }
        // A wrong six-digit code.
        let wrong = format!("{:06}", (good.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert_eq!(secret.verify(&wrong, now), None);
    }

    #[test]
    fn generated_secrets_are_160_bit_and_distinct() {
        let a = TotpSecret::generate().unwrap();
        let b = TotpSecret::generate().unwrap();
        assert_eq!(a.expose_bytes().len(), SECRET_LEN);
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        assert_ne!(a.expose_bytes(), [0u8; SECRET_LEN]);
        let code = a.code_at(1_700_000_000);
        assert_eq!(code.len(), DIGITS);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn base32_round_trip_and_import() {
        assert_eq!(rfc_secret().to_base32().as_str(), RFC_SEED_BASE32);
        for _ in 0..50 {
            let secret = TotpSecret::generate().unwrap();
            let encoded = secret.to_base32();
            assert_eq!(encoded.len(), 32, "160 bits, no padding");
            assert!(!encoded.contains('='));
            let back = TotpSecret::from_base32(&encoded).unwrap();
            assert_eq!(back.expose_bytes(), secret.expose_bytes());
        }
        // 32- and 64-byte seeds too (padding-free encodings of 52 and 103 characters).
        for len in [32, 64] {
            let seed: Vec<u8> = (0..len).map(|i| u8::try_from(i * 3).unwrap()).collect();
            let secret = TotpSecret::from_bytes(&seed).unwrap();
            let back = TotpSecret::from_base32(&secret.to_base32()).unwrap();
            assert_eq!(back.expose_bytes(), seed.as_slice());
        }
        // As other systems show it: lower case, grouped with spaces, padded.
        for shown in [
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            " gezd gnbv gy3t qojq\tgezd gnbv gy3t qojq\n",
        ] {
            let secret = TotpSecret::from_base32(shown).unwrap();
            assert_eq!(secret.expose_bytes(), RFC_SEED, "{shown:?}");
        }
        let padded = TotpSecret::from_bytes(&[0x5a; 21]).unwrap().to_base32();
        assert_eq!(padded.len(), 34);
        let padded = format!("{}======", padded.as_str());
        assert_eq!(
            TotpSecret::from_base32(&padded).unwrap().expose_bytes(),
            [0x5a; 21]
        );
    }

    #[test]
    fn bad_base32_and_bad_lengths_are_refused() {
        for bad in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1",  // 1 is not base32
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ0",  // neither is 0
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ8",  // nor 8
            "GEZDGNBVGY3TQOJQ-GEZDGNBVGY3TQOJQ", // no dashes
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQG", // 33 characters: no whole byte count
            "GEZDGNBVGY3TQOJQ=GEZDGNBVGY3TQOJQ", // padding in the middle
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJÉ",  // not ASCII
        ] {
            assert!(
                matches!(TotpSecret::from_base32(bad), Err(TotpError::BadBase32)),
                "{bad}"
            );
        }
        // 21 bytes leave 2 trailing bits in the last character; they must be zero.
        let mut canonical = TotpSecret::from_bytes(&[0; 21])
            .unwrap()
            .to_base32()
            .to_string();
        assert!(TotpSecret::from_base32(&canonical).is_ok());
        canonical.pop();
        canonical.push('B');
        assert!(matches!(
            TotpSecret::from_base32(&canonical),
            Err(TotpError::BadBase32)
        ));
        // Lengths: 80 and 128 bits are too short; more than 64 bytes too long.
        for len in [0, 10, 16, 19, 65, 128] {
            let seed = vec![1u8; len];
            assert!(
                matches!(TotpSecret::from_bytes(&seed), Err(TotpError::BadLength(l)) if l == len),
                "{len}"
            );
            let encoded = BASE32_NOPAD.encode(&seed);
            assert!(
                matches!(TotpSecret::from_base32(&encoded), Err(TotpError::BadLength(l)) if l == len),
                "{len}"
            );
        }
    }

    #[test]
    fn otpauth_uri_is_percent_encoded() {
        let secret = rfc_secret();
        let uri = secret.otpauth_uri("Hive", "alice@example.com").unwrap();
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Hive:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Hive&algorithm=SHA1&digits=6&period=30"
        );
        let uri = secret
            .otpauth_uri("Acme & Co/Zürich", "bob smith?#=%+_.~-")
            .unwrap();
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Acme%20%26%20Co%2FZ%C3%BCrich:bob%20smith%3F%23%3D%25%2B_.~-\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20%26%20Co%2FZ%C3%BCrich\
             &algorithm=SHA1&digits=6&period=30"
        );
        // Parsed back by the WHATWG-style split: exactly the parameters we set.
        let query = uri.split_once('?').unwrap().1;
        let keys: Vec<&str> = query
            .split('&')
            .map(|p| p.split_once('=').unwrap().0)
            .collect();
        assert_eq!(keys, ["secret", "issuer", "algorithm", "digits", "period"]);
        for (issuer, account) in [
            ("", "alice"),
            ("Hive", ""),
            ("  ", "alice"),
            ("Hive:Evil", "alice"),
            ("Hive", "alice:admin"),
            ("Hive\n", "alice"),
            ("Hive", "al\u{7}ice"),
        ] {
            assert!(
                matches!(
                    secret.otpauth_uri(issuer, account),
                    Err(TotpError::BadLabel)
                ),
                "{issuer:?} {account:?}"
            );
        }
    }

    #[test]
    fn recovery_codes_have_256_bits_and_the_human_shape() {
        assert_eq!(RECOVERY_CODE_LEN, 64);
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        assert_eq!(codes.len(), 10);
        let distinct: HashSet<&str> = codes.iter().map(RecoveryCode::as_str).collect();
        assert_eq!(distinct.len(), 10);
        let mut symbols = BTreeMap::<char, usize>::new();
        for _ in 0..10 {
            for code in new_recovery_codes().unwrap() {
                let text = code.as_str();
                assert_eq!(text.len(), RECOVERY_CODE_LEN, "{text}");
                let groups: Vec<&str> = text.split('-').collect();
                assert_eq!(groups.len(), 13, "{text}");
                assert!(groups.iter().all(|g| g.len() == 4), "{text}");
                assert!(looks_like_recovery_code(text), "{text}");
                // The code decodes back to its 32 random bytes.
                let bytes = BASE32_NOPAD
                    .decode(text.replace('-', "").as_bytes())
                    .unwrap();
                assert_eq!(bytes.len(), RECOVERY_CODE_BYTES);
                for c in text.chars().filter(|&c| c != '-') {
                    *symbols.entry(c).or_default() += 1;
                }
            }
        }
        // 5,200 characters: each of the 32 symbols appears (about 160 times each); a missing one
        // has odds far below 1e-31 for a uniform generator.
        assert_eq!(symbols.len(), 32, "{symbols:?}");
        assert!(symbols.values().all(|&n| n >= 20), "{symbols:?}");
    }

    #[test]
    fn recovery_code_hash_ignores_case_dashes_and_spaces() {
        let code = new_recovery_codes().unwrap().remove(0);
        let text = code.as_str();
        let hash = code.hash();
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(hash, sha256_hex(text.replace('-', "").as_bytes()));
        let undashed = text.replace('-', "");
        for typed in [
            text.to_owned(),
            text.to_lowercase(),
            undashed.clone(),
            undashed.to_lowercase(),
            text.replace('-', " "),
            format!("  {}\n", text.to_lowercase()),
            format!("{}-{}", &undashed[..12], &undashed[12..]),
        ] {
            assert_eq!(recovery_code_hash(&typed), hash, "{typed:?}");
            assert!(looks_like_recovery_code(&typed), "{typed:?}");
        }
        assert!(!hash.contains(&undashed) && !hash.contains(&undashed.to_lowercase()));
        let other = new_recovery_codes().unwrap().remove(0);
        assert_ne!(other.hash(), hash);
        // A known answer: SHA-256("AAAAAAAAAAAAAAAAAAAAAAAA").
        assert_eq!(
            recovery_code_hash("aaaa-aaaa-aaaa-aaaa-aaaa-aaaa"),
            sha256_hex(b"AAAAAAAAAAAAAAAAAAAAAAAA")
        );
        for bad in [
            "",
            "AAAA-AAAA",
            "AAAA-AAAA-AAAA-AAAA-AAAA-AAA1",
            "AAAA-AAAA-AAAA-AAAA-AAAA-AAAAA",
        ] {
            assert!(!looks_like_recovery_code(bad), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let secret = rfc_secret();
        let shown = format!("{secret:?} {secret:#?}");
        assert_eq!(format!("{secret:?}"), "TotpSecret(<redacted>)");
        for leak in [
            RFC_SEED_BASE32.to_owned(),
            RFC_SEED_BASE32.to_lowercase(),
            "12345678901234567890".to_owned(),
            hex::encode(RFC_SEED),
            format!("{:?}", RFC_SEED),
            "49, 50, 51".to_owned(),
        ] {
            assert!(!shown.contains(&leak), "{shown}");
        }
        let generated = TotpSecret::generate().unwrap();
        let shown = format!("{generated:?}");
        assert!(!shown.contains(generated.to_base32().as_str()));
        assert!(!shown.contains(&hex::encode(generated.expose_bytes())));

        let codes = new_recovery_codes().unwrap();
        let shown = format!("{codes:?}");
        for code in &codes {
            assert!(!shown.contains(code.as_str()), "{shown}");
            assert!(!shown.contains(&code.as_str().replace('-', "")), "{shown}");
            assert_eq!(format!("{code:?}"), "RecoveryCode(<redacted>)");
        }
        // Errors carry no input either.
        let error = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1").unwrap_err();
        assert!(!format!("{error:?} {error}").contains("GEZD"));
    }
}
