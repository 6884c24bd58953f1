//! What shared code needs to know about one sqlx backend: its driver, how it stores ids and
//! times, and how its errors map.

use crate::StoreError;
use sqlx::{
    ColumnIndex, Database, Decode, Executor, IntoArguments, Pool, QueryBuilder, Row, Transaction,
    Type,
};
use std::future::Future;
use time::OffsetDateTime;
use uuid::Uuid;

/// A row of the dialect's driver.
pub type DialectRow<D> = <<D as Dialect>::Db as Database>::Row;

/// A connection of the dialect's driver (what a transaction dereferences to).
pub type DialectConnection<D> = <<D as Dialect>::Db as Database>::Connection;

/// A column type the driver decodes. A bound on [`Dialect::Db`] (bounds there hold wherever
/// `D: Dialect` does), so shared row mapping needs no where clause per type.
pub trait Reads<T>: Database {
    fn read(row: &Self::Row, column: &str) -> Result<T, sqlx::Error>;
}

impl<DB, T> Reads<T> for DB
where
    DB: Database,
    T: for<'r> Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    fn read(row: &Self::Row, column: &str) -> Result<T, sqlx::Error> {
        row.try_get(column)
    }
}

/// A value type the driver binds; like [`Reads`], a bound on [`Dialect::Db`].
pub trait Writes<T>: Database {
    fn write(query: DialectQuery<'_, Self>, value: T) -> DialectQuery<'_, Self>;

    fn push(builder: &mut QueryBuilder<Self>, value: T);
}

impl<DB, T> Writes<T> for DB
where
    DB: Database,
    T: for<'q> sqlx::Encode<'q, DB> + Type<DB>,
{
    fn write(query: DialectQuery<'_, Self>, value: T) -> DialectQuery<'_, Self> {
        query.bind(value)
    }

    fn push(builder: &mut QueryBuilder<Self>, value: T) {
        builder.push_bind(value);
    }
}

/// A query of a driver, its arguments bound as it is built.
pub type DialectQuery<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments>;

/// `.bind_value(v)`: [`sqlx::query::Query::bind`] for code generic over the driver, whose
/// value types are known through [`Writes`] bounds only.
pub trait BindValue<DB: Database>: Sized {
    fn bind_value<T>(self, value: T) -> Self
    where
        DB: Writes<T>;
}

impl<DB: Database> BindValue<DB> for DialectQuery<'_, DB> {
    fn bind_value<T>(self, value: T) -> Self
    where
        DB: Writes<T>,
    {
        DB::write(self, value)
    }
}

/// `.push_value(v)`: [`QueryBuilder::push_bind`] for code generic over the driver.
pub trait PushValue<DB: Database> {
    fn push_value<T>(&mut self, value: T) -> &mut Self
    where
        DB: Writes<T>;
}

impl<DB: Database> PushValue<DB> for QueryBuilder<DB> {
    fn push_value<T>(&mut self, value: T) -> &mut Self
    where
        DB: Writes<T>,
    {
        DB::push(self, value);
        self
    }
}

/// One sqlx backend, as the shared repositories, transaction scaffolding and row mapping see
/// it.
pub trait Dialect: Send + Sync + 'static {
    /// The driver, with every plain type the shared code reads from rows and binds to queries.
    type Db: Database<Arguments: IntoArguments<Self::Db>>
        + Reads<String>
        + Reads<Option<String>>
        + Reads<bool>
        + Reads<i64>
        + Reads<Option<i64>>
        + Reads<Vec<u8>>
        + Reads<Option<Vec<u8>>>
        + for<'v> Writes<&'v str>
        + for<'v> Writes<&'v [u8]>
        + for<'v> Writes<&'v Option<String>>
        + Writes<Option<String>>
        + Writes<String>
        + Writes<Option<&'static str>>
        + Writes<Option<Vec<u8>>>
        + Writes<i64>
        + Writes<Option<i64>>
        + Writes<bool>
        + Writes<Self::Id>
        + Writes<Option<Self::Id>>
        + Writes<Self::Time>
        + Writes<Option<Self::Time>>;

    /// Every write to the database goes through this process's one writer connection (SQLite,
    /// which one process holds at a time): what this process last wrote is the database's state.
    const SINGLE_WRITER: bool;
    /// Audit actions compare byte by byte, so the actions that share a prefix sit next to each
    /// other in the action index (SQLite's BINARY collation; PostgreSQL's `action` column is
    /// `COLLATE "C"`, unlike its other text, which follows the database's locale).
    const CONTIGUOUS_ACTION_PREFIXES: bool;

    /// Runs queries on a connection (`&mut` the driver's connection).
    type On<'c>: Executor<'c, Database = Self::Db>;

    /// An id as bound to a query: text on SQLite, `uuid` on PostgreSQL.
    type Id: Send;

    /// A time as bound to a query: unix microseconds on SQLite, `timestamptz` on PostgreSQL.
    type Time: Send;

    fn on(connection: &mut DialectConnection<Self>) -> Self::On<'_>;

    /// Begins a write transaction on `pools.writer`, the way this dialect isolates writers.
    fn begin(
        pools: &Pools<Self::Db>,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;

    fn id(id: Uuid) -> Self::Id;

    /// How many rows a statement changed (each driver's result has its own method).
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;

    /// Times keep microseconds on both backends (see [`crate::truncate_to_micros`]).
    fn time(at: OffsetDateTime) -> Self::Time;

    /// A time bound as the caller has it, for comparisons with "now": the same as
    /// [`Dialect::time`] on SQLite; PostgreSQL receives it untruncated and encodes it itself.
    fn instant(at: OffsetDateTime) -> Self::Time;

    /// [`super::map_error`] with this dialect's "unavailable" codes.
    fn map_error(error: sqlx::Error) -> StoreError;

    fn uuid_at(row: &DialectRow<Self>, column: &str) -> Result<Uuid, StoreError>;

    fn optional_uuid_at(row: &DialectRow<Self>, column: &str) -> Result<Option<Uuid>, StoreError>;

    fn time_at(row: &DialectRow<Self>, column: &str) -> Result<OffsetDateTime, StoreError>;

    fn optional_time_at(
        row: &DialectRow<Self>,
        column: &str,
    ) -> Result<Option<OffsetDateTime>, StoreError>;

    /// An `integer` column (32 bits on PostgreSQL, 64 on SQLite), widened.
    fn small_int_at(row: &DialectRow<Self>, column: &str) -> Result<i64, StoreError>;

    /// A small counter (failed attempts): its column type and how an out-of-range value reads
    /// differ per backend.
    fn count_at(row: &DialectRow<Self>, column: &str) -> Result<u32, StoreError>;

    /// Keeps other writers off the end of the audit chain until the transaction ends, before
    /// [`super::append_audit`] reads it.
    fn hold_audit_chain(
        connection: &mut DialectConnection<Self>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// Where a repository writes and reads: SQLite's single writer and read-only readers, or
/// PostgreSQL's one pool in both roles.
pub struct Pools<DB: Database> {
    pub writer: Pool<DB>,
    pub reader: Pool<DB>,
}

// By hand: a derive would ask for `DB: Clone`, which drivers are not.
impl<DB: Database> Clone for Pools<DB> {
    fn clone(&self) -> Self {
        Self {
            writer: self.writer.clone(),
            reader: self.reader.clone(),
        }
    }
}

impl<DB: Database> Pools<DB> {
    /// One pool for writes and reads.
    pub fn shared(pool: Pool<DB>) -> Self {
        Self {
            writer: pool.clone(),
            reader: pool,
        }
    }
}

/// A plain column of `row`, with the dialect's error mapping.
pub fn get<D, T>(row: &DialectRow<D>, column: &str) -> Result<T, StoreError>
where
    D: Dialect,
    D::Db: Reads<T>,
{
    <D::Db as Reads<T>>::read(row, column).map_err(D::map_error)
}

/// Reads one keyset page, newest first: `query` holds its own leading arguments and ends with
/// the cursor and the limit, which this binds (the cursor of `page`; one row more than the
/// page, to know whether another follows); each row is read with `row`, and the next page
/// starts after the cursor `cursor` makes of the last one.
pub async fn keyset_page<D: Dialect, T>(
    pools: &Pools<D::Db>,
    query: DialectQuery<'_, D::Db>,
    page: &crate::PageRequest,
    row: fn(&DialectRow<D>) -> Result<T, StoreError>,
    cursor: fn(&T) -> crate::Cursor,
) -> Result<crate::Page<T>, StoreError> {
    let after = page.after();
    let mut reader = pools.reader.acquire().await.map_err(D::map_error)?;
    let found = query
        .bind_value(after.map(|c| D::time(c.at)))
        .bind_value(after.map(|c| D::id(c.id)))
        .bind_value(i64::from(page.limit()) + 1)
        .fetch_all(D::on(&mut reader))
        .await
        .map_err(D::map_error)?;
    let items = found.iter().map(row).collect::<Result<Vec<_>, _>>()?;
    Ok(crate::Page::from_overfetch(items, page.limit(), cursor))
}
