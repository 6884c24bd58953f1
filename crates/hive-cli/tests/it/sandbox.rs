//! The `hive` binary is its own sandboxes' init program (`hive sandbox-init …`): operators
//! install one binary. A sandbox started with it runs its command under the same gate, confinement
//! and proxy bridge as with the sandbox crate's own init (whose escape corpus is in
//! `crates/hive-sandbox/tests/escape.rs`). Needs root, bubblewrap and cgroups: without them the
//! test fails under CI and is skipped elsewhere.

use hive_sandbox::process::{ProcessBackend, ProcessBackendConfig};
use hive_sandbox::{ExitReason, SandboxBackend, SandboxId, SandboxSpec};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const HIVE: &str = env!("CARGO_BIN_EXE_hive");

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

#[tokio::test]
async fn the_hive_binary_is_the_sandbox_init_program() {
    if let Some(what) = missing() {
        assert!(std::env::var_os("CI").is_none(), "the test needs {what}");
        eprintln!("skipped: the test needs {what}");
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
    let first_uid = 1_630_000_000 + std::process::id() % 1000 * 100;
    let mut config = ProcessBackendConfig::new(HIVE);
    config.init_args = vec!["sandbox-init".into()];
    config.cgroup_parent = parent.clone();
    config.host_uids = first_uid..first_uid + 100;
    config.require_landlock = true;
    let backend = ProcessBackend::new(config).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (agent, channel) = (dir.path().join("agent"), dir.path().join("channel"));
    std::fs::create_dir_all(&agent).unwrap();
    std::fs::create_dir_all(&channel).unwrap();
    let proxy = dir.path().join("proxy.sock");
    let _listening = tokio::net::UnixListener::bind(&proxy).unwrap();
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
    for controller in ["memory", "cpu", "cpuacct", "pids", "freezer"] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{controller}/{parent}"));
    }
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
