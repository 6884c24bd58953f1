//! The vault at run time: the keyring of data keys, loaded (or, on a new database, created) at
//! start. A wrong `ENCRYPTION_KEY` stops the start here, with a clear message, instead of
//! failing at the first read of a secret.

use crate::kernel::audit::{
    AuditAction, AuditChain, AuditEvent, Auditor, Principal, TransactionRecord,
};
use crate::kernel::caller::RequestMeta;
use hive_crypto::vault::{
    Context, Keyring, MAX_ENCRYPTIONS_PER_KEY, MasterKey, Purpose, Sealed, SubKey, VaultError,
    WrappedKey,
};
use hive_proto::SharedClock;
use hive_store::{AuditOutcome, Store, StoreError, VaultKeyRow};
use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use time::OffsetDateTime;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum VaultFailure {
    #[error("{0}")]
    Crypto(#[from] VaultError),
    #[error("vault keys: {0}")]
    Store(#[from] StoreError),
    /// Rotation kept failing to give a key with encryptions left (the database refused every
    /// new key): nothing is sealed rather than going past a key's limit.
    #[error("no data key with encryptions left; rotation failed")]
    NoKeyAvailable,
    #[error("vault limits: {0}")]
    BadLimits(&'static str),
}

/// The name the start-up code knows.
pub type VaultOpenError = VaultFailure;

/// How many values one data key may seal, and how the count is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultLimits {
    /// Encryptions reserved from the database at once; counted in memory inside a block.
    /// What a process does not use of its last block is lost when it stops.
    pub reservation_block: u64,
    /// A key's reservations never pass this; the vault rotates to a new key instead.
    pub rotate_at: u64,
    /// How often a replica looks for a key another replica rotated to (it also looks on a
    /// key id it does not know, and whenever its key runs out).
    pub refresh_every: time::Duration,
}

impl Default for VaultLimits {
    fn default() -> Self {
        Self {
            reservation_block: 65_536,
            // A margin below NIST's 2^32 for seals made before counting began (migration 0007
            // counts one per stored value, a lower bound).
            rotate_at: MAX_ENCRYPTIONS_PER_KEY - (1 << 28),
            refresh_every: time::Duration::seconds(15),
        }
    }
}

impl VaultLimits {
    fn checked(self) -> Result<Self, VaultFailure> {
        if self.reservation_block == 0 || self.reservation_block > self.rotate_at {
            return Err(VaultFailure::BadLimits(
                "the reservation block must be 1 to rotate_at",
            ));
        }
        if self.rotate_at > MAX_ENCRYPTIONS_PER_KEY {
            return Err(VaultFailure::BadLimits(
                "rotate_at must not pass 2^32 encryptions",
            ));
        }
        Ok(self)
    }
}

/// The encryptions this process may still make under one key without asking the database.
#[derive(Debug)]
struct Budget {
    key_id: u32,
    remaining: u64,
}

/// The outcome of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub previous_key_id: u32,
    /// The key new values are sealed with now.
    pub active_key_id: u32,
    /// False when another replica rotated at the same time and this one adopted its key.
    pub created: bool,
}

/// A data key as an administrator sees it (never its material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub id: u32,
    pub created_at: OffsetDateTime,
    pub active: bool,
    pub retired_at: Option<OffsetDateTime>,
    /// Secrets still sealed under this key.
    pub secrets: u64,
    pub encryptions_reserved: u64,
}

/// Who changes the keys, and why, for the audit record.
#[derive(Debug, Clone)]
pub struct Rotator {
    pub principal: Principal,
    pub meta: RequestMeta,
    /// `requested` (an admin or the CLI), `encryption_limit`, `first_start`, `unused`.
    pub reason: &'static str,
}

impl Rotator {
    /// Hive itself (a start, a key at its limit, the re-encryption job).
    pub fn system(reason: &'static str) -> Self {
        Self {
            principal: Principal::System,
            meta: RequestMeta::default(),
            reason,
        }
    }
}

/// The keyring of this process, kept in step with the keys in the database.
#[derive(Debug)]
pub struct Vault {
    store: Arc<dyn Store>,
    clock: SharedClock,
    vault_key: SubKey,
    limits: VaultLimits,
    keyring: RwLock<Keyring>,
    /// Records key creations and retirements in the same transaction as the change.
    auditor: Auditor,
    /// Held while an encryption is taken, so concurrent seals reserve one block, not many.
    budget: tokio::sync::Mutex<Budget>,
    next_refresh: std::sync::Mutex<OffsetDateTime>,
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
    /// A wrong master key fails here, at the first unwrap.
    pub async fn open(
        store: Arc<dyn Store>,
        master: &MasterKey,
        clock: SharedClock,
        limits: VaultLimits,
    ) -> Result<Self, VaultFailure> {
        let limits = limits.checked()?;
        let vault_key = master.derive(Purpose::Vault);
        let keyring = Keyring::new(&vault_key)?;
        let now = clock.now();
        let auditor = Auditor::new(
            Arc::clone(&store),
            Arc::new(AuditChain::new(master.derive(Purpose::AuditChain))),
            Arc::clone(&clock),
        );
        let vault = Self {
            store,
            clock,
            vault_key,
            limits,
            keyring: RwLock::new(keyring),
            auditor,
            budget: tokio::sync::Mutex::new(Budget {
                key_id: 0,
                remaining: 0,
            }),
            next_refresh: std::sync::Mutex::new(now),
        };
        if vault.store.vault_keys().list().await?.is_empty() {
            // Another replica starting at the same moment may store its key 1 first: then
            // the refresh below loads that one.
            let record = vault.key_record(
                &Rotator::system("first_start"),
                AuditAction::VaultKeyCreate,
                1,
                serde_json::json!({ "keyId": 1 }),
            );
            vault.create_key(1, &record).await?;
        }
        vault.refresh().await?;
        Ok(vault)
    }

    fn ring(&self) -> RwLockReadGuard<'_, Keyring> {
        self.keyring.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id new values are sealed with.
    pub fn active_key_id(&self) -> Option<u32> {
        self.ring().active_id()
    }

    /// The record of a change to key `key_id` made by `by`.
    fn key_record(
        &self,
        by: &Rotator,
        action: AuditAction,
        key_id: u32,
        detail: serde_json::Value,
    ) -> TransactionRecord {
        let entry = AuditEvent {
            principal: by.principal.clone(),
            action,
            target: Some(format!("vault-key:{key_id}")),
            outcome: AuditOutcome::Success,
            detail,
        };
        self.auditor.in_transaction(entry, &by.meta)
    }

    /// Stores a new random key `id` with its audit record; `Ok(false)` when another replica
    /// stored that id first (its record is that replica's).
    async fn create_key(&self, id: u32, record: &TransactionRecord) -> Result<bool, VaultFailure> {
        let wrapped = Keyring::new(&self.vault_key)?.generate(id)?;
        let row = VaultKeyRow::new(id, wrapped_text(&wrapped), self.clock.now());
        match self.store.vault_keys().insert(&row, record.append()).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// Loads keys this process does not know yet and makes the newest one active.
    pub async fn refresh(&self) -> Result<(), VaultFailure> {
        let rows = self.store.vault_keys().list().await?;
        let known: BTreeSet<u32> = self.ring().key_ids().collect();
        let unknown = rows
            .iter()
            .filter(|row| !known.contains(&row.id))
            .map(parse_wrapped)
            .collect::<Result<Vec<_>, _>>()?;
        // The newest key is never retired (only older keys are).
        let newest = rows.iter().map(|row| row.id).max();
        {
            let mut ring = self.keyring.write().unwrap_or_else(PoisonError::into_inner);
            for wrapped in &unknown {
                ring.load(wrapped)?;
            }
            if let Some(newest) = newest {
                ring.set_active(newest)?;
            }
        }
        *self
            .next_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = self.clock.now() + self.limits.refresh_every;
        Ok(())
    }

    fn refresh_due(&self) -> bool {
        self.clock.now()
            >= *self
                .next_refresh
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
    }

    /// One counted encryption under the active key: from this process's block, else from a
    /// new block reserved in the database, else (the key is at its limit) under a new key.
    async fn take_encryption(&self) -> Result<u32, VaultFailure> {
        let mut budget = self.budget.lock().await;
        // Each pass spends, reserves a block or moves to a newer key.
        for _ in 0..8 {
            let active = self.active_key_id().ok_or(VaultError::NoActiveKey)?;
            if budget.key_id == active && budget.remaining > 0 {
                budget.remaining -= 1;
                return Ok(active);
            }
            let reserved = self
                .store
                .vault_keys()
                .reserve_encryptions(active, self.limits.reservation_block, self.limits.rotate_at)
                .await?;
            if reserved {
                *budget = Budget {
                    key_id: active,
                    remaining: self.limits.reservation_block,
                };
            } else {
                tracing::info!(
                    key_id = active,
                    "data key at its encryption limit; rotating"
                );
                self.rotate_from(active).await?;
            }
        }
        Err(VaultFailure::NoKeyAvailable)
    }

    /// Seals `plaintext` for `context` under the active key, counting the encryption.
    pub async fn seal(
        &self,
        plaintext: &[u8],
        context: &Context<'_>,
    ) -> Result<Sealed, VaultFailure> {
        if self.refresh_due() {
            self.refresh().await?;
        }
        let key_id = self.take_encryption().await?;
        Ok(self.ring().seal_with_key(key_id, plaintext, context)?)
    }

    /// Opens a value sealed for exactly `context`; a key another replica made since the last
    /// refresh is loaded first.
    pub async fn unseal(
        &self,
        sealed: &Sealed,
        context: &Context<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, VaultFailure> {
        let opened = self.ring().open(sealed, context);
        match opened {
            Err(VaultError::UnknownKey(_)) => {
                self.refresh().await?;
                Ok(self.ring().open(sealed, context)?)
            }
            other => Ok(other?),
        }
    }

    /// Makes a new key active for all new writes, recorded as done `by` someone. Of replicas
    /// rotating at the same moment, one stores the new key and the others adopt it.
    pub async fn rotate(&self, by: &Rotator) -> Result<Rotation, VaultFailure> {
        self.refresh().await?;
        let current = self.active_key_id().ok_or(VaultError::NoActiveKey)?;
        self.rotate_from_by(current, by).await
    }

    /// Moves on from key `current` because it reached its encryption limit (see
    /// [`Vault::rotate_from_by`]).
    pub async fn rotate_from(&self, current: u32) -> Result<Rotation, VaultFailure> {
        self.rotate_from_by(current, &Rotator::system("encryption_limit"))
            .await
    }

    /// Moves on from key `current`: to key `current + 1`, made here (and recorded as
    /// `vault.rotate` by `by`, in the same transaction) or by whichever replica stored it
    /// first, or to a newer key if one exists already.
    pub async fn rotate_from_by(
        &self,
        current: u32,
        by: &Rotator,
    ) -> Result<Rotation, VaultFailure> {
        self.refresh().await?;
        let mut created = false;
        if self.active_key_id().is_some_and(|active| active <= current) {
            let next = current.checked_add(1).ok_or(VaultFailure::NoKeyAvailable)?;
            let detail = serde_json::json!({
                "keyId": next,
                "previousKeyId": current,
                "reason": by.reason,
            });
            let record = self.key_record(by, AuditAction::VaultRotate, next, detail);
            created = self.create_key(next, &record).await?;
            self.refresh().await?;
        }
        let active_key_id = self.active_key_id().ok_or(VaultError::NoActiveKey)?;
        if created {
            tracing::info!(
                previous_key_id = current,
                key_id = active_key_id,
                "vault data key rotated"
            );
        }
        Ok(Rotation {
            previous_key_id: current,
            active_key_id,
            created,
        })
    }

    /// Marks retired every key but the active one that no secret uses any more, each audited
    /// as `by`'s; returns their ids. Retired keys stay loaded, so a value a late writer sealed
    /// still opens.
    pub async fn retire_unused_keys(&self, by: &Rotator) -> Result<Vec<u32>, VaultFailure> {
        let active = self.active_key_id();
        let now = self.clock.now();
        let mut retired = Vec::new();
        for row in self.store.vault_keys().list().await? {
            if row.retired_at.is_some() || Some(row.id) == active {
                continue;
            }
            let detail = serde_json::json!({ "keyId": row.id });
            let record = self.key_record(by, AuditAction::VaultKeyRetire, row.id, detail);
            if self
                .store
                .vault_keys()
                .retire_if_unused(row.id, now, record.append())
                .await?
            {
                retired.push(row.id);
            }
        }
        Ok(retired)
    }

    /// Every key with its use.
    pub async fn key_statuses(&self) -> Result<Vec<KeyStatus>, VaultFailure> {
        self.refresh().await?;
        let active = self.active_key_id();
        let counts = self.store.secrets().count_by_key().await?;
        let rows = self.store.vault_keys().list().await?;
        Ok(rows
            .into_iter()
            .map(|row| KeyStatus {
                id: row.id,
                created_at: row.created_at,
                active: Some(row.id) == active,
                retired_at: row.retired_at,
                secrets: counts
                    .iter()
                    .find(|(key_id, _)| *key_id == row.id)
                    .map_or(0, |(_, count)| *count),
                encryptions_reserved: row.encryptions_reserved,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_proto::ManualClock;
    use hive_store_sqlite::SqliteStore;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
    const ROW: Context<'static> = Context {
        table: "secrets",
        row_id: "row-1",
    };

    async fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let store = SqliteStore::open(&dir.path().join("db"), 2).await.unwrap();
        Store::migrate(&store).await.unwrap();
        Arc::new(store)
    }

    fn small(block: u64, rotate_at: u64) -> VaultLimits {
        VaultLimits {
            reservation_block: block,
            rotate_at,
            ..VaultLimits::default()
        }
    }

    #[tokio::test]
    async fn the_first_start_makes_key_one_and_later_starts_load_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let clock: SharedClock = Arc::new(ManualClock::new(NOW));
        let master = MasterKey::from_bytes(&[7; 32]);
        let open = |master: MasterKey| {
            let (store, clock) = (store.clone(), clock.clone());
            async move { Vault::open(store, &master, clock, VaultLimits::default()).await }
        };
        let first = open(MasterKey::from_bytes(&[7; 32])).await.unwrap();
        assert_eq!(first.active_key_id(), Some(1));
        let stored = store.vault_keys().list().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert!(!stored[0].wrapped.contains(&hex::encode([7u8; 32])));
        let again = open(master).await.unwrap();
        assert_eq!(again.active_key_id(), Some(1));
        assert_eq!(store.vault_keys().list().await.unwrap(), stored);

        let refused = open(MasterKey::from_bytes(&[8; 32])).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("ENCRYPTION_KEY does not match"),
            "{refused}"
        );
        let bad = Vault::open(
            store.clone(),
            &MasterKey::from_bytes(&[7; 32]),
            clock,
            small(6, 5),
        )
        .await
        .unwrap_err();
        assert!(matches!(bad, VaultFailure::BadLimits(_)), "{bad}");
    }

    #[tokio::test]
    async fn a_key_at_its_limit_rotates_before_sealing_and_counts_survive_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let clock: SharedClock = Arc::new(ManualClock::new(NOW));
        let master = MasterKey::from_bytes(&[7; 32]);
        let vault = Vault::open(store.clone(), &master, clock.clone(), small(2, 5))
            .await
            .unwrap();
        let mut sealed = Vec::new();
        for n in 0..12u8 {
            sealed.push(vault.seal(&[n], &ROW).await.unwrap());
        }
        // Blocks of 2 up to 5: four seals a key, then the next key.
        let ids: Vec<u32> = sealed.iter().map(|s| s.key_id).collect();
        assert_eq!(ids, [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
        for (n, value) in sealed.iter().enumerate() {
            assert_eq!(
                vault.unseal(value, &ROW).await.unwrap().as_slice(),
                [n as u8]
            );
        }
        let keys = store.vault_keys().list().await.unwrap();
        assert!(keys.iter().all(|k| k.encryptions_reserved <= 5), "{keys:?}");

        // The count is in the database: a restarted process does not start key 3 over, it finds
        // it at its limit and rotates.
        drop(vault);
        let restarted = Vault::open(store.clone(), &master, clock, small(2, 5))
            .await
            .unwrap();
        assert_eq!(restarted.active_key_id(), Some(3));
        assert_eq!(restarted.seal(b"x", &ROW).await.unwrap().key_id, 4);
        let reserved: Vec<u64> = store
            .vault_keys()
            .list()
            .await
            .unwrap()
            .iter()
            .map(|k| k.encryptions_reserved)
            .collect();
        assert_eq!(reserved, [4, 4, 4, 2]);
    }

    #[tokio::test]
    async fn two_replicas_rotating_at_once_make_one_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let clock: SharedClock = Arc::new(ManualClock::new(NOW));
        let master = MasterKey::from_bytes(&[7; 32]);
        let limits = VaultLimits::default();
        let a = Vault::open(store.clone(), &master, clock.clone(), limits)
            .await
            .unwrap();
        let b = Vault::open(store.clone(), &master, clock, limits)
            .await
            .unwrap();
        let (ra, rb) = tokio::join!(a.rotate_from(1), b.rotate_from(1));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(
            [ra.created, rb.created].iter().filter(|c| **c).count(),
            1,
            "{ra:?} {rb:?}"
        );
        assert_eq!((ra.active_key_id, rb.active_key_id), (2, 2));
        assert_eq!(store.vault_keys().list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn another_replica_picks_up_a_new_key_on_sight_or_within_the_refresh_period() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let clock = Arc::new(ManualClock::new(NOW));
        let shared: SharedClock = clock.clone();
        let master = MasterKey::from_bytes(&[7; 32]);
        let limits = VaultLimits::default();
        let a = Vault::open(store.clone(), &master, shared.clone(), limits)
            .await
            .unwrap();
        let b = Vault::open(store.clone(), &master, shared, limits)
            .await
            .unwrap();
        assert!(
            a.rotate(&Rotator::system("requested"))
                .await
                .unwrap()
                .created
        );
        let under_two = a.seal(b"new", &ROW).await.unwrap();
        assert_eq!(under_two.key_id, 2);
        // B has not looked yet: it still seals under key 1 (readable by all, re-encrypted
        // later), and opens key 2's value by loading the key it does not know.
        assert_eq!(b.seal(b"late", &ROW).await.unwrap().key_id, 1);
        assert_eq!(b.unseal(&under_two, &ROW).await.unwrap().as_slice(), b"new");
        assert_eq!(b.active_key_id(), Some(2));

        assert!(
            a.rotate(&Rotator::system("requested"))
                .await
                .unwrap()
                .created
        );
        clock.advance(limits.refresh_every);
        assert_eq!(b.seal(b"later", &ROW).await.unwrap().key_id, 3);
    }
}
