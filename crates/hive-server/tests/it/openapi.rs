//! The OpenAPI document as a client gets it (its completeness is a unit test of the route
//! table's module; the fuzzer, scripts/api-fuzz, checks the server against it).

use hive_testkit::{TestBackend, TestServer};
use serde_json::Value;

#[tokio::test]
async fn the_openapi_document_is_served_to_anyone_as_generated() {
    let server = TestServer::start(TestBackend::Sqlite).await;
    let response = server.client.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = response.json().await.unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    let generated = serde_json::to_value(hive_server::openapi::document(false)).unwrap();
    assert_eq!(served, generated);
    // The rule the server enforces, as the document tells it.
    let list_users = &served["paths"]["/api/v1/users"]["get"];
    assert_eq!(list_users["x-hive-access"], "admin");
    assert_eq!(list_users["x-hive-scope"], "admin");
    let cookie = &served["components"]["securitySchemes"]["sessionCookie"];
    assert_eq!(cookie["name"], "hive_session");
    assert!(served["paths"]["/api/v1/auth/login"]["post"]["security"].is_null());
    server.stop().await.0.unwrap();
}
