//! The store conformance suite on PostgreSQL (when `HIVE_TEST_DATABASE_URL` is set), each check
//! on its own scratch database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use hive_store::conformance::Harness;
use hive_store::{SchemaState, Store, StoreError};
use hive_store_postgres::PostgresStore;
use hive_store_postgres::test_support::{ScratchDatabase, scratch_database};
use std::sync::Arc;

struct PgHarness {
    store: Arc<PostgresStore>,
    // Dropped last: the database goes once every handle is gone.
    database: ScratchDatabase,
}

fn admin_url() -> Option<String> {
    std::env::var("HIVE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

#[async_trait]
impl Harness for PgHarness {
    async fn fresh() -> Option<Self> {
        let database = scratch_database(&admin_url()?).await;
        let store = PostgresStore::connect(database.url(), 4).await.unwrap();
        store.migrate().await.unwrap();
        Some(Self {
            store: Arc::new(store),
            database,
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn open_again(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(
            PostgresStore::connect(self.database.url(), 4).await?,
        ))
    }
}

hive_store::conformance_suite!(PgHarness);

#[tokio::test]
async fn a_schema_from_a_newer_binary_is_refused() {
    let Some(harness) = PgHarness::fresh().await else {
        eprintln!("skipped: HIVE_TEST_DATABASE_URL is not set");
        return;
    };
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', true, '\\x00', 0)",
    )
    .execute(harness.store.pool())
    .await
    .unwrap();
    let state = harness.store.schema_state().await.unwrap();
    assert!(
        matches!(
            state,
            SchemaState::Newer {
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
async fn concurrent_migrations_apply_once() {
    let Some(admin) = admin_url() else {
        eprintln!("skipped: HIVE_TEST_DATABASE_URL is not set");
        return;
    };
    let database = scratch_database(&admin).await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(PostgresStore::connect(database.url(), 2).await.unwrap());
    }
    let results = futures_util::future::join_all(stores.iter().map(|s| s.migrate())).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    assert!(matches!(
        stores[0].schema_state().await.unwrap(),
        SchemaState::UpToDate { .. }
    ));
    for store in &stores {
        store.close().await;
    }
}

#[tokio::test]
async fn connection_errors_never_echo_the_url() {
    let error = PostgresStore::connect("postgres://hive:S3cretPassw0rd@127.0.0.1:1/hive", 1)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(!text.contains("S3cretPassw0rd"), "{text}");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}
