//! The `hive` binary is its own sandboxes' init program (`hive sandbox-init …`): operators
//! install one binary. A sandbox started with it runs its command under the same gate, confinement
//! and proxy bridge as with the sandbox crate's own init (whose escape corpus is in
//! `crates/hive-sandbox/tests/escape.rs`). Needs root, bubblewrap and cgroups: without them the
//! test fails under CI and is skipped elsewhere.

use hive_a2a::client::Client;
use hive_a2a::jsonrpc::Version;
use hive_a2a::v1::{Message, Part, PartContent, Role, SendMessageRequest, SendMessageResponse};
use hive_core::agents::hosted::bundle::parse_manifest;
use hive_core::agents::hosted::{HostedError, HostedLaunch, HostedRuntime};
use hive_core::kernel::audit::{AuditChain, Auditor, Principal};
use hive_crypto::vault::{MasterKey, Purpose as KeyPurpose};
use hive_egress::{Allowlist, EgressClient, EgressConfig, ScriptedResolver};
use hive_proto::SystemClock;
use hive_sandbox::process::{ProcessBackend, ProcessBackendConfig};
use hive_sandbox::{ExitReason, SandboxBackend, SandboxId, SandboxSpec};
use hive_store::{AuditFilter, PageRequest, Store};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const HIVE: &str = env!("CARGO_BIN_EXE_hive");

/// Whether the sandbox can run here; if not, the test skips (under CI, fails).
fn ready() -> bool {
    let missing = missing();
    if let Some(what) = missing {
        hive_testkit::missing(&format!("{what} (for the sandbox)"));
    }
    missing.is_none()
}

fn missing() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        return Some("root");
    }
    if !Path::new("/usr/bin/bwrap").exists() {
        return Some("bubblewrap");
    }
    if !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        return Some("cgroup v1 controllers");
    }
    None
}

/// A backend with the `hive` binary as init, its own cgroup parent and uid range.
async fn backend(parent: &str, range: u32) -> ProcessBackend {
    let first_uid = 1_630_000_000 + std::process::id() % 1000 * 1000 + range * 100;
    let mut config = ProcessBackendConfig::new(HIVE);
    config.init_args = vec!["sandbox-init".into()];
    config.cgroup_parent = parent.to_owned();
    config.host_uids = first_uid..first_uid + 100;
    config.require_landlock = true;
    ProcessBackend::new(config).await.unwrap()
}

fn remove_cgroups(parent: &str) {
    for controller in ["memory", "cpu", "cpuacct", "pids", "freezer"] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{controller}/{parent}"));
    }
}

/// A web server on the host's loopback that answers `200` and keeps each request's
/// `authorization` header (or `-`).
pub(crate) async fn web_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(stream);
                let mut authorization = "-".to_owned();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                    {
                        authorization = value.trim().to_owned();
                    }
                }
                kept.lock().unwrap().push(authorization);
                let _ = reader
                    .into_inner()
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (address, seen)
}

fn reply_text(response: SendMessageResponse) -> String {
    let SendMessageResponse::Task(task) = response else {
        panic!("a message instead of a task");
    };
    task.artifacts[0]
        .parts
        .iter()
        .filter_map(|part| match &part.content {
            PartContent::Text(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn message(text: &str) -> SendMessageRequest {
    SendMessageRequest {
        message: Message {
            message_id: format!("m-{text}"),
            role: Role::User,
            parts: vec![Part::text(text)],
            ..Message::default()
        },
        ..SendMessageRequest::default()
    }
}

/// The documented example agent (`examples/hosted-agent`), hosted: started in a sandbox from its
/// manifest, called over its channel, its secret in its environment, its only way out the
/// agents' proxy, which lets the allowed host through and refuses the other.
#[tokio::test]
async fn a_hosted_python_agent_answers_and_goes_out_only_through_the_proxy() {
    if !ready() {
        return;
    }
    let parent = format!("hive-test-cli-hosted-{}", std::process::id());
    let backend = backend(&parent, 1).await;
    let (allowed, allowed_seen) = web_server().await;
    let (other, other_seen) = web_server().await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hosted-agent");
    let manifest =
        parse_manifest(&std::fs::read_to_string(examples.join("hive-agent.toml")).unwrap())
            .unwrap();
    // The test host is on loopback: only the admins' allowlist may open it to an agent.
    let egress = EgressClient::new(
        EgressConfig {
            allowlist: Allowlist::parse(&allowed.to_string()).unwrap(),
            ..EgressConfig::default()
        },
        Arc::new(ScriptedResolver::new()),
    );
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        hive_store_sqlite::SqliteStore::open(&dir.path().join("hive.db"), 2)
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let chain = AuditChain::new(MasterKey::from_bytes(&[7; 32]).derive(KeyPurpose::AuditChain));
    let auditor = Auditor::new(store.clone(), Arc::new(chain), Arc::new(SystemClock));
    let runtime = HostedRuntime::new(Arc::new(backend), egress, auditor, Vec::new());
    let (agent_id, owner) = (Uuid::new_v4(), Uuid::new_v4());
    let run = tempfile::tempdir().unwrap();
    const TOKEN: &str = "upstream-token-for-the-test";
    let agent = runtime
        .start(HostedLaunch {
            agent: agent_id,
            owner: Principal::User(owner),
            id: "hosted-echo",
            bundle_dir: &examples,
            manifest: &manifest,
            secrets: vec![("UPSTREAM_TOKEN".into(), TOKEN.into())],
            run_dir: run.path(),
            logs: Arc::new(
                hive_core::agents::hosted::logs::LogRing::open(&run.path().join("logs"), 1 << 20)
                    .unwrap(),
            ),
            clock: Arc::new(hive_proto::SystemClock),
        })
        .await
        .unwrap();
    let client = Client::new(agent.transport(), agent.url(), Version::V1_0);
    let card = client
        .fetch_agent_card("http://agent/.well-known/agent-card.json")
        .await
        .unwrap();
    assert_eq!(card.name, "echo");
    assert_eq!(
        reply_text(client.send_message(message("hi")).await.unwrap()),
        "echo: hi"
    );
    let fetched = client
        .send_message(message(&format!("fetch http://{allowed}/")))
        .await
        .unwrap();
    assert_eq!(reply_text(fetched), "fetched: HTTP 200");
    assert_eq!(*allowed_seen.lock().unwrap(), [format!("Bearer {TOKEN}")]);
    let refused = client
        .send_message(message(&format!("fetch http://{other}/")))
        .await
        .unwrap();
    assert_eq!(reply_text(refused), "fetched: HTTP 403");
    assert!(
        other_seen.lock().unwrap().is_empty(),
        "a refused host was reached"
    );
    let counts = agent.proxy_counts();
    assert_eq!((counts.requests, counts.refusals), (2, 1), "{counts:?}");
    // The refusal is in the audit log, for the agent's owner, naming the agent.
    let refusal = {
        let filter = AuditFilter::action("egress.refused");
        let started = tokio::time::Instant::now();
        loop {
            let page = PageRequest::first(10).unwrap();
            let found = store.audit().list(&filter, &page).await.unwrap().items;
            if let Some(record) = found.into_iter().next() {
                break record;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no audit record"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(refusal.actor, format!("user:{owner}"));
    assert_eq!(
        refusal.target.as_deref(),
        Some(format!("http://{other}").as_str())
    );
    assert!(
        refusal.detail.contains(&format!("agent:{agent_id}")),
        "{}",
        refusal.detail
    );
    let exit = agent.stop(Duration::from_secs(5)).await.unwrap();
    remove_cgroups(&parent);
    assert!(
        matches!(exit.reason, ExitReason::Stopped { .. }),
        "{exit:?}"
    );
}

/// An agent that ends before its card answers is not started: the error says so and carries
/// what it printed, and nothing of it is left running.
#[tokio::test]
async fn an_agent_that_never_answers_fails_to_start_with_its_output() {
    if !ready() {
        return;
    }
    let parent = format!("hive-test-cli-broken-{}", std::process::id());
    let backend = backend(&parent, 2).await;
    let manifest = parse_manifest(
        r#"[agent]
name = "broken"
command = ["python3", "-c", "print('cannot find my model', flush=True); raise SystemExit(3)"]
"#,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (bundle, run) = (dir.path().join("bundle"), dir.path().join("run"));
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    let store: Arc<dyn Store> = Arc::new(
        hive_store_sqlite::SqliteStore::open(&dir.path().join("hive.db"), 2)
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let chain = AuditChain::new(MasterKey::from_bytes(&[7; 32]).derive(KeyPurpose::AuditChain));
    let auditor = Auditor::new(store, Arc::new(chain), Arc::new(SystemClock));
    let egress = EgressClient::new(EgressConfig::default(), Arc::new(ScriptedResolver::new()));
    let runtime = HostedRuntime::new(Arc::new(backend), egress, auditor, Vec::new());
    let started = runtime
        .start(HostedLaunch {
            agent: Uuid::new_v4(),
            owner: Principal::System,
            id: "broken",
            bundle_dir: &bundle,
            manifest: &manifest,
            secrets: Vec::new(),
            run_dir: &run,
            logs: Arc::new(
                hive_core::agents::hosted::logs::LogRing::open(&run.join("logs"), 1 << 20).unwrap(),
            ),
            clock: Arc::new(hive_proto::SystemClock),
        })
        .await;
    remove_cgroups(&parent);
    match started {
        Err(HostedError::NotReady { why, output }) => {
            assert!(why.contains("ended first"), "{why}");
            assert!(output.contains("cannot find my model"), "{output}");
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a program that exits was started"),
    }
}

#[tokio::test]
async fn the_hive_binary_is_the_sandbox_init_program() {
    if !ready() {
        return;
    }
    let probed = std::process::Command::new(HIVE)
        .args(["sandbox-init", "probe-landlock"])
        .output()
        .unwrap();
    let abi: u8 = String::from_utf8_lossy(&probed.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(abi >= 1, "Landlock ABI {abi}");

    let parent = format!("hive-test-cli-{}", std::process::id());
    let backend = backend(&parent, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let (agent, channel) = (dir.path().join("agent"), dir.path().join("channel"));
    std::fs::create_dir_all(&agent).unwrap();
    std::fs::create_dir_all(&channel).unwrap();
    let proxy = dir.path().join("proxy.sock");
    let _listening = tokio::net::UnixListener::bind(&proxy).unwrap();
    // The sandbox's own uid connects to it (as Hive's runtime sets it).
    std::fs::set_permissions(&proxy, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let mut spec = SandboxSpec::new(
        SandboxId::new("cli-init").unwrap(),
        agent,
        vec!["/usr/bin/env".into()],
        channel,
    );
    spec.env.set("AGENT_NAME", "echo").unwrap();
    spec.proxy_socket = Some(proxy);
    let sandbox = backend.start(spec).await.unwrap();
    let mut stdout = sandbox.take_stdout().unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(60), stdout.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(60), sandbox.wait())
        .await
        .unwrap()
        .unwrap();
    remove_cgroups(&parent);
    assert_eq!(exit.reason, ExitReason::Exited(0), "{out}");
    let mut variables: Vec<&str> = out.lines().collect();
    variables.sort();
    let proxy_url = variables
        .iter()
        .find_map(|line| line.strip_prefix("HTTP_PROXY="))
        .unwrap_or_else(|| panic!("no proxy in {out}"));
    assert!(proxy_url.starts_with("http://127.0.0.1:"), "{proxy_url}");
    assert!(variables.contains(&"AGENT_NAME=echo"), "{out}");
    assert!(
        variables.contains(&"HIVE_PROXY_SOCKET=/hive/proxy.sock"),
        "{out}"
    );
}
