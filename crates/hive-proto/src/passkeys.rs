//! Request and response bodies of passkeys (WebAuthn): registration, passwordless login and a
//! passkey as the second factor.
//!
//! The WebAuthn objects themselves (`publicKey` options, the browser's `credential` answer)
//! travel in their standard JSON form (base64url for binary values) and are checked by the
//! server's verifier, not here.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The answer to every `…/start`: pass `publicKey` to `navigator.credentials.create()` or
/// `.get()` and send the result back with `ceremonyId` within five minutes.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyCeremony {
    /// One-time handle of this ceremony (64 hex characters).
    pub ceremony_id: String,
    /// `PublicKeyCredentialCreationOptions` or `PublicKeyCredentialRequestOptions` as JSON.
    pub public_key: serde_json::Value,
    /// `conditional` for a login: the browser may offer passkeys in its autofill list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mediation: Option<String>,
}

/// `POST /api/v1/auth/passkeys/register/finish`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FinishPasskeyRegistration {
    pub ceremony_id: String,
    /// The `RegistrationResponseJSON` of `navigator.credentials.create()`.
    pub credential: serde_json::Value,
    /// What to call the passkey (default "Passkey"; 1 to 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `POST /api/v1/auth/mfa/passkey/finish`, `POST /api/v1/auth/passkey-login/finish`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FinishPasskeyAssertion {
    pub ceremony_id: String,
    /// The `AuthenticationResponseJSON` of `navigator.credentials.get()`.
    pub credential: serde_json::Value,
}

/// `PATCH /api/v1/auth/passkeys/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenamePasskeyRequest {
    pub name: String,
}

/// A registered passkey as its owner sees it (no key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    /// The credential id (base64url), as the browser names the credential.
    pub credential_id: String,
    /// Whether the passkey can be synced to the user's other devices.
    pub backup_eligible: bool,
    /// Whether it was synced when last used.
    pub backed_up: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

// The ceremony id is a live one-time handle: never in a log line.
crate::debug_redacted!(PasskeyCeremony {
    show: [public_key, mediation],
    hide: [ceremony_id]
});
crate::debug_redacted!(FinishPasskeyRegistration {
    show: [name],
    hide: [ceremony_id, credential]
});
crate::debug_redacted!(FinishPasskeyAssertion {
    show: [],
    hide: [ceremony_id, credential]
});
