//! Replicas announce themselves on the event bus (`replica.started`, `replica.stopping`) and log
//! what the others announce, so an operator sees in any replica's log when another one joins or
//! leaves — and sees at once when the bus between them is broken.

use crate::Hive;
use hive_state::{BusEvent, Channel};
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

impl Hive {
    /// Starts announcing this replica and logging the others' announcements, following
    /// settings changed on other replicas, and (with `NATS_URL`) consuming other instances'
    /// WAN envelopes onto the bus.
    pub fn start_presence(&self, tracker: &TaskTracker, cancel: CancellationToken) {
        // Settings changed on another replica arrive on the same bus.
        self.settings.start_follower(tracker, cancel.clone());
        self.wan.start_consumer(tracker, cancel.clone());
        let bus = std::sync::Arc::clone(&self.state.bus);
        let node_id = self.node_id.clone();
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
}
