//! Bodies of the secrets API. No response ever carries a value.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSecretRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub value: String,
}

/// A new version: a new value, a new description, or both.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSecretRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

crate::debug_redacted!(CreateSecretRequest {
    show: [name, description],
    hide: [value]
});
crate::debug_redacted!(UpdateSecretRequest {
    show: [description],
    hide: [value]
});
