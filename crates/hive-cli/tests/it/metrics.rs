//! The metrics table of `docs/operations.md` against a running server's `/metrics`: the server
//! is driven through what each metric counts, then scraped; every documented name must be on the
//! page, and no `hive_` name may be missing from the table.

use crate::accounts::{PASSWORD, create_admin, create_token};
use crate::process::{HiveProcess, client, poll_until};
use crate::traces::{Agent, api, remote_agent, workflow_run};
use hive_testkit::OwnRedis;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The names in the metrics table of `docs/operations.md`.
fn documented() -> BTreeSet<String> {
    let doc = include_str!("../../../../docs/operations.md");
    let section = doc
        .split("\n## Metrics\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Metrics section");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// Each metric family on the page (its `# TYPE` line) and the sum of its samples (a summary's
/// `_count`).
fn families(page: &str) -> BTreeMap<String, f64> {
    let mut kinds = BTreeMap::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                kinds.insert(name.to_owned(), kind.to_owned());
            }
        }
    }
    kinds
        .iter()
        .map(|(name, kind)| {
            let sampled = if kind == "summary" {
                format!("{name}_count")
            } else {
                name.clone()
            };
            let total = page
                .lines()
                .filter(|line| !line.starts_with('#'))
                .filter(|line| {
                    line.strip_prefix(sampled.as_str())
                        .is_some_and(|rest| rest.starts_with(['{', ' ']))
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            (name.clone(), total)
        })
        .collect()
}

/// One A2A 1.0 call with the token; the JSON-RPC result (an error fails the test).
async fn a2a(base: &str, token: &str, agent: &str, body: Value) -> Value {
    let response = client()
        .post(format!("{base}/api/a2a/agents/{agent}/jsonrpc"))
        .bearer_auth(token)
        .header("A2A-Version", "1.0")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert!(answer.get("result").is_some(), "{answer}");
    answer
}

async fn post(url: String, body: Value) -> (u16, Value) {
    let response = client().post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A receiver of push notifications on loopback (answers 204 to each).
async fn push_receiver() -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

const FEDERATION_SECRET: &str = "3c1f0b9a8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c";

#[tokio::test]
async fn every_documented_metric_is_emitted_and_every_emitted_one_documented() {
    if !OwnRedis::available() {
        return;
    }
    let mut redis = OwnRedis::start();
    let redis_url = redis.url();
    let agent = Agent::start().await;
    let receiver = push_receiver().await;
    let allowlist = format!("{},{receiver}", agent.address);
    let dir = tempfile::tempdir().unwrap();
    create_admin(dir.path(), "root@example.com").await;
    let token = create_token(dir.path(), "root@example.com", "metrics", None).await;
    let credential = "sk-upstream-metrics-credential-0123456789";
    hive_testkit::capture::canary(credential);
    let hive = HiveProcess::start(
        dir.path(),
        &[
            ("REDIS_URL", redis_url.as_str()),
            // Task updates go through the database's group commit.
            ("A2A_TASK_STORE", "db"),
            ("HIVE_METRICS_LISTEN", "127.0.0.1:0"),
            ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", allowlist.as_str()),
            ("A2A_PUBLIC_JSONRPC_ENABLED", "true"),
            ("A2A_PUBLIC_JSONRPC_ALLOWED_METHODS", "GetTask"),
            ("MESH_FEDERATION_ENABLED", "true"),
            ("MESH_FEDERATION_SHARED_SECRET", FEDERATION_SECRET),
        ],
    )
    .await;
    let base = hive.base_url.clone();
    let metrics_url = hive
        .stderr()
        .split("Metrics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .expect("the metrics address is printed");
    let scrape = async || {
        client()
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    // A remote agent with a credential, called: a gateway call, a secret use, requests out.
    let agent_id = remote_agent(&base, &token, &agent, credential).await;
    let rpc = |message_id: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
            "message": {"messageId": message_id, "role": "ROLE_USER", "parts": [{"text": "hi"}]}}})
    };
    a2a(&base, &token, &agent_id, rpc("metrics-1")).await;
    // A conformance agent's task with a push receiver: deliveries, task updates.
    let (status, created) = api(
        &base,
        &token,
        "/api/v1/agents",
        json!({"name": "tck", "kind": "conformance"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let tck = created["id"].as_str().unwrap();
    let (status, _) = api(
        &base,
        &token,
        &format!("/api/v1/agents/{tck}/start"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let mut pushed = rpc("tck-input-required-p");
    pushed["params"]["configuration"] = json!({"taskPushNotificationConfig": {
        "url": format!("http://{receiver}/hook"), "token": "push-token-metrics-0123456789"}});
    a2a(&base, &token, tck, pushed).await;
    // Deliveries run after the answer.
    poll_until("a push delivery", Duration::from_secs(30), async || {
        scrape()
            .await
            .contains("hive_a2a_push_deliveries_total")
            .then_some(())
    })
    .await;
    // An agent the egress rules do not let Hive reach: a refusal.
    let (status, created) = api(
        &base,
        &token,
        "/api/v1/agents",
        json!({"name": "unreachable", "kind": "remote",
            "runtime": {"url": "http://127.0.0.1:1/a2a", "protocolVersion": "1.0"}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let unreachable = created["id"].as_str().unwrap();
    api(
        &base,
        &token,
        &format!("/api/v1/agents/{unreachable}/start"),
        json!({}),
    )
    .await;
    // A public-tier call of a method the tier does not allow, and a peer's forged token.
    let (status, _) = post(format!("{base}/api/a2a/jsonrpc/public"), rpc("public-1")).await;
    assert!(status >= 400);
    let forged = client()
        .post(format!("{base}/api/a2a/jsonrpc"))
        .header("x-hive-federation-jwt", "not.a.token")
        .json(&rpc("peer-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    workflow_run(&base, &token).await;

    // Redis gone: decisions and login claims taken on this replica alone.
    redis.kill();
    for _ in 0..3 {
        let health = client()
            .get(format!("{base}/api/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
    }
    let (status, _) = post(
        format!("{base}/api/v1/auth/login"),
        json!({"email": "root@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);

    let documented = documented();
    assert!(documented.len() >= 20, "{documented:?}");
    let page = scrape().await;
    let emitted = families(&page);
    let names: BTreeSet<String> = emitted
        .keys()
        .filter(|name| name.starts_with("hive_"))
        .cloned()
        .collect();
    let missing: Vec<_> = documented.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "documented, not emitted: {missing:?}\n{page}"
    );
    let undocumented: Vec<_> = names.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "emitted, not in docs/operations.md: {undocumented:?}"
    );
    // What the steps above did was counted (the counters of failures not driven here start at
    // zero and are only present).
    let driven_elsewhere = [
        "hive_bus_events_dropped_total",
        "hive_group_commit_failed_batches_total",
        "hive_group_commit_queue_full_total",
        "hive_http_connections_refused_total",
    ];
    for name in documented
        .iter()
        .filter(|n| !driven_elsewhere.contains(&n.as_str()))
    {
        assert!(emitted[name] > 0.0, "{name} counted nothing:\n{page}");
    }
    drop(hive);
}
