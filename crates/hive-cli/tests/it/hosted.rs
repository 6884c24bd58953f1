//! Hosted agents through `hive serve` as operators run it: a bundle uploaded over the API,
//! started in the real sandbox, called through the A2A gateway, its logs and stats read, a new
//! version applied by a restart and rolled back, the gateway's timeout on an agent that never
//! answers, and no sandbox left behind by a `kill -9` of Hive.

use crate::accounts::{create_admin, create_token};
use crate::process::{HiveProcess, client, poll_until};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const OWNER: &str = "root@example.com";
const TOKEN_SECRET: &str = "hosted-upstream-token-for-the-test";

/// Whether this machine can run the sandbox (root and bubblewrap); a note when not.
pub(crate) fn sandbox_here() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let ok =
        root && Path::new("/usr/bin/bwrap").is_file() && Path::new("/usr/bin/python3").is_file();
    if !ok {
        eprintln!("skipped: hosted agents need root, /usr/bin/bwrap and /usr/bin/python3");
    }
    ok
}

/// The example agent's files, `agent.py` changed by `edit`, as a tar.gz.
pub(crate) fn example_bundle(edit: impl Fn(String) -> String) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hosted-agent");
    let agent = edit(std::fs::read_to_string(dir.join("agent.py")).unwrap());
    let manifest = std::fs::read_to_string(dir.join("hive-agent.toml")).unwrap();
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, text) in [("agent.py", agent), ("hive-agent.toml", manifest)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, name, text.as_bytes())
            .unwrap();
    }
    archive.into_inner().unwrap().finish().unwrap()
}

/// An API client of one `hive serve`, as the owner's token.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("A2A-Version", "1.0")
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn push(&self, agent: &str, archive: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .put(format!("{}/api/v1/agents/{agent}/bundle", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/gzip")
            .body(archive)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// `SendMessage` to the agent through the gateway: the reply's text, or the error.
    async fn say(&self, agent: &str, text: &str) -> Result<String, Value> {
        let (status, body) = self
            .post(
                &format!("/api/a2a/agents/{agent}/jsonrpc"),
                json!({
                    "jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                    "params": { "message": {
                        "messageId": uuid::Uuid::new_v4().to_string(),
                        "role": "ROLE_USER", "parts": [{ "text": text }] } }
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if let Some(error) = body.get("error") {
            return Err(error.clone());
        }
        let result = &body["result"];
        let message = result
            .get("message")
            .cloned()
            .or_else(|| result["task"]["artifacts"][0].clone().into())
            .unwrap();
        Ok(message["parts"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    async fn status_of(&self, agent: &str) -> String {
        self.get(&format!("/api/v1/agents/{agent}")).await["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// A server with an owner, their token and the secret the example names.
async fn serve(dir: &Path, vars: &[(&str, &str)]) -> (HiveProcess, Api) {
    let hive = HiveProcess::start(dir, vars).await;
    let api = Api {
        base: hive.base_url.clone(),
        token: std::fs::read_to_string(dir.join("owner.token")).unwrap(),
        http: client(),
    };
    (hive, api)
}

async fn prepare(dir: &Path) {
    create_admin(dir, OWNER).await;
    let token = create_token(dir, OWNER, "hosted", None).await;
    std::fs::write(dir.join("owner.token"), token).unwrap();
}

/// Processes whose real uid is a sandbox's (Hive's sandbox uids are above 1,610,000,000).
fn sandbox_processes() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|status| {
                    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
                    line.split_whitespace().nth(1)?.parse::<u64>().ok()
                })
                .is_some_and(|uid| uid >= 1_610_000_000)
        })
        .collect()
}

#[tokio::test]
async fn a_hosted_agent_runs_answers_logs_and_applies_new_versions() {
    if !sandbox_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path()).await;
    hive_testkit::capture::canary(TOKEN_SECRET);
    let (hive, api) = serve(dir.path(), &[]).await;

    let (status, secret) = api
        .post(
            "/api/v1/secrets",
            json!({ "name": "example-upstream-token", "value": TOKEN_SECRET }),
        )
        .await;
    assert_eq!(status, 201, "{secret}");
    let (status, created) = api
        .post(
            "/api/v1/agents",
            json!({ "name": "echo", "kind": "hosted",
            "limits": { "requestsPerMinute": 600, "tokensPerDay": 0, "concurrentTasks": 4,
                        "timeoutSeconds": 5 } }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // Without a bundle the start fails, saying so.
    let (status, started) = api
        .post(&format!("/api/v1/agents/{id}/start"), json!({}))
        .await;
    assert_eq!(
        status,
        200,
        "{started}\n{}\n{}",
        hive.stderr(),
        hive.stdout()
    );
    assert_eq!(started["status"], "error", "{started}");
    assert!(
        started["statusDetail"]
            .as_str()
            .unwrap()
            .contains("no bundle"),
        "{started}"
    );

    // The agent prints its secret at start: the logs keep it cut out.
    let leaky = |text: String| {
        text.replace(
            "print(f\"serving A2A on {socket_path}\"",
            "print(\"token=\" + os.environ[\"UPSTREAM_TOKEN\"], file=sys.stderr, flush=True)\n        print(f\"serving A2A on {socket_path}\"",
        )
    };
    let (status, v1) = api.push(&id, example_bundle(leaky)).await;
    assert_eq!(status, 201, "{v1}");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["active"], true);
    // The card is the manifest's.
    let agent = api.get(&format!("/api/v1/agents/{id}")).await;
    assert_eq!(agent["skills"][1]["id"], "fetch", "{agent}");

    let (status, started) = api
        .post(&format!("/api/v1/agents/{id}/start"), json!({}))
        .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(
        started["status"],
        "ready",
        "{started}\n{}",
        api.get(&format!("/api/v1/agents/{id}/logs")).await
    );
    assert_eq!(api.say(&id, "hi").await.unwrap(), "echo: hi");

    // Its output, paged, with the secret's value cut out.
    let logs = api.get(&format!("/api/v1/agents/{id}/logs")).await;
    let text: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["text"].as_str().unwrap())
        .collect();
    assert!(
        text.iter().any(|line| line.contains("serving A2A on")),
        "{logs}"
    );
    assert!(text.contains(&"token=[redacted]"), "{logs}");
    assert!(!logs.to_string().contains(TOKEN_SECRET));

    let stats = api.get(&format!("/api/v1/agents/{id}/stats")).await;
    assert_eq!(stats["bundleVersion"], 1, "{stats}");
    assert!(stats["memoryBytes"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["processes"].as_u64().unwrap() >= 1, "{stats}");

    // A new version runs from the next restart; a rollback brings the first one back.
    let (status, v2) = api
        .push(
            &id,
            example_bundle(|text| text.replace("f\"echo: {text}\"", "f\"v2: {text}\"")),
        )
        .await;
    assert_eq!(status, 201, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(api.say(&id, "hi").await.unwrap(), "echo: hi");
    let (status, restarted) = api
        .post(&format!("/api/v1/agents/{id}/restart"), json!({}))
        .await;
    assert_eq!(
        (status, restarted["status"].as_str()),
        (200, Some("ready")),
        "{restarted}"
    );
    assert_eq!(api.say(&id, "hi").await.unwrap(), "v2: hi");
    let (status, back) = api
        .post(&format!("/api/v1/agents/{id}/bundle/rollback"), json!({}))
        .await;
    assert_eq!((status, back["version"].as_i64()), (200, Some(1)), "{back}");
    api.post(&format!("/api/v1/agents/{id}/restart"), json!({}))
        .await;
    assert_eq!(api.say(&id, "hi").await.unwrap(), "echo: hi");
    let bundles = api.get(&format!("/api/v1/agents/{id}/bundles")).await;
    let versions: Vec<(i64, bool)> = bundles
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["version"].as_i64().unwrap(),
                b["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(2, false), (1, true)]);

    // Paused: frozen, not called; resumed: answers again.
    let (_, paused) = api
        .post(&format!("/api/v1/agents/{id}/pause"), json!({}))
        .await;
    assert_eq!(paused["status"], "paused", "{paused}");
    assert!(api.say(&id, "hi").await.is_err());
    let (_, resumed) = api
        .post(&format!("/api/v1/agents/{id}/resume"), json!({}))
        .await;
    assert_eq!(resumed["status"], "ready", "{resumed}");
    assert_eq!(api.say(&id, "again").await.unwrap(), "echo: again");

    // Stopped: nothing of it is left running.
    let (_, stopped) = api
        .post(&format!("/api/v1/agents/{id}/stop"), json!({}))
        .await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    assert!(sandbox_processes_of(hive.pid()).is_empty());

    // Deleted: its files go.
    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/agents/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(!dir.path().join("hive-data/sandboxes").join(&id).exists());
    let (_, stdout, stderr) = hive.stop().await;
    assert!(!stdout.contains(TOKEN_SECRET) && !stderr.contains(TOKEN_SECRET));
}

/// The sandbox processes under `hive_pid` (its descendants of a sandbox uid).
fn sandbox_processes_of(hive_pid: u32) -> Vec<u32> {
    sandbox_processes()
        .into_iter()
        .filter(|pid| descends_from(*pid, hive_pid))
        .collect()
}

fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        let Some(parent) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let after = stat.rsplit_once(')')?.1.to_owned();
                after.split_whitespace().nth(1)?.parse::<u32>().ok()
            })
        else {
            return false;
        };
        if parent <= 1 {
            return false;
        }
        pid = parent;
    }
    false
}

#[tokio::test]
async fn the_gateway_ends_a_call_a_hosted_agent_never_answers_and_a_kill_leaves_no_orphan() {
    if !sandbox_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path()).await;
    let (hive, api) = serve(dir.path(), &[]).await;
    api.post(
        "/api/v1/secrets",
        json!({ "name": "example-upstream-token", "value": TOKEN_SECRET }),
    )
    .await;
    let (_, created) = api
        .post(
            "/api/v1/agents",
            json!({ "name": "stuck", "kind": "hosted",
            "limits": { "requestsPerMinute": 600, "tokensPerDay": 0, "concurrentTasks": 4,
                        "timeoutSeconds": 2 } }),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let never = |text: String| {
        text.replace(
            "return f\"echo: {text}\"",
            "__import__(\"time\").sleep(3600)",
        )
    };
    let (status, _) = api.push(&id, example_bundle(never)).await;
    assert_eq!(status, 201);
    let (_, started) = api
        .post(&format!("/api/v1/agents/{id}/start"), json!({}))
        .await;
    assert_eq!(started["status"], "ready", "{started}");

    let began = std::time::Instant::now();
    let error = api.say(&id, "hang").await.unwrap_err();
    assert!(
        error["message"].as_str().unwrap().contains("timeout"),
        "{error}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "the call was not ended"
    );

    // kill -9: the sandbox dies with Hive (it is bound to its parent); the next start finds
    // nothing left and runs the agent again, as its stored status says.
    let pid = hive.pid();
    let before = sandbox_processes_of(pid);
    assert!(!before.is_empty(), "the agent runs under Hive");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    drop(hive);
    poll_until(
        "the sandbox's end with Hive",
        Duration::from_secs(10),
        async || {
            let left = before
                .iter()
                .any(|p| Path::new(&format!("/proc/{p}")).exists());
            (!left).then_some(())
        },
    )
    .await;

    let (hive, api) = serve(dir.path(), &[]).await;
    poll_until(
        "the agent's return after the restart",
        Duration::from_secs(30),
        async || (api.status_of(&id).await == "ready").then_some(()),
    )
    .await;
    assert!(!sandbox_processes_of(hive.pid()).is_empty());
    api.post(&format!("/api/v1/agents/{id}/stop"), json!({}))
        .await;
    hive.stop().await;
}
