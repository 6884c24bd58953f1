//! The audit chain's append and the commits that carry an audit record, shared by the sqlx
//! backends: a change and its record commit together or not at all.

use super::dialect::{Dialect, DialectConnection, PushValue, Reads};
use crate::{AuditAppend, AuditRecord, ChainHasher, ChainLink, StoreError, next_link};
use sqlx::{QueryBuilder, Transaction};

/// The columns of `audit_events`, in the order the audit insert binds them.
#[macro_export]
macro_rules! audit_columns {
    () => {
        "id, at, actor, action, target, outcome, ip, request_id, detail, seq, prev_hash, hash"
    };
}

/// Records in one `INSERT` (12 parameters each: far below every driver's limit).
pub const ROWS_PER_INSERT: usize = 256;

/// [`audit_columns!`] as a constant.
pub const AUDIT_COLUMNS: &str = audit_columns!();

/// Any failure while writing the record: the caller's transaction rolls back with it.
pub fn audit_unwritable<D: Dialect>(error: sqlx::Error) -> StoreError {
    StoreError::AuditUnwritable(D::map_error(error).to_string())
}

/// Appends an audit record inside the caller's transaction: reads the chain's last link and
/// writes the next, with the chain held still by the dialect in between.
pub async fn append_audit<D: Dialect>(
    connection: &mut DialectConnection<D>,
    audit: &AuditAppend<'_>,
) -> Result<ChainLink, StoreError> {
    let mut links =
        append_audit_records::<D>(connection, std::slice::from_ref(audit.record), audit.hasher)
            .await?;
    links
        .pop()
        .ok_or_else(|| StoreError::AuditUnwritable("no link for the record".to_owned()))
}

/// Appends `records` in order inside the caller's transaction: the chain is held once and its
/// last link read once, whatever the number of records (a group commit's batch).
pub async fn append_audit_records<D: Dialect>(
    connection: &mut DialectConnection<D>,
    records: &[AuditRecord],
    hasher: &dyn ChainHasher,
) -> Result<Vec<ChainLink>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    D::hold_audit_chain(connection)
        .await
        .map_err(audit_unwritable::<D>)?;
    let end = match sqlx::query(
        "SELECT seq, hash FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(D::on(connection))
    .await
    .map_err(audit_unwritable::<D>)?
    {
        Some(row) => Some((
            <D::Db as Reads<i64>>::read(&row, "seq").map_err(audit_unwritable::<D>)?,
            <D::Db as Reads<String>>::read(&row, "hash").map_err(audit_unwritable::<D>)?,
        )),
        None => None,
    };
    let links = links_after(end, records, hasher);
    insert_audit_records::<D>(connection, records, &links).await?;
    Ok(links)
}

/// The links `records` get when appended in order after `end` (the chain's last seq and hash).
pub fn links_after(
    mut end: Option<(i64, String)>,
    records: &[AuditRecord],
    hasher: &dyn ChainHasher,
) -> Vec<ChainLink> {
    records
        .iter()
        .map(|record| {
            let link = next_link(end.take(), record, hasher);
            end = Some((link.seq, link.hash.clone()));
            link
        })
        .collect()
}

/// Inserts `records` with their `links`. Multi-row inserts: each statement is a round trip to
/// the connection (on SQLite, to its worker thread), so a batch of up to [`ROWS_PER_INSERT`]
/// records is one statement.
pub async fn insert_audit_records<D: Dialect>(
    connection: &mut DialectConnection<D>,
    records: &[AuditRecord],
    links: &[ChainLink],
) -> Result<(), StoreError> {
    for (records, links) in records
        .chunks(ROWS_PER_INSERT)
        .zip(links.chunks(ROWS_PER_INSERT))
    {
        let mut insert = QueryBuilder::<D::Db>::new(format!(
            "INSERT INTO audit_events ({AUDIT_COLUMNS}) VALUES "
        ));
        for (n, (record, link)) in records.iter().zip(links).enumerate() {
            insert.push(if n == 0 { "(" } else { ", (" });
            insert
                .push_value(D::id(record.id))
                .push(", ")
                .push_value(D::time(record.at))
                .push(", ")
                .push_value(record.actor.as_str())
                .push(", ")
                .push_value(record.action.as_str())
                .push(", ")
                .push_value(&record.target)
                .push(", ")
                .push_value(record.outcome.as_str())
                .push(", ")
                .push_value(&record.ip)
                .push(", ")
                .push_value(&record.request_id)
                .push(", ")
                .push_value(record.detail.as_str())
                .push(", ")
                .push_value(link.seq)
                .push(", ")
                .push_value(link.prev_hash.as_str())
                .push(", ")
                .push_value(link.hash.as_str())
                .push(")");
        }
        insert
            .build()
            .execute(D::on(connection))
            .await
            .map_err(audit_unwritable::<D>)?;
    }
    Ok(())
}

/// Appends `audit` and commits the transaction.
pub async fn commit_audited<D: Dialect>(
    mut tx: Transaction<'static, D::Db>,
    audit: &AuditAppend<'_>,
) -> Result<(), StoreError> {
    append_audit::<D>(&mut tx, audit).await?;
    tx.commit().await.map_err(D::map_error)
}

/// Commits a change with its audit record when it happened (`changed`); otherwise rolls back.
pub async fn commit_if<D: Dialect>(
    tx: Transaction<'static, D::Db>,
    changed: bool,
    audit: AuditAppend<'_>,
) -> Result<bool, StoreError> {
    commit_if_audited::<D>(tx, changed, Some(audit)).await
}

/// [`commit_if`] for a change whose audit record is optional: without one, the change commits
/// alone (its caller records it some other way).
pub async fn commit_if_audited<D: Dialect>(
    mut tx: Transaction<'static, D::Db>,
    changed: bool,
    audit: Option<AuditAppend<'_>>,
) -> Result<bool, StoreError> {
    if !changed {
        return Ok(false);
    }
    if let Some(audit) = audit {
        append_audit::<D>(&mut tx, &audit).await?;
    }
    tx.commit().await.map_err(D::map_error)?;
    Ok(true)
}
