//! The vault at run time: the keyring of data keys, loaded (or, on a new database, created) at
//! start. A wrong `ENCRYPTION_KEY` stops the start here, with a clear message, instead of
//! failing at the first read of a secret.

use hive_crypto::vault::{Context, Keyring, MasterKey, Purpose, Sealed, VaultError, WrappedKey};
use hive_store::{Store, StoreError, VaultKeyRow};
use std::sync::{PoisonError, RwLock};
use time::OffsetDateTime;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum VaultOpenError {
    #[error("{0}")]
    Crypto(#[from] VaultError),
    #[error("vault keys: {0}")]
    Store(#[from] StoreError),
}

/// The keyring of this process.
#[derive(Debug)]
pub struct Vault {
    keyring: RwLock<Keyring>,
}

/// `<nonce hex>.<ciphertext hex>`.
fn wrapped_text(wrapped: &WrappedKey) -> String {
    format!(
        "{}.{}",
        hex::encode(wrapped.nonce),
        hex::encode(&wrapped.ciphertext)
    )
}

fn parse_wrapped(row: &VaultKeyRow) -> Result<WrappedKey, VaultError> {
    let (nonce, ciphertext) = row.wrapped.split_once('.').ok_or(VaultError::Malformed)?;
    let mut nonce_bytes = [0u8; hive_crypto::vault::NONCE_LEN];
    hex::decode_to_slice(nonce, &mut nonce_bytes).map_err(|_| VaultError::Malformed)?;
    Ok(WrappedKey {
        id: row.id,
        nonce: nonce_bytes,
        ciphertext: hex::decode(ciphertext).map_err(|_| VaultError::Malformed)?,
    })
}

impl Vault {
    /// Loads every data key (the newest becomes active), or creates key 1 on a new database.
    pub async fn open(
        store: &dyn Store,
        master: &MasterKey,
        now: OffsetDateTime,
    ) -> Result<Self, VaultOpenError> {
        let vault_key = master.derive(Purpose::Vault);
        let mut rows = store.vault_keys().list().await?;
        if rows.is_empty() {
            let mut keyring = Keyring::new(&vault_key)?;
            let wrapped = keyring.generate(1)?;
            let row = VaultKeyRow::new(1, wrapped_text(&wrapped), now);
            match store.vault_keys().insert(&row).await {
                Ok(()) => {
                    return Ok(Self {
                        keyring: RwLock::new(keyring),
                    });
                }
                // Another replica starting at the same moment stored its key 1 first: use it.
                Err(StoreError::Conflict(_)) => rows = store.vault_keys().list().await?,
                Err(other) => return Err(other.into()),
            }
        }
        let mut keyring = Keyring::new(&vault_key)?;
        for row in &rows {
            keyring.load(&parse_wrapped(row)?)?;
        }
        if let Some(newest) = rows.iter().map(|row| row.id).max() {
            keyring.set_active(newest)?;
        }
        Ok(Self {
            keyring: RwLock::new(keyring),
        })
    }

    /// The id new values are sealed with.
    pub fn active_key_id(&self) -> Option<u32> {
        self.keyring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .active_id()
    }

    /// Seals `plaintext` for `context` under the active key.
    pub fn seal(&self, plaintext: &[u8], context: &Context<'_>) -> Result<Sealed, VaultError> {
        self.keyring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .seal(plaintext, context)
    }

    /// Opens a value sealed for exactly `context`.
    pub fn unseal(
        &self,
        sealed: &Sealed,
        context: &Context<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        self.keyring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .open(sealed, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_store_sqlite::SqliteStore;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    #[tokio::test]
    async fn the_first_start_makes_key_one_and_later_starts_load_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db"), 2).await.unwrap();
        hive_store::Store::migrate(&store).await.unwrap();
        let master = MasterKey::from_bytes(&[7; 32]);
        let first = Vault::open(&store, &master, NOW).await.unwrap();
        assert_eq!(first.active_key_id(), Some(1));
        let stored = hive_store::Store::vault_keys(&store).list().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert!(!stored[0].wrapped.contains(&hex::encode([7u8; 32])));
        let again = Vault::open(&store, &master, NOW).await.unwrap();
        assert_eq!(again.active_key_id(), Some(1));
        assert_eq!(
            hive_store::Store::vault_keys(&store).list().await.unwrap(),
            stored
        );

        let wrong = MasterKey::from_bytes(&[8; 32]);
        let refused = Vault::open(&store, &wrong, NOW).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("ENCRYPTION_KEY does not match"),
            "{refused}"
        );
    }
}
