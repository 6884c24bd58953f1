//! The store conformance suite on PostgreSQL (`HIVE_TEST_DATABASE_URL`; required under CI), each check
//! on its own scratch database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use hive_store::{SchemaState, Store, StoreError};
use hive_store_conformance::Harness;
use hive_store_postgres::PostgresStore;
use hive_store_postgres::test_support::{ScratchDatabase, scratch_database};
use std::sync::Arc;

struct PgHarness {
    store: Arc<PostgresStore>,
    // Dropped last: the database goes once every handle is gone.
    database: ScratchDatabase,
}

/// Under CI a missing `HIVE_TEST_DATABASE_URL` fails the suite instead of skipping it.
fn admin_url() -> Option<String> {
    hive_store::test_env::service_url("HIVE_TEST_DATABASE_URL")
}

#[async_trait]
impl Harness for PgHarness {
    async fn fresh() -> Option<Self> {
        let admin = admin_url()?;
        let database = scratch_database(&admin).await;
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

    async fn record_unknown_migration(&self, version: i64) {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, 'from a newer Hive', true, '\\x00', 0)",
        )
        .bind(version)
        .execute(self.store.pool())
        .await
        .unwrap();
    }
}

hive_store_conformance::conformance_suite!(PgHarness);

#[tokio::test]
async fn concurrent_migrations_apply_once() {
    let Some(admin) = admin_url() else {
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
    // Nothing listens on port 1: refused at once.
    let refused = PostgresStore::connect("postgres://hive:S3cretPassw0rd@127.0.0.1:1/hive", 1)
        .await
        .unwrap_err();
    let malformed = PostgresStore::connect("postgres://hive:S3cretPassw0rd@[::1/hive", 1)
        .await
        .unwrap_err();
    for error in [refused, malformed] {
        let text = format!("{error} {error:?}");
        assert!(!text.contains("S3cretPassw0rd"), "{text}");
        assert!(!text.contains("127.0.0.1:1"), "{text}");
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    }
}

#[tokio::test]
async fn a_new_database_is_behind_until_migrated() {
    let Some(admin) = admin_url() else {
        return;
    };
    let database = scratch_database(&admin).await;
    let store = PostgresStore::connect(database.url(), 2).await.unwrap();
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
    store.close().await;
}

#[tokio::test]
async fn a_leader_whose_session_dies_learns_it_and_competes_again() {
    let Some(harness) = PgHarness::fresh().await else {
        return;
    };
    let mut lease = harness.store.leader_lease("jobs").await.unwrap();
    assert!(lease.try_acquire().await.unwrap());

    // An operator (or a failover) ends the leader's session.
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks \
         WHERE locktype = 'advisory' AND database = \
               (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(harness.store.pool())
    .await
    .unwrap();
    assert_eq!(ended, vec![true]);

    let in_doubt = lease.try_acquire().await;
    assert!(
        matches!(in_doubt, Err(StoreError::Unavailable(_))),
        "a lost session is not reported as leadership: {in_doubt:?}"
    );
    assert!(
        lease.try_acquire().await.unwrap(),
        "the next call reconnects and, unopposed, leads again"
    );
    lease.release().await.unwrap();
}
