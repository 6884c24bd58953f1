//! Hosted agents through `hive serve` as operators run it: a bundle uploaded over the API,
//! started in the real sandbox, called through the A2A gateway, its logs and stats read, a new
//! version applied by a restart and rolled back, the gateway's timeout on an agent that never
//! answers, and no sandbox left behind by a `kill -9` of Hive.

use crate::accounts::{PASSWORD, create_admin, create_token};
use crate::process::{HiveProcess, client, poll_until};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

pub const OWNER: &str = "root@example.com";
pub const TOKEN_SECRET: &str = "hosted-upstream-token-for-the-test";

/// Whether this machine can run the sandbox (root and bubblewrap); a note when not.
pub fn sandbox_here() -> bool {
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
        // CI installs what they need (.ci/run): there, a missing piece is a failure.
        hive_testkit::missing("root, /usr/bin/bwrap and /usr/bin/python3 (for hosted agents)");
    }
    ok
}

/// The example agent's files, `agent.py` changed by `edit`, as a tar.gz.
pub fn example_bundle(edit: impl Fn(String) -> String) -> Vec<u8> {
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
pub struct Api {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Api {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
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

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn push(&self, agent: &str, archive: Vec<u8>) -> (u16, Value) {
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
    pub async fn say(&self, agent: &str, text: &str) -> Result<String, Value> {
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

    /// The example's secret for the owner (once), then a hosted agent named `name` whose calls
    /// end after `timeout_seconds`: its id.
    pub async fn hosted_agent(&self, name: &str, timeout_seconds: u32) -> String {
        let (status, secret) = self
            .post(
                "/api/v1/secrets",
                json!({ "name": "example-upstream-token", "value": TOKEN_SECRET }),
            )
            .await;
        assert!(status == 201 || status == 409, "{secret}");
        let (status, created) = self
            .post(
                "/api/v1/agents",
                json!({ "name": name, "kind": "hosted",
                    "limits": { "requestsPerMinute": 600, "tokensPerDay": 0,
                        "concurrentTasks": 4, "timeoutSeconds": timeout_seconds } }),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    pub async fn status_of(&self, agent: &str) -> String {
        self.get(&format!("/api/v1/agents/{agent}")).await["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// A server with an owner, their token and the secret the example names.
pub async fn serve(dir: &Path, vars: &[(&str, &str)]) -> (HiveProcess, Api) {
    let hive = HiveProcess::start(dir, vars).await;
    let api = Api {
        base: hive.base_url.clone(),
        token: std::fs::read_to_string(dir.join("owner.token")).unwrap(),
        http: client(),
    };
    (hive, api)
}

pub async fn prepare(dir: &Path) {
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
    // One local host the operator opens to agents, one nobody does.
    let (allowed, allowed_seen) = crate::sandbox::web_server().await;
    let (refused, refused_seen) = crate::sandbox::web_server().await;
    let allowlist = allowed.to_string();
    let (hive, api) = serve(
        dir.path(),
        &[("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", allowlist.as_str())],
    )
    .await;

    let id = api.hosted_agent("echo", 5).await;

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

    // A stream through the gateway.
    let streamed = api
        .http
        .post(format!("{}/api/a2a/agents/{id}/jsonrpc", api.base))
        .bearer_auth(&api.token)
        .header("A2A-Version", "1.0")
        .header("accept", "text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 2, "method": "SendStreamingMessage",
            "params": { "message": { "messageId": "m-stream", "role": "ROLE_USER",
                "parts": [{ "text": "stream me" }] } }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 200);
    let events = streamed.text().await.unwrap();
    assert!(events.matches("data:").count() >= 2, "{events}");
    assert!(events.contains("echo: stream me"), "{events}");
    assert!(events.contains("TASK_STATE_COMPLETED"), "{events}");

    // Out through the proxy with its secret to the allowed host; the other host is refused,
    // never reached, and the refusal audited for the owner, naming the agent.
    assert_eq!(
        api.say(&id, &format!("fetch http://{allowed}/"))
            .await
            .unwrap(),
        "fetched: HTTP 200"
    );
    assert_eq!(
        *allowed_seen.lock().unwrap(),
        [format!("Bearer {TOKEN_SECRET}")]
    );
    assert_eq!(
        api.say(&id, &format!("fetch http://{refused}/"))
            .await
            .unwrap(),
        "fetched: HTTP 403"
    );
    assert!(
        refused_seen.lock().unwrap().is_empty(),
        "a refused host was reached"
    );
    let audited = poll_until(
        "the refusal's record",
        Duration::from_secs(10),
        async || {
            let page = api.get("/api/v1/audit?action=egress.refused").await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|item| item["detail"]["agent"] == format!("agent:{id}"))
                .cloned()
        },
    )
    .await;
    assert_eq!(audited["target"], format!("http://{refused}"), "{audited}");

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

    // Each of those changes is on the record, naming the agent.
    for action in [
        "agent.bundle.push",
        "agent.bundle.rollback",
        "agent.restart",
        "agent.pause",
        "agent.resume",
    ] {
        let page = api.get(&format!("/api/v1/audit?action={action}")).await;
        assert!(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|item| item["target"] == format!("agent:{id}")),
            "{action}: {page}"
        );
    }

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
    let (hive, api) = serve(dir.path(), &[("HIVE_SANDBOX_MAX_PER_USER", "1")]).await;
    // A program that ends before it answers: the start fails saying why and how its output
    // ended (its secret cut out); it is then stopped, so it takes no place of the owner's.
    let broken = api.hosted_agent("broken", 2).await;
    let ends = |text: String| {
        text.replace(
            "def main():\n",
            "def main():\n    print(\"no config for \" + os.environ[\"UPSTREAM_TOKEN\"], file=sys.stderr, flush=True)\n    sys.exit(4)\n",
        )
    };
    let (status, _) = api.push(&broken, example_bundle(ends)).await;
    assert_eq!(status, 201);
    let (_, failed) = api
        .post(&format!("/api/v1/agents/{broken}/start"), json!({}))
        .await;
    assert_eq!(failed["status"], "error", "{failed}");
    let detail = failed["statusDetail"].as_str().unwrap();
    assert!(detail.contains("Exited(4)"), "{detail}");
    assert!(detail.contains("no config for [redacted]"), "{detail}");
    assert!(!detail.contains(TOKEN_SECRET), "{detail}");
    // The record of the failed start says why, not what the program printed.
    let page = api.get("/api/v1/audit?action=agent.status").await;
    let record = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["target"] == format!("agent:{broken}") && item["detail"]["to"] == "error")
        .cloned()
        .unwrap();
    let reason = record["detail"]["reason"].as_str().unwrap();
    assert!(reason.contains("Exited(4)"), "{record}");
    assert!(!reason.contains("no config"), "{record}");
    api.post(&format!("/api/v1/agents/{broken}/stop"), json!({}))
        .await;

    let id = api.hosted_agent("stuck", 2).await;
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

    // One of the owner's agents at a time.
    let (_, other) = api
        .post(
            "/api/v1/agents",
            json!({ "name": "other", "kind": "hosted" }),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_owned();
    api.push(&other, example_bundle(|text| text)).await;
    let (status, refused) = api
        .post(&format!("/api/v1/agents/{other}/start"), json!({}))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.to_string().contains("HIVE_SANDBOX_MAX_PER_USER"),
        "{refused}"
    );

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
    // Its stored status still says `ready` from before the kill: what shows the return is that
    // this process runs it (a run's start time is known only to the replica running it).
    poll_until(
        "the agent's return after the restart",
        Duration::from_secs(30),
        async || {
            let stats = api.get(&format!("/api/v1/agents/{id}/stats")).await;
            (stats["startedAt"].is_string() && stats["status"] == "ready").then_some(())
        },
    )
    .await;
    assert!(!sandbox_processes_of(hive.pid()).is_empty());
    api.post(&format!("/api/v1/agents/{id}/stop"), json!({}))
        .await;
    hive.stop().await;
}

/// A free port on `address` (bound, then let go, for a replica to listen on and name).
fn free_port(address: &str) -> u16 {
    std::net::TcpListener::bind((address, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn two_replicas_run_a_hosted_agent_once_forward_calls_and_take_over() {
    use crate::process::{SHARED_SECRETS, run_to_exit, run_with_input};
    let Some(services) = crate::replicas::SharedServices::new().await else {
        return;
    };
    if !sandbox_here() {
        return;
    }
    // The owner and their token, in the shared database.
    let setup = tempfile::tempdir().unwrap();
    let mut database = vec![("DATABASE_URL", services.database.url())];
    database.extend_from_slice(&SHARED_SECRETS);
    let created = run_with_input(
        setup.path(),
        &["admin", "create", "--email", OWNER, "--name", "Root"],
        &database,
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(created.0.success(), "{created:?}");
    let token = run_to_exit(
        setup.path(),
        &["token", "create", "--user", OWNER, "--name", "hosted"],
        &database,
    )
    .await;
    assert!(token.0.success(), "{token:?}");
    let token = token.1.trim().to_owned();

    let replica = async |address: &str| {
        let port = free_port(address);
        let listen = format!("{address}:{port}");
        let node_url = format!("http://{listen}");
        let settings = [
            ("HIVE_LISTEN", listen.as_str()),
            ("HIVE_NODE_URL", node_url.as_str()),
            ("MESH_BUS_HMAC_SECRET", "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ"),
            ("LOG_FORMAT", "json"),
            ("LOG_LEVEL", "info"),
        ];
        let (process, dir) = services.start_replica(address, &settings).await;
        let api = Api {
            base: process.base_url.clone(),
            token: token.clone(),
            http: client(),
        };
        (process, dir, api)
    };
    let (a, _dir_a, api_a) = replica("127.0.0.2").await;
    let (b, _dir_b, api_b) = replica("127.0.0.3").await;

    api_a
        .post(
            "/api/v1/secrets",
            json!({ "name": "example-upstream-token", "value": TOKEN_SECRET }),
        )
        .await;
    let (_, created) = api_a
        .post(
            "/api/v1/agents",
            json!({ "name": "echo", "kind": "hosted" }),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = api_a.push(&id, example_bundle(|text| text)).await;
    assert_eq!(status, 201);
    let (_, started) = api_a
        .post(&format!("/api/v1/agents/{id}/start"), json!({}))
        .await;
    assert_eq!(started["status"], "ready", "{started}");
    // It runs under A alone; a call reaching B is forwarded to A.
    assert!(!sandbox_processes_of(a.pid()).is_empty());
    assert!(sandbox_processes_of(b.pid()).is_empty());
    assert_eq!(api_b.say(&id, "via b").await.unwrap(), "echo: via b");
    assert_eq!(api_a.say(&id, "via a").await.unwrap(), "echo: via a");
    // Its logs and measurements, asked of B, are A's.
    let stats = api_b.get(&format!("/api/v1/agents/{id}/stats")).await;
    assert_eq!(stats["node"], node_id_of(&a), "{stats}");
    assert!(stats["memoryBytes"].as_u64().unwrap() > 0, "{stats}");
    let logs = api_b.get(&format!("/api/v1/agents/{id}/logs")).await;
    assert!(logs.to_string().contains("serving A2A on"), "{logs}");

    // A's relay takes only calls signed with the deployment's key, each once.
    let relay = format!("{}/internal/v1/hosted/{id}/channel", a.base_url);
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}"#;
    let forged = client()
        .post(&relay)
        .header("content-type", "application/json")
        .header(
            "x-hive-forward-time",
            time::OffsetDateTime::now_utc().unix_timestamp().to_string(),
        )
        .header("x-hive-forward-nonce", "0".repeat(64))
        .header("x-hive-forward-signature", "0".repeat(64))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let key = hive_crypto::vault::MasterKey::from_hex(SHARED_SECRETS[0].1)
        .unwrap()
        .derive(hive_crypto::vault::Purpose::HostedForwarding);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let nonce = "ab".repeat(32);
    let signed = key.hmac_sha256_hex(
        format!(
            "hive-forward-v1\n{now}\n{nonce}\nPOST\n{id}\n/channel\ncontent-type:application/json\naccept:*/*\n{}",
            hive_crypto::sha256_hex(body)
        )
        .as_bytes(),
    );
    let send_signed = async || {
        client()
            .post(&relay)
            .header("content-type", "application/json")
            .header("accept", "*/*")
            .header("x-hive-forward-time", now.to_string())
            .header("x-hive-forward-nonce", &nonce)
            .header("x-hive-forward-signature", &signed)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(send_signed().await, 200, "a signed call is relayed");
    assert_eq!(send_signed().await, 403, "the same call again is a replay");
    // Signed rightly, but two minutes old: refused as stale.
    let then = now - 120;
    let stale_nonce = "cd".repeat(32);
    let stale_signature = key.hmac_sha256_hex(
        format!(
            "hive-forward-v1\n{then}\n{stale_nonce}\nPOST\n{id}\n/channel\ncontent-type:application/json\naccept:*/*\n{}",
            hive_crypto::sha256_hex(body)
        )
        .as_bytes(),
    );
    let stale = client()
        .post(&relay)
        .header("content-type", "application/json")
        .header("accept", "*/*")
        .header("x-hive-forward-time", then.to_string())
        .header("x-hive-forward-nonce", &stale_nonce)
        .header("x-hive-forward-signature", &stale_signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 403, "a stale call is refused");

    // A stops: B takes the agent over and runs it itself.
    assert!(a.stop().await.0.success());
    poll_until(
        "B's taking the agent over",
        Duration::from_secs(60),
        async || {
            (!sandbox_processes_of(b.pid()).is_empty()
                && api_b.status_of(&id).await == "ready"
                && api_b.say(&id, "after").await.ok().as_deref() == Some("echo: after"))
            .then_some(())
        },
    )
    .await;
    api_b
        .post(&format!("/api/v1/agents/{id}/stop"), json!({}))
        .await;
    assert!(sandbox_processes_of(b.pid()).is_empty());
    assert!(b.stop().await.0.success());
}

/// The node id a replica logged at start.
fn node_id_of(process: &HiveProcess) -> String {
    crate::process::node_id(&process.stdout())
}

#[tokio::test]
async fn a_hosted_agent_that_ends_is_recorded_and_restarted_and_the_caps_hold() {
    if !sandbox_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path()).await;
    let (hive, api) = serve(dir.path(), &[("HIVE_SANDBOX_MAX_RUNNING", "1")]).await;
    api.post(
        "/api/v1/secrets",
        json!({ "name": "example-upstream-token", "value": TOKEN_SECRET }),
    )
    .await;
    // "crash" makes the program end with code 3.
    let crashing = |text: String| {
        text.replace(
            "    return f\"echo: {text}\"",
            "    if text == \"crash\":\n        os._exit(3)\n    if text == \"hog\":\n        hog = [bytearray(1 << 20) for _ in range(1024)]\n    return f\"echo: {text}\"",
        )
    };
    let mut ids = Vec::new();
    for name in ["crashy", "second"] {
        let (_, created) = api
            .post("/api/v1/agents", json!({ "name": name, "kind": "hosted" }))
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, _) = api.push(&id, example_bundle(crashing)).await;
        assert_eq!(status, 201);
        ids.push(id);
    }
    let (first, second) = (&ids[0], &ids[1]);
    let (_, started) = api
        .post(&format!("/api/v1/agents/{first}/start"), json!({}))
        .await;
    assert_eq!(started["status"], "ready", "{started}");
    // One sandbox on this replica at most.
    let (status, refused) = api
        .post(&format!("/api/v1/agents/{second}/start"), json!({}))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HIVE_SANDBOX_MAX_RUNNING"),
        "{refused}"
    );

    // It ends by itself: recorded with why, then started again by the watchdog.
    assert!(api.say(first, "crash").await.is_err());
    let exited = poll_until("the end's record", Duration::from_secs(20), async || {
        let page = api.get("/api/v1/audit?action=agent.exited").await;
        page["items"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(exited["target"], format!("agent:{first}"), "{exited}");
    assert!(
        exited["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "{exited}"
    );
    poll_until("the restart", Duration::from_secs(30), async || {
        (api.status_of(first).await == "ready"
            && api.say(first, "back").await.ok().as_deref() == Some("echo: back"))
        .then_some(())
    })
    .await;
    let stats = api.get(&format!("/api/v1/agents/{first}/stats")).await;
    assert_eq!(stats["restarts"], 1, "{stats}");

    // Past its memory limit (128 MiB): killed, and the record says so; Hive serves on.
    assert!(api.say(first, "hog").await.is_err());
    let killed = poll_until(
        "the memory kill's record",
        Duration::from_secs(20),
        async || {
            let page = api.get("/api/v1/audit?action=agent.exited").await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|item| {
                    item["detail"]["reason"]
                        .as_str()
                        .unwrap()
                        .contains("memory")
                })
                .cloned()
        },
    )
    .await;
    assert!(
        killed["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("passed its memory limit"),
        "{killed}"
    );
    assert_eq!(api.status_of(second).await, "created");
    api.post(&format!("/api/v1/agents/{first}/stop"), json!({}))
        .await;
    hive.stop().await;
}

/// A hosted agent's run time with billing enforced: its first period is held before it starts
/// (an empty wallet starts nothing), each period is settled as it runs, and when the wallet
/// cannot hold the next period the agent is stopped, saying why; the wallet never goes below
/// zero and the usage records count the seconds it ran.
#[tokio::test]
async fn a_hosted_agents_run_time_is_paid_for_as_it_runs() {
    if !sandbox_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path()).await;
    let (hive, api) = serve(
        dir.path(),
        &[
            ("HIVE_BILLING_ENFORCE", "true"),
            // One minor unit a second, held a second ahead.
            ("HIVE_BILLING_HOSTED_MINOR_PER_HOUR", "3600"),
            ("HIVE_BILLING_HOSTED_METER_SECONDS", "1"),
        ],
    )
    .await;
    let id = api.hosted_agent("paid", 5).await;
    let (status, pushed) = api.push(&id, example_bundle(|text| text)).await;
    assert_eq!(status, 201, "{pushed}");

    // An empty wallet: the start is refused by billing.
    let (status, started) = api
        .post(&format!("/api/v1/agents/{id}/start"), json!({}))
        .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["status"], "error", "{started}");
    assert!(
        started["statusDetail"]
            .as_str()
            .unwrap()
            .contains("billing"),
        "{started}"
    );
    assert!(sandbox_processes_of(hive.pid()).is_empty());

    // Three seconds' worth: it runs, then stops when the fourth cannot be held.
    let owner = api.get("/api/v1/billing/wallet").await["userId"].clone();
    let (status, funded) = api
        .post(
            "/api/v1/billing/adjustments",
            json!({"userId": owner, "amountMinor": 3, "reason": "three seconds"}),
        )
        .await;
    assert_eq!(status, 201, "{funded}");
    let (status, started) = api
        .post(&format!("/api/v1/agents/{id}/start"), json!({}))
        .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["status"], "ready", "{started}");
    let stopped = poll_until(
        "the agent stopped for want of money",
        Duration::from_secs(30),
        async || {
            let agent = api.get(&format!("/api/v1/agents/{id}")).await;
            let detail = agent["statusDetail"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (agent["status"] == "error" && detail.contains("billing")).then_some(agent)
        },
    )
    .await;
    assert!(
        stopped["statusDetail"]
            .as_str()
            .unwrap()
            .contains("billing refused"),
        "{stopped}"
    );
    poll_until("its sandbox ended", Duration::from_secs(30), async || {
        sandbox_processes_of(hive.pid()).is_empty().then_some(())
    })
    .await;
    let wallet = api.get("/api/v1/billing/wallet").await;
    assert_eq!(wallet["heldMinor"], 0, "{wallet}");
    assert!(wallet["balanceMinor"].as_i64().unwrap() >= 0, "{wallet}");
    let usage = api.get("/api/v1/billing/usage?groupBy=agent").await;
    let group = &usage["groups"][0];
    assert_eq!(group["kind"], "hosted_run", "{usage}");
    assert_eq!(group["key"], id.as_str());
    // It ran about three seconds, each charged one minor unit: what it cost is what it ran,
    // and the wallet paid all of it (or owes what a late second cost).
    let seconds = group["quantity"].as_i64().unwrap();
    assert!((2..=6).contains(&seconds), "{usage}");
    assert_eq!(group["costMinor"].as_i64().unwrap(), seconds);
    assert_eq!(
        3 - wallet["balanceMinor"].as_i64().unwrap() + wallet["owedMinor"].as_i64().unwrap(),
        seconds
    );
    drop(hive);
}
