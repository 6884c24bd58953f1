//! Vault key checks.

use super::T0;
use crate::{Store, StoreError, VaultKeyRow, truncate_to_micros};

pub async fn vault_keys_are_unique_by_id(store: &dyn Store) {
    let keys = store.vault_keys();
    assert!(keys.list().await.unwrap().is_empty());
    let key = |id: u32| VaultKeyRow {
        id,
        wrapped: format!("nonce{id}.ciphertext{id}"),
        created_at: truncate_to_micros(T0),
    };
    keys.insert(&key(2)).await.unwrap();
    keys.insert(&key(1)).await.unwrap();
    let taken = keys.insert(&key(2)).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert_eq!(keys.list().await.unwrap(), vec![key(1), key(2)]);
}
