//! Secrets: named values an operator keeps for the features that need them (agent
//! credentials, webhook secrets…). Values are sealed by the vault, bound to the secret's id and
//! version, never returned by the API and never written to logs or audit records; features read
//! them with [`SecretService::reveal`].

use crate::kernel::audit::Unrecorded;
use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, TransactionRecord};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::vault::{Vault, VaultFailure};
use hive_crypto::vault::{Context, MasterKey, Sealed};
use hive_proto::SharedClock;
use hive_store::{AuditOutcome, MAX_PAGE_SIZE, Page, PageRequest, SecretRow, Store, StoreError};
use std::sync::Arc;
use uuid::Uuid;
use zeroize::Zeroizing;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

pub(crate) const TABLE: &str = "secrets";

hive_proto::debug_redacted!(NewSecret {
    show: [name, description],
    hide: [value]
});
hive_proto::debug_redacted!(SecretChange {
    show: [description],
    hide: [value]
});

/// A new secret as the caller gave it.
#[derive(Clone)]
pub struct NewSecret {
    pub name: String,
    pub description: String,
    pub value: Zeroizing<String>,
}

/// A secret carried over from another system: its value in the seeds' format
/// (`ivHex:tagHex:cipherHex`, AES-256-GCM) and the raw key it was encrypted with.
#[derive(Clone)]
pub struct ImportedSecret {
    pub name: String,
    pub description: String,
    pub value: Zeroizing<String>,
    pub key: Zeroizing<String>,
}

/// A change: a new value, a new description, or both; either makes a new version.
#[derive(Clone, Default)]
pub struct SecretChange {
    pub description: Option<String>,
    pub value: Option<Zeroizing<String>>,
}

#[derive(Debug)]
pub struct SecretService {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    clock: SharedClock,
    auditor: Auditor,
}

/// The row id a value is bound to: the secret and its version (an older version's ciphertext
/// copied back does not open).
pub(crate) fn row_id(id: Uuid, version: i64) -> String {
    format!("{id}/v{version}")
}

crate::kernel::refusal::domain_error!(
    /// Why a secrets call was refused. Messages are safe to show to the caller.
    SecretError,
    "secrets"
);

impl From<Unrecorded> for SecretError {
    fn from(_: Unrecorded) -> Self {
        Self::Unavailable
    }
}

pub(crate) fn vault_error(error: VaultFailure) -> SecretError {
    match error {
        VaultFailure::Store(store) => store.into(),
        other => SecretError::Internal(other.to_string()),
    }
}

fn check_name(name: &str) -> Result<String, SecretError> {
    let name = name.trim();
    let valid = (1..=MAX_NAME_CHARS).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(SecretError::Invalid(
            "name must be 1 to 100 characters of A-Z a-z 0-9 _ - .".into(),
        ))
    }
}

fn check_description(description: &str) -> Result<String, SecretError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS
        || description.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(SecretError::Invalid(
            "description must be at most 500 characters without control characters".into(),
        ));
    }
    Ok(description.to_owned())
}

fn check_value(value: &str) -> Result<(), SecretError> {
    if value.is_empty() || value.len() > MAX_VALUE_BYTES {
        return Err(SecretError::Invalid(
            "value must be 1 byte to 64 KiB".into(),
        ));
    }
    Ok(())
}

impl SecretService {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        clock: SharedClock,
        auditor: Auditor,
    ) -> Self {
        Self {
            store,
            vault,
            clock,
            auditor,
        }
    }

    async fn seal(&self, id: Uuid, version: i64, value: &[u8]) -> Result<Sealed, SecretError> {
        let row = row_id(id, version);
        let context = Context {
            table: TABLE,
            row_id: &row,
        };
        self.vault.seal(value, &context).await.map_err(vault_error)
    }

    /// The record of a change to `secret` (its name and version, never its value).
    fn record(
        &self,
        caller: &Caller,
        action: AuditAction,
        secret: &SecretRow,
        meta: &RequestMeta,
    ) -> TransactionRecord {
        let entry = AuditEvent {
            principal: caller.principal(),
            action,
            target: Some(format!("secret:{}", secret.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "name": secret.name, "version": secret.version }),
        };
        self.auditor.in_transaction(entry, meta)
    }

    pub async fn create(
        &self,
        caller: &Caller,
        new: &NewSecret,
        meta: &RequestMeta,
    ) -> Result<SecretRow, SecretError> {
        self.create_recorded_as(caller, new, meta, AuditAction::SecretCreate)
            .await
    }

    /// Creates a secret, recorded under `action` (a creation or an import).
    async fn create_recorded_as(
        &self,
        caller: &Caller,
        new: &NewSecret,
        meta: &RequestMeta,
        action: AuditAction,
    ) -> Result<SecretRow, SecretError> {
        let owner_id = caller
            .user_id()
            .ok_or(SecretError::Forbidden("secrets belong to a user account"))?;
        let name = check_name(&new.name)?;
        let description = check_description(&new.description)?;
        check_value(&new.value)?;
        let id = Uuid::now_v7();
        let sealed = self.seal(id, 1, new.value.as_bytes()).await?;
        let now = hive_store::truncate_to_micros(self.clock.now());
        let row = SecretRow {
            id,
            owner_id,
            name,
            description,
            version: 1,
            key_id: sealed.key_id,
            value: sealed.to_text(),
            created_at: now,
            updated_at: now,
        };
        let record = self.record(caller, action, &row, meta);
        match self.store.secrets().create(&row, record.append()).await {
            Ok(()) => Ok(row),
            Err(StoreError::Conflict(_)) => Err(SecretError::Conflict(
                "you already have a secret with this name",
            )),
            Err(other) => Err(other.into()),
        }
    }

    /// A secret the caller may see (their own; anyone's for an admin), else `NotFound`.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<SecretRow, SecretError> {
        self.store
            .secrets()
            .get(id, caller.owner_scope()?)
            .await?
            .ok_or(SecretError::NotFound)
    }

    pub async fn list(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Page<SecretRow>, SecretError> {
        Ok(self
            .store
            .secrets()
            .list(caller.owner_scope()?, page)
            .await?)
    }

    /// A new version: the new value (or the old one, sealed again for the new version) and
    /// description. A concurrent change wins over this one (`Conflict`).
    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        change: &SecretChange,
        meta: &RequestMeta,
    ) -> Result<SecretRow, SecretError> {
        let current = self.get(caller, id).await?;
        let description = match &change.description {
            Some(description) => check_description(description)?,
            None => current.description.clone(),
        };
        let value = match &change.value {
            Some(value) => {
                check_value(value)?;
                Zeroizing::new(value.as_bytes().to_vec())
            }
            None => self.reveal(&current).await?,
        };
        let version = current.version + 1;
        let sealed = self.seal(id, version, &value).await?;
        let now = hive_store::truncate_to_micros(self.clock.now());
        let updated = SecretRow {
            description,
            version,
            key_id: sealed.key_id,
            value: sealed.to_text(),
            updated_at: now,
            ..current
        };
        let record = self.record(caller, AuditAction::SecretUpdate, &updated, meta);
        let replaced = self
            .store
            .secrets()
            .replace_value(&updated, record.append())
            .await?;
        if !replaced {
            return Err(SecretError::Conflict(
                "the secret changed meanwhile; read it again",
            ));
        }
        Ok(updated)
    }

    pub async fn delete(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), SecretError> {
        let current = self.get(caller, id).await?;
        let record = self.record(caller, AuditAction::SecretDelete, &current, meta);
        if self
            .store
            .secrets()
            .delete(id, caller.owner_scope()?, record.append())
            .await?
        {
            Ok(())
        } else {
            Err(SecretError::NotFound)
        }
    }

    /// The plaintext of a stored secret, for the feature that injects it. Never sent to a
    /// client.
    pub async fn reveal(&self, secret: &SecretRow) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let sealed =
            Sealed::from_text(&secret.value).map_err(|e| vault_error(VaultFailure::Crypto(e)))?;
        let row = row_id(secret.id, secret.version);
        let context = Context {
            table: TABLE,
            row_id: &row,
        };
        self.vault
            .unseal(&sealed, &context)
            .await
            .map_err(vault_error)
    }

    /// The plaintext of `owner_id`'s secret `id`, for a feature that sends it on the owner's
    /// behalf (an `llm` agent's API key), or `None` when the owner has no such secret. This is
    /// not a reveal to a person and is not audited per use (that would be a record for every
    /// call); each use is counted in `hive_secret_uses_total{feature}` and traced with the
    /// secret's id, never its value.
    pub(crate) async fn value_for_use(
        &self,
        owner_id: Uuid,
        id: Uuid,
        feature: &'static str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, SecretError> {
        let Some(secret) = self.store.secrets().get(id, Some(owner_id)).await? else {
            return Ok(None);
        };
        let value = self.reveal(&secret).await?;
        metrics::counter!("hive_secret_uses_total", "feature" => feature).increment(1);
        tracing::debug!(secret = %secret.id, version = secret.version, feature, "secret used");
        Ok(Some(value))
    }

    /// The names of all of `owner_id`'s secrets.
    pub(crate) async fn names_of(
        &self,
        owner_id: Uuid,
    ) -> Result<std::collections::HashSet<String>, SecretError> {
        let mut names = std::collections::HashSet::new();
        let mut page = PageRequest::first(MAX_PAGE_SIZE)
            .map_err(|error| SecretError::Internal(error.to_string()))?;
        loop {
            let secrets = self.store.secrets().list(Some(owner_id), &page).await?;
            names.extend(secrets.items.into_iter().map(|secret| secret.name));
            match secrets.next_cursor {
                Some(cursor) => {
                    page = PageRequest::new(MAX_PAGE_SIZE, Some(&cursor))
                        .map_err(|error| SecretError::Internal(error.to_string()))?;
                }
                None => return Ok(names),
            }
        }
    }

    /// [`Self::value_for_use`] of `owner_id`'s secret named `name` (a hosted agent's manifest
    /// names its secrets), or `None` when the owner has none of that name.
    pub(crate) async fn value_by_name(
        &self,
        owner_id: Uuid,
        name: &str,
        feature: &'static str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, SecretError> {
        let mut page = PageRequest::first(MAX_PAGE_SIZE)
            .map_err(|error| SecretError::Internal(error.to_string()))?;
        loop {
            let secrets = self.store.secrets().list(Some(owner_id), &page).await?;
            if let Some(secret) = secrets.items.iter().find(|secret| secret.name == name) {
                return self.value_for_use(owner_id, secret.id, feature).await;
            }
            match secrets.next_cursor {
                Some(cursor) => {
                    page = PageRequest::new(MAX_PAGE_SIZE, Some(&cursor))
                        .map_err(|error| SecretError::Internal(error.to_string()))?;
                }
                None => return Ok(None),
            }
        }
    }

    /// `Bearer <value>` of the owner's secret `id` (trimmed), marked sensitive so the HTTP stack
    /// never logs it, for an outbound call of `feature`; why not, in words safe to show.
    pub(crate) async fn bearer_header(
        &self,
        owner_id: Uuid,
        id: Uuid,
        feature: &'static str,
    ) -> Result<http::HeaderValue, &'static str> {
        let value = self
            .value_for_use(owner_id, id, feature)
            .await
            .map_err(|_| "the secret cannot be read now")?
            .ok_or("the secret is gone")?;
        let key = std::str::from_utf8(&value)
            .map_err(|_| "the secret is not text")?
            .trim();
        let mut bearer = Zeroizing::new(Vec::with_capacity(key.len() + 7));
        bearer.extend_from_slice(b"Bearer ");
        bearer.extend_from_slice(key.as_bytes());
        let mut header = http::HeaderValue::from_bytes(&bearer)
            .map_err(|_| "the secret is not a valid header value")?;
        header.set_sensitive(true);
        Ok(header)
    }

    /// Opens a value in the seeds' format with the key given and stores it as a new secret,
    /// sealed like any other (audited as `secret.create`). The key and the plaintext are
    /// neither kept nor shown; a wrong key or a garbled value creates nothing, and the answer
    /// says which of the two inputs is wrong, never their content.
    pub async fn import(
        &self,
        caller: &Caller,
        imported: &ImportedSecret,
        meta: &RequestMeta,
    ) -> Result<SecretRow, SecretError> {
        let key = MasterKey::from_hex(&imported.key).map_err(|_| {
            SecretError::Invalid("key must be 64 hexadecimal characters (32 bytes)".into())
        })?;
        let opened = hive_crypto::vault::open_imported(&key, &imported.value).map_err(|_| {
            SecretError::Invalid(
                "value must be ivHex:tagHex:cipherHex and decrypt with the key given".into(),
            )
        })?;
        let text = std::str::from_utf8(&opened)
            .map_err(|_| SecretError::Invalid("the decrypted value must be UTF-8 text".into()))?;
        let new = NewSecret {
            name: imported.name.clone(),
            description: imported.description.clone(),
            value: Zeroizing::new(text.to_owned()),
        };
        self.create_recorded_as(caller, &new, meta, AuditAction::SecretImport)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_descriptions_are_checked() {
        assert_eq!(check_name(" openai.key-1 ").unwrap(), "openai.key-1");
        for bad in ["", "has space", "ü", &"n".repeat(101), "a/b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_description(&"d".repeat(501)).is_err());
        assert!(check_description("line\u{7}").is_err());
        assert!(check_value("").is_err());
        assert!(check_value(&"v".repeat(MAX_VALUE_BYTES + 1)).is_err());
        assert!(check_value("x").is_ok());
    }
}
