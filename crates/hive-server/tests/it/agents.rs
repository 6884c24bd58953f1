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

        // A rename onto a taken name changes nothing.
        let other = create_agent(
            &server,
            &bob,
            json!({ "name": "bobs", "kind": "conformance" }),
        )
        .await;
        let clash = bob
            .send(
                &server,
                Method::PATCH,
                &format!("{AGENTS}/{other}"),
                Some(json!({ "name": "research-bot" })),
            )
            .await;
        assert_eq!(clash.status(), 409);
        let kept: Value = bob
            .send(&server, Method::GET, &format!("{AGENTS}/{other}"), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (kept["name"].as_str(), kept["version"].as_i64()),
            (Some("bobs"), Some(1))
        );

        let deleted = alice.send(&server, Method::DELETE, &path, None).await;
        assert_eq!(deleted.status(), 204);
        assert_eq!(
            alice.send(&server, Method::GET, &path, None).await.status(),
            404
        );
        // Two creations, one update (the refused rename wrote nothing), one deletion.
        for (action, count) in [
            ("agent.create", 2),
            ("agent.update", 1),
            ("agent.delete", 1),
        ] {
            let records = records_of(&server, action).await;
            assert_eq!(records.len(), count, "{action}");
            assert!(
                records
                    .iter()
                    .all(|r| !r.detail.contains("agents.example.com")),
                "settings stay out of the audit log"
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

/// A 0.3 card, as most agents in the field publish it.
fn card_v03(rpc_url: &str) -> Value {
    json!({
        "protocolVersion": "0.3.0",
        "name": "Research Bot (beta)",
        "description": "Finds papers",
        "url": rpc_url,
        "preferredTransport": "JSONRPC",
        "version": "2.1.0",
        "capabilities": { "streaming": true },
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            { "id": "search_papers", "name": "Search papers", "description": "By topic", "tags": ["research"] },
            { "id": "Summarize!", "name": "Summarize", "description": "", "tags": [] }
        ]
    })
}

#[tokio::test]
async fn a_remote_agent_is_imported_from_its_card_through_the_egress_guard() {
    for backend in backends() {
        let host =
            hive_testkit::agent_card::CardHost::start(card_v03("http://127.0.0.1:1/rpc")).await;
        let card_1_0 = json!({
            "name": "Echo",
            "description": "Says it back",
            "version": "1",
            "supportedInterfaces": [
                { "url": "https://echo.example.com/a2a/v1", "protocolBinding": "JSONRPC", "protocolVersion": "1.0" },
                { "url": "https://echo.example.com/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "0.3" }
            ],
            "capabilities": {},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [{ "id": "echo", "name": "Echo", "description": "", "tags": [] }]
        });
        let host_1_0 = hive_testkit::agent_card::CardHost::start(card_1_0).await;
        let allow = format!("{},{}", host.allowlist_entry(), host_1_0.allowlist_entry());
        let server =
            identity_server_with(backend, &[("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &allow)]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
        const IMPORT: &str = "/api/v1/agents/import";

        let preview = alice
            .send(
                &server,
                Method::POST,
                IMPORT,
                Some(json!({ "url": host.base_url })),
            )
            .await;
        assert_eq!(preview.status(), 200);
        let preview: Value = preview.json().await.unwrap();
        assert_eq!(
            preview["cardUrl"],
            format!("{}/.well-known/agent-card.json", host.base_url)
        );
        assert_eq!(preview["card"]["name"], "Research Bot (beta)");
        assert_eq!(preview["agent"]["name"], "research-bot-beta");
        assert_eq!(preview["agent"]["kind"], "remote");
        assert_eq!(preview["agent"]["runtime"]["url"], "http://127.0.0.1:1/rpc");
        assert_eq!(preview["agent"]["runtime"]["protocolVersion"], "0.3");
        assert_eq!(preview["agent"]["skills"][0]["id"], "search-papers");
        assert_eq!(preview["agent"]["skills"][1]["id"], "summarize");
        assert!(
            items(&server, &alice).await.is_empty(),
            "a preview registers nothing"
        );

        let created = alice
            .send(
                &server,
                Method::POST,
                IMPORT,
                Some(json!({ "url": host_1_0.base_url, "create": true, "visibility": "public" })),
            )
            .await;
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        assert_eq!(created["agent"]["name"], "echo");
        assert_eq!(created["agent"]["visibility"], "public");
        assert_eq!(created["agent"]["status"], "created");
        assert_eq!(
            created["agent"]["runtime"]["url"], "https://echo.example.com/a2a/v1",
            "the 1.0 interface is preferred"
        );
        assert_eq!(created["agent"]["runtime"]["protocolVersion"], "1.0");
        assert_eq!(items(&server, &alice).await.len(), 1);
        assert_eq!(host.fetches() + host_1_0.fetches(), 2);

        // A host the guard does not let through is never reached, and the refusal is audited.
        let unlisted = hive_testkit::agent_card::CardHost::start(json!({})).await;
        let refused = alice
            .send(
                &server,
                Method::POST,
                IMPORT,
                Some(json!({ "url": unlisted.base_url })),
            )
            .await;
        assert_eq!(refused.status(), 400);
        assert_eq!(unlisted.fetches(), 0);
        assert_eq!(records_of(&server, "egress.refused").await.len(), 1);
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "file:///etc/passwd",
        ] {
            let refused = alice
                .send(&server, Method::POST, IMPORT, Some(json!({ "url": url })))
                .await;
            assert_eq!(refused.status(), 400, "{url}");
        }
    }
}

#[tokio::test]
async fn what_is_not_an_agent_card_is_refused_clearly() {
    let host = hive_testkit::agent_card::CardHost::start(json!({ "hello": "world" })).await;
    let server = identity_server_with(
        hive_testkit::TestBackend::Sqlite,
        &[("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &host.allowlist_entry())],
    )
    .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let response = admin
        .send(
            &server,
            Method::POST,
            "/api/v1/agents/import",
            Some(json!({ "url": host.base_url, "create": true })),
        )
        .await;
    assert_eq!(response.status(), 400);
    let error = error_body(response).await;
    assert!(
        error.error.message.contains("JSON-RPC interface")
            || error.error.message.contains("agent card"),
        "{}",
        error.error.message
    );
    assert!(items(&server, &admin).await.is_empty());
}

/// An OpenAI-compatible endpoint that lists models to the holder of `key` only.
async fn models_endpoint(key: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/v1/models",
        get(move |headers: http::HeaderMap| async move {
            let expected = format!("Bearer {key}");
            if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&expected) {
                (
                    http::StatusCode::OK,
                    r#"{"object":"list","data":[{"id":"llama3"}]}"#,
                )
            } else {
                (http::StatusCode::UNAUTHORIZED, r#"{"error":"bad key"}"#)
            }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), task)
}

async fn create_agent(server: &TestServer, browser: &Browser, body: Value) -> String {
    let created = browser.send(server, Method::POST, AGENTS, Some(body)).await;
    assert_eq!(created.status(), 201);
    let agent: Value = created.json().await.unwrap();
    agent["id"].as_str().unwrap().to_owned()
}

async fn lifecycle(server: &TestServer, browser: &Browser, id: &str, action: &str) -> Value {
    let path = format!("{AGENTS}/{id}/{action}");
    let response = browser.send(server, Method::POST, &path, None).await;
    assert_eq!(response.status(), 200, "{action}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn agents_start_when_reachable_and_the_watchdog_follows_them() {
    for backend in backends() {
        let host = hive_testkit::agent_card::CardHost::start(json!({})).await;
        let port = host.port();
        let (llm_url, _llm) = models_endpoint("sk-llm-right-key").await;
        let llm_port = llm_url.rsplit(':').next().unwrap().to_owned();
        let allow = format!("{},127.0.0.1:{llm_port}", host.allowlist_entry());
        let server =
            identity_server_with(backend, &[("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &allow)]).await;
        let mut events = server
            .hive
            .state
            .bus
            .subscribe(hive_state::Channel::AgentStatus);
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
        let (_, bob) = add_user(&server, &admin, "bob@example.com", "operator").await;

        let tck = create_agent(
            &server,
            &alice,
            json!({ "name": "tck", "kind": "conformance" }),
        )
        .await;
        let started = lifecycle(&server, &alice, &tck, "start").await;
        assert_eq!(started["status"], "ready");
        let stranger = bob
            .send(
                &server,
                Method::POST,
                &format!("{AGENTS}/{tck}/start"),
                None,
            )
            .await;
        assert_eq!(stranger.status(), 404);
        let stopped = lifecycle(&server, &alice, &tck, "stop").await;
        assert_eq!(stopped["status"], "stopped");
        let mut seen = Vec::new();
        while let Ok(envelope) = events.try_recv() {
            if let hive_state::BusEvent::AgentStatus { status, .. } = envelope.payload {
                seen.push(status);
            }
        }
        assert_eq!(seen, ["starting", "ready", "stopped"]);
        assert_eq!(records_of(&server, "agent.start").await.len(), 1);
        assert_eq!(records_of(&server, "agent.stop").await.len(), 1);

        // A remote agent is ready while its endpoint answers, in error while it does not.
        let remote = create_agent(
            &server,
            &alice,
            json!({ "name": "remote", "kind": "remote",
                    "runtime": { "url": format!("{}/rpc", host.base_url) } }),
        )
        .await;
        assert_eq!(
            lifecycle(&server, &alice, &remote, "start").await["status"],
            "ready"
        );
        drop(host);
        let changed = server.hive.agent_lifecycle.check_health().await.unwrap();
        assert_eq!(changed, 1);
        let agent: Value = alice
            .send(&server, Method::GET, &format!("{AGENTS}/{remote}"), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(agent["status"], "error");
        assert!(
            agent["statusDetail"]
                .as_str()
                .unwrap()
                .starts_with("unreachable"),
            "{agent}"
        );
        let mut back = None;
        for _ in 0..100 {
            if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                drop(listener);
                back = Some(hive_testkit::agent_card::CardHost::start_on(port, json!({})).await);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let _back = back.expect("the port frees");
        assert_eq!(server.hive.agent_lifecycle.check_health().await.unwrap(), 1);
        let agent: Value = alice
            .send(&server, Method::GET, &format!("{AGENTS}/{remote}"), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(agent["status"], "ready");
        assert_eq!(records_of(&server, "agent.health").await.len(), 2);

        // An LLM agent is ready when its endpoint lists models with the agent's key.
        hive_testkit::capture::canary("sk-llm-right-key");
        hive_testkit::capture::canary("sk-llm-wrong-key");
        for (key, status) in [("sk-llm-wrong-key", "error"), ("sk-llm-right-key", "ready")] {
            let secret = alice
                .send(
                    &server,
                    Method::POST,
                    "/api/v1/secrets",
                    Some(json!({ "name": format!("key-{status}"), "value": key })),
                )
                .await;
            let secret: Value = secret.json().await.unwrap();
            let llm = create_agent(
                &server,
                &alice,
                json!({ "name": format!("llm-{status}"), "kind": "llm", "runtime": {
                    "baseUrl": format!("{llm_url}/v1"), "model": "llama3",
                    "apiKeySecretId": secret["id"] } }),
            )
            .await;
            let started = lifecycle(&server, &alice, &llm, "start").await;
            assert_eq!(started["status"], status, "{started}");
            if status == "error" {
                assert_eq!(
                    started["statusDetail"],
                    "the endpoint refused the key (HTTP 401)"
                );
            }
        }
    }
}
