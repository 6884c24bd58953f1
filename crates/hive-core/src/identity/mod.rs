//! Identity and access: the first admin, accounts, login sessions, API tokens, invitations,
//! password resets and the audit records of every authentication decision.
//!
//! No HTTP here: the server adapts these calls, the CLI calls them directly.

mod accounts;
mod passkeys;
pub mod password_policy;
mod sessions;
mod tokens;

pub use accounts::{AccountUpdate, InvitationLink, NewAccount};
pub use passkeys::{CEREMONY_TTL, CeremonyStart, MAX_PASSKEYS_PER_USER, Passkeys, relying_party};
pub use sessions::{LoginMethod, LoginOutcome, NewSession};
pub use tokens::{CreatedToken, NewToken};

use hive_proto::{Role, SharedClock, TokenScope};
use hive_state::{Claims, ReplayCache};
use hive_store::{AuditAppend, AuditOutcome, AuditRecord, Store, StoreError, UserRow};
use secrecy::SecretString;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// The numbers of SECURITY-RULES.md.
pub mod limits {
    use time::Duration;

    pub const SESSION_ABSOLUTE: Duration = Duration::hours(12);
    pub const SESSION_IDLE: Duration = Duration::minutes(30);
    pub const MAX_SESSIONS_PER_USER: u32 = 48;
    /// A session's last-seen time is written at most this often (not on every request).
    pub const SESSION_TOUCH_EVERY: Duration = Duration::seconds(60);
    pub const REAUTHENTICATION_WINDOW: Duration = Duration::minutes(10);
    pub const INVITATION_TTL: Duration = Duration::days(7);
    pub const RESET_TTL: Duration = Duration::hours(1);
    pub const MAX_TOKEN_DAYS: i64 = 365;
    pub const DEFAULT_TOKEN_DAYS: i64 = 90;
    /// Progressive delay after consecutive login failures: 1, 3, 5, then 10 s.
    pub const LOGIN_DELAYS_SECONDS: [i64; 4] = [1, 3, 5, 10];
    /// Failures in one UTC day that lock an account until the day ends.
    pub const DAILY_FAILURE_LOCK: u32 = 100;
    /// The longest a password attempt holds its account's claim (one attempt in flight per
    /// account): released when its outcome is recorded, or lapsed after this if its process
    /// died.
    pub const ATTEMPT_CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(60);
    pub const MAX_EMAIL_CHARS: usize = 254;
    pub const MAX_NAME_CHARS: usize = 100;
}

/// Why an identity call was refused. Messages are safe to show to the caller.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Login, setup token or one-time link refused. One answer for every reason, so that a
    /// caller learns nothing about which accounts exist.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(&'static str),
    /// A recent password check is needed first (`POST /api/v1/auth/reauthenticate`).
    #[error("confirm your password to continue (re-authentication older than 10 minutes)")]
    ReauthenticationRequired,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    Invalid(String),
    /// `HIVE_MFA_REQUIRED` covers the user, who has no second factor yet.
    #[error("set up a second factor first: the MFA policy requires one")]
    EnrollmentRequired,
    /// Too many wrong second-factor codes: none is looked at for `retry_after` seconds.
    #[error("too many wrong codes; try again in {retry_after} s")]
    Locked { retry_after: u64 },
    /// A dependency (database, shared state) cannot decide now; nothing was granted.
    #[error("temporarily unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "identity: database unavailable");
                Self::Unavailable
            }
            StoreError::AuditUnwritable(detail) => {
                tracing::error!(%detail, "audit record not written; the change was rolled back");
                Self::Unavailable
            }
            StoreError::NotFound => Self::NotFound,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<hive_crypto::RandomError> for IdentityError {
    fn from(error: hive_crypto::RandomError) -> Self {
        Self::Internal(error.to_string())
    }
}

/// Who made the request, as far as the audit trail and the throttles care.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub user_agent: Option<String>,
}

/// Who must have a second factor before a session may be used (`HIVE_MFA_REQUIRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaPolicy {
    /// Admins only (the default).
    Admins,
    All,
    None,
}

impl MfaPolicy {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admins" => Some(Self::Admins),
            "all" => Some(Self::All),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admins => "admins",
            Self::All => "all",
            Self::None => "none",
        }
    }

    /// Whether a user of `role` must have a second factor.
    pub fn requires(self, role: Role) -> bool {
        match self {
            Self::Admins => role == Role::Admin,
            Self::All => true,
            Self::None => false,
        }
    }
}

/// How far a session has come. Only a verified session reaches the API; the others may call
/// the few routes that lead to verification (and log out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStage {
    Verified,
    /// The password was checked; the user's second factor has not been, in this session.
    SecondFactorRequired,
    /// The policy requires a second factor the user does not have: enrollment first.
    EnrollmentRequired,
}

impl SessionStage {
    /// Where a session stands: a user with a second factor must verify it in each session; a
    /// user under the policy without one must enroll; anyone else is verified at login.
    pub fn of(user: &UserRow, session: &hive_store::SessionRow, policy: MfaPolicy) -> Self {
        match (user.second_factor, session.second_factor_at) {
            (true, Some(_)) => Self::Verified,
            (true, None) => Self::SecondFactorRequired,
            (false, _) if policy.requires(user.role) => Self::EnrollmentRequired,
            (false, _) => Self::Verified,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::SecondFactorRequired => "second_factor_required",
            Self::EnrollmentRequired => "enrollment_required",
        }
    }
}

/// How a caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session {
        session_id: Uuid,
        authenticated_at: OffsetDateTime,
        stage: SessionStage,
    },
    ApiToken {
        token_id: Uuid,
        scopes: Vec<TokenScope>,
    },
    /// `HIVE_INTERNAL_TOKEN`: machine-to-machine calls, acting as an operator.
    Internal,
    /// The `hive` command on the server's own machine.
    Cli,
    /// A federated peer instance, proven by its federation token (or the legacy shared
    /// secret). Exists only for the A2A JSON-RPC call it came with.
    Peer {
        /// The peer's origin (`iss`); `legacy` for the shared-secret header, which names none.
        origin: String,
        /// Who at the peer made the call (`sub`).
        subject: String,
    },
    /// The anonymous public tier, with the name of its API key when it presented one.
    PublicTier { key: Option<String> },
}

/// An authenticated caller: the user (none for the internal token) and the role in effect.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Option<UserRow>,
    /// For a token: min(token role, owner's current role).
    pub role: Role,
    pub credential: Credential,
}

impl Caller {
    /// The audit actor: `user:<id>`, `token:<id>`, `internal` or `cli`.
    pub fn actor(&self) -> String {
        match (&self.credential, &self.user) {
            (Credential::ApiToken { token_id, .. }, _) => format!("token:{token_id}"),
            (Credential::Internal, _) => "internal".to_owned(),
            (Credential::Cli, _) => "cli".to_owned(),
            (Credential::Peer { origin, .. }, _) => format!("federation:{origin}"),
            (Credential::PublicTier { key: Some(key) }, _) => format!("public-key:{key}"),
            (Credential::PublicTier { key: None }, _) => "public".to_owned(),
            (Credential::Session { .. }, Some(user)) => format!("user:{}", user.id),
            (Credential::Session { .. }, None) => "anonymous".to_owned(),
        }
    }

    pub fn user_id(&self) -> Option<Uuid> {
        self.user.as_ref().map(|u| u.id)
    }

    /// Whose objects the caller may act on: `None` (anyone's) for an admin, else their own.
    /// A caller without an account owns nothing, so finds nothing.
    pub fn owner_scope(&self) -> Result<Option<Uuid>, IdentityError> {
        if self.is_admin() {
            Ok(None)
        } else {
            self.user_id().map(Some).ok_or(IdentityError::NotFound)
        }
    }

    /// The stage of a session caller; tokens, the internal token and the CLI are verified.
    pub fn stage(&self) -> SessionStage {
        match self.credential {
            Credential::Session { stage, .. } => stage,
            _ => SessionStage::Verified,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether a token's scopes allow `scope` (sessions and the internal token are unscoped).
    pub fn has_scope(&self, scope: TokenScope) -> bool {
        match &self.credential {
            Credential::ApiToken { scopes, .. } => scopes.is_empty() || scopes.contains(&scope),
            _ => true,
        }
    }

    /// A federated peer or the public tier: callers from outside that reach only the agents
    /// shared with them, never an account's objects.
    pub fn is_remote(&self) -> bool {
        matches!(
            self.credential,
            Credential::Peer { .. } | Credential::PublicTier { .. }
        )
    }

    /// A federated peer, for the A2A call it came with. Its role is the lowest: it owns
    /// nothing and is no admin; what it may reach is decided by [`Credential::Peer`].
    pub fn peer(origin: String, subject: String) -> Self {
        Self {
            user: None,
            role: Role::Viewer,
            credential: Credential::Peer { origin, subject },
        }
    }

    /// An anonymous caller of the public tier (with its API key's name, if any).
    pub fn public_tier(key: Option<String>) -> Self {
        Self {
            user: None,
            role: Role::Viewer,
            credential: Credential::PublicTier { key },
        }
    }

    /// The CLI acting with full rights on the local installation.
    pub fn cli() -> Self {
        Self {
            user: None,
            role: Role::Admin,
            credential: Credential::Cli,
        }
    }
}

/// The configuration identity needs.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub allow_public_registration: bool,
    /// `HIVE_MFA_REQUIRED`.
    pub mfa_policy: MfaPolicy,
    pub setup_token: Option<SecretString>,
    pub internal_token: Option<SecretString>,
    /// `AUTH_URL` without a trailing slash: invitation and reset links start with it.
    pub base_url: String,
    /// Sends reset links by mail (`SMTP_URL`); without it an admin makes them.
    pub mailer: Option<crate::mail::Mailer>,
    /// Links every audit record into the hash chain.
    pub audit_chain: Arc<crate::audit::AuditChain>,
}

/// The identity service: one per process, shared by the server and the CLI.
#[derive(Debug)]
pub struct Identity {
    store: Arc<dyn Store>,
    clock: SharedClock,
    replay: Arc<dyn ReplayCache>,
    /// One password attempt in flight per account, across replicas.
    claims: Arc<dyn Claims>,
    settings: IdentitySettings,
    /// Bounds concurrent password hashing: each Argon2id call takes 19 MiB.
    hashing: Arc<Semaphore>,
    /// Verified against when an account does not exist, so that it costs the same time.
    dummy_hash: String,
}

/// Concurrent password hashes at most (memory: 19 MiB each).
const HASHING_PERMITS: usize = 4;

impl Identity {
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        replay: Arc<dyn ReplayCache>,
        claims: Arc<dyn Claims>,
        settings: IdentitySettings,
    ) -> Result<Self, IdentityError> {
        let dummy_hash = hive_crypto::password::dummy_hash()
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        Ok(Self {
            store,
            clock,
            replay,
            claims,
            settings,
            hashing: Arc::new(Semaphore::new(HASHING_PERMITS)),
            dummy_hash,
        })
    }

    pub fn settings(&self) -> &IdentitySettings {
        &self.settings
    }

    fn now(&self) -> OffsetDateTime {
        hive_store::truncate_to_micros(self.clock.now())
    }

    /// Runs password work off the executor, under the semaphore.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, IdentityError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| IdentityError::Unavailable)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| IdentityError::Internal(e.to_string()))
    }

    async fn hash_password(&self, password: &str) -> Result<String, IdentityError> {
        let password = zeroize::Zeroizing::new(password.to_owned());
        self.hashing(move || hive_crypto::password::hash_password(&password))
            .await?
            .map_err(|e| IdentityError::Internal(e.to_string()))
    }

    /// Verifies against `stored`, or against the dummy hash when there is none (the same work,
    /// always a mismatch).
    async fn verify_password(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<hive_crypto::password::Verdict, IdentityError> {
        let password = zeroize::Zeroizing::new(password.to_owned());
        let (stored, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let verdict = self
            .hashing(move || hive_crypto::password::verify_password(&password, &stored))
            .await?;
        Ok(if real {
            verdict
        } else {
            hive_crypto::password::Verdict::Mismatch
        })
    }

    /// The record of `entry` as made now for this request.
    pub fn audit_record(&self, entry: AuditEntry<'_>, meta: &RequestMeta) -> AuditRecord {
        crate::audit::new_record(self.clock.now(), entry, meta)
    }

    /// `record`, ready to be written in the transaction of the change it records: a change
    /// and its record are committed together or not at all.
    pub fn audited<'a>(&'a self, record: &'a AuditRecord) -> AuditAppend<'a> {
        AuditAppend {
            record,
            hasher: self.settings.audit_chain.as_ref(),
        }
    }

    /// Writes an audit record of its own: an event that changes nothing stored (a refusal, a
    /// failed attempt). With `required`, an unwritable record fails the call; otherwise it is
    /// logged and the call's answer stands. Changes pass their record to the store instead
    /// (see [`Identity::audited`]).
    pub async fn audit(
        &self,
        entry: AuditEntry<'_>,
        meta: &RequestMeta,
        required: bool,
    ) -> Result<(), IdentityError> {
        let action = entry.action;
        let record = self.audit_record(entry, meta);
        match self
            .store
            .audit()
            .append(&record, self.settings.audit_chain.as_ref())
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if required => {
                tracing::error!(%error, action, "audit record not written; refusing");
                Err(IdentityError::Unavailable)
            }
            Err(error) => {
                tracing::error!(%error, action, "audit record not written");
                Ok(())
            }
        }
    }

    /// Records a refused authorization (called by the server for every 401/403/404-by-rule).
    pub async fn audit_refusal(
        &self,
        actor: String,
        action: &str,
        reason: &'static str,
        meta: &RequestMeta,
    ) {
        let entry = AuditEntry {
            actor,
            action,
            target: None,
            outcome: AuditOutcome::Denied,
            detail: serde_json::json!({ "reason": reason }),
        };
        self.record_refusal(entry, meta).await;
    }

    /// Writes the record of a refusal or a failed attempt: it changes nothing stored, so it is
    /// written on its own, and the refusal stands whether or not the record could be written
    /// (the failure is logged by [`Identity::audit`]).
    pub async fn record_refusal(&self, entry: AuditEntry<'_>, meta: &RequestMeta) {
        let _ = self.audit(entry, meta, false).await;
    }
}

/// What an audit record says, before the service adds time, ip and request id.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub actor: String,
    pub action: &'a str,
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: serde_json::Value,
}

/// Lower-cased, trimmed; refused unless it has the shape of an address.
pub fn normalize_email(raw: &str) -> Result<String, IdentityError> {
    let email = raw.trim().to_lowercase();
    let valid = email.chars().count() <= limits::MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(email)
    } else {
        Err(IdentityError::Invalid(
            "email must be an address like name@example.com (at most 254 characters)".into(),
        ))
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters.
pub fn check_display_name(raw: &str) -> Result<String, IdentityError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > limits::MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(IdentityError::Invalid(
            "name must be 1 to 100 characters without control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

fn check_password(password: &str, email: &str) -> Result<(), IdentityError> {
    password_policy::check(password, email)
        .map_err(|rejection| IdentityError::Invalid(rejection.message().to_owned()))
}

pub(crate) fn user_actor(user: &UserRow) -> String {
    format!("user:{}", user.id)
}

/// The UTC day number (days since 1970-01-01) of `at`.
fn utc_day(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(86_400)
}

/// Whether a sensitive change may go ahead: a session whose password was checked in the last
/// ten minutes, or the CLI. API tokens and the internal token never qualify.
pub(crate) fn require_recent_authentication(
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<(), IdentityError> {
    match caller.credential {
        Credential::Cli => Ok(()),
        Credential::Session {
            authenticated_at, ..
        } if now - authenticated_at <= limits::REAUTHENTICATION_WINDOW => Ok(()),
        _ => Err(IdentityError::ReauthenticationRequired),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(
            normalize_email("  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@b@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(normalize_email(&long).is_err());
    }

    #[test]
    fn recent_authentication_is_needed_for_sensitive_changes() {
        let now = time::macros::datetime!(2026-01-01 12:00 UTC);
        let session = |minutes: i64| Caller {
            user: None,
            role: Role::Admin,
            credential: Credential::Session {
                session_id: Uuid::nil(),
                authenticated_at: now - Duration::minutes(minutes),
                stage: SessionStage::Verified,
            },
        };
        assert!(require_recent_authentication(&session(9), now).is_ok());
        assert!(require_recent_authentication(&session(11), now).is_err());
        let token = Caller {
            user: None,
            role: Role::Admin,
            credential: Credential::ApiToken {
                token_id: Uuid::nil(),
                scopes: vec![],
            },
        };
        assert!(require_recent_authentication(&token, now).is_err());
        assert!(require_recent_authentication(&Caller::cli(), now).is_ok());
    }

    #[test]
    fn scopes_limit_tokens_only() {
        let token = Caller {
            user: None,
            role: Role::Operator,
            credential: Credential::ApiToken {
                token_id: Uuid::nil(),
                scopes: vec![TokenScope::Read],
            },
        };
        assert!(token.has_scope(TokenScope::Read));
        assert!(!token.has_scope(TokenScope::Write));
        assert!(Caller::cli().has_scope(TokenScope::Admin));
    }
}
