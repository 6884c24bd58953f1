//! The hosted agents' commands of `hive agent` against a running `hive serve`, as an operator
//! runs them: with the server's URL and an API token in the environment, never opening the data
//! directory the server holds. A bundle pushed, listed and rolled back, the agent's logs read and
//! followed while it prints, its stats, restart, pause and resume; a refused token and an unknown
//! agent explained without the token ever printed.

use crate::accounts::{create_admin, create_token};
use crate::hosted::{Api, OWNER, TOKEN_SECRET, example_bundle, prepare, sandbox_here, serve};
use crate::process::{HiveProcess, hive_command, run_to_exit};
use hive_testkit::capture;
use serde_json::json;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// `hive <args>` as a client of `api`'s server, with its token: (status, stdout, stderr).
async fn cli(dir: &Path, api: &Api, args: &[&str]) -> (ExitStatus, String, String) {
    run_to_exit(
        dir,
        args,
        &[("HIVE_SERVER_URL", &api.base), ("HIVE_TOKEN", &api.token)],
    )
    .await
}

/// As [`cli`], and it must succeed: its standard output.
async fn cli_ok(dir: &Path, api: &Api, args: &[&str]) -> String {
    let (status, stdout, stderr) = cli(dir, api, args).await;
    assert!(
        status.success(),
        "hive {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The example agent, also saying on its standard error what it heard.
fn talkative(text: String) -> String {
    text.replace(
        "    return f\"echo: {text}\"",
        "    print(f\"heard: {text}\", file=sys.stderr, flush=True)\n    return f\"echo: {text}\"",
    )
}

/// Waits for a line matching `wanted` on `lines` (what a running child prints), up to `deadline`.
async fn next_line_with(
    lines: &mut mpsc::UnboundedReceiver<String>,
    wanted: &str,
    deadline: Duration,
) -> String {
    let waiting = async {
        while let Some(line) = lines.recv().await {
            if line.contains(wanted) {
                return line;
            }
        }
        panic!("the command ended before printing {wanted:?}");
    };
    tokio::time::timeout(deadline, waiting)
        .await
        .unwrap_or_else(|_| panic!("no line with {wanted:?} within {deadline:?}"))
}

#[tokio::test]
async fn the_hosted_commands_manage_a_running_agent_through_the_api() {
    if !sandbox_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    prepare(path).await;
    let (hive, api) = serve(path, &[]).await;
    let id = api.hosted_agent("echo", 5).await;

    // Pushed by name: the version, its hash and size as the server stored them.
    let v1 = path.join("v1.tar.gz");
    std::fs::write(&v1, example_bundle(talkative)).unwrap();
    let size = std::fs::metadata(&v1).unwrap().len();
    let pushed = cli_ok(
        path,
        &api,
        &["agent", "bundle", "push", "echo", v1.to_str().unwrap()],
    )
    .await;
    let stored = api.get(&format!("/api/v1/agents/{id}/bundles")).await;
    let sha = stored[0]["sha256"].as_str().unwrap();
    assert_eq!(
        pushed.trim(),
        format!("pushed version 1 (sha256 {sha}, {size} bytes)")
    );
    let listed = cli_ok(path, &api, &["agent", "bundle", "list", "echo"]).await;
    let rows = bundle_rows(&listed);
    assert_eq!(rows, [(1, true)], "{listed}");
    assert!(listed.contains(&sha[..12]), "{listed}");

    // A file that is no bundle is refused before anything is sent.
    let not_gzip = path.join("agent.py");
    std::fs::write(&not_gzip, "print('hi')").unwrap();
    let (status, _, stderr) = cli(
        path,
        &api,
        &[
            "agent",
            "bundle",
            "push",
            "echo",
            not_gzip.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!status.success());
    assert!(stderr.contains("not gzip-compressed"), "{stderr}");

    let (status, started) = api
        .post(&format!("/api/v1/agents/{id}/start"), json!({}))
        .await;
    assert_eq!(
        (status, started["status"].as_str()),
        (200, Some("ready")),
        "{started}"
    );

    // The kept lines, each as `<time> <stream> <text>`.
    let logs = cli_ok(path, &api, &["agent", "logs", "echo"]).await;
    let serving = logs
        .lines()
        .find(|line| line.contains("serving A2A on"))
        .unwrap_or_else(|| panic!("{logs}"));
    let fields: Vec<&str> = serving.splitn(3, ' ').collect();
    assert!(
        time::OffsetDateTime::parse(fields[0], &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{serving}"
    );
    assert_eq!(fields[1], "stderr", "{serving}");
    assert!(fields[2].starts_with("serving A2A on"), "{serving}");
    let one = cli_ok(path, &api, &["agent", "logs", "echo", "--limit", "1"]).await;
    assert_eq!(one.lines().count(), 1, "{one}");

    // Followed: the backlog, then a line the agent prints afterwards, as it comes.
    let mut follower = hive_command(
        path,
        &[("HIVE_SERVER_URL", &api.base), ("HIVE_TOKEN", &api.token)],
    )
    .args(["agent", "logs", "echo", "-f"])
    .spawn()
    .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (sender, mut lines) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut stdout = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = stdout.next_line().await {
            capture::append("process", &line);
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    next_line_with(&mut lines, "serving A2A on", Duration::from_secs(30)).await;
    let marker = format!("followed-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(
        api.say(&id, &marker).await.unwrap(),
        format!("echo: {marker}")
    );
    let heard = next_line_with(&mut lines, &marker, Duration::from_secs(30)).await;
    assert!(
        heard.contains(&format!("stderr heard: {marker}")),
        "{heard}"
    );
    assert!(
        follower.try_wait().unwrap().is_none(),
        "it keeps following after the new line"
    );
    follower.kill().await.unwrap();
    reader.await.unwrap();

    let stats = cli_ok(path, &api, &["agent", "stats", "echo"]).await;
    let value = |key: &str| {
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{stats}"))
            .to_owned()
    };
    assert_eq!(value("status"), "ready", "{stats}");
    assert_eq!(value("bundle version"), "1", "{stats}");
    let memory = value("memory");
    assert!(
        memory.ends_with("iB") || memory.ends_with(" B"),
        "memory is measured: {stats}"
    );
    assert_ne!(value("processes"), "-", "{stats}");

    // A second version runs from the restart; the rollback brings the first one back.
    let v2 = path.join("v2.tar.gz");
    std::fs::write(
        &v2,
        example_bundle(|text| text.replace("f\"echo: {text}\"", "f\"v2: {text}\"")),
    )
    .unwrap();
    let pushed = cli_ok(
        path,
        &api,
        &["agent", "bundle", "push", &id, v2.to_str().unwrap()],
    )
    .await;
    assert!(pushed.starts_with("pushed version 2 "), "{pushed}");
    assert_eq!(api.say(&id, "hi").await.unwrap(), "echo: hi");
    let restarted = cli_ok(path, &api, &["agent", "restart", "echo"]).await;
    assert_eq!(restarted.trim(), "echo is ready");
    assert_eq!(api.say(&id, "hi").await.unwrap(), "v2: hi");
    let stats = cli_ok(path, &api, &["agent", "stats", "echo"]).await;
    assert!(stats.contains("bundle version: 2\n"), "{stats}");

    let (status, _, stderr) = cli(
        path,
        &api,
        &["agent", "bundle", "rollback", "echo", "--version", "9"],
    )
    .await;
    assert!(!status.success());
    assert!(stderr.contains("the server refused"), "{stderr}");
    let back = cli_ok(path, &api, &["agent", "bundle", "rollback", "echo"]).await;
    assert!(back.starts_with("version 1 is active"), "{back}");
    let listed = cli_ok(path, &api, &["agent", "bundle", "list", "echo"]).await;
    assert_eq!(bundle_rows(&listed), [(2, false), (1, true)], "{listed}");
    cli_ok(path, &api, &["agent", "restart", "echo"]).await;
    assert_eq!(api.say(&id, "hi").await.unwrap(), "echo: hi");

    // Paused: frozen and not called; resumed: answers again.
    let paused = cli_ok(path, &api, &["agent", "pause", "echo"]).await;
    assert_eq!(paused.trim(), "echo is paused");
    assert_eq!(api.status_of(&id).await, "paused");
    assert!(api.say(&id, "hi").await.is_err());
    let resumed = cli_ok(path, &api, &["agent", "resume", &id]).await;
    assert_eq!(resumed.trim(), "echo is ready");
    assert_eq!(api.say(&id, "again").await.unwrap(), "echo: again");

    let (_, stopped) = api
        .post(&format!("/api/v1/agents/{id}/stop"), json!({}))
        .await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    let (_, stdout, stderr) = hive.stop().await;
    assert!(!stdout.contains(TOKEN_SECRET) && !stderr.contains(TOKEN_SECRET));
}

/// `(version, active)` of each row of `hive agent bundle list`.
fn bundle_rows(listed: &str) -> Vec<(i64, bool)> {
    listed
        .lines()
        .skip(1)
        .map(|line| {
            let mut fields = line.split_whitespace();
            let version = fields.next().unwrap().parse().unwrap();
            (version, fields.next() == Some("*"))
        })
        .collect()
}

#[tokio::test]
async fn a_refused_token_and_an_unknown_agent_are_explained_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_admin(path, OWNER).await;
    let token = create_token(path, OWNER, "cli", None).await;
    let hive = HiveProcess::start(path, &[]).await;
    let server = hive.base_url.clone();

    // A token the server does not know: refused, and never repeated.
    let wrong = "hive_thisTokenWasNeverIssuedByThisServer0123456789";
    capture::canary(wrong);
    let (status, stdout, stderr) = run_to_exit(
        path,
        &["agent", "stats", "echo"],
        &[("HIVE_SERVER_URL", &server), ("HIVE_TOKEN", wrong)],
    )
    .await;
    // The server could not be used: exit 2, as for every command whose instance is unusable.
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refused the token from HIVE_TOKEN (401 Unauthorized)"),
        "{stderr}"
    );
    assert!(
        !stdout.contains(wrong) && !stderr.contains(wrong),
        "{stderr}"
    );

    // No token at all: what to set.
    let (status, _, stderr) = run_to_exit(
        path,
        &["agent", "logs", "echo"],
        &[("HIVE_SERVER_URL", &server)],
    )
    .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no API token"), "{stderr}");

    // The right token from a file: the name is looked up, and is nobody's.
    let file = path.join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let (status, stdout, stderr) = run_to_exit(
        path,
        &[
            "agent",
            "stats",
            "ghost",
            "--token-file",
            file.to_str().unwrap(),
        ],
        &[("HIVE_SERVER_URL", &server)],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no agent named ghost"), "{stderr}");
    assert!(!stdout.contains(&token) && !stderr.contains(&token));

    // An id nobody has: the API's own answer.
    let nobody = uuid::Uuid::new_v4().to_string();
    let (status, _, stderr) = run_to_exit(
        path,
        &["agent", "restart", &nobody],
        &[("HIVE_SERVER_URL", &server), ("HIVE_TOKEN", &token)],
    )
    .await;
    assert!(!status.success());
    assert!(stderr.contains("404"), "{stderr}");
    assert!(!stderr.contains(&token));

    // The server is the configured AUTH_URL when nothing else names it; the data directory the
    // server holds is never opened (the command answers while it runs).
    let (status, _, stderr) = run_to_exit(
        path,
        &["agent", "stats", "ghost"],
        &[("AUTH_URL", &server), ("HIVE_TOKEN", &token)],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no agent named ghost"), "{stderr}");

    // The command line's variables are known names: no typo warning, and no value shown.
    let (status, stdout, stderr) = run_to_exit(
        path,
        &["config", "check"],
        &[("HIVE_SERVER_URL", &server), ("HIVE_TOKEN", &token)],
    )
    .await;
    assert!(status.success(), "{stderr}");
    assert!(!stdout.contains("unknown variable"), "{stdout}");
    assert!(!stdout.contains(&token) && !stderr.contains(&token));

    assert!(hive.stop().await.0.success());
}
