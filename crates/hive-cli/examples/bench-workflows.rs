//! What a workflow step costs, and how fast runs start, on `hive serve` as operators run it:
//! SQLite in the data directory, then (when `HIVE_TEST_DATABASE_URL` is set) a scratch
//! PostgreSQL database, with Redis when `HIVE_TEST_REDIS_URL` is set. Nothing is asserted:
//! the figures go to docs/benchmarks.md.
//!
//! For each database, through the HTTP API with an API token:
//! - a 1-node workflow (its input node alone), run one run at a time: the fixed cost of a run;
//! - a chain of CHAIN transform nodes after the input node, run one run at a time: the time
//!   from the run's start to its end (the server's own `startedAt` and `finishedAt`) divided by
//!   its steps, and the cost of a step above the 1-node run;
//! - 16 such chains at once: journaled steps per second;
//! - STARTS runs of 1-node workflows started by 32 concurrent clients (`POST …/runs`, 32
//!   workflows): runs started per second, and until the last one ends, runs finished per second.
//!
//! Usage:
//!   cargo build --release -p hive-cli
//!   HIVE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   HIVE_TEST_REDIS_URL=redis://127.0.0.1:6379 \
//!     cargo run --release -p hive-cli --example bench-workflows -- target/release/hive [CHAIN] [RUNS] [STARTS]

// A measuring harness: anything unexpected ends the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::AsyncWriteExt;

use hive_testkit::TEST_PASSWORD as PASSWORD;
/// Clients starting runs at once, each on its own workflow.
const CLIENTS: usize = 32;
/// Chains run at once for the throughput line.
const CONCURRENT_CHAINS: usize = 16;

fn hive_command(hive: &Path, dir: &Path, vars: &[(String, String)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(hive);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HIVE_MFA_REQUIRED", "none")
        .env("LOG_LEVEL", "warn")
        .env(
            "ENCRYPTION_KEY",
            "5a0f3c9e81d27b64a5c8f01e3d9b2a7c6e4f8d1b0a3c5e7f9d2b4a6c8e0f1d3b",
        )
        .env("AUTH_SECRET", "Vq3mX8rT1wZ6pK9sB4nL7dF2hJ5gC0yA")
        // Nothing here is refused by a limit; every request still passes them.
        .env("HIVE_RATE_LIMITS", "api=1000000/1s")
        .env("HIVE_WORKFLOW_MAX_RUNS_PER_USER", "10000")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// An admin and an API token of theirs with every scope.
async fn admin_token(hive: &Path, dir: &Path, vars: &[(String, String)]) -> String {
    let mut child = hive_command(hive, dir, vars)
        .args([
            "admin",
            "create",
            "--email",
            "bench@example.com",
            "--name",
            "Bench",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    assert!(child.wait().await.unwrap().success());
    let made = hive_command(hive, dir, vars)
        .args([
            "token",
            "create",
            "--user",
            "bench@example.com",
            "--name",
            "bench",
        ])
        .output()
        .await
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    String::from_utf8(made.stdout).unwrap().trim().to_owned()
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "{path}: {status} {body}");
        body
    }

    async fn save(&self, document: Value) -> String {
        let saved = self
            .call(reqwest::Method::POST, "/api/v1/workflows", Some(document))
            .await;
        saved["workflow"]["id"].as_str().unwrap().to_owned()
    }

    async fn start(&self, workflow: &str) -> String {
        let run = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/workflows/{workflow}/runs"),
                Some(json!({ "input": {} })),
            )
            .await;
        run["id"].as_str().unwrap().to_owned()
    }

    /// Polls the run until it ends; its view.
    async fn ended(&self, run: &str) -> Value {
        loop {
            let detail = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/workflow-runs/{run}"),
                    None,
                )
                .await;
            match detail["run"]["status"].as_str() {
                Some("succeeded") => return detail["run"].clone(),
                Some("failed" | "cancelled") => panic!("the run did not succeed: {detail}"),
                _ => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }
}

fn at(run: &Value, field: &str) -> OffsetDateTime {
    OffsetDateTime::parse(run[field].as_str().unwrap(), &Rfc3339).unwrap()
}

/// From the run's start to its end, by the server's clock.
fn run_time(run: &Value) -> Duration {
    (at(run, "finishedAt") - at(run, "startedAt"))
        .try_into()
        .unwrap()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn single(name: &str) -> Value {
    json!({
        "name": name,
        "limits": {"maxConcurrentRuns": 100},
        "nodes": [{"id": "start", "type": "input"}],
        "edges": []
    })
}

/// The input node and `length` transform nodes after it, each reading a field of its
/// predecessor's output.
fn chain(name: &str, length: usize) -> Value {
    let mut nodes = vec![json!({"id": "start", "type": "input"})];
    let mut edges = Vec::new();
    for i in 1..=length {
        let previous = if i == 1 {
            "start".to_owned()
        } else {
            format!("t{}", i - 1)
        };
        let value = if i == 1 {
            json!({"i": i})
        } else {
            json!({"i": i, "before": format!("{{{{ nodes.{previous}.output.i }}}}")})
        };
        nodes.push(json!({"id": format!("t{i}"), "type": "transform", "value": value}));
        edges.push(json!({"from": previous, "to": format!("t{i}")}));
    }
    json!({
        "name": name,
        "limits": {"maxConcurrentRuns": 100, "maxSteps": 10000},
        "nodes": nodes,
        "edges": edges
    })
}

struct Figures {
    single_run: Duration,
    single_seen: Duration,
    chain_run: Duration,
    chain_steps: usize,
    concurrent_steps_per_second: f64,
    starts_per_second: f64,
    start_p50: Duration,
    start_p99: Duration,
    finished_per_second: f64,
}

async fn measure(api: &Api, length: usize, runs: usize, starts: usize) -> Figures {
    // One run at a time of the 1-node workflow: the server's run time, and what the client
    // sees from its POST to the poll that finds the run ended.
    let one = api.save(single("one-node")).await;
    let mut single_runs = Vec::new();
    let mut single_seen = Vec::new();
    for _ in 0..runs {
        let began = Instant::now();
        let run = api.start(&one).await;
        let ended = api.ended(&run).await;
        single_seen.push(began.elapsed());
        single_runs.push(run_time(&ended));
    }
    // One run at a time of the chain.
    let long = api.save(chain("chain", length)).await;
    let mut chain_runs = Vec::new();
    for _ in 0..runs.div_ceil(10).max(3) {
        let run = api.start(&long).await;
        chain_runs.push(run_time(&api.ended(&run).await));
    }
    // Chains at once: every step of every run over the time from the first start to the last
    // end.
    let mut ids = Vec::new();
    for _ in 0..CONCURRENT_CHAINS {
        ids.push(api.start(&long).await);
    }
    let mut ended = Vec::new();
    for id in &ids {
        ended.push(api.ended(id).await);
    }
    let first = ended.iter().map(|r| at(r, "startedAt")).min().unwrap();
    let last = ended.iter().map(|r| at(r, "finishedAt")).max().unwrap();
    let span: Duration = (last - first).try_into().unwrap();
    let concurrent_steps_per_second =
        (CONCURRENT_CHAINS * (length + 1)) as f64 / span.as_secs_f64();

    // Runs started by concurrent clients.
    let mut workflows = Vec::new();
    for i in 0..CLIENTS {
        workflows.push(api.save(single(&format!("starts-{i}"))).await);
    }
    let began = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for (i, workflow) in workflows.into_iter().enumerate() {
        let api = Api {
            http: api.http.clone(),
            base: api.base.clone(),
            token: api.token.clone(),
        };
        let count = starts / CLIENTS + usize::from(i < starts % CLIENTS);
        clients.spawn(async move {
            let mut started = Vec::with_capacity(count);
            for _ in 0..count {
                let sent = Instant::now();
                let id = api.start(&workflow).await;
                started.push((id, sent.elapsed()));
            }
            started
        });
    }
    let mut latencies = Vec::new();
    let mut ids = Vec::new();
    while let Some(done) = clients.join_next().await {
        for (id, took) in done.unwrap() {
            ids.push(id);
            latencies.push(took);
        }
    }
    let start_wall = began.elapsed();
    let mut ended = Vec::new();
    for id in &ids {
        ended.push(api.ended(id).await);
    }
    let first = ended.iter().map(|r| at(r, "createdAt")).min().unwrap();
    let last = ended.iter().map(|r| at(r, "finishedAt")).max().unwrap();
    let finish_span: Duration = (last - first).try_into().unwrap();
    latencies.sort();
    Figures {
        single_run: median(single_runs),
        single_seen: median(single_seen),
        chain_run: median(chain_runs),
        chain_steps: length + 1,
        concurrent_steps_per_second,
        starts_per_second: ids.len() as f64 / start_wall.as_secs_f64(),
        start_p50: latencies[latencies.len() / 2],
        start_p99: latencies[((latencies.len() - 1) as f64 * 0.99).round() as usize],
        finished_per_second: ids.len() as f64 / finish_span.as_secs_f64(),
    }
}

/// Starts `hive serve`, measures, stops it.
async fn bench(
    hive: &Path,
    vars: Vec<(String, String)>,
    length: usize,
    runs: usize,
    starts: usize,
) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let token = admin_token(hive, dir.path(), &vars).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve_vars = vars.clone();
    serve_vars.push(("HIVE_LISTEN".into(), format!("127.0.0.1:{port}")));
    let mut server = hive_command(hive, dir.path(), &serve_vars)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    while http.get(format!("{base}/api/health")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let api = Api { http, base, token };
    let figures = measure(&api, length, runs, starts).await;
    let pid = server.id().unwrap().to_string();
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await;
    let _ = server.wait().await;
    figures
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hive = std::fs::canonicalize(PathBuf::from(
        args.first()
            .expect("usage: bench-workflows HIVE [CHAIN] [RUNS] [STARTS]"),
    ))
    .unwrap();
    let length: usize = args.get(1).map_or(100, |n| n.parse().unwrap());
    let runs: usize = args.get(2).map_or(50, |n| n.parse().unwrap());
    let starts: usize = args.get(3).map_or(2000, |n| n.parse().unwrap());

    let mut results = vec![(
        "SQLite",
        bench(&hive, Vec::new(), length, runs, starts).await,
    )];
    let _database;
    if hive_testkit::postgres_admin_url().is_some() {
        let database = hive_testkit::scratch_postgres().await;
        let mut vars = vec![("DATABASE_URL".to_owned(), database.url().to_owned())];
        let mut name = "PostgreSQL";
        if let Some(redis) = hive_testkit::redis_url() {
            vars.push(("REDIS_URL".into(), redis));
            vars.push((
                "HIVE_REDIS_KEY_PREFIX".into(),
                format!("hive-bench-{}", std::process::id()),
            ));
            name = "PostgreSQL + Redis";
        }
        results.push((name, bench(&hive, vars, length, runs, starts).await));
        _database = database;
    }

    println!(
        "chain of {length} transform nodes ({} steps with the input); {runs} 1-node runs; {} chain runs one at a time; {CONCURRENT_CHAINS} chains at once; {starts} runs started by {CLIENTS} clients\n",
        length + 1,
        runs.div_ceil(10).max(3)
    );
    println!(
        "| database | 1-node run (server) | 1-node run (client: POST to seen ended) | chain run | per step in the chain | per step above the 1-node run | journaled steps/s, one chain | journaled steps/s, {CONCURRENT_CHAINS} chains at once | runs started/s | start p50 | start p99 | runs finished/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, f) in results {
        let per_step = millis(f.chain_run) / f.chain_steps as f64;
        let above = (millis(f.chain_run) - millis(f.single_run)) / length as f64;
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.1} ms | {per_step:.2} ms | {above:.2} ms | {:.0} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.0} |",
            millis(f.single_run),
            millis(f.single_seen),
            millis(f.chain_run),
            f.chain_steps as f64 / f.chain_run.as_secs_f64(),
            f.concurrent_steps_per_second,
            f.starts_per_second,
            millis(f.start_p50),
            millis(f.start_p99),
            f.finished_per_second,
        );
    }
}
