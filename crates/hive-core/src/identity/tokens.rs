//! API tokens and the internal token.

use super::{Identity, IdentityError, check_display_name, limits, require_recent_authentication};
use crate::kernel::audit::{AuditAction, AuditEvent, Principal};
use crate::kernel::caller::{Caller, Credential, RequestMeta};
use hive_crypto::token::{looks_like_api_token, new_api_token, token_hash};
use hive_proto::{Role, TokenScope};
use hive_store::{ApiTokenRow, AuditOutcome, Page, PageRequest};
use secrecy::ExposeSecret;
use time::Duration;
use uuid::Uuid;

/// A token request.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    /// Defaults to the creator's role; never above it.
    pub role: Option<Role>,
    pub scopes: Vec<TokenScope>,
    /// 1 to 365; default 90.
    pub expires_in_days: Option<i64>,
}

/// A token just made: `token` is shown once and never stored.
pub struct CreatedToken {
    pub token: String,
    pub row: ApiTokenRow,
}

impl Identity {
    /// Creates an API token for the caller's own account. A sensitive change: it needs a
    /// session re-authenticated in the last ten minutes (a token cannot mint tokens).
    pub async fn create_token(
        &self,
        caller: &Caller,
        request: &NewToken,
        meta: &RequestMeta,
    ) -> Result<CreatedToken, IdentityError> {
        let user = caller.user.as_ref().ok_or(IdentityError::Forbidden(
            "API tokens belong to a user account",
        ))?;
        let now = self.now();
        require_recent_authentication(caller, now)?;
        let name = check_display_name(&request.name)?;
        let role = request.role.unwrap_or(caller.role);
        if role > caller.role {
            return Err(IdentityError::Forbidden(
                "a token's role cannot exceed your own",
            ));
        }
        let days = request
            .expires_in_days
            .unwrap_or(limits::DEFAULT_TOKEN_DAYS);
        if !(1..=limits::MAX_TOKEN_DAYS).contains(&days) {
            return Err(IdentityError::Invalid(
                "expiresInDays must be between 1 and 365".into(),
            ));
        }
        let token = new_api_token()?;
        let row = ApiTokenRow {
            id: Uuid::now_v7(),
            user_id: user.id,
            name,
            token_hash: token_hash(&token),
            role,
            scopes: request.scopes.clone(),
            created_at: now,
            expires_at: now + Duration::days(days),
            last_used_at: None,
            revoked_at: None,
        };
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::TokenCreate,
            target: Some(format!("token:{}", row.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({
                "role": role.as_str(),
                "scopes": hive_store::scopes_to_text(&row.scopes),
                "expiresInDays": days,
            }),
        };
        let record = self.auditor.in_transaction(entry, meta);
        self.store
            .api_tokens()
            .create(&row, record.append())
            .await?;
        Ok(CreatedToken { token, row })
    }

    /// A user's tokens, newest first.
    pub async fn list_tokens(
        &self,
        user_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<ApiTokenRow>, IdentityError> {
        Ok(self.store.api_tokens().list_for_user(user_id, page).await?)
    }

    /// Revokes a token: the caller's own, or anyone's for an admin (others' tokens are
    /// [`IdentityError::NotFound`] to a non-admin).
    pub async fn revoke_token(
        &self,
        caller: &Caller,
        token_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let owner = caller.owner_scope()?;
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::TokenRevoke,
            target: Some(format!("token:{token_id}")),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({}),
        };
        let record = self.auditor.in_transaction(entry, meta);
        if self
            .store
            .api_tokens()
            .revoke(token_id, owner, self.now(), record.append())
            .await?
        {
            Ok(())
        } else {
            Err(IdentityError::NotFound)
        }
    }

    /// The caller behind a bearer credential: the internal token (an operator) or a live API
    /// token whose owner is active. Its role is min(token role, owner's current role).
    ///
    /// A token that passed is kept with its owner for a second at most (never past its expiry),
    /// so that a client's burst of calls reads the database once; any change of users, sessions
    /// or tokens, on any replica, ends every kept one (`kernel::changes`).
    pub async fn authenticate_bearer(
        &self,
        presented: &str,
    ) -> Result<Option<Caller>, IdentityError> {
        if let Some(internal) = &self.settings.internal_token
            && hive_crypto::constant_time_eq(
                internal.expose_secret().as_bytes(),
                presented.as_bytes(),
            )
        {
            return Ok(Some(Caller {
                user: None,
                role: Role::Operator,
                credential: Credential::Internal,
            }));
        }
        if !looks_like_api_token(presented) {
            return Ok(None);
        }
        let now = self.now();
        let hash = token_hash(presented);
        let (mut token, owner, ticket, read) = match self.cached_tokens.get(&hash, now) {
            Some(((token, owner), ticket)) => (token, owner, ticket, false),
            None => {
                let ticket = self.cached_tokens.ticket(now);
                let Some(token) = self.store.api_tokens().find_by_token_hash(&hash).await? else {
                    return Ok(None);
                };
                if !token_live(&token, now) {
                    return Ok(None);
                }
                let Some(owner) = self.store.users().get(token.user_id).await? else {
                    return Ok(None);
                };
                (token, owner, ticket, true)
            }
        };
        // Checked on a kept pair too: only a pair that passed is kept, and this keeps it so.
        if !token_live(&token, now) || !owner.active {
            return Ok(None);
        }
        // The policy's "nothing before enrollment" holds for the user's tokens too.
        if self.settings.mfa_policy.requires(owner.role) && !owner.second_factor {
            let entry = AuditEvent {
                principal: Principal::Token(token.id),
                action: AuditAction::AuthToken,
                target: Some(Principal::User(owner.id).to_string()),
                outcome: AuditOutcome::Denied,
                detail: serde_json::json!({ "reason": "mfa_enrollment_required" }),
            };
            self.auditor
                .record_refusal(entry, &RequestMeta::default())
                .await;
            return Err(IdentityError::EnrollmentRequired);
        }
        let stale = token
            .last_used_at
            .is_none_or(|at| now - at >= limits::SESSION_TOUCH_EVERY);
        if stale {
            self.store.api_tokens().touch(token.id, now).await?;
            token.last_used_at = Some(now);
        }
        // Kept again after a touch (under the old ticket, so no longer than before), or the
        // next request would touch again.
        if read || stale {
            let pair = (token.clone(), owner.clone());
            self.cached_tokens.put(hash, pair, ticket, token.expires_at);
        }
        Ok(Some(Caller {
            role: token.role.min(owner.role),
            user: Some(owner),
            credential: Credential::ApiToken {
                token_id: token.id,
                scopes: token.scopes,
            },
        }))
    }
}

/// Neither revoked nor expired at `now`.
fn token_live(token: &ApiTokenRow, now: time::OffsetDateTime) -> bool {
    token.revoked_at.is_none() && now < token.expires_at
}

hive_proto::debug_redacted!(CreatedToken {
    show: [row],
    hide: [token]
});
