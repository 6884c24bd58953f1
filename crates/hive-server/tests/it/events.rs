//! The live event stream: bus events as SSE, each caller seeing only what it may.

use crate::support::*;
use hive_a2a::sse::Decoder;
use hive_testkit::{TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// The stream of `browser`'s user, read event by event.
pub(crate) struct Events {
    response: reqwest::Response,
    decoder: Decoder,
    pending: std::collections::VecDeque<(String, Value)>,
}

impl Events {
    pub(crate) async fn open(server: &TestServer, browser: &Browser) -> Self {
        let response = browser
            .request(server, Method::GET, "/api/v1/events")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            decoder: Decoder::new(1 << 16),
            pending: Default::default(),
        }
    }

    /// The next event's type and data.
    pub(crate) async fn next(&mut self) -> (String, Value) {
        // A guard against a hang (keep-alive comments keep the stream busy): an event that
        // never comes fails the test.
        tokio::time::timeout(Duration::from_secs(30), self.next_event())
            .await
            .expect("an event within 30 s")
    }

    async fn next_event(&mut self) -> (String, Value) {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return event;
            }
            let chunk = self
                .response
                .chunk()
                .await
                .unwrap()
                .expect("the stream stays open");
            for event in self.decoder.feed(&chunk).unwrap() {
                self.pending
                    .push_back((event.event, serde_json::from_str(&event.data).unwrap()));
            }
        }
    }
}

async fn agent(server: &TestServer, owner: &Browser, name: &str, visibility: &str) -> String {
    let agent = created_agent(server, owner, name, visibility).await;
    agent["id"].as_str().unwrap().to_owned()
}

async fn created_agent(
    server: &TestServer,
    owner: &Browser,
    name: &str,
    visibility: &str,
) -> Value {
    let created = owner
        .send(
            server,
            Method::POST,
            "/api/v1/agents",
            Some(json!({ "name": name, "kind": "conformance", "visibility": visibility })),
        )
        .await;
    assert_eq!(created.status(), 201);
    created.json().await.unwrap()
}

async fn start(server: &TestServer, owner: &Browser, id: &str) {
    let started = owner
        .send(
            server,
            Method::POST,
            &format!("/api/v1/agents/{id}/start"),
            None,
        )
        .await;
    assert_eq!(started.status(), 200);
}

#[tokio::test]
async fn each_caller_sees_the_events_of_what_it_may_see() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, olga) = add_user(&server, &admin, "olga@example.com", "operator").await;
        let (_, vic) = add_user(&server, &admin, "vic@example.com", "viewer").await;
        let private = agent(&server, &olga, "olgas", "private").await;
        let shared = agent(&server, &olga, "shared", "federation").await;
        server.hive.state.bus.ready().await;

        let mut for_olga = Events::open(&server, &olga).await;
        let mut for_vic = Events::open(&server, &vic).await;
        let mut for_admin = Events::open(&server, &admin).await;
        start(&server, &olga, &private).await;
        start(&server, &olga, &shared).await;

        // In order: the private agent's changes first (starting, then ready), which only its
        // owner and admins see, then the shared one's.
        for events in [&mut for_olga, &mut for_admin] {
            let (kind, first) = events.next().await;
            assert_eq!(kind, "agent.status");
            assert_eq!(first["agentId"], private.as_str());
            assert_eq!(first["status"], "starting");
            assert!(first["eventId"].is_string());
            let (_, second) = events.next().await;
            assert_eq!(second["agentId"], private.as_str());
            assert_eq!(second["status"], "ready");
            assert_eq!(second["previous"], "starting");
            let (_, third) = events.next().await;
            assert_eq!(third["agentId"], shared.as_str());
            let (_, fourth) = events.next().await;
            assert_eq!(fourth["status"], "ready");
        }
        let (kind, seen) = for_vic.next().await;
        assert_eq!(kind, "agent.status");
        assert_eq!(
            seen["agentId"],
            shared.as_str(),
            "the private agent is not Vic's to see"
        );

        // System events are for admins.
        server
            .hive
            .state
            .bus
            .publish(
                hive_state::BusEvent::System {
                    kind: "maintenance".into(),
                    message: "soon".into(),
                },
                None,
            )
            .await
            .unwrap();
        start(&server, &olga, &shared).await;
        let (kind, system) = for_admin.next().await;
        assert_eq!(kind, "system");
        assert_eq!(system["message"], "soon");
        // Vic's next events: the shared agent's first start ended (ready), then its second
        // start began — the system event between them was not his.
        let (_, ready) = for_vic.next().await;
        assert_eq!(ready["status"], "ready");
        let (kind, after) = for_vic.next().await;
        assert_eq!(kind, "agent.status", "Vic skipped the system event");
        assert_eq!(after["agentId"], shared.as_str());
        assert_eq!(after["status"], "starting");

        let anonymous = server.client.get("/api/v1/events").await;
        assert_eq!(anonymous.status(), 401);
    }
}

#[tokio::test]
async fn open_streams_are_capped_per_user() {
    for backend in backends() {
        let server = identity_server_with(backend, &[("A2A_STREAMS_PER_USER", "2")]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let first = Events::open(&server, &admin).await;
        let _second = Events::open(&server, &admin).await;
        let third = admin
            .send(&server, Method::GET, "/api/v1/events", None)
            .await;
        assert_eq!(third.status(), 429);
        assert!(third.headers().contains_key("retry-after"));
        // A closed stream gives its place back.
        drop(first);
        let mut reopened = None;
        for _ in 0..200 {
            let attempt = admin
                .send(&server, Method::GET, "/api/v1/events", None)
                .await;
            if attempt.status() == 200 {
                reopened = Some(attempt);
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(reopened.is_some(), "the place came back");
    }
}

/// A status event as the lifecycle announces it, or (without owner and visibility) as an
/// earlier version did.
fn status_event(agent: &Value, status: &str, routed: bool) -> hive_state::BusEvent {
    hive_state::BusEvent::AgentStatus {
        agent_id: agent["id"].as_str().unwrap().to_owned(),
        status: status.into(),
        previous: None,
        owner_id: routed.then(|| agent["ownerId"].as_str().unwrap().parse().unwrap()),
        visibility: routed.then(|| agent["visibility"].as_str().unwrap().parse().unwrap()),
    }
}

#[tokio::test]
async fn who_sees_an_event_is_decided_without_reading_the_database() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, olga) = add_user(&server, &admin, "olga@example.com", "operator").await;
        let (_, vic) = add_user(&server, &admin, "vic@example.com", "viewer").await;
        let private = created_agent(&server, &olga, "olgas", "private").await;
        let shared = created_agent(&server, &olga, "shared", "federation").await;
        server.hive.state.bus.ready().await;
        let mut for_olga = Events::open(&server, &olga).await;
        let mut for_vic = Events::open(&server, &vic).await;
        let mut for_admin = Events::open(&server, &admin).await;

        // From here on a subscriber that read the agent to decide would see nothing.
        server.hive.store.close().await;
        let bus = &server.hive.state.bus;
        for (agent, routed) in [
            (&private, true),
            (&shared, true),
            (&private, false),
            (&shared, true),
        ] {
            bus.publish(status_event(agent, "ready", routed), None)
                .await
                .unwrap();
        }

        // Olga sees her private agent and the shared one, but not the event of an earlier
        // version that does not say whose agent it is.
        let (_, first) = for_olga.next().await;
        assert_eq!(first["agentId"], private["id"]);
        assert_eq!(
            first.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["agentId", "eventId", "status", "type"],
            "owner and visibility decide who sees the event; the stream does not show them"
        );
        assert_eq!(for_olga.next().await.1["agentId"], shared["id"]);
        assert_eq!(for_olga.next().await.1["agentId"], shared["id"]);
        // Vic sees the shared agent only.
        assert_eq!(for_vic.next().await.1["agentId"], shared["id"]);
        assert_eq!(for_vic.next().await.1["agentId"], shared["id"]);
        // An admin sees everything, the earlier version's event too.
        for expected in [&private, &shared, &private, &shared] {
            assert_eq!(for_admin.next().await.1["agentId"], expected["id"]);
        }
        server.stop().await.0.unwrap();
    }
}
