use crate::dialect::PgDialect;
use crate::map_error;
use hive_store::StoreError;
use hive_store::sqlx_support::vault::VaultKeySql;
use sqlx::PgConnection;

impl VaultKeySql for PgDialect {
    const LIST: &'static str = "SELECT id, wrapped, created_at, encryptions_reserved, retired_at \
         FROM vault_keys ORDER BY id";
    const INSERT: &'static str = "INSERT INTO vault_keys \
         (id, wrapped, created_at, encryptions_reserved, retired_at) VALUES ($1, $2, $3, $4, $5)";
    const RESERVE: &'static str = "UPDATE vault_keys \
         SET encryptions_reserved = encryptions_reserved + $1 \
         WHERE id = $2 AND retired_at IS NULL AND encryptions_reserved + $1 <= $3";
    const RETIRE_IF_UNUSED: &'static str = "UPDATE vault_keys SET retired_at = $1 \
         WHERE id = $2 AND retired_at IS NULL \
         AND id < (SELECT max(id) FROM vault_keys) \
         AND NOT EXISTS (SELECT 1 FROM secrets WHERE key_id = $2) \
         AND NOT EXISTS (SELECT 1 FROM totp_credentials WHERE key_id = $2) \
         AND NOT EXISTS (SELECT 1 FROM a2a_push_configs WHERE key_id = $2)";

    /// FOR UPDATE conflicts with the KEY SHARE lock a secret's foreign-key check takes: it
    /// waits for writers still storing a value under this key, and holds new ones off until
    /// the retirement's check is done.
    async fn hold_key(connection: &mut PgConnection, id: u32) -> Result<bool, StoreError> {
        let locked: Option<i64> =
            sqlx::query_scalar("SELECT id FROM vault_keys WHERE id = $1 FOR UPDATE")
                .bind(i64::from(id))
                .fetch_optional(connection)
                .await
                .map_err(map_error)?;
        Ok(locked.is_some())
    }
}
