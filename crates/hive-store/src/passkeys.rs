//! Passkeys (WebAuthn credentials) as stored: a few per user, each with its public key, its
//! signature counter and the name its owner gave it.

use crate::{AuditAppend, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// The longest credential id the store keeps, base64url: WebAuthn allows 1023 bytes.
pub const PASSKEY_CREDENTIAL_ID_MAX_CHARS: usize = 1366;
/// The largest credential document the store keeps (the library's JSON: key, flags, counter).
pub const PASSKEY_DOCUMENT_MAX_BYTES: usize = 16 * 1024;
/// The longest name a passkey may be given.
pub const PASSKEY_NAME_MAX_CHARS: usize = 100;

/// One registered passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The credential id the authenticator chose, base64url without padding; unique across all
    /// users (an authenticator's credential belongs to one account).
    pub credential_id: String,
    /// The credential as the WebAuthn verifier keeps it (JSON: COSE public key and algorithm,
    /// counter, backup flags, the verification policy it was registered under). Public data:
    /// no private key is ever on the server.
    pub passkey: String,
    /// The authenticator's signature counter as last seen (0 for authenticators without one).
    pub sign_count: u32,
    /// Whether the credential may be synced to other devices (set at registration).
    pub backup_eligible: bool,
    /// Whether it was backed up (synced) when last used.
    pub backup_state: bool,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

/// What a verified assertion changes on its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyUse<'a> {
    pub id: Uuid,
    /// The credential document after the assertion (its counter and flags updated).
    pub passkey: &'a str,
    pub sign_count: u32,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub at: OffsetDateTime,
}

/// The answer to [`PasskeyRepo::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyAdded {
    /// Stored; this many sessions of the user were ended with it.
    Added { sessions_ended: u64 },
    /// The user already has the most passkeys allowed; nothing was stored.
    LimitReached,
}

#[async_trait]
pub trait PasskeyRepo: Send + Sync {
    /// The user's passkeys, oldest first.
    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<PasskeyRow>, StoreError>;

    /// The passkey with this credential id, whoever owns it.
    async fn find_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, StoreError>;

    /// Stores a new passkey (`last_used_at` is stored empty) unless the user has
    /// `max_per_user` already (counted and inserted atomically, also against concurrent adds),
    /// ends every session of the user except `keep_session` and marks `keep_session` (the
    /// registering one: the new passkey was just verified in it) as having passed its second
    /// factor at the passkey's `created_at`, in one transaction with `audit`.
    /// [`StoreError::Conflict`] when the credential id is registered already (to anyone).
    async fn add(
        &self,
        row: &PasskeyRow,
        max_per_user: u32,
        keep_session: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<PasskeyAdded, StoreError>;

    /// Records a verified assertion, atomically: `Ok(true)` only if the counter moved forward
    /// (or stays 0 on an authenticator without a counter), so of two uses with one counter
    /// value exactly one passes. Not audited here: the caller audits the login or the second
    /// factor it completes.
    async fn record_use(&self, used: &PasskeyUse<'_>) -> Result<bool, StoreError>;

    /// Renames one of the user's passkeys; `Ok(false)` when the user has no such passkey.
    async fn rename(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: &str,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Deletes one of the user's passkeys and ends every session of the user except
    /// `keep_session`, in one transaction with `audit`; `Ok(false)` (nothing changed, no record)
    /// when the user has no such passkey.
    async fn remove(
        &self,
        user_id: Uuid,
        id: Uuid,
        keep_session: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Deletes every passkey of the user (an admin's reset of the user's second factors) and
    /// answers how many; `audit` is written only when there was at least one. Sessions are
    /// left to the caller.
    async fn remove_all(&self, user_id: Uuid, audit: AuditAppend<'_>) -> Result<u64, StoreError>;
}

/// A signature counter as the databases store it.
pub fn sign_count_from_stored(count: i64) -> Result<u32, StoreError> {
    u32::try_from(count)
        .map_err(|_| StoreError::Backend("a stored signature counter is out of range".into()))
}
