use crate::dialect::SqliteDialect;
use crate::map_error;
use hive_store::StoreError;
use hive_store::passkey_columns;
use hive_store::sqlx_support::Dialect;
use hive_store::sqlx_support::passkeys::PasskeySql;
use sqlx::SqliteConnection;
use uuid::Uuid;

impl PasskeySql for SqliteDialect {
    const LIST_FOR_USER: &'static str = concat!(
        "SELECT ",
        passkey_columns!(),
        " FROM passkeys WHERE user_id = ? ORDER BY created_at, id"
    );
    const FIND_BY_CREDENTIAL_ID: &'static str = concat!(
        "SELECT ",
        passkey_columns!(),
        " FROM passkeys WHERE credential_id = ?"
    );
    const INSERT: &'static str = concat!(
        "INSERT INTO passkeys (",
        passkey_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)"
    );
    const MARK_KEPT_SESSION: &'static str =
        "UPDATE sessions SET second_factor_at = ?1 WHERE id = ?2 AND user_id = ?3";
    const RECORD_USE: &'static str = "UPDATE passkeys SET passkey = ?2, sign_count = ?3, \
         backup_eligible = ?4, backup_state = ?5, last_used_at = ?6 \
         WHERE id = ?1 AND (sign_count < ?3 OR (?3 = 0 AND sign_count = 0))";
    const RENAME: &'static str = "UPDATE passkeys SET name = ?3 WHERE id = ?1 AND user_id = ?2";
    const REMOVE: &'static str = "DELETE FROM passkeys WHERE id = ?1 AND user_id = ?2";
    const REMOVE_ALL: &'static str = "DELETE FROM passkeys WHERE user_id = ?";

    /// The transaction began IMMEDIATE on the single writer: the count and the insert see one
    /// state.
    async fn count_for_add(
        connection: &mut SqliteConnection,
        user_id: Uuid,
    ) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM passkeys WHERE user_id = ?1) FROM users WHERE id = ?1",
        )
        .bind(Self::id(user_id))
        .fetch_optional(connection)
        .await
        .map_err(map_error)
    }
}
