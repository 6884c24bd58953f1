//! Login sessions, on any sqlx dialect.

use super::*;

#[async_trait]
impl<D: IdentitySql> SessionRepo for SqlIdentity<D> {
    async fn create(
        &self,
        session: &SessionRow,
        max_per_user: u32,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::INSERT_SESSION)
            .bind_value(D::id(session.id))
            .bind_value(D::id(session.user_id))
            .bind_value(session.token_hash.as_str())
            .bind_value(D::time(session.created_at))
            .bind_value(D::time(session.last_seen_at))
            .bind_value(D::time(session.expires_at))
            .bind_value(D::time(session.authenticated_at))
            .bind_value(session.ip.as_str())
            .bind_value(session.user_agent.as_str())
            .bind_value(session.second_factor_at.map(D::time))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        sqlx::query(D::TRIM_SESSIONS)
            .bind_value(D::id(session.user_id))
            .bind_value(i64::from(max_per_user))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn find_by_token_hash(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::SESSION_BY_TOKEN_HASH)
            .bind_value(token_hash)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::session::<D>).transpose()
    }

    async fn touch(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::TOUCH_SESSION)
            .bind_value(D::time(at))
            .bind_value(D::id(id))
            .execute(D::on(&mut writer))
            .await
            .map(|_| ())
            .map_err(D::map_error)
    }

    async fn mark_authenticated(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::MARK_AUTHENTICATED)
            .bind_value(D::time(at))
            .bind_value(D::id(id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await
    }

    async fn mark_second_factor(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::MARK_SECOND_FACTOR)
            .bind_value(D::time(at))
            .bind_value(D::id(id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let changed = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, changed, audit).await
    }

    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::SESSIONS_OF_USER)
            .bind_value(D::id(user_id))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::session::<D>).collect()
    }

    async fn list_live_page(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        seen_after: OffsetDateTime,
        page: &PageRequest,
    ) -> Result<Page<SessionRow>, StoreError> {
        let query = sqlx::query(D::LIVE_SESSIONS_PAGE)
            .bind_value(D::id(user_id))
            .bind_value(D::time(now))
            .bind_value(D::time(seen_after));
        keyset_page::<D, _>(&self.pools, query, page, rows::session::<D>, |session| {
            Cursor {
                at: session.created_at,
                id: session.id,
            }
        })
        .await
    }

    async fn delete(
        &self,
        id: Uuid,
        user_id: Option<Uuid>,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::DELETE_SESSION)
            .bind_value(D::id(id))
            .bind_value(user_id.map(D::id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let deleted = D::rows_affected(&done) == 1;
        commit_if_audited::<D>(tx, deleted, audit).await
    }

    async fn delete_for_user(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<u64, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        let deleted = delete_sessions::<D>(&mut tx, user_id, except).await?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(deleted)
    }

    async fn prune_expired(
        &self,
        now: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::PRUNE_SESSIONS)
            .bind_value(D::time(now))
            .bind_value(D::time(idle_since))
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done))
            .map_err(D::map_error)
    }
}
