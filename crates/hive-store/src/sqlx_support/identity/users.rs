//! Users and the first admin, on any sqlx dialect.

use super::*;

#[async_trait]
impl<D: IdentitySql> UserRepo for SqlIdentity<D> {
    async fn setup_completed(&self) -> Result<bool, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(SETUP_DONE)
            .fetch_one(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        get::<D, _>(&row, "done")
    }

    async fn create_first_admin(
        &self,
        user: &NewUser,
        audit: AuditAppend<'_>,
    ) -> Result<UserRow, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let row = sqlx::query(SETUP_DONE)
            .fetch_one(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if get::<D, bool>(&row, "done")? {
            return Err(StoreError::Conflict("setup is already complete".into()));
        }
        let admin = D::insert_user(&mut tx, user).await?;
        // On PostgreSQL concurrent callers all get here; the primary key lets exactly one
        // insert.
        sqlx::query(D::COMPLETE_SETUP)
            .bind_value(D::time(user.created_at))
            .bind_value(D::id(admin.id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(admin)
    }

    async fn create(&self, user: &NewUser, audit: AuditAppend<'_>) -> Result<UserRow, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let created = D::insert_user(&mut tx, user).await?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(created)
    }

    async fn get(&self, id: Uuid) -> Result<Option<UserRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        fetch_user::<D>(&mut reader, id).await
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::USER_BY_EMAIL)
            .bind_value(email)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::user::<D>).transpose()
    }

    async fn list(&self, page: &PageRequest) -> Result<Page<UserRow>, StoreError> {
        let query = sqlx::query(D::LIST_USERS);
        keyset_page::<D, _>(&self.pools, query, page, rows::user::<D>, |user| Cursor {
            at: user.created_at,
            id: user.id,
        })
        .await
    }

    async fn update_profile(
        &self,
        id: Uuid,
        change: &ProfileChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let Some(user) = D::update_profile(&mut tx, id, change, now).await? else {
            return Ok(None);
        };
        commit_audited::<D>(tx, &audit).await?;
        Ok(Some(user))
    }

    async fn update_account(
        &self,
        id: Uuid,
        change: &AccountChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<GuardedChange, StoreError> {
        D::guarded_change(&self.pools, id, change, now, audit).await
    }

    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep_session: Option<Uuid>,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let changed = store_password::<D>(&mut tx, id, password_hash, keep_session, now).await?;
        commit_if::<D>(tx, changed, audit).await
    }

    async fn record_login_failure(
        &self,
        id: Uuid,
        day: i64,
        now: OffsetDateTime,
    ) -> Result<LoginThrottle, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::RECORD_LOGIN_FAILURE)
            .bind_value(D::time(now))
            .bind_value(day)
            .bind_value(D::id(id))
            .fetch_optional(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        row.as_ref()
            .map(rows::login_throttle::<D>)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn record_login_success(
        &self,
        id: Uuid,
        rehash: Option<&str>,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::RECORD_LOGIN_SUCCESS)
            .bind_value(rehash.map(str::to_owned))
            .bind_value(D::id(id))
            .execute(D::on(&mut writer))
            .await
            .map(|_| ())
            .map_err(D::map_error)
    }
}
