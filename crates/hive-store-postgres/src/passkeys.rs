use crate::dialect::PgDialect;
use crate::map_error;
use hive_store::StoreError;
use hive_store::passkey_columns;
use hive_store::sqlx_support::passkeys::PasskeySql;
use sqlx::PgConnection;
use uuid::Uuid;

impl PasskeySql for PgDialect {
    const LIST_FOR_USER: &'static str = concat!(
        "SELECT ",
        passkey_columns!(),
        " FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
    );
    const FIND_BY_CREDENTIAL_ID: &'static str = concat!(
        "SELECT ",
        passkey_columns!(),
        " FROM passkeys WHERE credential_id = $1"
    );
    const INSERT: &'static str = concat!(
        "INSERT INTO passkeys (",
        passkey_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)"
    );
    const MARK_KEPT_SESSION: &'static str =
        "UPDATE sessions SET second_factor_at = $1 WHERE id = $2 AND user_id = $3";
    const RECORD_USE: &'static str = "UPDATE passkeys SET passkey = $2, sign_count = $3, \
         backup_eligible = $4, backup_state = $5, last_used_at = $6 \
         WHERE id = $1 AND (sign_count < $3 OR ($3 = 0 AND sign_count = 0))";
    const RENAME: &'static str = "UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2";
    const REMOVE: &'static str = "DELETE FROM passkeys WHERE id = $1 AND user_id = $2";
    const REMOVE_ALL: &'static str = "DELETE FROM passkeys WHERE user_id = $1";

    /// The user's row lock serialises concurrent adds; the count is its own statement, so
    /// under READ COMMITTED it sees what the add before it committed.
    async fn count_for_add(
        connection: &mut PgConnection,
        user_id: Uuid,
    ) -> Result<Option<i64>, StoreError> {
        let user: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(user_id)
                .fetch_optional(&mut *connection)
                .await
                .map_err(map_error)?;
        if user.is_none() {
            return Ok(None);
        }
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM passkeys WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(connection)
            .await
            .map_err(map_error)?;
        Ok(Some(count))
    }
}
