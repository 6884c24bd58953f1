//! Runs as a whole: cancelled while waiting, a sub-workflow's run waited for (its output, its
//! failure), a run followed as Server-Sent Events to its end, and the history: filters, keyset
//! paging, versions, validation, and what another operator cannot see or change.

use super::*;
use hive_a2a::sse::Decoder;

/// input → `gate` (an admin's approval) → `done`.
fn gated(name: &str) -> Value {
    json!({
        "name": name,
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "gate", "type": "approval", "approvers": {"role": "admin"}, "message": "go?"},
            {"id": "done", "type": "output", "value": {"went": true}}
        ],
        "edges": [{"from": "start", "to": "gate"}, {"from": "gate", "to": "done"}]
    })
}

/// input → output of the input.
fn echo(name: &str) -> Value {
    json!({
        "name": name,
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "done", "type": "output", "value": "{{ input }}"}
        ],
        "edges": [{"from": "start", "to": "done"}]
    })
}

#[tokio::test]
async fn a_waiting_run_is_cancelled_once() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let token = admin_token(&server).await;
        let workflow = apply(&server, &token, gated("cancel-me")).await;
        let run = start(&server, &token, &workflow, json!({})).await;
        wait_status(&server, &token, &run, "waiting").await;
        let cancel = format!("/api/v1/workflow-runs/{run}/cancel");
        let (status, cancelled) = call(&server, &token, Method::POST, &cancel, None).await;
        assert_eq!(status, 200, "{cancelled}");
        assert_eq!(cancelled["status"], "cancelled");
        let (status, _) = call(&server, &token, Method::POST, &cancel, None).await;
        assert_eq!(status, 409);
        let (status, detail) = call(
            &server,
            &token,
            Method::GET,
            &format!("/api/v1/workflow-runs/{run}"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(detail["run"]["status"], "cancelled");
        assert_eq!(step(&detail, "gate")["status"], "cancelled");
        // Nothing to decide any more.
        let (status, _) = call(
            &server,
            &token,
            Method::POST,
            &format!("/api/v1/workflow-runs/{run}/approvals/gate"),
            Some(json!({"approve": true})),
        )
        .await;
        assert_eq!(status, 409);
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn a_sub_workflow_is_waited_for_and_its_failure_fails_the_parent() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let token = admin_token(&server).await;
        let child = apply(
            &server,
            &token,
            json!({
                "name": "child",
                "nodes": [
                    {"id": "start", "type": "input", "required": ["n"]},
                    {"id": "done", "type": "output", "value": {"got": "{{ input.n }}"}}
                ],
                "edges": [{"from": "start", "to": "done"}]
            }),
        )
        .await;
        let parent = apply(
            &server,
            &token,
            json!({
                "name": "parent",
                "nodes": [
                    {"id": "start", "type": "input"},
                    {"id": "sub", "type": "workflow", "workflow": "child", "input": "{{ input }}"},
                    {"id": "done", "type": "output", "value": {"child": "{{ nodes.sub.output }}"}}
                ],
                "edges": [{"from": "start", "to": "sub"}, {"from": "sub", "to": "done"}]
            }),
        )
        .await;
        let run = start(&server, &token, &parent, json!({"n": 7})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        assert_eq!(detail["run"]["output"], json!({"child": {"got": 7}}));
        let (_, runs) = call(
            &server,
            &token,
            Method::GET,
            &format!("/api/v1/workflow-runs?workflowId={child}"),
            None,
        )
        .await;
        let children = runs["items"].as_array().unwrap();
        assert_eq!(children.len(), 1, "{runs}");
        assert_eq!(children[0]["parentRunId"], run.as_str());
        assert_eq!(children[0]["parentStep"], "sub");
        assert_eq!(children[0]["trigger"], "workflow");

        // The child refuses its input: the parent's step and run fail, naming the child's run.
        let run = start(&server, &token, &parent, json!({"m": 1})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "failed", "{detail}");
        let sub = step(&detail, "sub");
        assert_eq!(sub["status"], "failed");
        let (_, runs) = call(
            &server,
            &token,
            Method::GET,
            &format!("/api/v1/workflow-runs?workflowId={child}&status=failed"),
            None,
        )
        .await;
        let failed = runs["items"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "{runs}");
        assert_eq!(failed[0]["parentRunId"], run.as_str());
        // The step says why: the child's own error, or (when the child ended before the step
        // waited for it) which run failed.
        let error = sub["error"].as_str().unwrap();
        assert!(
            error.contains("the input lacks n")
                || error.contains(failed[0]["id"].as_str().unwrap()),
            "{detail}"
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn a_run_is_followed_as_events_until_it_ends() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let token = admin_token(&server).await;
        let workflow = apply(&server, &token, gated("followed")).await;
        let run = start(&server, &token, &workflow, json!({})).await;
        wait_status(&server, &token, &run, "waiting").await;
        let mut response = server
            .client
            .request(Method::GET, &format!("/api/v1/workflow-runs/{run}/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut decoder = Decoder::new(1 << 20);
        let mut events: Vec<(String, Value)> = Vec::new();
        let mut decided = false;
        let read = async {
            while let Some(chunk) = response.chunk().await.unwrap() {
                for event in decoder.feed(&chunk).unwrap() {
                    events.push((event.event, serde_json::from_str(&event.data).unwrap()));
                }
                // Decide once the stream has shown the run waiting at the gate.
                let waiting = events
                    .iter()
                    .any(|(name, data)| name == "run" && data["status"] == "waiting");
                if waiting && !decided {
                    decided = true;
                    let (status, _) = call(
                        &server,
                        &token,
                        Method::POST,
                        &format!("/api/v1/workflow-runs/{run}/approvals/gate"),
                        Some(json!({"approve": true})),
                    )
                    .await;
                    assert_eq!(status, 200);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the stream ends with the run");
        assert!(decided, "{events:?}");
        let steps: Vec<(String, String)> = events
            .iter()
            .filter(|(name, _)| name == "step")
            .map(|(_, data)| {
                (
                    data["key"].as_str().unwrap().to_owned(),
                    data["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for expected in [
            ("start", "succeeded"),
            ("gate", "waiting"),
            ("gate", "succeeded"),
            ("done", "succeeded"),
        ] {
            assert!(
                steps.contains(&(expected.0.to_owned(), expected.1.to_owned())),
                "{expected:?} in {events:?}"
            );
        }
        let (last, data) = events.last().unwrap();
        assert_eq!(last, "run");
        assert_eq!(data["status"], "succeeded", "{events:?}");
        assert_eq!(data["output"], json!({"went": true}));
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn the_history_filters_pages_and_shows_nothing_of_another_operators() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let (admin, token) = admin_session(&server).await;
        let first = apply(&server, &token, echo("first")).await;
        let second = apply(&server, &token, echo("second")).await;
        let mut started = Vec::new();
        for n in 0..2 {
            let run = start(&server, &token, &first, json!({"n": n})).await;
            wait_run(&server, &token, &run, ended).await;
            started.push(run);
        }
        let other_run = start(&server, &token, &second, json!({})).await;
        wait_run(&server, &token, &other_run, ended).await;

        let list = |query: String| {
            let server = &server;
            let token = &token;
            async move {
                let (status, page) = call(
                    server,
                    token,
                    Method::GET,
                    &format!("/api/v1/workflow-runs?{query}"),
                    None,
                )
                .await;
                assert_eq!(status, 200, "{query}: {page}");
                page
            }
        };
        let ids = |page: &Value| -> Vec<String> {
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|run| run["id"].as_str().unwrap().to_owned())
                .collect()
        };
        // Newest first.
        let of_first = list(format!("workflowId={first}")).await;
        assert_eq!(ids(&of_first), [started[1].clone(), started[0].clone()]);
        let done = list(format!(
            "workflowId={first}&status=succeeded&trigger=manual"
        ))
        .await;
        assert_eq!(ids(&done).len(), 2);
        assert!(ids(&list(format!("workflowId={first}&status=failed")).await).is_empty());
        assert!(ids(&list("trigger=webhook".to_owned()).await).is_empty());
        assert_eq!(ids(&list("trigger=manual".to_owned()).await).len(), 3);
        let (status, _) = call(
            &server,
            &token,
            Method::GET,
            "/api/v1/workflow-runs?status=sleeping",
            None,
        )
        .await;
        assert_eq!(status, 400);

        // Keyset paging, one at a time.
        let page = list(format!("workflowId={first}&limit=1")).await;
        assert_eq!(ids(&page), [started[1].clone()]);
        let cursor = page["nextCursor"].as_str().unwrap().to_owned();
        let page = list(format!("workflowId={first}&limit=1&cursor={cursor}")).await;
        assert_eq!(ids(&page), [started[0].clone()]);
        if let Some(cursor) = page["nextCursor"].as_str() {
            let rest = list(format!("workflowId={first}&limit=1&cursor={cursor}")).await;
            assert!(ids(&rest).is_empty(), "{rest}");
        }

        // Versions, newest first.
        let mut changed = echo("first");
        changed["description"] = json!("second version");
        let (status, saved) = call(
            &server,
            &token,
            Method::PUT,
            &format!("/api/v1/workflows/{first}"),
            Some(changed),
        )
        .await;
        assert_eq!(status, 200, "{saved}");
        assert_eq!(saved["version"], 2);
        let (status, versions) = call(
            &server,
            &token,
            Method::GET,
            &format!("/api/v1/workflows/{first}/versions"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let numbers: Vec<i64> = versions
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, [2, 1]);
        assert_eq!(versions[0]["document"]["description"], "second version");

        // Another operator: none of it.
        let (_, ops) = add_user(&server, &admin, "ops@example.com", "operator").await;
        let ops_token = token_of(&server, &ops).await;
        let (status, theirs) = call(
            &server,
            &ops_token,
            Method::GET,
            "/api/v1/workflow-runs",
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert!(ids(&theirs).is_empty(), "{theirs}");
        for path in [
            format!("/api/v1/workflow-runs/{}", started[0]),
            format!("/api/v1/workflows/{first}"),
            format!("/api/v1/workflows/{first}/versions"),
            format!("/api/v1/workflow-runs?workflowId={first}"),
        ] {
            let (status, _) = call(&server, &ops_token, Method::GET, &path, None).await;
            assert_eq!(status, 404, "{path}");
        }
        let (status, _) = call(
            &server,
            &ops_token,
            Method::PUT,
            &format!("/api/v1/workflows/{first}"),
            Some(echo("first")),
        )
        .await;
        assert_eq!(status, 404);
        let (status, versions) = call(
            &server,
            &token,
            Method::GET,
            &format!("/api/v1/workflows/{first}/versions"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(versions.as_array().unwrap().len(), 2, "nothing was saved");
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn validation_answers_every_problem_naming_its_node() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let token = admin_token(&server).await;
        let validate = |document: Value| {
            let server = &server;
            let token = &token;
            async move {
                let (status, answer) = call(
                    server,
                    token,
                    Method::POST,
                    "/api/v1/workflows/validate",
                    Some(document),
                )
                .await;
                assert_eq!(status, 200, "{answer}");
                answer
            }
        };
        let answer = validate(echo("fine")).await;
        assert_eq!(answer, json!({"valid": true, "problems": []}));

        let answer = validate(json!({
            "name": "odd",
            "nodes": [
                {"id": "start", "type": "input"},
                {"id": "weird", "type": "teleport"}
            ],
            "edges": [{"from": "start", "to": "weird"}]
        }))
        .await;
        assert_eq!(answer["valid"], false);
        assert!(
            answer["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["rule"] == "unknown_type" && p["node"] == "weird"),
            "{answer}"
        );

        let answer = validate(json!({
            "name": "loop",
            "nodes": [
                {"id": "start", "type": "input"},
                {"id": "a", "type": "transform", "value": 1},
                {"id": "b", "type": "transform", "value": 2}
            ],
            "edges": [
                {"from": "start", "to": "a"},
                {"from": "a", "to": "b"},
                {"from": "b", "to": "a"}
            ]
        }))
        .await;
        assert_eq!(answer["valid"], false);
        let cycle = answer["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["rule"] == "cycle")
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(cycle["node"] == "a" || cycle["node"] == "b", "{answer}");
        // Nothing was saved.
        let (_, listed) = call(&server, &token, Method::GET, "/api/v1/workflows", None).await;
        assert!(listed["items"].as_array().unwrap().is_empty(), "{listed}");
        server.stop().await.0.unwrap();
    }
}
