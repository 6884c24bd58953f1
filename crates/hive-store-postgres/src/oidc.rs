use crate::dialect::PgDialect;
use crate::map_error;
use hive_store::StoreError;
use hive_store::oidc_link_columns;
use hive_store::sqlx_support::oidc::OidcLinkSql;
use sqlx::PgConnection;
use uuid::Uuid;

impl OidcLinkSql for PgDialect {
    const INSERT: &'static str = concat!(
        "INSERT INTO oidc_links (",
        oidc_link_columns!(),
        ") VALUES ($1, $2, $3, $4, $5)"
    );
    const FIND: &'static str = concat!(
        "SELECT ",
        oidc_link_columns!(),
        " FROM oidc_links WHERE provider = $1 AND subject = $2"
    );
    const LIST_FOR_USER: &'static str = concat!(
        "SELECT ",
        oidc_link_columns!(),
        " FROM oidc_links WHERE user_id = $1 ORDER BY created_at, provider"
    );
    const UNLINK: &'static str = "DELETE FROM oidc_links WHERE provider = $1 AND user_id = $2";

    /// Locks the account: a concurrent delete waits, or wins and leaves nothing to link.
    async fn hold_user(connection: &mut PgConnection, user_id: Uuid) -> Result<bool, StoreError> {
        let found = sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR SHARE")
            .bind(user_id)
            .fetch_optional(connection)
            .await
            .map_err(map_error)?;
        Ok(found.is_some())
    }
}
