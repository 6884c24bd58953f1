//! A2A tasks (the `db` task store), on any sqlx dialect: the dialect supplies its SQL.

use super::dialect::{BindValue, Dialect, DialectConnection, Pools, PushValue, keyset_page};
use super::rows;
use crate::{Cursor, Page, PageRequest, StoreError, TaskRepo, TaskRow};
use async_trait::async_trait;
use sqlx::QueryBuilder;
use std::collections::HashSet;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns of `a2a_tasks`.
#[macro_export]
macro_rules! task_columns {
    () => {
        "id, owner, agent_id, context_id, status_time, document, expires_at"
    };
}

/// The statements of [`SqlTasks`] in one dialect; the parameters of each are listed in the
/// order they are bound. A discarded task is a tombstone: a row whose `document` is empty (a
/// task's document is JSON, never empty), which no read or listing returns and no upsert
/// replaces until it expires.
pub trait TaskSql: Dialect {
    /// The columns of [`task_columns!`], now; replaces only the same owner's task (not a
    /// tombstone) or an expired one.
    const UPSERT: &'static str;
    /// id, owner, now (as the status time), until, now; replaces the same owner's row or an
    /// expired one with a tombstone.
    const DISCARD: &'static str;
    /// id, owner, now.
    const GET: &'static str;
    /// owner, now, cursor time, cursor id, limit.
    const LIST: &'static str;
    /// now.
    const PRUNE_EXPIRED: &'static str;
}

/// Inserts or replaces `task`; the update applies only to the same owner's task, or over an
/// expired one.
async fn upsert<D: TaskSql>(
    connection: &mut DialectConnection<D>,
    task: &TaskRow,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(D::UPSERT)
        .bind_value(D::id(task.id))
        .bind_value(task.owner.as_str())
        .bind_value(task.agent_id.as_str())
        .bind_value(task.context_id.as_str())
        .bind_value(D::time(task.status_time))
        .bind_value(task.document.as_str())
        .bind_value(D::time(task.expires_at))
        .bind_value(D::instant(now))
        .execute(D::on(connection))
        .await
        .map_err(D::map_error)?;
    Ok(D::rows_affected(&done) == 1)
}

/// Tasks in one statement of [`upsert_many`] (7 parameters each, far below every driver's limit).
const ROWS_PER_UPSERT: usize = 256;

/// [`upsert`] for tasks of distinct ids in one statement; the ids whose write applied.
async fn upsert_many<D: TaskSql>(
    connection: &mut DialectConnection<D>,
    tasks: &[TaskRow],
    now: OffsetDateTime,
) -> Result<HashSet<Uuid>, StoreError> {
    let mut upsert = QueryBuilder::<D::Db>::new(concat!(
        "INSERT INTO a2a_tasks (",
        task_columns!(),
        ") VALUES "
    ));
    for (n, task) in tasks.iter().enumerate() {
        upsert
            .push(if n == 0 { "(" } else { ", (" })
            .push_value(D::id(task.id))
            .push(", ")
            .push_value(task.owner.as_str())
            .push(", ")
            .push_value(task.agent_id.as_str())
            .push(", ")
            .push_value(task.context_id.as_str())
            .push(", ")
            .push_value(D::time(task.status_time))
            .push(", ")
            .push_value(task.document.as_str())
            .push(", ")
            .push_value(D::time(task.expires_at))
            .push(")");
    }
    // The same rule as the single upsert of each dialect: the same owner's live task, or an
    // expired row, is replaced; nothing else.
    upsert
        .push(
            " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, \
             agent_id = excluded.agent_id, context_id = excluded.context_id, \
             status_time = excluded.status_time, document = excluded.document, \
             expires_at = excluded.expires_at \
             WHERE (a2a_tasks.owner = excluded.owner AND a2a_tasks.document <> '') \
             OR a2a_tasks.expires_at <= ",
        )
        .push_value(D::instant(now))
        .push(" RETURNING id");
    let applied = upsert
        .build()
        .fetch_all(D::on(connection))
        .await
        .map_err(D::map_error)?;
    applied.iter().map(|row| D::uuid_at(row, "id")).collect()
}

pub struct SqlTasks<D: Dialect> {
    pub pools: Pools<D::Db>,
}

#[async_trait]
impl<D: TaskSql> TaskRepo for SqlTasks<D> {
    async fn put(&self, task: &TaskRow, now: OffsetDateTime) -> Result<bool, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        upsert::<D>(&mut writer, task, now).await
    }

    async fn put_batch(
        &self,
        tasks: &[TaskRow],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        // A statement per run of distinct ids (an id twice in one statement is refused by
        // PostgreSQL and would blur whose write applied): usually one for the whole batch.
        let mut runs = Vec::new();
        let mut start = 0;
        while start < tasks.len() {
            let mut seen = HashSet::new();
            let run = tasks[start..]
                .iter()
                .take(ROWS_PER_UPSERT)
                .take_while(|task| seen.insert(task.id))
                .count();
            runs.push(&tasks[start..start + run]);
            start += run;
        }
        let mut done = Vec::with_capacity(tasks.len());
        let mut record = |run: &[TaskRow], applied: HashSet<Uuid>| {
            done.extend(run.iter().map(|task| applied.contains(&task.id)));
        };
        if let [run] = runs[..] {
            // One statement is all or nothing on its own: no transaction to begin and commit
            // (two round trips fewer to the writer).
            let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
            record(run, upsert_many::<D>(&mut writer, run, now).await?);
        } else {
            let mut tx = D::begin(&self.pools).await?;
            for run in runs {
                record(run, upsert_many::<D>(&mut tx, run, now).await?);
            }
            tx.commit().await.map_err(D::map_error)?;
        }
        Ok(done)
    }

    async fn discard(
        &self,
        owner: &str,
        id: Uuid,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::DISCARD)
            .bind_value(D::id(id))
            .bind_value(owner)
            .bind_value(D::time(now))
            .bind_value(D::time(until))
            .bind_value(D::instant(now))
            .execute(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        Ok(())
    }

    async fn get(
        &self,
        owner: &str,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<TaskRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::GET)
            .bind_value(D::id(id))
            .bind_value(owner)
            .bind_value(D::instant(now))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::task::<D>).transpose()
    }

    async fn list(
        &self,
        owner: &str,
        page: &PageRequest,
        now: OffsetDateTime,
    ) -> Result<Page<TaskRow>, StoreError> {
        let query = sqlx::query(D::LIST)
            .bind_value(owner)
            .bind_value(D::instant(now));
        keyset_page::<D, _>(&self.pools, query, page, rows::task::<D>, |task| Cursor {
            at: task.status_time,
            id: task.id,
        })
        .await
    }

    async fn prune_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::PRUNE_EXPIRED)
            .bind_value(D::instant(now))
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done))
            .map_err(D::map_error)
    }
}
