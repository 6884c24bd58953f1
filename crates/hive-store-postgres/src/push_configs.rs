use crate::dialect::PgDialect;
use crate::map_error;
use hive_store::StoreError;
use hive_store::push_config_columns;
use hive_store::sqlx_support::push_configs::PushConfigSql;
use sqlx::PgConnection;
use uuid::Uuid;

/// The class of the two-key advisory locks that serialise writes to one task's configs (the
/// two-key form never meets the one-key locks of leadership and the audit chain).
const PUSH_CONFIG_LOCK_CLASS: i32 = 0x5055_5348; // "PUSH"

impl PushConfigSql for PgDialect {
    const COUNT_FOR_PUT: &'static str = "SELECT count(*) FILTER (WHERE id != $3) AS others, \
         count(*) FILTER (WHERE id = $3) AS same \
         FROM a2a_push_configs WHERE owner = $1 AND task_id = $2";
    const UPSERT: &'static str = concat!(
        "INSERT INTO a2a_push_configs (",
        push_config_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (owner, task_id, id) DO UPDATE SET url = excluded.url, \
           auth_scheme = excluded.auth_scheme, key_id = excluded.key_id, \
           secrets = excluded.secrets, updated_at = excluded.updated_at"
    );
    const GET: &'static str = concat!(
        "SELECT ",
        push_config_columns!(),
        " FROM a2a_push_configs WHERE owner = $1 AND task_id = $2 AND id = $3"
    );
    // Ids compare bytewise on both backends (SQLite's BINARY collation).
    const LIST: &'static str = concat!(
        "SELECT ",
        push_config_columns!(),
        " FROM a2a_push_configs WHERE owner = $1 AND task_id = $2 \
         AND ($3::text IS NULL OR id COLLATE \"C\" > $3) ORDER BY id COLLATE \"C\" LIMIT $4"
    );
    const DELETE: &'static str =
        "DELETE FROM a2a_push_configs WHERE owner = $1 AND task_id = $2 AND id = $3";
    const TOUCH: &'static str = "UPDATE a2a_push_configs \
         SET updated_at = greatest(updated_at, $3) WHERE owner = $1 AND task_id = $2";
    const PRUNE: &'static str = "DELETE FROM a2a_push_configs WHERE updated_at < $1";

    /// A transaction-scoped advisory lock per task; each statement after it sees what the
    /// writer before committed (READ COMMITTED).
    async fn hold_task_configs(
        connection: &mut PgConnection,
        owner: &str,
        task_id: Uuid,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3::text))")
            .bind(PUSH_CONFIG_LOCK_CLASS)
            .bind(owner)
            .bind(task_id)
            .execute(connection)
            .await
            .map(|_| ())
            .map_err(map_error)
    }
}
