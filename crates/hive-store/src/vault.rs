//! The vault's data keys, stored wrapped under the master key's vault subkey.

use crate::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;

/// One data key as stored. `wrapped` is opaque to the store (nonce and ciphertext as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultKeyRow {
    pub id: u32,
    pub wrapped: String,
    pub created_at: OffsetDateTime,
}

impl VaultKeyRow {
    /// A row as a backend read it (ids are stored as signed integers).
    pub fn from_stored(
        id: i64,
        wrapped: String,
        created_at: OffsetDateTime,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            id: u32::try_from(id)
                .map_err(|_| StoreError::Backend("a stored key id is out of range".into()))?,
            wrapped,
            created_at,
        })
    }
}

#[async_trait]
pub trait VaultKeyRepo: Send + Sync {
    /// Every data key, by id.
    async fn list(&self) -> Result<Vec<VaultKeyRow>, StoreError>;

    /// Stores a new key; [`StoreError::Conflict`] when the id is taken (another replica made it
    /// first).
    async fn insert(&self, key: &VaultKeyRow) -> Result<(), StoreError>;
}
