//! The WAN ingress (`POST /api/v1/mesh/wan/ingress`) and the NATS JetStream carrier between two
//! real instances (with `HIVE_TEST_NATS_URL`; CI sets it).

use crate::events::Events;
use crate::support::*;
use hive_testkit::{TestBackend, TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const INGRESS: &str = "/api/v1/mesh/wan/ingress";
const ACTION: &str = "mesh.wan.ingress";
/// A safety net only: every wait below ends on an event.
const PATIENCE: Duration = Duration::from_secs(30);

fn envelope(source: &str, kind: &str) -> Value {
    json!({
        "schema": "wan-envelope-v1",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": source,
        "kind": kind,
        "issuedAt": "2026-12-02T13:45:00Z",
        "payload": { "note": kind, "nested": { "n": [1, 2, 3] } },
    })
}

/// The next WAN envelope on `events` (other events, such as replica announcements, skipped).
async fn next_envelope(events: &mut Events) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let (kind, data) = events.next().await;
            if kind == "mesh.wan.envelope" {
                return data["envelope"].clone();
            }
        }
    })
    .await
    .expect("a WAN envelope arrives")
}

async fn post(server: &TestServer, browser: &Browser, body: &Value) -> (u16, Value) {
    let response = browser
        .send(server, Method::POST, INGRESS, Some(body.clone()))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Posts `body` with the internal token.
async fn post_internal(server: &TestServer, body: &Value) -> (u16, Value) {
    let response = server
        .client
        .request(Method::POST, INGRESS)
        .bearer_auth(INTERNAL_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn ingress_validates_and_publishes_on_the_local_bus() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, vic) = add_user(&server, &admin, "vic@example.com", "viewer").await;
        let (_, olga) = add_user(&server, &admin, "olga@example.com", "operator").await;
        server.hive.state.bus.ready().await;
        let mut events = Events::open(&server, &admin).await;

        // Refused envelopes change nothing: no record, no event.
        let good = envelope(&server.origin, "test.ping");
        let mut cases: Vec<(Value, &str)> = Vec::new();
        for (field, value, message) in [
            ("schema", json!("wan-envelope-v2"), "schema must be"),
            ("id", json!("42"), "id must be a UUID"),
            (
                "source",
                json!("https://a.example/path"),
                "source must be an origin",
            ),
            ("kind", json!("Has Space"), "kind must be"),
            ("issuedAt", json!("yesterday"), "issuedAt must be"),
            ("payload", json!([1]), "payload must be a JSON object"),
        ] {
            let mut bad = good.clone();
            bad[field] = value;
            cases.push((bad, message));
        }
        let mut unknown = good.clone();
        unknown["extra"] = json!(true);
        cases.push((unknown, "unknown field"));
        let mut deep = json!({});
        for _ in 0..20 {
            deep = json!({ "d": deep });
        }
        let mut too_deep = good.clone();
        too_deep["payload"] = deep;
        cases.push((too_deep, "levels deep"));
        for (body, message) in &cases {
            let (status, answer) = post(&server, &olga, body).await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(answer["error"]["code"], "validation_failed", "{answer}");
            let text = answer["error"]["message"].as_str().unwrap();
            assert!(text.contains(message), "{text} for {body}");
        }
        assert!(records_of(&server, ACTION).await.is_empty());

        // A viewer may not; an operator may.
        let (status, _) = post(&server, &vic, &good).await;
        assert_eq!(status, 403);
        assert!(records_of(&server, ACTION).await.is_empty());
        let (status, answer) = post(&server, &olga, &good).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["id"], good["id"]);
        assert_eq!(answer["published"], json!({ "bus": true, "nats": false }));
        assert_eq!(
            next_envelope(&mut events).await,
            good,
            "the first event is the accepted one: nothing refused was published"
        );
        let records = records_of(&server, ACTION).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].target.as_deref(), good["id"].as_str());

        // The internal token authenticates as an operator. The same envelope again is recorded
        // but not published twice.
        let (status, answer) = post_internal(&server, &good).await;
        assert_eq!(status, 202);
        assert_eq!(answer["published"]["bus"], false, "{answer}");
        let other = envelope(&server.origin, "test.other");
        let (status, _) = post_internal(&server, &other).await;
        assert_eq!(status, 202);
        assert_eq!(
            next_envelope(&mut events).await,
            other,
            "the repeat was not"
        );
        let records = records_of(&server, ACTION).await;
        assert_eq!(records.len(), 3);
        assert_eq!(records[2].actor, "internal");

        let anonymous = server.client.post_json(INGRESS, &good).await;
        assert_eq!(anonymous.status(), 401);
    }
}

/// Posts a new envelope from `server` (as its admin) and answers it with the ingress's answer.
pub(crate) async fn emit(server: &TestServer, admin: &Browser, kind: &str) -> (Value, Value) {
    let envelope = envelope(&server.origin, kind);
    let (status, answer) = post(server, admin, &envelope).await;
    assert_eq!(status, 202, "{answer}");
    (envelope, answer)
}

pub(crate) async fn instance(backend: TestBackend, url: &str, name: &str) -> (TestServer, Browser) {
    let subject = format!("{name}.envelopes");
    let vars = [
        ("NATS_URL", url),
        ("MESH_WAN_NATS_STREAM", name),
        ("MESH_WAN_NATS_SUBJECT", subject.as_str()),
    ];
    let server = identity_server_with(backend, &vars).await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    server.hive.state.bus.ready().await;
    (server, admin)
}

#[tokio::test]
async fn nats_an_envelope_published_on_a_arrives_once_on_b() {
    let Some(url) = hive_testkit::nats_url() else {
        return;
    };
    for backend in backends() {
        let name = format!("hive_test_{}", uuid::Uuid::new_v4().simple());
        let (a, admin_a) = instance(backend, &url, &name).await;
        let (b, admin_b) = instance(backend, &url, &name).await;
        assert_ne!(a.origin, b.origin);
        let mut on_a = Events::open(&a, &admin_a).await;
        let mut on_b = Events::open(&b, &admin_b).await;

        let (first, answer) = emit(&a, &admin_a, "test.first").await;
        assert_eq!(answer["published"], json!({ "bus": true, "nats": true }));
        assert_eq!(next_envelope(&mut on_a).await, first);
        assert_eq!(next_envelope(&mut on_b).await, first, "carried to B");

        // Exactly once on B: the next envelope B sees is the second one.
        let (second, _) = emit(&a, &admin_a, "test.second").await;
        assert_eq!(
            next_envelope(&mut on_b).await,
            second,
            "the first arrived once"
        );
        assert_eq!(next_envelope(&mut on_a).await, second);

        // A's consumer took both back from the stream as its own and dropped them; the next
        // envelope A sees is one B emits.
        let mut counts = a.hive.wan.carrier().unwrap().counts();
        tokio::time::timeout(PATIENCE, counts.wait_for(|c| c.own >= 2))
            .await
            .expect("A's consumer reads its own envelopes back")
            .unwrap();
        let (from_b, _) = emit(&b, &admin_b, "test.from-b").await;
        assert_eq!(
            next_envelope(&mut on_a).await,
            from_b,
            "A did not re-publish its own"
        );
        assert_eq!(next_envelope(&mut on_b).await, from_b);
        assert_eq!(records_of(&a, ACTION).await.len(), 2);
        assert_eq!(records_of(&b, ACTION).await.len(), 1);

        a.hive.wan.carrier().unwrap().delete_stream().await.unwrap();
    }
}

#[tokio::test]
async fn nats_down_answers_503_with_retry_after() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let (server, admin) = instance(TestBackend::Sqlite, &url, "hive_test_down").await;
    let response = admin
        .send(
            &server,
            Method::POST,
            INGRESS,
            Some(envelope(&server.origin, "test.down")),
        )
        .await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let records = records_of(&server, ACTION).await;
    let outcomes: Vec<_> = records.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            hive_store::AuditOutcome::Success,
            hive_store::AuditOutcome::Failure
        ],
        "accepted, then not carried"
    );
}
