//! What the embedded shape keeps when the process ends: A2A tasks across a restart, and the
//! audit record of every call it answered across a `kill -9` in the middle of a load.

use crate::accounts::{create_admin, create_token};
use crate::process::{HiveProcess, client, poll_until, run_to_exit};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Raised so that the load below is never refused by a limit; every call still passes them.
const LIMITS: [(&str, &str); 1] = [("HIVE_RATE_LIMITS", "a2a=1000000/1s,api=1000000/1s")];

/// An admin, an `execute` token of theirs, and their conformance agent `tck`, started.
async fn admin_token_and_agent(path: &Path) -> String {
    create_admin(path, "root@example.com").await;
    let token = create_token(path, "root@example.com", "load", Some("execute")).await;
    create_conformance_agent(path, &[]).await;
    token
}

/// `root@example.com`'s conformance agent `tck`, made and started with the command line, with
/// a per-agent limit no load reaches.
pub(crate) async fn create_conformance_agent(path: &Path, vars: &[(&str, &str)]) {
    let created = run_to_exit(
        path,
        &[
            "agent",
            "create",
            "--owner",
            "root@example.com",
            "--name",
            "tck",
            "--kind",
            "conformance",
            "--requests-per-minute",
            "100000",
        ],
        vars,
    )
    .await;
    assert!(created.0.success(), "{created:?}");
    let started = run_to_exit(path, &["agent", "start", "tck"], vars).await;
    assert!(started.0.success(), "{started:?}");
}

/// One JSON-RPC call to the instance endpoint; the HTTP status and the answer.
async fn rpc(
    http: &reqwest::Client,
    server: &HiveProcess,
    token: &str,
    request_id: &str,
    body: serde_json::Value,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let response = http
        .post(format!("{}/api/a2a/jsonrpc", server.base_url))
        .bearer_auth(token)
        .header("A2A-Version", "1.0")
        .header("X-Request-Id", request_id)
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

fn send_message(message_id: &str) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "SendMessage",
        "params": { "message": {
            "messageId": message_id, "role": "ROLE_USER", "parts": [{ "text": "hello" }],
            "metadata": { "skill": "tck" }
        }}
    })
}

fn get_task(id: &str) -> serde_json::Value {
    serde_json::json!({ "jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": { "id": id } })
}

#[tokio::test]
async fn a_task_of_the_embedded_shape_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let token = admin_token_and_agent(path).await;
    let http = client();

    let server = HiveProcess::start(path, &LIMITS).await;
    let (status, sent) = rpc(
        &http,
        &server,
        &token,
        "send",
        send_message("tck-complete-task-restart"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{sent}");
    let task = sent["result"]["task"].clone();
    let id = task["id"].as_str().expect("a task").to_owned();
    assert!(server.stop().await.0.success());

    let server = HiveProcess::start(path, &LIMITS).await;
    let (status, read) = rpc(&http, &server, &token, "get", get_task(&id))
        .await
        .unwrap();
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["result"]["id"], task["id"], "{read}");
    assert_eq!(read["result"]["status"]["state"], task["status"]["state"]);
    assert!(server.stop().await.0.success());
}

#[tokio::test]
async fn every_call_answered_before_a_kill_has_its_audit_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let token = admin_token_and_agent(path).await;
    let http = client();
    let server = HiveProcess::start(path, &LIMITS).await;
    let (_, sent) = rpc(
        &http,
        &server,
        &token,
        "first",
        send_message("tck-complete-task-kill"),
    )
    .await
    .unwrap();
    let task = sent["result"]["task"]["id"].as_str().unwrap().to_owned();

    // Sixteen clients call without pause, each call with its own request id; the ids of the
    // calls answered with a result are kept.
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..16)
        .map(|client_no| {
            let (http, token, task, answered) = (
                http.clone(),
                token.clone(),
                task.clone(),
                Arc::clone(&answered),
            );
            let base_url = server.base_url.clone();
            tokio::spawn(async move {
                for call in 0.. {
                    let request_id = format!("kill-{client_no}-{call}");
                    let body = if call % 4 == 0 {
                        send_message(&format!("tck-complete-task-{request_id}"))
                    } else {
                        get_task(&task)
                    };
                    let answer = http
                        .post(format!("{base_url}/api/a2a/jsonrpc"))
                        .bearer_auth(&token)
                        .header("A2A-Version", "1.0")
                        .header("X-Request-Id", &request_id)
                        .json(&body)
                        .send()
                        .await;
                    let Ok(response) = answer else { return };
                    let status = response.status().as_u16();
                    let Ok(json) = response.json::<serde_json::Value>().await else {
                        return;
                    };
                    if status == 200 && json.get("result").is_some() {
                        answered.lock().unwrap().push(request_id);
                    }
                }
            })
        })
        .collect();
    poll_until("400 answered calls", Duration::from_secs(60), async || {
        (answered.lock().unwrap().len() >= 400).then_some(())
    })
    .await;

    // Killed in the middle of the load: no shutdown, no flush.
    let killed = tokio::process::Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    for client in clients {
        client.await.unwrap();
    }
    drop(server);
    let answered: HashSet<String> = answered.lock().unwrap().drain(..).collect();

    let verified = run_to_exit(path, &["audit", "verify"], &[]).await;
    assert!(verified.0.success(), "{verified:?}");
    assert!(verified.1.contains("audit chain intact"), "{}", verified.1);
    let exported = run_to_exit(path, &["audit", "export", "--action", "a2a.call"], &[]).await;
    assert!(exported.0.success(), "{exported:?}");
    let recorded: HashSet<String> = exported
        .1
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|line| line["requestId"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = answered.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered calls have no audit record: {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
}
