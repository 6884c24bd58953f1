//! The one way a record enters the audit log. Two entry points: [`Auditor::in_transaction`]
//! for a change, whose record is written in the change's own transaction (both or neither),
//! and [`Auditor::record`] for an event that changes nothing stored, which returns once the
//! record is durable (group-committed with the other records waiting, see [`super::group_commit`]).
//! Refusals use [`Auditor::record_refusal`]: the refusal stands whether or
//! not its record could be written.

use super::chain::AuditChain;
use super::event::AuditEvent;
use super::group_commit::AuditQueue;
use crate::kernel::caller::RequestMeta;
use hive_proto::SharedClock;
use hive_store::{AuditAppend, AuditRecord, Store};
use std::sync::Arc;
use time::OffsetDateTime;

/// The record of `event`, made `at` for the request `meta` describes.
pub fn record_at(at: OffsetDateTime, event: AuditEvent, meta: &RequestMeta) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::now_v7(),
        at: hive_store::truncate_to_micros(at),
        actor: event.principal.to_string(),
        action: event.action.name().into_owned(),
        target: event.target,
        outcome: event.outcome,
        ip: meta.ip.clone(),
        request_id: meta.request_id.clone(),
        detail: event.detail.to_string(),
        link: None,
    }
}

/// A record could not be written (the store's reason is logged, never returned).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the audit record could not be written")]
pub struct Unrecorded;

/// Writes audit records into the hash chain. Clones share one writer.
#[derive(Debug, Clone)]
pub struct Auditor {
    chain: Arc<AuditChain>,
    clock: SharedClock,
    queue: Arc<AuditQueue>,
}

/// A record made for a change, to be appended inside the change's transaction.
#[derive(Debug)]
pub struct TransactionRecord {
    record: AuditRecord,
    chain: Arc<AuditChain>,
}

impl TransactionRecord {
    /// What the store appends in the transaction.
    pub fn append(&self) -> AuditAppend<'_> {
        AuditAppend {
            record: &self.record,
            hasher: self.chain.as_ref(),
        }
    }

    pub fn record(&self) -> &AuditRecord {
        &self.record
    }
}

impl Auditor {
    pub fn new(store: Arc<dyn Store>, chain: Arc<AuditChain>, clock: SharedClock) -> Self {
        Self {
            queue: Arc::new(AuditQueue::new(store, Arc::clone(&chain))),
            chain,
            clock,
        }
    }

    /// The key of the chain (for verifying and signing checkpoints).
    pub fn chain(&self) -> &Arc<AuditChain> {
        &self.chain
    }

    /// The record of `event`, for the transaction of the change it describes: the change and
    /// its record are committed together or not at all.
    pub fn in_transaction(&self, event: AuditEvent, meta: &RequestMeta) -> TransactionRecord {
        TransactionRecord {
            record: record_at(self.clock.now(), event, meta),
            chain: Arc::clone(&self.chain),
        }
    }

    /// Writes the record of an event that changes nothing stored; returns once it is durable.
    /// `Err` means it was not written (the batch it joined failed, or the writer is too far
    /// behind): the caller must not claim the event happened.
    pub async fn record(&self, event: AuditEvent, meta: &RequestMeta) -> Result<(), Unrecorded> {
        self.queue
            .append(record_at(self.clock.now(), event, meta))
            .await
    }

    /// Writes the record of a refusal or a failed attempt. The refusal stands either way; a
    /// record that could not be written is logged by [`Auditor::record`].
    pub async fn record_refusal(&self, event: AuditEvent, meta: &RequestMeta) {
        let _ = self.record(event, meta).await;
    }
}
