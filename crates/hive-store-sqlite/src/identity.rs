use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_proto::Role;
use hive_store::{
    AccountChange, ApiTokenRepo, ApiTokenRow, AuditAppend, AuditCheckpoint, AuditFilter,
    AuditOutcome, AuditPosition, AuditPrune, AuditRecord, AuditRepo, ChainHasher, ChainLink,
    CheckpointSigner, Cursor, GuardedChange, LoginThrottle, NewUser, OneTimePurpose,
    OneTimeTokenRepo, OneTimeTokenRow, Page, PageRequest, ProfileChange, SessionRepo, SessionRow,
    StoreError, TextMatch, UserRepo, UserRow, chain_link, next_link, prunable_prefix,
    role_from_text, scopes_from_text, scopes_to_text,
};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, SqliteConnection, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

/// Users, sessions, API tokens, one-time tokens and audit records.
pub(crate) struct SqliteIdentity {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

pub(crate) fn text(id: Uuid) -> String {
    id.hyphenated().to_string()
}

pub(crate) fn uuid_at(row: &SqliteRow, column: &str) -> Result<Uuid, StoreError> {
    let raw: String = row.try_get(column).map_err(map_error)?;
    Uuid::try_parse(&raw).map_err(|_| StoreError::Backend("a stored id is not a uuid".into()))
}

pub(crate) fn optional_uuid_at(row: &SqliteRow, column: &str) -> Result<Option<Uuid>, StoreError> {
    let raw: Option<String> = row.try_get(column).map_err(map_error)?;
    raw.map(|raw| {
        Uuid::try_parse(&raw).map_err(|_| StoreError::Backend("a stored id is not a uuid".into()))
    })
    .transpose()
}

fn time_at(row: &SqliteRow, column: &str) -> Result<OffsetDateTime, StoreError> {
    from_micros(row.try_get(column).map_err(map_error)?)
}

pub(crate) fn optional_time_at(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let raw: Option<i64> = row.try_get(column).map_err(map_error)?;
    raw.map(from_micros).transpose()
}

fn count_at(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    let raw: i64 = row.try_get(column).map_err(map_error)?;
    Ok(u32::try_from(raw).unwrap_or(u32::MAX))
}

/// Whether the user has a second factor: an enabled TOTP credential or a passkey.
/// A macro, not a constant, so that the column list can be one literal.
macro_rules! second_factor_sql {
    () => {
        "(EXISTS (SELECT 1 FROM totp_credentials WHERE totp_credentials.user_id = users.id \
         AND totp_credentials.enabled_at IS NOT NULL) \
         OR EXISTS (SELECT 1 FROM passkeys WHERE passkeys.user_id = users.id))"
    };
}

const USER_COLUMNS: &str = concat!(
    "id, email, display_name, role, active, password_hash, created_at, updated_at, \
     consecutive_failures, last_failure_at, failure_day, failures_today, ",
    second_factor_sql!(),
    " AS second_factor"
);

fn to_throttle(row: &SqliteRow) -> Result<LoginThrottle, StoreError> {
    Ok(LoginThrottle {
        consecutive_failures: count_at(row, "consecutive_failures")?,
        last_failure_at: optional_time_at(row, "last_failure_at")?,
        failure_day: row.try_get("failure_day").map_err(map_error)?,
        failures_today: count_at(row, "failures_today")?,
    })
}

fn to_user(row: &SqliteRow) -> Result<UserRow, StoreError> {
    let role: String = row.try_get("role").map_err(map_error)?;
    Ok(UserRow {
        id: uuid_at(row, "id")?,
        email: row.try_get("email").map_err(map_error)?,
        display_name: row.try_get("display_name").map_err(map_error)?,
        role: role_from_text(&role)?,
        active: row.try_get("active").map_err(map_error)?,
        password_hash: row.try_get("password_hash").map_err(map_error)?,
        created_at: time_at(row, "created_at")?,
        updated_at: time_at(row, "updated_at")?,
        throttle: to_throttle(row)?,
        second_factor: row.try_get("second_factor").map_err(map_error)?,
    })
}

pub(crate) async fn begin(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
    // IMMEDIATE takes the write lock up front, so checks and writes see one state.
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_error)
}

pub(crate) async fn insert_user(
    conn: &mut SqliteConnection,
    user: &NewUser,
) -> Result<UserRow, StoreError> {
    let id = user.id;
    sqlx::query(
        "INSERT INTO users (id, email, display_name, role, active, password_hash, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?6)",
    )
    .bind(text(id))
    .bind(&user.email)
    .bind(&user.display_name)
    .bind(user.role.as_str())
    .bind(&user.password_hash)
    .bind(to_micros(user.created_at))
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    fetch_user(conn, id)
        .await?
        .ok_or_else(|| StoreError::Backend("a new user vanished".into()))
}

async fn fetch_user(conn: &mut SqliteConnection, id: Uuid) -> Result<Option<UserRow>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = ?"
    )))
    .bind(text(id))
    .fetch_optional(conn)
    .await
    .map_err(map_error)?;
    row.as_ref().map(to_user).transpose()
}

/// Whether changing `user` (to `role`, or inactive) would leave no active admin.
async fn would_remove_last_admin(
    conn: &mut SqliteConnection,
    user: &UserRow,
    stays_admin: bool,
) -> Result<bool, StoreError> {
    if stays_admin || user.role != Role::Admin || !user.active {
        return Ok(false);
    }
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE role = 'admin' AND active = 1 AND id <> ?",
    )
    .bind(text(user.id))
    .fetch_one(conn)
    .await
    .map_err(map_error)?;
    Ok(others == 0)
}

pub(crate) async fn delete_sessions(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    except: Option<Uuid>,
) -> Result<u64, StoreError> {
    sqlx::query("DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2)")
        .bind(text(user_id))
        .bind(except.map(text))
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
        .map_err(map_error)
}

/// An admin's change: name, role and active set, sessions ended, audited, in one transaction.
async fn guarded_change(
    pool: &SqlitePool,
    id: Uuid,
    change: &AccountChange,
    now: OffsetDateTime,
    audit: AuditAppend<'_>,
) -> Result<GuardedChange, StoreError> {
    let (role, active) = (change.role, change.active);
    let mut tx = begin(pool).await?;
    let Some(user) = fetch_user(&mut tx, id).await? else {
        return Ok(GuardedChange::NotFound);
    };
    let stays_admin = role.unwrap_or(user.role) == Role::Admin && active.unwrap_or(user.active);
    if would_remove_last_admin(&mut tx, &user, stays_admin).await? {
        return Ok(GuardedChange::LastAdmin);
    }
    sqlx::query(
        "UPDATE users SET role = ?1, active = ?2, display_name = coalesce(?3, display_name), \
         updated_at = ?4 WHERE id = ?5",
    )
    .bind(role.unwrap_or(user.role).as_str())
    .bind(active.unwrap_or(user.active))
    .bind(&change.display_name)
    .bind(to_micros(now))
    .bind(text(id))
    .execute(&mut *tx)
    .await
    .map_err(map_error)?;
    let ends_sessions = role.is_some_and(|r| r != user.role) || active == Some(false);
    if ends_sessions {
        delete_sessions(&mut tx, id, None).await?;
    }
    let changed = fetch_user(&mut tx, id)
        .await?
        .ok_or_else(|| StoreError::Backend("a changed user vanished".into()))?;
    append_audit(&mut tx, &audit).await?;
    tx.commit().await.map_err(map_error)?;
    Ok(GuardedChange::Changed(changed))
}

async fn store_password(
    conn: &mut SqliteConnection,
    id: Uuid,
    password_hash: &str,
    keep_session: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE users SET password_hash = ?1, updated_at = ?2, consecutive_failures = 0, \
         last_failure_at = NULL, failures_today = 0 WHERE id = ?3",
    )
    .bind(password_hash)
    .bind(to_micros(now))
    .bind(text(id))
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    delete_sessions(&mut *conn, id, keep_session).await?;
    // Outstanding reset links are void once the password has changed.
    sqlx::query(
        "UPDATE one_time_tokens SET used_at = ?1 \
         WHERE purpose = 'password_reset' AND user_id = ?2 AND used_at IS NULL",
    )
    .bind(to_micros(now))
    .bind(text(id))
    .execute(conn)
    .await
    .map_err(map_error)?;
    Ok(true)
}

#[async_trait]
impl UserRepo for SqliteIdentity {
    async fn setup_completed(&self) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM instance_setup)")
            .fetch_one(&self.reader)
            .await
            .map_err(map_error)
    }

    async fn create_first_admin(
        &self,
        user: &NewUser,
        audit: AuditAppend<'_>,
    ) -> Result<UserRow, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let done: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM instance_setup)")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_error)?;
        if done {
            return Err(StoreError::Conflict("setup is already complete".into()));
        }
        let admin = insert_user(&mut tx, user).await?;
        sqlx::query("INSERT INTO instance_setup (id, completed_at, admin_id) VALUES (1, ?, ?)")
            .bind(to_micros(user.created_at))
            .bind(text(admin.id))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(admin)
    }

    async fn create(&self, user: &NewUser, audit: AuditAppend<'_>) -> Result<UserRow, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let created = insert_user(&mut tx, user).await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(created)
    }

    async fn get(&self, id: Uuid) -> Result<Option<UserRow>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(map_error)?;
        fetch_user(&mut conn, id).await
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = ?"
        )))
        .bind(email)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_user).transpose()
    }

    async fn list(&self, page: &PageRequest) -> Result<Page<UserRow>, StoreError> {
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users \
             WHERE (?1 IS NULL OR (created_at, id) < (?1, ?2)) \
             ORDER BY created_at DESC, id DESC LIMIT ?3"
        )))
        .bind(after.map(|c| to_micros(c.at)))
        .bind(after.map(|c| text(c.id)))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        let items = rows.iter().map(to_user).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |user| Cursor {
            at: user.created_at,
            id: user.id,
        }))
    }

    async fn update_profile(
        &self,
        id: Uuid,
        change: &ProfileChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let done = sqlx::query(
            "UPDATE users SET email = coalesce(?1, email), \
             display_name = coalesce(?2, display_name), updated_at = ?3 WHERE id = ?4",
        )
        .bind(&change.email)
        .bind(&change.display_name)
        .bind(to_micros(now))
        .bind(text(id))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let user = fetch_user(&mut tx, id).await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(user)
    }

    async fn update_account(
        &self,
        id: Uuid,
        change: &AccountChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<GuardedChange, StoreError> {
        guarded_change(&self.writer, id, change, now, audit).await
    }

    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep_session: Option<Uuid>,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let changed = store_password(&mut tx, id, password_hash, keep_session, now).await?;
        commit_if(tx, changed, audit).await
    }

    async fn record_login_failure(
        &self,
        id: Uuid,
        day: i64,
        now: OffsetDateTime,
    ) -> Result<LoginThrottle, StoreError> {
        let row = sqlx::query(
            "UPDATE users SET consecutive_failures = consecutive_failures + 1, \
             last_failure_at = ?1, \
             failures_today = CASE WHEN failure_day = ?2 THEN failures_today + 1 ELSE 1 END, \
             failure_day = ?2 WHERE id = ?3 \
             RETURNING consecutive_failures, last_failure_at, failure_day, failures_today",
        )
        .bind(to_micros(now))
        .bind(day)
        .bind(text(id))
        .fetch_optional(&self.writer)
        .await
        .map_err(map_error)?;
        row.as_ref()
            .map(to_throttle)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn record_login_success(
        &self,
        id: Uuid,
        rehash: Option<&str>,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET consecutive_failures = 0, last_failure_at = NULL, \
             password_hash = coalesce(?1, password_hash) WHERE id = ?2",
        )
        .bind(rehash)
        .bind(text(id))
        .execute(&self.writer)
        .await
        .map(|_| ())
        .map_err(map_error)
    }
}

const SESSION_COLUMNS: &str = "id, user_id, token_hash, created_at, last_seen_at, expires_at, \
    authenticated_at, ip, user_agent, second_factor_at";

fn to_session(row: &SqliteRow) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        id: uuid_at(row, "id")?,
        user_id: uuid_at(row, "user_id")?,
        token_hash: row.try_get("token_hash").map_err(map_error)?,
        created_at: time_at(row, "created_at")?,
        last_seen_at: time_at(row, "last_seen_at")?,
        expires_at: time_at(row, "expires_at")?,
        authenticated_at: time_at(row, "authenticated_at")?,
        second_factor_at: optional_time_at(row, "second_factor_at")?,
        ip: row.try_get("ip").map_err(map_error)?,
        user_agent: row.try_get("user_agent").map_err(map_error)?,
    })
}

#[async_trait]
impl SessionRepo for SqliteIdentity {
    async fn create(
        &self,
        session: &SessionRow,
        max_per_user: u32,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = begin(&self.writer).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(text(session.id))
        .bind(text(session.user_id))
        .bind(&session.token_hash)
        .bind(to_micros(session.created_at))
        .bind(to_micros(session.last_seen_at))
        .bind(to_micros(session.expires_at))
        .bind(to_micros(session.authenticated_at))
        .bind(&session.ip)
        .bind(&session.user_agent)
        .bind(session.second_factor_at.map(to_micros))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = ?1 AND id NOT IN \
             (SELECT id FROM sessions WHERE user_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2)",
        )
        .bind(text(session.user_id))
        .bind(i64::from(max_per_user))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn find_by_token_hash(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = ?"
        )))
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_session).transpose()
    }

    async fn touch(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = max(last_seen_at, ?1) WHERE id = ?2")
            .bind(to_micros(at))
            .bind(text(id))
            .execute(&self.writer)
            .await
            .map(|_| ())
            .map_err(map_error)
    }

    async fn mark_authenticated(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = begin(&self.writer).await?;
        sqlx::query("UPDATE sessions SET authenticated_at = ?1, last_seen_at = ?1 WHERE id = ?2")
            .bind(to_micros(at))
            .bind(text(id))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn mark_second_factor(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let changed = sqlx::query(
            "UPDATE sessions SET second_factor_at = ?1, last_seen_at = max(last_seen_at, ?1) \
             WHERE id = ?2",
        )
        .bind(to_micros(at))
        .bind(text(id))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if(tx, changed, audit).await
    }

    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ? \
             ORDER BY created_at DESC, id DESC"
        )))
        .bind(text(user_id))
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_session).collect()
    }

    async fn list_live_page(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        seen_after: OffsetDateTime,
        page: &PageRequest,
    ) -> Result<Page<SessionRow>, StoreError> {
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 \
             AND expires_at > ?2 AND last_seen_at > ?3 \
             AND (?4 IS NULL OR (created_at, id) < (?4, ?5)) \
             ORDER BY created_at DESC, id DESC LIMIT ?6"
        )))
        .bind(text(user_id))
        .bind(to_micros(now))
        .bind(to_micros(seen_after))
        .bind(after.map(|c| to_micros(c.at)))
        .bind(after.map(|c| text(c.id)))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        let items = rows.iter().map(to_session).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |session| {
            Cursor {
                at: session.created_at,
                id: session.id,
            }
        }))
    }

    async fn delete(
        &self,
        id: Uuid,
        user_id: Option<Uuid>,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let deleted =
            sqlx::query("DELETE FROM sessions WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)")
                .bind(text(id))
                .bind(user_id.map(text))
                .execute(&mut *tx)
                .await
                .map_err(map_error)?
                .rows_affected()
                == 1;
        commit_if_audited(tx, deleted, audit).await
    }

    async fn delete_for_user(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<u64, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let deleted = delete_sessions(&mut tx, user_id, except).await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(deleted)
    }

    async fn prune_expired(
        &self,
        now: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at < ?2")
            .bind(to_micros(now))
            .bind(to_micros(idle_since))
            .execute(&self.writer)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_error)
    }
}

const TOKEN_COLUMNS: &str =
    "id, user_id, name, token_hash, role, scopes, created_at, expires_at, last_used_at, revoked_at";

fn to_api_token(row: &SqliteRow) -> Result<ApiTokenRow, StoreError> {
    let role: String = row.try_get("role").map_err(map_error)?;
    let scopes: String = row.try_get("scopes").map_err(map_error)?;
    Ok(ApiTokenRow {
        id: uuid_at(row, "id")?,
        user_id: uuid_at(row, "user_id")?,
        name: row.try_get("name").map_err(map_error)?,
        token_hash: row.try_get("token_hash").map_err(map_error)?,
        role: role_from_text(&role)?,
        scopes: scopes_from_text(&scopes)?,
        created_at: time_at(row, "created_at")?,
        expires_at: time_at(row, "expires_at")?,
        last_used_at: optional_time_at(row, "last_used_at")?,
        revoked_at: optional_time_at(row, "revoked_at")?,
    })
}

#[async_trait]
impl ApiTokenRepo for SqliteIdentity {
    async fn create(&self, token: &ApiTokenRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = begin(&self.writer).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(text(token.id))
        .bind(text(token.user_id))
        .bind(&token.name)
        .bind(&token.token_hash)
        .bind(token.role.as_str())
        .bind(scopes_to_text(&token.scopes))
        .bind(to_micros(token.created_at))
        .bind(to_micros(token.expires_at))
        .bind(token.last_used_at.map(to_micros))
        .bind(token.revoked_at.map(to_micros))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn find_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiTokenRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?"
        )))
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_api_token).transpose()
    }

    async fn list_for_user(
        &self,
        user_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<ApiTokenRow>, StoreError> {
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = ?1 \
             AND (?2 IS NULL OR (created_at, id) < (?2, ?3)) \
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        )))
        .bind(text(user_id))
        .bind(after.map(|c| to_micros(c.at)))
        .bind(after.map(|c| text(c.id)))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        let items = rows
            .iter()
            .map(to_api_token)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |token| Cursor {
            at: token.created_at,
            id: token.id,
        }))
    }

    async fn revoke(
        &self,
        id: Uuid,
        user_id: Option<Uuid>,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = ?1 \
             WHERE id = ?2 AND revoked_at IS NULL AND (?3 IS NULL OR user_id = ?3)",
        )
        .bind(to_micros(now))
        .bind(text(id))
        .bind(user_id.map(text))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if(tx, revoked, audit).await
    }

    async fn touch(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = max(coalesce(last_used_at, ?1), ?1) WHERE id = ?2",
        )
        .bind(to_micros(at))
        .bind(text(id))
        .execute(&self.writer)
        .await
        .map(|_| ())
        .map_err(map_error)
    }
}

const ONE_TIME_COLUMNS: &str =
    "id, purpose, token_hash, user_id, email, role, created_by, created_at, expires_at, used_at";

fn to_one_time(row: &SqliteRow) -> Result<OneTimeTokenRow, StoreError> {
    let purpose: String = row.try_get("purpose").map_err(map_error)?;
    let role: Option<String> = row.try_get("role").map_err(map_error)?;
    Ok(OneTimeTokenRow {
        id: uuid_at(row, "id")?,
        purpose: OneTimePurpose::parse(&purpose)?,
        token_hash: row.try_get("token_hash").map_err(map_error)?,
        user_id: optional_uuid_at(row, "user_id")?,
        email: row.try_get("email").map_err(map_error)?,
        role: role.as_deref().map(role_from_text).transpose()?,
        created_by: optional_uuid_at(row, "created_by")?,
        created_at: time_at(row, "created_at")?,
        expires_at: time_at(row, "expires_at")?,
        used_at: optional_time_at(row, "used_at")?,
    })
}

/// Marks a live token of `purpose` used and returns it; `None` when there is none.
async fn use_token(
    conn: &mut SqliteConnection,
    purpose: OneTimePurpose,
    token_hash: &str,
    now: OffsetDateTime,
) -> Result<Option<OneTimeTokenRow>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE one_time_tokens SET used_at = ?1 \
         WHERE purpose = ?2 AND token_hash = ?3 AND used_at IS NULL AND expires_at > ?1 \
         RETURNING {ONE_TIME_COLUMNS}"
    )))
    .bind(to_micros(now))
    .bind(purpose.as_str())
    .bind(token_hash)
    .fetch_optional(conn)
    .await
    .map_err(map_error)?;
    row.as_ref().map(to_one_time).transpose()
}

#[async_trait]
impl OneTimeTokenRepo for SqliteIdentity {
    async fn create(
        &self,
        token: &OneTimeTokenRow,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = begin(&self.writer).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO one_time_tokens ({ONE_TIME_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(text(token.id))
        .bind(token.purpose.as_str())
        .bind(&token.token_hash)
        .bind(token.user_id.map(text))
        .bind(&token.email)
        .bind(token.role.map(Role::as_str))
        .bind(token.created_by.map(text))
        .bind(to_micros(token.created_at))
        .bind(to_micros(token.expires_at))
        .bind(token.used_at.map(to_micros))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn find_live(
        &self,
        purpose: OneTimePurpose,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<OneTimeTokenRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ONE_TIME_COLUMNS} FROM one_time_tokens \
             WHERE purpose = ? AND token_hash = ? AND used_at IS NULL AND expires_at > ?"
        )))
        .bind(purpose.as_str())
        .bind(token_hash)
        .bind(to_micros(now))
        .fetch_optional(&self.reader)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_one_time).transpose()
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
        let mut tx = begin(&self.writer).await?;
        let Some(invitation) =
            use_token(&mut tx, OneTimePurpose::Invitation, token_hash, now).await?
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
        let created = insert_user(&mut tx, &user).await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(Some(created))
    }

    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let Some(reset) =
            use_token(&mut tx, OneTimePurpose::PasswordReset, token_hash, now).await?
        else {
            return Ok(None);
        };
        let Some(user_id) = reset.user_id else {
            return Err(StoreError::Backend("a reset token lacks its user".into()));
        };
        if !store_password(&mut tx, user_id, password_hash, None, now).await? {
            return Ok(None);
        }
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(Some(user_id))
    }

    async fn prune_expired(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM one_time_tokens WHERE expires_at < ?")
            .bind(to_micros(before))
            .execute(&self.writer)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_error)
    }
}

const AUDIT_COLUMNS: &str =
    "id, at, actor, action, target, outcome, ip, request_id, detail, seq, prev_hash, hash";

fn to_audit(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    let outcome: String = row.try_get("outcome").map_err(map_error)?;
    let seq: Option<i64> = row.try_get("seq").map_err(map_error)?;
    let prev_hash: Option<String> = row.try_get("prev_hash").map_err(map_error)?;
    let hash: Option<String> = row.try_get("hash").map_err(map_error)?;
    Ok(AuditRecord {
        id: uuid_at(row, "id")?,
        at: time_at(row, "at")?,
        actor: row.try_get("actor").map_err(map_error)?,
        action: row.try_get("action").map_err(map_error)?,
        target: row.try_get("target").map_err(map_error)?,
        outcome: AuditOutcome::parse(&outcome)?,
        ip: row.try_get("ip").map_err(map_error)?,
        request_id: row.try_get("request_id").map_err(map_error)?,
        detail: row.try_get("detail").map_err(map_error)?,
        link: chain_link(seq, prev_hash, hash),
    })
}

/// Appends an audit record inside the caller's transaction. The transaction began
/// `IMMEDIATE` on the single writer, so "read the last link, write the next" is atomic.
pub(crate) async fn append_audit(
    conn: &mut SqliteConnection,
    audit: &AuditAppend<'_>,
) -> Result<ChainLink, StoreError> {
    let record = audit.record;
    let last: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, hash FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(audit_unwritable)?;
    let link = next_link(last, record, audit.hasher);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO audit_events ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )))
    .bind(text(record.id))
    .bind(to_micros(record.at))
    .bind(&record.actor)
    .bind(&record.action)
    .bind(&record.target)
    .bind(record.outcome.as_str())
    .bind(&record.ip)
    .bind(&record.request_id)
    .bind(&record.detail)
    .bind(link.seq)
    .bind(&link.prev_hash)
    .bind(&link.hash)
    .execute(&mut *conn)
    .await
    .map_err(audit_unwritable)?;
    Ok(link)
}

fn audit_unwritable(error: sqlx::Error) -> StoreError {
    StoreError::AuditUnwritable(map_error(error).to_string())
}

/// Commits a change with its audit record when it happened (`changed`); otherwise rolls back.
pub(crate) async fn commit_if(
    mut tx: Transaction<'static, Sqlite>,
    changed: bool,
    audit: AuditAppend<'_>,
) -> Result<bool, StoreError> {
    if !changed {
        return Ok(false);
    }
    append_audit(&mut tx, &audit).await?;
    tx.commit().await.map_err(map_error)?;
    Ok(true)
}

/// [`commit_if`] for a change whose audit record is optional: without one, the change commits
/// alone (its caller records it some other way).
pub(crate) async fn commit_if_audited(
    mut tx: Transaction<'static, Sqlite>,
    changed: bool,
    audit: Option<AuditAppend<'_>>,
) -> Result<bool, StoreError> {
    if !changed {
        return Ok(false);
    }
    if let Some(audit) = audit {
        append_audit(&mut tx, &audit).await?;
    }
    tx.commit().await.map_err(map_error)?;
    Ok(true)
}

/// Appends `filter`'s conditions to a query that already has a `WHERE`.
fn push_audit_filter(query: &mut QueryBuilder<Sqlite>, filter: &AuditFilter) {
    fn push_text(query: &mut QueryBuilder<Sqlite>, column: &str, rule: &TextMatch) {
        match rule {
            TextMatch::Exact(value) => {
                query
                    .push(format!(" AND {column} = "))
                    .push_bind(value.clone());
            }
            // substr, not LIKE: LIKE ignores ASCII case and treats % and _ as wildcards.
            TextMatch::Prefix(prefix) => {
                query
                    .push(format!(" AND substr({column}, 1, "))
                    .push_bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
                    .push(") = ")
                    .push_bind(prefix.clone());
            }
        }
    }
    if let Some(actor) = &filter.actor {
        query.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(action) = &filter.action {
        push_text(query, "action", action);
    }
    if let Some(target) = &filter.target {
        push_text(query, "target", target);
    }
    if let Some(outcome) = filter.outcome {
        query.push(" AND outcome = ").push_bind(outcome.as_str());
    }
    if let Some(since) = filter.since {
        query.push(" AND at >= ").push_bind(to_micros(since));
    }
    if let Some(until) = filter.until {
        query.push(" AND at < ").push_bind(to_micros(until));
    }
}

#[async_trait]
impl AuditRepo for SqliteIdentity {
    async fn append(
        &self,
        record: &AuditRecord,
        hasher: &dyn ChainHasher,
    ) -> Result<ChainLink, StoreError> {
        let mut tx = begin(&self.writer).await?;
        let link = append_audit(&mut tx, &AuditAppend { record, hasher }).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(link)
    }

    async fn list(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1 = 1"
        ));
        push_audit_filter(&mut query, filter);
        if let Some(after) = page.after() {
            query
                .push(" AND (at, id) < (")
                .push_bind(to_micros(after.at))
                .push(", ")
                .push_bind(text(after.id))
                .push(")");
        }
        query
            .push(" ORDER BY at DESC, id DESC LIMIT ")
            .push_bind(i64::from(page.limit()) + 1);
        let rows = query
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(map_error)?;
        let items = rows.iter().map(to_audit).collect::<Result<Vec<_>, _>>()?;
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
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1 = 1"
        ));
        push_audit_filter(&mut query, filter);
        match after {
            AuditPosition::Unchained(cursor) => {
                query.push(" AND seq IS NULL");
                if let Some(cursor) = cursor {
                    query
                        .push(" AND (at, id) > (")
                        .push_bind(to_micros(cursor.at))
                        .push(", ")
                        .push_bind(text(cursor.id))
                        .push(")");
                }
                query.push(" ORDER BY at, id");
            }
            AuditPosition::Chained(seq) => {
                query
                    .push(" AND seq > ")
                    .push_bind(*seq)
                    .push(" ORDER BY seq");
            }
        }
        query.push(" LIMIT ").push_bind(i64::from(limit));
        let rows = query
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(map_error)?;
        rows.iter().map(to_audit).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, hash, at, created_at, signature FROM audit_checkpoints \
             ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await
        .map_err(map_error)?;
        row.map(|row| {
            Ok(AuditCheckpoint {
                seq: row.try_get("seq").map_err(map_error)?,
                hash: row.try_get("hash").map_err(map_error)?,
                at: time_at(&row, "at")?,
                created_at: time_at(&row, "created_at")?,
                signature: row.try_get("signature").map_err(map_error)?,
            })
        })
        .transpose()
    }

    async fn prune_before(
        &self,
        cut: OffsetDateTime,
        limit: u32,
        signer: &dyn CheckpointSigner,
        now: OffsetDateTime,
    ) -> Result<AuditPrune, StoreError> {
        // IMMEDIATE holds off appends, so the chain's end cannot move while it is cut.
        let mut tx = begin(&self.writer).await?;
        let oldest: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT seq, hash, at FROM audit_events WHERE seq IS NOT NULL ORDER BY seq LIMIT ?",
        )
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_error)?;
        let oldest = oldest
            .into_iter()
            .map(|(seq, hash, at)| Ok((seq, hash, from_micros(at)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let prefix = prunable_prefix(oldest, cut, limit);
        let mut pruned = AuditPrune::default();
        if let Some((seq, hash, at)) = prefix.last().cloned() {
            let mut checkpoint = AuditCheckpoint {
                seq,
                hash,
                at,
                created_at: hive_store::truncate_to_micros(now),
                signature: String::new(),
            };
            checkpoint.signature = signer.sign_checkpoint(&checkpoint);
            sqlx::query(
                "INSERT INTO audit_checkpoints (seq, hash, at, created_at, signature) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(checkpoint.seq)
            .bind(&checkpoint.hash)
            .bind(to_micros(checkpoint.at))
            .bind(to_micros(checkpoint.created_at))
            .bind(&checkpoint.signature)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
            pruned.deleted += sqlx::query("DELETE FROM audit_events WHERE seq <= ?")
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?
                .rows_affected();
            pruned.checkpoint = Some(checkpoint);
        }
        let room = u64::from(limit).saturating_sub(pruned.deleted);
        if room > 0 {
            pruned.deleted += sqlx::query(
                "DELETE FROM audit_events WHERE id IN \
                 (SELECT id FROM audit_events WHERE seq IS NULL AND at < ? ORDER BY at, id LIMIT ?)",
            )
            .bind(to_micros(cut))
            .bind(i64::try_from(room).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected();
        }
        tx.commit().await.map_err(map_error)?;
        Ok(pruned)
    }

    async fn chain_after(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?"
        )))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_audit).collect()
    }

    async fn count_unchained(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE seq IS NULL")
            .fetch_one(&self.reader)
            .await
            .map_err(map_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
