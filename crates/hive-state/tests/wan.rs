//! The WAN carrier against the real NATS JetStream of `HIVE_TEST_NATS_URL` (skipped without it;
//! CI sets it). Each test has a stream, subject and consumer of its own, deleted at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_proto::wan::{SCHEMA, WanEnvelope};
use hive_proto::{ManualClock, SharedClock};
use hive_state::test_support::test_nats;
use hive_state::{CarrierCounts, CarrierSettings, MemoryReplayCache, ReplayCache, WanCarrier};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const LOCAL: &str = "http://127.0.0.1:7001";
const REMOTE: &str = "http://127.0.0.1:7002";
/// A safety net only: every wait below ends on an event.
const PATIENCE: Duration = Duration::from_secs(30);

fn envelope(source: &str, kind: &str) -> WanEnvelope {
    WanEnvelope {
        schema: SCHEMA.into(),
        id: uuid::Uuid::new_v4().to_string(),
        source: source.into(),
        target: None,
        kind: kind.into(),
        issued_at: "2026-12-02T13:45:00Z".into(),
        payload: serde_json::json!({ "kind": kind }),
    }
}

fn replay() -> Arc<dyn ReplayCache> {
    let clock: SharedClock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    Arc::new(MemoryReplayCache::new(clock, 10_000))
}

fn settings(url: &str, name: &str) -> CarrierSettings {
    let mut settings = CarrierSettings::new(
        url.to_owned(),
        name.to_owned(),
        format!("{name}.envelopes"),
        format!("{name}_consumer"),
        Duration::from_secs(120),
        LOCAL.to_owned(),
    );
    // Redelivery of an unacked message comes this soon (the test waits for it, not a timer).
    settings.ack_wait = Duration::from_secs(1);
    settings
}

async fn carrier(url: &str, name: &str, replay: Arc<dyn ReplayCache>) -> WanCarrier {
    WanCarrier::connect(settings(url, name), replay)
        .await
        .unwrap()
}

/// Stops the consumer loop and deletes the test's stream.
async fn finish(
    carrier: &WanCarrier,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
) {
    cancel.cancel();
    task.await.unwrap();
    carrier.delete_stream().await.unwrap();
}

/// Runs the consumer loop, handing every envelope to the returned channel.
fn consume(
    carrier: &Arc<WanCarrier>,
    cancel: &CancellationToken,
) -> (
    mpsc::UnboundedReceiver<WanEnvelope>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(Arc::clone(carrier).run(
        move |envelope| {
            let tx = tx.clone();
            async move { tx.send(envelope).map_err(|_| "closed".to_owned()) }
        },
        cancel.clone(),
    ));
    (rx, task)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<WanEnvelope>) -> WanEnvelope {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("an envelope arrives")
        .unwrap()
}

async fn counts_reach(
    carrier: &WanCarrier,
    done: impl Fn(&CarrierCounts) -> bool,
) -> CarrierCounts {
    let mut counts = carrier.counts();
    let seen = tokio::time::timeout(PATIENCE, counts.wait_for(|c| done(c)))
        .await
        .expect("the consumer gets there")
        .unwrap();
    *seen
}

#[tokio::test]
async fn published_envelopes_arrive_once_and_own_ones_are_dropped() {
    let Some((url, name)) = test_nats() else {
        return;
    };
    let carrier = Arc::new(carrier(&url, &name, replay()).await);
    let cancel = CancellationToken::new();
    let (mut rx, task) = consume(&carrier, &cancel);

    let own = envelope(LOCAL, "own");
    let first = envelope(REMOTE, "first");
    let second = envelope(REMOTE, "second");
    for e in [&own, &first, &second] {
        let published = carrier.publish(e).await.unwrap();
        assert!(!published.duplicate);
    }
    assert_eq!(
        next(&mut rx).await,
        first,
        "its own envelope is not handed on"
    );
    assert_eq!(next(&mut rx).await, second, "the first arrived once");
    let counts = counts_reach(&carrier, |c| c.delivered == 2).await;
    assert_eq!(counts.own, 1);
    assert_eq!(counts.duplicates, 0);

    finish(&carrier, cancel, task).await;
}

#[tokio::test]
async fn the_same_id_published_twice_is_stored_once() {
    let Some((url, name)) = test_nats() else {
        return;
    };
    let carrier = carrier(&url, &name, replay()).await;
    let once = envelope(REMOTE, "once");
    assert!(!carrier.publish(&once).await.unwrap().duplicate);
    assert!(
        carrier.publish(&once).await.unwrap().duplicate,
        "the stream knew the id"
    );
    let carrier = Arc::new(carrier);
    let cancel = CancellationToken::new();
    let (mut rx, task) = consume(&carrier, &cancel);
    let after = envelope(REMOTE, "after");
    carrier.publish(&after).await.unwrap();
    assert_eq!(next(&mut rx).await, once);
    assert_eq!(next(&mut rx).await, after, "one copy was stored");
    let counts = counts_reach(&carrier, |c| c.delivered == 2).await;
    assert_eq!(counts.received, 2);

    finish(&carrier, cancel, task).await;
}

#[tokio::test]
async fn an_unacked_envelope_comes_again_and_is_handed_on_once() {
    let Some((url, name)) = test_nats() else {
        return;
    };
    let replay = replay();
    let carrier = Arc::new(carrier(&url, &name, Arc::clone(&replay)).await);
    // A replica that hands the envelope on and dies before its ack.
    let (tx, mut handed) = mpsc::unbounded_channel();
    let crashing = tokio::spawn(Arc::clone(&carrier).run(
        move |envelope| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(envelope);
                std::future::pending::<()>().await;
                Ok(())
            }
        },
        CancellationToken::new(),
    ));
    let lost_ack = envelope(REMOTE, "lost-ack");
    carrier.publish(&lost_ack).await.unwrap();
    assert_eq!(next(&mut handed).await, lost_ack);
    crashing.abort();
    let _ = crashing.await;

    // Another replica of the same instance (same consumer, same replay cache) takes over: the
    // message comes again, unacked, and is acked without being handed on twice.
    let cancel = CancellationToken::new();
    let (mut rx, task) = consume(&carrier, &cancel);
    let counts = counts_reach(&carrier, |c| c.duplicates == 1).await;
    assert!(counts.redelivered >= 1, "{counts:?}");
    let next_one = envelope(REMOTE, "next");
    carrier.publish(&next_one).await.unwrap();
    assert_eq!(
        next(&mut rx).await,
        next_one,
        "the redelivery was not handed on"
    );

    finish(&carrier, cancel, task).await;
}

#[tokio::test]
async fn invalid_envelopes_are_not_published() {
    let Some((url, name)) = test_nats() else {
        return;
    };
    let carrier = carrier(&url, &name, replay()).await;
    let mut bad = envelope(REMOTE, "bad");
    bad.schema = "wan-envelope-v0".into();
    let error = carrier.publish(&bad).await.unwrap_err();
    assert!(error.to_string().contains("schema"), "{error}");
}

#[tokio::test]
async fn a_publish_without_nats_fails_instead_of_hanging() {
    // Nothing listens on this port: no ack, so the publish fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://user:pa55word@127.0.0.1:{port}");
    let carrier = carrier(&url, "hive_test_down", replay()).await;
    let error = carrier
        .publish(&envelope(REMOTE, "nowhere"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, hive_state::StateError::Unavailable(_)),
        "{error}"
    );
    assert!(!error.to_string().contains("pa55word"), "{error}");
    assert!(!format!("{carrier:?}").contains("pa55word"));
}
