//! Workflow runs across a `kill -9` of the process driving them. A step journaled as done is
//! not run again; the step under way when the process died runs again, with the same
//! idempotency key, so the endpoint it calls applies its effect once; the run ends. On SQLite
//! (the same data directory, restarted) and on PostgreSQL with two replicas (the survivor takes
//! the run over once the dead replica's lease lapses).

use crate::process::{
    HiveProcess, SHARED_SECRETS, client, node_id, poll_until, run_to_exit, run_with_input,
};
use crate::replicas::SharedServices;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use hive_testkit::TEST_PASSWORD as PASSWORD;
/// Short, so that a run whose replica died resumes within seconds (the minimum).
const LEASE: (&str, &str) = ("HIVE_WORKFLOW_LEASE_SECONDS", "5");

/// What the endpoint saw, per `Idempotency-Key`.
#[derive(Debug, Default)]
struct Book {
    /// Requests received.
    seen: BTreeMap<String, u32>,
    /// Effects applied: one per key, whatever the number of requests.
    effects: BTreeMap<String, u32>,
}

#[derive(Clone)]
struct EndpointState {
    book: Arc<Mutex<Book>>,
    /// Requests to `/effect/hold` received so far.
    held: Arc<watch::Sender<u32>>,
    /// Whether `/effect/hold` answers (until then it holds each request).
    released: watch::Receiver<bool>,
}

/// An HTTP endpoint on 127.0.0.1 with an effect per idempotency key. `/effect/hold` applies
/// its effect at once, then holds the request until the test releases it: a side effect done
/// whose answer never reached the caller.
struct Endpoint {
    port: u16,
    book: Arc<Mutex<Book>>,
    held: watch::Receiver<u32>,
    release: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn effect(
    State(state): State<EndpointState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "no Idempotency-Key" })),
        );
    };
    let applied = {
        let mut book = state.book.lock().unwrap();
        *book.seen.entry(key.clone()).or_default() += 1;
        let effects = book.effects.entry(key).or_default();
        let first = *effects == 0;
        if first {
            *effects += 1;
        }
        first
    };
    if name == "hold" {
        state.held.send_modify(|n| *n += 1);
        let mut released = state.released.clone();
        let _ = released.wait_for(|released| *released).await;
    }
    (
        StatusCode::OK,
        Json(json!({ "step": name, "applied": applied })),
    )
}

impl Endpoint {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let book = Arc::new(Mutex::new(Book::default()));
        let (held_tx, held) = watch::channel(0);
        let (release, released) = watch::channel(false);
        let state = EndpointState {
            book: Arc::clone(&book),
            held: Arc::new(held_tx),
            released,
        };
        let app = axum::Router::new()
            .route("/effect/{name}", post(effect))
            .with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            port,
            book,
            held,
            release,
            task,
        }
    }

    fn allowlist(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn wait_held(&mut self, count: u32) {
        tokio::time::timeout(Duration::from_secs(60), self.held.wait_for(|n| *n >= count))
            .await
            .expect("the held step reached the endpoint")
            .unwrap();
    }

    fn release(&self) {
        self.release.send_replace(true);
    }

    /// The step's requests and effects.
    fn counts(&self, run: &str, step: &str) -> (u32, u32) {
        let key = format!("wf-{run}-{step}");
        let book = self.book.lock().unwrap();
        (
            book.seen.get(&key).copied().unwrap_or(0),
            book.effects.get(&key).copied().unwrap_or(0),
        )
    }

    fn keys(&self) -> Vec<String> {
        self.book.lock().unwrap().seen.keys().cloned().collect()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Two http steps in a row: `one` answers at once, `two` is held by the endpoint.
fn document(port: u16) -> Value {
    let url = |name: &str| format!("http://127.0.0.1:{port}/effect/{name}");
    json!({
        "name": "durable-http",
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "one", "type": "http", "method": "POST", "url": url("one"), "body": {"n": 1}},
            {"id": "two", "type": "http", "method": "POST", "url": url("hold"), "body": {"n": 2}},
            {"id": "done", "type": "output", "value": {
                "one": "{{ nodes.one.output.body }}",
                "two": "{{ nodes.two.output.body }}"
            }}
        ],
        "edges": [
            {"from": "start", "to": "one"},
            {"from": "one", "to": "two"},
            {"from": "two", "to": "done"}
        ]
    })
}

/// An admin made with the command line, and an API token of theirs with every scope.
pub(crate) async fn admin_token(dir: &std::path::Path, vars: &[(&str, &str)]) -> String {
    let created = run_with_input(
        dir,
        &[
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--name",
            "Root",
        ],
        vars,
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(created.0.success(), "{created:?}");
    let made = run_to_exit(
        dir,
        &[
            "token",
            "create",
            "--user",
            "root@example.com",
            "--name",
            "workflows",
        ],
        vars,
    )
    .await;
    assert!(made.0.success(), "{made:?}");
    made.1.trim().to_owned()
}

async fn api(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Saves the workflow and starts a run of it; the run's id.
async fn save_and_start(base: &str, token: &str, document: Value) -> String {
    let (status, saved) = api(
        base,
        token,
        reqwest::Method::POST,
        "/api/v1/workflows",
        Some(document),
    )
    .await;
    assert_eq!(status, 201, "{saved}");
    let workflow = saved["workflow"]["id"].as_str().unwrap();
    let (status, run) = api(
        base,
        token,
        reqwest::Method::POST,
        &format!("/api/v1/workflows/{workflow}/runs"),
        Some(json!({ "input": {} })),
    )
    .await;
    assert_eq!(status, 202, "{run}");
    run["id"].as_str().unwrap().to_owned()
}

async fn run_detail(base: &str, token: &str, run: &str) -> Value {
    let (status, detail) = api(
        base,
        token,
        reqwest::Method::GET,
        &format!("/api/v1/workflow-runs/{run}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    detail
}

async fn wait_ended(base: &str, token: &str, run: &str) -> Value {
    poll_until("the run's end", Duration::from_secs(90), async || {
        let detail = run_detail(base, token, run).await;
        matches!(
            detail["run"]["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
        .then_some(detail)
    })
    .await
}

fn step<'a>(detail: &'a Value, key: &str) -> &'a Value {
    detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["key"] == key)
        .unwrap_or_else(|| panic!("no step {key} in {detail}"))
}

/// The journal when the endpoint holds step `two`: `one` done, `two` started.
fn assert_interrupted_at_two(detail: &Value) {
    assert_eq!(detail["run"]["status"], "running", "{detail}");
    assert_eq!(step(detail, "one")["status"], "succeeded", "{detail}");
    assert_eq!(step(detail, "one")["attempt"], 1);
    assert_eq!(step(detail, "two")["status"], "running", "{detail}");
    assert_eq!(step(detail, "two")["attempt"], 1);
}

/// After the run resumed elsewhere: `one` ran once, `two` twice with one key and one effect.
fn assert_resumed_once(endpoint: &Endpoint, run: &str, detail: &Value) {
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    assert_eq!(
        endpoint.counts(run, "one"),
        (1, 1),
        "a journaled step is not run again"
    );
    assert_eq!(
        endpoint.counts(run, "two"),
        (2, 1),
        "the interrupted step ran again with the same key; its effect was applied once"
    );
    assert_eq!(
        endpoint.keys(),
        [format!("wf-{run}-one"), format!("wf-{run}-two")],
        "no other key reached the endpoint"
    );
    let one = step(detail, "one");
    assert_eq!(
        (&one["status"], &one["attempt"]),
        (&json!("succeeded"), &json!(1))
    );
    let two = step(detail, "two");
    assert_eq!(
        (&two["status"], &two["attempt"]),
        (&json!("succeeded"), &json!(2))
    );
    // The second request found the effect already applied.
    assert_eq!(
        detail["run"]["output"],
        json!({
            "one": {"step": "one", "applied": true},
            "two": {"step": "hold", "applied": false}
        })
    );
}

#[tokio::test]
async fn a_run_resumes_after_kill_9_without_repeating_its_journaled_steps() {
    let mut endpoint = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let token = admin_token(path, &[]).await;
    let allowlist = endpoint.allowlist();
    let vars = [
        ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", allowlist.as_str()),
        LEASE,
    ];

    let mut hive = HiveProcess::start(path, &vars).await;
    let run = save_and_start(&hive.base_url, &token, document(endpoint.port)).await;
    endpoint.wait_held(1).await;
    assert_interrupted_at_two(&run_detail(&hive.base_url, &token, &run).await);
    hive.kill().await;
    drop(hive);
    // The first request of `two` gets its answer only now, to a caller that is gone.
    endpoint.release();

    let hive = HiveProcess::start(path, &vars).await;
    let detail = wait_ended(&hive.base_url, &token, &run).await;
    assert_resumed_once(&endpoint, &run, &detail);
    assert!(hive.stop().await.0.success());
}

#[tokio::test]
async fn a_run_moves_to_the_other_replica_when_its_holder_is_killed() {
    let Some(services) = SharedServices::new().await else {
        return;
    };
    let mut endpoint = Endpoint::start().await;
    let allowlist = endpoint.allowlist();
    let settings = [
        ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", allowlist.as_str()),
        LEASE,
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info"),
    ];
    let setup = tempfile::tempdir().unwrap();
    let mut cli_vars = vec![("DATABASE_URL", services.database.url())];
    cli_vars.extend_from_slice(&SHARED_SECRETS);
    let token = admin_token(setup.path(), &cli_vars).await;
    let (a, _dir_a) = services.start_replica("127.0.0.2", &settings).await;
    let (b, _dir_b) = services.start_replica("127.0.0.3", &settings).await;

    let run = save_and_start(&a.base_url, &token, document(endpoint.port)).await;
    endpoint.wait_held(1).await;
    assert_interrupted_at_two(&run_detail(&b.base_url, &token, &run).await);

    // The replica whose request the endpoint holds is the run's lease holder.
    let pool = sqlx::PgPool::connect(services.database.url())
        .await
        .unwrap();
    let holder: String = sqlx::query_scalar("SELECT lease_node FROM workflow_runs WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&run).unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    let (mut holder, survivor) = if holder == node_id(&a.stdout()) {
        (a, b)
    } else {
        assert_eq!(holder, node_id(&b.stdout()));
        (b, a)
    };
    holder.kill().await;
    drop(holder);
    endpoint.release();

    let detail = wait_ended(&survivor.base_url, &token, &run).await;
    assert_resumed_once(&endpoint, &run, &detail);
    // The survivor drove the run to its end; it logged nothing about a lost lease.
    let log = survivor.stdout();
    assert!(!log.contains("the run stopped on an error"), "{log}");
    assert!(survivor.stop().await.0.success());
    pool.close().await;
}
