//! Agent and llm nodes: a call through the gateway as the run's principal, answered by a
//! local conformance agent or an `llm` agent on the test model; an agent the principal may not
//! see is refused when the document is saved and, made private later, at the step.

use super::*;
use crate::a2a::{conformance_agent_with, llm_server};

/// input → `ask` (the node given) → output of its answer.
fn asking(name: &str, ask: Value) -> Value {
    let mut node = ask;
    node["id"] = json!("ask");
    json!({
        "name": name,
        "nodes": [
            {"id": "start", "type": "input"},
            node,
            {"id": "done", "type": "output", "value": "{{ nodes.ask.output }}"}
        ],
        "edges": [{"from": "start", "to": "ask"}, {"from": "ask", "to": "done"}]
    })
}

#[tokio::test]
async fn an_agent_step_answers_the_agents_text_task_and_state() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let (admin, token) = admin_session(&server).await;
        conformance_agent_with(
            &server,
            &admin,
            json!({"name": "tck", "kind": "conformance", "visibility": "private"}),
        )
        .await;
        let document = asking(
            "ask-tck",
            json!({"type": "agent", "agent": "tck", "message": "hello {{ input.who }}"}),
        );
        let workflow = apply(&server, &token, document).await;
        let run = start(&server, &token, &workflow, json!({"who": "there"})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        let output = &step(&detail, "ask")["output"];
        assert_eq!(output["text"], "Hello from TCK", "{detail}");
        assert_eq!(output["state"], "completed", "{detail}");
        assert!(
            output["taskId"].as_str().is_some_and(|id| !id.is_empty()),
            "{detail}"
        );
        assert_eq!(detail["run"]["output"], *output);
        assert_eq!(step(&detail, "ask")["input"]["message"], "hello there");
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn an_agent_the_principal_may_not_see_is_refused_at_save_and_at_the_step() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let (admin, _) = admin_session(&server).await;
        let (_, ops) = add_user(&server, &admin, "ops@example.com", "operator").await;
        let (_, other) = add_user(&server, &admin, "other@example.com", "operator").await;
        let token = token_of(&server, &ops).await;
        conformance_agent_with(
            &server,
            &other,
            json!({"name": "hidden", "kind": "conformance", "visibility": "private"}),
        )
        .await;
        let shared = conformance_agent_with(
            &server,
            &other,
            json!({"name": "shared", "kind": "conformance", "visibility": "federation"}),
        )
        .await;

        // Another operator's private agent: as if it did not exist.
        let hidden = asking(
            "ask-hidden",
            json!({"type": "agent", "agent": "hidden", "message": "hi"}),
        );
        let (status, validation) = call(
            &server,
            &token,
            Method::POST,
            "/api/v1/workflows/validate",
            Some(hidden.clone()),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(validation["valid"], false);
        let problems = validation["problems"].as_array().unwrap();
        assert!(
            problems.iter().any(|p| p["rule"] == "unknown_agent"
                && p["message"].as_str().unwrap().contains("hidden")),
            "{validation}"
        );
        let (status, refused) = call(
            &server,
            &token,
            Method::POST,
            "/api/v1/workflows",
            Some(hidden),
        )
        .await;
        assert_eq!(status, 400, "{refused}");

        // Visible when saved, private by the time the step runs.
        let document = asking(
            "ask-shared",
            json!({"type": "agent", "agent": "shared", "message": "hi"}),
        );
        let workflow = apply(&server, &token, document).await;
        let made_private = other
            .send(
                &server,
                Method::PATCH,
                &format!("/api/v1/agents/{shared}"),
                Some(json!({"visibility": "private"})),
            )
            .await;
        assert_eq!(made_private.status(), 200);
        let run = start(&server, &token, &workflow, json!({})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "failed", "{detail}");
        let error = step(&detail, "ask")["error"].as_str().unwrap();
        assert!(
            error.contains("no agent \"shared\" the run may call"),
            "{detail}"
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn an_llm_step_answers_the_models_text_and_its_exact_usage() {
    for backend in backends() {
        let (llm, server) = llm_server(backend).await;
        let (admin, token) = admin_session(&server).await;
        conformance_agent_with(
            &server,
            &admin,
            json!({"name": "writer", "kind": "llm", "visibility": "private",
                   "runtime": {"baseUrl": llm.base_url(), "model": "test-model"}}),
        )
        .await;
        llm.set_reply(Some("a haiku of exactly seven words"));
        let document = asking(
            "write",
            json!({"type": "llm", "agent": "writer",
                   "system": "You write short poems.",
                   "prompt": "Write about {{ input.topic }}"}),
        );
        let workflow = apply(&server, &token, document).await;
        let run = start(&server, &token, &workflow, json!({"topic": "bees"})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        let output = &step(&detail, "ask")["output"];
        assert_eq!(output["text"], "a haiku of exactly seven words", "{detail}");

        // The model's own figures: its prompt tokens are the words of every message it got.
        let requests = llm.requests();
        assert_eq!(requests.len(), 1);
        let sent = requests[0].body["messages"].as_array().unwrap();
        let prompt_words: usize = sent
            .iter()
            .filter_map(|m| m["content"].as_str())
            .map(|text| text.split_whitespace().count())
            .sum();
        assert!(
            sent.iter().any(|m| m["content"]
                .as_str()
                .is_some_and(|text| text.contains("You write short poems.")
                    && text.contains("Write about bees"))),
            "{sent:?}"
        );
        assert_eq!(
            output["usage"],
            json!({"promptTokens": prompt_words, "completionTokens": 6}),
            "{detail}"
        );
        server.stop().await.0.unwrap();
    }
}

/// While the model streams its answer, the agent step's progress (its task, its state, how
/// much it has written) is the running step's output, seen before the answer is complete.
#[tokio::test]
async fn an_agent_steps_progress_is_recorded_while_it_streams() {
    for backend in backends() {
        let (llm, server) = llm_server(backend).await;
        let (admin, token) = admin_session(&server).await;
        conformance_agent_with(
            &server,
            &admin,
            json!({"name": "slow-writer", "kind": "llm", "visibility": "private",
                   "runtime": {"baseUrl": llm.base_url(), "model": "test-model"}}),
        )
        .await;
        llm.set_reply(Some("one two three four five"));
        let gate = llm.hold_streams();
        let document = asking(
            "stream",
            json!({"type": "agent", "agent": "slow-writer", "message": "go"}),
        );
        let workflow = apply(&server, &token, document).await;
        let run = start(&server, &token, &workflow, json!({})).await;
        let under_way = wait_run(&server, &token, &run, |detail| {
            detail["steps"].as_array().is_some_and(|steps| {
                steps.iter().any(|step| {
                    step["key"] == "ask"
                        && step["status"] == "running"
                        && step["output"]["progress"]["artifactChars"]
                            .as_u64()
                            .is_some_and(|chars| chars > 0)
                })
            })
        })
        .await;
        let progress = &step(&under_way, "ask")["output"]["progress"];
        assert_eq!(progress["state"], "working", "{under_way}");
        assert!(progress["taskId"].is_string(), "{under_way}");
        gate.notify_one();
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        let output = &step(&detail, "ask")["output"];
        assert_eq!(output["text"], "one two three four five", "{detail}");
        assert!(
            output.get("progress").is_none(),
            "the answer replaces it: {detail}"
        );
        server.stop().await.0.unwrap();
    }
}
