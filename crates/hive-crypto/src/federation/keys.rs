//! The keys of federation tokens: shared HS256 secrets (and the rules a secret must meet),
//! Ed25519 seeds and public keys, their text forms and key ids.

use super::*;

/// Why a shared secret was refused. Never holds the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakSecret {
    #[error("the shared secret is longer than 4096 characters")]
    TooLong,
    #[error("the shared secret is not hex or base64 of random bytes")]
    NotEncoded,
    #[error("the shared secret encodes fewer than 32 bytes")]
    TooFewBytes,
    #[error("the shared secret encodes readable text, not random bytes")]
    EncodesText,
    #[error(
        "the shared secret lacks the mix of characters of generated text (hex: digits and letters; base64: upper and lower case)"
    )]
    NotGenerated,
    #[error("the shared secret is one character repeated")]
    OneCharacter,
    #[error("the shared secret is a short pattern repeated")]
    RepeatedPattern,
    #[error("the shared secret contains a default-looking word")]
    DefaultWord,
    #[error("the shared secret contains a run of consecutive or identical characters")]
    Run,
    #[error("the shared secret uses fewer than 10 distinct characters")]
    FewDistinct,
}

/// Words that mark a placeholder or a human-chosen secret.
const DEFAULT_WORDS: [&str; 12] = [
    "changeme",
    "secret",
    "password",
    "passwd",
    "example",
    "default",
    "sample",
    "placeholder",
    "replaceme",
    "insecure",
    "qwerty",
    "letmein",
];
/// This many consecutive (`abcdefgh`, `87654321`) or identical characters is a run; at 8 a
/// generated hex secret trips it about once in 10^6 (at 6, once in 10^4).
const RUN_LENGTH: usize = 8;
const MIN_DISTINCT_CHARS: usize = 10;

/// The secret every peer of an HS256 mesh shares. The key is the secret's UTF-8 bytes (the
/// text as configured, not its decoding, so every peer derives the same key).
///
/// Only generated secrets are accepted: a passphrase can be guessed offline by anyone holding
/// one token. [`SharedSecret::new`] refuses, in this order: more than 4096 characters; text
/// that is not hex (an even number of hex digits) or base64 (standard or URL alphabet, with
/// or without padding, canonical); fewer than 32 decoded bytes; decoded bytes that are
/// readable text (base64 of a passphrase); hex without both digits and letters, or base64
/// without both upper- and lower-case letters; one character repeated; a shorter string
/// repeated to fill it (`abcdabcd…`, half its length or less); any of the words changeme,
/// secret, password, passwd, example, default, sample, placeholder, replaceme, insecure,
/// qwerty, letmein (ASCII case and punctuation ignored); a run of 8 consecutive (`01234567`,
/// `abcdefgh`, `hgfedcba`) or identical characters; fewer than 10 distinct characters. A
/// generated secret ([`generate_shared_secret`], `openssl rand -base64 32`, `openssl rand
/// -hex 32`) passes, but for a chance below one in 10^7. No rule on text can prove
/// randomness: the rules refuse what people type, not a value made to pass them. A clone is
/// zeroized on drop too.
#[derive(Clone)]
pub struct SharedSecret {
    pub(super) secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSecret")
            .field("kid", &SHARED_KID)
            .finish_non_exhaustive()
    }
}

impl SharedSecret {
    pub fn new(secret: &str) -> Result<Self, WeakSecret> {
        check_strength(secret)?;
        Ok(Self {
            secret: Zeroizing::new(secret.as_bytes().to_vec()),
        })
    }

    /// The key id tokens under this secret carry: [`SHARED_KID`], the same for every secret.
    pub fn kid(&self) -> &'static str {
        SHARED_KID
    }
}

/// A fresh shared secret: 32 bytes from the OS CSPRNG as base64url without padding (43
/// characters), drawn again in the rare case the strength rules would refuse it.
pub fn generate_shared_secret() -> Result<Zeroizing<String>, KeyTextError> {
    loop {
        let bytes = Zeroizing::new(
            crate::random_bytes::<MIN_SECRET_BYTES>().map_err(|_| KeyTextError::Random)?,
        );
        let text = Zeroizing::new(URL_SAFE_NO_PAD.encode(&bytes[..]));
        if check_strength(&text).is_ok() {
            return Ok(text);
        }
    }
}

/// The bytes `text` encodes as hex or base64, and whether it was hex.
fn decode_secret(text: &str) -> Option<(Zeroizing<Vec<u8>>, bool)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
    if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(text)
            .ok()
            .map(|bytes| (Zeroizing::new(bytes), true));
    }
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .into_iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(|bytes| (Zeroizing::new(bytes), false))
}

/// Random bytes are valid UTF-8 without control characters about once in 10^8; a
/// passphrase run through base64 always is.
fn is_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|text| {
        !text
            .chars()
            .any(|c| c.is_control() && !c.is_ascii_whitespace())
    })
}

/// The character classes every generated encoding has (a random 64-digit hex lacks digits or
/// letters about once in 10^13; a 43-character base64 lacks a case about once in 10^9).
fn has_generated_mix(text: &str, hex: bool) -> bool {
    let has = |class: fn(&u8) -> bool| text.bytes().any(|b| class(&b));
    if hex {
        has(u8::is_ascii_digit) && has(u8::is_ascii_alphabetic)
    } else {
        has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase)
    }
}

fn check_strength(secret: &str) -> Result<(), WeakSecret> {
    // Every copy of the secret made here is wiped when the check returns.
    if secret.chars().count() > MAX_SECRET_CHARS {
        return Err(WeakSecret::TooLong);
    }
    let (bytes, hex) = decode_secret(secret).ok_or(WeakSecret::NotEncoded)?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(WeakSecret::TooFewBytes);
    }
    if is_text(&bytes) {
        return Err(WeakSecret::EncodesText);
    }
    if !has_generated_mix(secret, hex) {
        return Err(WeakSecret::NotGenerated);
    }
    let chars: Zeroizing<Vec<char>> = Zeroizing::new(secret.chars().collect());
    if chars.iter().all(|c| *c == chars[0]) {
        return Err(WeakSecret::OneCharacter);
    }
    let repeated = (1..=chars.len() / 2)
        .any(|period| (period..chars.len()).all(|i| chars[i] == chars[i - period]));
    if repeated {
        return Err(WeakSecret::RepeatedPattern);
    }
    let letters: Zeroizing<String> = Zeroizing::new(
        chars
            .iter()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(char::to_ascii_lowercase)
            .collect(),
    );
    if DEFAULT_WORDS.iter().any(|word| letters.contains(word)) {
        return Err(WeakSecret::DefaultWord);
    }
    for step in [1i64, -1, 0] {
        let mut run = 1;
        for pair in chars.windows(2) {
            if i64::from(u32::from(pair[1])) - i64::from(u32::from(pair[0])) == step {
                run += 1;
                if run >= RUN_LENGTH {
                    return Err(WeakSecret::Run);
                }
            } else {
                run = 1;
            }
        }
    }
    let mut distinct = Zeroizing::new(chars.to_vec());
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Err(WeakSecret::FewDistinct);
    }
    Ok(())
}

/// Why an Ed25519 seed or public key could not be read. Never holds the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    #[error("the key text has the wrong length for its encoding")]
    BadLength,
    #[error("the key has characters outside its encoding")]
    BadEncoding,
    #[error("the key was refused by the Ed25519 implementation")]
    Rejected,
    #[error("the operating system's random generator failed")]
    Random,
}

/// The 32-byte seed of this instance's Ed25519 signing key. Zeroized on drop; `Debug` shows
/// only the key id. A clone is zeroized on drop too.
#[derive(Clone)]
pub struct Ed25519Seed {
    pub(super) seed: Zeroizing<[u8; 32]>,
    pub(super) public_key: [u8; 32],
}

impl std::fmt::Debug for Ed25519Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Seed")
            .field("kid", &ed25519_kid(&self.public_key))
            .finish_non_exhaustive()
    }
}

impl Ed25519Seed {
    /// Reads a seed written as 64 hex characters or 43 base64url characters (no padding);
    /// surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, KeyTextError> {
        let text = text.trim();
        let mut seed = Zeroizing::new([0u8; 32]);
        match text.len() {
            64 => {
                hex::decode_to_slice(text, &mut seed[..]).map_err(|_| KeyTextError::BadEncoding)?
            }
            43 => {
                let bytes = Zeroizing::new(
                    URL_SAFE_NO_PAD
                        .decode(text)
                        .map_err(|_| KeyTextError::BadEncoding)?,
                );
                if bytes.len() != 32 {
                    return Err(KeyTextError::BadLength);
                }
                seed.copy_from_slice(&bytes);
            }
            _ => return Err(KeyTextError::BadLength),
        }
        Self::from_seed(seed)
    }

    /// A fresh seed from the OS CSPRNG.
    pub fn generate() -> Result<Self, KeyTextError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..]).map_err(|_| KeyTextError::Random)?;
        Self::from_seed(seed)
    }

    fn from_seed(seed: Zeroizing<[u8; 32]>) -> Result<Self, KeyTextError> {
        let public_key = key_pair(&seed)
            .ok()
            .and_then(|pair| {
                use aws_lc_rs::signature::KeyPair;
                pair.public_key().as_ref().try_into().ok()
            })
            .ok_or(KeyTextError::Rejected)?;
        Ok(Self { seed, public_key })
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The public key as peers configure it: base64url without padding.
    pub fn public_key_text(&self) -> String {
        public_key_text(&self.public_key)
    }

    /// The key id tokens signed with this seed carry.
    pub fn kid(&self) -> String {
        ed25519_kid(&self.public_key)
    }

    /// The raw Ed25519 signature over `message`. The key pair is rebuilt per signature so only
    /// the zeroizing seed is ever kept.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, MintError> {
        Ok(key_pair(&self.seed)?.sign(message).as_ref().to_vec())
    }
}

fn key_pair(seed: &[u8; 32]) -> Result<aws_lc_rs::signature::Ed25519KeyPair, MintError> {
    aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| MintError::Signing)
}

/// A peer's Ed25519 public key from its configured text: base64url, no padding, 32 bytes.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], KeyTextError> {
    let text = text.trim();
    if text.len() != 43 {
        return Err(KeyTextError::BadLength);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| KeyTextError::BadEncoding)?;
    bytes.try_into().map_err(|_| KeyTextError::BadLength)
}

/// An Ed25519 public key as it is configured: base64url without padding (what
/// [`parse_public_key`] reads).
pub fn public_key_text(public_key: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(public_key)
}

/// `ed25519-` and the first 16 hex characters of the SHA-256 of the public key.
pub fn ed25519_kid(public_key: &[u8; 32]) -> String {
    format!("ed25519-{}", &crate::sha256_hex(public_key)[..16])
}

/// The key this instance signs its federation tokens with.
#[derive(Debug)]
pub enum SigningKey {
    Shared(SharedSecret),
    Ed25519(Ed25519Seed),
}

impl SigningKey {
    pub(super) fn alg(&self) -> &'static str {
        match self {
            Self::Shared(_) => HS256,
            Self::Ed25519(_) => EDDSA,
        }
    }

    /// The raw signature over `message` (the JWS signing input).
    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, MintError> {
        match self {
            Self::Shared(secret) => {
                let mut mac =
                    HmacSha256::new_from_slice(&secret.secret).map_err(|_| MintError::Signing)?;
                mac.update(message);
                Ok(mac.finalize().into_bytes().to_vec())
            }
            Self::Ed25519(seed) => seed.sign(message),
        }
    }
}
