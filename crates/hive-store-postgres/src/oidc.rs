use crate::identity::{append_audit, commit_if, insert_user};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    AuditAppend, NewUser, OidcLinkRepo, OidcLinkRow, StoreError, UserRow,
    truncate_to_micros as micros,
};
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use uuid::Uuid;

pub(crate) struct PgOidcLinks {
    pub pool: PgPool,
}

const LINK_COLUMNS: &str = "provider, subject, user_id, email, created_at";

fn to_link(row: &PgRow) -> Result<OidcLinkRow, StoreError> {
    Ok(OidcLinkRow {
        provider: row.try_get("provider").map_err(map_error)?,
        subject: row.try_get("subject").map_err(map_error)?,
        user_id: row.try_get("user_id").map_err(map_error)?,
        email: row.try_get("email").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
    })
}

async fn insert_link(conn: &mut PgConnection, link: &OidcLinkRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_links (provider, subject, user_id, email, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&link.provider)
    .bind(&link.subject)
    .bind(link.user_id)
    .bind(&link.email)
    .bind(micros(link.created_at))
    .execute(conn)
    .await
    .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl OidcLinkRepo for PgOidcLinks {
    async fn find(&self, provider: &str, subject: &str) -> Result<Option<OidcLinkRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LINK_COLUMNS} FROM oidc_links WHERE provider = $1 AND subject = $2"
        )))
        .bind(provider)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_link).transpose()
    }

    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<OidcLinkRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LINK_COLUMNS} FROM oidc_links WHERE user_id = $1 \
             ORDER BY created_at, provider"
        )))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_link).collect()
    }

    async fn link(&self, link: &OidcLinkRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // Locks the account: a concurrent delete waits, or wins and leaves nothing to link.
        let exists = sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR SHARE")
            .bind(link.user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_error)?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound);
        }
        insert_link(&mut tx, link).await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn create_linked_user(
        &self,
        user: &NewUser,
        link: &OidcLinkRow,
        audit: AuditAppend<'_>,
    ) -> Result<UserRow, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let created = insert_user(&mut tx, user).await?;
        insert_link(&mut tx, link).await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(created)
    }

    async fn unlink(
        &self,
        provider: &str,
        user_id: Uuid,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let changed = sqlx::query("DELETE FROM oidc_links WHERE provider = $1 AND user_id = $2")
            .bind(provider)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected()
            == 1;
        commit_if(tx, changed, audit).await
    }
}
