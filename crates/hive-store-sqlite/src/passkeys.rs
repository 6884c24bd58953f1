use crate::identity::{append_audit, begin, commit_if, delete_sessions, text, uuid_at};
use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    AuditAppend, PasskeyAdded, PasskeyRepo, PasskeyRow, PasskeyUse, StoreError,
    sign_count_from_stored,
};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use uuid::Uuid;

pub(crate) struct SqlitePasskeys {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

const PASSKEY_COLUMNS: &str = "id, user_id, credential_id, passkey, sign_count, backup_eligible, \
     backup_state, name, created_at, last_used_at";

fn to_passkey(row: &SqliteRow) -> Result<PasskeyRow, StoreError> {
    let last_used_at: Option<i64> = row.try_get("last_used_at").map_err(map_error)?;
    Ok(PasskeyRow {
        id: uuid_at(row, "id")?,
        user_id: uuid_at(row, "user_id")?,
        credential_id: row.try_get("credential_id").map_err(map_error)?,
        passkey: row.try_get("passkey").map_err(map_error)?,
        sign_count: sign_count_from_stored(row.try_get("sign_count").map_err(map_error)?)?,
        backup_eligible: row.try_get("backup_eligible").map_err(map_error)?,
        backup_state: row.try_get("backup_state").map_err(map_error)?,
        name: row.try_get("name").map_err(map_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
        last_used_at: last_used_at.map(from_micros).transpose()?,
    })
}

#[async_trait]
impl PasskeyRepo for SqlitePasskeys {
    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<PasskeyRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = ? ORDER BY created_at, id"
        )))
        .bind(text(user_id))
        .fetch_all(&self.reader)
        .await
        .map_err(map_error)?;
        rows.iter().map(to_passkey).collect()
    }

    async fn find_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        // The writer: a counter just moved must be seen at once by the next assertion.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = ?"
        )))
        .bind(credential_id)
        .fetch_optional(&self.writer)
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
        // IMMEDIATE on the single writer: the count and the insert see one state.
        let mut tx = begin(&self.writer).await?;
        let count: Option<i64> = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM passkeys WHERE user_id = ?1) FROM users WHERE id = ?1",
        )
        .bind(text(row.user_id))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let count = count.ok_or(StoreError::NotFound)?;
        if count >= i64::from(max_per_user) {
            return Ok(PasskeyAdded::LimitReached);
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO passkeys ({PASSKEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)"
        )))
        .bind(text(row.id))
        .bind(text(row.user_id))
        .bind(&row.credential_id)
        .bind(&row.passkey)
        .bind(i64::from(row.sign_count))
        .bind(row.backup_eligible)
        .bind(row.backup_state)
        .bind(&row.name)
        .bind(to_micros(row.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        let sessions_ended = delete_sessions(&mut tx, row.user_id, keep_session).await?;
        sqlx::query("UPDATE sessions SET second_factor_at = ?1 WHERE id = ?2 AND user_id = ?3")
            .bind(to_micros(row.created_at))
            .bind(keep_session.map(text))
            .bind(text(row.user_id))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(PasskeyAdded::Added { sessions_ended })
    }

    async fn record_use(&self, used: &PasskeyUse<'_>) -> Result<bool, StoreError> {
        let count = i64::from(used.sign_count);
        // Check and set in one statement on the single writer: no two uses of one counter pass.
        let changed = sqlx::query(
            "UPDATE passkeys SET passkey = ?2, sign_count = ?3, backup_eligible = ?4, \
             backup_state = ?5, last_used_at = ?6 \
             WHERE id = ?1 AND (sign_count < ?3 OR (?3 = 0 AND sign_count = 0))",
        )
        .bind(text(used.id))
        .bind(used.passkey)
        .bind(count)
        .bind(used.backup_eligible)
        .bind(used.backup_state)
        .bind(to_micros(used.at))
        .execute(&self.writer)
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
        let mut tx = begin(&self.writer).await?;
        let changed = sqlx::query("UPDATE passkeys SET name = ?3 WHERE id = ?1 AND user_id = ?2")
            .bind(text(id))
            .bind(text(user_id))
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
        let mut tx = begin(&self.writer).await?;
        let changed = sqlx::query("DELETE FROM passkeys WHERE id = ?1 AND user_id = ?2")
            .bind(text(id))
            .bind(text(user_id))
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
        let mut tx = begin(&self.writer).await?;
        let removed = sqlx::query("DELETE FROM passkeys WHERE user_id = ?")
            .bind(text(user_id))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected();
        commit_if(tx, removed > 0, audit).await?;
        Ok(removed)
    }
}
