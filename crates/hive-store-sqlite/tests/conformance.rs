//! The store conformance suite on SQLite, plus what only SQLite has.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use hive_store::conformance::Harness;
use hive_store::{Store, StoreError};
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
}

hive_store::conformance_suite!(SqliteHarness);

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

#[tokio::test]
async fn pragmas_are_set() {
    let harness = SqliteHarness::fresh().await.unwrap();
    let pool = harness.store.writer_pool();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(journal.to_lowercase(), "wal");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(busy, 5000);
}

#[tokio::test]
async fn a_schema_from_a_newer_binary_is_refused() {
    let harness = SqliteHarness::fresh().await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', 1, x'00', 0)",
    )
    .execute(harness.store.writer_pool())
    .await
    .unwrap();
    let state = harness.store.schema_state().await.unwrap();
    assert!(
        matches!(
            state,
            hive_store::SchemaState::Newer {
                current: 99990101000000,
                ..
            }
        ),
        "{state:?}"
    );
    assert!(matches!(
        harness.store.migrate().await,
        Err(StoreError::SchemaNewer { .. })
    ));
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
