//! Identity rows and repositories: users, sessions, API tokens, one-time tokens (invitations
//! and password resets) and the audit trail of access decisions.
//!
//! Tokens are stored only as their SHA-256 (hex); the repositories never see a token itself.

use crate::{Cursor, Page, PageRequest, StoreError};
use async_trait::async_trait;
use hive_proto::{Role, TokenScope};
use time::OffsetDateTime;
use uuid::Uuid;

/// Per-account login throttling state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginThrottle {
    /// Failures since the last success.
    pub consecutive_failures: u32,
    pub last_failure_at: Option<OffsetDateTime>,
    /// The UTC day (days since 1970-01-01) `failures_today` counts.
    pub failure_day: i64,
    pub failures_today: u32,
}

#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: Uuid,
    /// Lower-case; unique.
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
    /// A PHC string (Argon2id, or bcrypt for imported accounts); `None` for an account that
    /// cannot log in with a password.
    pub password_hash: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub throttle: LoginThrottle,
    /// Whether the user has a second factor enabled (TOTP or a passkey); read with the row,
    /// never written through it.
    pub second_factor: bool,
}

#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Chosen by the caller, so that the audit record written with the insert can name it.
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: Option<String>,
    pub created_at: OffsetDateTime,
}

/// The answer to a change guarded by the last-admin rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardedChange {
    Changed(UserRow),
    NotFound,
    /// The change would leave no active admin; nothing was changed.
    LastAdmin,
}

/// An admin's change of an account; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChange {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// A change of profile fields; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    pub email: Option<String>,
    pub display_name: Option<String>,
}

#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Whether the first admin has been created.
    async fn setup_completed(&self) -> Result<bool, StoreError>;

    /// Creates the first admin and closes setup in one transaction. [`StoreError::Conflict`]
    /// when setup is already closed (of concurrent callers exactly one succeeds).
    async fn create_first_admin(
        &self,
        user: &NewUser,
        audit: AuditAppend<'_>,
    ) -> Result<UserRow, StoreError>;

    /// [`StoreError::Conflict`] when the email is taken.
    async fn create(&self, user: &NewUser, audit: AuditAppend<'_>) -> Result<UserRow, StoreError>;

    async fn get(&self, id: Uuid) -> Result<Option<UserRow>, StoreError>;

    async fn find_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError>;

    /// All users, newest first.
    async fn list(&self, page: &PageRequest) -> Result<Page<UserRow>, StoreError>;

    /// `Ok(None)` for an unknown user; [`StoreError::Conflict`] for a taken email.
    async fn update_profile(
        &self,
        id: Uuid,
        change: &ProfileChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<UserRow>, StoreError>;

    /// Applies an admin's change in one transaction. A role change or a deactivation ends all
    /// the user's sessions; a change that would leave no active admin changes nothing
    /// (checked and applied atomically, also against concurrent changes).
    async fn update_account(
        &self,
        id: Uuid,
        change: &AccountChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<GuardedChange, StoreError>;

    /// Replaces the password hash, clears the login throttle and ends every session of the
    /// user except `keep_session`. `Ok(false)` for an unknown user.
    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep_session: Option<Uuid>,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Counts a failed login atomically (the day's count restarts on a new `day`) and returns
    /// the new state.
    async fn record_login_failure(
        &self,
        id: Uuid,
        day: i64,
        now: OffsetDateTime,
    ) -> Result<LoginThrottle, StoreError>;

    /// Clears the consecutive failures after a successful login; stores `rehash` (a fresh hash
    /// of the same password) when given.
    async fn record_login_success(
        &self,
        id: Uuid,
        rehash: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

#[derive(Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_hash: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    /// The absolute end.
    pub expires_at: OffsetDateTime,
    /// When the password was last checked in this session (login or re-authentication).
    pub authenticated_at: OffsetDateTime,
    /// When a second factor was verified in this session; `None` until then (a session of a
    /// user without one never gets it).
    pub second_factor_at: Option<OffsetDateTime>,
    pub ip: String,
    pub user_agent: String,
}

#[async_trait]
pub trait SessionRepo: Send + Sync {
    /// Stores a session; the user's oldest sessions beyond `max_per_user` are deleted in the
    /// same transaction.
    async fn create(
        &self,
        session: &SessionRow,
        max_per_user: u32,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError>;

    async fn find_by_token_hash(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError>;

    async fn touch(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError>;

    async fn mark_authenticated(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError>;

    /// Records that a second factor was verified in the session. `Ok(false)` when it is gone.
    async fn mark_second_factor(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// The user's sessions, newest first (at most the per-user cap).
    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionRow>, StoreError>;

    /// One page of the user's live sessions (expiring after `now`, seen after `seen_after`),
    /// newest first.
    async fn list_live_page(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        seen_after: OffsetDateTime,
        page: &PageRequest,
    ) -> Result<Page<SessionRow>, StoreError>;

    /// Deletes one session; with `user_id`, only if it is that user's. `audit` is `None` only
    /// for housekeeping (an expired session found at use).
    async fn delete(
        &self,
        id: Uuid,
        user_id: Option<Uuid>,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError>;

    /// Deletes the user's sessions except `except`; returns how many.
    async fn delete_for_user(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<u64, StoreError>;

    /// Deletes sessions past their absolute end or idle since before `idle_since`.
    async fn prune_expired(
        &self,
        now: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> Result<u64, StoreError>;
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub token_hash: String,
    pub role: Role,
    /// Empty: every scope the role allows.
    pub scopes: Vec<TokenScope>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait ApiTokenRepo: Send + Sync {
    async fn create(&self, token: &ApiTokenRow, audit: AuditAppend<'_>) -> Result<(), StoreError>;

    async fn find_by_token_hash(&self, token_hash: &str)
    -> Result<Option<ApiTokenRow>, StoreError>;

    /// The token with this id (revoked and expired ones too).
    async fn get(&self, id: Uuid) -> Result<Option<ApiTokenRow>, StoreError>;

    /// The user's tokens (revoked ones included), newest first.
    async fn list_for_user(
        &self,
        user_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<ApiTokenRow>, StoreError>;

    /// Revokes a live token; with `user_id`, only if it is that user's. `Ok(false)` when no
    /// such live token exists.
    async fn revoke(
        &self,
        id: Uuid,
        user_id: Option<Uuid>,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    async fn touch(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneTimePurpose {
    Invitation,
    PasswordReset,
}

impl OneTimePurpose {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::PasswordReset => "password_reset",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "invitation" => Ok(Self::Invitation),
            "password_reset" => Ok(Self::PasswordReset),
            _ => Err(StoreError::Backend(
                "a stored token purpose is unknown".into(),
            )),
        }
    }
}

/// An invitation (email and role of the account to create) or a password reset (user).
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeTokenRow {
    pub id: Uuid,
    pub purpose: OneTimePurpose,
    pub token_hash: String,
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    pub role: Option<Role>,
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait OneTimeTokenRepo: Send + Sync {
    async fn create(
        &self,
        token: &OneTimeTokenRow,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError>;

    /// The unused, unexpired token of this purpose.
    async fn find_live(
        &self,
        purpose: OneTimePurpose,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<OneTimeTokenRow>, StoreError>;

    /// Uses a live invitation and creates its account in one transaction: `Ok(None)` when
    /// the invitation is unknown, used or expired (of concurrent callers one succeeds);
    /// [`StoreError::Conflict`] when the email was taken meanwhile (the invitation stays
    /// unused).
    /// `user_id` is the new account's id (chosen by the caller, as the audit record names it).
    async fn accept_invitation(
        &self,
        token_hash: &str,
        user_id: Uuid,
        display_name: &str,
        password_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<UserRow>, StoreError>;

    /// Uses a live reset token, sets the password, clears the throttle and ends every session
    /// of the user, in one transaction. `Ok(None)` when the token is unknown, used or expired.
    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<Uuid>, StoreError>;

    /// Deletes tokens that expired before `before`.
    async fn prune_expired(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Success,
    /// The caller's attempt failed (wrong password, bad token).
    Failure,
    /// An authenticated caller was refused.
    Denied,
}

impl AuditOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "success" => Ok(Self::Success),
            "failure" => Ok(Self::Failure),
            "denied" => Ok(Self::Denied),
            _ => Err(StoreError::Backend(
                "a stored audit outcome is unknown".into(),
            )),
        }
    }
}

/// One audit record. `detail` is a JSON object and never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: OffsetDateTime,
    /// `user:<id>`, `token:<id>`, `internal`, `anonymous` or `cli`.
    pub actor: String,
    /// Dotted name, e.g. `auth.login`.
    pub action: String,
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: String,
    /// Where the record sits in the hash chain; set by the store on append (ignored on input).
    /// `None` only for records written before the chain existed.
    pub link: Option<ChainLink>,
}

/// A record's place in the audit hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    /// 1, 2, 3… in append order, without gaps.
    pub seq: i64,
    /// The hash of record `seq - 1` ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    pub hash: String,
}

/// The `prev_hash` of the first record of the chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Computes a record's hash from its place in the chain (keyed: see `hive_core::kernel::audit`).
pub trait ChainHasher: Send + Sync {
    fn hash(&self, seq: i64, prev_hash: &str, record: &AuditRecord) -> String;
}

/// The audit record of a change, handed to the repository method that makes the change: the
/// record is appended to the chain in the same transaction, so the change and its record are
/// committed together or not at all. When the change does not happen (not found, a conflict,
/// a refused guard) the record is not written either.
///
/// A failure to write the record rolls the change back and answers
/// [`StoreError::AuditUnwritable`].
#[derive(Clone, Copy)]
pub struct AuditAppend<'a> {
    pub record: &'a AuditRecord,
    pub hasher: &'a dyn ChainHasher,
}

impl std::fmt::Debug for AuditAppend<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditAppend")
            .field("record", self.record)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait AuditRepo: Send + Sync {
    /// Appends `record` at the end of the chain, atomically with respect to other writers
    /// (also on other replicas): the store picks the next `seq`, reads the last hash and asks
    /// `hasher` for this record's. Returns the link it got. For a record of its own (a refusal,
    /// an event that changes nothing stored); a change passes its record in an [`AuditAppend`].
    async fn append(
        &self,
        record: &AuditRecord,
        hasher: &dyn ChainHasher,
    ) -> Result<ChainLink, StoreError> {
        let mut links = self
            .append_batch(std::slice::from_ref(record), hasher)
            .await?;
        links
            .pop()
            .ok_or_else(|| StoreError::AuditUnwritable("no link for the record".to_owned()))
    }

    /// Appends `records` in order at the end of the chain in one transaction — one commit
    /// (one fsync) for all of them, the chain held once — and returns their links in the same
    /// order. All or nothing: on an error none of them was written. The group commit of
    /// records of their own.
    async fn append_batch(
        &self,
        records: &[AuditRecord],
        hasher: &dyn ChainHasher,
    ) -> Result<Vec<ChainLink>, StoreError>;

    /// Records matching `filter`, newest first (by time, then id: records older than the
    /// chain have no `seq`).
    async fn list(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError>;

    /// Records matching `filter`, oldest first, after `after`, at most `limit` (for export):
    /// records outside the chain by time and id, then chained records by `seq`. A position
    /// among the unchained records yields only unchained ones; the caller moves on to
    /// `Chained(0)` when they run out.
    async fn oldest_first(
        &self,
        filter: &AuditFilter,
        after: &AuditPosition,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The newest retention checkpoint, if records were ever pruned.
    async fn latest_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError>;

    /// Deletes at most `limit` of the oldest records written before `cut`, in one
    /// transaction with the checkpoint (signed by `signer`, stamped `now`) that names the
    /// last deleted chained record. Only a prefix of the chain is deleted, and never its
    /// newest record, so the chain stays contiguous and the next append still links to it.
    async fn prune_before(
        &self,
        cut: OffsetDateTime,
        limit: u32,
        signer: &dyn CheckpointSigner,
        now: OffsetDateTime,
    ) -> Result<AuditPrune, StoreError>;

    /// Chained records in chain order, from `after_seq + 1`, at most `limit` (for verification).
    async fn chain_after(&self, after_seq: i64, limit: u32)
    -> Result<Vec<AuditRecord>, StoreError>;

    /// How many records are outside the chain (none that Hive wrote: any was inserted behind its back).
    async fn count_unchained(&self) -> Result<u64, StoreError>;
}

/// How a text column is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextMatch {
    Exact(String),
    /// The value starts with this (case-sensitive).
    Prefix(String),
    /// Exactly one of these (a few values; none matches nothing).
    AnyOf(Vec<String>),
}

/// Which audit records a list or export wants; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<TextMatch>,
    /// Matches the record's `target`.
    pub target: Option<TextMatch>,
    pub outcome: Option<AuditOutcome>,
    /// Records at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Records strictly before this time.
    pub until: Option<OffsetDateTime>,
}

impl AuditFilter {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Records of exactly this action.
    pub fn action(name: &str) -> Self {
        Self {
            action: Some(TextMatch::Exact(name.to_owned())),
            ..Self::default()
        }
    }

    /// Whether `record` passes (the stores do the same in SQL; this serves tests and checks).
    pub fn matches(&self, record: &AuditRecord) -> bool {
        fn text(rule: &Option<TextMatch>, value: Option<&str>) -> bool {
            match (rule, value) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(TextMatch::Exact(want)), Some(value)) => value == want,
                (Some(TextMatch::Prefix(want)), Some(value)) => value.starts_with(want.as_str()),
                (Some(TextMatch::AnyOf(any)), Some(value)) => any.iter().any(|want| want == value),
            }
        }
        self.actor.as_ref().is_none_or(|a| *a == record.actor)
            && text(&self.action, Some(&record.action))
            && text(&self.target, record.target.as_deref())
            && self.outcome.is_none_or(|o| o == record.outcome)
            && self.since.is_none_or(|t| record.at >= t)
            && self.until.is_none_or(|t| record.at < t)
    }
}

/// Where an oldest-first walk of the audit log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditPosition {
    /// Among the records outside the chain, after this one (`None`: at the very start).
    Unchained(Option<Cursor>),
    /// In the chain, after this `seq` (0: before its first record).
    Chained(i64),
}

impl AuditPosition {
    pub const START: Self = Self::Unchained(None);

    /// The position just after `record`.
    pub fn after(record: &AuditRecord) -> Self {
        match &record.link {
            Some(link) => Self::Chained(link.seq),
            None => Self::Unchained(Some(Cursor {
                at: record.at,
                id: record.id,
            })),
        }
    }
}

/// What retention leaves where it cut the chain: the place and hash of the last deleted
/// record, signed so that a checkpoint cannot be made up or moved to hide a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    /// The `seq` of the last deleted record; the chain continues at `seq + 1`.
    pub seq: i64,
    /// That record's hash: the `prev_hash` of record `seq + 1`.
    pub hash: String,
    /// That record's time.
    pub at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    /// An HMAC over the fields above (see `hive_core::kernel::audit`).
    pub signature: String,
}

/// Signs retention checkpoints (keyed: see `hive_core::kernel::audit`).
pub trait CheckpointSigner: Send + Sync {
    /// The signature of `checkpoint`'s fields other than `signature`.
    fn sign_checkpoint(&self, checkpoint: &AuditCheckpoint) -> String;
}

/// What one retention batch did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditPrune {
    /// Records deleted (chained and outside the chain).
    pub deleted: u64,
    /// The checkpoint written, when chained records were deleted.
    pub checkpoint: Option<AuditCheckpoint>,
}

/// Which of the oldest chained records (`(seq, hash, at)` in chain order, fetched with
/// `limit + 1`) a retention batch may delete: those before the first at or after `cut`, at
/// most `limit`, and never the newest record of the chain.
pub fn prunable_prefix(
    mut oldest: Vec<(i64, String, OffsetDateTime)>,
    cut: OffsetDateTime,
    limit: u32,
) -> Vec<(i64, String, OffsetDateTime)> {
    // Stored times have microseconds; compare as the database would.
    let cut = crate::truncate_to_micros(cut);
    let fetched = oldest.len();
    let old = oldest.iter().take_while(|(_, _, at)| *at < cut).count();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // When every fetched record is old and no more were there, the last is the chain's end.
    let keep_end = usize::from(old == fetched && fetched <= limit);
    oldest.truncate(old.saturating_sub(keep_end).min(limit));
    oldest
}

/// The link a record appended after `last` (seq and hash of the current end, if any) gets.
pub fn next_link(
    last: Option<(i64, String)>,
    record: &AuditRecord,
    hasher: &dyn ChainHasher,
) -> ChainLink {
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let hash = hasher.hash(seq, &prev_hash, record);
    ChainLink {
        seq,
        prev_hash,
        hash,
    }
}

/// The link of a stored row: all three columns, or none (a record outside the chain).
pub fn chain_link(
    seq: Option<i64>,
    prev_hash: Option<String>,
    hash: Option<String>,
) -> Option<ChainLink> {
    match (seq, prev_hash, hash) {
        (Some(seq), Some(prev_hash), Some(hash)) => Some(ChainLink {
            seq,
            prev_hash,
            hash,
        }),
        _ => None,
    }
}

/// Scopes as stored: sorted, comma-separated names.
pub fn scopes_to_text(scopes: &[TokenScope]) -> String {
    let mut sorted = scopes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn scopes_from_text(text: &str) -> Result<Vec<TokenScope>, StoreError> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| StoreError::Backend("a stored token scope is unknown".into()))
        })
        .collect()
}

pub fn role_from_text(text: &str) -> Result<Role, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Backend("a stored role is unknown".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_sorted_and_deduplicated() {
        let text = scopes_to_text(&[TokenScope::Write, TokenScope::Read, TokenScope::Write]);
        assert_eq!(text, "read,write");
        assert_eq!(
            scopes_from_text(&text).unwrap(),
            vec![TokenScope::Read, TokenScope::Write]
        );
        assert!(scopes_from_text("").unwrap().is_empty());
        assert!(scopes_from_text("read,root").is_err());
    }
}

hive_proto::debug_redacted!(UserRow {
    show: [
        id,
        email,
        display_name,
        role,
        active,
        created_at,
        updated_at,
        throttle,
        second_factor
    ],
    hide: [password_hash]
});

hive_proto::debug_redacted!(NewUser {
    show: [id, email, display_name, role, created_at],
    hide: [password_hash]
});

hive_proto::debug_redacted!(SessionRow {
    show: [
        id,
        user_id,
        created_at,
        last_seen_at,
        expires_at,
        authenticated_at,
        second_factor_at,
        ip,
        user_agent
    ],
    hide: [token_hash]
});

hive_proto::debug_redacted!(ApiTokenRow {
    show: [
        id,
        user_id,
        name,
        role,
        scopes,
        created_at,
        expires_at,
        last_used_at,
        revoked_at
    ],
    hide: [token_hash]
});

hive_proto::debug_redacted!(OneTimeTokenRow {
    show: [
        id, purpose, user_id, email, role, created_by, created_at, expires_at, used_at
    ],
    hide: [token_hash]
});
