//! The security settings over HTTP: the admin's egress allowlist is validated, stored with a
//! version, audited, applied to the egress guard at once, and followed by other replicas.

use crate::support::*;
use hive_egress::Decision;
use hive_testkit::{TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};

const PATH: &str = "/api/v1/settings/security";
const PRIVATE: &str = "http://10.9.8.7:8443/v1/models";

async fn allowed(server: &TestServer, url: &str) -> bool {
    matches!(
        server.hive.egress.check(url).await,
        Decision::Allowed { .. }
    )
}

#[tokio::test]
async fn the_admin_allowlist_is_validated_versioned_audited_and_applied() {
    for backend in backends() {
        let server = identity_server_with(
            backend,
            &[("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", "*.corp.example")],
        )
        .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;

        let first: Value = admin
            .send(&server, Method::GET, PATH, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            first,
            json!({
                "egressHostAllowlist": [],
                "operatorEgressHostAllowlist": ["*.corp.example"],
                "version": null
            })
        );
        assert!(
            !allowed(&server, PRIVATE).await,
            "refused before the change"
        );

        // Bad entries are refused by position, and change nothing.
        for bad in [
            json!(["ok.example", "x.example:0"]),
            json!(["http://a.example/"]),
        ] {
            let body = json!({ "egressHostAllowlist": bad });
            let refused = admin.send(&server, Method::PUT, PATH, Some(body)).await;
            assert_eq!(refused.status(), 400, "{bad}");
            let error: Value = refused.json().await.unwrap();
            let message = error["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with("egressHostAllowlist entry"),
                "{message}"
            );
        }
        let unknown = json!({ "egressHostAllowlist": [], "extra": 1 });
        assert_eq!(
            admin
                .send(&server, Method::PUT, PATH, Some(unknown))
                .await
                .status(),
            400
        );

        let body = json!({ "egressHostAllowlist": ["10.9.8.7:8443", "API.Models.Example"] });
        let changed = admin.send(&server, Method::PUT, PATH, Some(body)).await;
        assert_eq!(changed.status(), 200);
        let changed: Value = changed.json().await.unwrap();
        assert_eq!(changed["version"], 1);
        assert_eq!(
            changed["egressHostAllowlist"],
            json!(["10.9.8.7:8443", "api.models.example"]),
            "stored as it applies"
        );
        assert!(allowed(&server, PRIVATE).await, "applied at once");
        assert!(
            !allowed(&server, "http://10.9.8.7:9000/").await,
            "only that port"
        );

        // A list edited into something invalid behind Hive's back is dropped, not kept.
        server
            .execute_sql(
                "UPDATE settings SET value = '{\"egressHostAllowlist\":[\"x.example:0\"]}' \
                 WHERE name = 'security'",
            )
            .await;
        assert!(server.hive.settings.reload().await.is_err());
        assert!(
            !allowed(&server, PRIVATE).await,
            "only the operator's list applies"
        );
        let shown: Value = admin
            .send(&server, Method::GET, PATH, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(shown["egressHostAllowlist"], json!([]), "{shown}");
        // The stored version is kept: the next change names it and repairs the list.
        let repair = json!({ "egressHostAllowlist": ["10.9.8.7:8443"], "version": 1 });
        assert_eq!(
            admin
                .send(&server, Method::PUT, PATH, Some(repair))
                .await
                .status(),
            200
        );
        assert!(allowed(&server, PRIVATE).await);

        // A writer holding the old version loses.
        let stale = json!({ "egressHostAllowlist": [], "version": null });
        let lost = admin.send(&server, Method::PUT, PATH, Some(stale)).await;
        assert_eq!(lost.status(), 409, "{backend:?}");
        assert!(
            allowed(&server, PRIVATE).await,
            "the stale write changed nothing"
        );
        let cleared = json!({ "egressHostAllowlist": [], "version": 2 });
        let cleared = admin.send(&server, Method::PUT, PATH, Some(cleared)).await;
        assert_eq!(cleared.status(), 200);
        assert!(!allowed(&server, PRIVATE).await, "removed again");

        let records: Vec<_> = records_of(&server, "settings.update").await;
        assert_eq!(records.len(), 3, "one record per change that went through");
        assert!(records[0].detail.contains("10.9.8.7:8443"));
    }
}

#[tokio::test]
async fn a_change_on_one_replica_applies_on_the_other() {
    if !replicas_possible() {
        return;
    }
    let (a, b) = two_replicas().await;
    b.hive.state.bus.ready().await;

    setup_admin(&a).await;
    let admin = login(&a, ADMIN_EMAIL, PASSWORD).await;
    assert!(!allowed(&b, PRIVATE).await);
    let body = json!({ "egressHostAllowlist": ["10.9.8.7:8443"] });
    assert_eq!(
        admin.send(&a, Method::PUT, PATH, Some(body)).await.status(),
        200
    );

    // The announcement makes B reload at once; the deadline is the promise (15 s).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while !allowed(&b, PRIVATE).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B did not follow within 15 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(b.hive.settings.security().version, Some(1));
}
