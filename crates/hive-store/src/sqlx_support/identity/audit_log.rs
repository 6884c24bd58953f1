//! The audit trail: appends, filtered reads, retention, on any sqlx dialect.

use super::*;

/// Appends `filter`'s conditions to a query that already has a `WHERE`.
fn push_audit_filter<D: IdentitySql>(query: &mut QueryBuilder<D::Db>, filter: &AuditFilter) {
    let push_text = |query: &mut QueryBuilder<D::Db>, column: &str, rule: &TextMatch| match rule {
        TextMatch::Exact(value) => {
            query
                .push(format!(" AND {column} = "))
                .push_value(value.clone());
        }
        TextMatch::Prefix(prefix) => D::push_prefix_match(query, column, prefix),
    };
    if let Some(actor) = &filter.actor {
        query.push(" AND actor = ").push_value(actor.clone());
    }
    if let Some(action) = &filter.action {
        push_text(query, "action", action);
    }
    if let Some(target) = &filter.target {
        push_text(query, "target", target);
    }
    if let Some(outcome) = filter.outcome {
        query.push(" AND outcome = ").push_value(outcome.as_str());
    }
    if let Some(since) = filter.since {
        query.push(" AND at >= ").push_value(D::time(since));
    }
    if let Some(until) = filter.until {
        query.push(" AND at < ").push_value(D::time(until));
    }
}

impl<D: IdentitySql> SqlIdentity<D> {
    /// A single writer's batch in one statement, committed on its own: the links continue the
    /// end this process last wrote, and the database's chain triggers refuse the statement if
    /// anything else moved the end since (a change's own audited transaction). No transaction
    /// to begin and commit, no read of the end: one round trip to the writer instead of four.
    /// `None` when the end is not known, the batch is too large for one statement, or the
    /// statement failed; the caller then appends the usual way, which reads the end again.
    async fn append_after_known_end(
        &self,
        records: &[AuditRecord],
        hasher: &dyn ChainHasher,
    ) -> Option<Vec<ChainLink>> {
        if !D::SINGLE_WRITER || records.is_empty() || records.len() > ROWS_PER_INSERT {
            return None;
        }
        let end = self.known_chain_end()?;
        let links = links_after(Some(end), records, hasher);
        let written = async {
            let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
            insert_audit_records::<D>(&mut writer, records, &links).await
        }
        .await;
        self.remember_chain_end(written.is_ok().then(|| links.last()).flatten());
        written.ok().map(|()| links)
    }

    fn known_chain_end(&self) -> Option<(i64, String)> {
        self.chain_end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Keeps the end `last` made, or forgets the end (`None`: a failed batch).
    fn remember_chain_end(&self, last: Option<&ChainLink>) {
        if !D::SINGLE_WRITER {
            return;
        }
        *self
            .chain_end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            last.map(|link| (link.seq, link.hash.clone()));
    }
}

#[async_trait]
impl<D: IdentitySql> AuditRepo for SqlIdentity<D> {
    async fn append_batch(
        &self,
        records: &[AuditRecord],
        hasher: &dyn ChainHasher,
    ) -> Result<Vec<ChainLink>, StoreError> {
        if let Some(links) = self.append_after_known_end(records, hasher).await {
            return Ok(links);
        }
        let written = async {
            let mut tx = D::begin(&self.pools).await?;
            let links = append_audit_records::<D>(&mut tx, records, hasher).await?;
            // A failed commit is the batch's failure too: none of its records was written.
            tx.commit().await.map_err(audit_unwritable::<D>)?;
            Ok(links)
        }
        .await;
        self.remember_chain_end(written.as_ref().ok().and_then(|links| links.last()));
        written
    }

    async fn list(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::<D::Db>::new(D::AUDIT_EVENTS);
        push_audit_filter::<D>(&mut query, filter);
        if let Some(after) = page.after() {
            query
                .push(" AND (at, id) < (")
                .push_value(D::time(after.at))
                .push(", ")
                .push_value(D::id(after.id))
                .push(")");
        }
        query
            .push(" ORDER BY at DESC, id DESC LIMIT ")
            .push_value(i64::from(page.limit()) + 1);
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = query
            .build()
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        let items = found
            .iter()
            .map(rows::audit_record::<D>)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |record| Cursor {
            at: record.at,
            id: record.id,
        }))
    }

    async fn oldest_first(
        &self,
        filter: &AuditFilter,
        after: &AuditPosition,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::<D::Db>::new(D::AUDIT_EVENTS);
        push_audit_filter::<D>(&mut query, filter);
        match after {
            AuditPosition::Unchained(cursor) => {
                query.push(" AND seq IS NULL");
                if let Some(cursor) = cursor {
                    query
                        .push(" AND (at, id) > (")
                        .push_value(D::time(cursor.at))
                        .push(", ")
                        .push_value(D::id(cursor.id))
                        .push(")");
                }
                query.push(" ORDER BY at, id");
            }
            AuditPosition::Chained(seq) => {
                query
                    .push(" AND seq > ")
                    .push_value(*seq)
                    .push(" ORDER BY seq");
            }
        }
        query.push(" LIMIT ").push_value(i64::from(limit));
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = query
            .build()
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::audit_record::<D>).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(
            "SELECT seq, hash, at, created_at, signature FROM audit_checkpoints \
             ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(D::on(&mut reader))
        .await
        .map_err(D::map_error)?;
        row.as_ref().map(rows::audit_checkpoint::<D>).transpose()
    }

    async fn prune_before(
        &self,
        cut: OffsetDateTime,
        limit: u32,
        signer: &dyn CheckpointSigner,
        now: OffsetDateTime,
    ) -> Result<AuditPrune, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        // Appends are held off, so the chain's end cannot move while it is cut.
        D::hold_audit_chain(&mut tx).await.map_err(D::map_error)?;
        let found = sqlx::query(D::OLDEST_CHAINED)
            .bind_value(i64::from(limit) + 1)
            .fetch_all(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let oldest = found
            .iter()
            .map(|row| {
                Ok((
                    get::<D, i64>(row, "seq")?,
                    get::<D, String>(row, "hash")?,
                    D::time_at(row, "at")?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let prefix = prunable_prefix(oldest, cut, limit);
        let mut pruned = AuditPrune::default();
        if let Some((seq, hash, at)) = prefix.last().cloned() {
            let mut checkpoint = AuditCheckpoint {
                seq,
                hash,
                at,
                created_at: crate::truncate_to_micros(now),
                signature: String::new(),
            };
            checkpoint.signature = signer.sign_checkpoint(&checkpoint);
            sqlx::query(D::INSERT_CHECKPOINT)
                .bind_value(checkpoint.seq)
                .bind_value(checkpoint.hash.as_str())
                .bind_value(D::time(checkpoint.at))
                .bind_value(D::time(checkpoint.created_at))
                .bind_value(checkpoint.signature.as_str())
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            let done = sqlx::query(D::DELETE_CHAINED_UP_TO)
                .bind_value(seq)
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            pruned.deleted += D::rows_affected(&done);
            pruned.checkpoint = Some(checkpoint);
        }
        let room = u64::from(limit).saturating_sub(pruned.deleted);
        if room > 0 {
            let done = sqlx::query(D::DELETE_UNCHAINED_BEFORE)
                .bind_value(D::time(cut))
                .bind_value(i64::try_from(room).unwrap_or(i64::MAX))
                .execute(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            pruned.deleted += D::rows_affected(&done);
        }
        tx.commit().await.map_err(D::map_error)?;
        Ok(pruned)
    }

    async fn chain_after(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::CHAIN_AFTER)
            .bind_value(after_seq)
            .bind_value(i64::from(limit))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::audit_record::<D>).collect()
    }

    async fn count_unchained(&self) -> Result<u64, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query("SELECT count(*) AS unchained FROM audit_events WHERE seq IS NULL")
            .fetch_one(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        let count: i64 = get::<D, _>(&row, "unchained")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
