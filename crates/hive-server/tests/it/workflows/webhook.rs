//! The webhook trigger: a secret shown once, a signed call that starts a run with its body as
//! input, and every bad signature, stale time and replay refused and audited.

use super::*;
use hive_proto::Clock;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>`, computed here independently of Hive.
fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(
    server: &TestServer,
    workflow: &str,
    trigger: &str,
    signature: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(
            Method::POST,
            &format!("/api/webhooks/workflows/{workflow}/{trigger}"),
        )
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("Hive-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_signed_webhook_call_starts_a_run_and_bad_ones_are_refused_and_audited() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let token = admin_token(&server).await;
        let workflow = apply(
            &server,
            &token,
            json!({
                "name": "hooked",
                "triggers": [{"id": "orders", "type": "webhook"}],
                "nodes": [
                    {"id": "start", "type": "input"},
                    {"id": "done", "type": "output", "value": {"order": "{{ input.order }}"}}
                ],
                "edges": [{"from": "start", "to": "done"}]
            }),
        )
        .await;
        let (status, created) = call(
            &server,
            &token,
            Method::POST,
            &format!("/api/v1/workflows/{workflow}/webhook-secret"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{created}");
        let secret = created["secret"].as_str().unwrap().to_owned();
        hive_testkit::capture::canary(&secret);
        let (status, shown) = call(
            &server,
            &token,
            Method::GET,
            &format!("/api/v1/workflows/{workflow}"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(shown["webhookSecretSet"], true);
        assert!(!shown.to_string().contains(&secret), "shown once: {shown}");

        let body = r#"{"order":42,"items":["a"]}"#;
        let now = server.clock.now().unix_timestamp();
        let signed = signature(&secret, now, body);
        let (status, run) = deliver(&server, &workflow, "orders", Some(&signed), body).await;
        assert_eq!(status, 202, "{run}");
        let run_id = run["id"].as_str().unwrap();
        assert_eq!(run["trigger"], "webhook");
        let detail = wait_run(&server, &token, run_id, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        assert_eq!(detail["run"]["input"], json!({"order": 42, "items": ["a"]}));
        assert_eq!(detail["run"]["output"], json!({"order": 42}));

        // The same delivery again.
        let (status, _) = deliver(&server, &workflow, "orders", Some(&signed), body).await;
        assert_eq!(status, 409);
        // Six minutes off the server's clock, either way.
        for off in [-360, 360] {
            let stale = signature(&secret, now + off, body);
            let (status, _) = deliver(&server, &workflow, "orders", Some(&stale), body).await;
            assert_eq!(status, 401, "{off}");
        }
        // Signed with another secret, or over another body.
        let wrong = signature("whsec_not_the_secret", now, body);
        assert_eq!(
            deliver(&server, &workflow, "orders", Some(&wrong), body)
                .await
                .0,
            401
        );
        let other_body = r#"{"order":43,"items":["a"]}"#;
        assert_eq!(
            deliver(&server, &workflow, "orders", Some(&signed), other_body)
                .await
                .0,
            401
        );
        assert_eq!(
            deliver(&server, &workflow, "orders", None, body).await.0,
            401
        );
        let (status, _) = deliver(&server, &workflow, "nope", Some(&signed), body).await;
        assert_eq!(status, 404);

        let refused = audit_of(&server, &token, "workflow.webhook.refused").await;
        let mut reasons: Vec<&str> = refused
            .iter()
            .map(|r| r["detail"]["reason"].as_str().unwrap())
            .collect();
        reasons.sort_unstable();
        assert_eq!(
            reasons,
            [
                "replayed",
                "signature_mismatch",
                "signature_mismatch",
                "signature_missing",
                "signature_stale",
                "signature_stale"
            ],
            "{refused:?}"
        );
        for record in &refused {
            assert_eq!(record["outcome"], "denied");
            assert_eq!(record["target"], format!("workflow:{workflow}").as_str());
        }
        // Only the one good delivery started a run.
        let (_, runs) = call(
            &server,
            &token,
            Method::GET,
            &format!("/api/v1/workflow-runs?workflowId={workflow}"),
            None,
        )
        .await;
        assert_eq!(runs["items"].as_array().unwrap().len(), 1, "{runs}");
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn a_webhook_call_with_a_token_runs_through_that_token_once_per_key() {
    for backend in backends() {
        let server = a2a_server(backend, &[]).await;
        let (admin, token) = admin_session(&server).await;
        let workflow = apply(
            &server,
            &token,
            json!({
                "name": "tokened",
                "triggers": [{"id": "ci", "type": "webhook"}],
                "nodes": [
                    {"id": "start", "type": "input"},
                    {"id": "done", "type": "output", "value": "{{ input.build }}"}
                ],
                "edges": [{"from": "start", "to": "done"}]
            }),
        )
        .await;
        let path = format!("/api/webhooks/workflows/{workflow}/ci");
        let send = |bearer: String, key: Option<&'static str>| {
            let mut request = server
                .client
                .request(Method::POST, &path)
                .bearer_auth(bearer)
                .header("content-type", "application/json")
                .body(r#"{"build":7}"#);
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let (status, run) = send(token.clone(), Some("build-7")).await;
        assert_eq!(status, 202, "{run}");
        assert_eq!(run["trigger"], "webhook");
        let token_row = call(&server, &token, Method::GET, "/api/v1/tokens", None)
            .await
            .1["items"][0]["id"]
            .clone();
        assert_eq!(
            run["runAsToken"], token_row,
            "the run acts through the token"
        );
        let detail = wait_run(&server, &token, run["id"].as_str().unwrap(), ended).await;
        assert_eq!(detail["run"]["output"], 7, "{detail}");
        // The same key again is a replay; another key, or none, is another delivery.
        assert_eq!(send(token.clone(), Some("build-7")).await.0, 409);
        assert_eq!(send(token.clone(), Some("build-8")).await.0, 202);
        assert_eq!(send(token.clone(), None).await.0, 202);
        // A key too long to keep is refused, and starts nothing.
        let runs_before = call(&server, &token, Method::GET, "/api/v1/workflow-runs", None)
            .await
            .1["items"]
            .as_array()
            .unwrap()
            .len();
        let long: &'static str = Box::leak("k".repeat(129).into_boxed_str());
        assert_eq!(send(token.clone(), Some(long)).await.0, 400);
        let runs_after = call(&server, &token, Method::GET, "/api/v1/workflow-runs", None)
            .await
            .1["items"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(runs_after, runs_before);
        // A token the server does not know, or one without the execute scope, is refused.
        assert_eq!(
            send("hive_not_a_real_token_00000000000000000000".into(), None)
                .await
                .0,
            401
        );
        let reader = create_token(
            &server,
            &admin,
            json!({ "name": "reader", "scopes": ["read"] }),
        )
        .await;
        let reader = reader["token"].as_str().unwrap().to_owned();
        assert_eq!(send(reader, None).await.0, 403);
        let replays = audit_of(&server, &token, "workflow.webhook.refused").await;
        assert_eq!(replays.len(), 1, "{replays:?}");
        assert_eq!(replays[0]["detail"]["reason"], "replayed");
        server.stop().await.0.unwrap();
    }
}
