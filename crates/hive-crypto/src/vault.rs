//! The vault's cryptography: the master key, purpose keys derived from it, and a keyring of
//! data keys that seal values with AES-256-GCM.
//!
//! - The master key (`ENCRYPTION_KEY`) never encrypts data itself. HKDF-SHA256 derives one key
//!   per [`Purpose`], so no key serves two purposes.
//! - Data keys are random 256-bit keys with a numeric id. They are stored wrapped (sealed) under
//!   the vault purpose key, so rotating the master key means re-wrapping keys, not data; and a
//!   wrong master key shows at the first unwrap, at start.
//! - Every sealed value carries its key id and a fresh random 96-bit nonce. The associated data
//!   binds it to (table, row id, key id): a ciphertext copied to another row, or relabelled with
//!   another key id, does not open.
//!
//! Keys and plaintexts are zeroized on drop and never shown by `Debug`.

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{Aes256Gcm, AesGcm, Nonce};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
/// GCM with random 96-bit nonces: NIST SP 800-38D caps one key at 2^32 encryptions.
pub const MAX_ENCRYPTIONS_PER_KEY: u64 = 1 << 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("ENCRYPTION_KEY must be 64 hexadecimal characters (32 bytes)")]
    BadMasterKey,
    /// A stored data key does not unwrap: the master key is not the one it was wrapped with.
    #[error(
        "ENCRYPTION_KEY does not match the key this database was encrypted with (data key {0} does not unwrap); every replica must use the same ENCRYPTION_KEY"
    )]
    WrongMasterKey(u32),
    #[error("no data key {0} in the keyring")]
    UnknownKey(u32),
    #[error("the keyring has no active key")]
    NoActiveKey,
    #[error("a subkey for {0} was given where the vault key is needed")]
    WrongPurpose(&'static str),
    /// Tampered, moved to another row, or sealed under another key.
    #[error("the value does not decrypt in this place")]
    Undecryptable,
    #[error("malformed sealed value")]
    Malformed,
    #[error(transparent)]
    Random(#[from] RandomFailure),
}

/// The OS random generator failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random generator failed")]
pub struct RandomFailure;

fn random<const N: usize>() -> Result<[u8; N], RandomFailure> {
    crate::random_bytes::<N>().map_err(|_| RandomFailure)
}

/// What a derived key is for. Each purpose gets its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Wraps the vault's data keys.
    Vault,
    CookieSigning,
    TokenHmac,
    BusSigning,
    Backups,
    /// Keys the audit log's hash chain.
    AuditChain,
    /// Signs the calls one replica forwards to another's hosted agent.
    HostedForwarding,
}

impl Purpose {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Vault => "vault",
            Self::CookieSigning => "cookie-signing",
            Self::TokenHmac => "token-hmac",
            Self::BusSigning => "bus-signing",
            Self::Backups => "backups",
            Self::AuditChain => "audit-chain",
            Self::HostedForwarding => "hosted-forwarding",
        }
    }
}

/// `ENCRYPTION_KEY`: 32 bytes, only ever used to derive purpose keys.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// From 64 hexadecimal characters.
    pub fn from_hex(hex_text: &str) -> Result<Self, VaultError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(hex_text.trim(), bytes.as_mut_slice())
            .map_err(|_| VaultError::BadMasterKey)?;
        Ok(Self { bytes })
    }

    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        Self {
            bytes: Zeroizing::new(*bytes),
        }
    }

    /// HKDF-SHA256 (no salt; the info names the purpose and a version) of this key.
    pub fn derive(&self, purpose: Purpose) -> SubKey {
        let hkdf = hkdf::Hkdf::<Sha256>::new(None, self.bytes.as_slice());
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        let info = format!("hive/v1/{}", purpose.as_str());
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32; this cannot fail.
        if hkdf.expand(info.as_bytes(), bytes.as_mut_slice()).is_err() {
            bytes.fill(0);
        }
        SubKey { purpose, bytes }
    }
}

/// A key derived for one [`Purpose`].
pub struct SubKey {
    purpose: Purpose,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for SubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubKey({}, <redacted>)", self.purpose.as_str())
    }
}

impl SubKey {
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The key itself, for a keyed primitive of another crate (the event bus's HMAC takes
    /// its key as bytes).
    pub fn expose(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// HMAC-SHA256 of `data` under this key, as hex.
    pub fn hmac_sha256_hex(&self, data: &[u8]) -> String {
        crate::hmac_sha256_hex(self.bytes.as_slice(), data)
    }

    /// Whether `signature_hex` is this key's HMAC-SHA256 of `data` (constant time).
    pub fn verify_hmac_sha256_hex(&self, data: &[u8], signature_hex: &str) -> bool {
        crate::verify_hmac_sha256_hex(self.bytes.as_slice(), data, signature_hex)
    }
}

/// Where a sealed value lives; part of what it is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub table: &'a str,
    pub row_id: &'a str,
}

/// Associated data: each part length-prefixed, so no two contexts encode alike.
fn associated_data(context: &Context<'_>, key_id: u32) -> Vec<u8> {
    let mut aad = b"hive/v1/sealed".to_vec();
    for part in [context.table.as_bytes(), context.row_id.as_bytes()] {
        aad.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad
}

fn wrap_aad(id: u32) -> Vec<u8> {
    let mut aad = b"hive/v1/data-key".to_vec();
    aad.extend_from_slice(&id.to_be_bytes());
    aad
}

/// A value sealed by the keyring: key id, nonce, and ciphertext with its 16-byte tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: u32,
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

impl Sealed {
    /// `v1.<key id>.<nonce hex>.<ciphertext hex>`: one text column.
    pub fn to_text(&self) -> String {
        format!(
            "v1.{}.{}.{}",
            self.key_id,
            hex::encode(self.nonce),
            hex::encode(&self.ciphertext)
        )
    }

    pub fn from_text(text: &str) -> Result<Self, VaultError> {
        let mut parts = text.split('.');
        let (Some("v1"), Some(id), Some(nonce), Some(ciphertext), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(VaultError::Malformed);
        };
        let mut nonce_bytes = [0u8; NONCE_LEN];
        hex::decode_to_slice(nonce, &mut nonce_bytes).map_err(|_| VaultError::Malformed)?;
        let ciphertext = hex::decode(ciphertext).map_err(|_| VaultError::Malformed)?;
        if ciphertext.len() < 16 {
            return Err(VaultError::Malformed);
        }
        Ok(Self {
            key_id: id.parse().map_err(|_| VaultError::Malformed)?,
            nonce: nonce_bytes,
            ciphertext,
        })
    }
}

/// A data key as stored: sealed under the vault purpose key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub id: u32,
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

/// The data keys in use, one of them active for new writes.
pub struct Keyring {
    wrapping: Aes256Gcm,
    keys: BTreeMap<u32, Aes256Gcm>,
    active: Option<u32>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

impl Keyring {
    /// An empty keyring whose data keys are wrapped with `vault_key`.
    pub fn new(vault_key: &SubKey) -> Result<Self, VaultError> {
        if vault_key.purpose != Purpose::Vault {
            return Err(VaultError::WrongPurpose(vault_key.purpose.as_str()));
        }
        let wrapping = Aes256Gcm::new_from_slice(vault_key.bytes.as_slice())
            .map_err(|_| VaultError::BadMasterKey)?;
        Ok(Self {
            wrapping,
            keys: BTreeMap::new(),
            active: None,
        })
    }

    /// Makes a random data key `id`, makes it active and returns it wrapped, to be stored.
    pub fn generate(&mut self, id: u32) -> Result<WrappedKey, VaultError> {
        let key = Zeroizing::new(random::<KEY_LEN>()?);
        let nonce = random::<NONCE_LEN>()?;
        let ciphertext = self
            .wrapping
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key.as_slice(),
                    aad: &wrap_aad(id),
                },
            )
            .map_err(|_| VaultError::Undecryptable)?;
        self.insert(id, key.as_slice())?;
        self.active = Some(id);
        Ok(WrappedKey {
            id,
            nonce,
            ciphertext,
        })
    }

    /// Adds a stored data key. [`VaultError::WrongMasterKey`] when it does not unwrap.
    pub fn load(&mut self, wrapped: &WrappedKey) -> Result<(), VaultError> {
        let key = self
            .wrapping
            .decrypt(
                &Nonce::from(wrapped.nonce),
                Payload {
                    msg: &wrapped.ciphertext,
                    aad: &wrap_aad(wrapped.id),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::WrongMasterKey(wrapped.id))?;
        self.insert(wrapped.id, &key)
    }

    fn insert(&mut self, id: u32, key: &[u8]) -> Result<(), VaultError> {
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| VaultError::Malformed)?;
        self.keys.insert(id, cipher);
        Ok(())
    }

    /// New writes use `id` from now on.
    pub fn set_active(&mut self, id: u32) -> Result<(), VaultError> {
        if !self.keys.contains_key(&id) {
            return Err(VaultError::UnknownKey(id));
        }
        self.active = Some(id);
        Ok(())
    }

    pub fn active_id(&self) -> Option<u32> {
        self.active
    }

    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// Seals `plaintext` for `context` with the active key and a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], context: &Context<'_>) -> Result<Sealed, VaultError> {
        let key_id = self.active.ok_or(VaultError::NoActiveKey)?;
        self.seal_with_key(key_id, plaintext, context)
    }

    /// Seals under the loaded key `key_id`, active or not: for a caller that counts encryptions
    /// per key and reserved this one under `key_id`.
    pub fn seal_with_key(
        &self,
        key_id: u32,
        plaintext: &[u8],
        context: &Context<'_>,
    ) -> Result<Sealed, VaultError> {
        let cipher = self
            .keys
            .get(&key_id)
            .ok_or(VaultError::UnknownKey(key_id))?;
        let nonce = random::<NONCE_LEN>()?;
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &associated_data(context, key_id),
                },
            )
            .map_err(|_| VaultError::Undecryptable)?;
        Ok(Sealed {
            key_id,
            nonce,
            ciphertext,
        })
    }

    /// Opens a value sealed for exactly this `context`.
    pub fn open(
        &self,
        sealed: &Sealed,
        context: &Context<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .ok_or(VaultError::UnknownKey(sealed.key_id))?;
        cipher
            .decrypt(
                &Nonce::from(sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &associated_data(context, sealed.key_id),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Undecryptable)
    }

    /// The same value sealed again under the active key (key rotation).
    pub fn reseal(&self, sealed: &Sealed, context: &Context<'_>) -> Result<Sealed, VaultError> {
        let plaintext = self.open(sealed, context)?;
        self.seal(&plaintext, context)
    }
}

/// Opens a value in the seeds' format, `ivHex:tagHex:cipherHex` (AES-256-GCM under the raw
/// 32-byte key, no associated data, a 12- or 16-byte IV), for import.
pub fn open_imported(raw_key: &MasterKey, value: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let mut parts = value.trim().split(':');
    let (Some(iv), Some(tag), Some(body), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VaultError::Malformed);
    };
    let iv = hex::decode(iv).map_err(|_| VaultError::Malformed)?;
    let tag = hex::decode(tag).map_err(|_| VaultError::Malformed)?;
    let mut ciphertext = hex::decode(body).map_err(|_| VaultError::Malformed)?;
    if tag.len() != 16 {
        return Err(VaultError::Malformed);
    }
    ciphertext.extend_from_slice(&tag);
    let key = raw_key.bytes.as_slice();
    let opened = if let Ok(iv) = <[u8; 12]>::try_from(iv.as_slice()) {
        Aes256Gcm::new_from_slice(key)
            .map_err(|_| VaultError::Malformed)?
            .decrypt(&Nonce::from(iv), ciphertext.as_slice())
    } else if let Ok(iv) = <[u8; 16]>::try_from(iv.as_slice()) {
        AesGcm::<Aes256, U16>::new_from_slice(key)
            .map_err(|_| VaultError::Malformed)?
            .decrypt(&aes_gcm::Nonce::<U16>::from(iv), ciphertext.as_slice())
    } else {
        return Err(VaultError::Malformed);
    };
    opened
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Undecryptable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const MASTER: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn keyring() -> (Keyring, WrappedKey) {
        let master = MasterKey::from_hex(MASTER).unwrap();
        let mut ring = Keyring::new(&master.derive(Purpose::Vault)).unwrap();
        let wrapped = ring.generate(1).unwrap();
        (ring, wrapped)
    }

    const ROW: Context<'static> = Context {
        table: "secrets",
        row_id: "row-1",
    };

    #[test]
    fn purposes_get_different_keys_and_nothing_shows_in_debug() {
        let master = MasterKey::from_hex(MASTER).unwrap();
        let macs: HashSet<String> = [
            Purpose::Vault,
            Purpose::CookieSigning,
            Purpose::TokenHmac,
            Purpose::BusSigning,
            Purpose::Backups,
            Purpose::AuditChain,
            Purpose::HostedForwarding,
        ]
        .into_iter()
        .map(|p| master.derive(p).hmac_sha256_hex(b"x"))
        .collect();
        assert_eq!(macs.len(), 7);
        let sub = master.derive(Purpose::AuditChain);
        assert_eq!(
            sub.hmac_sha256_hex(b"x"),
            master.derive(Purpose::AuditChain).hmac_sha256_hex(b"x")
        );
        assert!(sub.verify_hmac_sha256_hex(b"x", &sub.hmac_sha256_hex(b"x")));
        for shown in [
            format!("{master:?}"),
            format!("{sub:?}"),
            format!("{:?}", keyring().0),
        ] {
            assert!(!shown.contains("0102030405"), "{shown}");
        }
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(Keyring::new(&master.derive(Purpose::Backups)).is_err());
    }

    #[test]
    fn a_value_opens_only_where_it_was_sealed() {
        let (ring, _) = keyring();
        let sealed = ring.seal(b"sk-secret", &ROW).unwrap();
        assert_eq!(ring.open(&sealed, &ROW).unwrap().as_slice(), b"sk-secret");
        assert_eq!(Sealed::from_text(&sealed.to_text()).unwrap(), sealed);

        let moved = Context {
            row_id: "row-2",
            ..ROW
        };
        assert_eq!(ring.open(&sealed, &moved), Err(VaultError::Undecryptable));
        let other_table = Context {
            table: "webhooks",
            ..ROW
        };
        assert_eq!(
            ring.open(&sealed, &other_table),
            Err(VaultError::Undecryptable)
        );
        for bit in [0, sealed.ciphertext.len() * 8 - 1] {
            let mut flipped = sealed.clone();
            flipped.ciphertext[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(ring.open(&flipped, &ROW), Err(VaultError::Undecryptable));
        }
        let mut nonce = sealed.clone();
        nonce.nonce[0] ^= 1;
        assert_eq!(ring.open(&nonce, &ROW), Err(VaultError::Undecryptable));
        let mut relabelled = sealed.clone();
        relabelled.key_id = 2;
        assert_eq!(ring.open(&relabelled, &ROW), Err(VaultError::UnknownKey(2)));
        // Boundaries of the context are part of it: ("ab","c") is not ("a","bc").
        let a = Context {
            table: "ab",
            row_id: "c",
        };
        let b = Context {
            table: "a",
            row_id: "bc",
        };
        let sealed = ring.seal(b"v", &a).unwrap();
        assert_eq!(ring.open(&sealed, &b), Err(VaultError::Undecryptable));
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_writes_new_ones_under_the_new_key() {
        let (mut ring, first) = keyring();
        let old = ring.seal(b"old", &ROW).unwrap();
        let second = ring.generate(2).unwrap();
        assert_eq!(ring.active_id(), Some(2));
        let new = ring.seal(b"new", &ROW).unwrap();
        assert_eq!(new.key_id, 2);
        assert_eq!(ring.open(&old, &ROW).unwrap().as_slice(), b"old");
        let resealed = ring.reseal(&old, &ROW).unwrap();
        assert_eq!(resealed.key_id, 2);

        // Another process with the same master key loads both keys and reads both values.
        let master = MasterKey::from_hex(MASTER).unwrap();
        let mut again = Keyring::new(&master.derive(Purpose::Vault)).unwrap();
        again.load(&first).unwrap();
        again.load(&second).unwrap();
        again.set_active(2).unwrap();
        assert_eq!(again.open(&resealed, &ROW).unwrap().as_slice(), b"old");
        assert_eq!(again.open(&new, &ROW).unwrap().as_slice(), b"new");
        assert_eq!(again.set_active(9), Err(VaultError::UnknownKey(9)));
    }

    #[test]
    fn a_wrong_master_key_is_found_at_the_first_unwrap() {
        let (_, wrapped) = keyring();
        let other = MasterKey::from_hex(&"ff".repeat(32)).unwrap();
        let mut ring = Keyring::new(&other.derive(Purpose::Vault)).unwrap();
        assert_eq!(ring.load(&wrapped), Err(VaultError::WrongMasterKey(1)));
        // A wrapped key relabelled with another id does not load either.
        let (_, mut relabelled) = keyring();
        relabelled.id = 7;
        let master = MasterKey::from_hex(MASTER).unwrap();
        let mut ring = Keyring::new(&master.derive(Purpose::Vault)).unwrap();
        assert_eq!(ring.load(&relabelled), Err(VaultError::WrongMasterKey(7)));
    }

    #[test]
    fn a_million_seals_never_repeat_a_nonce() {
        let (ring, _) = keyring();
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let sealed = ring.seal(b"", &ROW).unwrap();
            assert!(seen.insert(sealed.nonce), "a nonce came twice");
        }
    }

    #[test]
    fn malformed_texts_are_refused() {
        for bad in [
            "",
            "v1.1.00",
            "v2.1.000000000000000000000000.00",
            "v1.x.000000000000000000000000.00112233445566778899aabbccddeeff",
            "v1.1.00.00112233445566778899aabbccddeeff",
            "v1.1.000000000000000000000000.00",
        ] {
            assert_eq!(Sealed::from_text(bad), Err(VaultError::Malformed), "{bad}");
        }
    }

    fn vectors(text: &str) -> Vec<serde_json::Value> {
        let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
        parsed["vectors"].as_array().unwrap().clone()
    }

    fn bytes(vector: &serde_json::Value, field: &str) -> Vec<u8> {
        hex::decode(vector[field].as_str().unwrap()).unwrap()
    }

    #[test]
    fn aes_256_gcm_known_answers() {
        let all = vectors(include_str!("../tests/vectors/aes256gcm.json"));
        assert_eq!(all.len(), 4);
        for vector in all {
            let cipher = Aes256Gcm::new_from_slice(&bytes(&vector, "key")).unwrap();
            let nonce = Nonce::from(<[u8; NONCE_LEN]>::try_from(bytes(&vector, "nonce")).unwrap());
            let aad = bytes(&vector, "aad");
            let plaintext = bytes(&vector, "plaintext");
            let payload = Payload {
                msg: &plaintext,
                aad: &aad,
            };
            let sealed = cipher.encrypt(&Nonce::from(nonce), payload).unwrap();
            let mut expected = bytes(&vector, "ciphertext");
            expected.extend(bytes(&vector, "tag"));
            assert_eq!(sealed, expected, "{}", vector["name"]);
            let payload = Payload {
                msg: &sealed,
                aad: &aad,
            };
            let opened = cipher.decrypt(&Nonce::from(nonce), payload).unwrap();
            assert_eq!(opened, plaintext);
        }
    }

    #[test]
    fn values_in_the_seeds_format_import() {
        for vector in vectors(include_str!("../tests/vectors/seed_import.json")) {
            let key = MasterKey::from_hex(vector["key"].as_str().unwrap()).unwrap();
            let value = vector["value"].as_str().unwrap();
            let opened = open_imported(&key, value).unwrap();
            assert_eq!(
                opened.as_slice(),
                vector["plaintext"].as_str().unwrap().as_bytes()
            );
            // A changed tag, or another key, refuses.
            let (iv, rest) = value.split_once(':').unwrap();
            let tampered = format!(
                "{iv}:{}",
                rest.replacen(&rest[..1], if &rest[..1] == "0" { "1" } else { "0" }, 1)
            );
            assert_eq!(
                open_imported(&key, &tampered),
                Err(VaultError::Undecryptable)
            );
            let other = MasterKey::from_hex(MASTER).unwrap();
            assert_eq!(open_imported(&other, value), Err(VaultError::Undecryptable));
        }
        let key = MasterKey::from_hex(MASTER).unwrap();
        for bad in [
            "",
            "00:11",
            "zz:00:00",
            "0011:00112233445566778899aabbccddeeff:00",
        ] {
            assert_eq!(
                open_imported(&key, bad),
                Err(VaultError::Malformed),
                "{bad}"
            );
        }
    }
}
