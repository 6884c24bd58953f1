//! Instance settings an admin edits at run time: one JSON document per name, written with
//! optimistic concurrency (each write names the version it replaces).

use crate::{AuditAppend, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;

/// Longest setting name; names use `a`–`z`, `_` and `.` only (the schema refuses others).
pub const SETTING_NAME_MAX_CHARS: usize = 64;

/// Largest stored value, in bytes of UTF-8 (the schema refuses more).
pub const SETTING_VALUE_MAX_BYTES: usize = 64 * 1024;

/// A setting as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    pub name: String,
    /// A JSON document, as text exactly as it was written.
    pub value: String,
    /// 1 on creation, +1 on every replacement.
    pub version: i64,
    pub updated_at: OffsetDateTime,
    /// Who wrote this version (as the audit record's actor names them).
    pub updated_by: String,
}

/// A write of one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingWrite {
    pub name: String,
    /// A JSON document of at most [`SETTING_VALUE_MAX_BYTES`].
    pub value: String,
    /// `None`: create the setting (refused if it exists). `Some(v)`: replace it only if the
    /// stored version is still `v`.
    pub expected_version: Option<i64>,
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

/// What a [`SettingsRepo::put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written, with its audit record; the setting as now stored.
    Written(SettingRow),
    /// Nothing written: the stored version is not the expected one (someone else wrote first,
    /// or a create found the setting already there). `current_version` is what is stored now,
    /// `None` when there is no such setting.
    Stale { current_version: Option<i64> },
}

#[async_trait]
pub trait SettingsRepo: Send + Sync {
    /// The setting, if it was ever written.
    async fn get(&self, name: &str) -> Result<Option<SettingRow>, StoreError>;

    /// Creates or replaces a setting as `write.expected_version` says, atomically: the new
    /// version is the expected one + 1 (1 on creation). `audit` is committed with the write,
    /// and only if the write happened; when it cannot be written nothing changes
    /// ([`StoreError::AuditUnwritable`]). A name, value or author the schema refuses is
    /// [`StoreError::Invalid`].
    async fn put(
        &self,
        write: &SettingWrite,
        audit: AuditAppend<'_>,
    ) -> Result<PutOutcome, StoreError>;

    /// Every setting, by name (there are few).
    async fn list(&self) -> Result<Vec<SettingRow>, StoreError>;
}
