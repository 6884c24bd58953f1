//! The audit trail over HTTP: filters, pages, bad filters, the JSON-lines export and
//! retention, on every backend.

use crate::support::*;
use hive_core::kernel::jobs::{Job, JobContext, PruneAuditLog};
use hive_proto::auth::AuditExportLine;
use hive_store::GENESIS_HASH;
use hive_testkit::{TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// `?name=value&…`, every byte outside the unreserved set percent-encoded.
fn query_string(query: &[(&str, &str)]) -> String {
    fn encode(raw: &str) -> String {
        raw.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    let pairs: Vec<String> = query
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

async fn get(
    server: &TestServer,
    admin: &Browser,
    path: &str,
    query: &[(&str, &str)],
) -> reqwest::Response {
    admin
        .send(
            server,
            Method::GET,
            &format!("{path}{}", query_string(query)),
            None,
        )
        .await
}

/// Every record the filter finds, following the cursors `limit` at a time.
async fn every_page(
    server: &TestServer,
    admin: &Browser,
    query: &[(&str, &str)],
    limit: u32,
) -> Vec<Value> {
    let limit = limit.to_string();
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut full: Vec<(&str, &str)> = query.to_vec();
        full.push(("limit", &limit));
        if let Some(cursor) = &cursor {
            full.push(("cursor", cursor));
        }
        let response = get(server, admin, "/api/v1/audit", &full).await;
        assert_eq!(response.status(), 200, "{query:?}");
        let page: Value = response.json().await.unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

async fn export(
    server: &TestServer,
    admin: &Browser,
    query: &[(&str, &str)],
) -> Vec<AuditExportLine> {
    let response = get(server, admin, "/api/v1/audit/export", query).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let body = response.text().await.unwrap();
    assert!(body.ends_with('\n'));
    body.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Makes records of several kinds: secrets (targets `secret:<id>`), unknown-account logins
/// (failures), a viewer refused (denied), an hour apart from the setup.
async fn varied_trail(server: &TestServer) -> (Browser, String, String) {
    setup_admin(server).await;
    let admin = login(server, ADMIN_EMAIL, PASSWORD).await;
    let me: Value = admin.me(server).await.json().await.unwrap();
    let admin_actor = format!("user:{}", me["user"]["id"].as_str().unwrap());
    let (_, viewer) = add_user(server, &admin, "viewer@example.com", "viewer").await;
    let refused = viewer
        .send(server, Method::GET, "/api/v1/users", None)
        .await;
    assert_eq!(refused.status(), 403);
    // An hour on, the sessions have idled out: sign in again.
    server.clock.advance(time::Duration::hours(1));
    let admin = login(server, ADMIN_EMAIL, PASSWORD).await;
    let secret: Value = admin
        .send(
            server,
            Method::POST,
            "/api/v1/secrets",
            Some(json!({ "name": "one", "value": "s3cr3t-value" })),
        )
        .await
        .json()
        .await
        .unwrap();
    admin
        .send(
            server,
            Method::POST,
            "/api/v1/secrets",
            Some(json!({ "name": "two", "value": "s3cr3t-value" })),
        )
        .await;
    for _ in 0..3 {
        assert_eq!(
            try_login(server, "nobody@example.com", PASSWORD)
                .await
                .status(),
            401
        );
    }
    let secret_target = format!("secret:{}", secret["id"].as_str().unwrap());
    (admin, admin_actor, secret_target)
}

#[tokio::test]
async fn the_trail_filters_pages_and_refuses_bad_filters() {
    for backend in backends() {
        let server = identity_server(backend).await;
        let (admin, admin_actor, secret_target) = varied_trail(&server).await;
        let all = every_page(&server, &admin, &[], 100).await;
        assert!(all.len() >= 10, "{}", all.len());

        // Pages of two add up to the whole, newest first, nothing twice.
        let paged = every_page(&server, &admin, &[], 2).await;
        assert_eq!(paged, all);
        let ids: HashSet<&str> = paged.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), paged.len());
        let times: Vec<&str> = all.iter().map(|r| r["at"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

        type Check = fn(&Value) -> bool;
        let checks: [(&[(&str, &str)], Check); 8] = [
            (&[("action", "auth.login")], |r| r["action"] == "auth.login"),
            (&[("action", "secret.*")], |r| {
                r["action"].as_str().unwrap().starts_with("secret.")
            }),
            (&[("action", "auth.")], |r| {
                r["action"].as_str().unwrap().starts_with("auth.")
            }),
            (&[("outcome", "failure")], |r| r["outcome"] == "failure"),
            (&[("outcome", "denied")], |r| r["outcome"] == "denied"),
            (&[("resource", "secret")], |r| {
                r["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("secret:"))
            }),
            (&[("since", "2026-01-01T00:30:00Z")], |r| {
                r["at"].as_str().unwrap() >= "2026-01-01T01:00:00Z"
            }),
            (
                &[("until", "2026-01-01T00:30:00Z"), ("outcome", "success")],
                |r| r["at"].as_str().unwrap() < "2026-01-01T00:30:00Z" && r["outcome"] == "success",
            ),
        ];
        for (query, holds) in checks {
            let found = every_page(&server, &admin, query, 3).await;
            let expected: Vec<Value> = all.iter().filter(|r| holds(r)).cloned().collect();
            assert!(
                !expected.is_empty(),
                "{query:?} finds something on {backend:?}"
            );
            assert_eq!(found, expected, "{query:?} on {backend:?}");
        }
        let by_actor = every_page(&server, &admin, &[("actor", &admin_actor)], 3).await;
        assert!(!by_actor.is_empty());
        assert_eq!(
            by_actor,
            all.iter()
                .filter(|r| r["actor"] == admin_actor.as_str())
                .cloned()
                .collect::<Vec<_>>()
        );
        let one_secret = every_page(&server, &admin, &[("resource", &secret_target)], 3).await;
        assert_eq!(one_secret.len(), 1);
        assert_eq!(one_secret[0]["action"], "secret.create");

        let too_long = "a".repeat(101);
        let bad: [(&[(&str, &str)], &str); 11] = [
            (&[("bogus", "1")], "unknown field"),
            (&[("limit", "0")], "limit"),
            (&[("limit", "101")], "limit"),
            (&[("limit", "many")], "limit"),
            (&[("cursor", "garbage")], "cursor"),
            (&[("actor", &too_long)], "actor is longer"),
            (&[("action", "auth*login")], "action"),
            (&[("resource", "Not A Type")], "resource"),
            (&[("outcome", "ok")], "outcome"),
            (&[("since", "yesterday")], "since"),
            (
                &[
                    ("since", "2026-01-02T00:00:00Z"),
                    ("until", "2026-01-01T00:00:00Z"),
                ],
                "since must be before until",
            ),
        ];
        for path in ["/api/v1/audit", "/api/v1/audit/export"] {
            for (query, message) in bad {
                let is_page_param = query.iter().any(|(k, _)| *k == "limit" || *k == "cursor");
                let response = get(&server, &admin, path, query).await;
                assert_eq!(response.status(), 400, "{path} {query:?}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "validation_failed");
                let text = body["error"]["message"].as_str().unwrap();
                // The export has no pages: limit and cursor are unknown parameters there.
                let message = if path.ends_with("export") && is_page_param {
                    "unknown field"
                } else {
                    message
                };
                assert!(text.contains(message), "{path} {query:?}: {text}");
            }
        }
        server.stop().await.0.unwrap();
    }
}

/// Chained lines follow each other: seq + 1, and each prevHash is the hash before it.
fn assert_linked(lines: &[AuditExportLine], first_prev: &str) {
    let mut prev = first_prev.to_owned();
    let mut expected_seq = None;
    for line in lines.iter().filter(|l| l.record.seq.is_some()) {
        let seq = line.record.seq.unwrap();
        if let Some(expected) = expected_seq {
            assert_eq!(seq, expected);
        }
        assert_eq!(line.prev_hash.as_deref(), Some(prev.as_str()), "line {seq}");
        prev = line.hash.clone().unwrap();
        expected_seq = Some(seq + 1);
    }
}

#[tokio::test]
async fn the_export_streams_linked_lines_and_is_audited() {
    for backend in backends() {
        let server = identity_server(backend).await;
        let (admin, admin_actor, _) = varied_trail(&server).await;
        let all = every_page(&server, &admin, &[], 100).await;
        let lines = export(&server, &admin, &[]).await;
        // Oldest first from the genesis, the export's own record last.
        assert_eq!(lines[0].record.seq, Some(1));
        assert_linked(&lines, GENESIS_HASH);
        assert_eq!(lines.len(), all.len() + 1);
        let last = lines.last().unwrap();
        assert_eq!(
            (last.record.action.as_str(), last.record.outcome.as_str()),
            ("audit.export", "success")
        );
        assert_eq!(last.record.actor, admin_actor);
        assert!(
            lines
                .iter()
                .all(|l| !serde_json::to_string(l).unwrap().contains("s3cr3t"))
        );

        let logins = export(
            &server,
            &admin,
            &[("action", "auth.login"), ("outcome", "failure")],
        )
        .await;
        assert_eq!(logins.len(), 3);
        assert!(
            logins
                .iter()
                .all(|l| l.record.action == "auth.login" && l.record.outcome == "failure")
        );
        assert!(logins.windows(2).all(|w| w[0].record.seq < w[1].record.seq));
        let exports = every_page(&server, &admin, &[("action", "audit.export")], 10).await;
        assert_eq!(exports.len(), 2);
        assert_eq!(exports[0]["detail"]["filter"]["action"], "auth.login");
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn retention_cuts_the_trail_and_the_rest_still_verifies_and_exports() {
    for backend in backends() {
        // The server's own job runner keeps everything; the test runs the job itself.
        let server = identity_server_with(backend, &[("AUDIT_RETENTION_DAYS", "36500")]).await;
        let (admin, _, _) = varied_trail(&server).await;
        let before = export(&server, &admin, &[]).await;
        // A year after the first hour's records: they go, the later ones stay.
        server
            .clock
            .advance(time::Duration::days(365) - time::Duration::minutes(30));
        let job = PruneAuditLog {
            retention_days: 365,
            every: std::time::Duration::from_secs(3600),
            chain: Arc::clone(&server.hive.audit_chain),
        };
        let ctx = JobContext {
            store: Arc::clone(&server.hive.store),
            clock: server.clock.clone(),
        };
        let first_hour = before
            .iter()
            .filter(|l| l.record.at < time::macros::datetime!(2026-01-01 00:30 UTC))
            .count();
        assert!(first_hour > 0);
        let note = job.run(&ctx).await.unwrap();
        let last_cut = before[first_hour - 1].record.seq.unwrap();
        assert_eq!(
            note,
            format!("pruned {first_hour} audit records; checkpoint at {last_cut}")
        );

        let report =
            hive_core::kernel::audit::verify(server.hive.store.as_ref(), &server.hive.audit_chain)
                .await
                .unwrap();
        assert_eq!(report.first_break, None, "{backend:?}");
        assert_eq!(report.resumed_after, Some(last_cut));
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let after = export(&server, &admin, &[]).await;
        assert_eq!(after[0].record.seq, Some(last_cut + 1));
        assert_linked(&after, before[first_hour - 1].hash.as_deref().unwrap());
        let retention = every_page(&server, &admin, &[("action", "audit.retention")], 10).await;
        assert_eq!(retention.len(), 1);
        assert_eq!(retention[0]["actor"], "system");
        assert_eq!(retention[0]["detail"]["deleted"], first_hour as u64);
        assert_eq!(retention[0]["detail"]["checkpointSeq"], last_cut);
        server.stop().await.0.unwrap();
    }
}
