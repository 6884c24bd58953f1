use axum::Router;
use axum::routing::get;
use hive_testkit::{TestBackend, TestServer};
use std::sync::Arc;
use tokio::sync::Notify;

#[tokio::test]
async fn shutdown_drains_an_in_flight_request_then_returns_ok() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (entered_in, release_in) = (entered.clone(), release.clone());
    let server = TestServer::builder(TestBackend::Sqlite)
        .routes(Router::new().route(
            "/test/slow",
            get(move || async move {
                entered_in.notify_one();
                release_in.notified().await;
                "finished"
            }),
        ))
        .start()
        .await;

    let client = server.client.clone();
    let in_flight = tokio::spawn(async move { client.get("/test/slow").await });
    entered.notified().await;

    server.begin_shutdown();
    // New connections are no longer accepted once shutdown has begun.
    let refused = async {
        loop {
            let fresh = hive_testkit::TestClient::new(&server.base_url);
            if fresh
                .request(reqwest::Method::GET, "/api/health")
                .send()
                .await
                .is_err()
            {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), refused)
        .await
        .expect("the listener closes after shutdown begins");

    release.notify_one();
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    let (served, _) = server.stop().await;
    served.expect("serving ends cleanly after the drain");
}
