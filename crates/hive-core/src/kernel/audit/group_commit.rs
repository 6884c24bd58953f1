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
        let written = match store.audit().append_batch(&records, chain.as_ref()).await {
            Ok(_) => true,
            Err(error) => {
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
