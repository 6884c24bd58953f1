//! The WAN carrier: `wan-envelope-v1` envelopes between Hive instances over NATS JetStream.
//!
//! - One stream (file storage, one subject) holds the envelopes, bounded in age, bytes and
//!   count, with a duplicate window: a publish carries `Nats-Msg-Id` = the envelope id, so the
//!   same envelope published twice within the window is stored once.
//! - A publish waits for the stream's acknowledgement; without one it fails.
//! - Each instance reads through one durable pull consumer (its replicas share it, so an
//!   envelope is taken once per instance) with explicit acks. A message is acked only after it
//!   was handed on; envelopes this instance emitted itself are acked and dropped; a redelivery
//!   of an envelope already handed on (a crash between hand-over and ack) is recognised by its
//!   id in the replay cache, acked and dropped.
//! - Reconnecting is the client's job; any other failure is logged — never with the URL, which
//!   may hold credentials — and the loop starts over until it is cancelled.

use crate::{ReplayCache, StateError};
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt;
use hive_proto::wan::WanEnvelope;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, watch};
use tokio_util::sync::CancellationToken;

/// How long a stored envelope is kept at most.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The most bytes the stream holds; the oldest envelopes go first.
pub const DEFAULT_MAX_BYTES: i64 = 1 << 30;
/// The most envelopes the stream holds.
pub const DEFAULT_MAX_MESSAGES: i64 = 1_000_000;
/// The largest message: an envelope's payload is capped at 64 KiB, the rest is small.
const MAX_MESSAGE_BYTES: i32 = 128 * 1024;
/// How long a message handed to a consumer may stay unacked before it is delivered again.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// The pause before the consumer loop starts over after a failure.
const RETRY_PAUSE: Duration = Duration::from_secs(2);
/// How long a failed hand-over waits before the message comes back.
const NAK_DELAY: Duration = Duration::from_secs(1);

/// The replay-cache key that records an envelope as published on an instance's bus; `scope`
/// is the instance's consumer name (shared by its replicas).
pub fn seen_key(scope: &str, id: &str) -> String {
    format!("wan:{scope}:{id}")
}

/// Where the carrier runs; `url` is never printed.
#[derive(Clone)]
pub struct CarrierSettings {
    pub url: String,
    pub stream: String,
    pub subject: String,
    /// The durable consumer of this instance (shared by its replicas).
    pub consumer: String,
    /// The stream's duplicate window.
    pub dedup_window: Duration,
    /// This instance's origin: envelopes with this `source` are its own.
    pub local_origin: String,
    pub ack_wait: Duration,
    pub max_age: Duration,
    pub max_bytes: i64,
    pub max_messages: i64,
}

impl std::fmt::Debug for CarrierSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierSettings")
            .field("stream", &self.stream)
            .field("subject", &self.subject)
            .field("consumer", &self.consumer)
            .field("dedup_window", &self.dedup_window)
            .field("local_origin", &self.local_origin)
            .finish_non_exhaustive()
    }
}

impl CarrierSettings {
    /// The settings with the default bounds and ack wait.
    pub fn new(
        url: String,
        stream: String,
        subject: String,
        consumer: String,
        dedup_window: Duration,
        local_origin: String,
    ) -> Self {
        Self {
            url,
            stream,
            subject,
            consumer,
            dedup_window,
            local_origin,
            ack_wait: DEFAULT_ACK_WAIT,
            max_age: DEFAULT_MAX_AGE,
            max_bytes: DEFAULT_MAX_BYTES,
            max_messages: DEFAULT_MAX_MESSAGES,
        }
    }
}

/// What the consumer did with the messages it received, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CarrierCounts {
    /// Messages received (redeliveries included).
    pub received: u64,
    /// Of those, redeliveries.
    pub redelivered: u64,
    /// Handed on and acked.
    pub delivered: u64,
    /// Emitted by this instance: acked, not handed on.
    pub own: u64,
    /// Already handed on before (by id): acked, not handed on again.
    pub duplicates: u64,
    /// Not a valid envelope: terminated.
    pub malformed: u64,
    /// Could not be handed on or checked: left for redelivery.
    pub failed: u64,
}

/// How a publish went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The stream had this id already (within the duplicate window) and kept one copy.
    pub duplicate: bool,
}

/// The JetStream side of the WAN mesh.
pub struct WanCarrier {
    settings: CarrierSettings,
    jetstream: jetstream::Context,
    stream_ready: OnceCell<()>,
    replay: Arc<dyn ReplayCache>,
    counts: watch::Sender<CarrierCounts>,
}

impl std::fmt::Debug for WanCarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WanCarrier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(format!("nats: {what}: {error}"))
}

impl WanCarrier {
    /// Creates the client; it connects (and reconnects) in the background, so a start while
    /// NATS is down succeeds and publishes fail until it answers.
    pub async fn connect(
        settings: CarrierSettings,
        replay: Arc<dyn ReplayCache>,
    ) -> Result<Self, StateError> {
        let client = async_nats::ConnectOptions::new()
            .name("hive")
            .retry_on_initial_connect()
            .connect(settings.url.as_str())
            .await
            // The kind only: the error may quote the address, which may hold credentials.
            .map_err(|error| unavailable("cannot connect", error.kind()))?;
        Ok(Self {
            settings,
            jetstream: jetstream::new(client),
            stream_ready: OnceCell::new(),
            replay,
            counts: watch::channel(CarrierCounts::default()).0,
        })
    }

    /// Whether NATS answers a round trip within `limit` (the system health report).
    pub async fn ping(&self, limit: std::time::Duration) -> Result<(), crate::PingFailure> {
        let client = self.jetstream.client();
        if client.connection_state() != async_nats::connection::State::Connected {
            return Err(crate::PingFailure::Unreachable);
        }
        match tokio::time::timeout(limit, client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(crate::PingFailure::Unreachable),
            Err(_) => Err(crate::PingFailure::TimedOut),
        }
    }

    pub fn settings(&self) -> &CarrierSettings {
        &self.settings
    }

    /// Follows what the consumer did.
    pub fn counts(&self) -> watch::Receiver<CarrierCounts> {
        self.counts.subscribe()
    }

    fn count(&self, change: impl FnOnce(&mut CarrierCounts)) {
        self.counts.send_modify(change);
    }

    fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.settings.stream.clone(),
            subjects: vec![self.settings.subject.clone()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            duplicate_window: self.settings.dedup_window,
            max_age: self.settings.max_age,
            max_bytes: self.settings.max_bytes,
            max_messages: self.settings.max_messages,
            max_message_size: MAX_MESSAGE_BYTES,
            ..Default::default()
        }
    }

    /// Creates the stream unless it exists (an existing one is used as it is).
    async fn ensure_stream(&self) -> Result<stream::Stream, StateError> {
        let stream = self
            .jetstream
            .get_or_create_stream(self.stream_config())
            .await
            .map_err(|error| unavailable("cannot open the stream", error))?;
        Ok(stream)
    }

    /// Publishes `envelope` and waits for the stream's acknowledgement.
    pub async fn publish(&self, envelope: &WanEnvelope) -> Result<Published, StateError> {
        envelope.validate().map_err(StateError::Invalid)?;
        self.stream_ready
            .get_or_try_init(|| async { self.ensure_stream().await.map(|_| ()) })
            .await?;
        let body = serde_json::to_vec(envelope)
            .map_err(|_| StateError::Invalid("the envelope does not serialise".into()))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", envelope.id.as_str());
        let ack = self
            .jetstream
            .publish_with_headers(self.settings.subject.clone(), headers, body.into())
            .await
            .map_err(|error| unavailable("publish refused", error))?
            .await
            .map_err(|error| unavailable("publish not acknowledged", error))?;
        Ok(Published {
            duplicate: ack.duplicate,
        })
    }

    /// Deletes the stream (tests clean up with it).
    pub async fn delete_stream(&self) -> Result<(), StateError> {
        self.jetstream
            .delete_stream(&self.settings.stream)
            .await
            .map(|_| ())
            .map_err(|error| unavailable("cannot delete the stream", error))
    }

    /// Consumes until `cancel`: each new envelope of another instance goes to `deliver`, and
    /// its message is acked once `deliver` returned `Ok`.
    pub async fn run<F, Fut>(self: Arc<Self>, deliver: F, cancel: CancellationToken)
    where
        F: Fn(WanEnvelope) -> Fut + Send + Sync,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        loop {
            let outcome = tokio::select! {
                () = cancel.cancelled() => return,
                outcome = self.consume(&deliver) => outcome,
            };
            if let Err(error) = outcome {
                tracing::warn!(%error, stream = %self.settings.stream,
                    consumer = %self.settings.consumer, "WAN consumer failed; starting over");
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }

    async fn consume<F, Fut>(&self, deliver: &F) -> Result<(), StateError>
    where
        F: Fn(WanEnvelope) -> Fut + Send + Sync,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        let stream = self.ensure_stream().await?;
        let name = self.settings.consumer.clone();
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.settings.ack_wait,
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| unavailable("cannot open the consumer", error))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|error| unavailable("cannot pull", error))?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|error| unavailable("pull failed", error))?;
            self.handle(&message, deliver).await;
        }
        Err(StateError::Unavailable(
            "nats: the message stream ended".into(),
        ))
    }

    async fn handle<F, Fut>(&self, message: &jetstream::Message, deliver: &F)
    where
        F: Fn(WanEnvelope) -> Fut + Send + Sync,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        let redelivered = message.info().is_ok_and(|info| info.delivered > 1);
        self.count(|c| {
            c.received += 1;
            c.redelivered += u64::from(redelivered);
        });
        let envelope = match serde_json::from_slice::<WanEnvelope>(&message.payload) {
            Ok(envelope) if envelope.validate().is_ok() => envelope,
            _ => {
                self.count(|c| c.malformed += 1);
                tracing::warn!(stream = %self.settings.stream, "dropped a malformed WAN envelope");
                self.settle(message, AckKind::Term).await;
                return;
            }
        };
        if envelope.source == self.settings.local_origin {
            self.count(|c| c.own += 1);
            self.settle(message, AckKind::Ack).await;
            return;
        }
        // Once per instance: the key names the consumer, which the instance's replicas share.
        let key = seen_key(&self.settings.consumer, &envelope.id);
        match self.replay.consume(&key, self.settings.max_age).await {
            Ok(true) => {}
            Ok(false) => {
                self.count(|c| c.duplicates += 1);
                tracing::debug!(id = %envelope.id, "dropped a WAN envelope handed on before");
                self.settle(message, AckKind::Ack).await;
                return;
            }
            Err(error) => {
                self.count(|c| c.failed += 1);
                tracing::warn!(%error, id = %envelope.id,
                    "cannot check a WAN envelope against the replay cache; it comes back");
                self.settle(message, AckKind::Nak(Some(NAK_DELAY))).await;
                return;
            }
        }
        let id = envelope.id.clone();
        match deliver(envelope).await {
            Ok(()) => {
                self.count(|c| c.delivered += 1);
                self.settle(message, AckKind::Ack).await;
            }
            Err(error) => {
                // Its id is recorded already: a redelivery would be dropped, so it is not asked
                // for. The loss is logged.
                self.count(|c| c.failed += 1);
                tracing::error!(%error, %id, "a WAN envelope could not be handed on; dropped");
                self.settle(message, AckKind::Term).await;
            }
        }
    }

    async fn settle(&self, message: &jetstream::Message, kind: AckKind) {
        if let Err(error) = message.ack_with(kind).await {
            tracing::warn!(%error, stream = %self.settings.stream,
                "cannot acknowledge a WAN message; it will be delivered again");
        }
    }
}
