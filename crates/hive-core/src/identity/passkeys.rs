//! Passkeys (WebAuthn): registration, a passkey as the second factor of a session, and
//! passwordless login with a discoverable credential.
//!
//! The relying party is `AUTH_URL`: its host is the RP ID, its origin the only origin accepted
//! in `clientDataJSON`. Every ceremony's state (the challenge and what the verifier needs to
//! finish) stays on the server, in the challenge store, under the hash of a random 256-bit
//! ceremony id the client sends back with its answer: bound to the user and the session that
//! started it, single use (taken atomically), gone after five minutes. Verification is
//! webauthn-rs; user verification is required for every passkey, so a passkey login is both
//! factors at once.

use super::{
    Identity, IdentityError, LoginMethod, NewSession, check_display_name,
    require_recent_authentication,
};
use crate::kernel::audit::{AuditAction, AuditEvent, Principal};
use crate::kernel::caller::{Caller, Credential, RequestMeta, SessionStage};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hive_crypto::token::{looks_like_opaque_token, new_opaque_token, token_hash};
use hive_store::{AuditOutcome, ChallengeRow, PasskeyAdded, PasskeyRow, PasskeyUse, UserRow};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Webauthn, WebauthnBuilder, WebauthnError,
};

/// How long a started ceremony can be finished.
pub const CEREMONY_TTL: Duration = Duration::minutes(5);
/// Passkeys one account may have.
pub const MAX_PASSKEYS_PER_USER: u32 = 10;
/// What authenticators show as the relying party's name.
const RP_NAME: &str = "Hive";

const PURPOSE_REGISTER: &str = "passkey.register";
const PURPOSE_SECOND_FACTOR: &str = "passkey.mfa";
const PURPOSE_LOGIN: &str = "passkey.login";

/// A started ceremony: what the browser passes to `navigator.credentials.create()` or
/// `.get()`, and the id the answer must come back with.
#[derive(Clone)]
pub struct CeremonyStart {
    /// 64 hex characters; a bearer handle for this ceremony only (sent in bodies, never URLs).
    pub ceremony_id: String,
    /// `PublicKeyCredentialCreationOptions` or `…RequestOptions` in their JSON form.
    pub public_key: serde_json::Value,
    /// `conditional` for a login (the browser may offer passkeys in the autofill list).
    pub mediation: Option<String>,
}

hive_proto::debug_redacted!(CeremonyStart {
    show: [public_key, mediation],
    hide: [ceremony_id]
});

/// What the server keeps of a ceremony between start and finish.
#[derive(Serialize, Deserialize)]
struct Pending<S> {
    /// The session that started it (none for a login).
    session_id: Option<Uuid>,
    state: S,
}

/// Why an answer was refused (audit detail only: the caller hears one answer for all).
type Refusal = &'static str;

/// The relying party of `AUTH_URL`, or why there is none: WebAuthn needs a domain name, so an
/// `AUTH_URL` on an IP address has no passkeys.
pub fn relying_party(auth_url: &Url) -> Result<Webauthn, String> {
    let Some(host) = auth_url.domain() else {
        return Err("AUTH_URL names an IP address; passkeys need a domain name".into());
    };
    let origin = Url::parse(&auth_url.origin().ascii_serialization())
        .map_err(|_| "AUTH_URL has no origin".to_owned())?;
    WebauthnBuilder::new(host, &origin)
        .and_then(|builder| {
            builder
                .rp_name(RP_NAME)
                .timeout(std::time::Duration::from_secs(300))
                .build()
        })
        .map_err(|error| format!("AUTH_URL is no WebAuthn relying party: {error}"))
}

/// Passkeys of accounts, as a service beside [`Identity`].
pub struct Passkeys {
    identity: Arc<Identity>,
    /// `None` when `AUTH_URL` cannot be a relying party (see [`relying_party`]).
    webauthn: Option<Webauthn>,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys")
            .field("available", &self.webauthn.is_some())
            .finish_non_exhaustive()
    }
}

const UNAVAILABLE: IdentityError = IdentityError::Conflict(
    "passkeys are not available: AUTH_URL must name the host by a domain name, not an IP address",
);

impl Passkeys {
    pub fn new(identity: Arc<Identity>, auth_url: &Url) -> Self {
        let webauthn = match relying_party(auth_url) {
            Ok(webauthn) => Some(webauthn),
            Err(reason) => {
                tracing::info!(%reason, "passkeys are off");
                None
            }
        };
        Self { identity, webauthn }
    }

    /// Whether passkeys work with this `AUTH_URL`.
    pub fn available(&self) -> bool {
        self.webauthn.is_some()
    }

    fn webauthn(&self) -> Result<&Webauthn, IdentityError> {
        self.webauthn.as_ref().ok_or(UNAVAILABLE)
    }

    fn now(&self) -> OffsetDateTime {
        self.identity.now()
    }

    /// The caller's own passkeys, oldest first.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<PasskeyRow>, IdentityError> {
        let user = account(caller)?;
        Ok(self
            .identity
            .store
            .passkeys()
            .list_for_user(user.id)
            .await?)
    }

    /// Starts registering a passkey for the caller: a fully verified session, or one that must
    /// enroll a second factor, with a password check in the last ten minutes.
    pub async fn start_registration(
        &self,
        caller: &Caller,
    ) -> Result<CeremonyStart, IdentityError> {
        let webauthn = self.webauthn()?;
        let (user, session_id, _) = self.registering_session(caller)?;
        let existing = self
            .identity
            .store
            .passkeys()
            .list_for_user(user.id)
            .await?;
        if existing.len() >= MAX_PASSKEYS_PER_USER as usize {
            return Err(too_many());
        }
        let exclude = existing
            .iter()
            .filter_map(|row| URL_SAFE_NO_PAD.decode(&row.credential_id).ok())
            .collect();
        let (options, state) = webauthn
            .start_passkey_registration(user.id, &user.email, &user.display_name, Some(exclude))
            .map_err(|error| IdentityError::Internal(error.to_string()))?;
        let mut options = to_json(&options)?;
        // A discoverable credential if the authenticator can make one, so the passkey also
        // signs in without a password; a security key that cannot still serves as a factor.
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(serde_json::Value::as_object_mut)
        {
            selection.insert("residentKey".into(), "preferred".into());
            selection.insert("requireResidentKey".into(), false.into());
        }
        self.begin(
            PURPOSE_REGISTER,
            Some(user.id),
            Some(session_id),
            &state,
            options,
        )
        .await
    }

    /// Verifies the browser's answer and stores the passkey, ending the user's other sessions
    /// (an MFA change). A session that had to enroll is verified by it.
    pub async fn finish_registration(
        &self,
        caller: &Caller,
        ceremony_id: &str,
        credential: serde_json::Value,
        name: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<PasskeyRow, IdentityError> {
        let webauthn = self.webauthn()?;
        let (user, session_id, stage) = self.registering_session(caller)?;
        let name = passkey_name(name)?;
        let refuse = |reason: Refusal| self.refuse_registration(caller, reason, meta);
        let pending: Pending<PasskeyRegistration> = match self
            .take(PURPOSE_REGISTER, ceremony_id, user.id, Some(session_id))
            .await?
        {
            Ok(pending) => pending,
            Err(reason) => return Err(refuse(reason).await),
        };
        let Ok(answer) = serde_json::from_value::<RegisterPublicKeyCredential>(credential) else {
            return Err(refuse("malformed_credential").await);
        };
        let passkey = match webauthn.finish_passkey_registration(&answer, &pending.state) {
            Ok(passkey) => passkey,
            Err(error) => return Err(refuse(verification_refusal(&error)).await),
        };
        let row = self.passkey_row(&user, &passkey, name)?;
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AuthPasskeyRegister,
            target: Some(format!("passkey:{}", row.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "name": row.name, "backupEligible": row.backup_eligible }),
        };
        let record = self.identity.auditor().in_transaction(entry, meta);
        let added = self
            .identity
            .store
            .passkeys()
            .add(
                &row,
                MAX_PASSKEYS_PER_USER,
                Some(session_id),
                record.append(),
            )
            .await;
        match added {
            Ok(PasskeyAdded::Added { .. }) => {}
            Ok(PasskeyAdded::LimitReached) => return Err(too_many()),
            Err(hive_store::StoreError::Conflict(_)) => {
                refuse("credential_registered").await;
                return Err(IdentityError::Conflict(
                    "this passkey is registered already",
                ));
            }
            Err(other) => return Err(other.into()),
        }
        if stage == SessionStage::EnrollmentRequired {
            self.identity
                .complete_second_factor(caller, "passkey", meta)
                .await?;
        }
        Ok(row)
    }

    /// Renames one of the caller's passkeys.
    pub async fn rename(
        &self,
        caller: &Caller,
        id: Uuid,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<PasskeyRow, IdentityError> {
        let user = account(caller)?;
        let name = passkey_name(Some(name))?;
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AuthPasskeyRename,
            target: Some(format!("passkey:{id}")),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "name": name }),
        };
        let record = self.identity.auditor().in_transaction(entry, meta);
        let passkeys = self.identity.store.passkeys();
        if !passkeys.rename(user.id, id, &name, record.append()).await? {
            return Err(IdentityError::NotFound);
        }
        passkeys
            .list_for_user(user.id)
            .await?
            .into_iter()
            .find(|row| row.id == id)
            .ok_or(IdentityError::NotFound)
    }

    /// Deletes one of the caller's passkeys: an MFA change, so a fully verified session with a
    /// recent password check, and the user's other sessions end with it.
    pub async fn delete(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let (user, session_id, stage) = session_of(caller)?;
        if stage != SessionStage::Verified {
            return Err(IdentityError::Forbidden(
                "removing a passkey needs a fully verified session",
            ));
        }
        require_recent_authentication(caller, self.now())?;
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AuthPasskeyDelete,
            target: Some(format!("passkey:{id}")),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({}),
        };
        let record = self.identity.auditor().in_transaction(entry, meta);
        if self
            .identity
            .store
            .passkeys()
            .remove(user.id, id, Some(session_id), record.append())
            .await?
        {
            Ok(())
        } else {
            Err(IdentityError::NotFound)
        }
    }

    /// Starts a passkey assertion as the second factor of the caller's session, offering the
    /// user's own passkeys only.
    pub async fn start_second_factor(
        &self,
        caller: &Caller,
    ) -> Result<CeremonyStart, IdentityError> {
        let webauthn = self.webauthn()?;
        let (user, session_id) = self.verifying_session(caller)?;
        let rows = self
            .identity
            .store
            .passkeys()
            .list_for_user(user.id)
            .await?;
        let passkeys = rows
            .iter()
            .map(parse_passkey)
            .collect::<Result<Vec<_>, _>>()?;
        if passkeys.is_empty() {
            return Err(IdentityError::Conflict("the account has no passkey"));
        }
        let (options, state) = webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|error| IdentityError::Internal(error.to_string()))?;
        let options = to_json(&options)?;
        self.begin(
            PURPOSE_SECOND_FACTOR,
            Some(user.id),
            Some(session_id),
            &state,
            options,
        )
        .await
    }

    /// Verifies the assertion and marks the caller's session verified. Every refusal is one
    /// [`IdentityError::InvalidCredentials`] with an audit record of its reason.
    pub async fn finish_second_factor(
        &self,
        caller: &Caller,
        ceremony_id: &str,
        credential: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let webauthn = self.webauthn()?;
        let (user, session_id) = self.verifying_session(caller)?;
        let refuse = |reason: Refusal| self.refuse_second_factor(caller, reason, meta);
        let pending: Pending<PasskeyAuthentication> = match self
            .take(
                PURPOSE_SECOND_FACTOR,
                ceremony_id,
                user.id,
                Some(session_id),
            )
            .await?
        {
            Ok(pending) => pending,
            Err(reason) => return Err(refuse(reason).await),
        };
        let Ok(answer) = serde_json::from_value::<PublicKeyCredential>(credential) else {
            return Err(refuse("malformed_credential").await);
        };
        let Some(row) = self.stored_credential(answer.get_credential_id()).await? else {
            return Err(refuse("unknown_credential").await);
        };
        if row.user_id != user.id {
            return Err(refuse("another_users_credential").await);
        }
        let mut passkey = parse_passkey(&row)?;
        let result = match webauthn.finish_passkey_authentication(&answer, &pending.state) {
            Ok(result) => result,
            Err(error) => return Err(refuse(verification_refusal(&error)).await),
        };
        if let Err(reason) = self.record_use(&row, &mut passkey, &result).await? {
            return Err(refuse(reason).await);
        }
        self.identity
            .complete_second_factor(caller, "passkey", meta)
            .await
    }

    /// Starts a passwordless login: the browser offers the user's discoverable passkeys for
    /// this relying party.
    pub async fn start_login(&self) -> Result<CeremonyStart, IdentityError> {
        let webauthn = self.webauthn()?;
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(|error| IdentityError::Internal(error.to_string()))?;
        let options = to_json(&options)?;
        self.begin(PURPOSE_LOGIN, None, None, &state, options).await
    }

    /// Verifies a discoverable-credential assertion and opens a fully verified session for its
    /// owner. Unknown ceremony or credential, deactivated owner, bad signature and every other
    /// refusal answer [`IdentityError::InvalidCredentials`], each audited with its reason.
    pub async fn finish_login(
        &self,
        ceremony_id: &str,
        credential: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<NewSession, IdentityError> {
        let webauthn = self.webauthn()?;
        let refuse = |reason: Refusal, user: Option<Uuid>| self.refuse_login(reason, user, meta);
        let pending: Pending<DiscoverableAuthentication> =
            match self.take_login(ceremony_id).await? {
                Ok(pending) => pending,
                Err(reason) => return Err(refuse(reason, None).await),
            };
        let Ok(answer) = serde_json::from_value::<PublicKeyCredential>(credential) else {
            return Err(refuse("malformed_credential", None).await);
        };
        let Ok((claimed_user, credential_id)) =
            webauthn.identify_discoverable_authentication(&answer)
        else {
            return Err(refuse("no_user_handle", None).await);
        };
        let Some(row) = self.stored_credential(credential_id).await? else {
            return Err(refuse("unknown_credential", None).await);
        };
        if row.user_id != claimed_user {
            return Err(refuse("user_handle_mismatch", Some(row.user_id)).await);
        }
        let owner = self.identity.store.users().get(row.user_id).await?;
        let Some(user) = owner.filter(|user| user.active) else {
            return Err(refuse("deactivated", Some(row.user_id)).await);
        };
        let mut passkey = parse_passkey(&row)?;
        let result = match webauthn.finish_discoverable_authentication_v2(
            &answer,
            pending.state,
            &passkey,
        ) {
            Ok(result) => result,
            Err(error) => {
                return Err(refuse(verification_refusal(&error), Some(user.id)).await);
            }
        };
        // The verifier asked for user verification; a login stands on nothing less.
        if !result.user_verified() {
            return Err(refuse("user_not_verified", Some(user.id)).await);
        }
        if let Err(reason) = self.record_use(&row, &mut passkey, &result).await? {
            return Err(refuse(reason, Some(user.id)).await);
        }
        self.identity
            .start_session(&user, LoginMethod::Passkey, meta)
            .await
    }

    /// The caller's account and session when it may register a passkey now.
    fn registering_session(
        &self,
        caller: &Caller,
    ) -> Result<(UserRow, Uuid, SessionStage), IdentityError> {
        let (user, session_id, stage) = session_of(caller)?;
        if stage == SessionStage::SecondFactorRequired {
            return Err(IdentityError::Forbidden(
                "verify the second factor of this session first",
            ));
        }
        require_recent_authentication(caller, self.now())?;
        Ok((user, session_id, stage))
    }

    /// The caller's account and session when it waits for its second factor.
    fn verifying_session(&self, caller: &Caller) -> Result<(UserRow, Uuid), IdentityError> {
        let (user, session_id, stage) = session_of(caller)?;
        if stage != SessionStage::SecondFactorRequired {
            return Err(IdentityError::Conflict(
                "this session has no second factor to verify",
            ));
        }
        Ok((user, session_id))
    }

    /// Keeps a ceremony's state and answers the browser's options with its id.
    async fn begin<S: Serialize>(
        &self,
        purpose: &str,
        user_id: Option<Uuid>,
        session_id: Option<Uuid>,
        state: &S,
        options: serde_json::Value,
    ) -> Result<CeremonyStart, IdentityError> {
        let payload = serde_json::to_string(&Pending { session_id, state })
            .map_err(|error| IdentityError::Internal(error.to_string()))?;
        let ceremony_id = new_opaque_token()?;
        let now = self.now();
        let row = ChallengeRow {
            key_hash: token_hash(&ceremony_id),
            purpose: purpose.to_owned(),
            user_id,
            payload,
            created_at: now,
            expires_at: now + CEREMONY_TTL,
        };
        self.identity.store.challenges().put(&row).await?;
        Ok(CeremonyStart {
            ceremony_id,
            mediation: options
                .get("mediation")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            public_key: options
                .get("publicKey")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
        })
    }

    /// Takes (uses up) a ceremony of `purpose` started by `user_id` in `session_id`. Another
    /// user's or session's ceremony is used up too, and refused.
    async fn take<S: DeserializeOwned>(
        &self,
        purpose: &str,
        ceremony_id: &str,
        user_id: Uuid,
        session_id: Option<Uuid>,
    ) -> Result<Result<Pending<S>, Refusal>, IdentityError> {
        let Some((row, pending)) = self.take_row::<S>(purpose, ceremony_id).await? else {
            return Ok(Err("unknown_ceremony"));
        };
        if row.user_id != Some(user_id) || pending.session_id != session_id {
            return Ok(Err("another_sessions_ceremony"));
        }
        Ok(Ok(pending))
    }

    async fn take_login(
        &self,
        ceremony_id: &str,
    ) -> Result<Result<Pending<DiscoverableAuthentication>, Refusal>, IdentityError> {
        Ok(self
            .take_row(PURPOSE_LOGIN, ceremony_id)
            .await?
            .map(|(_, pending)| pending)
            .ok_or("unknown_ceremony"))
    }

    async fn take_row<S: DeserializeOwned>(
        &self,
        purpose: &str,
        ceremony_id: &str,
    ) -> Result<Option<(ChallengeRow, Pending<S>)>, IdentityError> {
        if !looks_like_opaque_token(ceremony_id) {
            return Ok(None);
        }
        let taken = self
            .identity
            .store
            .challenges()
            .take(purpose, &token_hash(ceremony_id), self.now())
            .await?;
        let Some(row) = taken else {
            return Ok(None);
        };
        let pending = serde_json::from_str(&row.payload).map_err(|_| {
            IdentityError::Internal("a stored passkey ceremony is unreadable".into())
        })?;
        Ok(Some((row, pending)))
    }

    async fn stored_credential(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<PasskeyRow>, IdentityError> {
        if credential_id.is_empty() || credential_id.len() > 1023 {
            return Ok(None);
        }
        let id = URL_SAFE_NO_PAD.encode(credential_id);
        Ok(self
            .identity
            .store
            .passkeys()
            .find_by_credential_id(&id)
            .await?)
    }

    /// Stores the counter and flags of a verified assertion; `Err` when the counter did not
    /// move forward (a cloned authenticator, or the same assertion twice).
    async fn record_use(
        &self,
        row: &PasskeyRow,
        passkey: &mut Passkey,
        result: &webauthn_rs::prelude::AuthenticationResult,
    ) -> Result<Result<(), Refusal>, IdentityError> {
        passkey.update_credential(result);
        let document = to_json(passkey)?.to_string();
        let used = PasskeyUse {
            id: row.id,
            passkey: &document,
            sign_count: result.counter(),
            backup_eligible: result.backup_eligible(),
            backup_state: result.backup_state(),
            at: self.now(),
        };
        let moved = self.identity.store.passkeys().record_use(&used).await?;
        Ok(if moved {
            Ok(())
        } else {
            Err("counter_not_increased")
        })
    }

    fn passkey_row(
        &self,
        user: &UserRow,
        passkey: &Passkey,
        name: String,
    ) -> Result<PasskeyRow, IdentityError> {
        let credential: webauthn_rs::prelude::Credential = passkey.clone().into();
        Ok(PasskeyRow {
            id: Uuid::now_v7(),
            user_id: user.id,
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            passkey: to_json(passkey)?.to_string(),
            sign_count: credential.counter,
            backup_eligible: credential.backup_eligible,
            backup_state: credential.backup_state,
            name,
            created_at: self.now(),
            last_used_at: None,
        })
    }

    /// Writes the failure record of a refused answer (nothing was changed).
    async fn record_failure(
        &self,
        principal: Principal,
        action: AuditAction,
        target: Option<String>,
        detail: serde_json::Value,
        meta: &RequestMeta,
    ) {
        let outcome = AuditOutcome::Failure;
        let entry = AuditEvent {
            principal,
            action,
            target,
            outcome,
            detail,
        };
        self.identity.auditor().record_refusal(entry, meta).await;
    }

    async fn refuse_registration(
        &self,
        caller: &Caller,
        reason: Refusal,
        meta: &RequestMeta,
    ) -> IdentityError {
        let detail = serde_json::json!({ "reason": reason });
        self.record_failure(
            caller.principal(),
            AuditAction::AuthPasskeyRegister,
            None,
            detail,
            meta,
        )
        .await;
        IdentityError::Invalid(
            "the passkey could not be verified; start the registration again".into(),
        )
    }

    async fn refuse_second_factor(
        &self,
        caller: &Caller,
        reason: Refusal,
        meta: &RequestMeta,
    ) -> IdentityError {
        let detail = serde_json::json!({ "factor": "passkey", "reason": reason });
        let target = session_target(caller);
        self.record_failure(
            caller.principal(),
            AuditAction::AuthMfaVerify,
            target,
            detail,
            meta,
        )
        .await;
        IdentityError::InvalidCredentials
    }

    /// Every refused login answers the same; the record says why and, when known, whose.
    async fn refuse_login(
        &self,
        reason: Refusal,
        user: Option<Uuid>,
        meta: &RequestMeta,
    ) -> IdentityError {
        let detail = serde_json::json!({ "method": "passkey", "reason": reason });
        let target = user.map(|id| format!("user:{id}"));
        self.record_failure(
            Principal::Anonymous,
            AuditAction::AuthLogin,
            target,
            detail,
            meta,
        )
        .await;
        IdentityError::InvalidCredentials
    }
}

/// The caller's account, session and stage; passkeys are managed from login sessions only.
fn session_of(caller: &Caller) -> Result<(UserRow, Uuid, SessionStage), IdentityError> {
    match (&caller.user, &caller.credential) {
        (
            Some(user),
            Credential::Session {
                session_id, stage, ..
            },
        ) => Ok((user.clone(), *session_id, *stage)),
        _ => Err(IdentityError::Forbidden(
            "passkeys are managed from a login session",
        )),
    }
}

fn account(caller: &Caller) -> Result<&UserRow, IdentityError> {
    caller
        .user
        .as_ref()
        .ok_or(IdentityError::Forbidden("no account behind this caller"))
}

fn session_target(caller: &Caller) -> Option<String> {
    match caller.credential {
        Credential::Session { session_id, .. } => Some(format!("session:{session_id}")),
        _ => caller
            .user
            .as_ref()
            .map(|user| Principal::User(user.id).to_string()),
    }
}

fn too_many() -> IdentityError {
    IdentityError::Conflict("an account has at most 10 passkeys; remove one first")
}

/// A passkey's name: a display name (trimmed, 1 to 100 characters, no control characters);
/// "Passkey" when none is given.
fn passkey_name(raw: Option<&str>) -> Result<String, IdentityError> {
    check_display_name(raw.unwrap_or("Passkey"))
}

fn parse_passkey(row: &PasskeyRow) -> Result<Passkey, IdentityError> {
    serde_json::from_str(&row.passkey)
        .map_err(|_| IdentityError::Internal(format!("passkey {} is unreadable", row.id)))
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, IdentityError> {
    serde_json::to_value(value).map_err(|error| IdentityError::Internal(error.to_string()))
}

/// The audit reason of a refused ceremony answer.
fn verification_refusal(error: &WebauthnError) -> Refusal {
    match error {
        WebauthnError::MismatchedChallenge => "wrong_challenge",
        WebauthnError::InvalidRPOrigin => "wrong_origin",
        WebauthnError::InvalidRPIDHash => "wrong_rp_id",
        WebauthnError::UserNotVerified => "user_not_verified",
        WebauthnError::UserNotPresent => "user_not_present",
        WebauthnError::AuthenticationFailure => "bad_signature",
        WebauthnError::CredentialPossibleCompromise => "counter_not_increased",
        WebauthnError::CredentialNotFound => "credential_not_allowed",
        WebauthnError::InvalidClientDataType => "wrong_ceremony_type",
        WebauthnError::CredentialExcludedFromRequest
        | WebauthnError::CredentialAlteredAlgFromRequest => "credential_not_acceptable",
        _ => "verification_failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_comes_from_auth_url() {
        for url in [
            "https://hive.example.com",
            "https://hive.example.com:8443/",
            "http://localhost:8080",
        ] {
            let webauthn = relying_party(&Url::parse(url).unwrap()).unwrap();
            let origins: Vec<String> = webauthn
                .get_allowed_origins()
                .iter()
                .map(|o| o.origin().ascii_serialization())
                .collect();
            assert_eq!(
                origins,
                vec![Url::parse(url).unwrap().origin().ascii_serialization()]
            );
        }
        for ip in ["http://127.0.0.1:8080", "https://[::1]:8443"] {
            let refused = relying_party(&Url::parse(ip).unwrap()).unwrap_err();
            assert!(refused.contains("IP address"), "{refused}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(passkey_name(None).unwrap(), "Passkey");
        assert_eq!(passkey_name(Some("  YubiKey 5 ")).unwrap(), "YubiKey 5");
        assert_eq!(
            passkey_name(Some(&"ü".repeat(100)))
                .unwrap()
                .chars()
                .count(),
            100
        );
        for bad in ["", "   ", "a\nb", &"x".repeat(101)] {
            assert!(passkey_name(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
