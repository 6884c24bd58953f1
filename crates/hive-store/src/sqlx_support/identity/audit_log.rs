//! The audit trail: appends, filtered reads, retention, on any sqlx dialect.

use super::super::dialect::Reads;
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
        TextMatch::AnyOf(values) if values.is_empty() => {
            query.push(" AND 1 = 0");
        }
        TextMatch::AnyOf(values) => {
            query.push(format!(" AND {column} IN ("));
            for (n, value) in values.iter().enumerate() {
                if n > 0 {
                    query.push(", ");
                }
                query.push_value(value.clone());
            }
            query.push(")");
        }
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
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let mut query = match &filter.action {
            Some(TextMatch::Prefix(prefix)) if D::CONTIGUOUS_ACTION_PREFIXES => {
                match actions_under::<D>(&mut reader, prefix).await? {
                    Some(actions) if actions.is_empty() => {
                        return Ok(Page::from_overfetch(Vec::new(), page.limit(), |r| Cursor {
                            at: r.at,
                            id: r.id,
                        }));
                    }
                    Some(actions) => newest_of_each::<D>(filter, page, &actions),
                    None => newest_matching::<D>(filter, page),
                }
            }
            _ => newest_matching::<D>(filter, page),
        };
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

/// The newest records matching `filter` after the page's cursor, one more than the page holds.
fn newest_matching<D: IdentitySql>(
    filter: &AuditFilter,
    page: &PageRequest,
) -> QueryBuilder<D::Db> {
    let mut query = QueryBuilder::<D::Db>::new(D::AUDIT_EVENTS);
    push_audit_filter::<D>(&mut query, filter);
    push_newest_page::<D>(&mut query, page);
    query
}

/// The page's cursor, newest first, and one more record than the page holds.
fn push_newest_page<D: IdentitySql>(query: &mut QueryBuilder<D::Db>, page: &PageRequest) {
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
}

/// Distinct actions a prefix may expand to before the plain query is used instead.
const MERGED_ACTIONS_MAX: usize = 64;

/// The distinct actions that start with `prefix`, read by skipping through the action index
/// (one lookup each); `None` when there are more than [`MERGED_ACTIONS_MAX`]. Only where values
/// with a common prefix are contiguous in the index ([`Dialect::CONTIGUOUS_ACTION_PREFIXES`]).
async fn actions_under<D: IdentitySql>(
    reader: &mut DialectConnection<D>,
    prefix: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let mut actions: Vec<String> = Vec::new();
    loop {
        let mut next = QueryBuilder::<D::Db>::new("SELECT action FROM audit_events WHERE action ");
        match actions.last() {
            Some(last) => next.push("> ").push_value(last.clone()),
            None => next.push(">= ").push_value(prefix.to_owned()),
        };
        next.push(" ORDER BY action LIMIT 1");
        let found = next
            .build()
            .fetch_optional(D::on(reader))
            .await
            .map_err(D::map_error)?;
        let Some(row) = found else {
            return Ok(Some(actions));
        };
        let action: String =
            <D::Db as Reads<String>>::read(&row, "action").map_err(D::map_error)?;
        if !action.starts_with(prefix) {
            return Ok(Some(actions));
        }
        if actions.len() == MERGED_ACTIONS_MAX {
            return Ok(None);
        }
        actions.push(action);
    }
}

/// [`newest_matching`] with the action prefix replaced by each of `actions`: each part reads
/// its action's newest records in index order, and the union keeps the newest of all. The cost
/// follows the number of actions, not of records (a prefix that few records match would
/// otherwise walk the whole log newest first).
fn newest_of_each<D: IdentitySql>(
    filter: &AuditFilter,
    page: &PageRequest,
    actions: &[String],
) -> QueryBuilder<D::Db> {
    let mut query = QueryBuilder::<D::Db>::new("SELECT * FROM (");
    for (n, action) in actions.iter().enumerate() {
        if n > 0 {
            query.push(" UNION ALL ");
        }
        let exact = AuditFilter {
            action: Some(TextMatch::Exact(action.clone())),
            ..filter.clone()
        };
        query.push("SELECT * FROM (").push(D::AUDIT_EVENTS);
        push_audit_filter::<D>(&mut query, &exact);
        push_newest_page::<D>(&mut query, page);
        // PostgreSQL before 16 wants every subquery in a FROM named.
        query.push(format!(") AS part_{n}"));
    }
    query
        .push(") AS newest ORDER BY at DESC, id DESC LIMIT ")
        .push_value(i64::from(page.limit()) + 1);
    query
}
