//! An agent's usage by day and its recent calls: `GET /api/v1/agents/{id}/usage` and
//! `/calls`, read by the agent's owner (and admins) from the usage rows and the audit records
//! of its calls, each call recorded with how it ended.

use crate::a2a::{
    RPC, a2a_server, call, conformance_agent_with, execute_token, llm_server, stream_events,
};
use crate::support::*;
use hive_testkit::backends;
use hive_testkit::llm::LlmMisbehaviour;
use reqwest::Method;
use serde_json::{Value, json};

const KEY: &str = "sk-test-activity-key-0123456789";

async fn get_json(
    browser: &Browser,
    server: &hive_testkit::TestServer,
    path: &str,
) -> (u16, Value) {
    let response = browser.send(server, Method::GET, path, None).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_llm_agents_calls_and_usage_are_its_owners_to_read() {
    for backend in backends() {
        let (llm, server) = llm_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, owner) = add_user(&server, &admin, "owner@example.com", "operator").await;
        let (_, stranger) = add_user(&server, &admin, "other@example.com", "operator").await;
        hive_testkit::capture::canary(KEY);
        let secret = owner
            .send(
                &server,
                Method::POST,
                "/api/v1/secrets",
                Some(json!({"name": "model-key", "value": KEY})),
            )
            .await;
        let secret: Value = secret.json().await.unwrap();
        let agent = conformance_agent_with(
            &server,
            &owner,
            json!({"name": "chat", "kind": "llm", "visibility": "private",
                "runtime": {"baseUrl": llm.base_url(), "model": "test-model",
                            "apiKeySecretId": secret["id"]}}),
        )
        .await;
        let token = execute_token(&server, &owner).await;
        let say = |text: &str, method: &str| {
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": {
                "messageId": uuid::Uuid::new_v4().to_string(), "role": "ROLE_USER",
                "parts": [{"text": text}], "metadata": {"skill": "chat"}}}})
        };
        let calls_path = format!("/api/v1/agents/{agent}/calls");
        let usage_path = format!("/api/v1/agents/{agent}/usage");

        // Nothing yet: every day is there, with zeros.
        let (status, usage) = get_json(&owner, &server, &format!("{usage_path}?days=3")).await;
        assert_eq!(status, 200, "{usage}");
        assert_eq!(usage["agentId"], agent.as_str());
        let days: Vec<&str> = usage["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["day"].as_str().unwrap())
            .collect();
        // The test server's clock stands at 2026-01-01 00:00 UTC.
        assert_eq!(days, ["2025-12-30", "2025-12-31", "2026-01-01"]);
        assert!(
            usage["days"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["calls"] == 0)
        );
        let (_, calls) = get_json(&owner, &server, &calls_path).await;
        assert_eq!(calls["items"], json!([]), "{calls}");

        // A streamed call that completes: recorded with how it ended, once it ended.
        let events = stream_events(
            &server,
            RPC,
            &token,
            Some("1.0"),
            &say("hello there", "SendStreamingMessage"),
        )
        .await;
        assert_eq!(
            events.last().unwrap()["statusUpdate"]["status"]["state"],
            "TASK_STATE_COMPLETED"
        );
        let (status, calls) = get_json(&owner, &server, &calls_path).await;
        assert_eq!(status, 200, "{calls}");
        let streamed = &calls["items"][0];
        assert_eq!(streamed["method"], "SendStreamingMessage", "{calls}");
        assert_eq!(streamed["outcome"], "completed", "{calls}");
        assert_eq!(streamed["action"], "a2a.call");
        assert!(streamed["caller"].as_str().unwrap().starts_with("token:"));
        assert_eq!(streamed["errorCode"], Value::Null);
        assert_eq!(streamed["errorMessage"], Value::Null);
        assert!(streamed["durationMs"].is_u64(), "{streamed}");

        // Its tokens are counted on today's row.
        let (_, usage) = get_json(&owner, &server, &usage_path).await;
        let days = usage["days"].as_array().unwrap();
        assert_eq!(days.len(), 14, "14 days by default");
        let today = days.last().unwrap();
        assert_eq!(today["day"], "2026-01-01");
        assert_eq!(today["calls"], 1, "{usage}");
        // The stand-in counts words: "echo: hello there" is three.
        assert_eq!(today["completionTokens"], 3, "{usage}");
        assert!(today["promptTokens"].as_u64().unwrap() >= 2, "{usage}");
        assert_eq!(
            today["totalTokens"].as_u64().unwrap(),
            today["promptTokens"].as_u64().unwrap() + 3
        );
        assert!(days[..13].iter().all(|d| d["calls"] == 0), "{usage}");

        // An endpoint that refuses the key: the task fails saying so, and the record says why.
        llm.misbehave(LlmMisbehaviour::Status(401));
        let failed = call(&server, &token, Some("1.0"), &say("boom", "SendMessage")).await;
        let task = &failed["result"]["task"];
        assert_eq!(task["status"]["state"], "TASK_STATE_FAILED", "{failed}");
        let why = task["status"]["message"]["parts"][0]["text"]
            .as_str()
            .unwrap();
        assert_eq!(why, "the model endpoint refused the key (HTTP 401)");
        let (_, calls) = get_json(&owner, &server, &calls_path).await;
        let refused = &calls["items"][0];
        assert_eq!(refused["method"], "SendMessage", "{calls}");
        assert_eq!(refused["outcome"], "failed", "{calls}");
        assert_eq!(refused["errorMessage"], why, "{calls}");
        assert_eq!(refused["errorCode"], Value::Null);
        assert_eq!(
            calls["items"][1]["outcome"], "completed",
            "older calls follow"
        );
        assert!(!calls.to_string().contains(KEY));
        // The audit record itself says failure, with the same detail.
        let records = records_of(&server, "a2a.call").await;
        let record = records
            .iter()
            .find(|r| r.id.to_string() == refused["id"].as_str().unwrap())
            .unwrap();
        assert_eq!(record.outcome, hive_store::AuditOutcome::Failure);
        assert_eq!(
            record.target.as_deref(),
            Some(format!("agent:{agent}").as_str())
        );

        // The refused key put the agent in error; its key accepted again and started, it fails
        // another way.
        llm.misbehave(LlmMisbehaviour::Status(500));
        let restarted = owner
            .send(
                &server,
                Method::POST,
                &format!("/api/v1/agents/{agent}/start"),
                None,
            )
            .await;
        assert_eq!(restarted.status(), 200);

        // A streamed call that fails: the stream's record says so too.
        let events = stream_events(
            &server,
            RPC,
            &token,
            Some("1.0"),
            &say("boom again", "SendStreamingMessage"),
        )
        .await;
        assert_eq!(
            events.last().unwrap()["statusUpdate"]["status"]["state"],
            "TASK_STATE_FAILED"
        );
        let (_, calls) = get_json(&owner, &server, &calls_path).await;
        assert_eq!(calls["items"][0]["method"], "SendStreamingMessage");
        assert_eq!(calls["items"][0]["outcome"], "failed", "{calls}");
        assert_eq!(
            calls["items"][0]["errorMessage"],
            "the model endpoint failed: the endpoint answered HTTP 500"
        );

        // Keyset pages, newest first.
        let (_, first) = get_json(&owner, &server, &format!("{calls_path}?limit=2")).await;
        assert_eq!(first["items"].as_array().unwrap().len(), 2);
        let cursor = first["nextCursor"].as_str().unwrap();
        let (_, second) = get_json(
            &owner,
            &server,
            &format!("{calls_path}?limit=2&cursor={cursor}"),
        )
        .await;
        assert_eq!(second["items"].as_array().unwrap().len(), 1, "{second}");
        assert_eq!(second["items"][0]["outcome"], "completed");
        assert_eq!(second["nextCursor"], Value::Null);

        // An admin reads them too; another operator finds no such agent.
        let (status, _) = get_json(&admin, &server, &calls_path).await;
        assert_eq!(status, 200);
        let (status, _) = get_json(&admin, &server, &usage_path).await;
        assert_eq!(status, 200);
        for path in [&calls_path, &usage_path] {
            let (status, body) = get_json(&stranger, &server, path).await;
            assert_eq!(status, 404, "{path}: {body}");
            assert_eq!(body["error"]["code"], "not_found");
        }

        // Bad input: the API's error shape.
        for query in [
            "days=0",
            "days=91",
            "days=-1",
            "days=abc",
            "days=",
            "days=1&other=2",
        ] {
            let (status, body) = get_json(&owner, &server, &format!("{usage_path}?{query}")).await;
            assert_eq!(status, 400, "{query}: {body}");
            assert_eq!(body["error"]["code"], "validation_failed", "{query}");
            assert!(body["error"]["requestId"].is_string());
        }
        let (status, usage) = get_json(&owner, &server, &format!("{usage_path}?days=90")).await;
        assert_eq!(status, 200);
        assert_eq!(usage["days"].as_array().unwrap().len(), 90);
        let (status, body) = get_json(&owner, &server, &format!("{calls_path}?limit=0")).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (400, &json!("validation_failed"))
        );
        let (status, _) = get_json(
            &owner,
            &server,
            &format!("{calls_path}?cursor=not-a-cursor"),
        )
        .await;
        assert_eq!(status, 400);
    }
}

/// A client that leaves a stream before its task ends: the call is recorded as disconnected as
/// soon as the server sees it go, not when the task ends later.
#[tokio::test]
async fn a_stream_the_client_leaves_is_recorded_as_disconnected() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let agent = conformance_agent_with(
            &server,
            &admin,
            json!({"name": "tck", "kind": "conformance", "visibility": "private"}),
        )
        .await;
        let token = execute_token(&server, &admin).await;
        // Working, then a hold of several seconds before it completes.
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage",
            "params": {"message": {"messageId": format!("test-resubscribe-message-id-{}", uuid::Uuid::new_v4()),
                "role": "ROLE_USER", "parts": [{"text": "hold"}], "metadata": {"skill": "tck"}}}});
        let mut response = server
            .client
            .request(Method::POST, RPC)
            .bearer_auth(&token)
            .header("A2A-Version", "1.0")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut decoder = hive_a2a::sse::Decoder::new(1 << 20);
        let mut working = false;
        while !working {
            let chunk = response.chunk().await.unwrap().expect("the stream is open");
            for event in decoder.feed(&chunk).unwrap() {
                let event: Value = serde_json::from_str(&event.data).unwrap();
                working |=
                    event["result"]["statusUpdate"]["status"]["state"] == "TASK_STATE_WORKING";
            }
        }
        drop(response);

        // The record is written in the background once the server sees the client gone.
        let path = format!("/api/v1/agents/{agent}/calls");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let call = loop {
            let (status, calls) = get_json(&admin, &server, &path).await;
            assert_eq!(status, 200);
            if let Some(call) = calls["items"].get(0) {
                break call.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no record of the left stream"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(call["method"], "SendStreamingMessage");
        assert_eq!(call["outcome"], "disconnected", "{call}");
        assert_eq!(call["errorCode"], Value::Null);
        let records = records_of(&server, "a2a.call").await;
        assert_eq!(
            records
                .iter()
                .filter(|r| r.target.as_deref() == Some(format!("agent:{agent}").as_str()))
                .count(),
            1,
            "one record a call"
        );
    }
}
