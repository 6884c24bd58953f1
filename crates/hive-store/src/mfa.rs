//! Second factors as stored: one TOTP credential per user (its seed sealed by the vault) and a
//! set of hashed, single-use recovery codes.

use crate::{AuditAppend, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// A user's TOTP credential.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpRow {
    pub user_id: Uuid,
    /// The sealed seed (`hive_crypto::vault::Sealed` as text); opaque to the store.
    pub seed: String,
    /// The data key the seed is sealed with.
    pub key_id: u32,
    pub created_at: OffsetDateTime,
    /// `None` while enrollment waits for its first valid code.
    pub enabled_at: Option<OffsetDateTime>,
    /// The newest step a code was accepted for; no step up to it is accepted again.
    pub last_used_step: Option<u64>,
    /// The step `failures` were counted in.
    pub failed_step: Option<u64>,
    pub failures: u32,
}

hive_proto::debug_redacted!(TotpRow {
    show: [
        user_id,
        key_id,
        created_at,
        enabled_at,
        last_used_step,
        failed_step,
        failures
    ],
    hide: [seed]
});

#[async_trait]
pub trait MfaRepo: Send + Sync {
    /// The user's credential, pending or enabled.
    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpRow>, StoreError>;

    /// Stores a pending credential (`user_id`, `seed`, `key_id`, `created_at` of `row`; it
    /// starts not enabled, with no used step and no failures, whatever `row` says), replacing a
    /// pending one. [`StoreError::Conflict`] when the user has an enabled credential: it must be
    /// removed first.
    async fn start_totp(&self, row: &TotpRow, audit: AuditAppend<'_>) -> Result<(), StoreError>;

    /// Enables a pending credential after its first valid code, recording `step` as used so the
    /// same code cannot be replayed. `Ok(false)` when there is none or it is already enabled.
    async fn enable_totp(
        &self,
        user_id: Uuid,
        step: u64,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Marks `step` used, atomically: `Ok(true)` only if the credential is enabled and no step
    /// as new as this one was used before, so of concurrent callers with one step exactly one
    /// wins. Not audited here: the caller audits the login it completes.
    async fn consume_totp_step(&self, user_id: Uuid, step: u64) -> Result<bool, StoreError>;

    /// Counts a wrong code in `step` and returns the failures counted in that step (a new step
    /// restarts at 1). [`StoreError::NotFound`] without a credential.
    async fn record_totp_failure(&self, user_id: Uuid, step: u64) -> Result<u32, StoreError>;

    /// Deletes the credential, pending or enabled (recovery codes are left alone).
    async fn remove_totp(&self, user_id: Uuid, audit: AuditAppend<'_>) -> Result<bool, StoreError>;

    /// Replaces the user's recovery codes by `hashes` (64 lowercase hex characters each) in one
    /// transaction: every old code stops working.
    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        hashes: &[String],
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError>;

    /// Uses an unused code, atomically: of concurrent callers one gets `Ok(true)`, and `audit`
    /// is written for that one only.
    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// How many of the user's codes are still unused.
    async fn recovery_codes_left(&self, user_id: Uuid) -> Result<u32, StoreError>;

    /// Up to `limit` credentials whose seed is sealed under another key than `key_id`, by user
    /// id, after `after` (for re-encryption in batches).
    async fn totp_not_under_key(
        &self,
        key_id: u32,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<TotpRow>, StoreError>;

    /// Replaces the sealed seed by the same seed sealed again under `key_id`, only if the row
    /// still holds exactly `expected`'s seed: `Ok(false)` when it was re-enrolled meanwhile.
    /// Not audited: the re-encryption job records its pass.
    async fn reseal_totp(
        &self,
        expected: &TotpRow,
        key_id: u32,
        seed: &str,
    ) -> Result<bool, StoreError>;
}

/// A step as the databases store it (signed 64 bits).
pub fn step_to_stored(step: u64) -> Result<i64, StoreError> {
    i64::try_from(step).map_err(|_| StoreError::Invalid("a TOTP step is out of range".into()))
}

/// A stored step back; a negative one is a corrupt row.
pub fn step_from_stored(step: Option<i64>) -> Result<Option<u64>, StoreError> {
    step.map(|s| {
        u64::try_from(s).map_err(|_| StoreError::Backend("a stored TOTP step is negative".into()))
    })
    .transpose()
}
