//! `GET /api/v1/system/health`: each component's state over real HTTP, on SQLite and on
//! PostgreSQL with Redis; 503 when a required component is down, with nothing of its internals.

use crate::support::{
    ADMIN_EMAIL, PASSWORD, add_user, create_token, identity_server_with, login, setup_admin,
    with_bearer,
};
use hive_proto::{Component, ComponentState, HealthReason, SystemHealth};
use hive_testkit::{TestBackend, TestServer, backends};
use reqwest::Method;
use serde_json::json;

const PATH: &str = "/api/v1/system/health";

/// Disk thresholds no test machine trips (the disk tests set their own).
const ROOMY_DISK: [(&str, &str); 2] = [
    ("HIVE_HEALTH_DISK_DEGRADED_MB", "0"),
    ("HIVE_HEALTH_DISK_DOWN_MB", "0"),
];

/// A server with an admin, and an API token of a viewer's.
async fn server_with_viewer(backend: TestBackend, vars: &[(&str, &str)]) -> (TestServer, String) {
    let server = identity_server_with(backend, vars).await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let (_, viewer) = add_user(&server, &admin, "viewer@example.com", "viewer").await;
    let token = create_token(&server, &viewer, json!({ "name": "health" })).await;
    let token = token["token"].as_str().unwrap().to_owned();
    (server, token)
}

/// The answer's status, its raw body, and the body read as a report.
async fn fetch_report(server: &TestServer, token: &str) -> (u16, String, SystemHealth) {
    let response = with_bearer(server, token, Method::GET, PATH).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let report = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, text, report)
}

fn state_of(report: &SystemHealth, name: Component) -> (ComponentState, Option<HealthReason>) {
    let component = report
        .component(name)
        .unwrap_or_else(|| panic!("{name:?} missing from {report:?}"));
    (component.state, component.reason)
}

#[tokio::test]
async fn a_healthy_instance_reports_each_component_to_a_viewer() {
    for backend in backends() {
        let (server, token) = server_with_viewer(backend, &ROOMY_DISK).await;
        let (status, _, report) = fetch_report(&server, &token).await;
        assert_eq!(status, 200, "{backend:?}: {report:?}");
        assert_ne!(report.state, ComponentState::Down);
        assert_eq!(report.node, server.hive.node_id);

        let database = report.component(Component::Database).unwrap();
        assert!(database.required);
        assert_eq!(
            (database.state, database.reason),
            (ComponentState::Ok, None)
        );
        let disk = report.component(Component::Disk).unwrap();
        assert_eq!(disk.state, ComponentState::Ok, "{backend:?}");
        let space = disk.disk.unwrap();
        assert!(space.total_bytes > 0 && space.free_bytes <= space.total_bytes);
        // Jobs run on this replica: it leads (the only one), or is about to.
        let jobs = report.component(Component::Jobs).unwrap();
        assert!(!jobs.required);
        assert_eq!(jobs.state, ComponentState::Ok, "{jobs:?}");
        assert!(jobs.jobs.is_some());
        assert!(report.component(Component::Sandbox).is_some());
        // NATS only when configured.
        assert!(report.component(Component::Nats).is_none());
        match backend {
            TestBackend::Sqlite => assert!(report.component(Component::Redis).is_none()),
            TestBackend::Postgres => {
                let redis = report
                    .component(Component::Redis)
                    .expect("Redis is checked");
                assert!(redis.required);
                assert_eq!((redis.state, redis.reason), (ComponentState::Ok, None));
            }
        }
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn anonymous_callers_are_refused() {
    let server = TestServer::start(TestBackend::Sqlite).await;
    let response = server.client.get(PATH).await;
    assert_eq!(response.status(), 401);
    server.stop().await.0.unwrap();
}

/// A Redis that does not answer (a closed loopback port) is down, and Hive with it: 503, with
/// a reason code and nothing of the URL, its password or the driver's error.
#[tokio::test]
async fn redis_down_answers_503_without_its_internals() {
    let (server, token) = server_with_viewer(TestBackend::Sqlite, &ROOMY_DISK).await;
    let (_, environment) = server.stop().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let password = "redis-password-canary";
    hive_testkit::capture::canary(password);
    let url = format!("redis://:{password}@127.0.0.1:{port}/0");
    let mut vars: Vec<(String, String)> = ROOMY_DISK
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    vars.push(("REDIS_URL".to_owned(), url));
    let server = TestServer::start_in(environment, vars, Default::default()).await;

    let (status, text, report) = fetch_report(&server, &token).await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(report.state, ComponentState::Down);
    let (state, reason) = state_of(&report, Component::Redis);
    assert_eq!(state, ComponentState::Down);
    assert!(
        matches!(
            reason,
            Some(HealthReason::Unreachable | HealthReason::TimedOut)
        ),
        "{reason:?}"
    );
    assert_eq!(state_of(&report, Component::Database).0, ComponentState::Ok);
    for internal in [password, &port, "127.0.0.1", "redis://", "refused", "error"] {
        assert!(!text.contains(internal), "{internal:?} in {text}");
    }
    server.stop().await.0.unwrap();
}

/// The database closed under a running server: 503, the database down, nothing of why.
#[tokio::test]
async fn a_closed_database_answers_503_without_its_internals() {
    for backend in backends() {
        let (server, token) = server_with_viewer(backend, &ROOMY_DISK).await;
        // The token passed once: this replica keeps it for a second of the (manual) clock.
        assert_eq!(fetch_report(&server, &token).await.0, 200);
        server.hive.store.close().await;

        let (status, text, report) = fetch_report(&server, &token).await;
        assert_eq!(status, 503, "{backend:?}: {text}");
        assert_eq!(report.state, ComponentState::Down);
        assert_eq!(
            state_of(&report, Component::Database),
            (ComponentState::Down, Some(HealthReason::Unreachable))
        );
        for internal in ["postgres", "sqlite", "pool", "closed", "error", "hive.db"] {
            assert!(
                !text.to_lowercase().contains(internal),
                "{internal:?} in {text}"
            );
        }
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn the_disk_is_judged_by_its_thresholds() {
    // Every disk has less than 16 TiB free.
    let all = "16777216";
    let (server, token) = server_with_viewer(
        TestBackend::Sqlite,
        &[
            ("HIVE_HEALTH_DISK_DEGRADED_MB", all),
            ("HIVE_HEALTH_DISK_DOWN_MB", "0"),
        ],
    )
    .await;
    let (status, _, report) = fetch_report(&server, &token).await;
    assert_eq!(status, 200);
    assert_eq!(report.state, ComponentState::Degraded);
    assert_eq!(
        state_of(&report, Component::Disk),
        (ComponentState::Degraded, Some(HealthReason::LowSpace))
    );
    let disk = report.component(Component::Disk).unwrap().disk.unwrap();
    assert_eq!(disk.degraded_below_bytes, 16 * 1024 * 1024 * 1024 * 1024);
    assert!(disk.free_bytes < disk.degraded_below_bytes);
    server.stop().await.0.unwrap();

    let (server, token) = server_with_viewer(
        TestBackend::Sqlite,
        &[
            ("HIVE_HEALTH_DISK_DEGRADED_MB", all),
            ("HIVE_HEALTH_DISK_DOWN_MB", all),
        ],
    )
    .await;
    let (status, _, report) = fetch_report(&server, &token).await;
    assert_eq!(status, 503);
    assert_eq!(report.state, ComponentState::Down);
    assert_eq!(
        state_of(&report, Component::Disk),
        (ComponentState::Down, Some(HealthReason::OutOfSpace))
    );
    server.stop().await.0.unwrap();
}

/// NATS is checked when configured, and is never required: down, it only degrades the whole.
#[tokio::test]
async fn nats_is_checked_when_configured_and_never_required() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let url = format!("nats://127.0.0.1:{port}");
    let mut vars = ROOMY_DISK.to_vec();
    vars.push(("NATS_URL", url.as_str()));
    let (server, token) = server_with_viewer(TestBackend::Sqlite, &vars).await;
    let (status, text, report) = fetch_report(&server, &token).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(report.state, ComponentState::Degraded);
    let nats = report.component(Component::Nats).unwrap();
    assert!(!nats.required);
    assert_eq!(
        (nats.state, nats.reason),
        (ComponentState::Degraded, Some(HealthReason::Unreachable))
    );
    assert!(!text.contains(&port) && !text.contains("nats://"), "{text}");
    server.stop().await.0.unwrap();

    // A NATS that answers (CI has one): once an envelope went through, it is ok.
    let Some(url) = hive_testkit::nats_url() else {
        return;
    };
    let name = format!("hive_test_{}", uuid::Uuid::new_v4().simple());
    let (server, admin) = crate::wan::instance(TestBackend::Sqlite, &url, &name).await;
    crate::wan::emit(&server, &admin, "test.health").await;
    let token = create_token(&server, &admin, json!({ "name": "health" })).await;
    let (_, _, report) = fetch_report(&server, token["token"].as_str().unwrap()).await;
    assert_eq!(
        state_of(&report, Component::Nats),
        (ComponentState::Ok, None)
    );
    server
        .hive
        .wan
        .carrier()
        .unwrap()
        .delete_stream()
        .await
        .unwrap();
    server.stop().await.0.unwrap();
}
