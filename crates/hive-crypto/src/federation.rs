//! The JWT one Hive instance presents to a peer (RFC 7515, 7519, 8725; SECURITY-RULES.md
//! "JWT").
//!
//! A [`Signer`] mints; a [`Verifier`] checks. Each verifier is pinned to exactly one algorithm
//! family, chosen by configuration and never by the token:
//!
//! - **HS256** with a mesh-wide [`SharedSecret`]. Every peer holds the same key, so a valid
//!   token proves only that *some* member of the mesh minted it: any configured peer origin may
//!   appear as `iss`. That is the inherent limit of a shared secret; prefer Ed25519.
//! - **EdDSA** (Ed25519), the recommended mode. Each peer signs with its own [`Ed25519Seed`];
//!   the verifier pins each public key to exactly one issuer origin, so peer B cannot speak as
//!   peer C.
//!
//! Token shape: header `{"alg":"HS256"|"EdDSA","typ":"hive-federation+jwt","kid":…}` (`kid` is
//! [`SHARED_KID`] under a shared secret, [`ed25519_kid`] of the public key otherwise); claims
//! `iss` (the issuer's origin), `aud`, `sub` (who at the issuer made the call, 1..=255 chars),
//! `jti` (128 random bits as hex), `iat`, `exp` = `iat` + TTL, optional `nbf`.
//!
//! Verification order: size (≤ [`MAX_TOKEN_BYTES`], before any decoding), three base64url
//! parts, `alg` (`none` in any spelling, then anything but the pinned algorithm, `hs256`
//! included), forbidden header members (`crit`, `jku`, `x5u`, `jwk`, `x5c`; nothing is ever
//! fetched, this crate has no network code), `typ` (exactly [`TOKEN_TYPE`], ASCII case
//! ignored; a missing `typ` or the `JWT` of an ID token is refused), a non-empty signature,
//! `kid` (a key of the verifier's fixed map), the signature (an HMAC tag compared in constant
//! time, or Ed25519), and only then the
//! claims: `iss` must own the key, `sub`, `aud` and `jti` as [`Expected`] asks, then `iat`,
//! `exp`, the lifetime and `nbf` against the caller's clock.
//!
//! API: [`Signer::new`]`(issuer, `[`SigningKey`]`)` and [`Signer::mint`]`(audience, subject,
//! now, ttl) -> `[`Minted`]; [`Verifier::shared`]`(&secret, origins)`,
//! [`Verifier::ed25519`]`(&[(origin, public_key)])` and [`Verifier::verify`]`(token,
//! &`[`Expected`]`) -> `[`PeerClaims`] or a [`Rejection`] with a stable [`Rejection::reason`];
//! keys from [`SharedSecret::new`] (a new secret from [`generate_shared_secret`]),
//! [`Ed25519Seed::parse`] / [`Ed25519Seed::generate`] and, for peers, [`parse_public_key`].
//! The generators return a `Result` (the OS generator can fail); [`KeyTextError`] is the one error of seed and public-key text; [`ed25519_kid`]
//! gives a peer key's kid; the TTL and leeway bounds and defaults are constants.
//!
//! `aud` is a string, or an array of exactly one string; several audiences are refused, so a
//! token is never good at two places at once. The verifier does not consume the `jti`: the
//! caller records it in the replay store until `expires_at + leeway`.

use crate::jose;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// The `typ` of a federation token.
pub const TOKEN_TYPE: &str = "hive-federation+jwt";
/// Tokens longer than this are refused before anything is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The most clock difference ever allowed (the setting's range is 0..=300).
pub const MAX_LEEWAY_SECONDS: i64 = 300;
/// The leeway setting's default.
pub const DEFAULT_LEEWAY_SECONDS: i64 = 30;
/// The TTL setting's default.
pub const DEFAULT_TTL_SECONDS: i64 = 300;
/// The shortest lifetime [`Signer::mint`] gives a token (the TTL setting's lower bound).
pub const MIN_TTL_SECONDS: i64 = 30;
/// The longest lifetime a token may have, minted or accepted (the TTL setting's upper bound).
pub const MAX_TTL_SECONDS: i64 = 3600;
/// The fewest bytes a shared secret must encode (256 bits of key).
pub const MIN_SECRET_BYTES: usize = 32;
/// The longest shared secret accepted, in characters (keeps the pattern checks cheap).
pub const MAX_SECRET_CHARS: usize = 4096;
/// The `kid` of every HS256 token. Fixed: a key id derived from the secret, published in the
/// mesh descriptor, would let anyone test guesses of the secret offline.
pub const SHARED_KID: &str = "hs256";
/// A subject is 1..=255 characters.
const MAX_SUBJECT_CHARS: usize = 255;
/// A `jti` is 16..=128 characters of the base64url alphabet (hex included).
const JTI_CHARS: std::ops::RangeInclusive<usize> = 16..=128;

const HS256: &str = "HS256";
const EDDSA: &str = "EdDSA";

type HmacSha256 = Hmac<Sha256>;

mod keys;

pub use keys::{
    Ed25519Seed, KeyTextError, SharedSecret, SigningKey, WeakSecret, ed25519_kid,
    generate_shared_secret, parse_public_key, public_key_text,
};

/// Why a token could not be minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("the TTL is outside 30..=3600 seconds")]
    BadTtl,
    #[error("the subject must be 1 to 255 characters")]
    BadSubject,
    #[error("the audience must not be empty")]
    BadAudience,
    #[error("the operating system's random generator failed")]
    Random,
    #[error("the token could not be signed")]
    Signing,
}

/// A minted token, with the `jti` and expiry the caller may want to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub token: String,
    pub jti: String,
    pub expires_at: i64,
}

/// Mints this instance's federation tokens.
#[derive(Debug)]
pub struct Signer {
    issuer: String,
    key: SigningKey,
    kid: String,
}

impl Signer {
    /// `issuer` is this instance's origin, as peers configure it.
    pub fn new(issuer: impl Into<String>, key: SigningKey) -> Self {
        let kid = match &key {
            SigningKey::Shared(secret) => secret.kid().to_owned(),
            SigningKey::Ed25519(seed) => seed.kid(),
        };
        Self {
            issuer: issuer.into(),
            key,
            kid,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Mints a token for `audience` on behalf of `subject`, issued at `now` and valid for
    /// `ttl_seconds` (30..=3600); returns it with its `jti`.
    pub fn mint(
        &self,
        audience: &str,
        subject: &str,
        now: i64,
        ttl_seconds: i64,
    ) -> Result<Minted, MintError> {
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
            return Err(MintError::BadTtl);
        }
        if !(1..=MAX_SUBJECT_CHARS).contains(&subject.chars().count()) {
            return Err(MintError::BadSubject);
        }
        if audience.is_empty() {
            return Err(MintError::BadAudience);
        }
        let jti = hex::encode(crate::random_bytes::<16>().map_err(|_| MintError::Random)?);
        let expires_at = now.checked_add(ttl_seconds).ok_or(MintError::BadTtl)?;
        let header = json!({ "alg": self.key.alg(), "typ": TOKEN_TYPE, "kid": self.kid });
        let claims = json!({
            "iss": self.issuer, "aud": audience, "sub": subject, "jti": jti,
            "iat": now, "exp": expires_at,
        });
        let token = sign_parts(&self.key, &header, &claims)?;
        Ok(Minted {
            token,
            jti,
            expires_at,
        })
    }
}

/// `header.claims.signature` with `key`, whatever the header says (tests build attacks with it).
fn sign_parts(key: &SigningKey, header: &Value, claims: &Value) -> Result<String, MintError> {
    jose::encode(header, claims, |message| key.sign(message))
}

/// Two configured peers share one Ed25519 public key (so it could not name one issuer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Ed25519 key {kid} is configured twice")]
pub struct DuplicatePeerKey {
    pub kid: String,
}

enum VerifyingKey {
    Shared(Zeroizing<Vec<u8>>),
    Ed25519([u8; 32]),
}

struct PinnedKey {
    key: VerifyingKey,
    /// The origins that may appear as `iss` under this key.
    issuers: Vec<String>,
}

/// Checks peers' federation tokens against a fixed map of keys, pinned to one algorithm.
pub struct Verifier {
    alg: &'static str,
    keys: BTreeMap<String, PinnedKey>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("alg", &self.alg)
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|(kid, key)| (kid, &key.issuers))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a token must say to be accepted here.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// This instance's audience (its origin or the configured mesh audience), compared exactly.
    pub audience: &'a str,
    /// When false a token without `aud` passes; one that has an `aud` must still name us.
    pub require_audience: bool,
    /// When false a token without `jti` passes; one that has a `jti` must still be well formed.
    pub require_jti: bool,
    /// Now, in seconds since the epoch, from the caller's clock.
    pub now: i64,
    /// Allowed clock difference in seconds, clamped to 0..=[`MAX_LEEWAY_SECONDS`].
    pub leeway: i64,
    /// The longest `exp - iat` accepted (the TTL setting), at most [`MAX_TTL_SECONDS`].
    pub max_lifetime: i64,
}

/// The claims of an accepted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerClaims {
    pub issuer: String,
    pub subject: String,
    pub jti: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub audience: Option<String>,
}

/// Why a token was refused. The reason goes into the audit record; the caller gets one answer
/// for all of them. Never holds any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the token is larger than 8 KiB")]
    Oversize,
    #[error("the token is not a signed JWT")]
    Malformed,
    #[error("alg none is never accepted")]
    AlgNone,
    #[error("the token's algorithm is not the one this verifier is pinned to")]
    AlgNotAllowed,
    #[error("the token's header carries a forbidden member")]
    ForbiddenHeader,
    #[error("the token's typ is not hive-federation+jwt")]
    WrongType,
    #[error("the token names no key")]
    MissingKid,
    #[error("the token names a key that is not configured")]
    UnknownKid,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("a required claim is missing or malformed")]
    MissingClaim,
    #[error("the issuer does not own the key")]
    WrongIssuer,
    #[error("the audience is not this instance")]
    WrongAudience,
    #[error("the token expires before it is issued")]
    ExpiresBeforeIssued,
    #[error("the token's lifetime is longer than allowed")]
    LifetimeTooLong,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
}

impl Rejection {
    /// A stable snake_case name for audit records and metrics.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Oversize => "token_oversize",
            Self::Malformed => "token_malformed",
            Self::AlgNone => "alg_none",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::ForbiddenHeader => "forbidden_header",
            Self::WrongType => "wrong_typ",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::MissingClaim => "missing_claim",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::ExpiresBeforeIssued => "exp_not_after_iat",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
        }
    }
}

impl Verifier {
    /// HS256 under the mesh secret; any of `peer_origins` may be the issuer.
    pub fn shared(secret: &SharedSecret, peer_origins: &[String]) -> Self {
        let pinned = PinnedKey {
            key: VerifyingKey::Shared(secret.secret.clone()),
            issuers: peer_origins.to_vec(),
        };
        Self {
            alg: HS256,
            keys: BTreeMap::from([(SHARED_KID.to_owned(), pinned)]),
        }
    }

    /// EdDSA under each peer's own key; each key speaks for its one origin only. An origin may
    /// have several keys (rotation); a key may not have several origins.
    pub fn ed25519(peers: &[(String, [u8; 32])]) -> Result<Self, DuplicatePeerKey> {
        let mut keys = BTreeMap::new();
        for (origin, public_key) in peers {
            let kid = ed25519_kid(public_key);
            let pinned = PinnedKey {
                key: VerifyingKey::Ed25519(*public_key),
                issuers: vec![origin.clone()],
            };
            if keys.insert(kid.clone(), pinned).is_some() {
                return Err(DuplicatePeerKey { kid });
            }
        }
        Ok(Self { alg: EDDSA, keys })
    }

    /// The configured key ids, in order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Verifies `token`: header rules, the signature under the key its `kid` names, then the
    /// claims against `expected` (see the module documentation for the order).
    pub fn verify(&self, token: &str, expected: &Expected<'_>) -> Result<PeerClaims, Rejection> {
        // `alg` exact and case-sensitive (`hs256` is not an algorithm name); `typ` ignoring
        // ASCII case.
        let (compact, kid, _) = jose::pinned(
            token,
            MAX_TOKEN_BYTES,
            |alg| alg == self.alg,
            jose::Typ::Required,
            |typ| typ.eq_ignore_ascii_case(TOKEN_TYPE),
        )
        .map_err(|fault| match fault {
            jose::Fault::Oversize => Rejection::Oversize,
            jose::Fault::Malformed => Rejection::Malformed,
            jose::Fault::AlgNone => Rejection::AlgNone,
            jose::Fault::ForbiddenHeader => Rejection::ForbiddenHeader,
            jose::Fault::AlgNotAllowed => Rejection::AlgNotAllowed,
            jose::Fault::WrongType => Rejection::WrongType,
            jose::Fault::MissingKid => Rejection::MissingKid,
        })?;
        let pinned = self.keys.get(&kid).ok_or(Rejection::UnknownKid)?;
        let signature = jose::base64url(compact.signature).ok_or(Rejection::Malformed)?;
        if !signature_verifies(&pinned.key, compact.signing_input.as_bytes(), &signature) {
            return Err(Rejection::BadSignature);
        }
        let claims: Map<String, Value> = jose::base64url(compact.claims)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(Rejection::Malformed)?;
        check_claims(&claims, &pinned.issuers, expected)
    }
}

/// Constant time for HMAC (`verify_slice`); Ed25519 verification has no secret to leak.
fn signature_verifies(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    match key {
        VerifyingKey::Shared(secret) => HmacSha256::new_from_slice(secret)
            .map(|mut mac| {
                mac.update(message);
                mac.verify_slice(signature).is_ok()
            })
            .unwrap_or(false),
        VerifyingKey::Ed25519(public_key) => jose::ed25519_verifies(public_key, message, signature),
    }
}

fn is_jti(jti: &str) -> bool {
    JTI_CHARS.contains(&jti.len())
        && jti
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_claims(
    claims: &Map<String, Value>,
    issuers: &[String],
    expected: &Expected<'_>,
) -> Result<PeerClaims, Rejection> {
    let leeway = expected.leeway.clamp(0, MAX_LEEWAY_SECONDS);
    let max_lifetime = expected.max_lifetime.min(MAX_TTL_SECONDS);
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);

    let issuer = text("iss").ok_or(Rejection::MissingClaim)?;
    if !issuers.iter().any(|owner| owner == issuer) {
        return Err(Rejection::WrongIssuer);
    }
    let subject = text("sub")
        .filter(|sub| (1..=MAX_SUBJECT_CHARS).contains(&sub.chars().count()))
        .ok_or(Rejection::MissingClaim)?;
    let audience = match claims.get("aud") {
        None if expected.require_audience => return Err(Rejection::MissingClaim),
        None => None,
        Some(Value::String(one)) => Some(one.as_str()),
        Some(Value::Array(many)) => match many.as_slice() {
            [Value::String(one)] => Some(one.as_str()),
            [] => return Err(Rejection::MissingClaim),
            // Several audiences: a token good at two places is not accepted at either.
            _ => return Err(Rejection::WrongAudience),
        },
        Some(_) => return Err(Rejection::MissingClaim),
    };
    if audience.is_some_and(|aud| aud != expected.audience) {
        return Err(Rejection::WrongAudience);
    }
    let jti = match claims.get("jti") {
        None if expected.require_jti => return Err(Rejection::MissingClaim),
        None => None,
        Some(jti) => Some(
            jti.as_str()
                .filter(|jti| is_jti(jti))
                .ok_or(Rejection::MissingClaim)?,
        ),
    };
    let iat = time("iat").ok_or(Rejection::MissingClaim)?;
    let exp = time("exp").ok_or(Rejection::MissingClaim)?;
    let nbf = match claims.get("nbf") {
        None => None,
        Some(nbf) => Some(nbf.as_i64().ok_or(Rejection::MissingClaim)?),
    };
    if exp <= iat {
        return Err(Rejection::ExpiresBeforeIssued);
    }
    // i128: exp - iat of two extreme i64 values would overflow.
    if i128::from(exp) - i128::from(iat) > i128::from(max_lifetime) {
        return Err(Rejection::LifetimeTooLong);
    }
    if expected.now >= exp.saturating_add(leeway) {
        return Err(Rejection::Expired);
    }
    if iat > expected.now.saturating_add(leeway) {
        return Err(Rejection::IssuedInFuture);
    }
    if nbf.is_some_and(|nbf| nbf > expected.now.saturating_add(leeway)) {
        return Err(Rejection::NotYetValid);
    }
    Ok(PeerClaims {
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
        jti: jti.map(str::to_owned),
        issued_at: iat,
        expires_at: exp,
        audience: audience.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests;
