//! The SQLite implementation of the Hive store: the embedded default.
//!
//! One writer (a single-connection pool whose write transactions begin `IMMEDIATE`, so writers
//! queue instead of failing half-way), a pool of readers, WAL, foreign keys, a busy timeout and
//! `synchronous=FULL` so that a killed process loses no acknowledged write. An exclusive lock on
//! `<database>.lock` keeps a second process off the same database.

mod jobs;

use async_trait::async_trait;
use hive_store::{
    Backend, JobRunRepo, LeaderLease, MigrationReport, SchemaState, Store, StoreError,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    jobs: jobs::SqliteJobRuns,
    /// Held for the store's whole life; the OS releases it when the process ends.
    _lock: File,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with up to `max_readers` readers.
    pub async fn open(path: &Path, max_readers: u32) -> Result<Self, StoreError> {
        let lock = take_lock(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(map_error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(max_readers.max(1))
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.read_only(true))
            .await
            .map_err(map_error)?;
        Ok(Self {
            jobs: jobs::SqliteJobRuns {
                writer: writer.clone(),
                reader: reader.clone(),
            },
            writer,
            reader,
            _lock: lock,
        })
    }

    /// The writer pool, for tests that inspect the database directly.
    pub fn writer_pool(&self) -> &SqlitePool {
        &self.writer
    }
}

fn take_lock(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = Path::new(&lock_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", lock_path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked(format!(
            "the data directory is in use by another Hive process (lock file {})",
            lock_path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

/// Maps a driver error without SQL text or values.
pub(crate) fn map_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolClosed => StoreError::Unavailable("the database pool is closed".into()),
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        sqlx::Error::Io(e) => StoreError::Unavailable(format!("database I/O error: {e}")),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("a row with this key exists".into())
        }
        sqlx::Error::Database(db) => {
            StoreError::Backend(format!("sqlite error {}", db.code().unwrap_or_default()))
        }
        sqlx::Error::Migrate(e) => StoreError::Migration(e.to_string()),
        other => StoreError::Backend(format!("sqlite: {}", error_kind(&other))),
    }
}

fn error_kind(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Configuration(_) => "invalid configuration",
        sqlx::Error::RowNotFound => "row not found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "cannot decode a value",
        sqlx::Error::Protocol(_) => "protocol error",
        _ => "unexpected error",
    }
}

fn known_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
            .map_err(map_error)
    }

    async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.writer)
        .await
        .map_err(map_error)?;
        let applied: Vec<i64> = if exists == 0 {
            Vec::new()
        } else {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&self.writer)
                .await
                .map_err(map_error)?
        };
        Ok(hive_store::schema_state(&applied, &known_versions()))
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let before = match self.schema_state().await? {
            SchemaState::Newer { current, unknown } => {
                return Err(StoreError::SchemaNewer { current, unknown });
            }
            SchemaState::UpToDate { .. } => return up_to_date_report(),
            SchemaState::Behind { pending, .. } => pending,
        };
        MIGRATOR
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(MigrationReport {
            applied: before,
            version: known_versions().into_iter().max().unwrap_or(0),
        })
    }

    fn job_runs(&self) -> &dyn JobRunRepo {
        &self.jobs
    }

    async fn leader_lease(&self, _name: &str) -> Result<Box<dyn LeaderLease>, StoreError> {
        Ok(Box::new(SoleProcessLease))
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn up_to_date_report() -> Result<MigrationReport, StoreError> {
    Ok(MigrationReport {
        applied: Vec::new(),
        version: known_versions().into_iter().max().unwrap_or(0),
    })
}

/// The lock file makes this process the only one on the database, hence always the leader.
#[derive(Debug)]
struct SoleProcessLease;

#[async_trait]
impl LeaderLease for SoleProcessLease {
    async fn try_acquire(&mut self) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn release(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
