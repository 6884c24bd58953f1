//! The signed peer manifest: the list of a mesh's peers and their Ed25519 public keys, signed
//! once by an operator key so that instances can pin many peers' keys from one file.
//!
//! Shape: a compact JWS, header `{"alg":"EdDSA","typ":"hive-mesh-manifest+jwt","kid":…}` (the
//! [`ed25519_kid`] of the operator key), payload
//! `{"iss":"<who signed>","iat":<seconds>,"exp":<seconds, optional>,"peers":[{"origin":"https://b.example","publicKey":"<base64url>"}]}`.
//!
//! [`verify_manifest`] refuses, in this order: more than [`MAX_MANIFEST_BYTES`] (before any
//! decoding), anything but three base64url parts with a JSON header, `alg` none in any
//! spelling, the header members `crit`, `jku`, `x5u`, `jwk`, `x5c` (nothing is ever fetched),
//! any `alg` but `EdDSA`, a `typ` other than exactly [`MANIFEST_TYPE`], an empty or malformed
//! signature, a missing `kid` or one that is not the operator key's, a signature that does not
//! verify under the operator key — and only then reads the payload: unknown members, an empty
//! or over-long `iss`, `exp` not after `iat`, an expired manifest, an `iat` more than
//! [`MAX_FUTURE_IAT_SECONDS`] ahead of `now`, more than [`MAX_MANIFEST_PEERS`] peers, an
//! origin that is not `scheme://host[:port]`-shaped, an origin listed twice, a key that is not
//! 32 bytes of base64url, and one key listed for two origins (each key speaks for one origin).
//!
//! [`sign_manifest`] applies the same payload rules, so it never writes a manifest that
//! [`verify_manifest`] would refuse for its content.

use crate::federation::{Ed25519Seed, ed25519_kid, parse_public_key, public_key_text};
use crate::jose;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The `typ` of a peer manifest.
pub const MANIFEST_TYPE: &str = "hive-mesh-manifest+jwt";
/// Manifests longer than this are refused before anything is decoded.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Peers one manifest may list (as `MESH_FEDERATION_PEERS`).
pub const MAX_MANIFEST_PEERS: usize = 64;
/// How far in the future `iat` may be (clock difference between signer and reader).
pub const MAX_FUTURE_IAT_SECONDS: i64 = 300;
/// The longest `iss`, in characters.
const MAX_ISSUER_CHARS: usize = 255;
/// The longest origin, in bytes.
const MAX_ORIGIN_BYTES: usize = 255;

const EDDSA: &str = "EdDSA";

/// One peer of a manifest: its origin and the Ed25519 public key that speaks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPeer {
    pub origin: String,
    pub public_key: [u8; 32],
}

/// A peer manifest's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Free text naming the operator who signed it (`iss`).
    pub issuer: String,
    /// `iat`, seconds since the epoch.
    pub issued_at: i64,
    /// `exp`, seconds since the epoch; `None` for a manifest that does not expire.
    pub expires_at: Option<i64>,
    pub peers: Vec<ManifestPeer>,
}

/// Why a manifest was refused or could not be signed. Holds no key material; origins are
/// public and named so the operator can find the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is larger than 64 KiB")]
    Oversize,
    #[error("the manifest is not a compact JWS")]
    Malformed,
    #[error("alg none is never accepted")]
    AlgNone,
    #[error("the manifest's algorithm is not EdDSA")]
    AlgNotAllowed,
    #[error("the manifest's header carries a forbidden member (crit, jku, x5u, jwk or x5c)")]
    ForbiddenHeader,
    #[error("the manifest's typ is not hive-mesh-manifest+jwt")]
    WrongType,
    #[error("the manifest names no key")]
    MissingKid,
    #[error("the manifest was signed by another key than the operator key")]
    WrongKey,
    #[error("the manifest's signature does not verify under the operator key")]
    BadSignature,
    #[error("the manifest's payload is malformed: {0}")]
    BadPayload(String),
    #[error("the manifest's iss must be 1 to 255 characters without control characters")]
    BadIssuer,
    #[error("the manifest expires before it is issued")]
    ExpiresBeforeIssued,
    #[error("the manifest has expired")]
    Expired,
    #[error("the manifest was issued more than 300 seconds in the future")]
    IssuedInFuture,
    #[error("the manifest lists more than 64 peers")]
    TooManyPeers,
    #[error("{0:?} is not an origin (scheme://host[:port])")]
    BadOrigin(String),
    #[error("{0} is listed twice")]
    DuplicateOrigin(String),
    #[error("the key of {0} is not an Ed25519 public key (32 bytes, base64url)")]
    BadPublicKey(String),
    #[error("{0} has the key of another peer: a key speaks for one origin")]
    DuplicateKey(String),
    #[error("the manifest could not be signed")]
    Signing,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    iss: String,
    iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    peers: Vec<PayloadPeer>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PayloadPeer {
    origin: String,
    public_key: String,
}

/// Signs `manifest` with the operator's seed. Refuses a manifest [`verify_manifest`] would
/// refuse for its content (expiry against a clock aside).
pub fn sign_manifest(
    operator_seed: &Ed25519Seed,
    manifest: &Manifest,
) -> Result<String, ManifestError> {
    check_content(manifest)?;
    let payload = Payload {
        iss: manifest.issuer.clone(),
        iat: manifest.issued_at,
        exp: manifest.expires_at,
        peers: manifest
            .peers
            .iter()
            .map(|peer| PayloadPeer {
                origin: peer.origin.clone(),
                public_key: public_key_text(&peer.public_key),
            })
            .collect(),
    };
    let claims = serde_json::to_value(&payload).map_err(|_| ManifestError::Signing)?;
    let header = json!({ "alg": EDDSA, "typ": MANIFEST_TYPE, "kid": operator_seed.kid() });
    jose::encode(&header, &claims, |message| {
        operator_seed
            .sign(message)
            .map_err(|_| ManifestError::Signing)
    })
}

/// Verifies a manifest signed by `operator_key` and returns its content; `now` is seconds
/// since the epoch. See the module documentation for the order of the checks.
pub fn verify_manifest(
    text: &str,
    operator_key: &[u8; 32],
    now: i64,
) -> Result<Manifest, ManifestError> {
    let (compact, kid, _) = jose::pinned(
        text.trim(),
        MAX_MANIFEST_BYTES,
        |alg| alg == EDDSA,
        jose::Typ::Required,
        |typ| typ == MANIFEST_TYPE,
    )
    .map_err(|fault| match fault {
        jose::Fault::Oversize => ManifestError::Oversize,
        jose::Fault::Malformed => ManifestError::Malformed,
        jose::Fault::AlgNone => ManifestError::AlgNone,
        jose::Fault::ForbiddenHeader => ManifestError::ForbiddenHeader,
        jose::Fault::AlgNotAllowed => ManifestError::AlgNotAllowed,
        jose::Fault::WrongType => ManifestError::WrongType,
        jose::Fault::MissingKid => ManifestError::MissingKid,
    })?;
    if kid != ed25519_kid(operator_key) {
        return Err(ManifestError::WrongKey);
    }
    let signature = jose::base64url(compact.signature).ok_or(ManifestError::Malformed)?;
    if !jose::ed25519_verifies(operator_key, compact.signing_input.as_bytes(), &signature) {
        return Err(ManifestError::BadSignature);
    }
    // Believed from here on: the operator key signed these bytes.
    let bytes = jose::base64url(compact.claims).ok_or(ManifestError::Malformed)?;
    let payload: Payload =
        serde_json::from_slice(&bytes).map_err(|e| ManifestError::BadPayload(e.to_string()))?;
    if payload.peers.len() > MAX_MANIFEST_PEERS {
        return Err(ManifestError::TooManyPeers);
    }
    let mut peers = Vec::with_capacity(payload.peers.len());
    for peer in payload.peers {
        let public_key = parse_public_key(&peer.public_key)
            .map_err(|_| ManifestError::BadPublicKey(peer.origin.clone()))?;
        peers.push(ManifestPeer {
            origin: peer.origin,
            public_key,
        });
    }
    let manifest = Manifest {
        issuer: payload.iss,
        issued_at: payload.iat,
        expires_at: payload.exp,
        peers,
    };
    check_content(&manifest)?;
    if manifest.expires_at.is_some_and(|exp| now >= exp) {
        return Err(ManifestError::Expired);
    }
    if manifest.issued_at > now.saturating_add(MAX_FUTURE_IAT_SECONDS) {
        return Err(ManifestError::IssuedInFuture);
    }
    Ok(manifest)
}

/// The rules of a manifest's content that hold whatever the time.
fn check_content(manifest: &Manifest) -> Result<(), ManifestError> {
    let issuer_chars = manifest.issuer.chars().count();
    if !(1..=MAX_ISSUER_CHARS).contains(&issuer_chars)
        || manifest.issuer.chars().any(char::is_control)
    {
        return Err(ManifestError::BadIssuer);
    }
    if manifest
        .expires_at
        .is_some_and(|exp| exp <= manifest.issued_at)
    {
        return Err(ManifestError::ExpiresBeforeIssued);
    }
    if manifest.peers.len() > MAX_MANIFEST_PEERS {
        return Err(ManifestError::TooManyPeers);
    }
    for (index, peer) in manifest.peers.iter().enumerate() {
        if !is_origin_shaped(&peer.origin) {
            return Err(ManifestError::BadOrigin(peer.origin.clone()));
        }
        let earlier = &manifest.peers[..index];
        if earlier.iter().any(|other| other.origin == peer.origin) {
            return Err(ManifestError::DuplicateOrigin(peer.origin.clone()));
        }
        if earlier
            .iter()
            .any(|other| other.public_key == peer.public_key)
        {
            return Err(ManifestError::DuplicateKey(peer.origin.clone()));
        }
    }
    Ok(())
}

/// `http(s)://` and a non-empty authority of printable ASCII with no path (but `/`), query,
/// fragment, userinfo or whitespace. The reader normalises origins with its URL parser as it does
/// `MESH_FEDERATION_PEERS`; this keeps nonsense out of signed manifests.
fn is_origin_shaped(origin: &str) -> bool {
    let Some(authority) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    // `MESH_FEDERATION_PEERS` accepts the empty path written as `/` too.
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    origin.len() <= MAX_ORIGIN_BYTES
        && !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::Value;

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const DAY: i64 = 86_400;

    fn seed() -> Ed25519Seed {
        Ed25519Seed::generate().unwrap()
    }

    fn manifest(peers: usize) -> Manifest {
        Manifest {
            issuer: "ops@a.example".to_owned(),
            issued_at: NOW,
            expires_at: Some(NOW + 30 * DAY),
            peers: (0..peers)
                .map(|i| ManifestPeer {
                    origin: format!("https://p{i}.example"),
                    public_key: seed().public_key(),
                })
                .collect(),
        }
    }

    /// Signs `payload` under `header` with `operator`, whatever either says.
    fn forge(operator: &Ed25519Seed, header: &Value, payload: &Value) -> String {
        jose::encode(header, payload, |message| operator.sign(message)).unwrap()
    }

    fn header(operator: &Ed25519Seed) -> Value {
        json!({ "alg": EDDSA, "typ": MANIFEST_TYPE, "kid": operator.kid() })
    }

    fn payload(peer_key: &str) -> Value {
        json!({
            "iss": "ops", "iat": NOW, "exp": NOW + DAY,
            "peers": [{ "origin": "https://b.example", "publicKey": peer_key }],
        })
    }

    #[test]
    fn a_signed_manifest_verifies_and_round_trips() {
        let operator = seed();
        let original = manifest(3);
        let text = sign_manifest(&operator, &original).unwrap();
        let parts: Vec<&str> = text.split('.').collect();
        assert_eq!(parts.len(), 3);
        let head: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(head, header(&operator));
        let verified = verify_manifest(&format!("{text}\n"), &operator.public_key(), NOW).unwrap();
        assert_eq!(verified, original);
        // Without exp it never expires.
        let forever = Manifest {
            expires_at: None,
            ..manifest(1)
        };
        let text = sign_manifest(&operator, &forever).unwrap();
        let later = verify_manifest(&text, &operator.public_key(), NOW + 3650 * DAY).unwrap();
        assert_eq!(later, forever);
        // Sixty-four peers is the limit, inclusive.
        let text = sign_manifest(&operator, &manifest(64)).unwrap();
        assert_eq!(
            verify_manifest(&text, &operator.public_key(), NOW)
                .unwrap()
                .peers
                .len(),
            64
        );
    }

    #[test]
    fn a_tampered_payload_or_another_key_is_refused() {
        let operator = seed();
        let text = sign_manifest(&operator, &manifest(1)).unwrap();
        let parts: Vec<&str> = text.split('.').collect();
        // The attacker swaps in their own key for the peer and keeps the signature.
        let attacker = seed();
        let evil = payload(&attacker.public_key_text());
        let evil_part = URL_SAFE_NO_PAD.encode(evil.to_string());
        let tampered = format!("{}.{evil_part}.{}", parts[0], parts[2]);
        assert_eq!(
            verify_manifest(&tampered, &operator.public_key(), NOW),
            Err(ManifestError::BadSignature)
        );
        // A flipped signature byte.
        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[0] ^= 1;
        let flipped = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode(signature)
        );
        assert_eq!(
            verify_manifest(&flipped, &operator.public_key(), NOW),
            Err(ManifestError::BadSignature)
        );
        // Another operator key: its kid does not match…
        assert_eq!(
            verify_manifest(&text, &attacker.public_key(), NOW),
            Err(ManifestError::WrongKey)
        );
        // …and a manifest signed by the attacker under the operator's kid fails the signature.
        let forged = forge(&attacker, &header(&operator), &evil);
        assert_eq!(
            verify_manifest(&forged, &operator.public_key(), NOW),
            Err(ManifestError::BadSignature)
        );
        // A stripped signature.
        let stripped = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(
            verify_manifest(&stripped, &operator.public_key(), NOW),
            Err(ManifestError::Malformed)
        );
    }

    #[test]
    fn the_header_rules_hold() {
        let operator = seed();
        let key = operator.public_key();
        let body = payload(&seed().public_key_text());
        let kid = operator.kid();
        let cases = [
            (
                json!({"alg": "none", "typ": MANIFEST_TYPE, "kid": kid}),
                ManifestError::AlgNone,
            ),
            (
                json!({"alg": " NoNe ", "typ": MANIFEST_TYPE, "kid": kid}),
                ManifestError::AlgNone,
            ),
            (
                json!({"alg": "HS256", "typ": MANIFEST_TYPE, "kid": kid}),
                ManifestError::AlgNotAllowed,
            ),
            (
                json!({"alg": "eddsa", "typ": MANIFEST_TYPE, "kid": kid}),
                ManifestError::AlgNotAllowed,
            ),
            (
                json!({"alg": "ES256", "typ": MANIFEST_TYPE, "kid": kid}),
                ManifestError::AlgNotAllowed,
            ),
            (
                json!({"alg": EDDSA, "typ": "hive-federation+jwt", "kid": kid}),
                ManifestError::WrongType,
            ),
            (
                json!({"alg": EDDSA, "typ": "JWT", "kid": kid}),
                ManifestError::WrongType,
            ),
            (
                json!({"alg": EDDSA, "typ": "HIVE-MESH-MANIFEST+JWT", "kid": kid}),
                ManifestError::WrongType,
            ),
            (json!({"alg": EDDSA, "kid": kid}), ManifestError::WrongType),
            (
                json!({"alg": EDDSA, "typ": MANIFEST_TYPE}),
                ManifestError::MissingKid,
            ),
            (
                json!({"alg": EDDSA, "typ": MANIFEST_TYPE, "kid": ""}),
                ManifestError::MissingKid,
            ),
            (
                json!({"alg": EDDSA, "typ": MANIFEST_TYPE, "kid": "ed25519-0000000000000000"}),
                ManifestError::WrongKey,
            ),
            (
                json!({"typ": MANIFEST_TYPE, "kid": kid}),
                ManifestError::Malformed,
            ),
        ];
        for (head, expected) in cases {
            let text = forge(&operator, &head, &body);
            assert_eq!(verify_manifest(&text, &key, NOW), Err(expected), "{head}");
        }
        for member in jose::FORBIDDEN_HEADERS {
            let mut head = header(&operator);
            head[member] = json!("https://attacker.example/keys");
            let text = forge(&operator, &head, &body);
            assert_eq!(
                verify_manifest(&text, &key, NOW),
                Err(ManifestError::ForbiddenHeader),
                "{member}"
            );
        }
        // alg none with no signature at all.
        let none = json!({"alg": "none", "typ": MANIFEST_TYPE, "kid": kid});
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(none.to_string()),
            URL_SAFE_NO_PAD.encode(body.to_string())
        );
        assert_eq!(
            verify_manifest(&unsigned, &key, NOW),
            Err(ManifestError::AlgNone)
        );
        let big = format!("{}.{}.AA", "A".repeat(MAX_MANIFEST_BYTES), "A");
        assert_eq!(
            verify_manifest(&big, &key, NOW),
            Err(ManifestError::Oversize)
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
            assert!(verify_manifest(junk, &key, NOW).is_err(), "{junk}");
        }
    }

    #[test]
    fn time_rules_hold() {
        let operator = seed();
        let key = operator.public_key();
        let text = sign_manifest(&operator, &manifest(1)).unwrap();
        let exp = NOW + 30 * DAY;
        assert!(verify_manifest(&text, &key, exp - 1).is_ok());
        assert_eq!(
            verify_manifest(&text, &key, exp),
            Err(ManifestError::Expired)
        );
        assert_eq!(
            verify_manifest(&text, &key, exp + 1),
            Err(ManifestError::Expired)
        );
        // Issued ahead of our clock: up to 300 s is clock difference, beyond it is refused.
        assert!(verify_manifest(&text, &key, NOW - 300).is_ok());
        assert_eq!(
            verify_manifest(&text, &key, NOW - 301),
            Err(ManifestError::IssuedInFuture)
        );
        let backwards = Manifest {
            expires_at: Some(NOW),
            ..manifest(1)
        };
        assert_eq!(
            sign_manifest(&operator, &backwards),
            Err(ManifestError::ExpiresBeforeIssued)
        );
        let mut body = payload(&seed().public_key_text());
        body["exp"] = json!(NOW - 1);
        let text = forge(&operator, &header(&operator), &body);
        assert_eq!(
            verify_manifest(&text, &key, NOW),
            Err(ManifestError::ExpiresBeforeIssued)
        );
    }

    #[test]
    fn the_content_rules_hold_for_signer_and_verifier() {
        let operator = seed();
        let key = operator.public_key();
        assert_eq!(
            sign_manifest(&operator, &manifest(65)),
            Err(ManifestError::TooManyPeers)
        );
        let peer_key = seed().public_key();
        let mut twice = manifest(0);
        for origin in ["https://b.example", "https://b.example"] {
            twice.peers.push(ManifestPeer {
                origin: origin.to_owned(),
                public_key: seed().public_key(),
            });
        }
        assert_eq!(
            sign_manifest(&operator, &twice),
            Err(ManifestError::DuplicateOrigin(
                "https://b.example".to_owned()
            ))
        );
        let mut shared = manifest(0);
        for origin in ["https://b.example", "https://c.example"] {
            shared.peers.push(ManifestPeer {
                origin: origin.to_owned(),
                public_key: peer_key,
            });
        }
        assert_eq!(
            sign_manifest(&operator, &shared),
            Err(ManifestError::DuplicateKey("https://c.example".to_owned()))
        );
        for origin in [
            "b.example",
            "ftp://b.example",
            "https://",
            "https://b.example/path",
            "https://b.example//",
            "https://u@b.example",
            "https://b.example?x",
            "https://b .example",
        ] {
            let mut bad = manifest(0);
            bad.peers.push(ManifestPeer {
                origin: origin.to_owned(),
                public_key: peer_key,
            });
            assert_eq!(
                sign_manifest(&operator, &bad),
                Err(ManifestError::BadOrigin(origin.to_owned())),
                "{origin}"
            );
        }
        for issuer in ["", "line\nbreak", &"x".repeat(256)] {
            let bad = Manifest {
                issuer: issuer.to_owned(),
                ..manifest(1)
            };
            assert_eq!(
                sign_manifest(&operator, &bad),
                Err(ManifestError::BadIssuer)
            );
        }
        // The verifier applies them to what a careless (or other) signer wrote.
        let mut body = payload("AAAA");
        let text = forge(&operator, &header(&operator), &body);
        assert_eq!(
            verify_manifest(&text, &key, NOW),
            Err(ManifestError::BadPublicKey("https://b.example".to_owned()))
        );
        body = payload(&seed().public_key_text());
        body["nbf"] = json!(NOW);
        let text = forge(&operator, &header(&operator), &body);
        assert!(matches!(
            verify_manifest(&text, &key, NOW),
            Err(ManifestError::BadPayload(_))
        ));
        body = payload(&seed().public_key_text());
        let entry = body["peers"][0].clone();
        body["peers"] = Value::Array(vec![entry; 65]);
        let text = forge(&operator, &header(&operator), &body);
        assert_eq!(
            verify_manifest(&text, &key, NOW),
            Err(ManifestError::TooManyPeers)
        );
    }
}
