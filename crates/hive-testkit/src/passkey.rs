//! A software passkey authenticator: the test double of the device only, at the protocol
//! boundary. It reads the options a relying party sends (`PublicKeyCredentialCreationOptions`
//! and `PublicKeyCredentialRequestOptions` in their JSON form) and answers as a browser with a
//! platform authenticator would: a real CBOR attestation object and authenticator data, a
//! real `clientDataJSON`, and real ES256 signatures from its own P-256 keys. The server under
//! test verifies all of it with its production code.
//!
//! [`Tweaks`] make it misbehave in the ways an attacker or a broken device would: another
//! origin or RP ID, no user verification, a tampered signature, a counter that goes back.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// User present.
const FLAG_UP: u8 = 0x01;
/// User verified.
const FLAG_UV: u8 = 0x04;
/// Backup eligible.
const FLAG_BE: u8 = 0x08;
/// Backed up.
const FLAG_BS: u8 = 0x10;
/// Attested credential data included.
const FLAG_AT: u8 = 0x40;

/// COSE: EC2 key type, ES256, curve P-256.
const COSE_KTY_EC2: i64 = 2;
const COSE_ALG_ES256: i64 = -7;
const COSE_CRV_P256: i64 = 1;

/// How the authenticator attests a new credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attestation {
    /// `fmt: "none"`, what browsers send for passkeys by default.
    None,
    /// `fmt: "packed"` self attestation: signed with the new credential's own key.
    PackedSelf,
}

/// Deviations from a well-behaved authenticator and browser, for one ceremony.
#[derive(Debug, Clone, Default)]
pub struct Tweaks {
    /// `clientDataJSON.origin` (default: the authenticator's origin).
    pub origin: Option<String>,
    /// The RP ID whose hash goes into the authenticator data (default: the one asked for).
    pub rp_id: Option<String>,
    /// `clientDataJSON.challenge` (default: the one asked for).
    pub challenge: Option<String>,
    /// Leaves the user-verified flag off (a touch without PIN or biometric).
    pub skip_user_verification: bool,
    /// Flips a bit of the signature.
    pub tamper_signature: bool,
    /// The signature counter to report instead of the next one.
    pub sign_count: Option<u32>,
    /// Which of the authenticator's credentials answers (default: the first that fits).
    pub credential: Option<usize>,
    /// `userHandle` to send instead of the credential's own.
    pub user_handle: Option<Vec<u8>>,
}

/// One credential the authenticator holds.
pub struct SoftCredential {
    pub id: Vec<u8>,
    pub rp_id: String,
    pub user_handle: Vec<u8>,
    /// The last counter value reported.
    pub sign_count: u32,
    key: EcdsaKeyPair,
}

impl std::fmt::Debug for SoftCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftCredential")
            .field("id", &URL_SAFE_NO_PAD.encode(&self.id))
            .field("rp_id", &self.rp_id)
            .field("sign_count", &self.sign_count)
            .finish_non_exhaustive()
    }
}

impl SoftCredential {
    /// The credential id as the relying party sees it (base64url).
    pub fn id_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.id)
    }
}

/// A platform authenticator in a browser at `origin`.
#[derive(Debug)]
pub struct SoftAuthenticator {
    origin: String,
    attestation: Attestation,
    /// Whether its credentials sync (backup eligible and backed up), as platform passkeys do.
    synced: bool,
    /// Reports a signature counter (false: always 0, as many synced passkeys do).
    counts: bool,
    pub credentials: Vec<SoftCredential>,
}

impl SoftAuthenticator {
    /// An authenticator whose browser runs at `origin` (`scheme://host[:port]`): counting,
    /// not synced, attesting with `none`.
    pub fn new(origin: &str) -> Self {
        Self {
            origin: origin.trim_end_matches('/').to_owned(),
            attestation: Attestation::None,
            synced: false,
            counts: true,
            credentials: Vec::new(),
        }
    }

    pub fn with_attestation(mut self, attestation: Attestation) -> Self {
        self.attestation = attestation;
        self
    }

    /// Synced credentials (backup eligible and backed up) without a counter.
    pub fn synced(mut self) -> Self {
        self.synced = true;
        self.counts = false;
        self
    }

    /// Answers `navigator.credentials.create({ publicKey })`: a new credential for the RP and
    /// user named in `public_key`, as the JSON a browser sends back
    /// (`RegistrationResponseJSON`). `Err` when one of the excluded credentials is here.
    pub fn register(&mut self, public_key: &Value) -> Result<Value, String> {
        self.register_with(public_key, &Tweaks::default())
    }

    pub fn register_with(&mut self, public_key: &Value, tweaks: &Tweaks) -> Result<Value, String> {
        let rp_id = text(public_key, &["rp", "id"])?;
        let excluded = descriptor_ids(public_key, "excludeCredentials")?;
        if self
            .credentials
            .iter()
            .any(|c| c.rp_id == rp_id && excluded.contains(&c.id))
        {
            return Err("a credential of this authenticator is excluded".into());
        }
        let accepts_es256 = public_key["pubKeyCredParams"]
            .as_array()
            .is_some_and(|params| params.iter().any(|p| p["alg"] == COSE_ALG_ES256));
        if !accepts_es256 {
            return Err("the relying party does not accept ES256".into());
        }
        let user_handle = bytes(public_key, &["user", "id"])?;
        let challenge = text(public_key, &["challenge"])?;
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| "key generation failed".to_owned())?;
        let mut id = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| "no randomness".to_owned())?;
        let client_data = self.client_data("webauthn.create", &challenge, tweaks);
        let sign_count = tweaks.sign_count.unwrap_or(0);
        let mut auth_data = authenticator_data(
            tweaks.rp_id.as_deref().unwrap_or(&rp_id),
            FLAG_AT | self.flags(tweaks),
            sign_count,
        );
        // Attested credential data: AAGUID (zero: no attestation), id length, id, COSE key.
        auth_data.extend_from_slice(&[0u8; 16]);
        let id_len = u16::try_from(id.len()).map_err(|_| "credential id too long".to_owned())?;
        auth_data.extend_from_slice(&id_len.to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key(&key)?);
        let attestation_statement = match self.attestation {
            Attestation::None => Cbor::Map(Vec::new()),
            Attestation::PackedSelf => {
                let signature = sign(&key, &auth_data, &client_data, tweaks.tamper_signature)?;
                Cbor::Map(vec![
                    (Cbor::Text("alg".into()), Cbor::Int(COSE_ALG_ES256)),
                    (Cbor::Text("sig".into()), Cbor::Bytes(signature)),
                ])
            }
        };
        let format = match self.attestation {
            Attestation::None => "none",
            Attestation::PackedSelf => "packed",
        };
        let attestation_object = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text(format.into())),
            (Cbor::Text("attStmt".into()), attestation_statement),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ])
        .encode();
        let id_b64 = URL_SAFE_NO_PAD.encode(&id);
        self.credentials.push(SoftCredential {
            id,
            rp_id,
            user_handle,
            sign_count,
            key,
        });
        Ok(json!({
            "id": id_b64,
            "rawId": id_b64,
            "type": "public-key",
            "response": {
                "attestationObject": URL_SAFE_NO_PAD.encode(attestation_object),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data),
                "transports": ["internal"],
            },
            "extensions": {},
        }))
    }

    /// Answers `navigator.credentials.get({ publicKey })` as `AuthenticationResponseJSON`:
    /// with one of the allowed credentials, or, when none is listed (a discoverable-credential
    /// login), with any credential of the RP. `Err` when it holds no fitting credential.
    pub fn assert(&mut self, public_key: &Value) -> Result<Value, String> {
        self.assert_with(public_key, &Tweaks::default())
    }

    pub fn assert_with(&mut self, public_key: &Value, tweaks: &Tweaks) -> Result<Value, String> {
        let rp_id = text(public_key, &["rpId"])?;
        let allowed = descriptor_ids(public_key, "allowCredentials")?;
        let index = match tweaks.credential {
            Some(index) => index,
            None => self
                .credentials
                .iter()
                .position(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))
                .ok_or_else(|| "no credential for this relying party".to_owned())?,
        };
        let challenge = text(public_key, &["challenge"])?;
        let client_data = self.client_data("webauthn.get", &challenge, tweaks);
        let flags = self.flags(tweaks);
        let counts = self.counts;
        let credential = self
            .credentials
            .get_mut(index)
            .ok_or_else(|| "no such credential".to_owned())?;
        let sign_count = match tweaks.sign_count {
            Some(count) => count,
            None if counts => credential.sign_count + 1,
            None => 0,
        };
        credential.sign_count = sign_count;
        let rp_id = tweaks.rp_id.as_deref().unwrap_or(&credential.rp_id);
        let auth_data = authenticator_data(rp_id, flags, sign_count);
        let signature = sign(
            &credential.key,
            &auth_data,
            &client_data,
            tweaks.tamper_signature,
        )?;
        let id_b64 = URL_SAFE_NO_PAD.encode(&credential.id);
        let user_handle = tweaks
            .user_handle
            .as_deref()
            .unwrap_or(&credential.user_handle);
        Ok(json!({
            "id": id_b64,
            "rawId": id_b64,
            "type": "public-key",
            "response": {
                "authenticatorData": URL_SAFE_NO_PAD.encode(auth_data),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data),
                "signature": URL_SAFE_NO_PAD.encode(signature),
                "userHandle": URL_SAFE_NO_PAD.encode(user_handle),
            },
            "extensions": {},
        }))
    }

    fn flags(&self, tweaks: &Tweaks) -> u8 {
        let mut flags = FLAG_UP;
        if !tweaks.skip_user_verification {
            flags |= FLAG_UV;
        }
        if self.synced {
            flags |= FLAG_BE | FLAG_BS;
        }
        flags
    }

    fn client_data(&self, kind: &str, challenge: &str, tweaks: &Tweaks) -> Vec<u8> {
        let origin = tweaks.origin.as_deref().unwrap_or(&self.origin);
        let challenge = tweaks.challenge.as_deref().unwrap_or(challenge);
        json!({
            "type": kind,
            "challenge": challenge,
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }
}

/// `rpIdHash || flags || signCount`, the part every authenticator data starts with.
fn authenticator_data(rp_id: &str, flags: u8, sign_count: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity(37);
    data.extend_from_slice(&Sha256::digest(rp_id));
    data.push(flags);
    data.extend_from_slice(&sign_count.to_be_bytes());
    data
}

/// ES256 over `authenticatorData || SHA-256(clientDataJSON)`, DER-encoded as WebAuthn wants.
fn sign(
    key: &EcdsaKeyPair,
    auth_data: &[u8],
    client_data: &[u8],
    tamper: bool,
) -> Result<Vec<u8>, String> {
    let mut message = auth_data.to_vec();
    message.extend_from_slice(&Sha256::digest(client_data));
    let signature = key
        .sign(&SystemRandom::new(), &message)
        .map_err(|_| "signing failed".to_owned())?;
    let mut signature = signature.as_ref().to_vec();
    if tamper {
        // The last byte is inside `s`: still valid DER, no longer a valid signature.
        if let Some(last) = signature.last_mut() {
            *last ^= 0x01;
        }
    }
    Ok(signature)
}

/// The credential public key as a COSE_Key (EC2, ES256, P-256).
fn cose_key(key: &EcdsaKeyPair) -> Result<Vec<u8>, String> {
    // Uncompressed SEC1 point: 0x04 || x || y.
    let point = key.public_key().as_ref();
    if point.len() != 65 || point[0] != 0x04 {
        return Err("unexpected public key encoding".into());
    }
    Ok(Cbor::Map(vec![
        (Cbor::Int(1), Cbor::Int(COSE_KTY_EC2)),
        (Cbor::Int(3), Cbor::Int(COSE_ALG_ES256)),
        (Cbor::Int(-1), Cbor::Int(COSE_CRV_P256)),
        (Cbor::Int(-2), Cbor::Bytes(point[1..33].to_vec())),
        (Cbor::Int(-3), Cbor::Bytes(point[33..].to_vec())),
    ])
    .encode())
}

fn text(value: &Value, path: &[&str]) -> Result<String, String> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("the options have no {}", path.join(".")))
}

fn bytes(value: &Value, path: &[&str]) -> Result<Vec<u8>, String> {
    decode(&text(value, path)?)
}

fn decode(b64: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map_err(|_| format!("not base64url: {b64}"))
}

/// The ids of a list of credential descriptors (`excludeCredentials`, `allowCredentials`).
fn descriptor_ids(public_key: &Value, field: &str) -> Result<Vec<Vec<u8>>, String> {
    match public_key.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|item| bytes(item, &["id"])).collect(),
        Some(_) => Err(format!("{field} is not a list")),
    }
}

/// The few CBOR items WebAuthn needs (RFC 8949): integers, byte and text strings, maps.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Int(n) if *n >= 0 => head(out, 0, n.unsigned_abs()),
            Self::Int(n) => head(out, 1, n.unsigned_abs() - 1),
            Self::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Self::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Self::Map(entries) => {
                head(out, 5, entries.len() as u64);
                for (key, value) in entries {
                    key.write(out);
                    value.write(out);
                }
            }
        }
    }
}

/// A CBOR item head: major type and argument, in the shortest form.
fn head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    match argument {
        0..=23 => out.push(major | argument as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, argument as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(argument as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(argument as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webauthn_rs::prelude::{
        PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
        WebauthnError,
    };

    const ORIGIN: &str = "http://localhost:8080";

    fn relying_party() -> Webauthn {
        let origin = Url::parse(ORIGIN).unwrap();
        WebauthnBuilder::new("localhost", &origin)
            .unwrap()
            .build()
            .unwrap()
    }

    /// The `publicKey` member of the options a verifier made.
    macro_rules! public_key {
        ($options:expr) => {
            serde_json::to_value(&$options).unwrap()["publicKey"].clone()
        };
    }

    /// Registers a passkey with `authenticator` and answers it as the verifier stores it.
    fn registered(
        webauthn: &Webauthn,
        authenticator: &mut SoftAuthenticator,
        user: Uuid,
    ) -> webauthn_rs::prelude::Passkey {
        let (options, state) = webauthn
            .start_passkey_registration(user, "alice", "Alice", None)
            .unwrap();
        let answer = authenticator.register(&public_key!(options)).unwrap();
        let answer: RegisterPublicKeyCredential = serde_json::from_value(answer).unwrap();
        webauthn
            .finish_passkey_registration(&answer, &state)
            .unwrap()
    }

    fn login(
        webauthn: &Webauthn,
        authenticator: &mut SoftAuthenticator,
        passkey: &webauthn_rs::prelude::Passkey,
        tweaks: &Tweaks,
    ) -> Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError> {
        let (options, state) = webauthn.start_discoverable_authentication().unwrap();
        let answer = authenticator
            .assert_with(&public_key!(options), tweaks)
            .unwrap();
        let answer: PublicKeyCredential = serde_json::from_value(answer).unwrap();
        webauthn.finish_discoverable_authentication_v2(&answer, state, passkey)
    }

    #[test]
    fn a_real_verifier_accepts_what_it_makes() {
        let webauthn = relying_party();
        for attestation in [Attestation::None, Attestation::PackedSelf] {
            let mut authenticator = SoftAuthenticator::new(ORIGIN).with_attestation(attestation);
            let user = Uuid::new_v4();
            let mut passkey = registered(&webauthn, &mut authenticator, user);
            assert_eq!(
                passkey.cred_id().as_slice(),
                authenticator.credentials[0].id
            );

            // A discoverable login names the user and counts up.
            let (options, state) = webauthn.start_discoverable_authentication().unwrap();
            let answer = authenticator.assert(&public_key!(options)).unwrap();
            let answer: PublicKeyCredential = serde_json::from_value(answer).unwrap();
            let (named, credential_id) = webauthn
                .identify_discoverable_authentication(&answer)
                .unwrap();
            assert_eq!(named, user);
            assert_eq!(credential_id, passkey.cred_id().as_slice());
            let result = webauthn
                .finish_discoverable_authentication_v2(&answer, state, &passkey)
                .unwrap();
            assert!(result.user_verified());
            assert_eq!(result.counter(), 1);
            passkey.update_credential(&result);

            // An assertion for a known user's credentials.
            let (options, state) = webauthn
                .start_passkey_authentication(std::slice::from_ref(&passkey))
                .unwrap();
            let answer = authenticator.assert(&public_key!(options)).unwrap();
            let answer: PublicKeyCredential = serde_json::from_value(answer).unwrap();
            let result = webauthn
                .finish_passkey_authentication(&answer, &state)
                .unwrap();
            assert_eq!(result.counter(), 2);
        }
    }

    #[test]
    fn each_tweak_is_refused_by_a_real_verifier() {
        let webauthn = relying_party();
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        let passkey = registered(&webauthn, &mut authenticator, Uuid::new_v4());
        let cases = [
            (
                Tweaks {
                    origin: Some("http://evil.localhost:8080".into()),
                    ..Tweaks::default()
                },
                WebauthnError::InvalidRPOrigin,
            ),
            (
                Tweaks {
                    rp_id: Some("evil.example".into()),
                    ..Tweaks::default()
                },
                WebauthnError::InvalidRPIDHash,
            ),
            (
                Tweaks {
                    challenge: Some(URL_SAFE_NO_PAD.encode([7u8; 32])),
                    ..Tweaks::default()
                },
                WebauthnError::MismatchedChallenge,
            ),
            (
                Tweaks {
                    skip_user_verification: true,
                    ..Tweaks::default()
                },
                WebauthnError::UserNotVerified,
            ),
            (
                Tweaks {
                    tamper_signature: true,
                    ..Tweaks::default()
                },
                WebauthnError::AuthenticationFailure,
            ),
        ];
        for (tweaks, expected) in cases {
            let refused = login(&webauthn, &mut authenticator, &passkey, &tweaks).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&refused),
                std::mem::discriminant(&expected),
                "{tweaks:?}: {refused:?}"
            );
        }
        // The counter must move forward.
        login(&webauthn, &mut authenticator, &passkey, &Tweaks::default()).unwrap();
    }

    #[test]
    fn excluded_credentials_are_not_made_again() {
        let webauthn = relying_party();
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        let user = Uuid::new_v4();
        let passkey = registered(&webauthn, &mut authenticator, user);
        let (options, _) = webauthn
            .start_passkey_registration(
                user,
                "alice",
                "Alice",
                Some(vec![passkey.cred_id().clone()]),
            )
            .unwrap();
        assert!(authenticator.register(&public_key!(options)).is_err());
    }

    #[test]
    fn cbor_heads_use_the_shortest_form() {
        assert_eq!(Cbor::Int(0).encode(), [0x00]);
        assert_eq!(Cbor::Int(23).encode(), [0x17]);
        assert_eq!(Cbor::Int(24).encode(), [0x18, 0x18]);
        assert_eq!(Cbor::Int(1000).encode(), [0x19, 0x03, 0xe8]);
        assert_eq!(Cbor::Int(-1).encode(), [0x20]);
        assert_eq!(Cbor::Int(-7).encode(), [0x26]);
        assert_eq!(Cbor::Int(-1000).encode(), [0x39, 0x03, 0xe7]);
        assert_eq!(Cbor::Text("fmt".into()).encode(), b"\x63fmt");
        assert_eq!(Cbor::Bytes(vec![1, 2]).encode(), [0x42, 1, 2]);
        assert_eq!(
            Cbor::Map(vec![(Cbor::Int(1), Cbor::Int(2))]).encode(),
            [0xa1, 0x01, 0x02]
        );
    }
}
