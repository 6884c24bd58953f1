//! Users, sessions, API tokens, one-time tokens and audit records on SQLite.

use crate::dialect::{SqliteDialect, begin};
use crate::map_error;
use hive_proto::Role;
use hive_store::sqlx_support::identity::{
    IdentitySql, SessionSql, UserSql, delete_sessions, fetch_user, other_active_admins,
};
use hive_store::sqlx_support::{Dialect, Pools, PushValue, commit_audited};
use hive_store::{
    AccountChange, AuditAppend, GuardedChange, NewUser, ProfileChange, StoreError, UserRow,
    api_token_columns, audit_columns, one_time_token_columns, session_columns, user_columns,
};
use sqlx::sqlite::Sqlite;
use sqlx::{QueryBuilder, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

impl UserSql for SqliteDialect {
    /// No RETURNING with the computed second factor column: the new row is read back.
    async fn insert_user(
        connection: &mut SqliteConnection,
        user: &NewUser,
    ) -> Result<UserRow, StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, display_name, role, active, password_hash, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?6)",
        )
        .bind(Self::id(user.id))
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(Self::time(user.created_at))
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
        fetch_user::<Self>(connection, user.id)
            .await?
            .ok_or_else(|| StoreError::Backend("a new user vanished".into()))
    }
}

impl SessionSql for SqliteDialect {
    const DELETE_SESSIONS: &'static str =
        "DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2)";
}

impl IdentitySql for SqliteDialect {
    const USER_BY_ID: &'static str =
        concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?");
    const USER_BY_EMAIL: &'static str =
        concat!("SELECT ", user_columns!(), " FROM users WHERE email = ?");
    const LIST_USERS: &'static str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE (?1 IS NULL OR (created_at, id) < (?1, ?2)) \
         ORDER BY created_at DESC, id DESC LIMIT ?3"
    );
    const COMPLETE_SETUP: &'static str =
        "INSERT INTO instance_setup (id, completed_at, admin_id) VALUES (1, ?, ?)";
    const SET_PASSWORD: &'static str = "UPDATE users SET password_hash = ?1, updated_at = ?2, \
         consecutive_failures = 0, last_failure_at = NULL, failures_today = 0 WHERE id = ?3";
    const VOID_RESET_LINKS: &'static str = "UPDATE one_time_tokens SET used_at = ?1 \
         WHERE purpose = 'password_reset' AND user_id = ?2 AND used_at IS NULL";
    const RECORD_LOGIN_FAILURE: &'static str = "UPDATE users \
         SET consecutive_failures = consecutive_failures + 1, last_failure_at = ?1, \
         failures_today = CASE WHEN failure_day = ?2 THEN failures_today + 1 ELSE 1 END, \
         failure_day = ?2 WHERE id = ?3 \
         RETURNING consecutive_failures, last_failure_at, failure_day, failures_today";
    const RECORD_LOGIN_SUCCESS: &'static str = "UPDATE users SET consecutive_failures = 0, \
         last_failure_at = NULL, password_hash = coalesce(?1, password_hash) WHERE id = ?2";

    const INSERT_SESSION: &'static str = concat!(
        "INSERT INTO sessions (",
        session_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    const TRIM_SESSIONS: &'static str = "DELETE FROM sessions WHERE user_id = ?1 AND id NOT IN \
         (SELECT id FROM sessions WHERE user_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2)";
    const SESSION_BY_TOKEN_HASH: &'static str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE token_hash = ?"
    );
    const TOUCH_SESSION: &'static str =
        "UPDATE sessions SET last_seen_at = max(last_seen_at, ?1) WHERE id = ?2";
    const MARK_AUTHENTICATED: &'static str =
        "UPDATE sessions SET authenticated_at = ?1, last_seen_at = ?1 WHERE id = ?2";
    const MARK_SECOND_FACTOR: &'static str = "UPDATE sessions SET second_factor_at = ?1, \
         last_seen_at = max(last_seen_at, ?1) WHERE id = ?2";
    const SESSIONS_OF_USER: &'static str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE user_id = ? ORDER BY created_at DESC, id DESC"
    );
    const LIVE_SESSIONS_PAGE: &'static str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE user_id = ?1 AND expires_at > ?2 AND last_seen_at > ?3 \
         AND (?4 IS NULL OR (created_at, id) < (?4, ?5)) \
         ORDER BY created_at DESC, id DESC LIMIT ?6"
    );
    const DELETE_SESSION: &'static str =
        "DELETE FROM sessions WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)";
    const PRUNE_SESSIONS: &'static str =
        "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at < ?2";

    const INSERT_API_TOKEN: &'static str = concat!(
        "INSERT INTO api_tokens (",
        api_token_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    const API_TOKEN_BY_HASH: &'static str = concat!(
        "SELECT ",
        api_token_columns!(),
        " FROM api_tokens WHERE token_hash = ?"
    );
    const API_TOKEN_BY_ID: &'static str = concat!(
        "SELECT ",
        api_token_columns!(),
        " FROM api_tokens WHERE id = ?"
    );
    const API_TOKENS_OF_USER: &'static str = concat!(
        "SELECT ",
        api_token_columns!(),
        " FROM api_tokens WHERE user_id = ?1 AND (?2 IS NULL OR (created_at, id) < (?2, ?3)) \
         ORDER BY created_at DESC, id DESC LIMIT ?4"
    );
    const REVOKE_API_TOKEN: &'static str = "UPDATE api_tokens SET revoked_at = ?1 \
         WHERE id = ?2 AND revoked_at IS NULL AND (?3 IS NULL OR user_id = ?3)";
    const TOUCH_API_TOKEN: &'static str =
        "UPDATE api_tokens SET last_used_at = max(coalesce(last_used_at, ?1), ?1) WHERE id = ?2";

    const INSERT_ONE_TIME_TOKEN: &'static str = concat!(
        "INSERT INTO one_time_tokens (",
        one_time_token_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    const USE_ONE_TIME_TOKEN: &'static str = concat!(
        "UPDATE one_time_tokens SET used_at = ?1 \
         WHERE purpose = ?2 AND token_hash = ?3 AND used_at IS NULL AND expires_at > ?1 \
         RETURNING ",
        one_time_token_columns!()
    );
    const FIND_LIVE_ONE_TIME_TOKEN: &'static str = concat!(
        "SELECT ",
        one_time_token_columns!(),
        " FROM one_time_tokens \
         WHERE purpose = ? AND token_hash = ? AND used_at IS NULL AND expires_at > ?"
    );
    const PRUNE_ONE_TIME_TOKENS: &'static str = "DELETE FROM one_time_tokens WHERE expires_at < ?";

    const AUDIT_EVENTS: &'static str = concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_events WHERE 1 = 1"
    );
    const OLDEST_CHAINED: &'static str =
        "SELECT seq, hash, at FROM audit_events WHERE seq IS NOT NULL ORDER BY seq LIMIT ?";
    const INSERT_CHECKPOINT: &'static str = "INSERT INTO audit_checkpoints \
         (seq, hash, at, created_at, signature) VALUES (?, ?, ?, ?, ?)";
    const DELETE_CHAINED_UP_TO: &'static str = "DELETE FROM audit_events WHERE seq <= ?";
    const DELETE_UNCHAINED_BEFORE: &'static str = "DELETE FROM audit_events WHERE id IN \
         (SELECT id FROM audit_events WHERE seq IS NULL AND at < ? ORDER BY at, id LIMIT ?)";
    const CHAIN_AFTER: &'static str = concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?"
    );

    /// No RETURNING with the computed second factor column: the row is read back.
    async fn update_profile(
        connection: &mut SqliteConnection,
        id: Uuid,
        change: &ProfileChange,
        now: OffsetDateTime,
    ) -> Result<Option<UserRow>, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET email = coalesce(?1, email), \
             display_name = coalesce(?2, display_name), updated_at = ?3 WHERE id = ?4",
        )
        .bind(&change.email)
        .bind(&change.display_name)
        .bind(Self::time(now))
        .bind(Self::id(id))
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        fetch_user::<Self>(connection, id).await
    }

    /// IMMEDIATE on the single writer: the admin count and the change see one state.
    async fn guarded_change(
        pools: &Pools<Sqlite>,
        id: Uuid,
        change: &AccountChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<GuardedChange, StoreError> {
        let (role, active) = (change.role, change.active);
        let mut tx = begin(&pools.writer).await?;
        let Some(user) = fetch_user::<Self>(&mut tx, id).await? else {
            return Ok(GuardedChange::NotFound);
        };
        let stays_admin = role.unwrap_or(user.role) == Role::Admin && active.unwrap_or(user.active);
        if !stays_admin && user.role == Role::Admin && user.active {
            let others = other_active_admins::<Self>(
                &mut tx,
                "SELECT count(*) AS admins FROM users \
                 WHERE role = 'admin' AND active = 1 AND id <> ?",
                user.id,
            )
            .await?;
            if others == 0 {
                return Ok(GuardedChange::LastAdmin);
            }
        }
        sqlx::query(
            "UPDATE users SET role = ?1, active = ?2, display_name = coalesce(?3, display_name), \
             updated_at = ?4 WHERE id = ?5",
        )
        .bind(role.unwrap_or(user.role).as_str())
        .bind(active.unwrap_or(user.active))
        .bind(&change.display_name)
        .bind(Self::time(now))
        .bind(Self::id(id))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        let ends_sessions = role.is_some_and(|r| r != user.role) || active == Some(false);
        if ends_sessions {
            delete_sessions::<Self>(&mut tx, id, None).await?;
        }
        let changed = fetch_user::<Self>(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Backend("a changed user vanished".into()))?;
        commit_audited::<Self>(tx, &audit).await?;
        Ok(GuardedChange::Changed(changed))
    }

    /// substr, not LIKE: LIKE ignores ASCII case and treats % and _ as wildcards.
    fn push_prefix_match(query: &mut QueryBuilder<Sqlite>, column: &str, prefix: &str) {
        query
            .push(format!(" AND substr({column}, 1, "))
            .push_value(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
            .push(") = ")
            .push_value(prefix.to_owned());
    }
}
