//! Single sign-on links, on any sqlx dialect: the dialect supplies its SQL and how an account
//! is held while a link to it is written.

use super::dialect::{BindValue, Dialect, DialectConnection, Pools};
use super::identity::UserSql;
use super::{commit_audited, commit_if, rows};
use crate::{AuditAppend, NewUser, OidcLinkRepo, OidcLinkRow, StoreError, UserRow};
use async_trait::async_trait;
use std::future::Future;
use uuid::Uuid;

/// The columns of `oidc_links`.
#[macro_export]
macro_rules! oidc_link_columns {
    () => {
        "provider, subject, user_id, email, created_at"
    };
}

/// The statements of [`SqlOidcLinks`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait OidcLinkSql: UserSql {
    /// The columns of [`oidc_link_columns!`].
    const INSERT: &'static str;
    /// provider, subject.
    const FIND: &'static str;
    /// user id.
    const LIST_FOR_USER: &'static str;
    /// provider, user id.
    const UNLINK: &'static str;

    /// Whether the account exists, held so that a concurrent delete cannot leave the new link
    /// without it.
    fn hold_user(
        connection: &mut DialectConnection<Self>,
        user_id: Uuid,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

pub struct SqlOidcLinks<D: Dialect> {
    pub pools: Pools<D::Db>,
}

async fn insert_link<D: OidcLinkSql>(
    connection: &mut DialectConnection<D>,
    link: &OidcLinkRow,
) -> Result<(), StoreError> {
    sqlx::query(D::INSERT)
        .bind_value(link.provider.as_str())
        .bind_value(link.subject.as_str())
        .bind_value(D::id(link.user_id))
        .bind_value(&link.email)
        .bind_value(D::time(link.created_at))
        .execute(D::on(connection))
        .await
        .map_err(D::map_error)?;
    Ok(())
}

#[async_trait]
impl<D: OidcLinkSql> OidcLinkRepo for SqlOidcLinks<D> {
    async fn find(&self, provider: &str, subject: &str) -> Result<Option<OidcLinkRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::FIND)
            .bind_value(provider)
            .bind_value(subject)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::oidc_link::<D>).transpose()
    }

    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<OidcLinkRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::LIST_FOR_USER)
            .bind_value(D::id(user_id))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::oidc_link::<D>).collect()
    }

    async fn link(&self, link: &OidcLinkRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        if !D::hold_user(&mut tx, link.user_id).await? {
            return Err(StoreError::NotFound);
        }
        insert_link::<D>(&mut tx, link).await?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn create_linked_user(
        &self,
        user: &NewUser,
        link: &OidcLinkRow,
        audit: AuditAppend<'_>,
    ) -> Result<UserRow, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let created = D::insert_user(&mut tx, user).await?;
        insert_link::<D>(&mut tx, link).await?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(created)
    }

    async fn unlink(
        &self,
        provider: &str,
        user_id: Uuid,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::UNLINK)
            .bind_value(provider)
            .bind_value(D::id(user_id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, changed, audit).await
    }
}
