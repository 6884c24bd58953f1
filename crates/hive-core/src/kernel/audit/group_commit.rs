//! Group commit of records of their own (A2A calls, refusals, logins, federation calls): one
//! writer per auditor takes every record waiting, chains them in order and commits them in one
//! transaction — one fsync, one hold of the chain, whatever the number of records
//! ([`hive_state::GroupCommit`]). Each caller is answered only once its batch is durable, and
//! hears [`Unrecorded`] when the batch could not be written (none of its records exists then)
//! or the writer is too far behind, exactly as if it had written alone and failed.

use super::auditor::Unrecorded;
use super::chain::AuditChain;
use hive_state::group_commit::{BatchWriter, GroupCommit, Limits};
use hive_store::{AuditRecord, StoreError};
use hive_store::{ChainLink, Store};
use std::sync::Arc;

/// Appends a batch at the end of the chain.
pub(super) struct ChainWriter {
    store: Arc<dyn Store>,
    chain: Arc<AuditChain>,
}

impl BatchWriter for ChainWriter {
    type Item = AuditRecord;
    type Written = ChainLink;

    async fn write(&self, records: &[AuditRecord]) -> Result<Vec<ChainLink>, StoreError> {
        self.store
            .audit()
            .append_batch(records, self.chain.as_ref())
            .await
    }
}

/// The queue in front of the audit writer.
pub(super) struct AuditQueue(GroupCommit<ChainWriter>);

impl std::fmt::Debug for AuditQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl AuditQueue {
    pub(super) fn new(store: Arc<dyn Store>, chain: Arc<AuditChain>) -> Self {
        Self(GroupCommit::new(
            "audit",
            ChainWriter { store, chain },
            Limits::default(),
        ))
    }

    /// Appends `record` with whatever else is waiting; returns once it is durable.
    pub(super) async fn append(&self, record: AuditRecord) -> Result<(), Unrecorded> {
        let action = record.action.clone();
        self.0.submit(record).await.map(|_| ()).map_err(|why| {
            tracing::error!(%action, %why, "audit record not written");
            Unrecorded
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal, verify};
    use crate::kernel::caller::RequestMeta;
    use hive_crypto::vault::{MasterKey, Purpose};
    use hive_store::{AuditFilter, AuditOutcome, PageRequest};
    use hive_store_postgres::PostgresStore;
    use hive_store_postgres::test_support::scratch_database;
    use hive_store_sqlite::SqliteStore;

    /// Records whose target is this are refused by a trigger the tests install, so the insert
    /// fails inside the batch's transaction as a full disk or a lost connection would.
    const POISON: &str = "poison";

    /// What keeps a test's database alive (its directory, its scratch database).
    type Backend = Box<dyn std::any::Any + Send>;

    async fn sqlite() -> (Arc<dyn Store>, Backend) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db"), 2).await.unwrap();
        store.migrate().await.unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_events \
             WHEN NEW.target = 'poison' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .execute(store.writer_pool())
        .await
        .unwrap();
        (Arc::new(store), Box::new(dir))
    }

    async fn postgres() -> Option<(Arc<dyn Store>, Backend)> {
        let admin = hive_store::test_env::service_url("HIVE_TEST_DATABASE_URL")?;
        let scratch = scratch_database(&admin).await;
        let store = PostgresStore::connect(scratch.url(), 8).await.unwrap();
        store.migrate().await.unwrap();
        for statement in [
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.target = 'poison' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ] {
            sqlx::query(statement).execute(store.pool()).await.unwrap();
        }
        Some((Arc::new(store), Box::new(scratch)))
    }

    /// A real store of each backend; PostgreSQL only where the test server is configured
    /// (required under CI).
    async fn backends() -> Vec<(Arc<dyn Store>, Backend)> {
        let mut all = vec![sqlite().await];
        all.extend(postgres().await);
        all
    }

    fn auditor(store: &Arc<dyn Store>) -> Auditor {
        let chain = AuditChain::new(MasterKey::from_bytes(&[7; 32]).derive(Purpose::AuditChain));
        let clock: hive_proto::SharedClock = Arc::new(hive_proto::SystemClock);
        Auditor::new(Arc::clone(store), Arc::new(chain), clock)
    }

    fn call(n: usize, target: &str) -> AuditEvent {
        AuditEvent {
            principal: Principal::Internal,
            action: AuditAction::A2aCall,
            target: Some(target.to_owned()),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "n": n }),
        }
    }

    async fn stored(store: &Arc<dyn Store>) -> Vec<AuditRecord> {
        let page = PageRequest::first(100).unwrap();
        store
            .audit()
            .list(&AuditFilter::all(), &page)
            .await
            .unwrap()
            .items
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_thousand_concurrent_records_form_one_unbroken_chain() {
        for (store, backend) in backends().await {
            let auditor = auditor(&store);
            let calls: Vec<_> = (0..1_000)
                .map(|n| {
                    let auditor = auditor.clone();
                    tokio::spawn(async move {
                        auditor
                            .record(call(n, "agent:a"), &RequestMeta::default())
                            .await
                    })
                })
                .collect();
            for call in calls {
                call.await.unwrap().unwrap();
            }
            let report = verify(store.as_ref(), auditor.chain()).await.unwrap();
            assert_eq!(report.first_break, None);
            assert_eq!(report.checked, 1_000, "one record per call");
            assert_eq!(report.unchained, 0);
            drop(backend);
        }
    }

    #[tokio::test]
    async fn every_caller_of_a_batch_that_fails_is_refused_and_none_of_it_is_written() {
        for (store, backend) in backends().await {
            let auditor = auditor(&store);
            auditor
                .record(call(0, "agent:a"), &RequestMeta::default())
                .await
                .unwrap();
            // On this single-threaded runtime the tasks all queue their records before the
            // writer runs again, so they share one batch, poisoned by one of them.
            let calls: Vec<_> = (1..=50)
                .map(|n| {
                    let auditor = auditor.clone();
                    let target = if n == 25 { POISON } else { "agent:a" };
                    tokio::spawn(async move {
                        auditor
                            .record(call(n, target), &RequestMeta::default())
                            .await
                    })
                })
                .collect();
            for call in calls {
                assert!(call.await.unwrap().is_err(), "a caller of the failed batch");
            }
            let records = stored(&store).await;
            assert_eq!(records.len(), 1, "only the record before the batch");

            // The writer goes on, and the chain with it.
            auditor
                .record(call(51, "agent:a"), &RequestMeta::default())
                .await
                .unwrap();
            let report = verify(store.as_ref(), auditor.chain()).await.unwrap();
            assert_eq!((report.checked, report.first_break), (2, None));
            drop(backend);
        }
    }
}
