use crate::identity::{append_audit, commit_if, delete_sessions};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    AuditAppend, PasskeyAdded, PasskeyRepo, PasskeyRow, PasskeyUse, StoreError,
    sign_count_from_stored, truncate_to_micros as micros,
};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

pub(crate) struct PgPasskeys {
    pub pool: PgPool,
}

const PASSKEY_COLUMNS: &str = "id, user_id, credential_id, passkey, sign_count, backup_eligible, \
     backup_state, name, created_at, last_used_at";

fn to_passkey(row: &PgRow) -> Result<PasskeyRow, StoreError> {
    Ok(PasskeyRow {
        id: row.try_get("id").map_err(map_error)?,
        user_id: row.try_get("user_id").map_err(map_error)?,
        credential_id: row.try_get("credential_id").map_err(map_error)?,
        passkey: row.try_get("passkey").map_err(map_error)?,
        sign_count: sign_count_from_stored(row.try_get("sign_count").map_err(map_error)?)?,
        backup_eligible: row.try_get("backup_eligible").map_err(map_error)?,
        backup_state: row.try_get("backup_state").map_err(map_error)?,
        name: row.try_get("name").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        last_used_at: row.try_get("last_used_at").map_err(map_error)?,
    })
}

#[async_trait]
impl PasskeyRepo for PgPasskeys {
    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<PasskeyRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
        )))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_passkey).collect()
    }

    async fn find_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1"
        )))
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_passkey).transpose()
    }

    async fn add(
        &self,
        row: &PasskeyRow,
        max_per_user: u32,
        keep_session: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<PasskeyAdded, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // The user's row lock serialises concurrent adds; the count is its own statement, so
        // under READ COMMITTED it sees what the add before it committed.
        let user: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(row.user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?;
        user.ok_or(StoreError::NotFound)?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM passkeys WHERE user_id = $1")
            .bind(row.user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_error)?;
        if count >= i64::from(max_per_user) {
            return Ok(PasskeyAdded::LimitReached);
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO passkeys ({PASSKEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)"
        )))
        .bind(row.id)
        .bind(row.user_id)
        .bind(&row.credential_id)
        .bind(&row.passkey)
        .bind(i64::from(row.sign_count))
        .bind(row.backup_eligible)
        .bind(row.backup_state)
        .bind(&row.name)
        .bind(micros(row.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        let sessions_ended = delete_sessions(&mut tx, row.user_id, keep_session).await?;
        sqlx::query("UPDATE sessions SET second_factor_at = $1 WHERE id = $2 AND user_id = $3")
            .bind(micros(row.created_at))
            .bind(keep_session)
            .bind(row.user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(PasskeyAdded::Added { sessions_ended })
    }

    async fn record_use(&self, used: &PasskeyUse<'_>) -> Result<bool, StoreError> {
        let count = i64::from(used.sign_count);
        // One statement: concurrent uses queue on the row lock and re-check the counter once the
        // one before them committed (READ COMMITTED), so of one counter value one passes.
        let changed = sqlx::query(
            "UPDATE passkeys SET passkey = $2, sign_count = $3, backup_eligible = $4, \
             backup_state = $5, last_used_at = $6 \
             WHERE id = $1 AND (sign_count < $3 OR ($3 = 0 AND sign_count = 0))",
        )
        .bind(used.id)
        .bind(used.passkey)
        .bind(count)
        .bind(used.backup_eligible)
        .bind(used.backup_state)
        .bind(micros(used.at))
        .execute(&self.pool)
        .await
        .map_err(map_error)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn rename(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: &str,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let changed = sqlx::query("UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected()
            == 1;
        commit_if(tx, changed, audit).await
    }

    async fn remove(
        &self,
        user_id: Uuid,
        id: Uuid,
        keep_session: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let changed = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected()
            == 1;
        if changed {
            delete_sessions(&mut tx, user_id, keep_session).await?;
        }
        commit_if(tx, changed, audit).await
    }

    async fn remove_all(&self, user_id: Uuid, audit: AuditAppend<'_>) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let removed = sqlx::query("DELETE FROM passkeys WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected();
        commit_if(tx, removed > 0, audit).await?;
        Ok(removed)
    }
}
