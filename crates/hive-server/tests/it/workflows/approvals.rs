//! Approvals: a run waits for its approver's decision; anyone else is refused (and audited);
//! a decision is taken once; a rejection follows its `rejected` edge or fails the run. And the
//! run's principal checked before every step: a revoked token or a lowered role stops the run
//! at its next step, audited.

use super::*;
use crate::pages::post_form;

/// input → `gate` (an approval by `approvers`) → `ship`; with `undo` on the rejected edge when
/// `with_rejected`.
fn gated(name: &str, approvers: Value, with_rejected: bool) -> Value {
    let mut nodes = vec![
        json!({"id": "start", "type": "input"}),
        json!({"id": "gate", "type": "approval", "approvers": approvers,
               "message": "ship {{ input.what }}?"}),
        json!({"id": "ship", "type": "transform", "value": "shipped {{ input.what }}"}),
    ];
    let mut edges = vec![
        json!({"from": "start", "to": "gate"}),
        json!({"from": "gate", "to": "ship"}),
    ];
    if with_rejected {
        nodes.push(json!({"id": "undo", "type": "transform", "value": "undone"}));
        edges.push(json!({"from": "gate", "to": "undo", "when": "rejected"}));
    }
    json!({"name": name, "nodes": nodes, "edges": edges})
}

async fn decide(server: &TestServer, browser: &Browser, run: &str, approve: bool) -> (u16, Value) {
    let response = browser
        .send(
            server,
            Method::POST,
            &format!("/api/v1/workflow-runs/{run}/approvals/gate"),
            Some(json!({"approve": approve, "comment": "looked at it"})),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_run_waits_for_its_approver_and_refuses_anyone_else() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let (admin, token) = admin_session(&server).await;
        let (_, approver) = add_user(&server, &admin, "approver@example.com", "viewer").await;
        let (_, viewer) = add_user(&server, &admin, "viewer@example.com", "viewer").await;
        let approvers = json!({"users": ["approver@example.com"]});
        let workflow = apply(&server, &token, gated("gated", approvers.clone(), false)).await;
        let run = start(&server, &token, &workflow, json!({"what": "v2"})).await;
        let waiting = wait_status(&server, &token, &run, "waiting").await;
        assert_eq!(step(&waiting, "gate")["status"], "waiting");
        assert_eq!(step(&waiting, "gate")["input"]["message"], "ship v2?");

        // A viewer not named cannot see the run; the admin sees it but is not named.
        assert_eq!(decide(&server, &viewer, &run, true).await.0, 404);
        assert_eq!(decide(&server, &admin, &run, true).await.0, 403);
        let denied: Vec<Value> = audit_of(&server, &token, "workflow.approval")
            .await
            .into_iter()
            .filter(|r| r["outcome"] == "denied")
            .collect();
        assert_eq!(denied.len(), 2, "{denied:?}");
        assert!(
            denied
                .iter()
                .all(|r| r["target"] == format!("workflow_run:{run}").as_str()),
            "{denied:?}"
        );
        let still = wait_status(&server, &token, &run, "waiting").await;
        assert_eq!(step(&still, "gate")["status"], "waiting");

        let (status, decided) = decide(&server, &approver, &run, true).await;
        assert_eq!(status, 200, "{decided}");
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        let gate = step(&detail, "gate");
        assert_eq!(gate["branch"], "approved");
        assert_eq!(gate["output"]["by"], "approver@example.com");
        assert_eq!(gate["output"]["comment"], "looked at it");
        assert_eq!(step(&detail, "ship")["output"], "shipped v2");
        // Taken once.
        assert_eq!(decide(&server, &approver, &run, false).await.0, 409);

        // Rejected, with nowhere to go: the run fails.
        let run = start(&server, &token, &workflow, json!({"what": "v3"})).await;
        wait_status(&server, &token, &run, "waiting").await;
        assert_eq!(decide(&server, &approver, &run, false).await.0, 200);
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "failed", "{detail}");
        let error = detail["run"]["error"].as_str().unwrap();
        assert!(
            error.contains("rejected") && error.contains("approver@example.com"),
            "{error}"
        );

        // Rejected, with a `rejected` edge: the run follows it.
        let workflow = apply(&server, &token, gated("gated-undo", approvers, true)).await;
        let run = start(&server, &token, &workflow, json!({"what": "v4"})).await;
        wait_status(&server, &token, &run, "waiting").await;
        assert_eq!(decide(&server, &approver, &run, false).await.0, 200);
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        assert_eq!(step(&detail, "gate")["branch"], "rejected");
        assert_eq!(step(&detail, "undo")["output"], "undone");
        assert_eq!(step(&detail, "ship")["status"], "skipped");
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn a_revoked_token_stops_the_run_it_started_at_the_next_step() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let (admin, admin_token) = admin_session(&server).await;
        let created = create_token(&server, &admin, json!({ "name": "ci" })).await;
        let token = created["token"].as_str().unwrap();
        let token_id = created["id"].as_str().unwrap();
        let workflow = apply(
            &server,
            token,
            gated("by-token", json!({"role": "admin"}), false),
        )
        .await;
        let run = start(&server, token, &workflow, json!({"what": "x"})).await;
        let waiting = wait_status(&server, &admin_token, &run, "waiting").await;
        assert_eq!(waiting["run"]["runAsToken"], token_id);

        let revoked = admin
            .send(
                &server,
                Method::DELETE,
                &format!("/api/v1/tokens/{token_id}"),
                None,
            )
            .await;
        assert!(revoked.status().is_success(), "{}", revoked.status());
        assert_eq!(decide(&server, &admin, &run, true).await.0, 200);
        let detail = wait_run(&server, &admin_token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "failed", "{detail}");
        let ship = step(&detail, "ship");
        assert_eq!(ship["status"], "failed");
        assert!(
            ship["error"].as_str().unwrap().contains("revoked"),
            "{detail}"
        );
        let refused = audit_of(&server, &admin_token, "workflow.step.refused").await;
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0]["outcome"], "denied");
        assert_eq!(refused[0]["detail"]["reason"], "token_revoked");
        assert_eq!(refused[0]["detail"]["node"], "ship");
        assert_eq!(refused[0]["actor"], format!("token:{token_id}").as_str());
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn a_lowered_role_stops_the_run_at_the_next_step() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let (admin, admin_token) = admin_session(&server).await;
        let (user, ops) = add_user(&server, &admin, "ops@example.com", "operator").await;
        let token = token_of(&server, &ops).await;
        let workflow = apply(
            &server,
            &token,
            gated("by-operator", json!({"role": "admin"}), false),
        )
        .await;
        let run = start(&server, &token, &workflow, json!({"what": "x"})).await;
        wait_status(&server, &admin_token, &run, "waiting").await;

        let lowered = admin
            .send(
                &server,
                Method::PATCH,
                &format!("/api/v1/users/{}", user["id"].as_str().unwrap()),
                Some(json!({"role": "viewer"})),
            )
            .await;
        assert_eq!(lowered.status(), 200);
        assert_eq!(decide(&server, &admin, &run, true).await.0, 200);
        let detail = wait_run(&server, &admin_token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "failed", "{detail}");
        let error = step(&detail, "ship")["error"].as_str().unwrap();
        assert!(error.contains("role viewer"), "{error}");
        let refused = audit_of(&server, &admin_token, "workflow.step.refused").await;
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0]["detail"]["reason"], "role_below_minimum");
        server.stop().await.0.unwrap();
    }
}

/// The approvals waiting for `browser`'s user, through the API: (run, node, message, workflow).
async fn pending(server: &TestServer, browser: &Browser) -> Vec<(String, String, String, String)> {
    let response = browser
        .send(server, Method::GET, "/api/v1/workflow-approvals", None)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let text = |value: &Value| value.as_str().unwrap().to_owned();
            (
                text(&item["run"]["id"]),
                text(&item["node"]),
                text(&item["message"]),
                text(&item["workflow"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_approver_sees_what_waits_for_them_and_decides_from_the_dashboard() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let (admin, token) = admin_session(&server).await;
        let (_, approver) = add_user(&server, &admin, "approver@example.com", "viewer").await;
        let (_, viewer) = add_user(&server, &admin, "viewer@example.com", "viewer").await;
        let (_, ops) = add_user(&server, &admin, "ops@example.com", "operator").await;
        let named = json!({"users": ["approver@example.com"]});
        let workflow = apply(&server, &token, gated("named", named, false)).await;
        let run = start(&server, &token, &workflow, json!({"what": "v2"})).await;
        let by_role = apply(
            &server,
            &token,
            gated("by-role", json!({"role": "admin"}), false),
        )
        .await;
        let other = start(&server, &token, &by_role, json!({"what": "v3"})).await;
        wait_status(&server, &token, &run, "waiting").await;
        wait_status(&server, &token, &other, "waiting").await;

        // Each sees exactly what they may decide: the named viewer the one naming them, the
        // admin the one its role decides; the other viewer and the operator nothing.
        let mine = (
            run.clone(),
            "gate".to_owned(),
            "ship v2?".to_owned(),
            "named".to_owned(),
        );
        assert_eq!(pending(&server, &approver).await, vec![mine]);
        let admins = pending(&server, &admin).await;
        assert_eq!(admins.len(), 1, "{admins:?}");
        assert_eq!(
            (admins[0].0.as_str(), admins[0].3.as_str()),
            (other.as_str(), "by-role")
        );
        assert!(pending(&server, &viewer).await.is_empty());
        assert!(pending(&server, &ops).await.is_empty());

        // The page lists it for the approver, who cannot open the run's own page.
        let page_of = async |browser: &Browser, path: &str| {
            let response = browser.request(&server, Method::GET, path).send().await;
            let response = response.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.text().await.unwrap()
        };
        let page = page_of(&approver, "/approvals").await;
        for expected in [
            run.as_str(),
            "ship v2?",
            ">named<",
            "<code>gate</code>",
            r#"<a href="/approvals">Approvals</a>"#,
            &format!(r#"action="/approvals/{run}/decide""#),
        ] {
            assert!(page.contains(expected), "{expected}: {page}");
        }
        assert!(!page.contains(other.as_str()) && !page.contains("/workflows/runs/"));
        assert!(
            page_of(&ops, "/approvals")
                .await
                .contains("Nothing waits for your decision.")
        );
        let run_page = approver
            .request(&server, Method::GET, &format!("/workflows/runs/{run}"))
            .send()
            .await
            .unwrap();
        assert_eq!(run_page.status(), 403);

        // Someone else's decision from the page is refused; the approver's is taken.
        let own = Some(server.origin.as_str());
        let path = format!("/approvals/{run}/decide");
        let form = [
            ("node", "gate"),
            ("decision", "approve"),
            ("comment", "fine by me"),
        ];
        let refused = post_form(&server, &path, own, Some(&viewer.cookie), &form).await;
        assert_eq!(refused.status(), 404);
        let refused = post_form(&server, &path, own, Some(&ops.cookie), &form).await;
        assert_eq!(refused.status(), 404);
        let decided = post_form(&server, &path, own, Some(&approver.cookie), &form).await;
        assert_eq!(decided.status(), 303);
        assert_eq!(
            decided.headers()["location"].to_str().unwrap(),
            "/approvals?decided=approved"
        );
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        let gate = step(&detail, "gate");
        assert_eq!(gate["output"]["by"], "approver@example.com");
        assert_eq!(gate["output"]["comment"], "fine by me");
        assert_eq!(step(&detail, "ship")["output"], "shipped v2");
        let after = page_of(&approver, "/approvals?decided=approved").await;
        assert!(
            after.contains("Approved") && after.contains("Nothing waits for your decision."),
            "{after}"
        );
        // Taken once: a second decision is the problem page.
        let again = post_form(&server, &path, own, Some(&approver.cookie), &form).await;
        assert_eq!(again.status(), 409);
        assert_eq!(pending(&server, &admin).await.len(), 1);
        server.stop().await.0.unwrap();
    }
}
