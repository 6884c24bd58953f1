//! ID tokens of OpenID Connect providers (RFC 7515, 7519, 8725; SECURITY-RULES.md "JWT").
//!
//! One purpose, one verifier. The algorithm is pinned by the key, never chosen by the token: an
//! RSA key verifies RS256 only, a P-256 key ES256 only, and a provider's keys are only those of
//! its key set ([`KeySet`], parsed from its JWKS). Nothing in a token's header selects or
//! fetches a key: `jku`, `x5u`, `jwk` and `x5c` are refused, as are `crit`, `alg: none` in any
//! spelling, HMAC algorithms, a `typ` other than `JWT` and tokens over 8 KiB. The signature is
//! always checked, before any claim is believed; the claims are then checked against the
//! caller's clock (never the system's), with at most 30 s of leeway.

use crate::jose::{self, base64url};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

/// Tokens longer than this are refused before anything is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The most clock difference ever allowed for `exp`, `nbf` and `iat`.
pub const MAX_LEEWAY_SECONDS: i64 = 30;
/// A key set holding more keys than this is refused (no provider needs so many).
pub const MAX_KEYS: usize = 50;
/// RSA moduli accepted, in bytes (2048 to 8192 bits).
const RSA_MODULUS_BYTES: std::ops::RangeInclusive<usize> = 256..=1024;

/// The signature algorithms an ID token may use here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, for RSA keys.
    Rs256,
    /// ECDSA on P-256 with SHA-256, for P-256 keys.
    Es256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 2] = [SigningAlg::Rs256, SigningAlg::Es256];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    /// Exact, case-sensitive (`rs256` is not an algorithm name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
        }
    }
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
    #[error("the token's algorithm is not accepted")]
    AlgNotAllowed,
    #[error("the token's header carries a forbidden member")]
    ForbiddenHeader,
    #[error("the token's typ is not JWT")]
    WrongType,
    #[error("the token names no key")]
    MissingKid,
    #[error("the token names a key that is not in the key set")]
    UnknownKid,
    #[error("the token's algorithm does not match its key")]
    AlgKeyMismatch,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("a required claim is missing or malformed")]
    MissingClaim,
    #[error("the issuer is not the provider's")]
    WrongIssuer,
    #[error("the audience does not include the client")]
    WrongAudience,
    #[error("the authorized party is not the client")]
    WrongAuthorizedParty,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the nonce is not the one of this sign-in")]
    WrongNonce,
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
            Self::AlgKeyMismatch => "alg_key_mismatch",
            Self::BadSignature => "bad_signature",
            Self::MissingClaim => "missing_claim",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongAuthorizedParty => "wrong_azp",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongNonce => "wrong_nonce",
        }
    }
}

/// Why a key set document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("the key set is not a JSON object with a keys array")]
    NotAKeySet,
    #[error("the key set has more than {MAX_KEYS} keys")]
    TooManyKeys,
    #[error("the key set names key {0:?} twice")]
    DuplicateKid(String),
}

struct VerifyingKey {
    alg: SigningAlg,
    key: DecodingKey,
}

/// A provider's signature keys by `kid`: only RSA (≥ 2048 bits) and P-256 keys meant for
/// signatures, each pinned to its one algorithm. Keys without a `kid`, of another type or
/// curve (symmetric `oct` keys included), for encryption, or with an algorithm the caller does
/// not accept are left out.
#[derive(Default)]
pub struct KeySet {
    keys: BTreeMap<String, VerifyingKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.keys.iter().map(|(kid, key)| (kid, key.alg.name())))
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS document (RFC 7517), keeping the keys usable with one of `accepted`.
    pub fn parse(document: &[u8], accepted: &[SigningAlg]) -> Result<Self, KeySetError> {
        let value: Value = serde_json::from_slice(document).map_err(|_| KeySetError::NotAKeySet)?;
        let entries = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeySetError::NotAKeySet)?;
        if entries.len() > MAX_KEYS {
            return Err(KeySetError::TooManyKeys);
        }
        let mut keys = BTreeMap::new();
        for entry in entries {
            let Some((kid, key)) = verifying_key(entry) else {
                continue;
            };
            if !accepted.contains(&key.alg) {
                continue;
            }
            if keys.insert(kid.clone(), key).is_some() {
                return Err(KeySetError::DuplicateKid(kid));
            }
        }
        Ok(Self { keys })
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, in order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

fn text_member<'a>(entry: &'a Value, name: &str) -> Option<&'a str> {
    entry.get(name).and_then(Value::as_str)
}

/// One JWK as a verifying key, or `None` when it cannot be one here.
fn verifying_key(entry: &Value) -> Option<(String, VerifyingKey)> {
    let kid = text_member(entry, "kid").filter(|kid| !kid.is_empty() && kid.len() <= 256)?;
    if text_member(entry, "use").is_some_and(|usage| usage != "sig") {
        return None;
    }
    if let Some(ops) = entry.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return None;
        }
    }
    let (alg, key) = match text_member(entry, "kty")? {
        "RSA" => {
            let n = base64url(text_member(entry, "n")?)?;
            let e = base64url(text_member(entry, "e")?)?;
            let start = n.iter().position(|b| *b != 0)?;
            let n = &n[start..];
            let exponent_fine = !e.is_empty() && e.len() <= 8 && e.iter().any(|b| *b != 0);
            if !RSA_MODULUS_BYTES.contains(&n.len()) || !exponent_fine {
                return None;
            }
            (
                SigningAlg::Rs256,
                DecodingKey::from_rsa_raw_components(n, &e),
            )
        }
        "EC" if text_member(entry, "crv") == Some("P-256") => {
            let x = text_member(entry, "x")?;
            let y = text_member(entry, "y")?;
            if base64url(x)?.len() != 32 || base64url(y)?.len() != 32 {
                return None;
            }
            (
                SigningAlg::Es256,
                DecodingKey::from_ec_components(x, y).ok()?,
            )
        }
        _ => return None,
    };
    // A key that names an algorithm must name the one its type is pinned to.
    if text_member(entry, "alg").is_some_and(|named| named != alg.name()) {
        return None;
    }
    Some((kid.to_owned(), VerifyingKey { alg, key }))
}

/// What a token's header says, once it has passed the header rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    pub alg: SigningAlg,
    pub kid: String,
}

/// Checks the shape and header of `token` without verifying anything else: the caller learns
/// which key it names (to refresh a key set on an unknown `kid`).
pub fn read_header(token: &str) -> Result<TokenHeader, Rejection> {
    let (_, kid, alg) = jose::pinned(
        token,
        MAX_TOKEN_BYTES,
        |alg| SigningAlg::from_name(alg).is_some(),
        jose::Typ::Optional,
        |typ| typ.eq_ignore_ascii_case("JWT"),
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
    let alg = SigningAlg::from_name(&alg).ok_or(Rejection::AlgNotAllowed)?;
    Ok(TokenHeader { alg, kid })
}

/// What an ID token must say to be accepted for one sign-in.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The configured issuer, compared exactly.
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce this sign-in sent; compared in constant time.
    pub nonce: &'a str,
    /// Now, in seconds since the epoch, from the caller's clock.
    pub now: i64,
    /// Allowed clock difference in seconds; more than [`MAX_LEEWAY_SECONDS`] counts as that.
    pub leeway: i64,
}

/// The claims of an accepted ID token.
#[derive(Debug, Clone, PartialEq)]
pub struct IdClaims {
    pub subject: String,
    pub email: Option<String>,
    /// Only a JSON `true` counts.
    pub email_verified: bool,
    pub name: Option<String>,
    /// Every claim, for the role mapping.
    pub all: Map<String, Value>,
}

/// Verifies `token` against `keys` and `expected`: header rules, the signature with the key the
/// `kid` names (pinned to that key's algorithm), then `iss`, `aud`, `azp`, `exp`, `nbf`, `iat`,
/// `sub` and `nonce`.
pub fn verify_id_token(
    token: &str,
    keys: &KeySet,
    expected: &Expected<'_>,
) -> Result<IdClaims, Rejection> {
    let header = read_header(token)?;
    let key = keys.keys.get(&header.kid).ok_or(Rejection::UnknownKid)?;
    if key.alg != header.alg {
        return Err(Rejection::AlgKeyMismatch);
    }
    // jsonwebtoken checks the signature only: every claim is checked below against the
    // caller's clock, which jsonwebtoken cannot be given.
    let mut validation = Validation::new(key.alg.jwt());
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Rejection::AlgKeyMismatch,
            _ => Rejection::Malformed,
        })?
        .claims;
    check_claims(claims, expected)
}

fn check_claims(
    claims: Map<String, Value>,
    expected: &Expected<'_>,
) -> Result<IdClaims, Rejection> {
    let leeway = expected.leeway.clamp(0, MAX_LEEWAY_SECONDS);
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    if text("iss").ok_or(Rejection::MissingClaim)? != expected.issuer {
        return Err(Rejection::WrongIssuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|aud| aud.as_str().ok_or(Rejection::MissingClaim))
            .collect::<Result<_, _>>()?,
        _ => return Err(Rejection::MissingClaim),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(Rejection::WrongAudience);
    }
    // OIDC Core 3.1.3.7: with several audiences the authorized party must be named, and when
    // it is named it must be this client.
    match claims.get("azp") {
        None if audiences.len() > 1 => return Err(Rejection::WrongAuthorizedParty),
        None => {}
        Some(azp) if azp.as_str() == Some(expected.client_id) => {}
        Some(_) => return Err(Rejection::WrongAuthorizedParty),
    }
    let exp = time("exp").ok_or(Rejection::MissingClaim)?;
    let iat = time("iat").ok_or(Rejection::MissingClaim)?;
    if expected.now >= exp.saturating_add(leeway) {
        return Err(Rejection::Expired);
    }
    if iat > expected.now.saturating_add(leeway) {
        return Err(Rejection::IssuedInFuture);
    }
    match claims.get("nbf") {
        None => {}
        Some(nbf) => {
            let nbf = nbf.as_i64().ok_or(Rejection::MissingClaim)?;
            if nbf > expected.now.saturating_add(leeway) {
                return Err(Rejection::NotYetValid);
            }
        }
    }
    let subject = text("sub")
        .filter(|sub| !sub.is_empty() && sub.len() <= 255)
        .ok_or(Rejection::MissingClaim)?
        .to_owned();
    let nonce = text("nonce").ok_or(Rejection::WrongNonce)?;
    if !crate::constant_time_eq(nonce.as_bytes(), expected.nonce.as_bytes()) {
        return Err(Rejection::WrongNonce);
    }
    Ok(IdClaims {
        subject,
        email: text("email").map(str::to_owned),
        email_verified: claims.get("email_verified") == Some(&Value::Bool(true)),
        name: text("name").map(str::to_owned),
        all: claims,
    })
}

/// Signing keys and token builders for tests: the OIDC test provider and the attack corpus.
/// Keys are generated at run time; nothing secret is checked in.
#[cfg(any(test, feature = "test-support"))]
pub mod test_support {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    };
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    use serde_json::{Value, json};

    enum Pair {
        Rsa(RsaKeyPair),
        Ec(EcdsaKeyPair),
    }

    /// A signing key with its `kid`.
    pub struct TestKey {
        pub kid: String,
        pair: Pair,
    }

    impl std::fmt::Debug for TestKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "TestKey({}, {})", self.kid, self.alg())
        }
    }

    fn encode(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A JSON value as a base64url JWT part.
    pub fn part(value: &Value) -> String {
        encode(value.to_string().as_bytes())
    }

    impl TestKey {
        /// A fresh 2048-bit RSA key (RS256).
        pub fn rsa(kid: &str) -> Self {
            let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
            Self {
                kid: kid.to_owned(),
                pair: Pair::Rsa(pair),
            }
        }

        /// A fresh P-256 key (ES256).
        pub fn ec(kid: &str) -> Self {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC key");
            Self {
                kid: kid.to_owned(),
                pair: Pair::Ec(pair),
            }
        }

        /// The algorithm this key signs with.
        pub fn alg(&self) -> &'static str {
            match self.pair {
                Pair::Rsa(_) => "RS256",
                Pair::Ec(_) => "ES256",
            }
        }

        /// The public key as a JWK (with `kid`, `use` and `alg`).
        pub fn jwk(&self) -> Value {
            match &self.pair {
                Pair::Rsa(pair) => {
                    let public = pair.public_key();
                    json!({
                        "kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                        "n": encode(public.modulus().big_endian_without_leading_zero()),
                        "e": encode(public.exponent().big_endian_without_leading_zero()),
                    })
                }
                Pair::Ec(pair) => {
                    let point = pair.public_key().as_ref();
                    json!({
                        "kty": "EC", "kid": self.kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                        "x": encode(&point[1..33]), "y": encode(&point[33..65]),
                    })
                }
            }
        }

        /// The public key's bytes as published (the DER of the RSA public key, the EC point):
        /// what the classic HMAC-with-the-public-key forgery uses as its secret.
        pub fn public_key_bytes(&self) -> Vec<u8> {
            match &self.pair {
                Pair::Rsa(pair) => pair.public_key().as_ref().to_vec(),
                Pair::Ec(pair) => pair.public_key().as_ref().to_vec(),
            }
        }

        /// The raw signature over `message` with this key's algorithm.
        pub fn signature(&self, message: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match &self.pair {
                Pair::Rsa(pair) => {
                    let mut signature = vec![0; pair.public_modulus_len()];
                    pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                        .expect("RSA signature");
                    signature
                }
                Pair::Ec(pair) => pair
                    .sign(&rng, message)
                    .expect("EC signature")
                    .as_ref()
                    .to_vec(),
            }
        }

        /// `header.claims.signature`, signed by this key whatever the header says.
        pub fn sign(&self, header: &Value, claims: &Value) -> String {
            let message = format!("{}.{}", part(header), part(claims));
            let signature = self.signature(message.as_bytes());
            format!("{message}.{}", encode(&signature))
        }

        /// The usual header of this key: `alg`, `kid`, `typ: JWT`.
        pub fn header(&self) -> Value {
            json!({ "alg": self.alg(), "kid": self.kid, "typ": "JWT" })
        }
    }

    /// `header.claims.` with no signature (the `alg: none` form).
    pub fn unsigned(header: &Value, claims: &Value) -> String {
        format!("{}.{}.", part(header), part(claims))
    }

    /// `header.claims.signature` with HMAC-SHA256 under `secret`.
    pub fn hmac_signed(header: &Value, claims: &Value, secret: &[u8]) -> String {
        let message = format!("{}.{}", part(header), part(claims));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
        mac.update(message.as_bytes());
        format!("{message}.{}", encode(&mac.finalize().into_bytes()))
    }

    /// A JWKS document of `keys`' public halves.
    pub fn key_set(keys: &[&TestKey]) -> Value {
        json!({ "keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests;
