//! Rows of the store as the API shows them (the CLI shows them so too when it works on the
//! data directory).

pub use super::agents::view as agent_view;
pub use super::secrets::view as secret_view;

use crate::error::ApiError;
use hive_core::kernel::audit::Verification;
use hive_core::vault::rotation::ReencryptReport;
use hive_proto::ErrorCode;
use hive_proto::auth::{AuditVerificationView, PageQuery, SessionView, TokenView, UserView};
use hive_proto::secrets::ReencryptResponse;
use hive_store::{ApiTokenRow, PageRequest, SessionRow, UserRow};

const DEFAULT_PAGE_SIZE: u32 = 50;

pub fn page_request(query: &PageQuery) -> Result<PageRequest, ApiError> {
    PageRequest::new(
        query.limit.unwrap_or(DEFAULT_PAGE_SIZE),
        query.cursor.as_deref(),
    )
    .map_err(|error| ApiError::new(ErrorCode::ValidationFailed, error.to_string()))
}

pub fn user_view(user: &UserRow) -> UserView {
    UserView {
        id: user.id.to_string(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role: user.role,
        active: user.active,
        mfa_enabled: user.second_factor,
        created_at: user.created_at,
    }
}

pub fn session_view(session: &SessionRow, current: bool) -> SessionView {
    SessionView {
        id: session.id.to_string(),
        created_at: session.created_at,
        last_seen_at: session.last_seen_at,
        expires_at: session.expires_at,
        ip: session.ip.clone(),
        user_agent: session.user_agent.clone(),
        current,
    }
}

pub fn token_view(token: &ApiTokenRow) -> TokenView {
    TokenView {
        id: token.id.to_string(),
        name: token.name.clone(),
        role: token.role,
        scopes: token.scopes.clone(),
        created_at: token.created_at,
        expires_at: token.expires_at,
        last_used_at: token.last_used_at,
        revoked_at: token.revoked_at,
    }
}

/// What a walk of the audit chain found.
pub fn verification_view(report: &Verification) -> AuditVerificationView {
    AuditVerificationView {
        intact: report.first_break.is_none(),
        checked: report.checked,
        unchained: report.unchained,
        resumed_after: report.resumed_after,
        first_break: report.first_break.as_ref().map(ToString::to_string),
    }
}

/// What a pass of re-encryption did.
pub fn reencrypt_view(report: &ReencryptReport) -> ReencryptResponse {
    ReencryptResponse {
        key_id: report.key_id,
        resealed: report.resealed,
        changed_meanwhile: report.changed_meanwhile,
        unreadable: report.unreadable,
        retired_keys: report.retired_keys.clone(),
    }
}
