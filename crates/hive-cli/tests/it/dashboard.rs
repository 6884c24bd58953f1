//! The dashboard in a real browser: `hive serve` as an operator starts it, and Debian's
//! Chromium driven by Playwright through the pages from the printed setup link
//! (`crates/hive-web/tests/browser/dashboard.mjs` says what it checks: among the rest, a
//! workflow saved from its form, drawn, and run through an approval followed live). `.ci/run` installs
//! Chromium and the script's packages; without them this test fails under CI and is skipped
//! elsewhere, saying why. The hosted agent's bundles are the example's, packed here; it is
//! started only where the sandbox runs (root and bubblewrap), else its part is left out with
//! a note.

use crate::hosted::{example_bundle, sandbox_here};
use crate::process::HiveProcess;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BROWSER: &str = "/usr/bin/chromium";

fn browser_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hive-web/tests/browser")
}

/// What is missing to run the browser test, if anything.
fn missing() -> Option<String> {
    if !Path::new(BROWSER).exists() {
        return Some(format!("{BROWSER} (apt-get install chromium)"));
    }
    if !browser_tests()
        .join("node_modules/playwright-core")
        .is_dir()
    {
        return Some(
            "the browser test's packages (npm ci in crates/hive-web/tests/browser)".into(),
        );
    }
    None
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn the_dashboard_works_in_a_real_browser() {
    if let Some(what) = missing() {
        hive_testkit::missing(&what);
        return;
    }
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // Passkeys need a domain name (WebAuthn has no relying party on an IP address): the URL
    // docs/identity.md tells a local install to use.
    let auth_url = format!("http://localhost:{port}");
    // The script's stand-in model endpoint, which the egress guard must let Hive reach.
    let llm_port = free_port();
    let llm_host = format!("127.0.0.1:{llm_port}");
    let dir = tempfile::tempdir().unwrap();
    // Admins must enroll a second factor: the wizard walks through it.
    let hive = HiveProcess::start(
        dir.path(),
        &[
            ("HIVE_LISTEN", &listen),
            ("AUTH_URL", &auth_url),
            // One person signs in a dozen ways within the minute: more than the default
            // allows one address.
            ("HIVE_RATE_LIMITS", "login=30/15m"),
            ("HIVE_MFA_REQUIRED", "admins"),
            ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &llm_host),
        ],
    )
    .await;
    let stderr = hive.stderr();
    let link = stderr
        .split_whitespace()
        .find(|word| word.contains("/setup#token="))
        .unwrap_or_else(|| panic!("no setup link printed:\n{stderr}"))
        .to_owned();
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard");
    // Two versions of the example hosted agent, uploaded through the page's file input.
    let bundles = tempfile::tempdir().unwrap();
    let first = bundles.path().join("echo-1.tar.gz");
    let second = bundles.path().join("echo-2.tar.gz");
    std::fs::write(&first, example_bundle(|text| text)).unwrap();
    let v2 = |text: String| text.replace("f\"echo: {text}\"", "f\"v2: {text}\"");
    std::fs::write(&second, example_bundle(v2)).unwrap();
    let sandbox = sandbox_here();
    if !sandbox {
        eprintln!("note: the browser test uploads a hosted agent's versions but does not start it");
    }
    let mut node = tokio::process::Command::new("node");
    node.arg("dashboard.mjs")
        .arg(&link)
        .arg(&screenshots)
        .current_dir(browser_tests())
        .env("HIVE_BROWSER", BROWSER)
        .env("HIVE_TEST_LLM_PORT", llm_port.to_string())
        .env("HIVE_TEST_BUNDLE", &first)
        .env("HIVE_TEST_BUNDLE_V2", &second)
        .kill_on_drop(true);
    if sandbox {
        node.env("HIVE_TEST_SANDBOX", "1");
    }
    let output = tokio::time::timeout(Duration::from_secs(480), node.output())
        .await
        .expect("the browser test ended within eight minutes")
        .expect("node runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the browser test failed:\n{said}");
    assert!(said.contains("every check passed"), "{said}");
    let (status, _, stderr) = hive.stop().await;
    assert!(status.success(), "{stderr}");
}
