//! The SQLite implementation of the Hive store: the embedded default.
//!
//! One writer (a single-connection pool whose write transactions begin `IMMEDIATE`, so writers
//! queue instead of failing half-way), a pool of read-only readers, WAL, foreign keys, a busy
//! timeout and `synchronous=FULL` so that a killed process loses no acknowledged write. An
//! exclusive lock on `<database>.lock` keeps a second process off the same database, which is
//! also why this store is always the leader. The database, its `-wal` and `-shm` files and the
//! lock file are readable by their owner only (0600).

mod agents;
mod billing;
mod challenges;
mod conversations;
mod dialect;
mod hosted;
mod identity;
mod jobs;
mod mfa;
#[cfg(test)]
mod migration_tests;
mod oidc;
mod passkeys;
mod push_configs;
mod secrets;
mod settings;
mod tasks;
mod usage;
mod vault;
mod workflows;

use async_trait::async_trait;
use dialect::SqliteDialect;
use hive_store::sqlx_support::{self, Pools, SqlRepositories};
use hive_store::{Backend, LeaderLease, MigrationReport, SchemaState, Store, StoreError};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    repositories: SqlRepositories<SqliteDialect>,
    /// Held for the store's whole life; the OS releases it when the process ends.
    _lock: File,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens the database at `path` (created if missing) with one writer and up to
    /// `max_connections` readers. [`StoreError::Locked`] when another process has it open.
    pub async fn open(path: &Path, max_connections: u32) -> Result<Self, StoreError> {
        let lock = take_lock(path)?;
        make_private(path)?;
        let common = SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Statement journals (a multi-row write inside a transaction keeps one) and sorts
            // stay in memory instead of a temporary file created and unlinked per statement.
            .pragma("temp_store", "memory");
        // WAL is a property of the file: the writer sets it before any reader connects.
        // A connection to a local file cannot go stale as a network one can: no ping before
        // each use, which would be a round trip to the connection's worker thread per query.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(BUSY_TIMEOUT)
            .after_release(|connection, _| Box::pin(writer_still_sound(connection)))
            .connect_with(
                common
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full),
            )
            .await
            .map_err(map_error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .test_before_acquire(false)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(common.read_only(true))
            .await
            .map_err(map_error)?;
        let pools = Pools {
            writer: writer.clone(),
            reader: reader.clone(),
        };
        Ok(Self {
            repositories: SqlRepositories::new(&pools),
            writer,
            reader,
            _lock: lock,
        })
    }

    /// The writer pool, for tests and tools that inspect the database directly.
    pub fn writer_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// The reader pool (read-only connections).
    pub fn reader_pool(&self) -> &SqlitePool {
        &self.reader
    }
}

/// `<database>.lock`, next to the database.
fn lock_path(path: &Path) -> PathBuf {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    PathBuf::from(lock_path)
}

/// The files of the database, beside the lock: the database and SQLite's WAL and index.
fn database_files(path: &Path) -> [PathBuf; 3] {
    let beside = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_owned(), beside("-wal"), beside("-shm")]
}

/// Creates the database file 0600 before SQLite opens it: SQLite would create it 0644 (less
/// the umask), and gives its `-wal` and `-shm` files the database's mode. A file an older
/// version left readable by others is narrowed to its owner, and the log says so.
fn make_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let cannot = |file: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot open {}: {e}", file.display()))
    };
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| cannot(path, e))?;
    for file in database_files(path).iter().chain([&lock_path(path)]) {
        let metadata = match std::fs::symlink_metadata(file) {
            Ok(metadata) if metadata.file_type().is_file() => metadata,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(cannot(file, e)),
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let private = mode & 0o700;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(private))
                .map_err(|e| cannot(file, e))?;
            tracing::warn!(
                event = "store.file_mode_narrowed",
                file = %file.display(),
                was = %format_args!("{mode:04o}"),
                now = %format_args!("{private:04o}"),
                "a database file was readable by others; it is now its owner's only"
            );
        }
    }
    Ok(())
}

fn take_lock(path: &Path) -> Result<File, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let lock_path = lock_path(path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
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

/// Whether the writer connection may go back to the pool. A statement that fails on a full disk
/// (or an I/O error) makes SQLite roll the whole transaction back by itself; the driver's own
/// rollback then fails and it goes on believing a transaction is open, so every later `BEGIN`
/// on that connection would fail — every write, until a restart, even once the disk has room.
/// Such a connection is closed instead (the pool opens a fresh one for the next write). A
/// committed transaction returns with none open; only after a dropped one does the ping let the
/// driver finish the rollback it queued, before looking again.
async fn writer_still_sound(connection: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !connection.is_in_transaction() {
        return Ok(true);
    }
    connection.ping().await?;
    Ok(!connection.is_in_transaction())
}

/// SQLite result codes that mean the database cannot serve now (the primary code is the low
/// byte of the extended one).
fn is_unavailable_code(code: &str) -> Option<&'static str> {
    match code.parse::<i64>().ok()? & 0xff {
        5 | 6 => Some("the database is busy"),
        10 => Some("disk I/O error"),
        13 => Some("the disk is full"),
        14 => Some("cannot open the database file"),
        _ => None,
    }
}

pub(crate) fn map_error(error: sqlx::Error) -> StoreError {
    sqlx_support::map_error(error, is_unavailable_code)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx_support::ping::<SqliteDialect>(&self.reader).await
    }

    async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        // The writer: a reader may not see a table created moments ago by a migration.
        sqlx_support::read_schema_state::<SqliteDialect>(
            &self.writer,
            "SELECT EXISTS (SELECT 1 FROM sqlite_master \
             WHERE type = 'table' AND name = '_sqlx_migrations') AS present",
            &MIGRATOR,
        )
        .await
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let state = self.schema_state().await?;
        // The migrations run on a connection of their own (the writer's settings), closed
        // after them: a migration may turn a setting of its connection off (0021 turns foreign
        // keys off while it rebuilds a table) and, failing half-way, leave it off inside its
        // open transaction. Closing rolls back what is open, and the writer's connection never
        // had its settings changed. Connected only when a migration is pending.
        let migrating = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_lazy_with((*self.writer.connect_options()).clone());
        let report = sqlx_support::migrate(
            state,
            &MIGRATOR,
            MIGRATOR.run(&migrating),
            is_unavailable_code,
        )
        .await;
        migrating.close().await;
        report
    }

    hive_store::store_repositories!(repositories);

    async fn leader_lease(&self, _name: &str) -> Result<Box<dyn LeaderLease>, StoreError> {
        Ok(Box::new(SoleProcessLease))
    }

    async fn copy_database(&self, dest: &Path) -> Result<(), StoreError> {
        // VACUUM INTO reads one snapshot of the database (a read transaction: writers go on)
        // and writes it, compacted, to a new file; a reader connection is enough.
        let target = dest
            .to_str()
            .ok_or_else(|| StoreError::Invalid("the copy's path is not valid UTF-8".to_owned()))?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.reader)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Whether `path` holds a database (any of its files exists and is not empty).
pub fn database_exists(path: &Path) -> Result<bool, StoreError> {
    for file in database_files(path) {
        match std::fs::metadata(&file) {
            Ok(metadata) if metadata.len() > 0 => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot read {}: {e}",
                    file.display()
                )));
            }
        }
    }
    Ok(false)
}

/// Puts `copy` (a file [`Store::copy_database`] wrote) in place as the database at `path`,
/// holding the data directory's lock, so no server runs on it meanwhile. A database already
/// there is refused ([`StoreError::Conflict`]) unless `replace`, which deletes it (and its
/// WAL) first. Blocking: call it off the async executor.
pub fn restore_database(copy: &Path, path: &Path, replace: bool) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let _lock = take_lock(path)?;
    let io = |what: &str, file: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot {what} {}: {e}", file.display()))
    };
    let existing = database_exists(path)?;
    if existing && !replace {
        return Err(StoreError::Conflict(format!(
            "{} already holds a database",
            path.display()
        )));
    }
    // Written beside the target first and renamed into place: a failure leaves neither a half
    // database nor, when replacing, a deleted one.
    let mut partial = path.as_os_str().to_owned();
    partial.push(".restoring");
    let partial = std::path::PathBuf::from(partial);
    let mut source = File::open(copy).map_err(|e| io("open", copy, e))?;
    let mut target = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| io("create", &partial, e))?;
    std::io::copy(&mut source, &mut target).map_err(|e| io("write", &partial, e))?;
    target.sync_all().map_err(|e| io("write", &partial, e))?;
    if existing {
        // The old database's files go only now; its WAL must not meet the new file.
        for file in database_files(path) {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("delete", &file, e)),
            }
        }
    }
    std::fs::rename(&partial, path).map_err(|e| io("rename", &partial, e))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A restore that fails before its copy is in place leaves the database it would replace
    /// as it was; one that succeeds replaces it, its WAL included.
    #[test]
    fn a_failed_restore_keeps_the_database_it_would_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hive.db");
        let [_, wal, _] = database_files(&path);
        std::fs::write(&path, b"the old database").unwrap();
        std::fs::write(&wal, b"its wal").unwrap();
        let missing = dir.path().join("no-such-copy");
        assert!(matches!(
            restore_database(&missing, &path, true),
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"the old database");
        assert_eq!(std::fs::read(&wal).unwrap(), b"its wal");
        assert!(matches!(
            restore_database(&missing, &path, false),
            Err(StoreError::Conflict(_))
        ));

        let copy = dir.path().join("copy");
        std::fs::write(&copy, b"the restored database").unwrap();
        restore_database(&copy, &path, true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"the restored database");
        assert!(!wal.exists());
    }

    #[test]
    fn unavailable_codes() {
        for code in ["5", "517", "6", "10", "266", "13", "14"] {
            assert!(is_unavailable_code(code).is_some(), "{code}");
        }
        for code in ["1", "19", "275", "2067", "", "XX000"] {
            assert!(is_unavailable_code(code).is_none(), "{code}");
        }
    }

    /// A write that fills the database (here: its page limit, as a full disk does) is refused
    /// as unavailable, and the next write transaction begins and commits once there is room.
    #[tokio::test]
    async fn a_write_refused_on_a_full_database_leaves_the_writer_usable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("hive.db"), 2)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        sqlx::query("CREATE TABLE filler (bytes BLOB)")
            .execute(&store.writer)
            .await
            .unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        // The limit holds for the connection it is set on: the pool's one writer.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA max_page_count = {}",
            pages + 2
        )))
        .execute(&store.writer)
        .await
        .unwrap();

        let mut transaction = dialect::begin(&store.writer).await.unwrap();
        let full = sqlx::query("INSERT INTO filler VALUES (zeroblob(1000000))")
            .execute(&mut *transaction)
            .await
            .map_err(map_error);
        assert!(matches!(full, Err(StoreError::Unavailable(_))), "{full:?}");
        drop(transaction);

        let mut transaction = dialect::begin(&store.writer)
            .await
            .expect("a write transaction begins after the refused one");
        sqlx::raw_sql("PRAGMA max_page_count = 1073741823")
            .execute(&mut *transaction)
            .await
            .unwrap();
        sqlx::query("INSERT INTO filler VALUES (zeroblob(10))")
            .execute(&mut *transaction)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn every_file_of_the_database_is_its_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hive.db");
        let store = SqliteStore::open(&path, 2).await.unwrap();
        store.migrate().await.unwrap();
        let [db, wal, shm] = database_files(&path);
        for file in [&db, &wal, &shm, &lock_path(&path)] {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        drop(store);

        // Files an older version left 0644 are narrowed on the next open.
        for file in [&db, &lock_path(&path)] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let store = SqliteStore::open(&path, 2).await.unwrap();
        store.migrate().await.unwrap();
        for file in [&db, &wal, &shm, &lock_path(&path)] {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
    }

    /// A hash that depends on all it chains (enough to tell links apart; not a keyed HMAC).
    struct PlainHasher;

    impl hive_store::ChainHasher for PlainHasher {
        fn hash(&self, seq: i64, prev_hash: &str, record: &hive_store::AuditRecord) -> String {
            use std::hash::{Hash, Hasher};
            let mut digest = std::collections::hash_map::DefaultHasher::new();
            (seq, prev_hash, record.id, &record.detail).hash(&mut digest);
            format!("{:064x}", digest.finish())
        }
    }

    fn records(count: usize) -> Vec<hive_store::AuditRecord> {
        (0..count)
            .map(|n| hive_store::AuditRecord {
                id: uuid::Uuid::now_v7(),
                at: time::OffsetDateTime::UNIX_EPOCH,
                actor: "system".to_owned(),
                action: "test.append".to_owned(),
                target: None,
                outcome: hive_store::AuditOutcome::Success,
                ip: None,
                request_id: None,
                detail: format!("{{\"n\":{n}}}"),
                link: None,
            })
            .collect()
    }

    fn remembered(store: &SqliteStore) -> Option<(i64, String)> {
        store
            .repositories
            .identity
            .chain_end
            .lock()
            .unwrap()
            .clone()
    }

    /// The single writer remembers the chain's end it wrote and continues from it without
    /// reading it; an end that moved behind its back is caught by the chain triggers and the
    /// batch is written again after a fresh read.
    #[tokio::test]
    async fn a_single_writer_continues_the_end_it_remembers_and_recovers_a_stale_one() {
        use hive_store::AuditRepo;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("hive.db"), 2)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let audit = &store.repositories.identity;
        assert_eq!(remembered(&store), None, "unknown until a batch is written");
        let first = audit.append_batch(&records(3), &PlainHasher).await.unwrap();
        assert_eq!(remembered(&store), Some((3, first[2].hash.clone())));

        // A stale end (as after a change audited in its own transaction): refused by the
        // triggers, then written after the real end.
        *store.repositories.identity.chain_end.lock().unwrap() = Some((1, first[0].hash.clone()));
        let second = audit.append_batch(&records(2), &PlainHasher).await.unwrap();
        assert_eq!(
            (second[0].seq, second[0].prev_hash.as_str()),
            (4, first[2].hash.as_str())
        );
        assert_eq!(remembered(&store), Some((5, second[1].hash.clone())));

        // Without the triggers, a remembered end is taken as it is, unread: the batch follows a
        // made-up hash, which only the fast path would do.
        sqlx::raw_sql("DROP TRIGGER audit_events_continue_the_chain")
            .execute(store.writer_pool())
            .await
            .unwrap();
        let made_up = "f".repeat(64);
        *store.repositories.identity.chain_end.lock().unwrap() = Some((5, made_up.clone()));
        let third = audit.append_batch(&records(1), &PlainHasher).await.unwrap();
        assert_eq!(
            (third[0].seq, third[0].prev_hash.as_str()),
            (6, made_up.as_str())
        );
    }

    #[test]
    fn the_lock_file_sits_next_to_the_database() {
        assert_eq!(
            lock_path(Path::new("/data/hive.db")),
            Path::new("/data/hive.db.lock")
        );
    }
}
