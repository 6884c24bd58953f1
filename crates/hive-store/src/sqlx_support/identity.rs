//! Users, sessions, API tokens, one-time tokens and the audit trail, on any sqlx dialect: the
//! dialect supplies its SQL and the steps that differ (how a changed user is read back, how the
//! last-admin rule is serialised, how a prefix is matched).

use super::dialect::{BindValue, Dialect, DialectConnection, Pools, PushValue, keyset_page};
use super::{append_audit, commit_audited, commit_if, commit_if_audited, get, rows};
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

#[async_trait]
impl<D: IdentitySql> UserRepo for SqlIdentity<D> {
    async fn setup_completed(&self) -> Result<bool, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(SETUP_DONE)
            .fetch_one(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        get::<D, _>(&row, "done")
    }

    async fn create_first_admin(
        &self,
        user: &NewUser,
        audit: AuditAppend<'_>,
    ) -> Result<UserRow, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let row = sqlx::query(SETUP_DONE)
            .fetch_one(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if get::<D, bool>(&row, "done")? {
            return Err(StoreError::Conflict("setup is already complete".into()));
        }
        let admin = D::insert_user(&mut tx, user).await?;
        // On PostgreSQL concurrent callers all get here; the primary key lets exactly one
        // insert.
        sqlx::query(D::COMPLETE_SETUP)
            .bind_value(D::time(user.created_at))
            .bind_value(D::id(admin.id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(admin)
    }

    async fn create(&self, user: &NewUser, audit: AuditAppend<'_>) -> Result<UserRow, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let created = D::insert_user(&mut tx, user).await?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(created)
    }

    async fn get(&self, id: Uuid) -> Result<Option<UserRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        fetch_user::<D>(&mut reader, id).await
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::USER_BY_EMAIL)
            .bind_value(email)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::user::<D>).transpose()
    }

    async fn list(&self, page: &PageRequest) -> Result<Page<UserRow>, StoreError> {
        let query = sqlx::query(D::LIST_USERS);
        keyset_page::<D, _>(&self.pools, query, page, rows::user::<D>, |user| Cursor {
            at: user.created_at,
            id: user.id,
        })
        .await
    }

    async fn update_profile(
        &self,
        id: Uuid,
        change: &ProfileChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let Some(user) = D::update_profile(&mut tx, id, change, now).await? else {
            return Ok(None);
        };
        commit_audited::<D>(tx, &audit).await?;
        Ok(Some(user))
    }

    async fn update_account(
        &self,
        id: Uuid,
        change: &AccountChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<GuardedChange, StoreError> {
        D::guarded_change(&self.pools, id, change, now, audit).await
    }

    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep_session: Option<Uuid>,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let changed = store_password::<D>(&mut tx, id, password_hash, keep_session, now).await?;
        commit_if::<D>(tx, changed, audit).await
    }

    async fn record_login_failure(
        &self,
        id: Uuid,
        day: i64,
        now: OffsetDateTime,
    ) -> Result<LoginThrottle, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::RECORD_LOGIN_FAILURE)
            .bind_value(D::time(now))
            .bind_value(day)
            .bind_value(D::id(id))
            .fetch_optional(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        row.as_ref()
            .map(rows::login_throttle::<D>)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn record_login_success(
        &self,
        id: Uuid,
        rehash: Option<&str>,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::RECORD_LOGIN_SUCCESS)
            .bind_value(rehash.map(str::to_owned))
            .bind_value(D::id(id))
            .execute(D::on(&mut writer))
            .await
            .map(|_| ())
            .map_err(D::map_error)
    }
}

#[async_trait]
impl<D: IdentitySql> SessionRepo for SqlIdentity<D> {
    async fn create(
        &self,
        session: &SessionRow,
        max_per_user: u32,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::INSERT_SESSION)
            .bind_value(D::id(session.id))
            .bind_value(D::id(session.user_id))
            .bind_value(session.token_hash.as_str())
            .bind_value(D::time(session.created_at))
            .bind_value(D::time(session.last_seen_at))
            .bind_value(D::time(session.expires_at))
            .bind_value(D::time(session.authenticated_at))
            .bind_value(session.ip.as_str())
            .bind_value(session.user_agent.as_str())
            .bind_value(session.second_factor_at.map(D::time))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        sqlx::query(D::TRIM_SESSIONS)
            .bind_value(D::id(session.user_id))
            .bind_value(i64::from(max_per_user))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn find_by_token_hash(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::SESSION_BY_TOKEN_HASH)
            .bind_value(token_hash)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::session::<D>).transpose()
    }

    async fn touch(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::TOUCH_SESSION)
            .bind_value(D::time(at))
            .bind_value(D::id(id))
            .execute(D::on(&mut writer))
            .await
            .map(|_| ())
            .map_err(D::map_error)
    }

    async fn mark_authenticated(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::MARK_AUTHENTICATED)
            .bind_value(D::time(at))
            .bind_value(D::id(id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn mark_second_factor(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::MARK_SECOND_FACTOR)
            .bind_value(D::time(at))
            .bind_value(D::id(id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, changed, audit).await
    }

    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::SESSIONS_OF_USER)
            .bind_value(D::id(user_id))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::session::<D>).collect()
    }

    async fn list_live_page(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        seen_after: OffsetDateTime,
        page: &PageRequest,
    ) -> Result<Page<SessionRow>, StoreError> {
        let query = sqlx::query(D::LIVE_SESSIONS_PAGE)
            .bind_value(D::id(user_id))
            .bind_value(D::time(now))
            .bind_value(D::time(seen_after));
        keyset_page::<D, _>(&self.pools, query, page, rows::session::<D>, |session| {
            Cursor {
                at: session.created_at,
                id: session.id,
            }
        })
        .await
    }

    async fn delete(
        &self,
        id: Uuid,
        user_id: Option<Uuid>,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::DELETE_SESSION)
            .bind_value(D::id(id))
            .bind_value(user_id.map(D::id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let deleted = D::rows_affected(&done) == 1;
        commit_if_audited::<D>(tx, deleted, audit).await
    }

    async fn delete_for_user(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<u64, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let deleted = delete_sessions::<D>(&mut tx, user_id, except).await?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(deleted)
    }

    async fn prune_expired(
        &self,
        now: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::PRUNE_SESSIONS)
            .bind_value(D::time(now))
            .bind_value(D::time(idle_since))
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done))
            .map_err(D::map_error)
    }
}

#[async_trait]
impl<D: IdentitySql> ApiTokenRepo for SqlIdentity<D> {
    async fn create(&self, token: &ApiTokenRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::INSERT_API_TOKEN)
            .bind_value(D::id(token.id))
            .bind_value(D::id(token.user_id))
            .bind_value(token.name.as_str())
            .bind_value(token.token_hash.as_str())
            .bind_value(token.role.as_str())
            .bind_value(scopes_to_text(&token.scopes))
            .bind_value(D::time(token.created_at))
            .bind_value(D::time(token.expires_at))
            .bind_value(token.last_used_at.map(D::time))
            .bind_value(token.revoked_at.map(D::time))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn find_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiTokenRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::API_TOKEN_BY_HASH)
            .bind_value(token_hash)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::api_token::<D>).transpose()
    }

    async fn list_for_user(
        &self,
        user_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<ApiTokenRow>, StoreError> {
        let query = sqlx::query(D::API_TOKENS_OF_USER).bind_value(D::id(user_id));
        keyset_page::<D, _>(&self.pools, query, page, rows::api_token::<D>, |token| {
            Cursor {
                at: token.created_at,
                id: token.id,
            }
        })
        .await
    }

    async fn revoke(
        &self,
        id: Uuid,
        user_id: Option<Uuid>,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::REVOKE_API_TOKEN)
            .bind_value(D::time(now))
            .bind_value(D::id(id))
            .bind_value(user_id.map(D::id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let revoked = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, revoked, audit).await
    }

    async fn touch(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::TOUCH_API_TOKEN)
            .bind_value(D::time(at))
            .bind_value(D::id(id))
            .execute(D::on(&mut writer))
            .await
            .map(|_| ())
            .map_err(D::map_error)
    }
}

#[async_trait]
impl<D: IdentitySql> OneTimeTokenRepo for SqlIdentity<D> {
    async fn create(
        &self,
        token: &OneTimeTokenRow,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::INSERT_ONE_TIME_TOKEN)
            .bind_value(D::id(token.id))
            .bind_value(token.purpose.as_str())
            .bind_value(token.token_hash.as_str())
            .bind_value(token.user_id.map(D::id))
            .bind_value(&token.email)
            .bind_value(token.role.map(Role::as_str))
            .bind_value(token.created_by.map(D::id))
            .bind_value(D::time(token.created_at))
            .bind_value(D::time(token.expires_at))
            .bind_value(token.used_at.map(D::time))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn find_live(
        &self,
        purpose: OneTimePurpose,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<OneTimeTokenRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::FIND_LIVE_ONE_TIME_TOKEN)
            .bind_value(purpose.as_str())
            .bind_value(token_hash)
            .bind_value(D::time(now))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::one_time_token::<D>).transpose()
    }

    async fn accept_invitation(
        &self,
        token_hash: &str,
        user_id: Uuid,
        display_name: &str,
        password_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let Some(invitation) =
            use_token::<D>(&mut tx, OneTimePurpose::Invitation, token_hash, now).await?
        else {
            return Ok(None);
        };
        let (Some(email), Some(role)) = (invitation.email, invitation.role) else {
            return Err(StoreError::Backend(
                "an invitation lacks its email or role".into(),
            ));
        };
        let user = NewUser {
            id: user_id,
            email,
            display_name: display_name.to_owned(),
            role,
            password_hash: Some(password_hash.to_owned()),
            created_at: now,
        };
        // A taken email fails here and rolls the use of the invitation back.
        let created = D::insert_user(&mut tx, &user).await?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(Some(created))
    }

    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let Some(reset) =
            use_token::<D>(&mut tx, OneTimePurpose::PasswordReset, token_hash, now).await?
        else {
            return Ok(None);
        };
        let Some(user_id) = reset.user_id else {
            return Err(StoreError::Backend("a reset token lacks its user".into()));
        };
        if !store_password::<D>(&mut tx, user_id, password_hash, None, now).await? {
            return Ok(None);
        }
        commit_audited::<D>(tx, &audit).await?;
        Ok(Some(user_id))
    }

    async fn prune_expired(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::PRUNE_ONE_TIME_TOKENS)
            .bind_value(D::time(before))
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done))
            .map_err(D::map_error)
    }
}

/// Appends `filter`'s conditions to a query that already has a `WHERE`.
fn push_audit_filter<D: IdentitySql>(query: &mut QueryBuilder<D::Db>, filter: &AuditFilter) {
    let push_text = |query: &mut QueryBuilder<D::Db>, column: &str, rule: &TextMatch| match rule {
        TextMatch::Exact(value) => {
            query
                .push(format!(" AND {column} = "))
                .push_value(value.clone());
        }
        TextMatch::Prefix(prefix) => D::push_prefix_match(query, column, prefix),
    };
    if let Some(actor) = &filter.actor {
        query.push(" AND actor = ").push_value(actor.clone());
    }
    if let Some(action) = &filter.action {
        push_text(query, "action", action);
    }
    if let Some(target) = &filter.target {
        push_text(query, "target", target);
    }
    if let Some(outcome) = filter.outcome {
        query.push(" AND outcome = ").push_value(outcome.as_str());
    }
    if let Some(since) = filter.since {
        query.push(" AND at >= ").push_value(D::time(since));
    }
    if let Some(until) = filter.until {
        query.push(" AND at < ").push_value(D::time(until));
    }
}

#[async_trait]
impl<D: IdentitySql> AuditRepo for SqlIdentity<D> {
    async fn append(
        &self,
        record: &AuditRecord,
        hasher: &dyn ChainHasher,
    ) -> Result<ChainLink, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let link = append_audit::<D>(&mut tx, &AuditAppend { record, hasher }).await?;
        tx.commit().await.map_err(D::map_error)?;
        Ok(link)
    }

    async fn list(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::<D::Db>::new(D::AUDIT_EVENTS);
        push_audit_filter::<D>(&mut query, filter);
        if let Some(after) = page.after() {
            query
                .push(" AND (at, id) < (")
                .push_value(D::time(after.at))
                .push(", ")
                .push_value(D::id(after.id))
                .push(")");
        }
        query
            .push(" ORDER BY at DESC, id DESC LIMIT ")
            .push_value(i64::from(page.limit()) + 1);
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = query
            .build()
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        let items = found
            .iter()
            .map(rows::audit_record::<D>)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |record| Cursor {
            at: record.at,
            id: record.id,
        }))
    }

    async fn oldest_first(
        &self,
        filter: &AuditFilter,
        after: &AuditPosition,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::<D::Db>::new(D::AUDIT_EVENTS);
        push_audit_filter::<D>(&mut query, filter);
        match after {
            AuditPosition::Unchained(cursor) => {
                query.push(" AND seq IS NULL");
                if let Some(cursor) = cursor {
                    query
                        .push(" AND (at, id) > (")
                        .push_value(D::time(cursor.at))
                        .push(", ")
                        .push_value(D::id(cursor.id))
                        .push(")");
                }
                query.push(" ORDER BY at, id");
            }
            AuditPosition::Chained(seq) => {
                query
                    .push(" AND seq > ")
                    .push_value(*seq)
                    .push(" ORDER BY seq");
            }
        }
        query.push(" LIMIT ").push_value(i64::from(limit));
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = query
            .build()
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::audit_record::<D>).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(
            "SELECT seq, hash, at, created_at, signature FROM audit_checkpoints \
             ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(D::on(&mut reader))
        .await
        .map_err(D::map_error)?;
        row.as_ref().map(rows::audit_checkpoint::<D>).transpose()
    }

    async fn prune_before(
        &self,
        cut: OffsetDateTime,
        limit: u32,
        signer: &dyn CheckpointSigner,
        now: OffsetDateTime,
    ) -> Result<AuditPrune, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        // Appends are held off, so the chain's end cannot move while it is cut.
        D::hold_audit_chain(&mut tx).await.map_err(D::map_error)?;
        let found = sqlx::query(D::OLDEST_CHAINED)
            .bind_value(i64::from(limit) + 1)
            .fetch_all(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let oldest = found
            .iter()
            .map(|row| {
                Ok((
                    get::<D, i64>(row, "seq")?,
                    get::<D, String>(row, "hash")?,
                    D::time_at(row, "at")?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let prefix = prunable_prefix(oldest, cut, limit);
        let mut pruned = AuditPrune::default();
        if let Some((seq, hash, at)) = prefix.last().cloned() {
            let mut checkpoint = AuditCheckpoint {
                seq,
                hash,
                at,
                created_at: crate::truncate_to_micros(now),
                signature: String::new(),
            };
            checkpoint.signature = signer.sign_checkpoint(&checkpoint);
            sqlx::query(D::INSERT_CHECKPOINT)
                .bind_value(checkpoint.seq)
                .bind_value(checkpoint.hash.as_str())
                .bind_value(D::time(checkpoint.at))
                .bind_value(D::time(checkpoint.created_at))
                .bind_value(checkpoint.signature.as_str())
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            let done = sqlx::query(D::DELETE_CHAINED_UP_TO)
                .bind_value(seq)
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            pruned.deleted += D::rows_affected(&done);
            pruned.checkpoint = Some(checkpoint);
        }
        let room = u64::from(limit).saturating_sub(pruned.deleted);
        if room > 0 {
            let done = sqlx::query(D::DELETE_UNCHAINED_BEFORE)
                .bind_value(D::time(cut))
                .bind_value(i64::try_from(room).unwrap_or(i64::MAX))
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            pruned.deleted += D::rows_affected(&done);
        }
        tx.commit().await.map_err(D::map_error)?;
        Ok(pruned)
    }

    async fn chain_after(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::CHAIN_AFTER)
            .bind_value(after_seq)
            .bind_value(i64::from(limit))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::audit_record::<D>).collect()
    }

    async fn count_unchained(&self) -> Result<u64, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query("SELECT count(*) AS unchained FROM audit_events WHERE seq IS NULL")
            .fetch_one(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        let count: i64 = get::<D, _>(&row, "unchained")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
