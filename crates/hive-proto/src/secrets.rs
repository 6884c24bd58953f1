//! Bodies of the secrets API. No response ever carries a value.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSecretRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub value: String,
}

/// A new version: a new value, a new description, or both.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSecretRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub description: String,
    pub version: i64,
    /// Always true: the value exists, and is never shown.
    pub has_value: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A secret carried over from another system: `value` as `ivHex:tagHex:cipherHex` (AES-256-GCM)
/// and the raw 32-byte `key` (64 hex) it was encrypted with. Neither is kept, logged or shown.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportSecretRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub value: String,
    pub key: String,
}

/// A vault data key as an admin sees it; never its material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultKeyView {
    pub id: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// New values are sealed with this key.
    pub active: bool,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub retired_at: Option<OffsetDateTime>,
    /// Secrets still sealed under this key.
    pub secrets: u64,
    pub encryptions_reserved: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultKeysResponse {
    pub items: Vec<VaultKeyView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateKeyResponse {
    /// The key new values are sealed with now.
    pub key_id: u32,
    pub previous_key_id: u32,
    /// False when another replica rotated at the same moment and its key was adopted.
    pub created: bool,
}

/// `POST /api/v1/admin/vault/reencrypt`: what re-sealing now did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReencryptResponse {
    /// The key the values were re-sealed under (the active one).
    pub key_id: u32,
    pub resealed: u64,
    /// Values a writer changed meanwhile (they carry a fresh seal already).
    pub changed_meanwhile: u64,
    /// Values that did not open (tampered or corrupt), left as they are.
    pub unreadable: u64,
    /// Keys no value uses any more, now retired.
    pub retired_keys: Vec<u32>,
}

crate::debug_redacted!(CreateSecretRequest {
    show: [name, description],
    hide: [value]
});
crate::debug_redacted!(UpdateSecretRequest {
    show: [description],
    hide: [value]
});
crate::debug_redacted!(ImportSecretRequest {
    show: [name, description],
    hide: [value, key]
});
