use crate::dialect::SqliteDialect;
use hive_store::StoreError;
use hive_store::sqlx_support::vault::VaultKeySql;
use sqlx::SqliteConnection;

impl VaultKeySql for SqliteDialect {
    const LIST: &'static str = "SELECT id, wrapped, created_at, encryptions_reserved, retired_at \
         FROM vault_keys ORDER BY id";
    const INSERT: &'static str = "INSERT INTO vault_keys \
         (id, wrapped, created_at, encryptions_reserved, retired_at) VALUES (?, ?, ?, ?, ?)";
    const RESERVE: &'static str = "UPDATE vault_keys \
         SET encryptions_reserved = encryptions_reserved + ?1 \
         WHERE id = ?2 AND retired_at IS NULL AND encryptions_reserved + ?1 <= ?3";
    const RETIRE_IF_UNUSED: &'static str = "UPDATE vault_keys SET retired_at = ?1 \
         WHERE id = ?2 AND retired_at IS NULL \
         AND id < (SELECT max(id) FROM vault_keys) \
         AND NOT EXISTS (SELECT 1 FROM secrets WHERE key_id = ?2) \
         AND NOT EXISTS (SELECT 1 FROM totp_credentials WHERE key_id = ?2) \
         AND NOT EXISTS (SELECT 1 FROM a2a_push_configs WHERE key_id = ?2)";

    /// Nothing to take: the retirement is one statement in an IMMEDIATE transaction on the
    /// single writer, so no secret can take the key between the check and the mark.
    async fn hold_key(_: &mut SqliteConnection, _: u32) -> Result<bool, StoreError> {
        Ok(true)
    }
}
