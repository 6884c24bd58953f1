//! Group commit of records of their own (A2A calls, refusals, logins, federation calls): one
//! writer per auditor takes every record waiting, chains them in order and commits them in one
//! transaction — one fsync, one hold of the chain, whatever the number of records. Each caller
//! is answered only once its batch is durable, and hears [`Unrecorded`] when the batch could
//! not be written (none of its records exists then), exactly as if it had written alone.
//!
//! The queue is bounded: when the writer falls behind, callers wait for room, and after
//! [`ENQUEUE_WAIT`] give up with [`Unrecorded`] (their request answers 503), so memory never
//! grows without bound.

use super::auditor::Unrecorded;
use super::chain::AuditChain;
use hive_store::{AuditRecord, Store};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Records waiting for the writer, at most.
const QUEUE: usize = 8_192;
/// Records in one transaction, at most (a bound on the transaction, not on throughput: the
/// next batch starts as soon as this one commits).
const MAX_BATCH: usize = 1_024;
/// How long a caller waits for room in a full queue before its call is refused.
const ENQUEUE_WAIT: Duration = Duration::from_secs(2);

struct Waiting {
    record: AuditRecord,
    written: oneshot::Sender<bool>,
}

/// The queue in front of the writer; the writer starts with the first record, on the runtime
/// of its caller (so an auditor that only makes records for transactions never starts one).
pub(super) struct GroupCommit {
    store: Arc<dyn Store>,
    chain: Arc<AuditChain>,
    queue: OnceLock<mpsc::Sender<Waiting>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("started", &self.queue.get().is_some())
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    pub(super) fn new(store: Arc<dyn Store>, chain: Arc<AuditChain>) -> Self {
        Self {
            store,
            chain,
            queue: OnceLock::new(),
        }
    }

    /// Appends `record` with whatever else is waiting; returns once it is durable.
    pub(super) async fn append(&self, record: AuditRecord) -> Result<(), Unrecorded> {
        let queue = self.queue.get_or_init(|| {
            let (queue, waiting) = mpsc::channel(QUEUE);
            tokio::spawn(write_batches(
                Arc::clone(&self.store),
                Arc::clone(&self.chain),
                waiting,
            ));
            queue
        });
        let (written, answer) = oneshot::channel();
        let action = record.action.clone();
        match tokio::time::timeout(ENQUEUE_WAIT, queue.send(Waiting { record, written })).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                tracing::error!(%action, "audit writer stopped; record not written");
                return Err(Unrecorded);
            }
            Err(_) => {
                tracing::warn!(%action, "audit queue full; record not written");
                return Err(Unrecorded);
            }
        }
        match answer.await {
            Ok(true) => Ok(()),
            // The batch failed (logged once by the writer), or the writer is gone.
            Ok(false) | Err(_) => Err(Unrecorded),
        }
    }
}

/// The writer: every record waiting, in arrival order, one transaction per batch.
async fn write_batches(
    store: Arc<dyn Store>,
    chain: Arc<AuditChain>,
    mut waiting: mpsc::Receiver<Waiting>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (records, answers): (Vec<AuditRecord>, Vec<oneshot::Sender<bool>>) = batch
            .drain(..)
            .map(|Waiting { record, written }| (record, written))
            .unzip();
        metrics::histogram!("hive_audit_batch_records").record(records.len() as f64);
        let written = match store.audit().append_batch(&records, chain.as_ref()).await {
            Ok(_) => true,
            Err(error) => {
                metrics::counter!("hive_audit_batches_failed_total").increment(1);
                tracing::error!(
                    %error,
                    records = records.len(),
                    "audit records not written; their calls are refused"
                );
                false
            }
        };
        for answer in answers {
            // A caller that gave up (its request was dropped) no longer listens.
            let _ = answer.send(written);
        }
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
