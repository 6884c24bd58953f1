//! The audit log fails closed: a change whose record cannot be written is refused (503) and
//! leaves nothing behind. The fault is real: a trigger in the server's own database refuses
//! every new audit row, as a full disk or a revoked grant would.

use crate::support::*;
use hive_testkit::{TestBackend, TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};

const REFUSE_SQLITE: &str = "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
     BEGIN SELECT RAISE(ABORT, 'audit device down'); END;";
const REFUSE_POSTGRES: &str = "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql \
     AS $$ BEGIN RAISE EXCEPTION 'audit device down'; END $$; \
     CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
     FOR EACH ROW EXECUTE FUNCTION refuse_audit();";
const ALLOW_SQLITE: &str = "DROP TRIGGER refuse_audit;";
const ALLOW_POSTGRES: &str = "DROP TRIGGER refuse_audit ON audit_events;";

async fn break_audit(server: &TestServer, backend: TestBackend) {
    let sql = match backend {
        TestBackend::Sqlite => REFUSE_SQLITE,
        TestBackend::Postgres => REFUSE_POSTGRES,
    };
    server.execute_sql(sql).await;
}

async fn mend_audit(server: &TestServer, backend: TestBackend) {
    let sql = match backend {
        TestBackend::Sqlite => ALLOW_SQLITE,
        TestBackend::Postgres => ALLOW_POSTGRES,
    };
    server.execute_sql(sql).await;
}

async fn items(server: &TestServer, browser: &Browser, path: &str) -> Vec<Value> {
    let page: Value = browser
        .send(server, Method::GET, path, None)
        .await
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

async fn assert_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert!(response.headers().contains_key("retry-after"), "{what}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "service_unavailable",
        "{what}: {body}"
    );
}

#[tokio::test]
async fn an_unwritable_audit_record_fails_the_change_and_leaves_nothing() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (alice, alice_browser) =
            add_user(&server, &admin, "alice@example.com", "operator").await;
        let alice_path = format!("/api/v1/users/{}", alice["id"].as_str().unwrap());
        let users_before = items(&server, &admin, "/api/v1/users").await;

        break_audit(&server, backend).await;
        hive_testkit::capture::canary("sk-test-value");
        let secret = json!({ "name": "openai", "value": "sk-test-value" });
        assert_unavailable(
            alice_browser
                .send(
                    &server,
                    Method::POST,
                    "/api/v1/secrets",
                    Some(secret.clone()),
                )
                .await,
            "secret",
        )
        .await;
        assert_unavailable(
            admin
                .send(
                    &server,
                    Method::POST,
                    "/api/v1/users/invitations",
                    Some(json!({ "email": "bob@example.com", "role": "viewer" })),
                )
                .await,
            "invitation",
        )
        .await;
        assert_unavailable(
            admin
                .send(
                    &server,
                    Method::PATCH,
                    &alice_path,
                    Some(json!({ "role": "viewer", "displayName": "Renamed" })),
                )
                .await,
            "role change",
        )
        .await;
        assert_unavailable(
            alice_browser
                .send(
                    &server,
                    Method::POST,
                    "/api/v1/tokens",
                    Some(json!({ "name": "ci" })),
                )
                .await,
            "token",
        )
        .await;
        assert_unavailable(try_login(&server, ADMIN_EMAIL, PASSWORD).await, "login").await;

        mend_audit(&server, backend).await;
        assert!(
            items(&server, &alice_browser, "/api/v1/secrets")
                .await
                .is_empty()
        );
        assert!(
            items(&server, &alice_browser, "/api/v1/tokens")
                .await
                .is_empty()
        );
        assert_eq!(items(&server, &admin, "/api/v1/users").await, users_before);
        let sessions = items(&server, &alice_browser, "/api/v1/auth/sessions").await;
        assert_eq!(
            sessions.len(),
            1,
            "the role change did not end alice's session"
        );
        // The refused login left no session behind: only the admin's first one is there.
        let admin_sessions = items(&server, &admin, "/api/v1/auth/sessions").await;
        assert_eq!(admin_sessions.len(), 1);

        // With the log writable again the same change goes through, and the chain holds.
        let created = alice_browser
            .send(&server, Method::POST, "/api/v1/secrets", Some(secret))
            .await;
        assert_eq!(created.status(), 201);
        let report =
            hive_core::kernel::audit::verify(server.hive.store.as_ref(), &server.hive.audit_chain)
                .await
                .unwrap();
        assert_eq!(report.first_break, None, "{backend:?}");
    }
}

#[tokio::test]
async fn a_logout_is_not_held_back_by_the_audit_log() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        break_audit(&server, backend).await;
        let out = admin
            .send(&server, Method::POST, "/api/v1/auth/logout", None)
            .await;
        assert_eq!(out.status(), 204, "{backend:?}");
        mend_audit(&server, backend).await;
        assert_eq!(admin.me(&server).await.status(), 401, "the session ended");
    }
}

#[tokio::test]
async fn security_refusals_are_recorded() {
    for backend in backends() {
        let server = identity_server_with(backend, &[("HIVE_RATE_LIMITS", "login=3/1m")]).await;
        setup_admin(&server).await;

        // A sign-in limit hit is recorded once per caller and window, not once per refusal.
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let response = try_login(&server, "nobody@example.com", "wrong password here").await;
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, [401, 401, 401, 429, 429, 429], "{backend:?}");
        let limited = records_of(&server, "rate_limit.exceeded").await;
        assert_eq!(limited.len(), 1, "{backend:?}");
        assert_eq!(limited[0].outcome, hive_store::AuditOutcome::Denied);
        assert_eq!(limited[0].detail, r#"{"policy":"login"}"#);
        assert_eq!(limited[0].ip.as_deref(), Some("127.0.0.1"));

        // Once the window has passed, the next refusal is recorded again. (The embedded shape
        // times both on the injected clock; Redis keeps its own time, which a test cannot move.)
        if backend == TestBackend::Sqlite {
            server.clock.advance(time::Duration::minutes(2));
            let mut again = Vec::new();
            for _ in 0..4 {
                let response =
                    try_login(&server, "nobody@example.com", "wrong password here").await;
                again.push(response.status().as_u16());
            }
            assert_eq!(again, [401, 401, 401, 429]);
            assert_eq!(records_of(&server, "rate_limit.exceeded").await.len(), 2);
        }
    }
}

#[tokio::test]
async fn replayed_and_unknown_links_are_recorded() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (alice, _) = add_user(&server, &admin, "alice@example.com", "viewer").await;
        let link: Value = admin
            .send(
                &server,
                Method::POST,
                &format!("/api/v1/users/{}/reset-link", alice["id"].as_str().unwrap()),
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        let token = link_token(&link);

        // Ten copies of one link at once: one reset, nine refusals, each one recorded.
        let body = json!({ "token": token, "newPassword": "another long passphrase" });
        let attempts = (0..10).map(|_| {
            server
                .client
                .post_json("/api/v1/auth/password-reset", &body)
        });
        let statuses: Vec<u16> = futures_util::future::join_all(attempts)
            .await
            .iter()
            .map(|r| r.status().as_u16())
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 204).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 401).count(),
            9,
            "{statuses:?}"
        );
        let resets = records_of(&server, "user.reset_password").await;
        let refused: Vec<&str> = resets
            .iter()
            .filter(|r| r.outcome == hive_store::AuditOutcome::Failure)
            .map(|r| r.detail.as_str())
            .collect();
        assert_eq!(refused.len(), 9, "{refused:?}");
        assert!(
            refused
                .iter()
                .all(|d| d.contains("replayed") || d.contains("invalid_token")),
            "{refused:?}"
        );
        assert_eq!(resets.len() - refused.len(), 1, "one reset went through");

        let unknown = json!({
            "token": "a".repeat(64),
            "displayName": "Mallory",
            "password": "a long enough passphrase"
        });
        let refused = server
            .client
            .post_json("/api/v1/auth/invitation/accept", &unknown)
            .await;
        assert_eq!(refused.status(), 401);
        let accepts = records_of(&server, "user.accept_invitation").await;
        assert_eq!(
            accepts.last().map(|r| (r.outcome, r.detail.as_str())),
            Some((
                hive_store::AuditOutcome::Failure,
                r#"{"reason":"invalid_token"}"#
            ))
        );
    }
}

#[tokio::test]
async fn the_database_refuses_to_rewrite_the_log() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        for statement in [
            "UPDATE audit_events SET actor = 'forged'",
            "DELETE FROM audit_events",
        ] {
            let refused = server.try_execute_sql(statement).await;
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|e| e.contains("append-only") || e.contains("checkpoint")),
                "{statement} on {backend:?}: {refused:?}"
            );
        }
        let report =
            hive_core::kernel::audit::verify(server.hive.store.as_ref(), &server.hive.audit_chain)
                .await
                .unwrap();
        assert_eq!(report.first_break, None);
        assert!(report.checked >= 2, "the first key and the admin");
    }
}

/// A record written straight into `audit_events`, with no place in the chain. Dated 2099: the
/// retention job, which may run at any time, deletes old records outside the chain.
fn forged_insert(backend: TestBackend, id: uuid::Uuid) -> String {
    let at = match backend {
        TestBackend::Sqlite => "4070908800000000",
        TestBackend::Postgres => "'2099-01-01T00:00:00Z'",
    };
    format!(
        "INSERT INTO audit_events (id, at, actor, action, outcome, detail) \
         VALUES ('{id}', {at}, 'user:forged', 'auth.login', 'success', '{{}}')"
    )
}

/// A record written straight into `audit_events` with a place in the chain, read from the
/// chain's end in the statement itself: seq `end + seq_after_end`, and as `prev_hash` the end's
/// own hash (`right_link`) or a made-up one. Its `hash` is made up either way (only Hive has the
/// key).
fn forged_chained_insert(
    backend: TestBackend,
    id: uuid::Uuid,
    seq_after_end: i64,
    right_link: bool,
) -> String {
    let at = match backend {
        TestBackend::Sqlite => "4070908800000000",
        TestBackend::Postgres => "'2099-01-01T00:00:00Z'",
    };
    const END: &str = "FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1";
    let prev_hash = if right_link {
        format!("(SELECT hash {END})")
    } else {
        format!("'{}'", "e".repeat(64))
    };
    let hash = "a".repeat(64);
    format!(
        "INSERT INTO audit_events (id, at, actor, action, outcome, detail, seq, prev_hash, hash) \
         VALUES ('{id}', {at}, 'user:forged', 'auth.login', 'success', '{{}}', \
         (SELECT seq + {seq_after_end} {END}), {prev_hash}, '{hash}')"
    )
}

/// The database checks that a chained record continues the chain's end (migration 0019): the
/// next seq with a wrong link, or the right link past a gap, are refused on both backends; a
/// record that links right passes the database (it cannot check the HMAC) and is named by
/// verify.
#[tokio::test]
async fn a_forged_record_must_continue_the_chain_to_get_in() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        for (seq_after_end, right_link) in [(1, false), (2, true), (0, true)] {
            let refused = server
                .try_execute_sql(&forged_chained_insert(
                    backend,
                    uuid::Uuid::now_v7(),
                    seq_after_end,
                    right_link,
                ))
                .await;
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|e| e.contains("continue the end of the hash chain")),
                "end + {seq_after_end}, right link {right_link}, on {backend:?}: {refused:?}"
            );
        }
        let verify = || {
            hive_core::kernel::audit::verify(server.hive.store.as_ref(), &server.hive.audit_chain)
        };
        let clean = verify().await.unwrap();
        assert_eq!(
            (clean.unchained, clean.first_break),
            (0, None),
            "{backend:?}"
        );

        server
            .execute_sql(&forged_chained_insert(
                backend,
                uuid::Uuid::now_v7(),
                1,
                true,
            ))
            .await;
        let report = verify().await.unwrap();
        assert!(
            matches!(
                report.first_break,
                Some(hive_core::kernel::audit::ChainBreak::Altered { .. })
            ),
            "{backend:?}: {report:?}"
        );
    }
}

/// What someone with DDL rights on the database does first.
fn drop_insert_guard(backend: TestBackend) -> &'static str {
    match backend {
        TestBackend::Sqlite => {
            "DROP TRIGGER audit_events_chained_only; DROP TRIGGER audit_events_continue_the_chain;"
        }
        TestBackend::Postgres => "DROP TRIGGER audit_events_chained_only ON audit_events;",
    }
}

#[tokio::test]
async fn a_record_inserted_behind_hives_back_is_refused_then_named_by_verify() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let forged = uuid::Uuid::now_v7();
        let refused = server
            .try_execute_sql(&forged_insert(backend, forged))
            .await;
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("hash chain")),
            "{backend:?}: {refused:?}"
        );
        let verify = || {
            hive_core::kernel::audit::verify(server.hive.store.as_ref(), &server.hive.audit_chain)
        };
        let report = verify().await.unwrap();
        assert_eq!(
            (report.unchained, report.first_break),
            (0, None),
            "{backend:?}"
        );

        server.execute_sql(drop_insert_guard(backend)).await;
        server.execute_sql(&forged_insert(backend, forged)).await;
        let report = verify().await.unwrap();
        assert_eq!(
            report.first_break,
            Some(hive_core::kernel::audit::ChainBreak::Outside { id: forged }),
            "{backend:?}"
        );
        assert_eq!(report.unchained, 1);
        // The listing shows it with no place in the chain; verify is the check that says why.
        let listed = items(&server, &admin, "/api/v1/audit?actor=user:forged").await;
        assert_eq!(listed.len(), 1, "{backend:?}: {listed:?}");
        assert_eq!(listed[0]["id"], forged.to_string());
        assert!(listed[0]["seq"].is_null(), "{:?}", listed[0]);
        // Hive keeps appending, and the forged record stays named.
        login(&server, ADMIN_EMAIL, PASSWORD).await;
        let later = verify().await.unwrap();
        assert!(later.checked > report.checked, "{backend:?}");
        assert_eq!(later.first_break, report.first_break);
    }
}

/// An A2A call whose `a2a.call` record cannot be written (its group-committed batch fails) is
/// answered 503 with `Retry-After`, as a JSON-RPC error with the call's id, and not as if it
/// had happened (a stream ends in an error); once the log takes records again, calls are
/// answered.
#[tokio::test]
async fn an_a2a_call_whose_record_cannot_be_written_is_refused() {
    use crate::a2a::{
        RPC, a2a_server, call_at, conformance_agent_with, execute_token, stream_events,
    };
    for backend in backends() {
        let server = a2a_server(backend, &[("A2A_DEFAULT_AGENT", "tck")]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        conformance_agent_with(
            &server,
            &admin,
            json!({ "name": "tck", "kind": "conformance", "visibility": "private" }),
        )
        .await;
        let token = execute_token(&server, &admin).await;
        let send = json!({"jsonrpc": "2.0", "id": 7, "method": "SendMessage", "params": {
            "message": {"messageId": "tck-complete-task-a", "role": "ROLE_USER",
                        "parts": [{"text": "x"}]}}});
        let (status, sent) = call_at(&server, RPC, &token, Some("1.0"), &send).await;
        assert_eq!(status, 200, "{sent}");
        let get = json!({"jsonrpc": "2.0", "id": 8, "method": "GetTask",
                         "params": {"id": sent["result"]["task"]["id"]}});

        break_audit(&server, backend).await;
        for body in [&get, &send] {
            let refused = server
                .client
                .request(Method::POST, RPC)
                .bearer_auth(&token)
                .header("A2A-Version", "1.0")
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), 503, "{backend:?} {body}");
            assert!(refused.headers().contains_key("retry-after"));
            let answer: Value = refused.json().await.unwrap();
            assert_eq!(answer["id"], body["id"], "{answer}");
            assert!(answer.get("result").is_none(), "{answer}");
        }
        // A stream is recorded at its end: when that record cannot be written, the stream's
        // last word is an error, not its clean end.
        let streamed = json!({"jsonrpc": "2.0", "id": 9, "method": "SendStreamingMessage", "params": {
            "message": {"messageId": "tck-complete-task-b", "role": "ROLE_USER",
                        "parts": [{"text": "x"}]}}});
        let events = stream_events(&server, RPC, &token, Some("1.0"), &streamed).await;
        let last = events.last().unwrap();
        assert!(
            last["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("could not be recorded")),
            "{backend:?} {events:?}"
        );

        mend_audit(&server, backend).await;
        let (status, read) = call_at(&server, RPC, &token, Some("1.0"), &get).await;
        assert_eq!(status, 200, "{read}");
        assert!(read.get("result").is_some(), "{read}");
    }
}
