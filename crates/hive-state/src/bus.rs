//! The event bus: typed events on three channels, `<prefix>:agent:status`,
//! `<prefix>:system:events` and `<prefix>:cache:invalidate` (kept off the live event stream),
//! through Redis pub/sub between replicas or a broadcast channel in one
//! process. Every event carries `meshMeta {v, producer, eventId, correlationId}`; with a signing
//! key (Hive always gives one: `MESH_BUS_HMAC_SECRET`, else a key derived from the master key)
//! also `meshSig`, HMAC-SHA256 over the canonical JSON of `{channel, payload, meshMeta}`. Subscribers drop (and count) what fails its signature or
//! does not parse as a valid event — both backends receive through the same checks.

use crate::redis_client::Subscription;
use crate::{RedisClient, StateError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Events a subscriber may fall behind by before it misses some (it is told it lagged).
const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    AgentStatus,
    SystemEvents,
    /// Rows cached in process changed: every replica drops what it holds of them.
    CacheInvalidations,
}

impl Channel {
    const ALL: [Channel; 3] = [
        Channel::AgentStatus,
        Channel::SystemEvents,
        Channel::CacheInvalidations,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Self::AgentStatus => "agent:status",
            Self::SystemEvents => "system:events",
            Self::CacheInvalidations => "cache:invalidate",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::AgentStatus => 0,
            Self::SystemEvents => 1,
            Self::CacheInvalidations => 2,
        }
    }
}

/// The kinds of rows replicas cache in process, each invalidated as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheTopic {
    /// Users, sessions and API tokens: what authenticates a request.
    Credentials,
    /// Agent rows and the cards made of them.
    Agents,
}

impl CacheTopic {
    pub const ALL: [CacheTopic; 2] = [CacheTopic::Credentials, CacheTopic::Agents];

    pub const fn index(self) -> usize {
        match self {
            Self::Credentials => 0,
            Self::Agents => 1,
        }
    }
}

/// The statuses an agent can be in.
pub const AGENT_STATUSES: [&str; 5] = ["created", "starting", "ready", "stopped", "error"];

/// The events, validated before they are published and again when received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum BusEvent {
    #[serde(rename = "agent.status", rename_all = "camelCase")]
    AgentStatus {
        agent_id: String,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<String>,
        /// The agent's owner and visibility when the status changed, so a subscriber decides
        /// who may see the event without reading the agent. Optional: events of earlier
        /// versions (during a rolling upgrade) have neither.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner_id: Option<uuid::Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visibility: Option<hive_proto::agents::AgentVisibility>,
    },
    #[serde(rename = "system", rename_all = "camelCase")]
    System { kind: String, message: String },
    /// A WAN envelope accepted by the ingress or received over the WAN carrier.
    #[serde(rename = "mesh.wan.envelope", rename_all = "camelCase")]
    WanEnvelope {
        envelope: hive_proto::wan::WanEnvelope,
    },
    /// Rows of `topic` changed on the producing replica: drop every cached one.
    #[serde(rename = "cache.invalidate", rename_all = "camelCase")]
    CacheInvalidate { topic: CacheTopic },
}

impl BusEvent {
    pub fn channel(&self) -> Channel {
        match self {
            Self::AgentStatus { .. } => Channel::AgentStatus,
            Self::System { .. } | Self::WanEnvelope { .. } => Channel::SystemEvents,
            Self::CacheInvalidate { .. } => Channel::CacheInvalidations,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let plain = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match self {
            Self::AgentStatus {
                agent_id,
                status,
                previous,
                ..
            } => {
                if !plain(agent_id, 64) {
                    return Err("agentId must be 1-64 characters of A-Z a-z 0-9 - _ .".into());
                }
                for s in std::iter::once(status).chain(previous) {
                    if !AGENT_STATUSES.contains(&s.as_str()) {
                        return Err(format!("status must be one of {AGENT_STATUSES:?}"));
                    }
                }
                Ok(())
            }
            Self::System { kind, message } => {
                if !plain(kind, 64) {
                    return Err("kind must be 1-64 characters of A-Z a-z 0-9 - _ .".into());
                }
                if message.chars().count() > 1000 {
                    return Err("message must be at most 1000 characters".into());
                }
                Ok(())
            }
            Self::WanEnvelope { envelope } => envelope.validate(),
            Self::CacheInvalidate { .. } => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshMeta {
    pub v: u32,
    /// The node that published.
    pub producer: String,
    pub event_id: String,
    /// The request id (or trace id) that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// What travels on a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    pub channel: String,
    pub payload: BusEvent,
    pub mesh_meta: MeshMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_sig: Option<String>,
}

/// Why received messages were dropped.
#[derive(Debug, Default)]
pub struct BusCounters {
    pub bad_signature: AtomicU64,
    pub malformed: AtomicU64,
    pub delivered: AtomicU64,
}

/// The correlation id of a W3C `traceparent` (its trace id), when the header is well formed.
pub fn correlation_from_traceparent(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32 && trace_id.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| trace_id.to_ascii_lowercase())
}

/// JSON with object keys sorted at every level and no whitespace: the bytes that are signed.
fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

fn signed_bytes(envelope: &Envelope) -> Result<String, StateError> {
    let value = serde_json::json!({
        "channel": envelope.channel,
        "payload": envelope.payload,
        "meshMeta": envelope.mesh_meta,
    });
    Ok(canonical_json(&value))
}

struct Inner {
    producer: String,
    prefix: String,
    signing_key: Option<Vec<u8>>,
    senders: [broadcast::Sender<Envelope>; Channel::ALL.len()],
    counters: Arc<BusCounters>,
}

impl Inner {
    fn channel_name(&self, channel: Channel) -> String {
        format!("{}:{}", self.prefix, channel.suffix())
    }

    /// The one receive path: parse, check the channel, the signature and the event, deliver.
    fn receive(&self, channel_name: &str, raw: &[u8]) {
        let Some(channel) = Channel::ALL
            .into_iter()
            .find(|c| self.channel_name(*c) == channel_name)
        else {
            return;
        };
        let envelope = match serde_json::from_slice::<Envelope>(raw) {
            Ok(envelope)
                if envelope.channel == channel_name
                    && envelope.payload.channel() == channel
                    && envelope.payload.validate().is_ok() =>
            {
                envelope
            }
            _ => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hive_bus_events_dropped_total", "reason" => "malformed")
                    .increment(1);
                tracing::warn!(channel = channel_name, "dropped a malformed bus event");
                return;
            }
        };
        if let Some(key) = &self.signing_key {
            let genuine = match (&envelope.mesh_sig, signed_bytes(&envelope)) {
                (Some(sig), Ok(bytes)) => {
                    hive_crypto::verify_hmac_sha256_hex(key, bytes.as_bytes(), sig)
                }
                _ => false,
            };
            if !genuine {
                self.counters.bad_signature.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hive_bus_events_dropped_total", "reason" => "bad_signature")
                    .increment(1);
                tracing::warn!(
                    channel = channel_name,
                    producer = %envelope.mesh_meta.producer,
                    "dropped a bus event whose signature does not hold"
                );
                return;
            }
        }
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        // No subscriber is not an error.
        let _ = self.senders[channel.index()].send(envelope);
    }
}

enum Transport {
    Memory,
    Redis(Box<RedisClient>),
}

/// Publish and subscribe; one per process.
pub struct EventBus {
    inner: Arc<Inner>,
    transport: Transport,
    subscribed: watch::Receiver<bool>,
    stop: CancellationToken,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("producer", &self.inner.producer)
            .field("signed", &self.inner.signing_key.is_some())
            .finish()
    }
}

impl EventBus {
    fn inner(producer: &str, prefix: &str, signing_key: Option<&[u8]>) -> Arc<Inner> {
        Arc::new(Inner {
            producer: producer.to_owned(),
            prefix: prefix.trim_end_matches(':').to_owned(),
            signing_key: signing_key.map(<[u8]>::to_vec),
            senders: Channel::ALL.map(|_| broadcast::channel(CAPACITY).0),
            counters: Arc::new(BusCounters::default()),
        })
    }

    /// The in-process bus of the embedded shape.
    pub fn memory(producer: &str, signing_key: Option<&[u8]>) -> Self {
        Self {
            inner: Self::inner(producer, "hive", signing_key),
            transport: Transport::Memory,
            subscribed: watch::channel(true).1,
            stop: CancellationToken::new(),
        }
    }

    /// The Redis bus: starts a subscriber task that reconnects by itself until [`Self::close`].
    pub fn redis(redis: RedisClient, producer: &str, signing_key: Option<&[u8]>) -> Self {
        let inner = Self::inner(producer, &redis.key(&[]), signing_key);
        let (subscribed_tx, subscribed) = watch::channel(false);
        let stop = CancellationToken::new();
        let channels = Channel::ALL
            .into_iter()
            .map(|c| inner.channel_name(c))
            .collect();
        let receiver = Arc::clone(&inner);
        tokio::spawn(redis.clone().subscribe_forever(
            Subscription {
                what: "event bus",
                channels,
                patterns: Vec::new(),
            },
            move |channel, payload| receiver.receive(channel, payload),
            subscribed_tx,
            stop.clone(),
        ));
        Self {
            inner,
            transport: Transport::Redis(Box::new(redis)),
            subscribed,
            stop,
        }
    }

    pub fn counters(&self) -> &Arc<BusCounters> {
        &self.inner.counters
    }

    /// Waits until this bus receives from its channels (immediately in memory).
    pub async fn ready(&self) {
        let mut subscribed = self.subscribed.clone();
        let _ = subscribed.wait_for(|ready| *ready).await;
    }

    /// Stops the subscriber task.
    pub fn close(&self) {
        self.stop.cancel();
    }

    pub fn subscribe(&self, channel: Channel) -> broadcast::Receiver<Envelope> {
        self.inner.senders[channel.index()].subscribe()
    }

    /// Validates, stamps, signs and publishes `event`; returns what was sent.
    pub async fn publish(
        &self,
        event: BusEvent,
        correlation_id: Option<&str>,
    ) -> Result<Envelope, StateError> {
        event.validate().map_err(StateError::Invalid)?;
        let channel_name = self.inner.channel_name(event.channel());
        let mut envelope = Envelope {
            channel: channel_name.clone(),
            payload: event,
            mesh_meta: MeshMeta {
                v: 1,
                producer: self.inner.producer.clone(),
                event_id: uuid::Uuid::now_v7().to_string(),
                correlation_id: correlation_id
                    .filter(|c| !c.is_empty() && c.len() <= 128)
                    .map(str::to_owned),
            },
            mesh_sig: None,
        };
        if let Some(key) = &self.inner.signing_key {
            let bytes = signed_bytes(&envelope)?;
            envelope.mesh_sig = Some(hive_crypto::hmac_sha256_hex(key, bytes.as_bytes()));
        }
        let raw = serde_json::to_vec(&envelope)
            .map_err(|_| StateError::Invalid("the event does not serialise".into()))?;
        match &self.transport {
            Transport::Memory => self.inner.receive(&channel_name, &raw),
            Transport::Redis(redis) => {
                redis.publish(&channel_name, &raw).await?;
            }
        }
        Ok(envelope)
    }
}

impl Drop for EventBus {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = serde_json::json!({"b": 1, "a": {"d": [true, null], "c": "x"}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":"x","d":[true,null]},"b":1}"#
        );
    }

    #[test]
    fn traceparent_gives_the_trace_id() {
        assert_eq!(
            correlation_from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(correlation_from_traceparent("garbage"), None);
    }

    #[test]
    fn events_are_validated() {
        let ok = BusEvent::AgentStatus {
            agent_id: "a1".into(),
            status: "ready".into(),
            previous: Some("starting".into()),
            owner_id: Some(uuid::Uuid::nil()),
            visibility: Some(hive_proto::agents::AgentVisibility::Private),
        };
        assert!(ok.validate().is_ok());
        let bad_status = BusEvent::AgentStatus {
            agent_id: "a1".into(),
            status: "exploded".into(),
            previous: None,
            owner_id: None,
            visibility: None,
        };
        assert!(bad_status.validate().is_err());
        let bad_kind = BusEvent::System {
            kind: "has space".into(),
            message: String::new(),
        };
        assert!(bad_kind.validate().is_err());
    }

    #[test]
    fn agent_status_events_of_earlier_versions_still_read() {
        // Published by a replica that does not yet send the owner and visibility.
        let earlier: BusEvent = serde_json::from_str(
            r#"{"type":"agent.status","agentId":"a1","status":"ready","previous":"starting"}"#,
        )
        .unwrap();
        let BusEvent::AgentStatus {
            owner_id,
            visibility,
            ..
        } = &earlier
        else {
            panic!("an agent status event: {earlier:?}");
        };
        assert_eq!((owner_id, visibility), (&None, &None));
        assert!(earlier.validate().is_ok());

        let owner = uuid::Uuid::now_v7();
        let current: BusEvent = serde_json::from_value(serde_json::json!({
            "type": "agent.status", "agentId": "a1", "status": "ready",
            "ownerId": owner, "visibility": "federation",
        }))
        .unwrap();
        assert!(matches!(
            current,
            BusEvent::AgentStatus {
                owner_id: Some(id),
                visibility: Some(hive_proto::agents::AgentVisibility::Federation),
                ..
            } if id == owner
        ));
        let unknown_visibility = serde_json::from_value::<BusEvent>(serde_json::json!({
            "type": "agent.status", "agentId": "a1", "status": "ready", "visibility": "everyone",
        }));
        assert!(unknown_visibility.is_err());
    }
}
