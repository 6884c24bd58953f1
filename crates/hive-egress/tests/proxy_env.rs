//! Proxy variables from the environment are ignored. Its own test binary, because the
//! environment is process-wide: the parent test runs this binary again as a child with
//! `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` pointing at a trap (setting them in-process
//! would need `unsafe`, which the workspace forbids). In the child, a default reqwest client
//! proves the variables are in effect by reaching the trap; the egress client must reach the
//! origin directly, and the trap must see no connection from it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use hive_egress::{Allowlist, CallLimits, EgressClient, EgressConfig, ScriptedResolver};
use std::sync::Arc;
use std::time::Duration;
use support::{Reply, serve};

const CHILD_MARKER: &str = "HIVE_EGRESS_PROXY_TEST_ORIGIN";
const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

#[tokio::test]
async fn environment_proxies_are_ignored() {
    let proxy = serve("127.0.0.1:0", |_| {
        Reply::Full(502, Vec::new(), b"via proxy".to_vec())
    })
    .await;
    let origin = serve("127.0.0.1:0", |_| Reply::ok("direct")).await;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "child_under_proxy_environment",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, origin.addr.to_string())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    for variable in PROXY_VARIABLES {
        child.env(variable, format!("http://{}", proxy.addr));
    }
    let output = child.output().await.unwrap();
    assert!(
        output.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "the child test did not run"
    );
    // The control request, and nothing else, went through the proxy.
    assert_eq!(proxy.connections(), 1);
    assert_eq!(origin.connections(), 1);
}

/// Runs only as the child of the test above; on its own it has nothing to do.
#[tokio::test]
async fn child_under_proxy_environment() {
    let Ok(origin) = std::env::var(CHILD_MARKER) else {
        return;
    };
    let url = format!("http://{origin}/");

    let control = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(
        control.text().await.unwrap(),
        "via proxy",
        "the proxy variables are not in effect, so this test would prove nothing"
    );

    let config = EgressConfig {
        allowlist: Allowlist::parse(&origin).unwrap(),
        ..EgressConfig::default()
    };
    let egress = EgressClient::new(config, Arc::new(ScriptedResolver::new()));
    let limits = CallLimits::new(Duration::from_secs(10), 1024);
    let response = egress.get(&url, &limits).await.unwrap();
    assert_eq!(response.text().await.unwrap(), "direct");
}
