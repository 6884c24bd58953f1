//! Login, sessions and re-authentication.

use super::{Identity, IdentityError, limits, normalize_email, utc_day};
use crate::kernel::audit::{AuditAction, AuditEvent, Principal};
use crate::kernel::caller::{Caller, Credential, RequestMeta, SessionStage};
use hive_crypto::password::Verdict;
use hive_crypto::token::{looks_like_opaque_token, new_opaque_token, token_hash};
use hive_state::Claim;
use hive_store::{AuditOutcome, LoginThrottle, Page, PageRequest, SessionRow, StoreError, UserRow};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A session just made: the token goes into the cookie once and is never stored.
pub struct NewSession {
    pub token: String,
    pub session: SessionRow,
    pub user: UserRow,
}

/// How a session was opened, as its `auth.login` record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginMethod {
    Password {
        rehashed: bool,
    },
    /// OpenID Connect through the named provider.
    Oidc {
        provider: String,
    },
    /// A user-verified passkey: possession and verification in one, so both factors.
    Passkey,
}

impl LoginMethod {
    fn detail(&self) -> serde_json::Value {
        match self {
            Self::Password { rehashed } => {
                serde_json::json!({ "method": "password", "rehashed": rehashed })
            }
            Self::Oidc { provider } => {
                serde_json::json!({ "method": "oidc", "provider": provider })
            }
            Self::Passkey => serde_json::json!({ "method": "passkey" }),
        }
    }
}

/// What a login attempt came to (the server answers every failure the same way).
#[derive(Debug)]
pub enum LoginOutcome {
    LoggedIn(Box<NewSession>),
    Refused,
}

/// Why an existing account may not try now.
fn throttled(throttle: &LoginThrottle, now: OffsetDateTime) -> Option<&'static str> {
    if throttle.failure_day == utc_day(now) && throttle.failures_today >= limits::DAILY_FAILURE_LOCK
    {
        return Some("locked_for_the_day");
    }
    let last = throttle.last_failure_at?;
    let index = usize::try_from(throttle.consecutive_failures)
        .unwrap_or(usize::MAX)
        .clamp(1, limits::LOGIN_DELAYS_SECONDS.len())
        - 1;
    let delay = Duration::seconds(limits::LOGIN_DELAYS_SECONDS[index]);
    (throttle.consecutive_failures > 0 && now < last + delay).then_some("delayed")
}

/// When a session ends unless it is used: its absolute end, or its idle limit after it was
/// last seen.
fn session_end(session: &SessionRow) -> OffsetDateTime {
    session
        .expires_at
        .min(session.last_seen_at + limits::SESSION_IDLE)
}

impl Identity {
    /// The claim key of password attempts on `email` (normalized): its hash, so that the
    /// shared store never holds an address.
    pub fn attempt_claim_key(email: &str) -> String {
        format!("login:{}", hive_crypto::sha256_hex(email.as_bytes()))
    }

    /// Takes the claim of a password attempt on `email`'s account (unknown addresses
    /// included, so that a claim tells nothing): one attempt in flight per account, on every
    /// replica. `None` while another attempt holds it. The claim is taken before the account's
    /// throttle is read and released after the attempt's outcome is recorded, so concurrent
    /// attempts cannot all read the same "no delay" — the delay is claimed, not just read. An
    /// attempt cancelled on the way (the client went away) gives the claim back by dropping it.
    async fn claim_attempt(&self, email: &str) -> Result<Option<Claim>, IdentityError> {
        self.claims
            .claim(&Self::attempt_claim_key(email), limits::ATTEMPT_CLAIM_TTL)
            .await
            .map_err(|error| {
                tracing::error!(%error, "a login attempt could not be claimed; refusing");
                IdentityError::Unavailable
            })
    }

    async fn release_attempt(&self, claim: Option<Claim>) {
        if let Some(claim) = claim
            && let Err(error) = claim.release().await
        {
            tracing::warn!(%error, "a login attempt's claim was not released; it lapses by itself");
        }
    }

    /// Checks email and password and opens a session. Unknown account, wrong password, a
    /// throttled or locked account, a deactivated one and an attempt made while another on
    /// the same account is in flight all end in [`LoginOutcome::Refused`] after the same
    /// password-hash work.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome, IdentityError> {
        let email = normalize_email(email).unwrap_or_default();
        let claim = self.claim_attempt(&email).await?;
        let outcome = self
            .login_claimed(&email, password, claim.is_some(), meta)
            .await;
        self.release_attempt(claim).await;
        outcome
    }

    async fn login_claimed(
        &self,
        email: &str,
        password: &str,
        claimed: bool,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome, IdentityError> {
        let now = self.now();
        let user = if email.is_empty() {
            None
        } else {
            self.store.users().find_by_email(email).await?
        };
        let refusal = match &user {
            _ if !claimed => Some("attempt_in_flight"),
            None => Some("unknown_account"),
            Some(user) if !user.active => Some("deactivated"),
            Some(user) => throttled(&user.throttle, now),
        };
        // Throttled and unknown accounts verify against the dummy hash: same work, no answer.
        let stored = match (&user, refusal) {
            (Some(user), None) => user.password_hash.as_deref(),
            _ => None,
        };
        let verdict = self.verify_password(password, stored).await?;
        let (Some(user), None, Verdict::Match | Verdict::MatchNeedsRehash) =
            (&user, refusal, verdict)
        else {
            let reason = refusal.unwrap_or("wrong_password");
            if let (Some(user), "wrong_password") = (&user, reason) {
                self.store
                    .users()
                    .record_login_failure(user.id, utc_day(now), now)
                    .await?;
            }
            let entry = AuditEvent {
                principal: Principal::Anonymous,
                action: AuditAction::AuthLogin,
                target: user
                    .as_ref()
                    .map(|user| Principal::User(user.id).to_string()),
                outcome: AuditOutcome::Failure,
                detail: serde_json::json!({ "reason": reason }),
            };
            self.auditor.record_refusal(entry, meta).await;
            return Ok(LoginOutcome::Refused);
        };
        let rehash = match verdict {
            Verdict::MatchNeedsRehash => Some(self.hash_password(password).await?),
            _ => None,
        };
        self.store
            .users()
            .record_login_success(user.id, rehash.as_deref(), now)
            .await?;
        let method = LoginMethod::Password {
            rehashed: rehash.is_some(),
        };
        let session = self.start_session(user, method, meta).await?;
        Ok(LoginOutcome::LoggedIn(Box::new(session)))
    }

    /// Opens a session for `user`, who has just proved who they are by `method`, recorded as a
    /// successful `auth.login`. Only a passkey login starts with its second factor verified;
    /// any other session of a user with a second factor must verify it before use.
    pub async fn start_session(
        &self,
        user: &UserRow,
        method: LoginMethod,
        meta: &RequestMeta,
    ) -> Result<NewSession, IdentityError> {
        let now = self.now();
        let detail = method.detail();
        let token = new_opaque_token()?;
        let session = SessionRow {
            id: Uuid::now_v7(),
            user_id: user.id,
            token_hash: token_hash(&token),
            created_at: now,
            last_seen_at: now,
            expires_at: now + limits::SESSION_ABSOLUTE,
            authenticated_at: now,
            second_factor_at: (method == LoginMethod::Passkey).then_some(now),
            ip: meta.ip.clone().unwrap_or_default(),
            user_agent: meta
                .user_agent
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take(256)
                .collect(),
        };
        let entry = AuditEvent {
            principal: Principal::User(user.id),
            action: AuditAction::AuthLogin,
            target: Some(format!("session:{}", session.id)),
            outcome: AuditOutcome::Success,
            detail,
        };
        let record = self.auditor.in_transaction(entry, meta);
        self.store
            .sessions()
            .create(&session, limits::MAX_SESSIONS_PER_USER, record.append())
            .await?;
        Ok(NewSession {
            token,
            session,
            user: user.clone(),
        })
    }

    /// The caller behind a session cookie, or `None` when the token is unknown, expired
    /// (absolute or idle) or its user is deactivated. Keeps the session alive.
    ///
    /// A session that passed is kept with its user for a second at most (never past its
    /// absolute or idle end), so that a page's burst of requests reads the database once; any
    /// change of users, sessions or tokens, on any replica, ends every kept one
    /// (`kernel::changes`). An expired session is deleted only on what the database said.
    pub async fn authenticate_session(&self, token: &str) -> Result<Option<Caller>, IdentityError> {
        if !looks_like_opaque_token(token) {
            return Ok(None);
        }
        let now = self.now();
        let hash = token_hash(token);
        let (mut session, user, ticket, read) = match self.cached_sessions.get(&hash, now) {
            Some(((session, user), ticket)) => (session, user, ticket, false),
            None => {
                let ticket = self.cached_sessions.ticket(now);
                let Some(session) = self.store.sessions().find_by_token_hash(&hash).await? else {
                    return Ok(None);
                };
                if now >= session_end(&session) {
                    // Housekeeping, not an action of anyone's: no record.
                    self.store.sessions().delete(session.id, None, None).await?;
                    return Ok(None);
                }
                let Some(user) = self.store.users().get(session.user_id).await? else {
                    return Ok(None);
                };
                (session, user, ticket, true)
            }
        };
        // Checked on a kept pair too: only a pair that passed is kept, and this keeps it so.
        if now >= session_end(&session) || !user.active {
            return Ok(None);
        }
        let touch = now - session.last_seen_at >= limits::SESSION_TOUCH_EVERY;
        if touch {
            self.store.sessions().touch(session.id, now).await?;
            session.last_seen_at = now;
        }
        // Kept again after a touch (under the old ticket, so no longer than before), or the
        // next request would touch again.
        if read || touch {
            let end = session_end(&session);
            self.cached_sessions
                .put(hash, (session.clone(), user.clone()), ticket, end);
        }
        let stage = SessionStage::of(&user, &session, self.settings.mfa_policy);
        Ok(Some(Caller {
            role: user.role,
            user: Some(user),
            credential: Credential::Session {
                session_id: session.id,
                authenticated_at: session.authenticated_at,
                stage,
            },
        }))
    }

    /// Marks the caller's session as having passed its second factor (`factor`: `totp`,
    /// `recovery_code`, `passkey`), after the caller checked it. Audited `auth.mfa.verify`.
    pub async fn complete_second_factor(
        &self,
        caller: &Caller,
        factor: &'static str,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let Credential::Session { session_id, .. } = caller.credential else {
            return Err(IdentityError::Forbidden(
                "a second factor is verified in a login session",
            ));
        };
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AuthMfaVerify,
            target: Some(format!("session:{session_id}")),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "factor": factor }),
        };
        let record = self.auditor.in_transaction(entry, meta);
        let marked = self
            .store
            .sessions()
            .mark_second_factor(session_id, self.now(), record.append())
            .await?;
        if marked {
            Ok(())
        } else {
            Err(IdentityError::Unauthenticated)
        }
    }

    /// Ends the caller's session.
    pub async fn logout(&self, caller: &Caller, meta: &RequestMeta) -> Result<(), IdentityError> {
        let Credential::Session { session_id, .. } = caller.credential else {
            return Err(IdentityError::Forbidden(
                "only a session can log out; revoke a token instead",
            ));
        };
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AuthLogout,
            target: Some(format!("session:{session_id}")),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({}),
        };
        let record = self.auditor.in_transaction(entry, meta);
        let sessions = self.store.sessions();
        match sessions
            .delete(session_id, None, Some(record.append()))
            .await
        {
            Ok(_) => Ok(()),
            // Ending a session is never held back for want of its record: a session that
            // stays alive because the audit log is down would be the worse failure.
            Err(StoreError::AuditUnwritable(detail)) => {
                tracing::error!(%detail, "logout not audited; the session is ended anyway");
                sessions.delete(session_id, None, None).await?;
                Ok(())
            }
            Err(other) => Err(other.into()),
        }
    }

    /// The caller's own sessions, newest first.
    /// One page of the user's live sessions (neither expired nor idle too long), newest first.
    pub async fn list_sessions(
        &self,
        user_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<SessionRow>, IdentityError> {
        let now = self.now();
        Ok(self
            .store
            .sessions()
            .list_live_page(user_id, now, now - limits::SESSION_IDLE, page)
            .await?)
    }

    /// Revokes a session: the caller's own, or anyone's for an admin. Another user's session
    /// is [`IdentityError::NotFound`] to a non-admin.
    pub async fn revoke_session(
        &self,
        caller: &Caller,
        session_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let owner = caller.owner_scope()?;
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AuthSessionRevoke,
            target: Some(format!("session:{session_id}")),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({}),
        };
        let record = self.auditor.in_transaction(entry, meta);
        if self
            .store
            .sessions()
            .delete(session_id, owner, Some(record.append()))
            .await?
        {
            Ok(())
        } else {
            Err(IdentityError::NotFound)
        }
    }

    /// Ends every session of a user (admin).
    pub async fn revoke_all_sessions(
        &self,
        caller: &Caller,
        user_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<u64, IdentityError> {
        if !caller.is_admin() {
            return Err(IdentityError::NotFound);
        }
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AuthSessionRevokeAll,
            target: Some(format!("user:{user_id}")),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({}),
        };
        let record = self.auditor.in_transaction(entry, meta);
        Ok(self
            .store
            .sessions()
            .delete_for_user(user_id, None, record.append())
            .await?)
    }

    /// Checks the caller's password again, opening the ten-minute window for sensitive
    /// changes. Throttled like a login.
    pub async fn reauthenticate(
        &self,
        caller: &Caller,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let (Some(user), Credential::Session { session_id, .. }) =
            (&caller.user, &caller.credential)
        else {
            return Err(IdentityError::Forbidden(
                "re-authentication needs a login session",
            ));
        };
        let target = format!("session:{session_id}");
        let now = self
            .check_own_password(
                caller,
                user,
                password,
                AuditAction::AuthReauthenticate,
                &target,
                meta,
            )
            .await?;
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AuthReauthenticate,
            target: Some(target),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "reason": "ok" }),
        };
        let record = self.auditor.in_transaction(entry, meta);
        self.store
            .sessions()
            .mark_authenticated(*session_id, now, record.append())
            .await?;
        Ok(())
    }

    /// Checks a signed-in user's own password before a sensitive change, under a login's rules:
    /// one attempt in flight per account, the progressive delay and the daily lock; a wrong
    /// password counts as a failed login and is audited as a failed `action` on `target`.
    /// Answers the time of the check.
    pub(super) async fn check_own_password(
        &self,
        caller: &Caller,
        user: &UserRow,
        password: &str,
        action: AuditAction,
        target: &str,
        meta: &RequestMeta,
    ) -> Result<OffsetDateTime, IdentityError> {
        let claim = self.claim_attempt(&user.email).await?;
        let outcome = self
            .check_own_password_claimed(user.id, claim.is_some(), password)
            .await;
        self.release_attempt(claim).await;
        let refusal = match outcome? {
            Ok(now) => return Ok(now),
            Err(refusal) => refusal,
        };
        let entry = AuditEvent {
            principal: caller.principal(),
            action,
            target: Some(target.to_owned()),
            outcome: AuditOutcome::Failure,
            detail: serde_json::json!({ "reason": refusal }),
        };
        self.auditor.record_refusal(entry, meta).await;
        Err(IdentityError::InvalidCredentials)
    }

    /// The check itself, under the claim: the time, or why it was refused.
    async fn check_own_password_claimed(
        &self,
        user_id: Uuid,
        claimed: bool,
        password: &str,
    ) -> Result<Result<OffsetDateTime, &'static str>, IdentityError> {
        let now = self.now();
        let current = self
            .store
            .users()
            .get(user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        let refusal = if claimed {
            throttled(&current.throttle, now)
        } else {
            Some("attempt_in_flight")
        };
        // The same hash work whether or not the attempt may proceed.
        let stored = refusal
            .is_none()
            .then_some(current.password_hash.as_deref())
            .flatten();
        let verdict = self.verify_password(password, stored).await?;
        if let Some(refusal) = refusal {
            return Ok(Err(refusal));
        }
        if verdict == Verdict::Mismatch {
            self.store
                .users()
                .record_login_failure(user_id, utc_day(now), now)
                .await?;
            return Ok(Err("wrong_password"));
        }
        Ok(Ok(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_delay_grows_and_the_day_locks() {
        let now = datetime!(2026-05-01 12:00 UTC);
        let after = |failures: u32, seconds_ago: i64| LoginThrottle {
            consecutive_failures: failures,
            last_failure_at: Some(now - Duration::seconds(seconds_ago)),
            failure_day: utc_day(now),
            failures_today: failures,
        };
        assert_eq!(throttled(&LoginThrottle::default(), now), None);
        assert_eq!(throttled(&after(1, 0), now), Some("delayed"));
        assert_eq!(throttled(&after(1, 1), now), None);
        assert_eq!(throttled(&after(2, 2), now), Some("delayed"));
        assert_eq!(throttled(&after(2, 3), now), None);
        assert_eq!(throttled(&after(3, 4), now), Some("delayed"));
        assert_eq!(throttled(&after(4, 9), now), Some("delayed"));
        assert_eq!(throttled(&after(40, 10), now), None);
        assert_eq!(
            throttled(&after(100, 3600), now),
            Some("locked_for_the_day")
        );
        // The lock ends with the day.
        let mut yesterday = after(100, 3600);
        yesterday.failure_day -= 1;
        assert_eq!(throttled(&yesterday, now), None);
    }
}

hive_proto::debug_redacted!(NewSession {
    show: [session, user],
    hide: [token]
});
