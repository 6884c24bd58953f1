//! Users, sessions, API tokens, one-time tokens and audit records on PostgreSQL.

use crate::dialect::PgDialect;
use crate::map_error;
use hive_proto::Role;
use hive_store::sqlx_support::identity::{
    IdentitySql, SessionSql, UserSql, delete_sessions, fetch_user, other_active_admins,
};
use hive_store::sqlx_support::{Dialect, Pools, PushValue, commit_audited, rows};
use hive_store::{
    AccountChange, AuditAppend, GuardedChange, NewUser, ProfileChange, StoreError, UserRow,
    api_token_columns, audit_columns, one_time_token_columns, session_columns, user_columns,
};
use sqlx::postgres::Postgres;
use sqlx::{PgConnection, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

/// Serialises the changes guarded by the last-admin rule (a transaction-scoped advisory lock:
/// READ COMMITTED alone would let two demotions each see the other admin).
const ADMIN_GUARD_LOCK: i64 = 0x6869_7665_6164_6d6e;

impl UserSql for PgDialect {
    async fn insert_user(
        connection: &mut PgConnection,
        user: &NewUser,
    ) -> Result<UserRow, StoreError> {
        let row = sqlx::query(concat!(
            "INSERT INTO users (id, email, display_name, role, active, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, true, $5, $6, $6) RETURNING ",
            user_columns!()
        ))
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(Self::time(user.created_at))
        .fetch_one(connection)
        .await
        .map_err(map_error)?;
        rows::user::<Self>(&row)
    }
}

impl SessionSql for PgDialect {
    const DELETE_SESSIONS: &'static str =
        "DELETE FROM sessions WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2)";
}

impl IdentitySql for PgDialect {
    const USER_BY_ID: &'static str =
        concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
    const USER_BY_EMAIL: &'static str =
        concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
    const LIST_USERS: &'static str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $3"
    );
    // On concurrent callers the primary key lets exactly one insert.
    const COMPLETE_SETUP: &'static str =
        "INSERT INTO instance_setup (id, completed_at, admin_id) VALUES (1, $1, $2)";
    const SET_PASSWORD: &'static str = "UPDATE users SET password_hash = $1, updated_at = $2, \
         consecutive_failures = 0, last_failure_at = NULL, failures_today = 0 WHERE id = $3";
    const VOID_RESET_LINKS: &'static str = "UPDATE one_time_tokens SET used_at = $1 \
         WHERE purpose = 'password_reset' AND user_id = $2 AND used_at IS NULL";
    const RECORD_LOGIN_FAILURE: &'static str = "UPDATE users \
         SET consecutive_failures = consecutive_failures + 1, last_failure_at = $1, \
         failures_today = CASE WHEN failure_day = $2 THEN failures_today + 1 ELSE 1 END, \
         failure_day = $2 WHERE id = $3 \
         RETURNING consecutive_failures, last_failure_at, failure_day, failures_today";
    const RECORD_LOGIN_SUCCESS: &'static str = "UPDATE users SET consecutive_failures = 0, \
         last_failure_at = NULL, password_hash = coalesce($1, password_hash) WHERE id = $2";

    const INSERT_SESSION: &'static str = concat!(
        "INSERT INTO sessions (",
        session_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    const TRIM_SESSIONS: &'static str = "DELETE FROM sessions WHERE user_id = $1 AND id NOT IN \
         (SELECT id FROM sessions WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)";
    const SESSION_BY_TOKEN_HASH: &'static str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE token_hash = $1"
    );
    const TOUCH_SESSION: &'static str =
        "UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $1) WHERE id = $2";
    const MARK_AUTHENTICATED: &'static str =
        "UPDATE sessions SET authenticated_at = $1, last_seen_at = $1 WHERE id = $2";
    const MARK_SECOND_FACTOR: &'static str = "UPDATE sessions SET second_factor_at = $1, \
         last_seen_at = greatest(last_seen_at, $1) WHERE id = $2";
    const SESSIONS_OF_USER: &'static str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
    );
    const LIVE_SESSIONS_PAGE: &'static str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE user_id = $1 AND expires_at > $2 AND last_seen_at > $3 \
         AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $6"
    );
    const DELETE_SESSION: &'static str =
        "DELETE FROM sessions WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)";
    const PRUNE_SESSIONS: &'static str =
        "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2";

    const INSERT_API_TOKEN: &'static str = concat!(
        "INSERT INTO api_tokens (",
        api_token_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    const API_TOKEN_BY_HASH: &'static str = concat!(
        "SELECT ",
        api_token_columns!(),
        " FROM api_tokens WHERE token_hash = $1"
    );
    const API_TOKEN_BY_ID: &'static str = concat!(
        "SELECT ",
        api_token_columns!(),
        " FROM api_tokens WHERE id = $1"
    );
    const API_TOKENS_OF_USER: &'static str = concat!(
        "SELECT ",
        api_token_columns!(),
        " FROM api_tokens WHERE user_id = $1 \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    const REVOKE_API_TOKEN: &'static str = "UPDATE api_tokens SET revoked_at = $1 \
         WHERE id = $2 AND revoked_at IS NULL AND ($3::uuid IS NULL OR user_id = $3)";
    const TOUCH_API_TOKEN: &'static str =
        "UPDATE api_tokens SET last_used_at = GREATEST(last_used_at, $1) WHERE id = $2";

    const INSERT_ONE_TIME_TOKEN: &'static str = concat!(
        "INSERT INTO one_time_tokens (",
        one_time_token_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    const USE_ONE_TIME_TOKEN: &'static str = concat!(
        "UPDATE one_time_tokens SET used_at = $1 \
         WHERE purpose = $2 AND token_hash = $3 AND used_at IS NULL AND expires_at > $1 \
         RETURNING ",
        one_time_token_columns!()
    );
    const FIND_LIVE_ONE_TIME_TOKEN: &'static str = concat!(
        "SELECT ",
        one_time_token_columns!(),
        " FROM one_time_tokens \
         WHERE purpose = $1 AND token_hash = $2 AND used_at IS NULL AND expires_at > $3"
    );
    const PRUNE_ONE_TIME_TOKENS: &'static str = "DELETE FROM one_time_tokens WHERE expires_at < $1";

    const AUDIT_EVENTS: &'static str =
        concat!("SELECT ", audit_columns!(), " FROM audit_events WHERE true");
    const OLDEST_CHAINED: &'static str =
        "SELECT seq, hash, at FROM audit_events WHERE seq IS NOT NULL ORDER BY seq LIMIT $1";
    const INSERT_CHECKPOINT: &'static str = "INSERT INTO audit_checkpoints \
         (seq, hash, at, created_at, signature) VALUES ($1, $2, $3, $4, $5)";
    const DELETE_CHAINED_UP_TO: &'static str = "DELETE FROM audit_events WHERE seq <= $1";
    const DELETE_UNCHAINED_BEFORE: &'static str = "DELETE FROM audit_events WHERE id IN \
         (SELECT id FROM audit_events WHERE seq IS NULL AND at < $1 ORDER BY at, id LIMIT $2)";
    const CHAIN_AFTER: &'static str = concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
    );

    async fn update_profile(
        connection: &mut PgConnection,
        id: Uuid,
        change: &ProfileChange,
        now: OffsetDateTime,
    ) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE users SET email = coalesce($1, email), \
             display_name = coalesce($2, display_name), updated_at = $3 WHERE id = $4 \
             RETURNING ",
            user_columns!()
        ))
        .bind(&change.email)
        .bind(&change.display_name)
        .bind(Self::time(now))
        .bind(id)
        .fetch_optional(connection)
        .await
        .map_err(map_error)?;
        row.as_ref().map(rows::user::<Self>).transpose()
    }

    async fn guarded_change(
        pools: &Pools<Postgres>,
        id: Uuid,
        change: &AccountChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<GuardedChange, StoreError> {
        let (role, active) = (change.role, change.active);
        let mut tx = pools.writer.begin().await.map_err(map_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ADMIN_GUARD_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        let Some(user) = fetch_user::<Self>(&mut tx, id).await? else {
            return Ok(GuardedChange::NotFound);
        };
        let new_role = role.unwrap_or(user.role);
        let new_active = active.unwrap_or(user.active);
        let stays_admin = new_role == Role::Admin && new_active;
        if user.role == Role::Admin && user.active && !stays_admin {
            let others = other_active_admins::<Self>(
                &mut tx,
                "SELECT count(*) AS admins FROM users \
                 WHERE role = 'admin' AND active AND id <> $1",
                id,
            )
            .await?;
            if others == 0 {
                return Ok(GuardedChange::LastAdmin);
            }
        }
        let row = sqlx::query(concat!(
            "UPDATE users SET role = $1, active = $2, display_name = coalesce($3, display_name), \
             updated_at = $4 WHERE id = $5 RETURNING ",
            user_columns!()
        ))
        .bind(new_role.as_str())
        .bind(new_active)
        .bind(&change.display_name)
        .bind(Self::time(now))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_error)?;
        if new_role != user.role || active == Some(false) {
            delete_sessions::<Self>(&mut tx, id, None).await?;
        }
        let changed = rows::user::<Self>(&row)?;
        commit_audited::<Self>(tx, &audit).await?;
        Ok(GuardedChange::Changed(changed))
    }

    /// starts_with, not LIKE: no wildcards to escape.
    fn push_prefix_match(query: &mut QueryBuilder<Postgres>, column: &str, prefix: &str) {
        query
            .push(format!(" AND starts_with({column}, "))
            .push_value(prefix.to_owned())
            .push(")");
    }
}
