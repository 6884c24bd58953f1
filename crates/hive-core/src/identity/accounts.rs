//! Accounts: the first admin, registration, invitations, administration of users, password
//! change and reset.

use super::{
    Identity, IdentityError, check_display_name, limits, normalize_email,
    require_recent_authentication,
};
use crate::kernel::audit::{AuditAction, AuditEvent, Principal};
use crate::kernel::caller::{Caller, RequestMeta};
use hive_crypto::token::{looks_like_opaque_token, new_opaque_token, token_hash};
use hive_proto::Role;
use hive_store::{
    AccountChange, AuditOutcome, GuardedChange, NewUser, OneTimePurpose, OneTimeTokenRow, Page,
    PageRequest, ProfileChange, StoreError, UserRow,
};
use secrecy::ExposeSecret;
use uuid::Uuid;

/// A new account's details as the caller gave them.
#[derive(Clone)]
pub struct NewAccount {
    pub email: String,
    pub display_name: String,
    pub password: String,
}

/// An admin's change to an account; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct AccountUpdate {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// A one-time link (invitation or reset), shown once to whoever creates it.
#[derive(Clone)]
pub struct InvitationLink {
    pub id: Uuid,
    pub url: String,
    pub expires_at: time::OffsetDateTime,
}

impl Identity {
    /// Whether the first admin exists.
    pub async fn setup_completed(&self) -> Result<bool, IdentityError> {
        Ok(self.store.users().setup_completed().await?)
    }

    /// Creates the first admin. `presented` is the setup token the caller sent; it is compared
    /// in constant time. Refused for ever once an admin exists (of concurrent calls one wins).
    pub async fn setup(
        &self,
        presented: Option<&str>,
        account: &NewAccount,
        meta: &RequestMeta,
    ) -> Result<UserRow, IdentityError> {
        let expected = self
            .settings
            .setup_token
            .as_ref()
            .map(|t| t.expose_secret().as_bytes().to_vec());
        let token_ok = match (expected, presented) {
            (Some(expected), Some(presented)) => {
                hive_crypto::constant_time_eq(&expected, presented.as_bytes())
            }
            _ => false,
        };
        if !token_ok {
            let entry = AuditEvent {
                principal: Principal::Anonymous,
                action: AuditAction::SetupCreateAdmin,
                target: None,
                outcome: AuditOutcome::Failure,
                detail: serde_json::json!({ "reason": "bad_setup_token" }),
            };
            self.auditor.record_refusal(entry, meta).await;
            return Err(IdentityError::InvalidCredentials);
        }
        self.create_first_admin(account, meta, Principal::Anonymous)
            .await
    }

    /// The first admin, from the command line (no setup token: the CLI runs on the server), or
    /// through [`Identity::setup`]. Once it exists, the setup-done hook runs (whichever way setup
    /// finished).
    pub async fn create_first_admin(
        &self,
        account: &NewAccount,
        meta: &RequestMeta,
        principal: Principal,
    ) -> Result<UserRow, IdentityError> {
        if self.setup_completed().await? {
            return Err(IdentityError::Conflict("setup is already complete"));
        }
        let new_user = self.new_user(account, Role::Admin).await?;
        let entry = AuditEvent {
            principal,
            action: AuditAction::SetupCreateAdmin,
            target: Some(format!("user:{}", new_user.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({}),
        };
        let record = self.auditor.in_transaction(entry, meta);
        match self
            .store
            .users()
            .create_first_admin(&new_user, record.append())
            .await
        {
            Ok(admin) => {
                self.setup_done().await;
                Ok(admin)
            }
            Err(StoreError::Conflict(_)) => {
                Err(IdentityError::Conflict("setup is already complete"))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Runs the setup-done hook, off the executor.
    async fn setup_done(&self) {
        let Some(hook) = self.settings.on_setup_done.clone() else {
            return;
        };
        if tokio::task::spawn_blocking(move || (hook.0)())
            .await
            .is_err()
        {
            tracing::warn!("the setup-done hook did not finish");
        }
    }

    async fn new_user(&self, account: &NewAccount, role: Role) -> Result<NewUser, IdentityError> {
        let email = normalize_email(&account.email)?;
        let display_name = check_display_name(&account.display_name)?;
        self.check_password(&account.password, &email, &display_name)
            .await?;
        Ok(NewUser {
            id: Uuid::now_v7(),
            password_hash: Some(self.hash_password(&account.password).await?),
            email,
            display_name,
            role,
            created_at: self.now(),
        })
    }

    /// Public registration (only when `ALLOW_PUBLIC_REGISTRATION=true`): a viewer account.
    pub async fn register(
        &self,
        account: &NewAccount,
        meta: &RequestMeta,
    ) -> Result<UserRow, IdentityError> {
        if !self.settings.allow_public_registration {
            return Err(IdentityError::Forbidden(
                "public registration is disabled; ask an admin for an invitation",
            ));
        }
        let new_user = self.new_user(account, Role::Viewer).await?;
        let entry = AuditEvent {
            principal: Principal::User(new_user.id),
            action: AuditAction::AuthRegister,
            target: Some(format!("user:{}", new_user.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "role": "viewer" }),
        };
        let record = self.auditor.in_transaction(entry, meta);
        self.store
            .users()
            .create(&new_user, record.append())
            .await
            .map_err(email_taken)
    }

    pub async fn list_users(&self, page: &PageRequest) -> Result<Page<UserRow>, IdentityError> {
        Ok(self.store.users().list(page).await?)
    }

    pub async fn get_user(&self, id: Uuid) -> Result<UserRow, IdentityError> {
        self.store
            .users()
            .get(id)
            .await?
            .ok_or(IdentityError::NotFound)
    }

    /// An admin's change to an account: name, role, active. Nobody raises their own role; the
    /// last active admin is neither demoted nor deactivated; a role change or deactivation
    /// ends the user's sessions.
    pub async fn update_user(
        &self,
        caller: &Caller,
        id: Uuid,
        update: &AccountUpdate,
        meta: &RequestMeta,
    ) -> Result<UserRow, IdentityError> {
        let now = self.now();
        let current = self.get_user(id).await?;
        if caller.user_id() == Some(id) && update.role.is_some_and(|role| role > current.role) {
            return Err(IdentityError::Forbidden("you cannot raise your own role"));
        }
        let change = AccountChange {
            display_name: update
                .display_name
                .as_deref()
                .map(check_display_name)
                .transpose()?,
            role: update.role,
            active: update.active,
        };
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::UserUpdate,
            target: Some(Principal::User(current.id).to_string()),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({
                "role": update.role.map(|r| r.as_str()),
                "previousRole": current.role.as_str(),
                "active": update.active,
                "displayName": update.display_name.is_some(),
            }),
        };
        let record = self.auditor.in_transaction(entry, meta);
        let changed = self
            .store
            .users()
            .update_account(id, &change, now, record.append())
            .await?;
        guarded(changed)
    }

    /// Changes the caller's own profile in one step: the display name, and the email (a
    /// sensitive change: it needs a recent re-authentication). One change, one record.
    pub async fn update_own_profile(
        &self,
        caller: &Caller,
        email: Option<&str>,
        display_name: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<UserRow, IdentityError> {
        let user_id = caller.user_id().ok_or(IdentityError::Unauthenticated)?;
        if email.is_some() {
            require_recent_authentication(caller, self.now())?;
        }
        let change = ProfileChange {
            email: email.map(normalize_email).transpose()?,
            display_name: display_name.map(check_display_name).transpose()?,
        };
        if change == ProfileChange::default() {
            return self.get_user(user_id).await;
        }
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::UserUpdateProfile,
            target: Some(format!("user:{user_id}")),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({
                "email": change.email.is_some(),
                "displayName": change.display_name.is_some(),
            }),
        };
        let record = self.auditor.in_transaction(entry, meta);
        self.store
            .users()
            .update_profile(user_id, &change, self.now(), record.append())
            .await
            .map_err(email_taken)?
            .ok_or(IdentityError::NotFound)
    }

    /// Changes the caller's password: recent re-authentication and the current password are
    /// both required; every other session of the user ends.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current_password: &str,
        new_password: &str,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let user = caller.user.as_ref().ok_or(IdentityError::Unauthenticated)?;
        require_recent_authentication(caller, self.now())?;
        let target = Principal::User(user.id).to_string();
        let now = self
            .check_own_password(
                caller,
                user,
                current_password,
                AuditAction::UserChangePassword,
                &target,
                meta,
            )
            .await?;
        let stored = self
            .store
            .users()
            .get(user.id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        self.check_password(new_password, &stored.email, &stored.display_name)
            .await?;
        let hash = self.hash_password(new_password).await?;
        let keep = match caller.credential {
            super::Credential::Session { session_id, .. } => Some(session_id),
            _ => None,
        };
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::UserChangePassword,
            target: Some(target),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({}),
        };
        let record = self.auditor.in_transaction(entry, meta);
        if self
            .store
            .users()
            .set_password(user.id, &hash, keep, now, record.append())
            .await?
        {
            Ok(())
        } else {
            Err(IdentityError::Unauthenticated)
        }
    }

    /// An invitation link for `email` with `role` (admin). Single use, expires in 7 days.
    pub async fn invite(
        &self,
        caller: &Caller,
        email: &str,
        role: Role,
        meta: &RequestMeta,
    ) -> Result<InvitationLink, IdentityError> {
        let email = normalize_email(email)?;
        if self.store.users().find_by_email(&email).await?.is_some() {
            return Err(IdentityError::Conflict("an account with this email exists"));
        }
        let row = self.one_time_row(OneTimePurpose::Invitation, limits::INVITATION_TTL);
        let (token, mut row) = row?;
        row.email = Some(email);
        row.role = Some(role);
        row.created_by = caller.user_id();
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::UserInvite,
            target: Some(format!("invitation:{}", row.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "role": role.as_str() }),
        };
        let record = self.auditor.in_transaction(entry, meta);
        self.store
            .one_time_tokens()
            .create(&row, record.append())
            .await?;
        Ok(self.link(&row, "invite", &token))
    }

    fn one_time_row(
        &self,
        purpose: OneTimePurpose,
        ttl: time::Duration,
    ) -> Result<(String, OneTimeTokenRow), IdentityError> {
        let token = new_opaque_token()?;
        let now = self.now();
        Ok((
            token.clone(),
            OneTimeTokenRow {
                id: Uuid::now_v7(),
                purpose,
                token_hash: token_hash(&token),
                user_id: None,
                email: None,
                role: None,
                created_by: None,
                created_at: now,
                expires_at: now + ttl,
                used_at: None,
            },
        ))
    }

    /// The token rides in the fragment: browsers never send it to a server or a `Referer`.
    fn link(&self, row: &OneTimeTokenRow, page: &str, token: &str) -> InvitationLink {
        InvitationLink {
            id: row.id,
            url: format!("{}/{page}#token={token}", self.settings.base_url),
            expires_at: row.expires_at,
        }
    }

    /// The email and role of a live invitation (what the accept page shows).
    pub async fn invitation(&self, token: &str) -> Result<OneTimeTokenRow, IdentityError> {
        if !looks_like_opaque_token(token) {
            return Err(IdentityError::InvalidCredentials);
        }
        self.store
            .one_time_tokens()
            .find_live(OneTimePurpose::Invitation, &token_hash(token), self.now())
            .await?
            .ok_or(IdentityError::InvalidCredentials)
    }

    /// Creates the invited account; the invitation is used up.
    pub async fn accept_invitation(
        &self,
        token: &str,
        display_name: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<UserRow, IdentityError> {
        let invitation = match self.invitation(token).await {
            Ok(invitation) => invitation,
            Err(IdentityError::InvalidCredentials) => {
                self.audit_link_refusal(AuditAction::UserAcceptInvitation, "invalid_token", meta)
                    .await;
                return Err(IdentityError::InvalidCredentials);
            }
            Err(other) => return Err(other),
        };
        let email = invitation.email.clone().unwrap_or_default();
        let display_name = check_display_name(display_name)?;
        self.check_password(password, &email, &display_name).await?;
        let hash = self.hash_password(password).await?;
        let user_id = Uuid::now_v7();
        let entry = AuditEvent {
            principal: Principal::User(user_id),
            action: AuditAction::UserAcceptInvitation,
            target: Some(format!("invitation:{}", invitation.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "role": invitation.role.map(Role::as_str) }),
        };
        let record = self.auditor.in_transaction(entry, meta);
        self.store
            .one_time_tokens()
            .accept_invitation(
                &token_hash(token),
                user_id,
                &display_name,
                &hash,
                self.now(),
                record.append(),
            )
            .await
            .map_err(email_taken)?
            .ok_or(IdentityError::InvalidCredentials)
    }

    /// A password-reset link for a user, made by an admin (or the CLI). Single use, 1 hour.
    pub async fn create_reset_link(
        &self,
        caller: &Caller,
        user_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<InvitationLink, IdentityError> {
        let user = self.get_user(user_id).await?;
        let (token, mut row) =
            self.one_time_row(OneTimePurpose::PasswordReset, limits::RESET_TTL)?;
        row.user_id = Some(user.id);
        row.created_by = caller.user_id();
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::UserResetLink,
            target: Some(Principal::User(user.id).to_string()),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({}),
        };
        let record = self.auditor.in_transaction(entry, meta);
        self.store
            .one_time_tokens()
            .create(&row, record.append())
            .await?;
        Ok(self.link(&row, "reset-password", &token))
    }

    /// Sets a new password with a reset token. The token is consumed in the shared replay
    /// cache first (an unreachable cache refuses: 503) and then used up in the database, which
    /// also ends every session of the user.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let refused = |reason| async move {
            self.audit_link_refusal(AuditAction::UserResetPassword, reason, meta)
                .await;
            IdentityError::InvalidCredentials
        };
        if !looks_like_opaque_token(token) {
            return Err(refused("invalid_token").await);
        }
        let hash_of_token = token_hash(token);
        let now = self.now();
        let Some(reset) = self
            .store
            .one_time_tokens()
            .find_live(OneTimePurpose::PasswordReset, &hash_of_token, now)
            .await?
        else {
            return Err(refused("invalid_token").await);
        };
        let user = self
            .get_user(reset.user_id.ok_or(IdentityError::InvalidCredentials)?)
            .await?;
        self.check_password(new_password, &user.email, &user.display_name)
            .await?;
        let ttl = (reset.expires_at - now).unsigned_abs();
        let first_use = self
            .replay
            .consume(&format!("reset:{hash_of_token}"), ttl)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "replay cache unavailable: refusing a password reset");
                IdentityError::Unavailable
            })?;
        if !first_use {
            // Used a moment ago, here or on another replica.
            return Err(refused("replayed").await);
        }
        let hash = self.hash_password(new_password).await?;
        let entry = AuditEvent {
            principal: Principal::User(user.id),
            action: AuditAction::UserResetPassword,
            target: Some(Principal::User(user.id).to_string()),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({}),
        };
        let record = self.auditor.in_transaction(entry, meta);
        self.store
            .one_time_tokens()
            .reset_password(&hash_of_token, &hash, now, record.append())
            .await?
            .map(|_| ())
            .ok_or(IdentityError::InvalidCredentials)
    }
}

impl Identity {
    /// Records a one-time link that was refused (unknown, used, expired or replayed).
    async fn audit_link_refusal(
        &self,
        action: AuditAction,
        reason: &'static str,
        meta: &RequestMeta,
    ) {
        let entry = AuditEvent {
            principal: Principal::Anonymous,
            action,
            target: None,
            outcome: AuditOutcome::Failure,
            detail: serde_json::json!({ "reason": reason }),
        };
        self.auditor.record_refusal(entry, meta).await;
    }
}

/// One reset mail per account at most this often, whoever asks.
const RESET_MAIL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl Identity {
    /// Someone asks for a reset link by email. The answer is the same whether the account
    /// exists or not, and comes before any lookup: the work (and its timing) happens in the
    /// background, and is audited.
    pub fn request_password_reset(
        self: &std::sync::Arc<Self>,
        email: &str,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let email = normalize_email(email)?;
        let identity = std::sync::Arc::clone(self);
        let meta = meta.clone();
        tokio::spawn(async move {
            let outcome = identity.mail_reset_link(&email, &meta).await;
            let reason = match &outcome {
                // Recorded with the link, in the same transaction.
                Ok(("sent", _)) => return,
                Ok((reason, _)) => *reason,
                Err(_) => "error",
            };
            if let Err(error) = &outcome {
                tracing::warn!(%error, "a reset mail was not sent");
            }
            let entry = AuditEvent {
                principal: Principal::Anonymous,
                action: AuditAction::UserResetRequested,
                target: outcome
                    .ok()
                    .and_then(|(_, user)| user)
                    .map(|id| format!("user:{id}")),
                outcome: AuditOutcome::Failure,
                detail: serde_json::json!({ "reason": reason }),
            };
            identity.auditor().record_refusal(entry, &meta).await;
        });
        Ok(())
    }

    /// Creates and mails a reset link; says what happened and to whom. A link made is
    /// recorded with it (`user.reset_requested`, reason `link_created`); a mail that then
    /// fails is recorded by the caller.
    async fn mail_reset_link(
        &self,
        email: &str,
        meta: &RequestMeta,
    ) -> Result<(&'static str, Option<Uuid>), IdentityError> {
        let Some(mailer) = &self.settings.mailer else {
            return Ok(("no_mailer", None));
        };
        let user = match self.store.users().find_by_email(email).await? {
            Some(user) if user.active => user,
            _ => return Ok(("unknown_account", None)),
        };
        let first = self
            .replay
            .consume(&format!("reset-mail:{}", user.id), RESET_MAIL_INTERVAL)
            .await
            .map_err(|_| IdentityError::Unavailable)?;
        if !first {
            return Ok(("throttled", Some(user.id)));
        }
        let (token, mut row) =
            self.one_time_row(OneTimePurpose::PasswordReset, limits::RESET_TTL)?;
        row.user_id = Some(user.id);
        let entry = AuditEvent {
            principal: Principal::Anonymous,
            action: AuditAction::UserResetRequested,
            target: Some(Principal::User(user.id).to_string()),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "reason": "link_created" }),
        };
        let record = self.auditor.in_transaction(entry, meta);
        self.store
            .one_time_tokens()
            .create(&row, record.append())
            .await?;
        let link = self.link(&row, "reset-password", &token);
        let body = format!(
            "Someone asked to reset the password of your Hive account ({email}).\n\n\
             To choose a new password, open this link within an hour:\n\n{}\n\n\
             If it was not you, ignore this message: your password stays as it is.\n",
            link.url
        );
        mailer
            .send(email, "Reset your Hive password", body)
            .await
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        Ok(("sent", Some(user.id)))
    }
}

/// A uniqueness conflict on an account is a taken email.
fn email_taken(error: StoreError) -> IdentityError {
    match error {
        StoreError::Conflict(_) => IdentityError::Conflict("an account with this email exists"),
        other => other.into(),
    }
}

fn guarded(change: GuardedChange) -> Result<UserRow, IdentityError> {
    match change {
        GuardedChange::Changed(user) => Ok(user),
        GuardedChange::NotFound => Err(IdentityError::NotFound),
        GuardedChange::LastAdmin => Err(IdentityError::Conflict(
            "the last active admin cannot be demoted or deactivated",
        )),
    }
}

hive_proto::debug_redacted!(NewAccount {
    show: [email, display_name],
    hide: [password]
});

hive_proto::debug_redacted!(InvitationLink {
    show: [id, expires_at],
    hide: [url]
});
