//! `hive workflow` against a running `hive serve`, as an operator runs it (the server's URL and
//! an API token in the environment): a document validated, applied twice (two versions), shown,
//! listed; a run started and waited for, its steps printed; a run stopped at an approval,
//! approved from the command line, then seen through `runs` and `logs`; a run cancelled; a
//! Pilox graph imported; problems and refusals explained without the token ever printed.

use crate::accounts::{create_admin, create_token};
use crate::process::{HiveProcess, run_to_exit};
use serde_json::json;
use std::path::Path;
use std::process::ExitStatus;

const OWNER: &str = "flows@example.com";

/// The `hive` command against a running server as one token's holder; every run is checked
/// for the token in its output.
pub(crate) struct Client<'a> {
    pub dir: &'a Path,
    pub base: String,
    pub token: String,
}

impl Client<'_> {
    pub async fn run(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let (status, stdout, stderr) = run_to_exit(
            self.dir,
            args,
            &[("HIVE_SERVER_URL", &self.base), ("HIVE_TOKEN", &self.token)],
        )
        .await;
        assert!(
            !stdout.contains(&self.token) && !stderr.contains(&self.token),
            "the token was printed"
        );
        (status, stdout, stderr)
    }

    pub async fn ok(&self, args: &[&str]) -> String {
        let (status, stdout, stderr) = self.run(args).await;
        assert!(
            status.success(),
            "hive {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }
}

fn document(message: &str) -> serde_json::Value {
    json!({
        "name": "greet",
        "nodes": [
            {"id": "start", "type": "input", "required": ["who"]},
            {"id": "hello", "type": "transform", "value": format!("{message}, {{{{ input.who }}}}")},
            {"id": "done", "type": "output", "value": {"greeting": "{{ nodes.hello.output }}"}}
        ],
        "edges": [{"from": "start", "to": "hello"}, {"from": "hello", "to": "done"}]
    })
}

#[tokio::test]
async fn the_workflow_commands_drive_runs_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_admin(path, OWNER).await;
    let token = create_token(path, OWNER, "flows", None).await;
    let hive = HiveProcess::start(path, &[]).await;
    let cli = Client {
        dir: path,
        base: hive.base_url.clone(),
        token,
    };

    let file = path.join("greet.json");
    std::fs::write(&file, document("Hello").to_string()).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        cli.ok(&["workflow", "validate", file]).await.trim(),
        "valid"
    );

    // A broken document: each problem named, exit 1, nothing saved.
    let broken = path.join("broken.json");
    let mut bad = document("Hi");
    bad["nodes"][1]["type"] = json!("teleport");
    bad["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "done", "to": "start"}));
    std::fs::write(&broken, bad.to_string()).unwrap();
    let (status, stdout, stderr) = cli
        .run(&["workflow", "validate", broken.to_str().unwrap()])
        .await;
    assert!(!status.success());
    assert!(stdout.contains("unknown_type"), "{stdout}");
    assert!(stderr.contains("problem"), "{stderr}");
    let (status, _, stderr) = cli
        .run(&["workflow", "apply", broken.to_str().unwrap()])
        .await;
    assert!(!status.success());
    assert!(stderr.contains("teleport"), "{stderr}");

    let created = cli.ok(&["workflow", "apply", file]).await;
    assert!(created.starts_with("created workflow greet"), "{created}");
    std::fs::write(path.join("greet.json"), document("Good day").to_string()).unwrap();
    let saved = cli.ok(&["workflow", "apply", file]).await;
    assert!(
        saved.contains("saved workflow greet") && saved.contains("version 2"),
        "{saved}"
    );
    let listed = cli.ok(&["workflow", "list"]).await;
    assert!(
        listed
            .lines()
            .any(|line| line.contains("greet") && line.contains(" 2 ")),
        "{listed}"
    );
    let shown = cli
        .ok(&["workflow", "show", "greet", "--version", "1"])
        .await;
    assert!(shown.contains("Hello, {{ input.who }}"), "{shown}");

    // Run and wait: each step, then the output.
    let waited = cli
        .ok(&[
            "workflow",
            "run",
            "greet",
            "--input",
            r#"{"who":"Ada"}"#,
            "--wait",
        ])
        .await;
    assert!(
        waited.contains("hello") && waited.contains("succeeded"),
        "{waited}"
    );
    assert!(
        waited.contains("\"greeting\": \"Good day, Ada\""),
        "{waited}"
    );
    // A run that fails says why and exits 1.
    let (status, _, stderr) = cli
        .run(&["workflow", "run", "greet", "--input", "{}", "--wait"])
        .await;
    assert!(!status.success());
    assert!(
        stderr.contains("the run failed") && stderr.contains("who"),
        "{stderr}"
    );

    // An approval: the run waits; approved from here it ends.
    let approval = json!({
        "name": "gated",
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "ok", "type": "approval", "approvers": {"users": [OWNER]}, "message": "ship?"},
            {"id": "done", "type": "output", "value": "{{ nodes.ok.output.approved }}"}
        ],
        "edges": [{"from": "start", "to": "ok"}, {"from": "ok", "to": "done"}]
    });
    let gated = path.join("gated.json");
    std::fs::write(&gated, approval.to_string()).unwrap();
    cli.ok(&["workflow", "apply", gated.to_str().unwrap()])
        .await;
    let started = cli.ok(&["workflow", "run", "gated"]).await;
    let run = started.split_whitespace().nth(1).unwrap().to_owned();
    let mut waiting = String::new();
    for _ in 0..200 {
        waiting = cli.ok(&["workflow", "logs", &run]).await;
        if waiting.contains("waiting") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        waiting.contains("ok") && waiting.contains("waiting"),
        "{waiting}"
    );
    let decided = cli
        .ok(&["workflow", "approve", &run, "ok", "--comment", "go"])
        .await;
    assert!(decided.contains(&run), "{decided}");
    let followed = cli
        .ok(&["workflow", "logs", &run, "--follow", "--full"])
        .await;
    assert!(followed.contains("succeeded"), "{followed}");
    assert!(followed.contains("\"approved\":true"), "{followed}");
    let runs = cli
        .ok(&[
            "workflow",
            "runs",
            "--workflow",
            "gated",
            "--status",
            "succeeded",
        ])
        .await;
    assert!(runs.contains(&run), "{runs}");
    // Decided once only.
    let (status, _, stderr) = cli.run(&["workflow", "approve", &run, "ok"]).await;
    assert!(!status.success());
    assert!(stderr.contains("409"), "{stderr}");

    // A waiting run cancelled.
    let started = cli.ok(&["workflow", "run", "gated"]).await;
    let second = started.split_whitespace().nth(1).unwrap().to_owned();
    let cancelled = cli.ok(&["workflow", "cancel", &second]).await;
    assert!(cancelled.contains("cancelled"), "{cancelled}");

    // A Pilox graph: the document, and what did not map on standard error.
    let graph = path.join("pilox.json");
    std::fs::write(
        &graph,
        json!({
            "nodes": [
                {"id": "t", "type": "start", "data": {}},
                {"id": "n", "type": "note", "data": {"text": "just a note"}},
                {"id": "e", "type": "end", "data": {}}
            ],
            "edges": [{"source": "t", "target": "e", "data": {}}]
        })
        .to_string(),
    )
    .unwrap();
    let (status, stdout, stderr) = cli
        .run(&["workflow", "import", graph.to_str().unwrap()])
        .await;
    assert!(status.success(), "{stderr}");
    let imported: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        imported["nodes"]
            .as_array()
            .is_some_and(|nodes| !nodes.is_empty()),
        "{stdout}"
    );
    assert!(
        stderr.contains("n:"),
        "the unmapped note is reported: {stderr}"
    );

    // A wrong token: refused, and named by where it came from, never printed.
    let wrong = Client {
        dir: path,
        base: hive.base_url.clone(),
        token: "hive_not_a_real_token_at_all_000000000000000000".to_owned(),
    };
    let (status, _, stderr) = wrong.run(&["workflow", "list"]).await;
    assert!(!status.success());
    assert!(stderr.contains("HIVE_TOKEN"), "{stderr}");
    let (status, _, stderr) = cli.run(&["workflow", "run", "nope"]).await;
    assert!(!status.success());
    assert!(stderr.contains("no workflow named nope"), "{stderr}");
    drop(hive);
}
