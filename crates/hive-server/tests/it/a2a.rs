//! The A2A gateway over real HTTP, on every backend: agent cards by caller and version, every
//! JSON-RPC method of both protocol versions against the conformance agent, streams, task
//! isolation between callers, and who may call at all.

use crate::support::*;
use hive_a2a::sse::Decoder;
use hive_testkit::{TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};

pub(crate) const RPC: &str = "/api/a2a/jsonrpc";
const CARD: &str = "/.well-known/agent-card.json";

/// A server whose A2A limits stay out of the tests' way.
pub(crate) async fn a2a_server(
    backend: hive_testkit::TestBackend,
    vars: &[(&str, &str)],
) -> TestServer {
    let mut all = vec![(
        "HIVE_RATE_LIMITS",
        "login=10000/1m,register=10000/1m,setup=10000/1m,api=100000/1m,a2a=100000/1m",
    )];
    all.extend_from_slice(vars);
    identity_server_with(backend, &all).await
}

/// Registers and starts a conformance agent as `owner`; returns its id.
async fn conformance_agent(
    server: &TestServer,
    owner: &Browser,
    name: &str,
    visibility: &str,
) -> String {
    conformance_agent_with(
        server,
        owner,
        json!({ "name": name, "kind": "conformance", "visibility": visibility }),
    )
    .await
}

/// An OpenAI-compatible stand-in, and an A2A server whose egress guard lets Hive reach it.
pub(crate) async fn llm_server(
    backend: hive_testkit::TestBackend,
) -> (hive_testkit::llm::TestLlm, TestServer) {
    let llm = hive_testkit::llm::TestLlm::start().await;
    let server = a2a_server(
        backend,
        &[("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &llm.allowlist_entry())],
    )
    .await;
    (llm, server)
}

pub(crate) async fn conformance_agent_with(
    server: &TestServer,
    owner: &Browser,
    body: Value,
) -> String {
    let created = owner
        .send(server, Method::POST, "/api/v1/agents", Some(body))
        .await;
    assert_eq!(created.status(), 201);
    let agent: Value = created.json().await.unwrap();
    let id = agent["id"].as_str().unwrap().to_owned();
    let started = owner
        .send(
            server,
            Method::POST,
            &format!("/api/v1/agents/{id}/start"),
            None,
        )
        .await;
    assert_eq!(started.status(), 200);
    id
}

/// A server whose default agent is a conformance agent `tck` of the admin's, and an execute
/// token of the admin's.
async fn tck_server(
    backend: hive_testkit::TestBackend,
    visibility: &str,
) -> (TestServer, Browser, String) {
    let server = a2a_server(backend, &[("A2A_DEFAULT_AGENT", "tck")]).await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    conformance_agent(&server, &admin, "tck", visibility).await;
    let token = execute_token(&server, &admin).await;
    (server, admin, token)
}

/// An API token of `browser`'s user with the execute scope.
pub(crate) async fn execute_token(server: &TestServer, browser: &Browser) -> String {
    let token = create_token(
        server,
        browser,
        json!({ "name": "a2a", "scopes": ["execute"] }),
    )
    .await;
    token["token"].as_str().unwrap().to_owned()
}

/// One JSON-RPC call: the HTTP status and the body.
pub(crate) async fn call_at(
    server: &TestServer,
    path: &str,
    token: &str,
    version: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(Method::POST, path)
        .bearer_auth(token)
        .json(body);
    if let Some(version) = version {
        request = request.header("A2A-Version", version);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn call(
    server: &TestServer,
    token: &str,
    version: Option<&str>,
    body: &Value,
) -> Value {
    let (status, body) = call_at(server, RPC, token, version, body).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A JSON-RPC call of `method` with `params` (answered `200`): the whole response.
async fn rpc(
    server: &TestServer,
    token: &str,
    version: Option<&str>,
    method: &str,
    params: Value,
) -> Value {
    call(
        server,
        token,
        version,
        &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
    )
    .await
}

fn send_v1(message_id: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
        "message": {"messageId": message_id, "role": "ROLE_USER", "parts": [{"text": "hi"}]}}})
}

fn send_v03(message_id: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": "a", "method": "message/send", "params": {
        "message": {"kind": "message", "messageId": message_id, "role": "user",
                    "parts": [{"kind": "text", "text": "hi"}]}}})
}

/// The events of a stream, each the `result` (or `error`) of its JSON-RPC response.
pub(crate) async fn stream_events(
    server: &TestServer,
    path: &str,
    token: &str,
    version: Option<&str>,
    body: &Value,
) -> Vec<Value> {
    let mut request = server
        .client
        .request(Method::POST, path)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(body);
    if let Some(version) = version {
        request = request.header("A2A-Version", version);
    }
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let mut decoder = Decoder::new(1 << 20);
    let mut events = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        for event in decoder.feed(&chunk).unwrap() {
            let parsed: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(
                parsed["id"], body["id"],
                "every event carries the request's id"
            );
            events.push(if parsed.get("error").is_some() {
                json!({"error": parsed["error"]})
            } else {
                parsed["result"].clone()
            });
        }
    }
    events
}

#[tokio::test]
async fn cards_list_the_agents_the_caller_may_see_in_its_version() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
        let (_, vic) = add_user(&server, &admin, "vic@example.com", "viewer").await;
        conformance_agent(&server, &alice, "shared-bot", "federation").await;
        let private = conformance_agent(&server, &alice, "alice-only", "private").await;
        let public = conformance_agent(&server, &alice, "open-bot", "public").await;

        let skills = |card: &Value| -> Vec<String> {
            card["skills"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let anonymous: Value = server.client.get(CARD).await.json().await.unwrap();
        assert_eq!(
            skills(&anonymous),
            ["open-bot"],
            "anonymous: public agents only"
        );
        let vic_card: Value = vic
            .send(&server, Method::GET, CARD, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(skills(&vic_card), ["open-bot", "shared-bot"]);
        let alice_card: Value = alice
            .send(&server, Method::GET, CARD, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            skills(&alice_card),
            ["alice-only", "open-bot", "shared-bot"]
        );

        // No version header: the 0.3 shape; 1.0 on request.
        assert_eq!(anonymous["protocolVersion"], "0.3.0");
        assert_eq!(anonymous["preferredTransport"], "JSONRPC");
        assert_eq!(anonymous["url"], server.url(RPC));
        assert_eq!(anonymous["capabilities"]["streaming"], true);
        let v1 = server
            .client
            .request(Method::GET, CARD)
            .header("A2A-Version", "1.0")
            .send()
            .await
            .unwrap();
        let etag = v1.headers()["etag"].to_str().unwrap().to_owned();
        assert!(
            v1.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        assert!(v1.headers().contains_key("last-modified"));
        let v1: Value = v1.json().await.unwrap();
        assert_eq!(v1["supportedInterfaces"][0]["protocolVersion"], "1.0");
        assert_eq!(v1["supportedInterfaces"][0]["protocolBinding"], "JSONRPC");
        assert_eq!(v1["supportedInterfaces"][1]["protocolVersion"], "0.3.0");
        assert!(v1.get("protocolVersion").is_none());
        let again = server
            .client
            .request(Method::GET, CARD)
            .header("A2A-Version", "1.0")
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "the client has this card");
        let other_version = server
            .client
            .request(Method::GET, CARD)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(other_version.status(), 200, "another shape is another card");

        // Per-agent cards: what the caller may not see does not exist.
        let private_card = format!("/api/a2a/agents/{private}/agent-card.json");
        assert_eq!(
            vic.send(&server, Method::GET, &private_card, None)
                .await
                .status(),
            404
        );
        assert_eq!(server.client.get(&private_card).await.status(), 404);
        let own: Value = alice
            .send(&server, Method::GET, &private_card, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(own["name"], "alice-only");
        assert_eq!(
            own["url"],
            server.url(&format!("/api/a2a/agents/{private}/jsonrpc"))
        );
        let public_card = format!("/api/a2a/agents/{public}/agent-card.json");
        assert_eq!(server.client.get(&public_card).await.status(), 200);
    }
}

#[tokio::test]
async fn every_method_answers_in_both_versions() {
    for backend in backends() {
        let (server, _admin, token) = tck_server(backend, "federation").await;

        // SendMessage, 1.0: the task, completed, with the user's message and the agent's.
        let sent = call(
            &server,
            &token,
            Some("1.0"),
            &send_v1("tck-complete-task-1"),
        )
        .await;
        assert_eq!(sent["id"], 1);
        let task = &sent["result"]["task"];
        assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{sent}");
        assert_eq!(
            task["status"]["message"]["parts"][0]["text"],
            "Hello from TCK"
        );
        assert!(task["status"]["timestamp"].is_string());
        assert_eq!(task["history"][0]["messageId"], "tck-complete-task-1");
        let task_id = task["id"].as_str().unwrap().to_owned();

        // message/send, 0.3: the same agent, 0.3's shapes (a second later: listings are by
        // status time).
        server.clock.advance(time::Duration::seconds(1));
        let sent = call(&server, &token, None, &send_v03("tck-artifact-data-1")).await;
        assert_eq!(sent["id"], "a");
        let result = &sent["result"];
        assert_eq!(result["kind"], "task");
        assert_eq!(result["status"]["state"], "completed");
        assert_eq!(result["artifacts"][0]["parts"][0]["kind"], "data");
        assert_eq!(result["artifacts"][0]["parts"][0]["data"]["count"], 42);
        let data_task = result["id"].as_str().unwrap().to_owned();

        // A direct message, no task.
        let message = call(
            &server,
            &token,
            Some("1.0"),
            &send_v1("tck-message-response-1"),
        )
        .await;
        assert_eq!(message["result"]["message"]["role"], "ROLE_AGENT");
        let message = call(&server, &token, None, &send_v03("tck-message-response-2")).await;
        assert_eq!(message["result"]["kind"], "message");

        // GetTask / tasks/get, with historyLength.
        let got = rpc(
            &server,
            &token,
            Some("1.0"),
            "GetTask",
            json!({"id": task_id, "historyLength": 0}),
        )
        .await;
        assert_eq!(got["result"]["id"], task_id.as_str());
        assert!(
            got["result"].get("history").is_none(),
            "historyLength 0: no history"
        );
        let got = rpc(&server, &token, None, "tasks/get", json!({"id": data_task})).await;
        assert_eq!(got["result"]["kind"], "task");
        let missing = rpc(
            &server,
            &token,
            Some("1.0"),
            "GetTask",
            json!({"id": "no-such-task"}),
        )
        .await;
        assert_eq!(missing["error"]["code"], -32001);
        assert_eq!(missing["error"]["data"][0]["reason"], "TASK_NOT_FOUND");

        // ListTasks (1.0 only): newest status first, artifacts only when asked for.
        let listed = rpc(&server, &token, Some("1.0"), "ListTasks", json!({})).await;
        let tasks = listed["result"]["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0]["id"], data_task.as_str());
        assert!(tasks[0].get("artifacts").is_none());
        assert_eq!(listed["result"]["nextPageToken"], "");
        let paged = rpc(
            &server,
            &token,
            Some("1.0"),
            "ListTasks",
            json!({"pageSize": 1, "includeArtifacts": true}),
        )
        .await;
        assert_eq!(
            paged["result"]["tasks"][0]["artifacts"][0]["parts"][0]["data"]["key"],
            "value"
        );
        let token_next = paged["result"]["nextPageToken"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!token_next.is_empty());
        let rest = rpc(
            &server,
            &token,
            Some("1.0"),
            "ListTasks",
            json!({"pageSize": 1, "pageToken": token_next}),
        )
        .await;
        assert_eq!(rest["result"]["tasks"][0]["id"], task_id.as_str());

        // Cancel: an input-required task is canceled; a completed one is not cancelable.
        let waiting = call(
            &server,
            &token,
            Some("1.0"),
            &send_v1("tck-input-required-1"),
        )
        .await;
        assert_eq!(
            waiting["result"]["task"]["status"]["state"],
            "TASK_STATE_INPUT_REQUIRED"
        );
        let waiting_id = waiting["result"]["task"]["id"].as_str().unwrap().to_owned();
        let canceled = rpc(
            &server,
            &token,
            None,
            "tasks/cancel",
            json!({"id": waiting_id}),
        )
        .await;
        assert_eq!(
            canceled["result"]["status"]["state"], "canceled",
            "{canceled}"
        );
        let again = rpc(
            &server,
            &token,
            Some("1.0"),
            "CancelTask",
            json!({"id": task_id}),
        )
        .await;
        assert_eq!(again["error"]["code"], -32002);

        // Follow-up on an input-required task completes it.
        let asked = call(
            &server,
            &token,
            Some("1.0"),
            &send_v1("tck-input-required-2"),
        )
        .await;
        let asked_id = asked["result"]["task"]["id"].as_str().unwrap().to_owned();
        let answer = json!({"jsonrpc": "2.0", "id": 10, "method": "SendMessage", "params": {
            "message": {"messageId": "tck-complete-task-2", "taskId": asked_id, "role": "ROLE_USER",
                        "parts": [{"text": "here"}]}}});
        let done = call(&server, &token, Some("1.0"), &answer).await;
        assert_eq!(
            done["result"]["task"]["status"]["state"],
            "TASK_STATE_COMPLETED"
        );
        assert_eq!(done["result"]["task"]["id"], asked_id.as_str());
        let history = done["result"]["task"]["history"].as_array().unwrap();
        assert!(
            history
                .iter()
                .any(|m| m["messageId"] == "tck-complete-task-2")
        );

        // A stream: the task, then its updates, in order, closed at the end.
        let streamed = stream_events(
            &server,
            RPC,
            &token,
            Some("1.0"),
            &json!({"jsonrpc": "2.0",
            "id": 11, "method": "SendStreamingMessage", "params": {"message": {
            "messageId": "tck-stream-001-a", "role": "ROLE_USER", "parts": [{"text": "go"}]}}}),
        )
        .await;
        assert_eq!(streamed.len(), 4, "{streamed:?}");
        assert_eq!(
            streamed[0]["task"]["status"]["state"],
            "TASK_STATE_SUBMITTED"
        );
        assert_eq!(
            streamed[1]["statusUpdate"]["status"]["state"],
            "TASK_STATE_WORKING"
        );
        assert_eq!(
            streamed[2]["artifactUpdate"]["artifact"]["parts"][0]["text"],
            "Stream hello from TCK"
        );
        assert_eq!(
            streamed[3]["statusUpdate"]["status"]["state"],
            "TASK_STATE_COMPLETED"
        );
        let streamed = stream_events(&server, RPC, &token, None, &json!({"jsonrpc": "2.0",
            "id": 12, "method": "message/stream", "params": {"message": {"kind": "message",
            "messageId": "tck-stream-002-a", "role": "user", "parts": [{"kind": "text", "text": "go"}]}}})).await;
        assert_eq!(streamed.len(), 2, "{streamed:?}");
        assert_eq!(streamed[0]["kind"], "task");
        assert_eq!(streamed[1]["kind"], "status-update");
        assert_eq!(streamed[1]["final"], true);

        // Subscribing to a terminal task is an error, answered as JSON, not a stream.
        let terminal = rpc(
            &server,
            &token,
            Some("1.0"),
            "SubscribeToTask",
            json!({"id": task_id}),
        )
        .await;
        assert_eq!(terminal["error"]["code"], -32004);

        // The extended card, push configs (not offered), unknown methods and versions.
        let card = rpc(
            &server,
            &token,
            Some("1.0"),
            "GetExtendedAgentCard",
            json!({}),
        )
        .await;
        assert_eq!(card["result"]["skills"][0]["id"], "tck");
        let card = rpc(
            &server,
            &token,
            None,
            "agent/getAuthenticatedExtendedCard",
            json!({}),
        )
        .await;
        assert_eq!(card["result"]["protocolVersion"], "0.3.0");
        let push = rpc(
            &server,
            &token,
            None,
            "tasks/pushNotificationConfig/get",
            json!({"id": task_id,
            "pushNotificationConfigId": "none"}),
        )
        .await;
        assert_eq!(push["error"]["code"], -32001, "no such config: {push}");
        let unknown = rpc(
            &server,
            &token,
            Some("1.0"),
            "tasks/get",
            json!({"id": task_id}),
        )
        .await;
        assert_eq!(
            unknown["error"]["code"], -32601,
            "0.3 names are not 1.0 methods"
        );
        let version = call(&server, &token, Some("2.0"), &send_v1("x")).await;
        assert_eq!(version["error"]["code"], -32009);
        let (status, parse) = call_at(&server, RPC, &token, None, &json!("not an object")).await;
        assert_eq!(status, 200);
        assert_eq!(parse["error"]["code"], -32600);
        // A notification (no id) is judged on its method and params first, answered with a
        // null id.
        for (notification, code) in [
            (
                json!({"jsonrpc": "2.0", "method": "message/ssend", "params": {}}),
                -32601,
            ),
            (
                json!({"jsonrpc": "2.0", "method": "message/send", "params": {"": "not_a_dict"}}),
                -32602,
            ),
            (
                json!({"jsonrpc": "2.0", "method": "tasks/get", "params": {"id": task_id}}),
                -32600,
            ),
        ] {
            let (status, answer) = call_at(&server, RPC, &token, None, &notification).await;
            assert_eq!(status, 200);
            assert_eq!(answer["error"]["code"], code, "{notification}");
            assert_eq!(answer["id"], Value::Null, "{notification}");
        }

        // Every call is audited, without contents.
        let records = records_of(&server, "a2a.call").await;
        assert!(records.len() >= 17);
        let text: String = records.iter().map(|r| r.detail.as_str()).collect();
        assert!(text.contains("\"method\":\"SendMessage\""));
        assert!(!text.contains("Hello from TCK") && !text.contains("\"hi\""));
    }
}

#[tokio::test]
async fn two_subscribers_see_the_same_events_in_the_same_order() {
    for backend in backends() {
        let (server, _admin, token) = tck_server(backend, "private").await;
        // Stays working for a few seconds: long enough to subscribe.
        let started = rpc(
            &server,
            &token,
            Some("1.0"),
            "SendMessage",
            json!({"configuration": {"returnImmediately": true},
            "message": {"messageId": "test-resubscribe-message-id", "role": "ROLE_USER",
                        "parts": [{"text": "hold"}]}}),
        )
        .await;
        let task = &started["result"]["task"];
        assert_ne!(
            task["status"]["state"], "TASK_STATE_COMPLETED",
            "returned at once"
        );
        let id = task["id"].as_str().unwrap().to_owned();
        let subscribe = |rpc_id: i64| {
            json!({"jsonrpc": "2.0", "id": rpc_id,
            "method": "SubscribeToTask", "params": {"id": id}})
        };
        let (one, two) = (subscribe(2), subscribe(3));
        let (first, second) = tokio::join!(
            stream_events(&server, RPC, &token, Some("1.0"), &one),
            stream_events(&server, RPC, &token, Some("1.0"), &two),
        );
        for events in [&first, &second] {
            assert_eq!(
                events[0]["task"]["id"],
                id.as_str(),
                "the current task first"
            );
            let last = events.last().unwrap();
            assert_eq!(
                last["statusUpdate"]["status"]["state"],
                "TASK_STATE_COMPLETED"
            );
        }
        let tail = |events: &[Value]| events[1..].to_vec();
        assert_eq!(
            tail(&first),
            tail(&second),
            "the same events, in the same order"
        );
    }
}

#[tokio::test]
async fn tasks_belong_to_their_caller() {
    for backend in backends() {
        let server = a2a_server(backend, &[("A2A_DEFAULT_AGENT", "tck")]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, alice) = add_user(&server, &admin, "alice@example.com", "viewer").await;
        let (_, bob) = add_user(&server, &admin, "bob@example.com", "viewer").await;
        let tck = conformance_agent(&server, &admin, "tck", "federation").await;
        let other = conformance_agent(&server, &admin, "other", "federation").await;
        let alice_token = execute_token(&server, &alice).await;
        let bob_token = execute_token(&server, &bob).await;

        let sent = call(
            &server,
            &alice_token,
            Some("1.0"),
            &send_v1("tck-input-required-a"),
        )
        .await;
        let alice_task = sent["result"]["task"]["id"].as_str().unwrap().to_owned();
        call(
            &server,
            &bob_token,
            Some("1.0"),
            &send_v1("tck-complete-task-b"),
        )
        .await;

        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}});
        let alices = call(&server, &alice_token, Some("1.0"), &list).await;
        let bobs = call(&server, &bob_token, Some("1.0"), &list).await;
        assert_eq!(alices["result"]["tasks"].as_array().unwrap().len(), 1);
        assert_eq!(bobs["result"]["tasks"].as_array().unwrap().len(), 1);
        assert_ne!(
            alices["result"]["tasks"][0]["id"],
            bobs["result"]["tasks"][0]["id"]
        );

        // Another's task does not exist, whatever the method.
        for (method, params) in [
            ("GetTask", json!({"id": alice_task})),
            ("CancelTask", json!({"id": alice_task})),
            ("SubscribeToTask", json!({"id": alice_task})),
            (
                "SendMessage",
                json!({"message": {"messageId": "m", "taskId": alice_task,
                "role": "ROLE_USER", "parts": [{"text": "x"}]}}),
            ),
        ] {
            let answer = call(
                &server,
                &bob_token,
                Some("1.0"),
                &json!({"jsonrpc": "2.0", "id": 2, "method": method, "params": params}),
            )
            .await;
            assert_eq!(answer["error"]["code"], -32001, "{method}: {answer}");
        }
        // The task is still Alice's, still waiting.
        let got = rpc(
            &server,
            &alice_token,
            Some("1.0"),
            "GetTask",
            json!({"id": alice_task}),
        )
        .await;
        assert_eq!(
            got["result"]["status"]["state"],
            "TASK_STATE_INPUT_REQUIRED"
        );

        // At an agent's own endpoint, only that agent's tasks exist.
        let get =
            json!({"jsonrpc": "2.0", "id": 4, "method": "GetTask", "params": {"id": alice_task}});
        let (_, at_other) = call_at(
            &server,
            &format!("/api/a2a/agents/{other}/jsonrpc"),
            &alice_token,
            Some("1.0"),
            &get,
        )
        .await;
        assert_eq!(at_other["error"]["code"], -32001);
        let (_, at_tck) = call_at(
            &server,
            &format!("/api/a2a/agents/{tck}/jsonrpc/"),
            &alice_token,
            Some("1.0"),
            &get,
        )
        .await;
        assert_eq!(
            at_tck["result"]["id"],
            alice_task.as_str(),
            "trailing slash accepted"
        );
    }
}

#[tokio::test]
async fn who_may_call_and_how_much() {
    for backend in backends() {
        let server = a2a_server(backend, &[("A2A_JSONRPC_MIN_ROLE", "operator")]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, vic) = add_user(&server, &admin, "vic@example.com", "viewer").await;
        let (_, olga) = add_user(&server, &admin, "olga@example.com", "operator").await;
        let limited = conformance_agent_with(&server, &olga, json!({"name": "tck",
            "kind": "conformance", "visibility": "federation",
            "limits": {"requestsPerMinute": 2, "tokensPerDay": 0, "concurrentTasks": 4, "timeoutSeconds": 30}})).await;
        let private = conformance_agent(&server, &olga, "mine", "private").await;
        let send = |name: &str| {
            json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
            "message": {"messageId": "tck-complete-task", "role": "ROLE_USER", "parts": [{"text": "x"}],
                        "metadata": {"skill": name}}}})
        };

        let vic_token = execute_token(&server, &vic).await;
        let (status, _) = call_at(&server, RPC, &vic_token, Some("1.0"), &send("tck")).await;
        assert_eq!(status, 403, "below A2A_JSONRPC_MIN_ROLE");
        let read_only =
            create_token(&server, &olga, json!({"name": "ro", "scopes": ["read"]})).await;
        let (status, _) = call_at(
            &server,
            RPC,
            read_only["token"].as_str().unwrap(),
            Some("1.0"),
            &send("tck"),
        )
        .await;
        assert_eq!(status, 403, "a token needs the execute scope");
        // Refusals before the JSON-RPC layer still answer as JSON-RPC, with their HTTP status.
        let anonymous = server
            .client
            .request(Method::POST, RPC)
            .json(&send("tck"))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
        assert!(anonymous.headers().contains_key("www-authenticate"));
        let body: Value = anonymous.json().await.unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(
            body["id"], 1,
            "the request's id, read from its body: {body}"
        );
        assert_eq!(body["error"]["code"], -32600);
        assert_eq!(body["error"]["data"][0]["reason"], "UNAUTHENTICATED");
        assert_eq!(body["error"]["data"][0]["metadata"]["httpStatus"], "401");
        let plain = server
            .client
            .request(Method::POST, RPC)
            .bearer_auth(&vic_token)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), 415);
        let body: Value = plain.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], -32005,
            "content type not supported: {body}"
        );
        // Elsewhere the API keeps its own error shape.
        let rest: Value = server
            .client
            .get("/api/v1/agents")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(rest["error"]["code"], "unauthenticated");

        // Admins see every agent; an operator another's private agent not.
        let admin_token = execute_token(&server, &admin).await;
        let olga_token = execute_token(&server, &olga).await;
        let ok = call(&server, &admin_token, Some("1.0"), &send("mine")).await;
        assert_eq!(
            ok["result"]["task"]["status"]["state"],
            "TASK_STATE_COMPLETED"
        );
        let (_, other) = add_user(&server, &admin, "oscar@example.com", "operator").await;
        let oscar_token = execute_token(&server, &other).await;
        let hidden = call(&server, &oscar_token, Some("1.0"), &send("mine")).await;
        assert_eq!(hidden["error"]["code"], -32602, "{hidden}");
        let (status, _) = call_at(
            &server,
            &format!("/api/a2a/agents/{private}/jsonrpc"),
            &oscar_token,
            Some("1.0"),
            &send("mine"),
        )
        .await;
        assert_eq!(status, 404);
        let nameless = call(&server, &olga_token, Some("1.0"), &send_v1("x")).await;
        assert_eq!(
            nameless["error"]["code"], -32602,
            "no skill and no default agent"
        );

        // The agent's requests-a-minute limit.
        let path = format!("/api/a2a/agents/{limited}/jsonrpc");
        for _ in 0..2 {
            let (status, _) =
                call_at(&server, &path, &olga_token, Some("1.0"), &send_v1("y")).await;
            assert_eq!(status, 200);
        }
        let over = server
            .client
            .request(Method::POST, &path)
            .bearer_auth(&olga_token)
            .header("A2A-Version", "1.0")
            .json(&send_v1("z"))
            .send()
            .await
            .unwrap();
        assert_eq!(over.status(), 429);
        assert!(over.headers().contains_key("retry-after"));
        // A JSON-RPC answer with the request's id and a server-busy code, not an internal error.
        let over: Value = over.json().await.unwrap();
        assert_eq!(over["id"], 1, "{over}");
        assert_eq!(over["error"]["code"], -32000, "{over}");
        assert_eq!(over["error"]["data"][0]["reason"], "AGENT_BUSY", "{over}");

        // A stopped agent is not called.
        let stopped = olga
            .send(
                &server,
                Method::POST,
                &format!("/api/v1/agents/{private}/stop"),
                None,
            )
            .await;
        assert_eq!(stopped.status(), 200);
        let not_ready = call(&server, &olga_token, Some("1.0"), &send("mine")).await;
        assert!(
            not_ready["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not ready")
        );

        let status: Value = vic
            .send(&server, Method::GET, "/api/v1/a2a/status", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(status["minRole"], "operator");
        assert_eq!(status["streamsPerUser"], 5);
        assert_eq!(
            status["readyAgents"], 1,
            "vic sees the federation agent only"
        );
    }
}

/// A remote agent that is itself a Hive instance, called in both protocol versions: Hive keeps
/// its own task ids, follows streams and cancels upstream.
#[tokio::test]
async fn a_remote_agent_that_is_another_hive() {
    for backend in backends() {
        let upstream = a2a_server(backend, &[("A2A_DEFAULT_AGENT", "upstream-tck")]).await;
        setup_admin(&upstream).await;
        let upstream_admin = login(&upstream, ADMIN_EMAIL, PASSWORD).await;
        let upstream_agent =
            conformance_agent(&upstream, &upstream_admin, "upstream-tck", "federation").await;
        let upstream_token = execute_token(&upstream, &upstream_admin).await;
        let port = upstream.base_url.rsplit(':').next().unwrap().to_owned();

        let allow = format!("127.0.0.1:{port}");
        let server = a2a_server(backend, &[("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &allow)]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let secret = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/secrets",
                Some(json!({"name": "upstream", "value": upstream_token})),
            )
            .await;
        assert_eq!(secret.status(), 201);
        let secret: Value = secret.json().await.unwrap();
        let remote = |name: &str, url: String, version: &str| {
            json!({"name": name, "kind": "remote",
            "visibility": "federation", "runtime": {"url": url, "protocolVersion": version,
            "credentialSecretId": secret["id"]}})
        };
        conformance_agent_with(
            &server,
            &admin,
            remote(
                "up-v1",
                upstream.url(&format!("/api/a2a/agents/{upstream_agent}/jsonrpc")),
                "1.0",
            ),
        )
        .await;
        conformance_agent_with(&server, &admin, remote("up-v03", upstream.url(RPC), "0.3")).await;
        let token = execute_token(&server, &admin).await;
        let to = |skill: &str, message_id: &str, method: &str| {
            json!({"jsonrpc": "2.0", "id": 1,
            "method": method, "params": {"message": {"messageId": message_id, "role": "ROLE_USER",
            "parts": [{"text": "via hive"}], "metadata": {"skill": skill}}}})
        };

        for skill in ["up-v1", "up-v03"] {
            let sent = call(
                &server,
                &token,
                Some("1.0"),
                &to(skill, "tck-complete-task-r", "SendMessage"),
            )
            .await;
            let task = &sent["result"]["task"];
            assert_eq!(
                task["status"]["state"], "TASK_STATE_COMPLETED",
                "{skill}: {sent}"
            );
            assert_eq!(
                task["status"]["message"]["parts"][0]["text"],
                "Hello from TCK"
            );
            let id = task["id"].as_str().unwrap().to_owned();
            let got = rpc(&server, &token, None, "tasks/get", json!({"id": id})).await;
            assert_eq!(
                got["result"]["status"]["state"], "completed",
                "{skill}: {got}"
            );
            // Hive's id is not the upstream's: the upstream does not know it.
            let upstream_view = rpc(
                &upstream,
                &upstream_token,
                Some("1.0"),
                "GetTask",
                json!({"id": id}),
            )
            .await;
            assert_eq!(upstream_view["error"]["code"], -32001, "{skill}");

            let streamed = stream_events(
                &server,
                RPC,
                &token,
                Some("1.0"),
                &to(skill, "tck-stream-001-r", "SendStreamingMessage"),
            )
            .await;
            assert_eq!(streamed.len(), 4, "{skill}: {streamed:?}");
            let stream_task = streamed[0]["task"]["id"].as_str().unwrap().to_owned();
            assert_eq!(streamed[1]["statusUpdate"]["taskId"], stream_task.as_str());
            assert_eq!(
                streamed[2]["artifactUpdate"]["taskId"],
                stream_task.as_str()
            );
            assert_eq!(
                streamed[3]["statusUpdate"]["status"]["state"],
                "TASK_STATE_COMPLETED"
            );

            let waiting = call(
                &server,
                &token,
                Some("1.0"),
                &to(skill, "tck-input-required-r", "SendMessage"),
            )
            .await;
            let waiting_id = waiting["result"]["task"]["id"].as_str().unwrap().to_owned();
            let canceled = rpc(
                &server,
                &token,
                Some("1.0"),
                "CancelTask",
                json!({"id": waiting_id}),
            )
            .await;
            assert_eq!(
                canceled["result"]["status"]["state"], "TASK_STATE_CANCELED",
                "{skill}: {canceled}"
            );
            assert_eq!(canceled["result"]["id"], waiting_id.as_str());
        }
        // Upstream, the tasks are Hive's caller's: three per agent, one canceled each.
        let listed = rpc(
            &upstream,
            &upstream_token,
            Some("1.0"),
            "ListTasks",
            json!({}),
        )
        .await;
        let tasks = listed["result"]["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 6, "{listed}");
        let canceled = tasks
            .iter()
            .filter(|t| t["status"]["state"] == "TASK_STATE_CANCELED")
            .count();
        assert_eq!(canceled, 2);
        // Contexts upstream are Hive's derivations, never the caller's own ids.
        assert!(
            tasks
                .iter()
                .all(|t| t["contextId"].as_str().unwrap().starts_with("hive-"))
        );
    }
}

/// Receives push notifications on loopback: each delivery's token header and body.
async fn push_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
) {
    use axum::routing::post;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sender = sender.clone();
                async move {
                    let token = headers
                        .get("x-a2a-notification-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let _ =
                        sender.send((token, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("127.0.0.1:{}", address.port()), receiver)
}

#[tokio::test]
async fn push_notifications_reach_the_callers_receiver() {
    for backend in backends() {
        let (host, mut deliveries) = push_receiver().await;
        let hook = format!("http://{host}/hook");
        let server = a2a_server(
            backend,
            &[
                ("A2A_DEFAULT_AGENT", "tck"),
                ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &host),
            ],
        )
        .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, eve) = add_user(&server, &admin, "eve@example.com", "viewer").await;
        conformance_agent(&server, &admin, "tck", "federation").await;
        let token = execute_token(&server, &admin).await;
        let eve_token = execute_token(&server, &eve).await;
        hive_testkit::capture::canary("push-token-0123456789abcdef");

        // A config given with the message gets the task's first notifications.
        let sent = rpc(&server, &token, Some("1.0"), "SendMessage", json!({
            "configuration": {"taskPushNotificationConfig": {"url": hook, "token": "push-token-0123456789abcdef"}},
            "message": {"messageId": "tck-input-required-p", "role": "ROLE_USER", "parts": [{"text": "x"}]}})).await;
        let task_id = sent["result"]["task"]["id"].as_str().unwrap().to_owned();
        loop {
            let (token_header, body) = deliveries.recv().await.unwrap();
            assert_eq!(token_header, "push-token-0123456789abcdef");
            assert_eq!(body["task"]["id"], task_id.as_str());
            if body["task"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED" {
                break;
            }
        }

        // The config methods, in both versions; the token is never read back.
        let set = rpc(
            &server,
            &token,
            None,
            "tasks/pushNotificationConfig/set",
            json!({"taskId": task_id,
            "pushNotificationConfig": {"id": "second", "url": hook}}),
        )
        .await;
        assert_eq!(
            set["result"]["pushNotificationConfig"]["id"], "second",
            "{set}"
        );
        let listed = rpc(
            &server,
            &token,
            Some("1.0"),
            "ListTaskPushNotificationConfigs",
            json!({"taskId": task_id}),
        )
        .await;
        let configs = listed["result"]["configs"].as_array().unwrap();
        assert_eq!(configs.len(), 2, "{listed}");
        assert!(!listed.to_string().contains("push-token-0123456789abcdef"));
        let first_id = configs.iter().find(|c| c["id"] != "second").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let got = rpc(
            &server,
            &token,
            Some("1.0"),
            "GetTaskPushNotificationConfig",
            json!({"taskId": task_id, "id": "second"}),
        )
        .await;
        assert_eq!(got["result"]["url"], hook.as_str(), "{got}");
        // Not Eve's task: its configs do not exist for her.
        let theirs = rpc(
            &server,
            &eve_token,
            Some("1.0"),
            "GetTaskPushNotificationConfig",
            json!({"taskId": task_id, "id": "second"}),
        )
        .await;
        assert_eq!(theirs["error"]["code"], -32001);
        let deleted = rpc(
            &server,
            &token,
            Some("1.0"),
            "DeleteTaskPushNotificationConfig",
            json!({"taskId": task_id, "id": first_id}),
        )
        .await;
        assert_eq!(deleted["result"], json!({}), "{deleted}");
        let refused = rpc(
            &server,
            &token,
            Some("1.0"),
            "CreateTaskPushNotificationConfig",
            json!({"taskId": task_id,
            "url": "http://10.0.0.1/hook"}),
        )
        .await;
        assert_eq!(
            refused["error"]["code"], -32602,
            "a private address is refused: {refused}"
        );

        // The task completes: only the remaining config hears of it.
        rpc(
            &server,
            &token,
            Some("1.0"),
            "SendMessage",
            json!({"message": {"messageId": "tck-complete-task-p", "taskId": task_id,
            "role": "ROLE_USER", "parts": [{"text": "done"}]}}),
        )
        .await;
        loop {
            let (token_header, body) = deliveries.recv().await.unwrap();
            if body["task"]["status"]["state"] == "TASK_STATE_COMPLETED" {
                assert_ne!(
                    token_header, "push-token-0123456789abcdef",
                    "the deleted config is not called"
                );
                break;
            }
        }
    }
}

/// An `llm` agent against an OpenAI-compatible server started here: answers streamed as an
/// artifact, the conversation and the key sent, tokens recorded and budgeted, failures told.
#[tokio::test]
async fn an_llm_agent_answers_from_its_model() {
    use hive_testkit::llm::LlmMisbehaviour;
    for backend in backends() {
        let (llm, server) = llm_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        hive_testkit::capture::canary("sk-test-llm-key-0123456789");
        let secret = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/secrets",
                Some(json!({"name": "model-key", "value": "sk-test-llm-key-0123456789"})),
            )
            .await;
        let secret: Value = secret.json().await.unwrap();
        let agent = |name: &str, tokens: u64| {
            json!({"name": name, "kind": "llm", "visibility": "federation",
            "runtime": {"baseUrl": llm.base_url(), "model": "test-model", "systemPrompt": "Be brief.",
                        "apiKeySecretId": secret["id"]},
            "limits": {"requestsPerMinute": 100, "tokensPerDay": tokens, "concurrentTasks": 4, "timeoutSeconds": 30}})
        };
        let chat = conformance_agent_with(&server, &admin, agent("chat", 0)).await;
        let token = execute_token(&server, &admin).await;
        let say = |skill: &str, text: &str, context: Option<&str>, method: &str| {
            let mut message = json!({"messageId": uuid::Uuid::new_v4().to_string(), "role": "ROLE_USER",
                "parts": [{"text": text}], "metadata": {"skill": skill}});
            if let Some(context) = context {
                message["contextId"] = json!(context);
            }
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}})
        };

        let sent = call(
            &server,
            &token,
            Some("1.0"),
            &say("chat", "hello there", None, "SendMessage"),
        )
        .await;
        let task = &sent["result"]["task"];
        assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{sent}");
        assert_eq!(
            task["status"]["message"]["parts"][0]["text"],
            "echo: hello there"
        );
        // The streamed chunks are kept as one text part.
        assert_eq!(
            task["artifacts"][0]["parts"],
            json!([{"text": "echo: hello there"}]),
            "{task}"
        );
        let context = task["contextId"].as_str().unwrap().to_owned();
        let request = llm.requests().last().unwrap().clone();
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer sk-test-llm-key-0123456789")
        );
        assert_eq!(request.body["model"], "test-model");
        assert_eq!(
            request.body["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            request.body["messages"][1],
            json!({"role": "user", "content": "hello there"})
        );

        // The next message in the same context carries the conversation so far.
        let streamed = stream_events(
            &server,
            RPC,
            &token,
            Some("1.0"),
            &say("chat", "and again", Some(&context), "SendStreamingMessage"),
        )
        .await;
        assert_eq!(
            streamed[0]["task"]["status"]["state"],
            "TASK_STATE_SUBMITTED"
        );
        assert_eq!(
            streamed[1]["statusUpdate"]["status"]["state"],
            "TASK_STATE_WORKING"
        );
        let chunks: Vec<&Value> = streamed
            .iter()
            .filter_map(|e| e.get("artifactUpdate"))
            .collect();
        assert!(!chunks.is_empty());
        assert_eq!(chunks.last().unwrap()["lastChunk"], true);
        let text: String = chunks
            .iter()
            .map(|c| c["artifact"]["parts"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, "echo: and again");
        assert_eq!(
            streamed.last().unwrap()["statusUpdate"]["status"]["state"],
            "TASK_STATE_COMPLETED"
        );
        let requests = llm.requests();
        let history = &requests.last().unwrap().body["messages"];
        let said: Vec<(&str, &str)> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        assert_eq!(
            said,
            [
                ("system", "Be brief."),
                ("user", "hello there"),
                ("assistant", "echo: hello there"),
                ("user", "and again")
            ]
        );

        // Tokens are recorded per call.
        let chat_id: uuid::Uuid = chat.parse().unwrap();
        let epoch = time::OffsetDateTime::UNIX_EPOCH;
        let used = server
            .hive
            .store
            .usage()
            .tokens_since(chat_id, epoch)
            .await
            .unwrap();
        assert!(used > 0);

        // A daily budget: spent by the first call, the next waits for tomorrow.
        conformance_agent_with(&server, &admin, agent("budgeted", 1)).await;
        let first = call(
            &server,
            &token,
            Some("1.0"),
            &say("budgeted", "one", None, "SendMessage"),
        )
        .await;
        assert_eq!(
            first["result"]["task"]["status"]["state"],
            "TASK_STATE_COMPLETED"
        );
        let (status, _) = call_at(
            &server,
            RPC,
            &token,
            Some("1.0"),
            &say("budgeted", "two", None, "SendMessage"),
        )
        .await;
        assert_eq!(status, 429, "the day's tokens are spent");

        // A failing endpoint fails the task, saying what went wrong but not the error body.
        llm.misbehave(LlmMisbehaviour::Status(500));
        let failed = call(
            &server,
            &token,
            Some("1.0"),
            &say("chat", "boom", None, "SendMessage"),
        )
        .await;
        let task = &failed["result"]["task"];
        assert_eq!(task["status"]["state"], "TASK_STATE_FAILED", "{failed}");
        let why = task["status"]["message"]["parts"][0]["text"]
            .as_str()
            .unwrap();
        assert_eq!(
            why, "the model endpoint failed: the endpoint answered HTTP 500",
            "{why}"
        );
        assert!(!failed.to_string().contains("sk-test-llm-key"));
    }
}

/// A subscriber of a task that waits for input follows it through the client's answer to its
/// end: the follow-up's task snapshot (still input-required) does not close the stream.
#[tokio::test]
async fn a_subscriber_of_an_input_required_task_sees_it_complete() {
    for backend in backends() {
        let (server, _admin, token) = tck_server(backend, "private").await;
        let started = call(
            &server,
            &token,
            Some("1.0"),
            &send_v1("tck-input-required-s"),
        )
        .await;
        let task = &started["result"]["task"];
        assert_eq!(task["status"]["state"], "TASK_STATE_INPUT_REQUIRED");
        let id = task["id"].as_str().unwrap().to_owned();
        let mut subscription = server
            .client
            .request(Method::POST, RPC)
            .bearer_auth(&token)
            .header("A2A-Version", "1.0")
            .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "SubscribeToTask", "params": {"id": id}}))
            .send()
            .await
            .unwrap();
        let mut decoder = Decoder::new(1 << 20);
        let mut events: Vec<Value> = Vec::new();
        let mut answered = false;
        while let Some(chunk) = subscription.chunk().await.unwrap() {
            for event in decoder.feed(&chunk).unwrap() {
                let parsed: Value = serde_json::from_str(&event.data).unwrap();
                events.push(parsed["result"].clone());
            }
            // Subscribed (the current task came): now the client answers.
            if !answered && !events.is_empty() {
                answered = true;
                let answer = rpc(
                    &server,
                    &token,
                    Some("1.0"),
                    "SendMessage",
                    json!({"message": {
                    "messageId": "tck-complete-task-s", "taskId": id, "role": "ROLE_USER",
                    "parts": [{"text": "done"}]}}),
                )
                .await;
                assert_eq!(
                    answer["result"]["task"]["status"]["state"],
                    "TASK_STATE_COMPLETED"
                );
            }
        }
        assert_eq!(
            events[0]["task"]["id"],
            id.as_str(),
            "the current task first"
        );
        assert_eq!(
            events[0]["task"]["status"]["state"],
            "TASK_STATE_INPUT_REQUIRED"
        );
        let last = events.last().unwrap();
        assert_eq!(
            last["statusUpdate"]["status"]["state"], "TASK_STATE_COMPLETED",
            "{events:?}"
        );
    }
}

/// A remote agent whose endpoint does not speak A2A, or whose credential secret is gone: the
/// call fails with a JSON-RPC error that says so, and nothing of the credential.
#[tokio::test]
async fn a_failing_remote_agent_is_reported_without_its_credential() {
    for backend in backends() {
        let host = hive_testkit::agent_card::CardHost::start(json!({"name": "not-a2a"})).await;
        let server = a2a_server(
            backend,
            &[("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &host.allowlist_entry())],
        )
        .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        hive_testkit::capture::canary("sk-remote-credential-0123456789");
        let secret: Value = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/secrets",
                Some(json!({"name": "upstream", "value": "sk-remote-credential-0123456789"})),
            )
            .await
            .json()
            .await
            .unwrap();
        // Its endpoint answers GET (so it starts ready) but no JSON-RPC.
        let agent = conformance_agent_with(
            &server,
            &admin,
            json!({"name": "broken", "kind": "remote",
            "visibility": "federation", "runtime": {"url": format!("{}/a2a", host.base_url),
            "protocolVersion": "1.0", "credentialSecretId": secret["id"]}}),
        )
        .await;
        let token = execute_token(&server, &admin).await;
        let path = format!("/api/a2a/agents/{agent}/jsonrpc");
        let (status, answer) = call_at(&server, &path, &token, Some("1.0"), &send_v1("m-1")).await;
        assert_eq!(status, 200);
        assert_eq!(answer["error"]["code"], -32603, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("answered HTTP"),
            "{answer}"
        );
        assert!(!answer.to_string().contains("sk-remote-credential"));

        // The credential's secret is deleted: the call fails before anything is sent.
        let id = secret["id"].as_str().unwrap();
        let deleted = admin
            .send(
                &server,
                Method::DELETE,
                &format!("/api/v1/secrets/{id}"),
                None,
            )
            .await;
        assert!(deleted.status().is_success());
        let (_, answer) = call_at(&server, &path, &token, Some("1.0"), &send_v1("m-2")).await;
        assert_eq!(answer["error"]["code"], -32603);
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("secret is gone"),
            "{answer}"
        );
    }
}

/// Spec 3.6.1: `A2A-Version` may come as a query parameter instead of a header (the header wins
/// when both are sent), on the JSON-RPC endpoints and the cards; a method of the other version
/// is refused with a hint naming the header; an agent's card describes its skill.
#[tokio::test]
async fn the_version_can_be_a_query_parameter() {
    for backend in backends() {
        let (server, admin, token) = tck_server(backend, "federation").await;
        let get_task = json!({"jsonrpc": "2.0", "id": 3, "method": "GetTask",
            "params": {"id": "00000000-0000-0000-0000-000000000000"}});
        let (status, answer) = call_at(
            &server,
            &format!("{RPC}?A2A-Version=1.0"),
            &token,
            None,
            &get_task,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(answer["error"]["code"], -32001, "a 1.0 method: {answer}");
        let (_, answer) = call_at(
            &server,
            &format!("{RPC}?a2a-version=1.0"),
            &token,
            None,
            &get_task,
        )
        .await;
        assert_eq!(answer["error"]["code"], -32001, "{answer}");
        // The header wins over the parameter.
        let (_, answer) = call_at(
            &server,
            &format!("{RPC}?A2A-Version=1.0"),
            &token,
            Some("0.3"),
            &get_task,
        )
        .await;
        assert_eq!(answer["error"]["code"], -32601, "{answer}");
        let (_, answer) = call_at(
            &server,
            &format!("{RPC}?A2A-Version=9.9"),
            &token,
            None,
            &get_task,
        )
        .await;
        assert_eq!(answer["error"]["code"], -32009, "{answer}");

        // Without the version, a 1.0 method is not found, and the answer says why.
        let (_, answer) = call_at(&server, RPC, &token, None, &get_task).await;
        assert_eq!(answer["error"]["code"], -32601);
        assert_eq!(answer["id"], 3);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("A2A-Version: 1.0"), "{answer}");

        // The cards in the version of the parameter.
        let card: Value = server
            .client
            .get(&format!("{CARD}?A2A-Version=1.0"))
            .await
            .json()
            .await
            .unwrap();
        assert!(
            card["supportedInterfaces"].is_array(),
            "the 1.0 shape: {card}"
        );
        assert!(card.get("protocolVersion").is_none(), "{card}");

        // An agent's own card: its skill has a description and tags from the registry.
        let agents: Value = admin
            .send(&server, Method::GET, "/api/v1/agents", None)
            .await
            .json()
            .await
            .unwrap();
        let id = agents["items"][0]["id"].as_str().unwrap();
        let card: Value = admin
            .send(
                &server,
                Method::GET,
                &format!("/api/a2a/agents/{id}/agent-card.json?A2A-Version=1.0"),
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        let skill = &card["skills"][0];
        assert_eq!(skill["description"], "The conformance agent tck", "{card}");
        assert_eq!(skill["tags"], json!(["conformance"]), "{card}");
        assert!(card["supportedInterfaces"].is_array(), "{card}");
    }
}

/// An upstream A2A agent on loopback that puts the `Authorization` header it receives into
/// everything it answers: an error's message and data, a task's history, artifacts, status
/// message and metadata, and every event of a stream. The header is echoed as its bytes read
/// as UTF-8 and as ISO-8859-1 (as many HTTP servers hand it over), whatever they hold.
async fn echoing_agent() -> String {
    use axum::routing::get;
    async fn answer(
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let bytes = headers
            .get("authorization")
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        let auth = format!("{} / {}", String::from_utf8_lossy(&bytes), latin1(&bytes));
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let id = request["id"].clone();
        let context = request["params"]["message"]["contextId"].clone();
        let said = |text: String| json!({"messageId": "up-m", "role": "ROLE_AGENT", "parts": [{"text": text}]});
        let task = |state: &str| {
            json!({"id": "up-1", "contextId": context,
            "status": {"state": state, "message": said(format!("status {auth}"))},
            "artifacts": [{"artifactId": "a", "parts": [{"text": format!("artifact {auth}")}]}],
            "history": [said(format!("history {auth}"))],
            "metadata": {auth.clone(): auth.clone()}})
        };
        let result = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result});
        let message_id = request["params"]["message"]["messageId"]
            .as_str()
            .unwrap_or_default();
        match request["method"].as_str().unwrap_or_default() {
            "SendMessage" if message_id == "echo-error" => axum::Json(json!({"jsonrpc": "2.0",
                "id": id, "error": {"code": -32004, "message": format!("no: {auth}"),
                "data": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                          "reason": "ECHO", "domain": "echo", "metadata": {"sent": auth}}]}}))
            .into_response(),
            "SendMessage" => {
                axum::Json(result(json!({"task": task("TASK_STATE_COMPLETED")}))).into_response()
            }
            "GetTask" => axum::Json(result(task("TASK_STATE_COMPLETED"))).into_response(),
            "SendStreamingMessage" => {
                let events = [
                    json!({"task": task("TASK_STATE_WORKING")}),
                    json!({"artifactUpdate": {"taskId": "up-1", "contextId": context,
                        "artifact": {"artifactId": "b", "parts": [{"text": format!("chunk {auth}")}]}}}),
                    json!({"statusUpdate": {"taskId": "up-1", "contextId": context,
                        "status": {"state": "TASK_STATE_COMPLETED", "message": said(format!("done {auth}"))}}}),
                ];
                let body: String = events
                    .into_iter()
                    .map(|event| format!("data: {}\n\n", result(event)))
                    .collect();
                ([("content-type", "text/event-stream")], body).into_response()
            }
            _ => axum::Json(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": auth}}))
            .into_response(),
        }
    }
    let app = axum::Router::new().route("/a2a", get(|| async { "{}" }).post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("127.0.0.1:{}", address.port())
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().copied().map(char::from).collect()
}

/// The owner's credential of a remote agent reaches no other caller of it: not in an error,
/// an answer, a stream, a stored task nor a push delivery (and, by the leak check, no log).
#[tokio::test]
async fn an_agent_that_echoes_its_credential_hands_it_to_no_one() {
    echoed_credential_reaches_no_one(&format!("ECHOCANARY{}", uuid::Uuid::new_v4().simple())).await;
}

/// The same for a credential that is not ASCII (a header value may hold any byte from 0x80).
#[tokio::test]
async fn an_agent_that_echoes_a_non_ascii_credential_hands_it_to_no_one() {
    echoed_credential_reaches_no_one(&format!("ÉCHOCANARYé{}ß€", uuid::Uuid::new_v4().simple()))
        .await;
}

async fn echoed_credential_reaches_no_one(canary: &str) {
    let canary = canary.to_owned();
    // The credential as a server decoding headers as ISO-8859-1 would echo it.
    let decoded = latin1(canary.as_bytes());
    for backend in backends() {
        let agent_host = echoing_agent().await;
        let (push_host, mut deliveries) = push_receiver().await;
        let server = a2a_server(
            backend,
            &[(
                "HIVE_EGRESS_FETCH_HOST_ALLOWLIST",
                &format!("{agent_host},{push_host}"),
            )],
        )
        .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, eve) = add_user(&server, &admin, "eve@example.com", "viewer").await;
        hive_testkit::capture::canary(&canary);
        hive_testkit::capture::canary(&decoded);
        let secret: Value = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/secrets",
                Some(json!({"name": "echo", "value": canary})),
            )
            .await
            .json()
            .await
            .unwrap();
        let agent = conformance_agent_with(
            &server,
            &admin,
            json!({"name": "echo", "kind": "remote", "visibility": "federation",
            "runtime": {"url": format!("http://{agent_host}/a2a"), "protocolVersion": "1.0",
            "credentialSecretId": secret["id"]}}),
        )
        .await;
        let token = execute_token(&server, &eve).await;
        let path = format!("/api/a2a/agents/{agent}/jsonrpc");
        let clean = |what: &str, value: &Value| {
            let text = value.to_string();
            assert!(!text.contains(&canary), "{what}: {value}");
            assert!(!text.contains(&decoded), "{what}: {value}");
        };

        // The agent's error: its code, Hive's words.
        let (_, refused) =
            call_at(&server, &path, &token, Some("1.0"), &send_v1("echo-error")).await;
        assert_eq!(refused["error"]["code"], -32004, "{refused}");
        clean("error", &refused);

        // A task answered at once, read again, listed, and pushed.
        let hook = format!("http://{push_host}/hook");
        let send = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
            "configuration": {"taskPushNotificationConfig": {"url": hook}},
            "message": {"messageId": "echo-task", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}});
        let (status, sent) = call_at(&server, &path, &token, Some("1.0"), &send).await;
        assert_eq!(status, 200);
        assert_eq!(
            sent["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED",
            "{sent}"
        );
        clean("answer", &sent);
        assert_eq!(
            sent["result"]["task"]["history"][0]["parts"][0]["text"],
            "history [redacted] / [redacted]",
            "the agent got the credential, and both its echoes were cut: {sent}"
        );
        let id = sent["result"]["task"]["id"].as_str().unwrap().to_owned();
        let got = rpc(&server, &token, Some("1.0"), "GetTask", json!({"id": id})).await;
        assert!(got["result"]["history"].is_array(), "{got}");
        clean("GetTask", &got);
        let (_, pushed) = deliveries.recv().await.unwrap();
        assert_eq!(pushed["task"]["id"], id.as_str(), "{pushed}");
        clean("push delivery", &pushed);

        // A stream, and the task it leaves.
        let streamed = json!({"jsonrpc": "2.0", "id": 2, "method": "SendStreamingMessage",
            "params": {"message": {"messageId": "echo-stream", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}});
        let events = stream_events(&server, &path, &token, Some("1.0"), &streamed).await;
        assert_eq!(events.len(), 3, "{events:?}");
        for event in &events {
            clean("stream event", event);
        }
        let stream_task = events[0]["task"]["id"].as_str().unwrap().to_owned();
        let got = rpc(
            &server,
            &token,
            Some("1.0"),
            "GetTask",
            json!({"id": stream_task}),
        )
        .await;
        assert_eq!(
            got["result"]["status"]["state"], "TASK_STATE_COMPLETED",
            "{got}"
        );
        clean("stored stream task", &got);
        let listed = rpc(
            &server,
            &token,
            Some("1.0"),
            "ListTasks",
            json!({"includeArtifacts": true}),
        )
        .await;
        clean("ListTasks", &listed);
    }
}

/// Redis (the task store) frozen mid-run: a call is refused with 503, `Retry-After` and a
/// JSON-RPC error carrying the request's id — a load balancer sees the outage — and once Redis
/// runs again (and with it the write that was in flight) the refused call has left no task.
#[tokio::test]
async fn a_task_store_outage_is_a_503_that_leaves_no_task() {
    if !hive_testkit::OwnRedis::available() {
        return;
    }
    let redis = hive_testkit::OwnRedis::start();
    let url = redis.url();
    let server = a2a_server(
        hive_testkit::TestBackend::Sqlite,
        &[("REDIS_URL", &url), ("A2A_DEFAULT_AGENT", "tck")],
    )
    .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    conformance_agent(&server, &admin, "tck", "federation").await;
    let token = execute_token(&server, &admin).await;
    let complete = |message_id: &str| {
        json!({"jsonrpc": "2.0", "id": 42, "method": "SendMessage", "params": {"message": {
            "messageId": message_id, "role": "ROLE_USER", "parts": [{"text": "x"}]}}})
    };
    let task_of = |answer: &Value| answer["result"]["task"]["id"].as_str().unwrap().to_owned();
    let before = call(
        &server,
        &token,
        Some("1.0"),
        &complete("tck-complete-task-1"),
    )
    .await;
    assert_eq!(
        before["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED",
        "{before}"
    );

    redis.freeze();
    let refused = server
        .client
        .request(Method::POST, RPC)
        .bearer_auth(&token)
        .header("A2A-Version", "1.0")
        .json(&complete("tck-complete-task-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["id"], 42, "{body}");
    assert_eq!(body["error"]["code"], -32603, "{body}");
    assert_eq!(
        body["error"]["data"][0]["reason"], "SERVICE_UNAVAILABLE",
        "{body}"
    );
    // Reads of the store are refused the same way.
    for (method, params) in [
        ("GetTask", json!({"id": task_of(&before)})),
        ("ListTasks", json!({})),
    ] {
        let refused = server
            .client
            .request(Method::POST, RPC)
            .bearer_auth(&token)
            .header("A2A-Version", "1.0")
            .json(&json!({"jsonrpc": "2.0", "id": 43, "method": method, "params": params}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 503, "{method}");
        assert!(refused.headers().contains_key("retry-after"), "{method}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["id"], 43, "{method}: {body}");
    }
    redis.thaw();

    let after = call(
        &server,
        &token,
        Some("1.0"),
        &complete("tck-complete-task-3"),
    )
    .await;
    assert_eq!(
        after["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED",
        "{after}"
    );
    let listed = rpc(&server, &token, Some("1.0"), "ListTasks", json!({})).await;
    let mut ids: Vec<&str> = listed["result"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![task_of(&before), task_of(&after)];
    expected.sort_unstable();
    assert_eq!(ids, expected, "only the answered calls' tasks: {listed}");
}

/// Refusals made once the handler has read the request answer with the request's id: a stream
/// over the cap (`429`, the server-busy code), an `A2A-Version` Hive does not speak, and a body
/// over the JSON-RPC limit (`413`, its id read from the start of the body).
#[tokio::test]
async fn refusals_after_the_body_was_read_carry_the_requests_id() {
    for backend in backends() {
        let server = a2a_server(
            backend,
            &[
                ("A2A_DEFAULT_AGENT", "tck"),
                ("A2A_STREAMS_PER_USER", "1"),
                ("A2A_JSONRPC_MAX_BODY_BYTES", "1024"),
            ],
        )
        .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        conformance_agent(&server, &admin, "tck", "federation").await;
        let token = execute_token(&server, &admin).await;

        // The admin's one stream takes the only place.
        let _held = crate::events::Events::open(&server, &admin).await;
        let streamed = json!({"jsonrpc": "2.0", "id": "s-1", "method": "SendStreamingMessage",
            "params": {"message": {"messageId": "tck-complete-task", "role": "ROLE_USER",
                                   "parts": [{"text": "x"}]}}});
        let (status, answer) = call_at(&server, RPC, &token, Some("1.0"), &streamed).await;
        assert_eq!(status, 429, "{answer}");
        assert_eq!(answer["id"], "s-1", "{answer}");
        assert_eq!(answer["error"]["code"], -32000, "{answer}");
        assert_eq!(
            answer["error"]["data"][0]["metadata"]["httpStatus"], "429",
            "{answer}"
        );
        assert_eq!(
            answer["error"]["data"][0]["metadata"]["retryAfter"], "5",
            "{answer}"
        );

        let get_task = json!({"jsonrpc": "2.0", "id": 9, "method": "GetTask",
            "params": {"id": "00000000-0000-0000-0000-000000000000"}});
        let (status, answer) = call_at(&server, RPC, &token, Some("9.9"), &get_task).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["error"]["code"], -32009, "{answer}");
        assert_eq!(answer["id"], 9, "{answer}");

        let mut oversize = send_v1("big");
        oversize["params"]["message"]["parts"][0]["text"] = json!("x".repeat(2000));
        let (status, answer) = call_at(&server, RPC, &token, Some("1.0"), &oversize).await;
        assert_eq!(status, 413, "{answer}");
        assert_eq!(answer["id"], 1, "{answer}");
        assert_eq!(
            answer["error"]["data"][0]["reason"], "PAYLOAD_TOO_LARGE",
            "{answer}"
        );
    }
}
