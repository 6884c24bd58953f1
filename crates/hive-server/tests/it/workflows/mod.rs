//! Workflows over real HTTP, on every backend: documents saved and validated, runs by hand
//! driven by the engine to their output through every kind of node that needs no outside
//! service, with branches not taken skipped, map items journaled one by one and a delay that
//! waits on the server's clock. The submodules take the nodes that act outside the run (agents,
//! LLMs, HTTP), approvals and the run's principal, webhooks, and the runs' history and control.

mod agents;
mod approvals;
mod http;
mod runs;
mod target;
mod webhook;

use crate::a2a::a2a_server;
use crate::support::*;
use hive_testkit::{TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// An operator's execute token of the admin's.
pub(crate) async fn admin_token(server: &TestServer) -> String {
    admin_session(server).await.1
}

/// The first admin signed in, and an API token of theirs.
pub(crate) async fn admin_session(server: &TestServer) -> (Browser, String) {
    setup_admin(server).await;
    let admin = login(server, ADMIN_EMAIL, PASSWORD).await;
    let token = token_of(server, &admin).await;
    (admin, token)
}

/// A new API token of `browser`'s user.
pub(crate) async fn token_of(server: &TestServer, browser: &Browser) -> String {
    let token = create_token(server, browser, json!({ "name": "workflows" })).await;
    token["token"].as_str().unwrap().to_owned()
}

/// The audit records of `action` (newest first), read through the API with an admin's token.
pub(crate) async fn audit_of(server: &TestServer, admin_token: &str, action: &str) -> Vec<Value> {
    let (status, page) = call(
        server,
        admin_token,
        Method::GET,
        &format!("/api/v1/audit?action={action}&limit=100"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// Polls the run until it has `status` (or ended).
pub(crate) async fn wait_status(
    server: &TestServer,
    token: &str,
    run: &str,
    status: &str,
) -> Value {
    let detail = wait_run(server, token, run, |d| {
        d["run"]["status"] == status || ended(d)
    })
    .await;
    assert_eq!(detail["run"]["status"], status, "{detail}");
    detail
}

pub(crate) async fn call(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.client.request(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Saves `document` and answers the workflow's id.
pub(crate) async fn apply(server: &TestServer, token: &str, document: Value) -> String {
    let (status, saved) = call(
        server,
        token,
        Method::POST,
        "/api/v1/workflows",
        Some(document),
    )
    .await;
    assert!(status == 201 || status == 200, "{status} {saved}");
    saved["workflow"]["id"].as_str().unwrap().to_owned()
}

/// Starts a run and answers its id.
pub(crate) async fn start(
    server: &TestServer,
    token: &str,
    workflow: &str,
    input: Value,
) -> String {
    let (status, run) = call(
        server,
        token,
        Method::POST,
        &format!("/api/v1/workflows/{workflow}/runs"),
        Some(json!({ "input": input })),
    )
    .await;
    assert_eq!(status, 202, "{run}");
    run["id"].as_str().unwrap().to_owned()
}

/// Polls the run until `done` holds of it (the engine runs on its own; this only looks).
pub(crate) async fn wait_run(
    server: &TestServer,
    token: &str,
    run: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..600 {
        let (status, detail) = call(
            server,
            token,
            Method::GET,
            &format!("/api/v1/workflow-runs/{run}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{detail}");
        if done(&detail) {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the run did not get there in 30 s");
}

pub(crate) fn ended(detail: &Value) -> bool {
    matches!(
        detail["run"]["status"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

pub(crate) fn step<'a>(detail: &'a Value, key: &str) -> &'a Value {
    detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["key"] == key)
        .unwrap_or_else(|| panic!("no step {key} in {detail}"))
}

fn pure_nodes() -> Value {
    json!({
        "name": "pure-nodes",
        "description": "every node that needs nothing outside Hive",
        "nodes": [
            {"id": "start", "type": "input", "required": ["amount", "items"]},
            {"id": "shape", "type": "transform",
             "value": {"amount": "{{ input.amount }}", "label": "amount {{input.amount}}"}},
            {"id": "big", "type": "condition", "expression": "nodes.shape.output.amount > 100"},
            {"id": "large", "type": "transform", "value": "large"},
            {"id": "small", "type": "transform", "value": "small"},
            {"id": "size", "type": "join"},
            {"id": "kind", "type": "switch", "expression": "input.kind", "cases": ["a", "b"]},
            {"id": "is-a", "type": "transform", "value": "went a"},
            {"id": "other", "type": "transform", "value": "went default"},
            {"id": "fan", "type": "parallel"},
            {"id": "left", "type": "transform", "value": {"side": "left"}},
            {"id": "right", "type": "transform", "value": {"side": "right"}},
            {"id": "both", "type": "join"},
            {"id": "each", "type": "map", "items": "{{ input.items }}", "concurrency": 2,
             "node": {"type": "transform", "value": {"n": "{{ item }}", "at": "{{ index }}"}}},
            {"id": "pause", "type": "delay", "seconds": 60},
            {"id": "done", "type": "output", "value": {
                "size": "{{ nodes.size.output }}",
                "both": "{{ nodes.both.output }}",
                "each": "{{ nodes.each.output }}"
            }}
        ],
        "edges": [
            {"from": "start", "to": "shape"},
            {"from": "shape", "to": "big"},
            {"from": "big", "to": "large", "when": "true"},
            {"from": "big", "to": "small", "when": "false"},
            {"from": "large", "to": "size"},
            {"from": "small", "to": "size"},
            {"from": "size", "to": "kind"},
            {"from": "kind", "to": "is-a", "when": "a"},
            {"from": "kind", "to": "other", "when": "default"},
            {"from": "is-a", "to": "fan"},
            {"from": "other", "to": "fan"},
            {"from": "fan", "to": "left"},
            {"from": "fan", "to": "right"},
            {"from": "left", "to": "both"},
            {"from": "right", "to": "both"},
            {"from": "both", "to": "each"},
            {"from": "each", "to": "pause"},
            {"from": "pause", "to": "done"}
        ]
    })
}

#[tokio::test]
async fn a_run_goes_through_every_pure_node_to_its_output() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let token = admin_token(&server).await;
        let workflow = apply(&server, &token, pure_nodes()).await;
        let run = start(
            &server,
            &token,
            &workflow,
            json!({"amount": 150, "items": [1, 2, 3], "kind": "zzz"}),
        )
        .await;
        // The delay parks the run until the server's clock passes it.
        let waiting = wait_run(&server, &token, &run, |d| {
            d["run"]["status"] == "waiting" || ended(d)
        })
        .await;
        assert_eq!(waiting["run"]["status"], "waiting", "{waiting}");
        assert_eq!(step(&waiting, "pause")["status"], "waiting");
        server.clock.advance(time::Duration::seconds(61));
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        let output = &detail["run"]["output"];
        assert_eq!(output["size"], json!({"large": "large"}));
        assert_eq!(
            output["both"],
            json!({"left": {"side": "left"}, "right": {"side": "right"}})
        );
        assert_eq!(
            output["each"],
            json!([{"n": 1, "at": 0}, {"n": 2, "at": 1}, {"n": 3, "at": 2}])
        );
        assert_eq!(step(&detail, "small")["status"], "skipped");
        assert_eq!(step(&detail, "is-a")["status"], "skipped");
        assert_eq!(step(&detail, "other")["status"], "succeeded");
        assert_eq!(step(&detail, "big")["branch"], "true");
        assert_eq!(step(&detail, "kind")["branch"], "default");
        assert_eq!(step(&detail, "each[2]")["output"], json!({"n": 3, "at": 2}));
        assert_eq!(step(&detail, "shape")["input"]["label"], "amount 150");
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn a_run_missing_required_input_fails_at_its_input_node() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let token = admin_token(&server).await;
        let workflow = apply(&server, &token, pure_nodes()).await;
        let run = start(&server, &token, &workflow, json!({"amount": 1})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "failed");
        let error = detail["run"]["error"].as_str().unwrap();
        assert!(
            error.contains("'start'") && error.contains("items"),
            "{error}"
        );
        server.stop().await.0.unwrap();
    }
}
