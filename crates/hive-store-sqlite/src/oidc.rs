use crate::dialect::SqliteDialect;
use crate::map_error;
use hive_store::StoreError;
use hive_store::oidc_link_columns;
use hive_store::sqlx_support::Dialect;
use hive_store::sqlx_support::oidc::OidcLinkSql;
use sqlx::SqliteConnection;
use uuid::Uuid;

impl OidcLinkSql for SqliteDialect {
    const INSERT: &'static str = concat!(
        "INSERT INTO oidc_links (",
        oidc_link_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5)"
    );
    const FIND: &'static str = concat!(
        "SELECT ",
        oidc_link_columns!(),
        " FROM oidc_links WHERE provider = ?1 AND subject = ?2"
    );
    const LIST_FOR_USER: &'static str = concat!(
        "SELECT ",
        oidc_link_columns!(),
        " FROM oidc_links WHERE user_id = ? ORDER BY created_at, provider"
    );
    const UNLINK: &'static str = "DELETE FROM oidc_links WHERE provider = ?1 AND user_id = ?2";

    /// The transaction began IMMEDIATE on the single writer: no delete can come in between.
    async fn hold_user(
        connection: &mut SqliteConnection,
        user_id: Uuid,
    ) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)")
            .bind(Self::id(user_id))
            .fetch_one(connection)
            .await
            .map_err(map_error)
    }
}
