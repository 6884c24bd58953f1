//! The store conformance suite on SQLite, plus what only SQLite has.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use hive_store::{SchemaState, Store, StoreError};
use hive_store_conformance::Harness;
use hive_store_sqlite::SqliteStore;
use std::sync::Arc;
use tempfile::TempDir;

struct SqliteHarness {
    dir: TempDir,
    store: Arc<SqliteStore>,
}

impl SqliteHarness {
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("hive.db")
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn fresh() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("hive.db"), 4)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        Some(Self {
            dir,
            store: Arc::new(store),
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn open_again(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(SqliteStore::open(&self.path(), 4).await?))
    }

    async fn record_unknown_migration(&self, version: i64) {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?, 'from a newer Hive', 1, x'00', 0)",
        )
        .bind(version)
        .execute(self.store.writer_pool())
        .await
        .unwrap();
    }
}

hive_store_conformance::conformance_suite!(SqliteHarness);

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused() {
    let harness = SqliteHarness::fresh().await.unwrap();
    let second = harness.open_again().await;
    match second {
        Err(StoreError::Locked(message)) => {
            assert!(
                message.contains("in use by another Hive process"),
                "{message}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // Once the first store is gone, the file can be opened again.
    let path = harness.path();
    harness.store.close().await;
    drop(harness.store);
    let reopened = SqliteStore::open(&path, 1).await.unwrap();
    reopened.ping().await.unwrap();
    drop(harness.dir);
}

async fn text_pragma(pool: &sqlx::SqlitePool, name: &'static str) -> String {
    sqlx::query_scalar(name).fetch_one(pool).await.unwrap()
}

async fn int_pragma(pool: &sqlx::SqlitePool, name: &'static str) -> i64 {
    sqlx::query_scalar(name).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn pragmas_are_set() {
    let harness = SqliteHarness::fresh().await.unwrap();
    for pool in [harness.store.writer_pool(), harness.store.reader_pool()] {
        assert_eq!(text_pragma(pool, "PRAGMA journal_mode").await, "wal");
        assert_eq!(int_pragma(pool, "PRAGMA foreign_keys").await, 1);
        assert_eq!(int_pragma(pool, "PRAGMA busy_timeout").await, 5000);
    }
    let writer = harness.store.writer_pool();
    assert_eq!(int_pragma(writer, "PRAGMA synchronous").await, 2, "FULL");
    // Readers cannot write, so every write goes through the one writer.
    let write = sqlx::query("DELETE FROM job_runs")
        .execute(harness.store.reader_pool())
        .await;
    assert!(write.is_err());
}

#[tokio::test]
async fn a_new_database_is_behind_until_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let store = SqliteStore::open(&path, 2).await.unwrap();
    assert!(path.exists(), "the file is created");
    let state = store.schema_state().await.unwrap();
    let SchemaState::Behind {
        current: None,
        pending,
    } = state
    else {
        panic!("{state:?}");
    };
    let report = store.migrate().await.unwrap();
    assert_eq!(report.applied, pending);
    assert_eq!(
        store.schema_state().await.unwrap(),
        SchemaState::UpToDate {
            version: report.version
        }
    );
}

#[tokio::test]
async fn writes_survive_a_reopen() {
    let harness = SqliteHarness::fresh().await.unwrap();
    let id = harness
        .store
        .job_runs()
        .start(hive_store::NewJobRun {
            job: "j".into(),
            node_id: "n".into(),
            started_at: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    let path = harness.path();
    harness.store.close().await;
    drop(harness.store);
    let reopened = SqliteStore::open(&path, 1).await.unwrap();
    let page = reopened
        .job_runs()
        .list(None, &hive_store::PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items[0].id, id);
    drop(harness.dir);
}
