//! The event bus in memory and across replicas on Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_state::bus::CacheTopic;
use hive_state::test_support::redis_url;
use hive_state::{BusEvent, Channel, EventBus, RedisClient};
use std::sync::atomic::Ordering;
use std::time::Duration;

const SECRET: &[u8] = b"Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ";

fn status(agent: &str, status: &str) -> BusEvent {
    BusEvent::AgentStatus {
        agent_id: agent.into(),
        status: status.into(),
        previous: None,
        owner_id: None,
        visibility: None,
    }
}

fn redis(prefix: &str) -> RedisClient {
    RedisClient::new(&redis_url().unwrap(), prefix).unwrap()
}

async fn next(
    receiver: &mut tokio::sync::broadcast::Receiver<hive_state::Envelope>,
) -> hive_state::Envelope {
    tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .expect("an event arrives")
        .unwrap()
}

#[tokio::test]
async fn memory_bus_delivers_stamped_signed_events_and_refuses_invalid_ones() {
    let bus = EventBus::memory("node-a", Some(SECRET));
    let mut agents = bus.subscribe(Channel::AgentStatus);
    let mut system = bus.subscribe(Channel::SystemEvents);
    let sent = bus
        .publish(status("a1", "ready"), Some("req-42"))
        .await
        .unwrap();
    let got = next(&mut agents).await;
    assert_eq!(got, sent);
    assert_eq!(got.channel, "hive:agent:status");
    assert_eq!(got.mesh_meta.v, 1);
    assert_eq!(got.mesh_meta.producer, "node-a");
    assert_eq!(got.mesh_meta.correlation_id.as_deref(), Some("req-42"));
    assert_eq!(got.mesh_sig.as_ref().unwrap().len(), 64);
    assert!(system.try_recv().is_err(), "channels are separate");

    let refused = bus.publish(status("a1", "exploded"), None).await;
    assert!(refused.is_err());
    assert!(agents.try_recv().is_err(), "nothing invalid is published");
}

#[tokio::test]
async fn an_event_published_on_one_replica_reaches_the_other() {
    if redis_url().is_none() {
        return;
    }
    let prefix = format!("hive-test-{}", uuid::Uuid::new_v4().simple());
    let a = EventBus::redis(redis(&prefix), "node-a", Some(SECRET));
    let b = EventBus::redis(redis(&prefix), "node-b", Some(SECRET));
    let mut on_b = b.subscribe(Channel::SystemEvents);
    a.ready().await;
    b.ready().await;

    let sent = a
        .publish(
            BusEvent::System {
                kind: "config.reloaded".into(),
                message: "hello".into(),
            },
            None,
        )
        .await
        .unwrap();
    let got = next(&mut on_b).await;
    assert_eq!(got, sent);
    assert_eq!(got.channel, format!("{prefix}:system:events"));
    assert_eq!(got.mesh_meta.producer, "node-a");
    a.close();
    b.close();
}

#[tokio::test]
async fn subscribers_drop_and_count_events_whose_signature_fails() {
    if redis_url().is_none() {
        return;
    }
    let prefix = format!("hive-test-{}", uuid::Uuid::new_v4().simple());
    let receiver = EventBus::redis(redis(&prefix), "node-b", Some(SECRET));
    let impostor = EventBus::redis(
        redis(&prefix),
        "node-x",
        Some(b"another-secret-another-secret-0123"),
    );
    let unsigned = EventBus::redis(redis(&prefix), "node-y", None);
    let honest = EventBus::redis(redis(&prefix), "node-a", Some(SECRET));
    let mut events = receiver.subscribe(Channel::AgentStatus);
    for bus in [&receiver, &impostor, &unsigned, &honest] {
        bus.ready().await;
    }

    impostor.publish(status("a1", "error"), None).await.unwrap();
    unsigned.publish(status("a1", "error"), None).await.unwrap();
    // A genuine event, then the same one with its payload changed in transit.
    let genuine = honest.publish(status("a1", "ready"), None).await.unwrap();
    let mut tampered = genuine.clone();
    tampered.payload = status("a1", "stopped");
    let raw = serde_json::to_vec(&tampered).unwrap();
    let client = redis(&prefix);
    let channel = format!("{prefix}:agent:status");
    client.publish(&channel, &raw).await.unwrap();
    client.publish(&channel, b"{not json").await.unwrap();
    honest.publish(status("a2", "ready"), None).await.unwrap();

    // Redis keeps the order of one connection's messages: the last honest event comes last.
    assert_eq!(next(&mut events).await, genuine);
    let last = next(&mut events).await;
    assert_eq!(last.payload, status("a2", "ready"));
    let counters = receiver.counters();
    assert_eq!(counters.bad_signature.load(Ordering::Relaxed), 3);
    assert_eq!(counters.malformed.load(Ordering::Relaxed), 1);
    for bus in [&receiver, &impostor, &unsigned, &honest] {
        bus.close();
    }
}

/// Cache invalidations travel between replicas on a channel of their own, which the live
/// event stream (agent status, system events) does not carry.
#[tokio::test]
async fn cache_invalidations_reach_other_replicas_on_their_own_channel() {
    if redis_url().is_none() {
        return;
    }
    let prefix = format!("hive-test-{}", uuid::Uuid::new_v4().simple());
    let a = EventBus::redis(redis(&prefix), "node-a", Some(SECRET));
    let b = EventBus::redis(redis(&prefix), "node-b", Some(SECRET));
    let mut invalidations = b.subscribe(Channel::CacheInvalidations);
    let mut system = b.subscribe(Channel::SystemEvents);
    let mut agents = b.subscribe(Channel::AgentStatus);
    a.ready().await;
    b.ready().await;

    let event = BusEvent::CacheInvalidate {
        topic: CacheTopic::Credentials,
    };
    let sent = a.publish(event, None).await.unwrap();
    let got = next(&mut invalidations).await;
    assert_eq!(got, sent);
    assert_eq!(got.channel, format!("{prefix}:cache:invalidate"));
    assert_eq!(
        serde_json::to_value(&got.payload).unwrap(),
        serde_json::json!({ "type": "cache.invalidate", "topic": "credentials" })
    );
    assert!(system.try_recv().is_err() && agents.try_recv().is_err());
    a.close();
    b.close();
}
