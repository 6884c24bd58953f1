//! Users, sessions, API tokens, one-time tokens and the audit trail, on any sqlx dialect: the
//! dialect supplies its SQL and the steps that differ (how a changed user is read back, how the
//! last-admin rule is serialised, how a prefix is matched).

mod audit_log;
mod sessions;
mod tokens;
mod users;

use super::dialect::{BindValue, Dialect, DialectConnection, Pools, PushValue, keyset_page};
use super::{
    ROWS_PER_INSERT, append_audit_records, audit_unwritable, commit_audited, commit_if,
    commit_if_audited, get, insert_audit_records, links_after, rows,
};
use crate::{
    AccountChange, ApiTokenRepo, ApiTokenRow, AuditAppend, AuditCheckpoint, AuditFilter,
    AuditPosition, AuditPrune, AuditRecord, AuditRepo, ChainHasher, ChainLink, CheckpointSigner,
    Cursor, GuardedChange, LoginThrottle, NewUser, OneTimePurpose, OneTimeTokenRepo,
    OneTimeTokenRow, Page, PageRequest, ProfileChange, SessionRepo, SessionRow, StoreError,
    TextMatch, UserRepo, UserRow, prunable_prefix, scopes_to_text,
};
use async_trait::async_trait;
use hive_proto::Role;
use sqlx::QueryBuilder;
use std::future::Future;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns of `users` as [`rows::user`] reads them, `second_factor` computed: an enabled
/// TOTP credential or a passkey.
#[macro_export]
macro_rules! user_columns {
    () => {
        "id, email, display_name, role, active, password_hash, created_at, updated_at, \
         consecutive_failures, last_failure_at, failure_day, failures_today, \
         (EXISTS (SELECT 1 FROM totp_credentials WHERE totp_credentials.user_id = users.id \
         AND totp_credentials.enabled_at IS NOT NULL) \
         OR EXISTS (SELECT 1 FROM passkeys WHERE passkeys.user_id = users.id)) AS second_factor"
    };
}

/// The columns of `sessions`.
#[macro_export]
macro_rules! session_columns {
    () => {
        "id, user_id, token_hash, created_at, last_seen_at, expires_at, authenticated_at, ip, \
         user_agent, second_factor_at"
    };
}

/// The columns of `api_tokens`.
#[macro_export]
macro_rules! api_token_columns {
    () => {
        "id, user_id, name, token_hash, role, scopes, created_at, expires_at, last_used_at, \
         revoked_at"
    };
}

/// The columns of `one_time_tokens`.
#[macro_export]
macro_rules! one_time_token_columns {
    () => {
        "id, purpose, token_hash, user_id, email, role, created_by, created_at, expires_at, \
         used_at"
    };
}

/// Accounts as other repositories create them.
pub trait UserSql: Dialect {
    /// Inserts `user` (active) inside `connection`'s transaction and returns it as stored.
    fn insert_user(
        connection: &mut DialectConnection<Self>,
        user: &NewUser,
    ) -> impl Future<Output = Result<UserRow, StoreError>> + Send;
}

/// Sessions' statements other repositories need.
pub trait SessionSql: Dialect {
    /// Ends a user's sessions: user id, the session to keep (or null for none).
    const DELETE_SESSIONS: &'static str;
}

/// The statements of [`SqlIdentity`] in one dialect, and the steps that differ; the
/// parameters of each statement are listed in the order they are bound.
pub trait IdentitySql: UserSql + SessionSql {
    /// id.
    const USER_BY_ID: &'static str;
    /// email.
    const USER_BY_EMAIL: &'static str;
    /// cursor time, cursor id, limit.
    const LIST_USERS: &'static str;
    /// completed at, admin id.
    const COMPLETE_SETUP: &'static str;
    /// password hash, now, id; the failure counters are reset.
    const SET_PASSWORD: &'static str;
    /// now, user id; voids the user's unused reset links.
    const VOID_RESET_LINKS: &'static str;
    /// now, day, id; returns the throttle columns.
    const RECORD_LOGIN_FAILURE: &'static str;
    /// rehashed password (or null), id.
    const RECORD_LOGIN_SUCCESS: &'static str;

    /// The columns of [`session_columns!`].
    const INSERT_SESSION: &'static str;
    /// user id, how many to keep; ends the oldest beyond that.
    const TRIM_SESSIONS: &'static str;
    /// token hash.
    const SESSION_BY_TOKEN_HASH: &'static str;
    /// now, id; never moves the time back.
    const TOUCH_SESSION: &'static str;
    /// now, id.
    const MARK_AUTHENTICATED: &'static str;
    /// now, id.
    const MARK_SECOND_FACTOR: &'static str;
    /// user id.
    const SESSIONS_OF_USER: &'static str;
    /// user id, now, seen after, cursor time, cursor id, limit.
    const LIVE_SESSIONS_PAGE: &'static str;
    /// id, user id (or null for any).
    const DELETE_SESSION: &'static str;
    /// now, idle since.
    const PRUNE_SESSIONS: &'static str;

    /// The columns of [`api_token_columns!`].
    const INSERT_API_TOKEN: &'static str;
    /// token hash.
    const API_TOKEN_BY_HASH: &'static str;
    /// id; the columns of `api_token_columns!`.
    const API_TOKEN_BY_ID: &'static str;
    /// user id, cursor time, cursor id, limit.
    const API_TOKENS_OF_USER: &'static str;
    /// now, id, user id (or null for any).
    const REVOKE_API_TOKEN: &'static str;
    /// now, id; never moves the time back.
    const TOUCH_API_TOKEN: &'static str;

    /// The columns of [`one_time_token_columns!`].
    const INSERT_ONE_TIME_TOKEN: &'static str;
    /// now, purpose, token hash; marks a live token used and returns it.
    const USE_ONE_TIME_TOKEN: &'static str;
    /// purpose, token hash, now.
    const FIND_LIVE_ONE_TIME_TOKEN: &'static str;
    /// before.
    const PRUNE_ONE_TIME_TOKENS: &'static str;

    /// The audit query's head, before the conditions appended with `AND`.
    const AUDIT_EVENTS: &'static str;
    /// limit; returns `seq, hash, at` of the oldest chained records.
    const OLDEST_CHAINED: &'static str;
    /// seq, hash, at, created at, signature.
    const INSERT_CHECKPOINT: &'static str;
    /// seq; deletes the chained records up to it.
    const DELETE_CHAINED_UP_TO: &'static str;
    /// cut, limit; deletes the oldest unchained records before the cut.
    const DELETE_UNCHAINED_BEFORE: &'static str;
    /// after seq, limit.
    const CHAIN_AFTER: &'static str;

    /// Sets what `change` sets (null keeps a value) and returns the user, `None` when there is
    /// no such user.
    fn update_profile(
        connection: &mut DialectConnection<Self>,
        id: Uuid,
        change: &ProfileChange,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<UserRow>, StoreError>> + Send;

    /// An admin's change: name, role and active set, sessions ended, audited, in one
    /// transaction that keeps at least one active admin.
    fn guarded_change(
        pools: &Pools<Self::Db>,
        id: Uuid,
        change: &AccountChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> impl Future<Output = Result<GuardedChange, StoreError>> + Send;

    /// ` AND <column> starts with <prefix>`, matched exactly (no wildcards, case kept).
    fn push_prefix_match(query: &mut QueryBuilder<Self::Db>, column: &str, prefix: &str);
}

pub struct SqlIdentity<D: Dialect> {
    pub pools: Pools<D::Db>,
    /// The audit chain's end after this process's last batch, for a single writer's next batch
    /// (see [`AuditRepo::append_batch`]); `None` until known or after a failure.
    pub chain_end: std::sync::Mutex<Option<(i64, String)>>,
}

impl<D: Dialect> SqlIdentity<D> {
    pub fn new(pools: &Pools<D::Db>) -> Self {
        Self {
            pools: pools.clone(),
            chain_end: std::sync::Mutex::new(None),
        }
    }
}

/// Ends `user_id`'s sessions but `except`; how many ended.
pub async fn delete_sessions<D: SessionSql>(
    connection: &mut DialectConnection<D>,
    user_id: Uuid,
    except: Option<Uuid>,
) -> Result<u64, StoreError> {
    sqlx::query(D::DELETE_SESSIONS)
        .bind_value(D::id(user_id))
        .bind_value(except.map(D::id))
        .execute(D::on(connection))
        .await
        .map(|done| D::rows_affected(&done))
        .map_err(D::map_error)
}

/// The user `id`, as [`rows::user`] reads it.
pub async fn fetch_user<D: IdentitySql>(
    connection: &mut DialectConnection<D>,
    id: Uuid,
) -> Result<Option<UserRow>, StoreError> {
    let row = sqlx::query(D::USER_BY_ID)
        .bind_value(D::id(id))
        .fetch_optional(D::on(connection))
        .await
        .map_err(D::map_error)?;
    row.as_ref().map(rows::user::<D>).transpose()
}

/// How many active admins there are but `id`: the last-admin rule's count.
pub async fn other_active_admins<D: Dialect>(
    connection: &mut DialectConnection<D>,
    count_sql: &'static str,
    id: Uuid,
) -> Result<i64, StoreError> {
    let row = sqlx::query(count_sql)
        .bind_value(D::id(id))
        .fetch_one(D::on(connection))
        .await
        .map_err(D::map_error)?;
    get::<D, _>(&row, "admins")
}

async fn store_password<D: IdentitySql>(
    connection: &mut DialectConnection<D>,
    id: Uuid,
    password_hash: &str,
    keep_session: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(D::SET_PASSWORD)
        .bind_value(password_hash)
        .bind_value(D::time(now))
        .bind_value(D::id(id))
        .execute(D::on(connection))
        .await
        .map_err(D::map_error)?;
    if D::rows_affected(&done) == 0 {
        return Ok(false);
    }
    delete_sessions::<D>(connection, id, keep_session).await?;
    // Outstanding reset links are void once the password has changed.
    sqlx::query(D::VOID_RESET_LINKS)
        .bind_value(D::time(now))
        .bind_value(D::id(id))
        .execute(D::on(connection))
        .await
        .map_err(D::map_error)?;
    Ok(true)
}

/// Marks a live token of `purpose` used and returns it; `None` when there is none.
async fn use_token<D: IdentitySql>(
    connection: &mut DialectConnection<D>,
    purpose: OneTimePurpose,
    token_hash: &str,
    now: OffsetDateTime,
) -> Result<Option<OneTimeTokenRow>, StoreError> {
    let row = sqlx::query(D::USE_ONE_TIME_TOKEN)
        .bind_value(D::time(now))
        .bind_value(purpose.as_str())
        .bind_value(token_hash)
        .fetch_optional(D::on(connection))
        .await
        .map_err(D::map_error)?;
    row.as_ref().map(rows::one_time_token::<D>).transpose()
}

/// Whether setup is complete (as `done`).
const SETUP_DONE: &str = "SELECT EXISTS (SELECT 1 FROM instance_setup) AS done";
