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

#[async_trait]
pub trait VaultKeyRepo: Send + Sync {
    /// Every data key, by id.
    async fn list(&self) -> Result<Vec<VaultKeyRow>, StoreError>;

    /// Stores a new key; [`StoreError::Conflict`] when the id is taken (another replica made it
    /// first).
    async fn insert(&self, key: &VaultKeyRow) -> Result<(), StoreError>;
}
