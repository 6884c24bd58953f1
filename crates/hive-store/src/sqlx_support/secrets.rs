//! Secrets (values sealed by the vault), on any sqlx dialect: the dialect supplies its SQL.

use super::dialect::{BindValue, Dialect, Pools, keyset_page};
use super::vault::rows_not_under_key;
use super::{commit_audited, commit_if, get, rows};
use crate::{AuditAppend, Cursor, Page, PageRequest, SecretRepo, SecretRow, StoreError};
use async_trait::async_trait;
use uuid::Uuid;

/// The columns of `secrets`.
#[macro_export]
macro_rules! secret_columns {
    () => {
        "id, owner_id, name, description, version, key_id, value, created_at, updated_at"
    };
}

/// The statements of [`SqlSecrets`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait SecretSql: Dialect {
    /// The columns of [`secret_columns!`].
    const INSERT: &'static str;
    /// id, owner (or null for any).
    const GET: &'static str;
    /// owner (or null for any), cursor time, cursor id, limit.
    const LIST: &'static str;
    /// description, key id, value, now, id, expected version; bumps the version.
    const REPLACE_VALUE: &'static str;
    /// id, owner (or null for any).
    const DELETE: &'static str;
    /// key id, after id (or null), limit.
    const LIST_NOT_UNDER_KEY: &'static str;
    /// new key id, new value, id, expected version, expected key id, expected value.
    const RESEAL: &'static str;
    /// Returns `key_id` and `secrets`, by key id.
    const COUNT_BY_KEY: &'static str;
}

pub struct SqlSecrets<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: SecretSql> SecretRepo for SqlSecrets<D> {
    async fn create(&self, secret: &SecretRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::INSERT)
            .bind_value(D::id(secret.id))
            .bind_value(D::id(secret.owner_id))
            .bind_value(secret.name.as_str())
            .bind_value(secret.description.as_str())
            .bind_value(secret.version)
            .bind_value(i64::from(secret.key_id))
            .bind_value(secret.value.as_str())
            .bind_value(D::time(secret.created_at))
            .bind_value(D::time(secret.updated_at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn get(&self, id: Uuid, owner: Option<Uuid>) -> Result<Option<SecretRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::GET)
            .bind_value(D::id(id))
            .bind_value(owner.map(D::id))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::secret::<D>).transpose()
    }

    async fn list(
        &self,
        owner: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<SecretRow>, StoreError> {
        let query = sqlx::query(D::LIST).bind_value(owner.map(D::id));
        keyset_page::<D, _>(&self.pools, query, page, rows::secret::<D>, |s| Cursor {
            at: s.created_at,
            id: s.id,
        })
        .await
    }

    async fn replace_value(
        &self,
        next: &SecretRow,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::REPLACE_VALUE)
            .bind_value(next.description.as_str())
            .bind_value(i64::from(next.key_id))
            .bind_value(next.value.as_str())
            .bind_value(D::time(next.updated_at))
            .bind_value(D::id(next.id))
            .bind_value(next.version - 1)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let replaced = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, replaced, audit).await
    }

    async fn delete(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::DELETE)
            .bind_value(D::id(id))
            .bind_value(owner.map(D::id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let deleted = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, deleted, audit).await
    }

    async fn list_not_under_key(
        &self,
        key_id: u32,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError> {
        rows_not_under_key::<D, _>(
            &self.pools,
            D::LIST_NOT_UNDER_KEY,
            key_id,
            after,
            limit,
            rows::secret::<D>,
        )
        .await
    }

    async fn reseal(
        &self,
        expected: &SecretRow,
        key_id: u32,
        value: &str,
    ) -> Result<bool, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::RESEAL)
            .bind_value(i64::from(key_id))
            .bind_value(value)
            .bind_value(D::id(expected.id))
            .bind_value(expected.version)
            .bind_value(i64::from(expected.key_id))
            .bind_value(expected.value.as_str())
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done) == 1)
            .map_err(D::map_error)
    }

    async fn count_by_key(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::COUNT_BY_KEY)
            .fetch_all(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        found
            .iter()
            .map(|row| {
                let key_id: i64 = get::<D, _>(row, "key_id")?;
                let count: i64 = get::<D, _>(row, "secrets")?;
                let key_id = u32::try_from(key_id)
                    .map_err(|_| StoreError::Backend("a stored key id is out of range".into()))?;
                Ok((key_id, u64::try_from(count).unwrap_or(0)))
            })
            .collect()
    }
}
