use hive_proto::HealthResponse;
use hive_testkit::{TestServer, backends};

#[tokio::test]
async fn health_answers_ok_on_every_backend() {
    for backend in backends() {
        let server = TestServer::start(backend).await;
        let (status, body) = server.client.health().await;
        assert_eq!(
            (status, body),
            (200, HealthResponse { ok: true }),
            "{backend:?}"
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn deep_health_reports_a_database_that_is_down_without_saying_why() {
    for backend in backends() {
        let server = TestServer::builder(backend)
            .var("HEALTH_CHECK_DEEP", "true")
            .start()
            .await;
        assert_eq!(server.client.health().await.0, 200, "{backend:?}");

        server.hive.store.close().await;
        let response = server.client.get("/api/health").await;
        assert_eq!(response.status(), 503, "{backend:?}");
        assert_eq!(response.headers()["retry-after"], "5");
        assert_eq!(response.text().await.unwrap(), r#"{"ok":false}"#);
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn shallow_health_does_not_touch_the_database() {
    let server = TestServer::start(hive_testkit::TestBackend::Sqlite).await;
    server.hive.store.close().await;
    assert_eq!(
        server.client.health().await,
        (200, HealthResponse { ok: true })
    );
    server.stop().await.0.unwrap();
}
