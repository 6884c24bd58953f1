//! The WAN mesh: envelopes (`wan-envelope-v1`) accepted by the ingress are published on this
//! instance's event bus as `mesh.wan.envelope` events and, with `NATS_URL`, carried over NATS
//! JetStream to the other instances, whose consumers publish them on their own buses.
//!
//! Each envelope reaches an instance's bus once: its id is recorded in the replay cache (shared
//! by the replicas) under the instance's consumer name before it is published, both by the
//! ingress and by the consumer, so a retried ingress, a redelivery and the instance's own
//! envelopes coming back over NATS are not published again.

use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Unrecorded};
use crate::kernel::caller::{Caller, RequestMeta};
use hive_proto::wan::{WanEnvelope, WanPublished};
use hive_state::{BusEvent, EventBus, ReplayCache, StateError, WanCarrier};
use hive_store::AuditOutcome;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The audit action of an accepted envelope.
pub const INGRESS_ACTION: AuditAction = AuditAction::MeshWanIngress;
/// How long an envelope id is remembered: as long as the stream keeps envelopes.
const SEEN_FOR: Duration = hive_state::wan::DEFAULT_MAX_AGE;
/// The replay-cache scope of an instance without NATS.
const LOCAL_SCOPE: &str = "local";

/// Why an envelope was not accepted. Messages are safe to show to the caller.
#[derive(Debug, thiserror::Error)]
pub enum WanError {
    #[error("{0}")]
    Invalid(String),
    /// The audit log, the replay cache, the event bus or NATS cannot take the envelope now.
    #[error("temporarily unavailable")]
    Unavailable,
}

impl From<Unrecorded> for WanError {
    fn from(_: Unrecorded) -> Self {
        Self::Unavailable
    }
}

/// The WAN service of this process.
#[derive(Debug)]
pub struct Wan {
    auditor: Auditor,
    bus: Arc<EventBus>,
    replay: Arc<dyn ReplayCache>,
    carrier: Option<Arc<WanCarrier>>,
    /// The replay-cache scope: the consumer name (one per instance), or `local`.
    scope: String,
}

impl Wan {
    /// The service; `carrier` is the NATS carrier the composition root connected (with
    /// `NATS_URL`), whose consumer name scopes the replay cache.
    pub fn new(
        auditor: Auditor,
        bus: Arc<EventBus>,
        replay: Arc<dyn ReplayCache>,
        carrier: Option<(Arc<WanCarrier>, String)>,
    ) -> Self {
        let (carrier, scope) = match carrier {
            None => (None, LOCAL_SCOPE.to_owned()),
            Some((carrier, consumer)) => (Some(carrier), consumer),
        };
        Self {
            auditor,
            bus,
            replay,
            carrier,
            scope,
        }
    }

    /// Whether envelopes also travel over NATS.
    pub fn carried(&self) -> bool {
        self.carrier.is_some()
    }

    /// The carrier (tests follow its counts).
    pub fn carrier(&self) -> Option<&Arc<WanCarrier>> {
        self.carrier.as_ref()
    }

    /// Accepts an envelope from an operator (or the internal token): validates it, records
    /// it in the audit log (no record, no publish), publishes it on the local bus unless it was
    /// published before, and on JetStream, answering only after JetStream acknowledged it.
    pub async fn accept(
        &self,
        envelope: WanEnvelope,
        caller: &Caller,
        meta: &RequestMeta,
    ) -> Result<WanPublished, WanError> {
        envelope.validate().map_err(WanError::Invalid)?;
        let entry = |outcome, detail| AuditEvent {
            principal: caller.principal(),
            action: INGRESS_ACTION,
            target: Some(envelope.id.clone()),
            outcome,
            detail,
        };
        let detail = serde_json::json!({
            "kind": envelope.kind,
            "source": envelope.source,
            "target": envelope.target,
            "nats": self.carried(),
        });
        self.auditor
            .record(entry(AuditOutcome::Success, detail), meta)
            .await?;
        // The bus first: a retry after a NATS failure then only publishes on NATS (whose
        // stream drops the duplicate id), and this instance's consumer, seeing the id
        // recorded, does not publish it a second time.
        let fresh = self
            .replay
            .consume(
                &hive_state::wan::seen_key(&self.scope, &envelope.id),
                SEEN_FOR,
            )
            .await
            .map_err(|error| unavailable("the replay cache", &error))?;
        if fresh {
            self.bus
                .publish(
                    BusEvent::WanEnvelope {
                        envelope: envelope.clone(),
                    },
                    meta.request_id.as_deref(),
                )
                .await
                .map_err(|error| unavailable("the event bus", &error))?;
        }
        let nats = match &self.carrier {
            None => false,
            Some(carrier) => match carrier.publish(&envelope).await {
                Ok(_) => true,
                Err(error) => {
                    tracing::warn!(%error, id = %envelope.id, "a WAN envelope was not carried");
                    let detail = serde_json::json!({ "reason": "nats unavailable" });
                    self.auditor
                        .record_refusal(entry(AuditOutcome::Failure, detail), meta)
                        .await;
                    return Err(WanError::Unavailable);
                }
            },
        };
        Ok(WanPublished { bus: fresh, nats })
    }

    /// With NATS: starts the consumer that publishes other instances' envelopes on the bus,
    /// until `cancel`.
    pub fn start_consumer(&self, tracker: &TaskTracker, cancel: CancellationToken) {
        let Some(carrier) = &self.carrier else {
            return;
        };
        let bus = Arc::clone(&self.bus);
        let deliver = move |envelope: WanEnvelope| {
            let bus = Arc::clone(&bus);
            async move {
                bus.publish(BusEvent::WanEnvelope { envelope }, None)
                    .await
                    .map(|_| ())
                    .map_err(|error| error.to_string())
            }
        };
        tracker.spawn(Arc::clone(carrier).run(deliver, cancel));
    }
}

fn unavailable(what: &str, error: &StateError) -> WanError {
    tracing::warn!(%error, "WAN ingress: {what} is unavailable");
    WanError::Unavailable
}
