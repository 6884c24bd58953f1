//! Replicas announce themselves on the event bus (`replica.started`, `replica.stopping`) and log
//! what the others announce, so an operator sees in any replica's log when another one joins or
//! leaves — and sees at once when the bus between them is broken.

use hive_state::{BusEvent, Channel, EventBus};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(2);

fn announcement(kind: &str, node_id: &str) -> BusEvent {
    BusEvent::System {
        kind: kind.to_owned(),
        message: format!("replica {node_id}"),
    }
}

/// Announces this replica on the bus (`replica.started`, then `replica.stopping` when `cancel`
/// fires) and logs what the other replicas announce.
pub(crate) fn announce(
    bus: Arc<EventBus>,
    node_id: String,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) {
    tracker.spawn(async move {
        let mut events = bus.subscribe(Channel::SystemEvents);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = bus.ready() => {}
        }
        let hello = bus.publish(announcement("replica.started", &node_id), None);
        match hello.await {
            Ok(_) => tracing::info!("announced this replica on the event bus"),
            Err(error) => {
                tracing::warn!(%error, "cannot announce this replica on the event bus");
            }
        }
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                received = events.recv() => match received {
                    Ok(envelope) if envelope.mesh_meta.producer != node_id => {
                        if let BusEvent::System { kind, message } = &envelope.payload {
                            tracing::info!(
                                kind,
                                note = %message,
                                producer = %envelope.mesh_meta.producer,
                                "event from another replica"
                            );
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "fell behind on system events");
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
        let goodbye = bus.publish(announcement("replica.stopping", &node_id), None);
        if !matches!(
            tokio::time::timeout(ANNOUNCE_TIMEOUT, goodbye).await,
            Ok(Ok(_))
        ) {
            tracing::warn!("cannot announce this replica's stop on the event bus");
        }
    });
}
