//! Request and response bodies of setup, authentication, users and API tokens.
//!
//! Requests refuse unknown fields; lengths are checked by the services.

use crate::{Role, TokenScope};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetupStatus {
    pub setup_completed: bool,
    pub public_registration: bool,
}

/// A single sign-on provider, as `GET /api/v1/auth/oidc/providers` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcProviderView {
    pub id: String,
    pub display_name: String,
    /// Where a browser starts signing in (`?returnTo=/path` optional).
    pub start_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcProvidersResponse {
    pub providers: Vec<OidcProviderView>,
}

/// `POST /api/v1/setup`, `POST /api/v1/auth/register`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAccountRequest {
    pub email: String,
    pub display_name: String,
    pub password: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordRequest {
    pub password: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// `PATCH /api/v1/auth/me`: the caller's own profile (a new email needs re-authentication).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `PATCH /api/v1/users/{id}` (admin).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteRequest {
    pub email: String,
    pub role: Role,
}

/// A one-time token sent in a body (never in a URL).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    pub token: String,
    pub display_name: String,
    pub password: String,
}

/// `POST /api/v1/auth/password-reset/request`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetPasswordRequest {
    pub token: String,
    pub new_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<TokenScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
    /// Whether a second factor (TOTP or a passkey) is enabled.
    pub mfa_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `GET /api/v1/auth/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    /// `None` for the internal token.
    pub user: Option<UserView>,
    /// The role in effect (for a token: min(token role, owner's role)).
    pub role: Role,
    /// `session`, `token` or `internal`.
    pub authenticated_by: String,
    /// For a session: `verified`, `second_factor_required` or `enrollment_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_stage: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub ip: String,
    pub user_agent: String,
    /// The session this request came with.
    pub current: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub scopes: Vec<TokenScope>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// `POST /api/v1/tokens`: the token itself appears here once and never again.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTokenResponse {
    pub token: String,
    #[serde(flatten)]
    pub view: TokenView,
}

/// `DELETE /api/v1/users/{id}/sessions`: how many of the user's sessions ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndedSessionsView {
    pub ended: u64,
}

/// An invitation or reset link, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkResponse {
    pub id: String,
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationView {
    pub email: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
    /// The record's place in the hash chain (`None` for a record outside the chain, inserted behind Hive's back).
    pub seq: Option<i64>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageResponse<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=` of a list (limit 1 to 100, default 50).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageQuery {
    /// At most 100 (50 when absent).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `GET /api/v1/audit/verify`: a walk of the audit log's hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerificationView {
    /// No record edited, deleted, reordered or inserted.
    pub intact: bool,
    /// Records checked before the first break (or all of them).
    pub checked: u64,
    /// Records outside the chain (Hive writes none).
    pub unchained: u64,
    /// The retention checkpoint the walk started after, if records before it were deleted.
    pub resumed_after: Option<i64>,
    /// The first break, as a sentence.
    pub first_break: Option<String>,
}

/// The filters of `GET /api/v1/audit` and `/api/v1/audit/export`; all optional, all combined.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditFilterQuery {
    /// Exactly this actor (`user:<id>`, `token:<id>`, `cli`, `system`…).
    #[serde(default)]
    pub actor: Option<String>,
    /// Exactly this action, or every action under a prefix ending in `.` or `*`
    /// (`auth.` and `auth.*` both mean `auth.…`; `auth.login*` also finds `auth.login_failed`).
    #[serde(default)]
    pub action: Option<String>,
    /// The record's target: exactly (`secret:<id>`), or a type (`secret`: every `secret:…`).
    #[serde(default)]
    pub resource: Option<String>,
    /// `success`, `failure` or `denied`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// RFC 3339; records at or after it.
    #[serde(default)]
    pub since: Option<String>,
    /// RFC 3339; records before it.
    #[serde(default)]
    pub until: Option<String>,
}

/// `GET /api/v1/audit`: a page of the filtered trail, newest first.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditListQuery {
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
}

impl AuditListQuery {
    /// The filter part (the same fields as the export's).
    pub fn filter(&self) -> AuditFilterQuery {
        AuditFilterQuery {
            actor: self.actor.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            outcome: self.outcome.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }
}

/// One line of an audit export (JSON lines, oldest first). `seq`, `prevHash` and `hash` let
/// another tool check that each chained line links to the one before (`prevHash` of a line is
/// the `hash` of the line before it when nothing was filtered out); checking a hash itself
/// needs the audit-chain key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditExportLine {
    /// The record as the query shows it (`seq` is `None` for records outside the chain;
    /// they come first).
    #[serde(flatten)]
    pub record: AuditView,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

crate::debug_redacted!(NewAccountRequest {
    show: [email, display_name],
    hide: [password]
});
crate::debug_redacted!(LoginRequest {
    show: [email],
    hide: [password]
});
crate::debug_redacted!(PasswordRequest {
    show: [],
    hide: [password]
});
crate::debug_redacted!(ChangePasswordRequest {
    show: [],
    hide: [current_password, new_password]
});
crate::debug_redacted!(TokenRequest {
    show: [],
    hide: [token]
});
crate::debug_redacted!(AcceptInvitationRequest {
    show: [display_name],
    hide: [token, password]
});
crate::debug_redacted!(ResetPasswordRequest {
    show: [],
    hide: [token, new_password]
});
crate::debug_redacted!(CreatedTokenResponse {
    show: [view],
    hide: [token]
});
crate::debug_redacted!(LinkResponse {
    show: [id, expires_at],
    hide: [url]
});

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "Secret-Value-That-Must-Not-Print";

    #[test]
    fn debug_never_shows_passwords_tokens_or_links() {
        let shown: Vec<Box<dyn std::fmt::Debug>> = vec![
            Box::new(NewAccountRequest {
                email: "a@example.com".into(),
                display_name: "A".into(),
                password: SECRET.into(),
            }),
            Box::new(LoginRequest {
                email: "a@example.com".into(),
                password: SECRET.into(),
            }),
            Box::new(PasswordRequest {
                password: SECRET.into(),
            }),
            Box::new(ChangePasswordRequest {
                current_password: SECRET.into(),
                new_password: SECRET.into(),
            }),
            Box::new(TokenRequest {
                token: SECRET.into(),
            }),
            Box::new(AcceptInvitationRequest {
                token: SECRET.into(),
                display_name: "A".into(),
                password: SECRET.into(),
            }),
            Box::new(ResetPasswordRequest {
                token: SECRET.into(),
                new_password: SECRET.into(),
            }),
            Box::new(LinkResponse {
                id: "id-1".into(),
                url: format!("https://hive.example.com/reset#{SECRET}"),
                expires_at: OffsetDateTime::UNIX_EPOCH,
            }),
            Box::new(crate::secrets::CreateSecretRequest {
                name: "n".into(),
                description: String::new(),
                value: SECRET.into(),
            }),
        ];
        for value in shown {
            let text = format!("{value:?}");
            assert!(!text.contains(SECRET), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        let login = format!(
            "{:?}",
            LoginRequest {
                email: "a@example.com".into(),
                password: SECRET.into()
            }
        );
        assert!(
            login.contains("a@example.com"),
            "non-secret fields still show"
        );
    }
}
