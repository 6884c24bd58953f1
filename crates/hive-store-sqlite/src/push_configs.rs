use crate::dialect::SqliteDialect;
use hive_store::StoreError;
use hive_store::push_config_columns;
use hive_store::sqlx_support::push_configs::PushConfigSql;
use sqlx::SqliteConnection;
use uuid::Uuid;

impl PushConfigSql for SqliteDialect {
    const COUNT_FOR_PUT: &'static str = "SELECT count(*) FILTER (WHERE id != ?3) AS others, \
         count(*) FILTER (WHERE id = ?3) AS same \
         FROM a2a_push_configs WHERE owner = ?1 AND task_id = ?2";
    const UPSERT: &'static str = concat!(
        "INSERT INTO a2a_push_configs (",
        push_config_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (owner, task_id, id) DO UPDATE SET url = excluded.url, \
           auth_scheme = excluded.auth_scheme, key_id = excluded.key_id, \
           secrets = excluded.secrets, updated_at = excluded.updated_at"
    );
    const GET: &'static str = concat!(
        "SELECT ",
        push_config_columns!(),
        " FROM a2a_push_configs WHERE owner = ?1 AND task_id = ?2 AND id = ?3"
    );
    const LIST: &'static str = concat!(
        "SELECT ",
        push_config_columns!(),
        " FROM a2a_push_configs WHERE owner = ?1 AND task_id = ?2 \
         AND (?3 IS NULL OR id > ?3) ORDER BY id LIMIT ?4"
    );
    const DELETE: &'static str =
        "DELETE FROM a2a_push_configs WHERE owner = ?1 AND task_id = ?2 AND id = ?3";
    const TOUCH: &'static str = "UPDATE a2a_push_configs SET updated_at = max(updated_at, ?3) \
         WHERE owner = ?1 AND task_id = ?2";
    const PRUNE: &'static str = "DELETE FROM a2a_push_configs WHERE updated_at < ?";

    /// Nothing to take: IMMEDIATE on the single writer makes the count and the write one step.
    async fn hold_task_configs(
        _: &mut SqliteConnection,
        _: &str,
        _: Uuid,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}
