//! Workflows published as agents, over real HTTP on every backend: an a2a trigger makes the
//! agent (in the registry, in the instance card as its visibility says), a call of it over A2A
//! starts a run as the caller and answers or streams its progress and output, a cancellation
//! of the task cancels the run, the run reaches only what its caller could, and a version
//! without the trigger (or the workflow's deletion) removes the agent.

use crate::a2a::{RPC, a2a_server, call, conformance_agent_with, execute_token, stream_events};
use crate::support::*;
use crate::workflows::ended;
use hive_testkit::{TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};

const CARD: &str = "/.well-known/agent-card.json";

/// input → greet (transform) → done (output): answers `{"greeting": "hello <text>"}`, published
/// as the agent `agent` with `visibility`.
fn greeter(agent: &str, visibility: &str) -> Value {
    json!({
        "name": "greeter",
        "description": "Greets whoever calls",
        "nodes": [
            {"id": "start", "type": "input", "required": ["text"]},
            {"id": "greet", "type": "transform", "value": {"greeting": "hello {{ input.text }}"}},
            {"id": "done", "type": "output", "value": "{{ nodes.greet.output }}"}
        ],
        "edges": [
            {"from": "start", "to": "greet"},
            {"from": "greet", "to": "done"}
        ],
        "triggers": [
            {"type": "a2a", "id": "call", "agent": agent, "visibility": visibility,
             "description": "Says hello"}
        ]
    })
}

/// Saves `document` as `owner`'s: the HTTP status and the answer.
async fn save(server: &TestServer, owner: &Browser, document: Value) -> (u16, Value) {
    let response = owner
        .send(server, Method::POST, "/api/v1/workflows", Some(document))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(server: &TestServer, who: &Browser, path: &str) -> (u16, Value) {
    let response = who.send(server, Method::GET, path, None).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The agent of this name among `owner`'s, if any.
async fn agent_named(server: &TestServer, owner: &Browser, name: &str) -> Option<Value> {
    let (status, listed) = get(server, owner, "/api/v1/agents?limit=100").await;
    assert_eq!(status, 200, "{listed}");
    listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|agent| agent["name"] == name)
        .cloned()
}

fn send(method: &str, skill: &str, parts: Value, configuration: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": {
        "message": {"messageId": format!("m-{}", uuid::Uuid::new_v4()), "role": "ROLE_USER",
                    "parts": parts, "metadata": {"skill": skill}},
        "configuration": configuration}})
}

/// Reads `path` as `who` until `done` holds of the answer (30 s at most).
async fn poll(
    server: &TestServer,
    who: &Browser,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..600 {
        let (status, read) = get(server, who, path).await;
        assert_eq!(status, 200, "{read}");
        if done(&read) {
            return read;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} did not get there in 30 s");
}

fn skills(card: &Value) -> Vec<String> {
    card["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|skill| skill["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The run an A2A task follows, from the task's metadata.
fn run_of(task: &Value) -> String {
    task["metadata"]["workflowRunId"]
        .as_str()
        .unwrap_or_else(|| panic!("no run named in {task}"))
        .to_owned()
}

/// A server with an admin, and two operators: alice publishes, bob calls (with an execute
/// token of his).
async fn people(
    backend: hive_testkit::TestBackend,
) -> (TestServer, Browser, Value, Browser, String) {
    let server = a2a_server(backend, &[]).await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let (_, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
    let (bob_user, bob) = add_user(&server, &admin, "bob@example.com", "operator").await;
    let bob_token = execute_token(&server, &bob).await;
    (server, alice, bob_user, bob, bob_token)
}

#[tokio::test]
async fn a_published_workflow_is_called_like_an_agent_and_runs_as_its_caller() {
    for backend in backends() {
        let (server, alice, bob_user, bob, bob_token) = people(backend).await;
        let (status, saved) = save(&server, &alice, greeter("greeter", "federation")).await;
        assert_eq!(status, 201, "{saved}");
        let workflow_id = saved["workflow"]["id"].as_str().unwrap().to_owned();

        // The registry has it: ready, of kind workflow, naming the workflow.
        let agent = agent_named(&server, &alice, "greeter").await.unwrap();
        assert_eq!(agent["kind"], "workflow", "{agent}");
        assert_eq!(agent["status"], "ready");
        assert_eq!(agent["visibility"], "federation");
        assert_eq!(agent["description"], "Says hello");
        assert_eq!(agent["runtime"], json!({ "workflowId": workflow_id }));

        // Blocking SendMessage: the task completed with the run's output.
        let answer = call(
            &server,
            &bob_token,
            Some("1.0"),
            &send(
                "SendMessage",
                "greeter",
                json!([{"text": "bob"}]),
                json!({}),
            ),
        )
        .await;
        let task = &answer["result"]["task"];
        assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{answer}");
        let artifact = &task["artifacts"][0];
        assert_eq!(artifact["artifactId"], "output");
        assert_eq!(
            artifact["parts"][0]["data"],
            json!({"greeting": "hello bob"})
        );
        assert_eq!(
            serde_json::from_str::<Value>(
                task["status"]["message"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
            )
            .unwrap(),
            json!({"greeting": "hello bob"})
        );

        // The run acts as bob, through the token he called with.
        let run = run_of(task);
        let (status, detail) = get(&server, &bob, &format!("/api/v1/workflow-runs/{run}")).await;
        assert_eq!(status, 200, "{detail}");
        assert_eq!(detail["run"]["trigger"], "a2a");
        assert_eq!(detail["run"]["runAsUser"], bob_user["id"], "{detail}");
        assert!(detail["run"]["runAsToken"].is_string(), "{detail}");
        assert_eq!(detail["run"]["input"], json!({"text": "bob"}));
        assert_eq!(detail["run"]["status"], "succeeded");

        // SendStreamingMessage: the task, working with each step, the output, completed. A
        // data part is the input itself.
        let events = stream_events(
            &server,
            RPC,
            &bob_token,
            Some("1.0"),
            &send(
                "SendStreamingMessage",
                "greeter",
                json!([{"data": {"text": "stream"}}]),
                json!({}),
            ),
        )
        .await;
        assert!(events[0].get("task").is_some(), "{events:?}");
        let working: Vec<String> = events
            .iter()
            .filter(|event| event["statusUpdate"]["status"]["state"] == "TASK_STATE_WORKING")
            .map(|event| {
                event["statusUpdate"]["status"]["message"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(
            working.iter().any(|text| text.contains("started")),
            "{working:?}"
        );
        assert!(
            working.iter().any(|text| text == "step 'greet' succeeded"),
            "{working:?}"
        );
        let output = events
            .iter()
            .find(|event| event.get("artifactUpdate").is_some())
            .unwrap_or_else(|| panic!("no output in {events:?}"));
        assert_eq!(
            output["artifactUpdate"]["artifact"]["parts"][0]["data"],
            json!({"greeting": "hello stream"})
        );
        let last = events.last().unwrap();
        assert_eq!(
            last["statusUpdate"]["status"]["state"], "TASK_STATE_COMPLETED",
            "{events:?}"
        );

        // GetTask, as for any local agent's task.
        let task_id = events[0]["task"]["id"].as_str().unwrap();
        let got = call(
            &server,
            &bob_token,
            Some("1.0"),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}}),
        )
        .await;
        assert_eq!(got["result"]["status"]["state"], "TASK_STATE_COMPLETED");

        // A message that is neither text nor an object.
        let refused = call(
            &server,
            &bob_token,
            Some("1.0"),
            &send(
                "SendMessage",
                "greeter",
                json!([{"url": "https://example.com/x"}]),
                json!({}),
            ),
        )
        .await;
        assert_eq!(refused["error"]["code"], -32602, "{refused}");

        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn the_agent_follows_its_trigger_in_the_registry_and_the_cards() {
    for backend in backends() {
        let (server, alice, _, bob, bob_token) = people(backend).await;
        let (status, saved) = save(&server, &alice, greeter("greeter", "federation")).await;
        assert_eq!(status, 201, "{saved}");
        let workflow_id = saved["workflow"]["id"].as_str().unwrap().to_owned();

        // In the instance card of those who may see it: bob (federation), not anonymous callers.
        let (_, card) = get(&server, &bob, CARD).await;
        assert!(skills(&card).contains(&"greeter".to_owned()), "{card}");
        let anonymous: Value = server.client.get(CARD).await.json().await.unwrap();
        assert!(!skills(&anonymous).contains(&"greeter".to_owned()));

        // Public: anonymous card readers see it. Private: bob does not, nor may he call it.
        let (status, _) = save(&server, &alice, greeter("greeter", "public")).await;
        assert_eq!(status, 200);
        let agent = agent_named(&server, &alice, "greeter").await.unwrap();
        assert_eq!(
            (agent["visibility"].as_str(), agent["version"].as_i64()),
            (Some("public"), Some(2))
        );
        let anonymous: Value = server.client.get(CARD).await.json().await.unwrap();
        assert!(
            skills(&anonymous).contains(&"greeter".to_owned()),
            "{anonymous}"
        );
        let (status, _) = save(&server, &alice, greeter("greeter", "private")).await;
        assert_eq!(status, 200);
        let (_, card) = get(&server, &bob, CARD).await;
        assert!(!skills(&card).contains(&"greeter".to_owned()), "{card}");
        let (_, alice_card) = get(&server, &alice, CARD).await;
        assert!(skills(&alice_card).contains(&"greeter".to_owned()));
        let refused = call(
            &server,
            &bob_token,
            Some("1.0"),
            &send("SendMessage", "greeter", json!([{"text": "x"}]), json!({})),
        )
        .await;
        assert_eq!(refused["error"]["code"], -32602, "{refused}");

        // Nobody registers, changes or deletes such an agent by hand.
        let id = agent["id"].as_str().unwrap();
        let by_hand = alice
            .send(
                &server,
                Method::POST,
                "/api/v1/agents",
                Some(json!({"name": "forged", "kind": "workflow",
                            "runtime": {"workflowId": workflow_id}})),
            )
            .await;
        assert_eq!(by_hand.status(), 400);
        let patched = alice
            .send(
                &server,
                Method::PATCH,
                &format!("/api/v1/agents/{id}"),
                Some(json!({"visibility": "public"})),
            )
            .await;
        assert_eq!(patched.status(), 409);
        let deleted = alice
            .send(
                &server,
                Method::DELETE,
                &format!("/api/v1/agents/{id}"),
                None,
            )
            .await;
        assert_eq!(deleted.status(), 409);

        // Another agent's name is a problem of the document, for anyone.
        conformance_agent_with(
            &server,
            &bob,
            json!({"name": "taken", "kind": "conformance", "visibility": "private"}),
        )
        .await;
        let mut clash = greeter("taken", "private");
        clash["name"] = json!("clash");
        let (status, refused) = save(&server, &alice, clash).await;
        assert_eq!(status, 400, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("an agent named \"taken\" exists already"),
            "{refused}"
        );

        // A version without the trigger removes the agent; so does deleting the workflow.
        let mut unpublished = greeter("greeter", "private");
        unpublished["triggers"] = json!([]);
        let (status, _) = save(&server, &alice, unpublished).await;
        assert_eq!(status, 200);
        assert_eq!(agent_named(&server, &alice, "greeter").await, None);
        let (_, alice_card) = get(&server, &alice, CARD).await;
        assert!(!skills(&alice_card).contains(&"greeter".to_owned()));
        let (status, _) = save(&server, &alice, greeter("greeter", "private")).await;
        assert_eq!(status, 200);
        assert!(agent_named(&server, &alice, "greeter").await.is_some());
        let deleted = alice
            .send(
                &server,
                Method::DELETE,
                &format!("/api/v1/workflows/{workflow_id}"),
                None,
            )
            .await;
        assert_eq!(deleted.status(), 204);
        assert_eq!(agent_named(&server, &alice, "greeter").await, None);
        let creates = records_of(&server, "agent.create").await.len();
        let deletes = records_of(&server, "agent.delete").await.len();
        assert_eq!(
            (creates, deletes),
            (3, 2),
            "the conformance agent, and the greeter twice"
        );

        server.stop().await.0.unwrap();
    }
}

/// input → ask (agent `secret`, private to alice) → done.
fn relay() -> Value {
    json!({
        "name": "relay",
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "ask", "type": "agent", "agent": "secret", "message": "{{ input.text }}"},
            {"id": "done", "type": "output", "value": "{{ nodes.ask.output.text }}"}
        ],
        "edges": [
            {"from": "start", "to": "ask"},
            {"from": "ask", "to": "done"}
        ],
        "triggers": [{"type": "a2a", "id": "call", "agent": "relay", "visibility": "federation"}]
    })
}

#[tokio::test]
async fn a_run_reaches_only_what_its_caller_may() {
    for backend in backends() {
        let (server, alice, bob_user, bob, bob_token) = people(backend).await;
        conformance_agent_with(
            &server,
            &alice,
            json!({"name": "secret", "kind": "conformance", "visibility": "private"}),
        )
        .await;
        let (status, saved) = save(&server, &alice, relay()).await;
        assert_eq!(status, 201, "{saved}");

        // Alice may call her private agent: the run reaches it.
        let alice_token = execute_token(&server, &alice).await;
        let answer = call(
            &server,
            &alice_token,
            Some("1.0"),
            &send("SendMessage", "relay", json!([{"text": "hi"}]), json!({})),
        )
        .await;
        let task = &answer["result"]["task"];
        assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{answer}");
        assert_eq!(task["artifacts"][0]["parts"][0]["text"], "Hello from TCK");

        // Bob may call the workflow, but his run may not call alice's private agent.
        let answer = call(
            &server,
            &bob_token,
            Some("1.0"),
            &send("SendMessage", "relay", json!([{"text": "hi"}]), json!({})),
        )
        .await;
        let task = &answer["result"]["task"];
        assert_eq!(task["status"]["state"], "TASK_STATE_FAILED", "{answer}");
        let why = task["status"]["message"]["parts"][0]["text"]
            .as_str()
            .unwrap();
        assert!(
            why.starts_with("the workflow run failed:") && why.contains("secret"),
            "{why}"
        );
        let run = run_of(task);
        let (_, detail) = get(&server, &bob, &format!("/api/v1/workflow-runs/{run}")).await;
        assert_eq!(detail["run"]["status"], "failed", "{detail}");
        assert_eq!(detail["run"]["runAsUser"], bob_user["id"]);

        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn canceling_the_task_cancels_the_run() {
    for backend in backends() {
        let (server, alice, _, bob, bob_token) = people(backend).await;
        let document = json!({
            "name": "slow",
            "nodes": [
                {"id": "start", "type": "input"},
                {"id": "pause", "type": "delay", "seconds": 600},
                {"id": "done", "type": "output", "value": "late"}
            ],
            "edges": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "done"}],
            "triggers": [{"type": "a2a", "id": "call", "agent": "slow", "visibility": "federation"}]
        });
        let (status, saved) = save(&server, &alice, document).await;
        assert_eq!(status, 201, "{saved}");
        let answer = call(
            &server,
            &bob_token,
            Some("1.0"),
            &send(
                "SendMessage",
                "slow",
                json!([{"text": "x"}]),
                json!({"returnImmediately": true}),
            ),
        )
        .await;
        let task = &answer["result"]["task"];
        let task_id = task["id"].as_str().unwrap().to_owned();
        let run = run_of(task);
        let path = format!("/api/v1/workflow-runs/{run}");
        let waiting = poll(&server, &bob, &path, |d| {
            d["run"]["status"] == "waiting" || ended(d)
        })
        .await;
        assert_eq!(waiting["run"]["status"], "waiting", "{waiting}");

        let canceled = call(
            &server,
            &bob_token,
            Some("1.0"),
            &json!({"jsonrpc": "2.0", "id": 2, "method": "CancelTask", "params": {"id": task_id}}),
        )
        .await;
        assert_eq!(
            canceled["result"]["status"]["state"], "TASK_STATE_CANCELED",
            "{canceled}"
        );
        let detail = poll(&server, &bob, &path, ended).await;
        assert_eq!(detail["run"]["status"], "cancelled", "{detail}");
        let cancels = records_of(&server, "workflow.run.cancel").await;
        assert_eq!(cancels.len(), 1);
        assert!(cancels[0].actor.starts_with("token:"), "{:?}", cancels[0]);

        server.stop().await.0.unwrap();
    }
}

/// Anonymous callers of the public tier reach a workflow published `public`, and not one
/// published to `federation`; having no account, their run acts as the workflow's owner.
#[tokio::test]
async fn the_public_tier_reaches_public_workflows_only_and_runs_them_as_their_owner() {
    for backend in backends() {
        let server = a2a_server(
            backend,
            &[
                (
                    "HIVE_RATE_LIMITS",
                    "login=10000/1m,register=10000/1m,setup=10000/1m,api=100000/1m,a2a=100000/1m,public_a2a=100000/1m",
                ),
                ("A2A_PUBLIC_JSONRPC_ENABLED", "true"),
                ("A2A_PUBLIC_JSONRPC_ALLOWED_METHODS", "message/send"),
            ],
        )
        .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (alice_user, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
        let (status, _) = save(&server, &alice, greeter("open-greeter", "public")).await;
        assert_eq!(status, 201);
        let mut shared = greeter("shared-greeter", "federation");
        shared["name"] = json!("shared");
        let (status, _) = save(&server, &alice, shared).await;
        assert_eq!(status, 201);

        let anonymous = |skill: &str| {
            json!({"jsonrpc": "2.0", "id": 3, "method": "message/send", "params": {
                "message": {"kind": "message", "messageId": format!("m-{skill}"), "role": "user",
                            "parts": [{"kind": "text", "text": "anyone"}],
                            "metadata": {"skill": skill}}}})
        };
        let response = server
            .client
            .request(Method::POST, "/api/a2a/jsonrpc/public")
            .json(&anonymous("open-greeter"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        let task = &answer["result"];
        assert_eq!(task["status"]["state"], "completed", "{answer}");
        assert_eq!(
            task["artifacts"][0]["parts"][0]["data"],
            json!({"greeting": "hello anyone"})
        );
        let run = run_of(task);
        let (_, detail) = get(&server, &alice, &format!("/api/v1/workflow-runs/{run}")).await;
        assert_eq!(detail["run"]["trigger"], "a2a", "{detail}");
        assert_eq!(detail["run"]["runAsUser"], alice_user["id"]);
        assert_eq!(detail["run"]["runAsToken"], Value::Null);

        let response = server
            .client
            .request(Method::POST, "/api/a2a/jsonrpc/public")
            .json(&anonymous("shared-greeter"))
            .send()
            .await
            .unwrap();
        let refused: Value = response.json().await.unwrap();
        assert_eq!(refused["error"]["code"], -32602, "{refused}");
        let starts = records_of(&server, "workflow.run.start").await;
        assert_eq!(starts.len(), 1, "the refused call started nothing");
        assert_eq!(starts[0].actor, "public");

        server.stop().await.0.unwrap();
    }
}
