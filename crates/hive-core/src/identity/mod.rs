//! Identity and access: the first admin, accounts, login sessions, API tokens, invitations,
//! password resets and the audit records of every authentication decision.
//!
//! No HTTP here: the server adapts these calls, the CLI calls them directly.

mod accounts;
pub mod mfa;
pub mod oidc;
mod passkeys;
pub mod password_policy;
mod sessions;
mod tokens;

pub use accounts::{AccountUpdate, InvitationLink, NewAccount};
pub use passkeys::{CEREMONY_TTL, CeremonyStart, MAX_PASSKEYS_PER_USER, Passkeys, relying_party};
pub use sessions::{LoginMethod, LoginOutcome, NewSession};
pub use tokens::{CreatedToken, NewToken};

use crate::kernel::audit::{Auditor, Unrecorded};
use crate::kernel::caller::{Caller, Credential, NoAccount};
use crate::kernel::changes::{CacheTopic, Changes, ShortCache};
use crate::kernel::refusal::Refusal;
use crate::kernel::store_fault::StoreFault;
use hive_proto::SharedClock;
use hive_state::{Claims, ReplayCache};
use hive_store::{ApiTokenRow, SessionRow, Store, StoreError, UserRow};
use secrecy::SecretString;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

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
    /// account). The claim is released when the outcome is recorded or the attempt is
    /// cancelled, so this only bounds a claim whose process died or whose release failed: the
    /// account is locked out for at most this long, no longer than the longest progressive
    /// delay. It is far above an attempt's own time (one Argon2id hash, tens of milliseconds,
    /// and a few database calls); should an attempt outlive it, a second attempt on the
    /// account may run beside it — each failure is still recorded.
    pub const ATTEMPT_CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(10);
    pub const MAX_EMAIL_CHARS: usize = 254;
    pub const MAX_NAME_CHARS: usize = 100;
    /// Verified API tokens, and verified sessions, each replica keeps in memory at most (each
    /// for a second at most: `kernel::changes::CACHE_LIFETIME`).
    pub const CACHED_CREDENTIALS: std::num::NonZeroUsize =
        std::num::NonZeroUsize::MIN.saturating_add(4095);
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
        match StoreFault::of(error, "identity") {
            StoreFault::Unavailable => Self::Unavailable,
            StoreFault::NotFound => Self::NotFound,
            StoreFault::Internal(detail) => Self::Internal(detail),
        }
    }
}

/// A refusal of a lower domain (the vault's, for second factors) keeps its meaning here.
impl From<Refusal> for IdentityError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Forbidden(message) => Self::Forbidden(message),
            Refusal::NotFound => Self::NotFound,
            Refusal::Conflict(message) => Self::Conflict(message),
            Refusal::Invalid(message) => Self::Invalid(message),
            Refusal::Unavailable => Self::Unavailable,
            Refusal::Internal(detail) => Self::Internal(detail),
        }
    }
}

impl From<crate::vault::secrets::SecretError> for IdentityError {
    fn from(error: crate::vault::secrets::SecretError) -> Self {
        Refusal::from(error).into()
    }
}

impl From<Unrecorded> for IdentityError {
    fn from(_: Unrecorded) -> Self {
        Self::Unavailable
    }
}

impl From<NoAccount> for IdentityError {
    fn from(_: NoAccount) -> Self {
        Self::NotFound
    }
}

impl From<hive_crypto::RandomError> for IdentityError {
    fn from(error: hive_crypto::RandomError) -> Self {
        Self::Internal(error.to_string())
    }
}

/// Runs once the first admin exists, however setup finished (`POST /api/v1/setup` or
/// `hive admin create`): the composition root retires a generated setup token with it. It may
/// block (file I/O), so it runs off the executor, and reports its own failures.
#[derive(Clone)]
pub struct SetupDoneHook(Arc<dyn Fn() + Send + Sync>);

impl SetupDoneHook {
    pub fn new(hook: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(hook))
    }
}

impl std::fmt::Debug for SetupDoneHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupDoneHook")
    }
}

/// The configuration identity needs.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub allow_public_registration: bool,
    /// `HIVE_MFA_REQUIRED`.
    pub mfa_policy: crate::kernel::config::MfaPolicy,
    pub setup_token: Option<SecretString>,
    pub internal_token: Option<SecretString>,
    /// `AUTH_URL` without a trailing slash: invitation and reset links start with it.
    pub base_url: String,
    /// Sends reset links by mail (`SMTP_URL`); without it an admin makes them.
    pub mailer: Option<crate::kernel::mail::Mailer>,
    /// Run once the first admin exists.
    pub on_setup_done: Option<SetupDoneHook>,
}

/// The identity service: one per process, shared by the server and the CLI.
#[derive(Debug)]
pub struct Identity {
    store: Arc<dyn Store>,
    clock: SharedClock,
    replay: Arc<dyn ReplayCache>,
    /// One password attempt in flight per account, across replicas.
    claims: Arc<dyn Claims>,
    auditor: Auditor,
    settings: IdentitySettings,
    /// Bounds concurrent password hashing: each Argon2id call takes 19 MiB.
    hashing: Arc<Semaphore>,
    /// Verified against when an account does not exist, so that it costs the same time.
    dummy_hash: String,
    /// API tokens that passed, with their owner, by token hash: a request within a second of
    /// another with the same token reads nothing (see `authenticate_bearer`).
    cached_tokens: ShortCache<String, (ApiTokenRow, UserRow)>,
    /// Sessions that passed, with their user, by token hash (see `authenticate_session`).
    cached_sessions: ShortCache<String, (SessionRow, UserRow)>,
}

fn credential_cache<V: Clone>(changes: &Arc<Changes>) -> ShortCache<String, V> {
    ShortCache::new(
        Arc::clone(changes),
        CacheTopic::Credentials,
        limits::CACHED_CREDENTIALS,
    )
}

/// Concurrent password hashes at most (memory: 19 MiB each).
const HASHING_PERMITS: usize = 4;

impl Identity {
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        replay: Arc<dyn ReplayCache>,
        claims: Arc<dyn Claims>,
        auditor: Auditor,
        settings: IdentitySettings,
        changes: Arc<Changes>,
    ) -> Result<Self, IdentityError> {
        let dummy_hash = hive_crypto::password::dummy_hash()
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        Ok(Self {
            cached_tokens: credential_cache(&changes),
            cached_sessions: credential_cache(&changes),
            store,
            clock,
            replay,
            claims,
            auditor,
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

    /// Screens a new password for the account `email` / `display_name` (the password policy):
    /// off the executor under the hashing semaphore, since a long password costs zxcvbn tens of
    /// milliseconds.
    async fn check_password(
        &self,
        password: &str,
        email: &str,
        display_name: &str,
    ) -> Result<(), IdentityError> {
        let password = zeroize::Zeroizing::new(password.to_owned());
        let email = email.to_owned();
        let display_name = display_name.to_owned();
        let instance = instance_host(&self.settings.base_url);
        self.hashing(move || {
            let words = password_policy::AccountWords {
                email: &email,
                display_name: &display_name,
                instance: &instance,
            };
            password_policy::check(&password, &words)
        })
        .await?
        .map_err(|rejection| IdentityError::Invalid(rejection.message()))
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

    /// Where identity records its decisions.
    pub fn auditor(&self) -> &Auditor {
        &self.auditor
    }
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

/// The host of `AUTH_URL` ("hive.example.com"): a word of the instance that passwords must not
/// lean on. Empty when the URL has none.
fn instance_host(base_url: &str) -> String {
    url::Url::parse(base_url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default()
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
    use crate::kernel::caller::SessionStage;
    use hive_proto::{Role, TokenScope};
    use time::Duration;
    use uuid::Uuid;

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
