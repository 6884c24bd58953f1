//! Interop with a published A2A implementation: a remote agent that is a Python server on the
//! `a2a-sdk` package from PyPI (`tests/interop/a2a_sdk_agent.py`, pinned in
//! `tests/interop/requirements.txt`), imported from its card and called through Hive in both
//! protocol versions. Runs when `HIVE_TEST_A2A_PYTHON` names a Python that has the requirements
//! installed (CI's `.ci/run` makes one); skipped with a note otherwise, except under `CI=true`,
//! where a missing variable fails it.

use crate::a2a::{RPC, a2a_server, call_at, conformance_agent_with, execute_token, stream_events};
use crate::support::*;
use hive_testkit::backends;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const PYTHON: &str = "HIVE_TEST_A2A_PYTHON";

/// The Python agent, listening on loopback: its process (killed when dropped) and base URL.
struct PythonAgent {
    _child: Child,
    base_url: String,
    port: u16,
    client: reqwest::Client,
}

impl PythonAgent {
    /// Spawns the agent script on a free loopback port and waits until its card answers.
    async fn start(python: &str) -> PythonAgent {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/a2a_sdk_agent.py");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{PYTHON}={python} does not start: {e}"));
        let base_url = format!("http://127.0.0.1:{port}/");
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let card_url = format!("{base_url}.well-known/agent-card.json");
        // Readiness: the card answers. Bounded attempts, and a dead process fails at once.
        for _ in 0..300 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the a2a-sdk agent exited before it answered ({status}); are the requirements installed in {python}?"
                );
            }
            if let Ok(response) = client.get(&card_url).send().await
                && response.status() == 200
            {
                return PythonAgent {
                    _child: child,
                    base_url,
                    port,
                    client,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the a2a-sdk agent's card did not answer at {card_url}");
    }

    /// One JSON-RPC call straight to the Python agent, in A2A 1.0.
    async fn call(&self, body: &Value) -> Value {
        let response = self
            .client
            .post(&self.base_url)
            .header("A2A-Version", "1.0")
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

fn message(method: &str, message_id: &str, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": {
        "messageId": message_id, "role": "ROLE_USER", "parts": [{"text": text}]}}})
}

/// A remote agent that is a published Python A2A server (`a2a-sdk`), called through Hive.
#[tokio::test]
async fn a_remote_agent_that_is_a_python_a2a_sdk_server() {
    // A Python with crates/hive-server/tests/interop/requirements.txt installed; CI must run
    // it: .ci/run makes the virtualenv and sets the variable.
    let Some(python) = hive_testkit::service_url(PYTHON) else {
        return;
    };
    let upstream = PythonAgent::start(&python).await;

    for backend in backends() {
        let allow = format!("127.0.0.1:{}", upstream.port);
        let server = a2a_server(backend, &[("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &allow)]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;

        // Hive reads the SDK's card and picks its A2A 1.0 JSON-RPC interface.
        let preview = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/agents/import",
                Some(json!({"url": upstream.base_url})),
            )
            .await;
        assert_eq!(preview.status(), 200);
        let preview: Value = preview.json().await.unwrap();
        assert_eq!(preview["card"]["name"], "Python SDK Agent", "{preview}");
        assert_eq!(preview["agent"]["kind"], "remote");
        assert_eq!(preview["agent"]["runtime"]["protocolVersion"], "1.0");
        assert_eq!(
            preview["agent"]["runtime"]["url"],
            upstream.base_url.as_str()
        );
        let imported = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/agents/import",
                Some(json!({"url": upstream.base_url, "create": true, "name": "py-v1"})),
            )
            .await;
        assert_eq!(imported.status(), 201);
        let imported: Value = imported.json().await.unwrap();
        let v1 = imported["agent"]["id"].as_str().unwrap().to_owned();
        let started = admin
            .send(
                &server,
                Method::POST,
                &format!("/api/v1/agents/{v1}/start"),
                None,
            )
            .await;
        assert_eq!(started.status(), 200);
        let started: Value = started.json().await.unwrap();
        assert_eq!(started["status"], "ready", "{started}");
        // The same server through the SDK's 0.3 compatibility, registered by hand.
        let v03 = conformance_agent_with(
            &server,
            &admin,
            json!({"name": "py-v03", "kind": "remote", "runtime": {
                "url": upstream.base_url, "protocolVersion": "0.3"}}),
        )
        .await;
        let token = execute_token(&server, &admin).await;

        for (label, agent) in [("1.0", &v1), ("0.3", &v03)] {
            let rpc = format!("/api/a2a/agents/{agent}/jsonrpc");
            let hive = |body: Value| {
                let (server, token, rpc) = (&server, &token, &rpc);
                async move {
                    let (status, body) = call_at(server, rpc, token, Some("1.0"), &body).await;
                    assert_eq!(status, 200, "{label}: {body}");
                    body
                }
            };

            let sent = hive(message("SendMessage", &format!("py-{label}-1"), "hello")).await;
            let task = &sent["result"]["task"];
            assert_eq!(
                task["status"]["state"], "TASK_STATE_COMPLETED",
                "{label}: {sent}"
            );
            assert_eq!(
                task["status"]["message"]["parts"][0]["text"], "python says: hello",
                "{label}: {sent}"
            );
            assert_eq!(
                task["artifacts"][0]["parts"][0]["text"],
                "python says: hello"
            );
            let id = task["id"].as_str().unwrap().to_owned();
            // The id is Hive's: the Python agent does not know it.
            let upstream_view = upstream
                .call(&json!({"jsonrpc": "2.0", "id": 2, "method": "GetTask",
                    "params": {"id": id}}))
                .await;
            assert_eq!(
                upstream_view["error"]["code"], -32001,
                "{label}: {upstream_view}"
            );

            let got = hive(json!({"jsonrpc": "2.0", "id": 3, "method": "GetTask",
                "params": {"id": id}}))
            .await;
            assert_eq!(got["result"]["id"], id.as_str(), "{label}: {got}");
            assert_eq!(got["result"]["status"]["state"], "TASK_STATE_COMPLETED");
            assert_eq!(
                got["result"]["status"]["message"]["parts"][0]["text"],
                "python says: hello"
            );
            // The same task in 0.3, at the instance endpoint.
            let (status, got03) = call_at(
                &server,
                RPC,
                &token,
                None,
                &json!({"jsonrpc": "2.0", "id": 4, "method": "tasks/get",
                    "params": {"id": id}}),
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(got03["result"]["kind"], "task", "{label}: {got03}");
            assert_eq!(got03["result"]["status"]["state"], "completed");

            // A stream: the task, then working, the artifact and completed, in that order.
            let streamed = stream_events(
                &server,
                &rpc,
                &token,
                Some("1.0"),
                &message(
                    "SendStreamingMessage",
                    &format!("py-{label}-2"),
                    "stream me",
                ),
            )
            .await;
            assert_eq!(streamed.len(), 4, "{label}: {streamed:?}");
            let stream_task = streamed[0]["task"]["id"].as_str().unwrap().to_owned();
            assert_ne!(stream_task, id);
            assert_eq!(
                streamed[1]["statusUpdate"]["status"]["state"], "TASK_STATE_WORKING",
                "{label}: {streamed:?}"
            );
            assert_eq!(
                streamed[2]["artifactUpdate"]["artifact"]["parts"][0]["text"],
                "python says: stream me"
            );
            assert_eq!(
                streamed[3]["statusUpdate"]["status"]["state"],
                "TASK_STATE_COMPLETED"
            );
            for event in &streamed[1..] {
                let update = event
                    .get("statusUpdate")
                    .or_else(|| event.get("artifactUpdate"))
                    .unwrap();
                assert_eq!(update["taskId"], stream_task.as_str(), "{label}: {event}");
            }
            let upstream_view = upstream
                .call(&json!({"jsonrpc": "2.0", "id": 5, "method": "GetTask",
                    "params": {"id": stream_task}}))
                .await;
            assert_eq!(upstream_view["error"]["code"], -32001);

            // A finished task cannot be canceled: the SDK's TaskNotCancelableError, passed on.
            let refused = hive(json!({"jsonrpc": "2.0", "id": 6, "method": "CancelTask",
                "params": {"id": id}}))
            .await;
            assert_eq!(refused["error"]["code"], -32002, "{label}: {refused}");

            // A task left waiting for input is canceled upstream, under Hive's id.
            let waiting = hive(message("SendMessage", &format!("py-{label}-3"), "wait")).await;
            let waiting = &waiting["result"]["task"];
            assert_eq!(
                waiting["status"]["state"], "TASK_STATE_INPUT_REQUIRED",
                "{label}"
            );
            let waiting_id = waiting["id"].as_str().unwrap().to_owned();
            let canceled = hive(json!({"jsonrpc": "2.0", "id": 7, "method": "CancelTask",
                "params": {"id": waiting_id}}))
            .await;
            assert_eq!(
                canceled["result"]["status"]["state"], "TASK_STATE_CANCELED",
                "{label}: {canceled}"
            );
            assert_eq!(canceled["result"]["id"], waiting_id.as_str());
        }
    }
}
