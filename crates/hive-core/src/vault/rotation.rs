//! Rotation of the vault's data keys, online: an admin (or a key reaching its encryption limit)
//! makes a new key active for all new writes, and a leader-only job re-seals the secrets still
//! under older keys, in batches, without ever overwriting a concurrent change. Old keys stay
//! loaded until no secret uses them; then they are marked retired (their wrapped material stays
//! stored: a value a late replica sealed under one still opens).

use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::jobs::{Job, JobContext};
use crate::vault::secrets::SecretError;
use crate::vault::secrets::{TABLE, row_id, vault_error};
use crate::vault::{KeyStatus, Rotation, Rotator, Vault, VaultFailure};
use async_trait::async_trait;
use hive_crypto::vault::{Context, Sealed};
use hive_store::{AuditOutcome, SecretRow, Store};
use std::sync::Arc;
use std::time::Duration;

/// The table whose TOTP seeds the vault seals (the context binds each seed to its row).
pub const TOTP_TABLE: &str = "totp_credentials";

/// Secrets re-sealed per database round trip.
pub const REENCRYPT_BATCH: u32 = 100;
/// How often the leader looks for secrets under an older key.
pub const REENCRYPT_EVERY: Duration = Duration::from_secs(300);

/// Key administration for admins and the CLI.
#[derive(Debug)]
pub struct KeyAdmin {
    vault: Arc<Vault>,
    store: Arc<dyn Store>,
    auditor: Auditor,
}

impl KeyAdmin {
    pub fn new(vault: Arc<Vault>, store: Arc<dyn Store>, auditor: Auditor) -> Self {
        Self {
            vault,
            store,
            auditor,
        }
    }

    fn require_admin(caller: &Caller) -> Result<(), SecretError> {
        if caller.is_admin() {
            Ok(())
        } else {
            Err(SecretError::Forbidden("only an admin manages vault keys"))
        }
    }

    /// A new data key for all new writes (audited `vault.rotate` with the key, in the same
    /// transaction; nothing is recorded here when another replica's new key was adopted: its
    /// record is that replica's). Older values stay readable
    /// and move to the new key with the re-encryption job.
    pub async fn rotate(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
    ) -> Result<Rotation, SecretError> {
        Self::require_admin(caller)?;
        let by = Rotator {
            principal: caller.principal(),
            meta: meta.clone(),
            reason: "requested",
        };
        let rotation = self.vault.rotate(&by).await.map_err(vault_error)?;
        Ok(rotation)
    }

    /// The keys with their use; never their material.
    pub async fn keys(&self, caller: &Caller) -> Result<Vec<KeyStatus>, SecretError> {
        Self::require_admin(caller)?;
        self.vault.key_statuses().await.map_err(vault_error)
    }

    /// Re-seals now, as the leader's job does in the background, every value under an older
    /// key and retires keys no value uses; audited `vault.reencrypt` as the admin who asked,
    /// even when there was nothing to do. Safe beside the job: a row is re-sealed only if it
    /// is unchanged since it was read.
    pub async fn reencrypt(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
    ) -> Result<ReencryptReport, SecretError> {
        Self::require_admin(caller)?;
        let by = Rotator {
            principal: caller.principal(),
            meta: meta.clone(),
            reason: "unused",
        };
        let report = reencrypt_secrets(self.store.as_ref(), &self.vault, REENCRYPT_BATCH, &by)
            .await
            .map_err(vault_error)?;
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::VaultReencrypt,
            target: Some(format!("vault-key:{}", report.key_id)),
            outcome: AuditOutcome::Success,
            detail: report_detail(&report),
        };
        self.auditor.record(entry, meta).await?;
        Ok(report)
    }
}

/// What a pass of re-encryption did, as its audit record says it.
fn report_detail(report: &ReencryptReport) -> serde_json::Value {
    serde_json::json!({
        "keyId": report.key_id,
        "resealed": report.resealed,
        "changedMeanwhile": report.changed_meanwhile,
        "unreadable": report.unreadable,
        "retiredKeys": report.retired_keys,
    })
}

/// What one pass of re-encryption did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    /// The key the values were re-sealed under.
    pub key_id: u32,
    pub resealed: u64,
    /// Rows a writer changed between the read and the re-seal (they carry a fresh seal).
    pub changed_meanwhile: u64,
    /// Rows that did not open (tampered or corrupt); left as they are, and their key kept.
    pub unreadable: u64,
    pub retired_keys: Vec<u32>,
}

async fn resealed(vault: &Vault, row: &SecretRow) -> Result<Sealed, VaultFailure> {
    let sealed = Sealed::from_text(&row.value)?;
    let bound_to = row_id(row.id, row.version);
    let context = Context {
        table: TABLE,
        row_id: &bound_to,
    };
    let plaintext = vault.unseal(&sealed, &context).await?;
    vault.seal(&plaintext, &context).await
}

/// Re-seals every secret and TOTP seed not under the active key, `batch` rows at a time, each
/// only if it is unchanged since it was read; then retires keys nothing uses any more (audited
/// as `by`'s).
pub async fn reencrypt_secrets(
    store: &dyn Store,
    vault: &Vault,
    batch: u32,
    by: &Rotator,
) -> Result<ReencryptReport, VaultFailure> {
    vault.refresh().await?;
    let key_id = vault
        .active_key_id()
        .ok_or(hive_crypto::vault::VaultError::NoActiveKey)?;
    let mut report = ReencryptReport {
        key_id,
        ..ReencryptReport::default()
    };
    let mut after = None;
    loop {
        let rows = store
            .secrets()
            .list_not_under_key(key_id, after, batch)
            .await?;
        for row in &rows {
            after = Some(row.id);
            let sealed = match resealed(vault, row).await {
                Ok(sealed) => sealed,
                Err(VaultFailure::Store(error)) => return Err(error.into()),
                Err(error) => {
                    tracing::warn!(secret_id = %row.id, %error, "a secret does not open; not re-encrypted");
                    report.unreadable += 1;
                    continue;
                }
            };
            if store
                .secrets()
                .reseal(row, sealed.key_id, &sealed.to_text())
                .await?
            {
                report.resealed += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
        if rows.len() < usize::try_from(batch).unwrap_or(usize::MAX) {
            break;
        }
    }
    reencrypt_totp_seeds(store, vault, batch, &mut report).await?;
    report.retired_keys = vault.retire_unused_keys(by).await?;
    Ok(report)
}

/// The same for TOTP seeds (sealed for their user's row), counted in the same report.
async fn reencrypt_totp_seeds(
    store: &dyn Store,
    vault: &Vault,
    batch: u32,
    report: &mut ReencryptReport,
) -> Result<(), VaultFailure> {
    let mut after = None;
    loop {
        let rows = store
            .mfa()
            .totp_not_under_key(report.key_id, after, batch)
            .await?;
        for row in &rows {
            after = Some(row.user_id);
            let bound_to = row.user_id.to_string();
            let context = Context {
                table: TOTP_TABLE,
                row_id: &bound_to,
            };
            let opened = match Sealed::from_text(&row.seed) {
                Ok(sealed) => vault.unseal(&sealed, &context).await,
                Err(error) => Err(error.into()),
            };
            let sealed = match opened {
                Ok(seed) => vault.seal(&seed, &context).await?,
                Err(VaultFailure::Store(error)) => return Err(error.into()),
                Err(error) => {
                    tracing::warn!(user_id = %row.user_id, %error, "a TOTP seed does not open; not re-encrypted");
                    report.unreadable += 1;
                    continue;
                }
            };
            if store
                .mfa()
                .reseal_totp(row, sealed.key_id, &sealed.to_text())
                .await?
            {
                report.resealed += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
        if rows.len() < usize::try_from(batch).unwrap_or(usize::MAX) {
            return Ok(());
        }
    }
}

/// The leader's job: re-encrypts secrets under older keys, audited `vault.reencrypt` with
/// counts when it changed anything.
pub struct ReencryptSecrets {
    pub vault: Arc<Vault>,
    pub auditor: crate::kernel::audit::Auditor,
    pub every: Duration,
    pub batch: u32,
}

#[async_trait]
impl Job for ReencryptSecrets {
    fn name(&self) -> &'static str {
        "reencrypt-secrets"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext) -> Result<String, String> {
        let by = Rotator::system("unused");
        let report = reencrypt_secrets(ctx.store.as_ref(), &self.vault, self.batch, &by)
            .await
            .map_err(|e| e.to_string())?;
        if report.resealed > 0 || !report.retired_keys.is_empty() {
            let entry = AuditEvent {
                principal: Principal::Job(self.name()),
                action: AuditAction::VaultReencrypt,
                target: Some(format!("vault-key:{}", report.key_id)),
                outcome: AuditOutcome::Success,
                detail: report_detail(&report),
            };
            let meta = RequestMeta::default();
            self.auditor
                .record(entry, &meta)
                .await
                .map_err(|e| e.to_string())?;
        }
        let note = format!(
            "re-sealed {} secrets under key {} ({} changed meanwhile, {} unreadable); retired keys {:?}",
            report.resealed,
            report.key_id,
            report.changed_meanwhile,
            report.unreadable,
            report.retired_keys
        );
        if report.unreadable > 0 {
            Err(note)
        } else {
            Ok(note)
        }
    }
}
