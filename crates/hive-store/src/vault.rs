//! The vault's data keys, stored wrapped under the master key's vault subkey, with how many
//! encryptions each has had reserved.

use crate::{AuditAppend, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;

/// One data key as stored. `wrapped` is opaque to the store (nonce and ciphertext as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultKeyRow {
    pub id: u32,
    pub wrapped: String,
    pub created_at: OffsetDateTime,
    /// Encryptions handed out under this key so far (in blocks; some may go unused).
    pub encryptions_reserved: u64,
    /// Set once no value used the key any more; a retired key seals nothing new.
    pub retired_at: Option<OffsetDateTime>,
}

impl VaultKeyRow {
    /// A new, unused key.
    pub fn new(id: u32, wrapped: String, created_at: OffsetDateTime) -> Self {
        Self {
            id,
            wrapped,
            created_at,
            encryptions_reserved: 0,
            retired_at: None,
        }
    }

    /// A row as a backend read it (ids and counts are stored as signed integers).
    pub fn from_stored(
        id: i64,
        wrapped: String,
        created_at: OffsetDateTime,
        encryptions_reserved: i64,
        retired_at: Option<OffsetDateTime>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            id: u32::try_from(id)
                .map_err(|_| StoreError::Backend("a stored key id is out of range".into()))?,
            wrapped,
            created_at,
            encryptions_reserved: u64::try_from(encryptions_reserved).map_err(|_| {
                StoreError::Backend("a stored encryption count is out of range".into())
            })?,
            retired_at,
        })
    }
}

/// Counts as the databases store them (signed 64-bit).
pub fn count_to_stored(count: u64) -> Result<i64, StoreError> {
    i64::try_from(count).map_err(|_| StoreError::Backend("an encryption count is too large".into()))
}

#[async_trait]
pub trait VaultKeyRepo: Send + Sync {
    /// Every data key, by id.
    async fn list(&self) -> Result<Vec<VaultKeyRow>, StoreError>;

    /// Stores a new key; [`StoreError::Conflict`] when the id is taken (another replica made it
    /// first).
    /// The key and its audit record are committed together.
    async fn insert(&self, key: &VaultKeyRow, audit: AuditAppend<'_>) -> Result<(), StoreError>;

    /// Reserves `block` more encryptions under key `id`, atomically, unless that would take its
    /// reservations past `limit` or the key is retired or missing: `Ok(false)` then (the caller
    /// rotates to a new key).
    async fn reserve_encryptions(
        &self,
        id: u32,
        block: u64,
        limit: u64,
    ) -> Result<bool, StoreError>;

    /// Marks key `id` retired at `now` if it is not the newest key and no secret uses it, in one
    /// statement; `Ok(false)` when it is still needed or already retired. The key stays stored
    /// (and readable): retiring only stops new seals under it.
    /// `audit` is written with the mark, and only if the key was retired.
    async fn retire_if_unused(
        &self,
        id: u32,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;
}
