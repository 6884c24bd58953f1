use crate::identity::{append_audit, commit_if};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    AuditAppend, Cursor, Page, PageRequest, SecretRepo, SecretRow, StoreError,
    truncate_to_micros as micros,
};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

pub(crate) struct PgSecrets {
    pub pool: PgPool,
}

const COLUMNS: &str =
    "id, owner_id, name, description, version, key_id, value, created_at, updated_at";

fn to_secret(row: &PgRow) -> Result<SecretRow, StoreError> {
    let key_id: i64 = row.try_get("key_id").map_err(map_error)?;
    Ok(SecretRow {
        id: row.try_get("id").map_err(map_error)?,
        owner_id: row.try_get("owner_id").map_err(map_error)?,
        name: row.try_get("name").map_err(map_error)?,
        description: row.try_get("description").map_err(map_error)?,
        version: row.try_get("version").map_err(map_error)?,
        key_id: u32::try_from(key_id)
            .map_err(|_| StoreError::Backend("a stored key id is out of range".into()))?,
        value: row.try_get("value").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        updated_at: row.try_get("updated_at").map_err(map_error)?,
    })
}

#[async_trait]
impl SecretRepo for PgSecrets {
    async fn create(&self, secret: &SecretRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO secrets ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )))
        .bind(secret.id)
        .bind(secret.owner_id)
        .bind(&secret.name)
        .bind(&secret.description)
        .bind(secret.version)
        .bind(i64::from(secret.key_id))
        .bind(&secret.value)
        .bind(micros(secret.created_at))
        .bind(micros(secret.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn get(&self, id: Uuid, owner: Option<Uuid>) -> Result<Option<SecretRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM secrets WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)"
        )))
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_secret).transpose()
    }

    async fn list(
        &self,
        owner: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<SecretRow>, StoreError> {
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM secrets WHERE ($1::uuid IS NULL OR owner_id = $1) \
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        )))
        .bind(owner)
        .bind(after.map(|c| micros(c.at)))
        .bind(after.map(|c| c.id))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        let items = rows.iter().map(to_secret).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |s| Cursor {
            at: s.created_at,
            id: s.id,
        }))
    }

    async fn replace_value(
        &self,
        next: &SecretRow,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let replaced = sqlx::query(
            "UPDATE secrets SET version = version + 1, description = $1, key_id = $2, \
             value = $3, updated_at = $4 WHERE id = $5 AND version = $6",
        )
        .bind(&next.description)
        .bind(i64::from(next.key_id))
        .bind(&next.value)
        .bind(micros(next.updated_at))
        .bind(next.id)
        .bind(next.version - 1)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if(tx, replaced, audit).await
    }

    async fn delete(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let deleted = sqlx::query(
            "DELETE FROM secrets WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)",
        )
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        commit_if(tx, deleted, audit).await
    }

    async fn list_not_under_key(
        &self,
        key_id: u32,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM secrets WHERE key_id <> $1 AND ($2::uuid IS NULL OR id > $2) \
             ORDER BY id LIMIT $3"
        )))
        .bind(i64::from(key_id))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_secret).collect()
    }

    async fn reseal(
        &self,
        expected: &SecretRow,
        key_id: u32,
        value: &str,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "UPDATE secrets SET key_id = $1, value = $2 \
             WHERE id = $3 AND version = $4 AND key_id = $5 AND value = $6",
        )
        .bind(i64::from(key_id))
        .bind(value)
        .bind(expected.id)
        .bind(expected.version)
        .bind(i64::from(expected.key_id))
        .bind(&expected.value)
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(map_error)
    }

    async fn count_by_key(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT key_id, count(*) FROM secrets GROUP BY key_id ORDER BY key_id")
                .fetch_all(&self.pool)
                .await
                .map_err(map_error)?;
        rows.into_iter()
            .map(|(key_id, count)| {
                let key_id = u32::try_from(key_id)
                    .map_err(|_| StoreError::Backend("a stored key id is out of range".into()))?;
                Ok((key_id, u64::try_from(count).unwrap_or(0)))
            })
            .collect()
    }
}
