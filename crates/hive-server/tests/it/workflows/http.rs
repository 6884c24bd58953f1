//! The http node against a local server: what it sends (method, headers, a secret that the
//! journal and the output never show, a JSON body, an idempotency key stable across attempts),
//! retries that wait on the server's clock, refusals that are not retried, the egress guard,
//! parallel branches that really run at once, and a failed run retried from its failed step.

use super::target::Target;
use super::*;

/// A server that may reach `target`, and the admin's session and token.
async fn server_for(
    backend: hive_testkit::TestBackend,
    target: &Target,
) -> (TestServer, Browser, String) {
    let server = a2a_server(
        backend,
        &[(
            "HIVE_EGRESS_FETCH_HOST_ALLOWLIST",
            &target.allowlist_entry(),
        )],
    )
    .await;
    let (admin, token) = admin_session(&server).await;
    (server, admin, token)
}

/// input → `call` (the http node given) → output of its answer.
fn one_call(name: &str, call: Value) -> Value {
    let mut node = call;
    node["id"] = json!("call");
    node["type"] = json!("http");
    json!({
        "name": name,
        "nodes": [
            {"id": "start", "type": "input"},
            node,
            {"id": "done", "type": "output", "value": "{{ nodes.call.output }}"}
        ],
        "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "done"}]
    })
}

const API_KEY: &str = "sk-live-9f8e7d6c5b4a";

#[tokio::test]
async fn an_http_step_sends_its_method_headers_secret_and_json_body_and_keeps_no_secret() {
    for backend in backends() {
        let target = Target::start().await;
        let (server, admin, token) = server_for(backend, &target).await;
        hive_testkit::capture::canary(API_KEY);
        let created = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/secrets",
                Some(json!({ "name": "API_KEY", "value": API_KEY })),
            )
            .await;
        assert_eq!(created.status(), 201);
        let document = one_call(
            "echo",
            json!({
                "method": "PUT",
                "url": format!("{}/echo", target.base()),
                "headers": {
                    "authorization": "Bearer {{ secrets.API_KEY }}",
                    "x-order": "{{ input.order }}"
                },
                "body": {"order": "{{ input.order }}", "items": ["a", "b"]}
            }),
        );
        let workflow = apply(&server, &token, document).await;
        let run = start(&server, &token, &workflow, json!({"order": 42})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");

        // What the server received.
        let seen = target.seen("/echo");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "PUT");
        assert_eq!(
            seen[0].headers["authorization"],
            format!("Bearer {API_KEY}")
        );
        assert_eq!(seen[0].headers["x-order"], "42");
        assert_eq!(seen[0].headers["content-type"], "application/json");
        assert_eq!(seen[0].body, json!({"order": 42, "items": ["a", "b"]}));
        assert_eq!(
            seen[0].headers["idempotency-key"],
            format!("wf-{run}-call").as_str()
        );

        // The journal names the secret; the echoed answer has it scrubbed.
        let call = step(&detail, "call");
        assert_eq!(call["input"]["method"], "PUT");
        assert_eq!(
            call["input"]["headers"]["authorization"],
            "Bearer [secret API_KEY]"
        );
        assert_eq!(call["output"]["status"], 200);
        assert_eq!(
            call["output"]["body"]["headers"]["authorization"],
            "Bearer [secret API_KEY]"
        );
        assert_eq!(call["output"]["body"]["body"]["order"], 42);
        assert!(!detail.to_string().contains(API_KEY), "{detail}");
        let (_, events) = call_text(&server, &token, &format!("/api/v1/workflow-runs/{run}")).await;
        assert!(!events.contains(API_KEY));
        server.stop().await.0.unwrap();
    }
}

async fn call_text(server: &TestServer, token: &str, path: &str) -> (u16, String) {
    let response = with_bearer(server, token, Method::GET, path).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_transient_failure_is_retried_after_its_backoff_with_the_same_idempotency_key() {
    for backend in backends() {
        let target = Target::start().await;
        let (server, _admin, token) = server_for(backend, &target).await;
        let document = one_call(
            "flaky",
            json!({
                "method": "POST",
                "url": format!("{}/flaky", target.base()),
                "body": {"n": 1},
                "retry": {"maxAttempts": 3, "backoffSeconds": 5}
            }),
        );
        let workflow = apply(&server, &token, document).await;
        let run = start(&server, &token, &workflow, json!({})).await;
        // The 503 leaves the step failed with a retry due in 5 s on the server's clock.
        let waiting = wait_run(&server, &token, &run, |d| {
            d["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["key"] == "call" && s["status"] == "failed")
                || ended(d)
        })
        .await;
        let call = step(&waiting, "call");
        assert_eq!(call["attempt"], 1, "{waiting}");
        assert!(call["wakeAt"].is_string(), "a retry is due: {waiting}");
        assert!(call["error"].as_str().unwrap().contains("503"), "{waiting}");
        // Without the clock moving, no second attempt comes.
        let settled = wait_status(&server, &token, &run, "waiting").await;
        assert_eq!(step(&settled, "call")["attempt"], 1);
        assert_eq!(target.seen("/flaky").len(), 1);

        server.clock.advance(time::Duration::seconds(6));
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        let call = step(&detail, "call");
        assert_eq!(call["attempt"], 2);
        assert_eq!(call["output"]["body"], json!({"ok": true}));
        let seen = target.seen("/flaky");
        assert_eq!(seen.len(), 2);
        let key = format!("wf-{run}-call");
        for request in &seen {
            assert_eq!(request.headers["idempotency-key"], key.as_str());
        }
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn a_client_error_fails_the_run_without_retry_and_an_unlisted_host_is_refused() {
    for backend in backends() {
        let target = Target::start().await;
        let (server, _admin, token) = server_for(backend, &target).await;
        let bad = apply(
            &server,
            &token,
            one_call(
                "bad",
                json!({
                    "method": "GET",
                    "url": format!("{}/bad", target.base()),
                    "retry": {"maxAttempts": 3, "backoffSeconds": 1}
                }),
            ),
        )
        .await;
        let run = start(&server, &token, &bad, json!({})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "failed", "{detail}");
        assert!(
            detail["run"]["error"]
                .as_str()
                .unwrap()
                .contains("HTTP 400"),
            "{detail}"
        );
        assert_eq!(step(&detail, "call")["attempt"], 1);
        assert_eq!(target.seen("/bad").len(), 1);

        let private = apply(
            &server,
            &token,
            one_call(
                "private",
                json!({
                    "method": "GET",
                    "url": "http://10.1.2.3/steal",
                    "retry": {"maxAttempts": 3, "backoffSeconds": 1}
                }),
            ),
        )
        .await;
        let run = start(&server, &token, &private, json!({})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "failed", "{detail}");
        let call = step(&detail, "call");
        assert_eq!(call["attempt"], 1, "a refusal is not retried: {detail}");
        let error = call["error"].as_str().unwrap();
        assert!(error.contains("refused"), "{error}");
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn parallel_branches_run_at_the_same_time() {
    for backend in backends() {
        let target = Target::start().await;
        let (server, _admin, token) = server_for(backend, &target).await;
        // Each request waits at the server until the other arrives: both succeed only if
        // they are in flight together.
        let barrier = format!("{}/barrier", target.base());
        let document = json!({
            "name": "fan-out",
            "nodes": [
                {"id": "start", "type": "input"},
                {"id": "fan", "type": "parallel"},
                {"id": "left", "type": "http", "method": "GET", "url": barrier},
                {"id": "right", "type": "http", "method": "GET", "url": barrier},
                {"id": "both", "type": "join"},
                {"id": "done", "type": "output", "value": "{{ nodes.both.output }}"}
            ],
            "edges": [
                {"from": "start", "to": "fan"},
                {"from": "fan", "to": "left"},
                {"from": "fan", "to": "right"},
                {"from": "left", "to": "both"},
                {"from": "right", "to": "both"},
                {"from": "both", "to": "done"}
            ]
        });
        let workflow = apply(&server, &token, document).await;
        let run = start(&server, &token, &workflow, json!({})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        assert_eq!(
            detail["run"]["output"]["left"]["body"],
            json!({"met": true})
        );
        assert_eq!(
            detail["run"]["output"]["right"]["body"],
            json!({"met": true})
        );
        assert_eq!(target.seen("/barrier").len(), 2);
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn a_failed_run_retried_runs_only_the_steps_that_did_not_succeed() {
    for backend in backends() {
        let target = Target::start().await;
        let (server, _admin, token) = server_for(backend, &target).await;
        let document = json!({
            "name": "two-calls",
            "nodes": [
                {"id": "start", "type": "input"},
                {"id": "one", "type": "http", "method": "POST", "url": format!("{}/count", target.base())},
                {"id": "two", "type": "http", "method": "GET", "url": format!("{}/switch", target.base())},
                {"id": "done", "type": "output", "value": "{{ nodes.two.output.body }}"}
            ],
            "edges": [
                {"from": "start", "to": "one"},
                {"from": "one", "to": "two"},
                {"from": "two", "to": "done"}
            ]
        });
        let workflow = apply(&server, &token, document).await;
        let run = start(&server, &token, &workflow, json!({})).await;
        let failed = wait_run(&server, &token, &run, ended).await;
        assert_eq!(failed["run"]["status"], "failed", "{failed}");
        assert!(
            failed["run"]["error"].as_str().unwrap().contains("'two'"),
            "{failed}"
        );
        assert_eq!(target.seen("/count").len(), 1);
        assert_eq!(target.seen("/switch").len(), 1);

        target.answer(200);
        let (status, retried) = call(
            &server,
            &token,
            Method::POST,
            &format!("/api/v1/workflow-runs/{run}/retry"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{retried}");
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        assert_eq!(detail["run"]["output"], json!({"status": 200}));
        assert_eq!(target.seen("/count").len(), 1, "step one is not run again");
        assert_eq!(target.seen("/switch").len(), 2);
        assert_eq!(step(&detail, "one")["attempt"], 1);
        // A run that succeeded is not retried.
        let (status, _) = call(
            &server,
            &token,
            Method::POST,
            &format!("/api/v1/workflow-runs/{run}/retry"),
            None,
        )
        .await;
        assert_eq!(status, 409);
        server.stop().await.0.unwrap();
    }
}
