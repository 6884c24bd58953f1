use crate::identity::{append_audit, begin, commit_if, insert_user, text, uuid_at};
use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{AuditAppend, NewUser, OidcLinkRepo, OidcLinkRow, StoreError, UserRow};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use uuid::Uuid;

pub(crate) struct SqliteOidcLinks {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

const LINK_COLUMNS: &str = "provider, subject, user_id, email, created_at";

fn to_link(row: &SqliteRow) -> Result<OidcLinkRow, StoreError> {
    Ok(OidcLinkRow {
        provider: row.try_get("provider").map_err(map_error)?,
        subject: row.try_get("subject").map_err(map_error)?,
        user_id: uuid_at(row, "user_id")?,
        email: row.try_get("email").map_err(map_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
    })
}

async fn insert_link(conn: &mut SqliteConnection, link: &OidcLinkRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_links (provider, subject, user_id, email, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(&link.provider)
    .bind(&link.subject)
    .bind(text(link.user_id))
    .bind(&link.email)
    .bind(to_micros(link.created_at))
    .execute(conn)
    .await
    .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl OidcLinkRepo for SqliteOidcLinks {
    async fn find(&self, provider: &str, subject: &str) -> Result<Option<OidcLinkRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LINK_COLUMNS} FROM oidc_links WHERE provider = ?1 AND subject = ?2"
        )))
        .bind(provider)
        .bind(subject)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_link).transpose()
    }

    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<OidcLinkRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LINK_COLUMNS} FROM oidc_links WHERE user_id = ? \
             ORDER BY created_at, provider"
        )))
        .bind(text(user_id))
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_link).collect()
    }

    async fn link(&self, link: &OidcLinkRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = begin(&self.writer).await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)")
            .bind(text(link.user_id))
            .fetch_one(&mut *tx)
            .await
            .map_err(map_error)?;
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
        let mut tx = begin(&self.writer).await?;
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
        let mut tx = begin(&self.writer).await?;
        let changed = sqlx::query("DELETE FROM oidc_links WHERE provider = ?1 AND user_id = ?2")
            .bind(provider)
            .bind(text(user_id))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected()
            == 1;
        commit_if(tx, changed, audit).await
    }
}
