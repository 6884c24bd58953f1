//! Secrets as stored: metadata in clear, the value sealed by the vault.

use crate::{AuditAppend, Page, PageRequest, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    /// Unique per owner.
    pub name: String,
    pub description: String,
    /// 1 on creation, +1 on every new value.
    pub version: i64,
    /// The data key the value is sealed with (for rotation and per-key counts).
    pub key_id: u32,
    /// The sealed value (`hive_crypto::vault::Sealed` as text), bound to (id, version).
    pub value: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[async_trait]
pub trait SecretRepo: Send + Sync {
    /// [`StoreError::Conflict`] when the owner already has a secret of this name.
    async fn create(&self, secret: &SecretRow, audit: AuditAppend<'_>) -> Result<(), StoreError>;

    /// The secret; with `owner`, only if it is theirs.
    async fn get(&self, id: Uuid, owner: Option<Uuid>) -> Result<Option<SecretRow>, StoreError>;

    /// Secrets newest first; with `owner`, only theirs.
    async fn list(
        &self,
        owner: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<SecretRow>, StoreError>;

    /// Stores `next` (its description, key id, sealed value and time) as the new version, only
    /// if the stored version is still `next.version - 1`: `Ok(false)` when someone else wrote
    /// first or the secret is gone. Owner, name and creation time are kept as stored.
    async fn replace_value(
        &self,
        next: &SecretRow,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Deletes; with `owner`, only theirs.
    async fn delete(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` secrets whose value is sealed under another key than `key_id`, by id,
    /// after `after` (for re-encryption in batches).
    async fn list_not_under_key(
        &self,
        key_id: u32,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError>;

    /// Replaces the sealed value of a secret by the same value sealed again under another key,
    /// keeping its version and times, only if the row still holds exactly `expected` (same
    /// version, key and sealed value): `Ok(false)` when a writer changed it meanwhile.
    async fn reseal(
        &self,
        expected: &SecretRow,
        key_id: u32,
        value: &str,
    ) -> Result<bool, StoreError>;

    /// How many secrets each data key seals, by key id (keys without any are left out).
    async fn count_by_key(&self) -> Result<Vec<(u32, u64)>, StoreError>;
}

hive_proto::debug_redacted!(SecretRow {
    show: [
        id,
        owner_id,
        name,
        description,
        version,
        key_id,
        created_at,
        updated_at
    ],
    hide: [value]
});
