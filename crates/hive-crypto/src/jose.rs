//! The parts of reading a compact JWS that every verifier here shares: the size cap, the
//! three-part shape, the header as a JSON object, `alg: none` in any spelling and the header
//! members that are never accepted. Each verifier maps these outcomes to its own rejections.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// `base64url(header).base64url(claims).base64url(signature)`, the signature made by `sign`
/// over the first two parts.
pub(crate) fn encode<E>(
    header: &Value,
    claims: &Value,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<String, E> {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(message.as_bytes())?;
    Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Whether `signature` is an Ed25519 signature of `message` under `public_key`.
pub(crate) fn ed25519_verifies(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// Header members that would name or carry a key, or change how the token is read.
pub(crate) const FORBIDDEN_HEADERS: [&str; 5] = ["crit", "jku", "x5u", "jwk", "x5c"];

/// Why a token could not even be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Oversize,
    Malformed,
}

/// A compact JWS split into its parts, its header parsed; nothing verified yet.
pub(crate) struct Compact<'a> {
    pub header: Map<String, Value>,
    /// `header.claims`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub claims: &'a str,
    /// Not checked yet: an empty one must be refused after the `alg` rules.
    pub signature: &'a str,
}

pub(crate) fn base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// A non-empty run of the unpadded base64url alphabet.
pub(crate) fn is_base64url_part(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Refuses tokens over `max_bytes` before decoding anything, then anything but three parts
/// with a base64url JSON object as header.
pub(crate) fn split(token: &str, max_bytes: usize) -> Result<Compact<'_>, Shape> {
    if token.len() > max_bytes {
        return Err(Shape::Oversize);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Shape::Malformed);
    };
    if !is_base64url_part(header) || !is_base64url_part(claims) {
        return Err(Shape::Malformed);
    }
    let header_map: Map<String, Value> = base64url(header)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Shape::Malformed)?;
    Ok(Compact {
        header: header_map,
        // Both parts are ASCII (checked above), so this is a character boundary.
        signing_input: &token[..header.len() + 1 + claims.len()],
        claims,
        signature,
    })
}

/// `none`, whatever its case or surrounding whitespace.
pub(crate) fn alg_is_none(alg: &str) -> bool {
    alg.trim().eq_ignore_ascii_case("none")
}

pub(crate) fn has_forbidden_member(header: &Map<String, Value>) -> bool {
    FORBIDDEN_HEADERS
        .iter()
        .any(|name| header.contains_key(*name))
}

/// What [`pinned`] refused, in the order it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Oversize,
    Malformed,
    AlgNone,
    ForbiddenHeader,
    AlgNotAllowed,
    WrongType,
    MissingKid,
}

/// Whether a token must name its `typ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Typ {
    /// Absent or not accepted: refused.
    Required,
    /// Absent is fine; present, it must be accepted.
    Optional,
}

/// The header rules of a verifier whose algorithms are fixed by its keys: the size and shape
/// ([`split`]), an `alg`, not `none` in any spelling, no forbidden member, an `alg` that
/// `alg_ok` accepts (compared exactly by the callers), a `typ` that `typ_ok` accepts (absent
/// only when [`Typ::Optional`]), a base64url signature part and a non-empty `kid`, which is
/// returned with the split token and the `alg`. Nothing is verified yet.
pub(crate) fn pinned<'a>(
    token: &'a str,
    max_bytes: usize,
    alg_ok: impl Fn(&str) -> bool,
    typ: Typ,
    typ_ok: impl Fn(&str) -> bool,
) -> Result<(Compact<'a>, String, String), Fault> {
    let compact = split(token, max_bytes).map_err(|shape| match shape {
        Shape::Oversize => Fault::Oversize,
        Shape::Malformed => Fault::Malformed,
    })?;
    let header = &compact.header;
    let named = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(Fault::Malformed)?
        .to_owned();
    if alg_is_none(&named) {
        return Err(Fault::AlgNone);
    }
    if has_forbidden_member(header) {
        return Err(Fault::ForbiddenHeader);
    }
    if !alg_ok(&named) {
        return Err(Fault::AlgNotAllowed);
    }
    let typ_fine = match (header.get("typ"), typ) {
        (None, Typ::Optional) => true,
        (None, Typ::Required) => false,
        (Some(value), _) => value.as_str().is_some_and(&typ_ok),
    };
    if !typ_fine {
        return Err(Fault::WrongType);
    }
    // Only now: an unsigned token (alg none, empty signature) was refused above for its alg.
    if !is_base64url_part(compact.signature) {
        return Err(Fault::Malformed);
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .filter(|kid| !kid.is_empty())
        .ok_or(Fault::MissingKid)?
        .to_owned();
    Ok((compact, kid, named))
}
