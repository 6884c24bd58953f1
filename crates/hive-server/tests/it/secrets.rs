//! The secrets API over real HTTP: values go in and never come out.

use crate::support::*;
use hive_testkit::{TestServer, backends, error_body};
use reqwest::Method;
use serde_json::{Value, json};

const VALUE: &str = "sk-live-Zq8vN3kW1xR7tY5uB2mC9pL4";

async fn create(
    server: &TestServer,
    browser: &Browser,
    name: &str,
    value: &str,
) -> reqwest::Response {
    hive_testkit::capture::canary(value);
    browser
        .send(
            server,
            Method::POST,
            "/api/v1/secrets",
            Some(json!({ "name": name, "description": "for tests", "value": value })),
        )
        .await
}

#[tokio::test]
async fn secrets_are_sealed_versioned_and_never_shown() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
        let (_, bob) = add_user(&server, &admin, "bob@example.com", "operator").await;

        let created = create(&server, &alice, "openai", VALUE).await;
        assert_eq!(created.status(), 201);
        let text = created.text().await.unwrap();
        assert!(!text.contains(VALUE), "{text}");
        let secret: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (secret["hasValue"].as_bool(), secret["version"].as_i64()),
            (Some(true), Some(1))
        );
        let path = format!("/api/v1/secrets/{}", secret["id"].as_str().unwrap());

        assert_eq!(
            create(&server, &alice, "openai", "other").await.status(),
            409,
            "one name per owner"
        );
        assert_eq!(
            create(&server, &bob, "openai", "bobs").await.status(),
            201,
            "names are per owner"
        );
        let bad = create(&server, &alice, "bad name!", "x").await;
        assert_eq!(bad.status(), 400);
        assert_eq!(create(&server, &alice, "empty", "").await.status(), 400);

        // Owners see their own; others' answer 404; an admin sees all.
        let listed = alice
            .send(&server, Method::GET, "/api/v1/secrets", None)
            .await
            .text()
            .await
            .unwrap();
        assert!(!listed.contains(VALUE));
        assert_eq!(
            serde_json::from_str::<Value>(&listed).unwrap()["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            bob.send(&server, Method::GET, &path, None).await.status(),
            404
        );
        assert_eq!(
            bob.send(&server, Method::DELETE, &path, None)
                .await
                .status(),
            404
        );
        let all: Value = admin
            .send(&server, Method::GET, "/api/v1/secrets", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(all["items"].as_array().unwrap().len(), 2);

        // A new value is a new version; a description change too.
        let new_value = "sk-live-second-value-0123456789";
        let updated: Value = alice
            .send(
                &server,
                Method::PATCH,
                &path,
                Some(json!({ "value": new_value })),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(updated["version"], 2);
        let described: Value = alice
            .send(
                &server,
                Method::PATCH,
                &path,
                Some(json!({ "description": "renamed" })),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (
                described["version"].as_i64(),
                described["description"].as_str()
            ),
            (Some(3), Some("renamed"))
        );

        // At rest: sealed, bound to its row and version; the service can still read it.
        let id = uuid::Uuid::parse_str(secret["id"].as_str().unwrap()).unwrap();
        let row = server
            .hive
            .store
            .secrets()
            .get(id, None)
            .await
            .unwrap()
            .unwrap();
        assert!(!row.value.contains(new_value) && row.value.starts_with("v1."));
        let revealed = server.hive.secrets_service.reveal(&row).await.unwrap();
        assert_eq!(revealed.as_slice(), new_value.as_bytes());
        let older = hive_store::SecretRow {
            version: 2,
            ..row.clone()
        };
        assert!(
            server.hive.secrets_service.reveal(&older).await.is_err(),
            "bound to its version"
        );
        let bobs_row = server
            .hive
            .store
            .secrets()
            .list(None, &hive_store::PageRequest::first(10).unwrap())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|s| s.id != id)
            .unwrap();
        let moved = hive_store::SecretRow {
            value: row.value.clone(),
            version: bobs_row.version,
            ..bobs_row
        };
        assert!(
            server.hive.secrets_service.reveal(&moved).await.is_err(),
            "bound to its row"
        );

        // No value in any audit record.
        let page = hive_store::PageRequest::first(100).unwrap();
        let records = server
            .hive
            .store
            .audit()
            .list(&hive_store::AuditFilter::all(), &page)
            .await
            .unwrap()
            .items;
        let secret_records = records
            .iter()
            .filter(|r| r.action.starts_with("secret."))
            .count();
        assert_eq!(
            secret_records, 4,
            "two creations and two updates; refusals change nothing"
        );
        for record in &records {
            assert!(!record.detail.contains(VALUE) && !record.detail.contains(new_value));
        }

        assert_eq!(
            alice
                .send(&server, Method::DELETE, &path, None)
                .await
                .status(),
            204
        );
        assert_eq!(
            alice.send(&server, Method::GET, &path, None).await.status(),
            404
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn the_secrets_limit_counts_each_account_apart() {
    let server = identity_server_with(
        hive_testkit::TestBackend::Sqlite,
        &[(
            "HIVE_RATE_LIMITS",
            "login=10000/1m,register=10000/1m,setup=10000/1m,secrets=3/1h",
        )],
    )
    .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let (_, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
    let (_, bob) = add_user(&server, &admin, "bob@example.com", "operator").await;
    for _ in 0..3 {
        assert_eq!(
            alice
                .send(&server, Method::GET, "/api/v1/secrets", None)
                .await
                .status(),
            200
        );
    }
    let limited = alice
        .send(&server, Method::GET, "/api/v1/secrets", None)
        .await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(error_body(limited).await.error.code, "rate_limited");
    // Same address, another account: its own quota.
    assert_eq!(
        bob.send(&server, Method::GET, "/api/v1/secrets", None)
            .await
            .status(),
        200
    );
    server.stop().await.0.unwrap();
}
