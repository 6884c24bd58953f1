//! API tokens and one-time tokens (invitations, resets), on any sqlx dialect.

use super::*;

#[async_trait]
impl<D: IdentitySql> ApiTokenRepo for SqlIdentity<D> {
    async fn create(&self, token: &ApiTokenRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::INSERT_API_TOKEN)
            .bind_value(D::id(token.id))
            .bind_value(D::id(token.user_id))
            .bind_value(token.name.as_str())
            .bind_value(token.token_hash.as_str())
            .bind_value(token.role.as_str())
            .bind_value(scopes_to_text(&token.scopes))
            .bind_value(D::time(token.created_at))
            .bind_value(D::time(token.expires_at))
            .bind_value(token.last_used_at.map(D::time))
            .bind_value(token.revoked_at.map(D::time))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn find_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiTokenRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::API_TOKEN_BY_HASH)
            .bind_value(token_hash)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::api_token::<D>).transpose()
    }

    async fn get(&self, id: Uuid) -> Result<Option<ApiTokenRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::API_TOKEN_BY_ID)
            .bind_value(D::id(id))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::api_token::<D>).transpose()
    }

    async fn list_for_user(
        &self,
        user_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<ApiTokenRow>, StoreError> {
        let query = sqlx::query(D::API_TOKENS_OF_USER).bind_value(D::id(user_id));
        keyset_page::<D, _>(&self.pools, query, page, rows::api_token::<D>, |token| {
            Cursor {
                at: token.created_at,
                id: token.id,
            }
        })
        .await
    }

    async fn revoke(
        &self,
        id: Uuid,
        user_id: Option<Uuid>,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::REVOKE_API_TOKEN)
            .bind_value(D::time(now))
            .bind_value(D::id(id))
            .bind_value(user_id.map(D::id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let revoked = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, revoked, audit).await
    }

    async fn touch(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::TOUCH_API_TOKEN)
            .bind_value(D::time(at))
            .bind_value(D::id(id))
            .execute(D::on(&mut writer))
            .await
            .map(|_| ())
            .map_err(D::map_error)
    }
}

#[async_trait]
impl<D: IdentitySql> OneTimeTokenRepo for SqlIdentity<D> {
    async fn create(
        &self,
        token: &OneTimeTokenRow,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::INSERT_ONE_TIME_TOKEN)
            .bind_value(D::id(token.id))
            .bind_value(token.purpose.as_str())
            .bind_value(token.token_hash.as_str())
            .bind_value(token.user_id.map(D::id))
            .bind_value(&token.email)
            .bind_value(token.role.map(Role::as_str))
            .bind_value(token.created_by.map(D::id))
            .bind_value(D::time(token.created_at))
            .bind_value(D::time(token.expires_at))
            .bind_value(token.used_at.map(D::time))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn find_live(
        &self,
        purpose: OneTimePurpose,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<OneTimeTokenRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::FIND_LIVE_ONE_TIME_TOKEN)
            .bind_value(purpose.as_str())
            .bind_value(token_hash)
            .bind_value(D::time(now))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::one_time_token::<D>).transpose()
    }

    async fn accept_invitation(
        &self,
        token_hash: &str,
        user_id: Uuid,
        display_name: &str,
        password_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let Some(invitation) =
            use_token::<D>(&mut tx, OneTimePurpose::Invitation, token_hash, now).await?
        else {
            return Ok(None);
        };
        let (Some(email), Some(role)) = (invitation.email, invitation.role) else {
            return Err(StoreError::Backend(
                "an invitation lacks its email or role".into(),
            ));
        };
        let user = NewUser {
            id: user_id,
            email,
            display_name: display_name.to_owned(),
            role,
            password_hash: Some(password_hash.to_owned()),
            created_at: now,
        };
        // A taken email fails here and rolls the use of the invitation back.
        let created = D::insert_user(&mut tx, &user).await?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(Some(created))
    }

    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let Some(reset) =
            use_token::<D>(&mut tx, OneTimePurpose::PasswordReset, token_hash, now).await?
        else {
            return Ok(None);
        };
        let Some(user_id) = reset.user_id else {
            return Err(StoreError::Backend("a reset token lacks its user".into()));
        };
        if !store_password::<D>(&mut tx, user_id, password_hash, None, now).await? {
            return Ok(None);
        }
        commit_audited::<D>(tx, &audit).await?;
        Ok(Some(user_id))
    }

    async fn prune_expired(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::PRUNE_ONE_TIME_TOKENS)
            .bind_value(D::time(before))
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done))
            .map_err(D::map_error)
    }
}
