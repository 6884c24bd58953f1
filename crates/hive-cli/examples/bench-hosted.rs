//! How long a hosted agent takes to be ready, and what each call costs, in the process sandbox
//! against the same agent run bare (a plain process on a Unix socket). The agent is the
//! documented example (`examples/hosted-agent`); calls are `SendMessage` through Hive's A2A
//! client over the channel, one after another. Nothing is asserted: the figures go to
//! docs/benchmarks.md.
//!
//! Usage (as root, with bubblewrap and cgroups v1):
//!   cargo build --release -p hive-cli
//!   cargo run --release -p hive-cli --example bench-hosted -- target/release/hive [STARTS] [CALLS]

// A measuring harness: anything unexpected ends the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_a2a::client::Client;
use hive_a2a::jsonrpc::Version;
use hive_a2a::v1::{Message, Part, Role, SendMessageRequest};
use hive_core::agents::hosted::bundle::parse_manifest;
use hive_core::agents::hosted::channel::ChannelTransport;
use hive_core::agents::hosted::{HostedLaunch, HostedRuntime};
use hive_core::kernel::audit::{AuditChain, Auditor, Principal};
use hive_crypto::vault::{MasterKey, Purpose};
use hive_egress::{EgressClient, EgressConfig, ScriptedResolver};
use hive_sandbox::process::{ProcessBackend, ProcessBackendConfig};
use hive_store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn message() -> SendMessageRequest {
    SendMessageRequest {
        message: Message {
            message_id: "bench".into(),
            role: Role::User,
            parts: vec![Part::text("hello")],
            ..Message::default()
        },
        ..SendMessageRequest::default()
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and 99th percentile, in milliseconds.
fn summary(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| millis(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), at(0.99))
}

async fn calls(socket: &Path, count: usize) -> Vec<Duration> {
    let client = Client::new(
        ChannelTransport::new(socket),
        "http://agent/",
        Version::V1_0,
    );
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        client.send_message(message()).await.expect("a call failed");
        samples.push(started.elapsed());
    }
    samples
}

/// Starts the example as a plain process and waits until its card answers.
async fn bare(agent: &Path, socket: &Path) -> (tokio::process::Child, Duration) {
    let started = Instant::now();
    let child = tokio::process::Command::new("/usr/bin/python3")
        .arg(agent.join("agent.py"))
        .env_clear()
        .env("HIVE_AGENT_SOCKET", socket)
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let client = Client::new(
        ChannelTransport::new(socket),
        "http://agent/",
        Version::V1_0,
    );
    while client
        .fetch_agent_card("http://agent/.well-known/agent-card.json")
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (child, started.elapsed())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hive = PathBuf::from(
        args.first()
            .expect("usage: bench-hosted HIVE [STARTS] [CALLS]"),
    );
    let starts: usize = args.get(1).map_or(10, |n| n.parse().unwrap());
    let count: usize = args.get(2).map_or(500, |n| n.parse().unwrap());
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hosted-agent");
    let dir = tempfile::tempdir().unwrap();

    let mut config = ProcessBackendConfig::new(std::fs::canonicalize(&hive).unwrap());
    config.init_args = vec!["sandbox-init".into()];
    config.cgroup_parent = format!("hive-bench-{}", std::process::id());
    let backend = Arc::new(ProcessBackend::new(config.clone()).await.unwrap());
    let store: Arc<dyn Store> = Arc::new(
        hive_store_sqlite::SqliteStore::open(&dir.path().join("hive.db"), 2)
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let chain = AuditChain::new(MasterKey::from_bytes(&[7; 32]).derive(Purpose::AuditChain));
    let auditor = Auditor::new(store, Arc::new(chain), Arc::new(hive_proto::SystemClock));
    let egress = EgressClient::new(EgressConfig::default(), Arc::new(ScriptedResolver::new()));
    let runtime = HostedRuntime::new(backend, egress, auditor, Vec::new());
    let manifest =
        parse_manifest(&std::fs::read_to_string(agent.join("hive-agent.toml")).unwrap()).unwrap();

    let mut sandboxed_starts = Vec::new();
    let mut bare_starts = Vec::new();
    let mut sandboxed_calls = Vec::new();
    let mut bare_calls = Vec::new();
    for round in 0..starts {
        let run = dir.path().join(format!("run-{round}"));
        std::fs::create_dir_all(&run).unwrap();
        let started = Instant::now();
        let hosted = runtime
            .start(HostedLaunch {
                agent: uuid::Uuid::new_v4(),
                owner: Principal::System,
                id: &format!("bench-{round}"),
                bundle_dir: &agent,
                manifest: &manifest,
                secrets: Vec::new(),
                run_dir: &run,
                logs: Arc::new(
                    hive_core::agents::hosted::logs::LogRing::open(&run.join("logs"), 1 << 20)
                        .unwrap(),
                ),
                clock: Arc::new(hive_proto::SystemClock),
            })
            .await
            .unwrap();
        sandboxed_starts.push(started.elapsed());
        if round == 0 {
            sandboxed_calls = calls(&run.join("channel/agent.sock"), count).await;
        }
        hosted.stop(Duration::from_secs(5)).await.unwrap();

        let socket = dir.path().join(format!("bare-{round}.sock"));
        let (mut child, took) = bare(&agent, &socket).await;
        bare_starts.push(took);
        if round == 0 {
            bare_calls = calls(&socket, count).await;
        }
        let _ = child.kill().await;
    }
    for controller in ["memory", "cpu", "cpuacct", "pids", "freezer"] {
        let _ = std::fs::remove_dir(format!(
            "/sys/fs/cgroup/{controller}/{}",
            config.cgroup_parent
        ));
    }
    let row = |what: &str, samples: Vec<Duration>| {
        let (median, p99) = summary(samples);
        println!("| {what} | {median:.2} ms | {p99:.2} ms |");
    };
    println!("{starts} starts, {count} calls each way\n");
    println!("| measure | median | p99 |");
    println!("|---|---|---|");
    row("start to ready, sandboxed", sandboxed_starts);
    row("start to ready, bare", bare_starts);
    row("SendMessage, sandboxed", sandboxed_calls);
    row("SendMessage, bare", bare_calls);
}
