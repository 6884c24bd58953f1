//! How SQLite stores what the shared scaffolding reads and writes: ids as hyphenated text,
//! times as unix microseconds; write transactions begin `IMMEDIATE` on the single writer.

use crate::map_error;
use hive_store::StoreError;
use hive_store::sqlx_support::{Dialect, Pools, get};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteQueryResult, SqliteRow};
use sqlx::{SqliteConnection, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct SqliteDialect;

pub(crate) fn text(id: Uuid) -> String {
    id.hyphenated().to_string()
}

/// Times are stored as unix microseconds, truncated towards the past (also before 1970).
pub(crate) fn to_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000)).unwrap_or(i64::MAX)
}

pub(crate) fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| StoreError::Backend("a stored time is out of range".into()))
}

fn parse_uuid(raw: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(raw).map_err(|_| StoreError::Backend("a stored id is not a uuid".into()))
}

pub(crate) async fn begin(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
    // IMMEDIATE takes the write lock up front, so checks and writes see one state.
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_error)
}

impl Dialect for SqliteDialect {
    // `SqliteStore::open` takes the database's lock file: one process, one writer connection.
    const SINGLE_WRITER: bool = true;
    const CONTIGUOUS_ACTION_PREFIXES: bool = true;
    type Db = Sqlite;
    type On<'c> = &'c mut SqliteConnection;
    type Id = String;
    type Time = i64;

    fn on(connection: &mut SqliteConnection) -> &mut SqliteConnection {
        connection
    }

    async fn begin(pools: &Pools<Sqlite>) -> Result<Transaction<'static, Sqlite>, StoreError> {
        begin(&pools.writer).await
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn id(id: Uuid) -> String {
        text(id)
    }

    fn time(at: OffsetDateTime) -> i64 {
        to_micros(at)
    }

    fn instant(at: OffsetDateTime) -> i64 {
        to_micros(at)
    }

    fn map_error(error: sqlx::Error) -> StoreError {
        map_error(error)
    }

    fn uuid_at(row: &SqliteRow, column: &str) -> Result<Uuid, StoreError> {
        parse_uuid(&get::<Self, String>(row, column)?)
    }

    fn optional_uuid_at(row: &SqliteRow, column: &str) -> Result<Option<Uuid>, StoreError> {
        let raw: Option<String> = get::<Self, _>(row, column)?;
        raw.as_deref().map(parse_uuid).transpose()
    }

    fn time_at(row: &SqliteRow, column: &str) -> Result<OffsetDateTime, StoreError> {
        from_micros(get::<Self, _>(row, column)?)
    }

    fn optional_time_at(
        row: &SqliteRow,
        column: &str,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let raw: Option<i64> = get::<Self, _>(row, column)?;
        raw.map(from_micros).transpose()
    }

    fn small_int_at(row: &SqliteRow, column: &str) -> Result<i64, StoreError> {
        get::<Self, _>(row, column)
    }

    fn count_at(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
        let raw: i64 = get::<Self, _>(row, column)?;
        Ok(u32::try_from(raw).unwrap_or(u32::MAX))
    }

    /// Nothing to take: every write transaction began `IMMEDIATE` on the single writer, so
    /// "read the last link, write the next" is atomic already.
    async fn hold_audit_chain(_: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn micros_truncate_towards_the_past() {
        let before_epoch = datetime!(1969-12-31 23:59:59.999999999 UTC);
        assert_eq!(to_micros(before_epoch), -1);
        let after = datetime!(2026-03-01 12:00:00.123456789 UTC);
        assert_eq!(
            from_micros(to_micros(after)).ok(),
            Some(datetime!(2026-03-01 12:00:00.123456 UTC))
        );
    }
}
