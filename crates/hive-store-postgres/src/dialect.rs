//! How PostgreSQL stores what the shared scaffolding reads and writes: native `uuid` and
//! `timestamptz` (microseconds); appends to the audit chain serialised by an advisory lock.

use crate::map_error;
use hive_store::sqlx_support::{Dialect, Pools, get};
use hive_store::{StoreError, truncate_to_micros};
use sqlx::postgres::{PgQueryResult, PgRow, Postgres};
use sqlx::{PgConnection, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct PgDialect;

/// Serialises appends to the audit chain across replicas.
const AUDIT_CHAIN_LOCK: i64 = 0x6869_7665_6175_6474;

impl Dialect for PgDialect {
    // Replicas write to one database.
    const SINGLE_WRITER: bool = false;
    // Migration 0021 gives audit actions the byte order.
    const CONTIGUOUS_ACTION_PREFIXES: bool = true;
    type Db = Postgres;
    type On<'c> = &'c mut PgConnection;
    type Id = Uuid;
    type Time = OffsetDateTime;

    fn on(connection: &mut PgConnection) -> &mut PgConnection {
        connection
    }

    async fn begin(pools: &Pools<Postgres>) -> Result<Transaction<'static, Postgres>, StoreError> {
        pools.writer.begin().await.map_err(map_error)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn id(id: Uuid) -> Uuid {
        id
    }

    fn time(at: OffsetDateTime) -> OffsetDateTime {
        truncate_to_micros(at)
    }

    fn instant(at: OffsetDateTime) -> OffsetDateTime {
        at
    }

    fn map_error(error: sqlx::Error) -> StoreError {
        map_error(error)
    }

    fn uuid_at(row: &PgRow, column: &str) -> Result<Uuid, StoreError> {
        get::<Self, _>(row, column)
    }

    fn optional_uuid_at(row: &PgRow, column: &str) -> Result<Option<Uuid>, StoreError> {
        get::<Self, _>(row, column)
    }

    fn time_at(row: &PgRow, column: &str) -> Result<OffsetDateTime, StoreError> {
        get::<Self, _>(row, column)
    }

    fn optional_time_at(row: &PgRow, column: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        get::<Self, _>(row, column)
    }

    fn small_int_at(row: &PgRow, column: &str) -> Result<i64, StoreError> {
        let raw: i32 = get::<Self, _>(row, column)?;
        Ok(i64::from(raw))
    }

    /// Counters are `integer` columns here.
    fn count_at(row: &PgRow, column: &str) -> Result<u32, StoreError> {
        let raw: i32 = get::<Self, _>(row, column)?;
        Ok(u32::try_from(raw).unwrap_or(0))
    }

    /// The append comes last in its transaction: the lock is held from here to the commit, and
    /// a transaction holding it waits for nothing else, so audited changes cannot deadlock on it.
    async fn hold_audit_chain(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_CHAIN_LOCK)
            .execute(connection)
            .await
            .map(|_| ())
    }
}
