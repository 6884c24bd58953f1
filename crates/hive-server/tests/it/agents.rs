//! The agent registry over real HTTP, on every backend: who may register, see and change
//! agents; settings checked per kind; credentials only by secret reference.

use crate::support::*;
use hive_testkit::{TestServer, backends, error_body};
use reqwest::Method;
use serde_json::{Value, json};

const AGENTS: &str = "/api/v1/agents";

async fn secret_of(server: &TestServer, browser: &Browser, name: &str) -> String {
    hive_testkit::capture::canary("sk-agent-credential");
    let created = browser
        .send(
            server,
            Method::POST,
            "/api/v1/secrets",
            Some(json!({ "name": name, "value": "sk-agent-credential" })),
        )
        .await;
    assert_eq!(created.status(), 201);
    let secret: Value = created.json().await.unwrap();
    secret["id"].as_str().unwrap().to_owned()
}

async fn items(server: &TestServer, browser: &Browser) -> Vec<Value> {
    let listed: Value = browser
        .send(server, Method::GET, AGENTS, None)
        .await
        .json()
        .await
        .unwrap();
    listed["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn operators_register_their_own_agents_and_admins_see_all() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
        let (_, bob) = add_user(&server, &admin, "bob@example.com", "operator").await;
        let (_, viewer) = add_user(&server, &admin, "vic@example.com", "viewer").await;
        let secret = secret_of(&server, &alice, "upstream").await;

        let body = json!({
            "name": "research-bot",
            "description": "Finds papers",
            "kind": "remote",
            "visibility": "federation",
            "runtime": { "url": "https://agents.example.com/a2a", "credentialSecretId": secret },
        });
        let created = alice
            .send(&server, Method::POST, AGENTS, Some(body.clone()))
            .await;
        assert_eq!(created.status(), 201);
        let agent: Value = created.json().await.unwrap();
        assert_eq!(agent["status"], "created");
        assert_eq!(agent["version"], 1);
        assert_eq!(agent["runtime"]["protocolVersion"], "0.3", "the default");
        assert_eq!(
            agent["skills"][0]["id"], "research-bot",
            "one skill by default"
        );
        assert_eq!(agent["limits"]["concurrentTasks"], 4);
        let id = agent["id"].as_str().unwrap();
        let path = format!("{AGENTS}/{id}");

        let same_name = json!({ "name": "research-bot", "kind": "conformance" });
        let taken = bob
            .send(&server, Method::POST, AGENTS, Some(same_name))
            .await;
        assert_eq!(taken.status(), 409, "names are unique in the instance");

        assert_eq!(items(&server, &alice).await.len(), 1);
        assert!(
            items(&server, &bob).await.is_empty(),
            "owners see their own"
        );
        assert_eq!(items(&server, &admin).await.len(), 1);
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({ "description": "mine now" }))),
            (Method::DELETE, None),
        ] {
            let response = bob.send(&server, method.clone(), &path, body).await;
            assert_eq!(response.status(), 404, "{method} of another's agent");
        }
        let by_viewer = viewer
            .send(
                &server,
                Method::POST,
                AGENTS,
                Some(json!({ "name": "v", "kind": "conformance" })),
            )
            .await;
        assert_eq!(by_viewer.status(), 403);

        let changed = alice
            .send(
                &server,
                Method::PATCH,
                &path,
                Some(json!({ "description": "Finds and reads papers", "limits": {
                    "requestsPerMinute": 10, "tokensPerDay": 100000,
                    "concurrentTasks": 2, "timeoutSeconds": 60 } })),
            )
            .await;
        assert_eq!(changed.status(), 200);
        let changed: Value = changed.json().await.unwrap();
        assert_eq!(changed["version"], 2);
        assert_eq!(changed["limits"]["tokensPerDay"], 100_000);
        assert_eq!(changed["kind"], "remote");

        let deleted = alice.send(&server, Method::DELETE, &path, None).await;
        assert_eq!(deleted.status(), 204);
        assert_eq!(
            alice.send(&server, Method::GET, &path, None).await.status(),
            404
        );
        for action in ["agent.create", "agent.update", "agent.delete"] {
            let records = records_of(&server, action).await;
            assert_eq!(records.len(), 1, "{action}");
            assert!(
                !records[0].detail.contains("agents.example.com"),
                "settings stay out of the audit log: {}",
                records[0].detail
            );
        }
    }
}

#[tokio::test]
async fn settings_are_checked_per_kind_and_credentials_are_never_inline() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
        let (_, bob) = add_user(&server, &admin, "bob@example.com", "operator").await;
        let bobs_secret = secret_of(&server, &bob, "bobs-key").await;
        hive_testkit::capture::canary("sk-inline-should-never-be-stored");
        let refused = [
            json!({ "name": "a", "kind": "remote", "runtime": {
                "url": "https://x.example/a2a", "apiKey": "sk-inline-should-never-be-stored" } }),
            json!({ "name": "a", "kind": "remote", "runtime": {
                "url": "https://user:sk-inline-should-never-be-stored@x.example/a2a" } }),
            json!({ "name": "a", "kind": "remote", "runtime": { "url": "ftp://x.example/" } }),
            json!({ "name": "a", "kind": "remote", "runtime": {
                "url": "https://x.example/", "protocolVersion": "2.0" } }),
            json!({ "name": "a", "kind": "remote", "runtime": {
                "url": "https://x.example/", "credentialSecretId": bobs_secret } }),
            json!({ "name": "a", "kind": "llm", "runtime": {
                "baseUrl": "http://ollama.internal:11434/v1", "model": "llama3", "temperature": 3 } }),
            json!({ "name": "a", "kind": "llm", "runtime": { "model": "llama3" } }),
            json!({ "name": "a", "kind": "conformance", "runtime": { "url": "https://x.example/" } }),
            json!({ "name": "Not A Slug", "kind": "conformance" }),
            json!({ "name": "a", "kind": "conformance", "skills": [] }),
            json!({ "name": "a", "kind": "mystery" }),
        ];
        for body in refused {
            let response = alice
                .send(&server, Method::POST, AGENTS, Some(body.clone()))
                .await;
            assert_eq!(response.status(), 400, "{body}");
            let error = error_body(response).await;
            assert!(
                !error.error.message.contains("sk-inline"),
                "{}",
                error.error.message
            );
        }
        assert!(
            items(&server, &alice).await.is_empty(),
            "nothing was created"
        );

        let llm = alice
            .send(
                &server,
                Method::POST,
                AGENTS,
                Some(json!({ "name": "local-llama", "kind": "llm", "runtime": {
                    "baseUrl": "http://ollama.internal:11434/v1", "model": "llama3",
                    "systemPrompt": "Be brief.", "temperature": 0.2, "maxTokens": 512 } })),
            )
            .await;
        assert_eq!(llm.status(), 201);
        let conformance = alice
            .send(
                &server,
                Method::POST,
                AGENTS,
                Some(json!({ "name": "tck", "kind": "conformance", "skills": [
                    { "id": "echo", "name": "Echo", "tags": ["test"] }] })),
            )
            .await;
        assert_eq!(conformance.status(), 201);
        let agent: Value = conformance.json().await.unwrap();
        assert_eq!(agent["skills"][0]["tags"][0], "test");
        assert_eq!(agent["visibility"], "private", "the default");
    }
}
