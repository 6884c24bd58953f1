//! Fault injection with real processes and real services: `kill -9` of `hive serve` in the
//! middle of a load of audited writes (API writes, workflow runs, webhook deliveries, chat
//! messages) on SQLite and on PostgreSQL; a PostgreSQL of the test's own stopped under that load; a Redis of the
//! test's own stopped while accounts are throttled; the data directory's disk filling up. Each
//! checks that every write the client saw acknowledged is there afterwards, that the audit
//! chain verifies, and that what was refused meanwhile was the documented `503`.

use crate::accounts::{PASSWORD, create_admin};
use crate::durability::create_conformance_agent;
use crate::process::{HiveProcess, SHARED_SECRETS, poll_until, run_to_exit};
use crate::workflows::admin_token;
use futures_util::StreamExt;
use hive_testkit::{OwnPostgres, OwnRedis};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Limits high enough that the load is never refused by one.
const UNLIMITED: [(&str, &str); 4] = [
    (
        "HIVE_RATE_LIMITS",
        "api=1000000/1s,secrets=1000000/1s,a2a=1000000/1s",
    ),
    ("HIVE_WORKFLOW_MAX_RUNS_PER_USER", "10000"),
    ("A2A_STREAMS_PER_USER", "10000"),
    ("A2A_STREAMS_PER_IP", "10000"),
];
/// Every request of these tests is answered within this or counts as failed: an outage must be
/// answered, not hang.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
const CLIENTS: usize = 8;
/// How long a phase of a test may take before the test fails (a bound, not an expectation).
const PHASE: Duration = Duration::from_secs(60);

fn bounded_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap()
}

/// A number in `0..bound`, different on each run: where in the load the fault lands.
fn random_below(bound: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % bound as u128) as usize
}

/// Where one deployment keeps its data: a working directory (`./hive-data`, SQLite) and, on
/// PostgreSQL, the database. The same for `hive serve` and the command line.
struct Deployment {
    dir: PathBuf,
    vars: Vec<(String, String)>,
}

impl Deployment {
    fn new(dir: &Path, database_url: Option<&str>) -> Self {
        let mut vars: Vec<(String, String)> = SHARED_SECRETS
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        if let Some(url) = database_url {
            vars.push(("DATABASE_URL".to_owned(), url.to_owned()));
        }
        Self {
            dir: dir.to_owned(),
            vars,
        }
    }

    fn vars<'a>(&'a self, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        all.extend_from_slice(more);
        all
    }

    /// An admin's token with every scope, and their conformance agent to chat with.
    async fn token(&self) -> String {
        let token = admin_token(&self.dir, &self.vars(&[])).await;
        create_conformance_agent(&self.dir, &self.vars(&[])).await;
        token
    }

    async fn serve(&self, more: &[(&str, &str)]) -> HiveProcess {
        let mut vars = self.vars(&UNLIMITED);
        vars.extend_from_slice(more);
        HiveProcess::start(&self.dir, &vars).await
    }

    /// `hive audit verify` on the deployment's database, with the server stopped.
    async fn assert_audit_intact(&self) {
        let verified = run_to_exit(&self.dir, &["audit", "verify"], &self.vars(&[])).await;
        assert!(verified.0.success(), "{verified:?}");
        assert!(verified.1.contains("audit chain intact"), "{}", verified.1);
    }
}

/// What a client of the load writes to: a workflow it runs by hand and through its webhook (one
/// per client, each allowed the most active runs there may be) and the agent it chats with.
struct Targets {
    workflow: String,
    webhook_secret: String,
    agent: String,
}

/// The JSON body of `request`'s answer.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The id of the conformance agent [`Deployment::token`] made, allowed as many tasks at a time
/// as there may be.
async fn chat_agent(http: &reqwest::Client, base: &str, token: &str) -> String {
    let agents = json_of(http.get(format!("{base}/api/v1/agents")).bearer_auth(token)).await;
    let id = agents["items"]
        .as_array()
        .and_then(|items| items.iter().find(|agent| agent["name"] == "tck"))
        .and_then(|agent| agent["id"].as_str())
        .unwrap_or_else(|| panic!("no agent tck in {agents}"))
        .to_owned();
    let limits = json!({ "limits": {
        "requestsPerMinute": 100000, "tokensPerDay": 0, "concurrentTasks": 1000, "timeoutSeconds": 120
    }});
    let patched = http
        .patch(format!("{base}/api/v1/agents/{id}"))
        .bearer_auth(token)
        .json(&limits)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200, "{:?}", patched.text().await);
    id
}

async fn targets(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    agent: &str,
) -> Targets {
    let document = json!({
        "name": name,
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "done", "type": "output", "value": {"ok": true}}
        ],
        "edges": [{"from": "start", "to": "done"}],
        "triggers": [{"type": "webhook", "id": "hook"}],
        "limits": {"maxConcurrentRuns": 100}
    });
    let saved = json_of(
        http.post(format!("{base}/api/v1/workflows"))
            .bearer_auth(token)
            .json(&document),
    )
    .await;
    let id = saved["workflow"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("saved: {saved}"))
        .to_owned();
    let secret = json_of(
        http.post(format!("{base}/api/v1/workflows/{id}/webhook-secret"))
            .bearer_auth(token),
    )
    .await;
    let webhook_secret = secret["secret"].as_str().unwrap().to_owned();
    hive_testkit::capture::canary(&webhook_secret);
    Targets {
        workflow: id,
        webhook_secret,
        agent: agent.to_owned(),
    }
}

/// What became of one write.
enum Outcome {
    /// Answered 2xx: the path that reads the written object back.
    Acknowledged(String),
    /// Answered otherwise: the status, whether `Retry-After` came with it, and the body.
    Refused(u16, bool, Value),
    /// No answer (connection refused or cut, or no answer within [`CLIENT_TIMEOUT`]).
    Failed(String),
}

/// The `n`-th write of client `client_no`: a secret, a run started by hand, a webhook delivery
/// or a chat message, in turn — each one stored with its audit record.
async fn write(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    targets: &Targets,
    client_no: usize,
    n: usize,
) -> Outcome {
    let name = format!("fault-{client_no}-{n}");
    let (request, read_back): (_, fn(&Value) -> String) = match n % 4 {
        0 => (
            http.post(format!("{base}/api/v1/secrets"))
                .bearer_auth(token)
                .json(&json!({ "name": name, "value": format!("value of {name}") })),
            |created| format!("/api/v1/secrets/{}", created["id"].as_str().unwrap()),
        ),
        1 => (
            http.post(format!("{base}/api/v1/workflows/{}/runs", targets.workflow))
                .bearer_auth(token)
                .json(&json!({ "input": { "name": name } })),
            |run| format!("/api/v1/workflow-runs/{}", run["id"].as_str().unwrap()),
        ),
        2 => {
            let body = json!({ "name": name }).to_string();
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let signature = hive_crypto::hmac_sha256_hex(
                targets.webhook_secret.as_bytes(),
                format!("{t}.{body}").as_bytes(),
            );
            (
                http.post(format!(
                    "{base}/api/webhooks/workflows/{}/hook",
                    targets.workflow
                ))
                .header("Hive-Signature", format!("t={t},v1={signature}"))
                .header("content-type", "application/json")
                .body(body),
                |run| format!("/api/v1/workflow-runs/{}", run["id"].as_str().unwrap()),
            )
        }
        _ => (
            http.post(format!("{base}/api/v1/agents/{}/chat", targets.agent))
                .bearer_auth(token)
                .json(&json!({ "text": name })),
            |stored| {
                let id = stored["conversation"]["id"].as_str().unwrap();
                format!("/api/v1/conversations/{id}")
            },
        ),
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return Outcome::Failed(error.to_string()),
    };
    let status = response.status();
    let retry_after = response.headers().contains_key("retry-after");
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => return Outcome::Failed(format!("{status}: {error}")),
    };
    // A chat answers a stream whose first event is the stored message; the rest answer JSON.
    let json = text
        .lines()
        .find_map(|line| line.strip_prefix("data:"))
        .unwrap_or(&text);
    let Ok(body) = serde_json::from_str::<Value>(json.trim()) else {
        return Outcome::Failed(format!("{status}: not JSON: {text}"));
    };
    if status.is_success() {
        Outcome::Acknowledged(read_back(&body))
    } else {
        Outcome::Refused(status.as_u16(), retry_after, body)
    }
}

/// What a load saw.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<String>,
    refused: Vec<(u16, bool, Value)>,
    failed: Vec<String>,
}

/// [`CLIENTS`] clients writing without pause, each until it is told to stop or a request of
/// its gets no answer.
struct Load {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    async fn start(base: &str, token: &str) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let agent = chat_agent(&bounded_client(), base, token).await;
        let mut workflows = Vec::new();
        for client_no in 0..CLIENTS {
            let name = format!("load-{client_no}");
            workflows.push(targets(&bounded_client(), base, token, &name, &agent).await);
        }
        let clients = workflows
            .into_iter()
            .enumerate()
            .map(|(client_no, workflow)| {
                let (seen, stop) = (seen.clone(), stop.clone());
                let (base, token, http) = (base.to_owned(), token.to_owned(), bounded_client());
                tokio::spawn(async move {
                    for n in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let outcome = write(&http, &base, &token, &workflow, client_no, n).await;
                        let mut seen = seen.lock().unwrap();
                        match outcome {
                            Outcome::Acknowledged(path) => seen.acknowledged.push(path),
                            Outcome::Refused(status, retry_after, body) => {
                                seen.refused.push((status, retry_after, body));
                            }
                            Outcome::Failed(error) => {
                                seen.failed.push(error);
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            seen,
            stop,
            clients,
        }
    }

    fn count(&self, what: fn(&Seen) -> usize) -> usize {
        what(&self.seen.lock().unwrap())
    }

    /// Waits until `what` of the load reaches `count`.
    async fn wait_for(&self, label: &str, what: fn(&Seen) -> usize, count: usize) {
        poll_until(label, PHASE, async || {
            (self.count(what) >= count).then_some(())
        })
        .await;
    }

    async fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.await.unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn acknowledged(seen: &Seen) -> usize {
    seen.acknowledged.len()
}

fn refused(seen: &Seen) -> usize {
    seen.refused.len()
}

/// Every acknowledged write reads back.
async fn assert_all_present(base: &str, token: &str, acknowledged: &[String]) {
    let http = bounded_client();
    let missing: Vec<String> = futures_util::stream::iter(acknowledged)
        .map(|path| {
            let http = http.clone();
            async move {
                let response = http
                    .get(format!("{base}{path}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                (response.status() != 200).then(|| format!("{path}: {}", response.status()))
            }
        })
        .buffer_unordered(8)
        .filter_map(async |missing| missing)
        .collect()
        .await;
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are missing: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Every refusal is the documented answer to an outage: `503 service_unavailable` with
/// `Retry-After`, in the one error shape.
fn assert_refused_as_unavailable(refused: &[(u16, bool, Value)]) {
    for (status, retry_after, body) in refused {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
        assert!(body["error"]["requestId"].is_string(), "{body}");
        assert!(retry_after, "no Retry-After: {body}");
    }
}

/// Kills `hive serve` at a random moment of the load, restarts it on the same data, and finds
/// every acknowledged write and an intact audit chain.
async fn acknowledged_writes_survive_kill_9(deployment: &Deployment) {
    let token = deployment.token().await;
    let mut hive = deployment.serve(&[]).await;
    let load = Load::start(&hive.base_url, &token).await;
    let kill_after = 30 + random_below(120);
    load.wait_for("acknowledged writes", acknowledged, kill_after)
        .await;

    // No shutdown, no flush: the writes in flight are cut off.
    hive.kill().await;
    let seen = load.finish().await;
    drop(hive);
    assert!(seen.acknowledged.len() >= kill_after);
    for kind in ["/secrets/", "/workflow-runs/", "/conversations/"] {
        assert!(
            seen.acknowledged.iter().any(|path| path.contains(kind)),
            "no {kind} write was acknowledged"
        );
    }
    assert!(
        seen.refused.is_empty(),
        "refused before the kill: {:?}",
        seen.refused
    );

    let hive = deployment.serve(&[]).await;
    assert_all_present(&hive.base_url, &token, &seen.acknowledged).await;
    assert!(hive.stop().await.0.success());
    deployment.assert_audit_intact().await;
}

#[tokio::test]
async fn a_kill_9_under_load_loses_no_acknowledged_write_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    acknowledged_writes_survive_kill_9(&Deployment::new(dir.path(), None)).await;
}

#[tokio::test]
async fn a_kill_9_under_load_loses_no_acknowledged_write_on_postgres() {
    if hive_testkit::postgres_admin_url().is_none() {
        return;
    }
    let database = hive_testkit::scratch_postgres().await;
    let dir = tempfile::tempdir().unwrap();
    acknowledged_writes_survive_kill_9(&Deployment::new(dir.path(), Some(database.url()))).await;
}

#[tokio::test]
async fn a_postgres_restart_under_load_is_answered_503_and_loses_no_acknowledged_write() {
    if !OwnPostgres::available() {
        return;
    }
    let postgres = OwnPostgres::start();
    let url = postgres.url();
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment::new(dir.path(), Some(&url));
    let token = deployment.token().await;
    let hive = deployment.serve(&[]).await;
    let load = Load::start(&hive.base_url, &token).await;
    load.wait_for("acknowledged writes", acknowledged, 20 + random_below(80))
        .await;

    postgres.stop_immediately();
    // Refusals come back while the database is down: the outage is answered, not waited out
    // (an unanswered request would end its client and fail the test below).
    load.wait_for("refusals during the outage", refused, 2 * CLIENTS)
        .await;
    postgres.start_again();
    let before = load.count(acknowledged);
    load.wait_for(
        "writes acknowledged after the restart",
        acknowledged,
        before + 2 * CLIENTS,
    )
    .await;

    let seen = load.finish().await;
    assert!(seen.failed.is_empty(), "unanswered: {:?}", seen.failed);
    assert_refused_as_unavailable(&seen.refused);
    assert_all_present(&hive.base_url, &token, &seen.acknowledged).await;
    let (status, stdout, stderr) = hive.stop().await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("database unavailable"), "{stdout}");
    deployment.assert_audit_intact().await;
}

async fn login(base: &str, password: &str) -> (u16, Value) {
    let response = bounded_client()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": "root@example.com", "password": password }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A wrong password, then the right one at once — well inside the 1 s the account must wait
/// after a failure, as the delay is read before any password work: refused like the wrong
/// one; then, once the delay is over, the right one is let in.
async fn assert_throttled_then_let_in(base: &str) {
    let (status, wrong) = login(base, "a wrong passphrase entirely").await;
    assert_eq!(status, 401, "{wrong}");
    let (status, right) = login(base, PASSWORD).await;
    assert_eq!(
        (status, &right["error"]["code"]),
        (401, &wrong["error"]["code"]),
        "inside the delay, the right password gets the same refusal"
    );
    poll_until("a login after the delay", PHASE, async || {
        let (status, _) = login(base, PASSWORD).await;
        assert!(status == 401 || status == 200, "{status}");
        (status == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn login_throttling_holds_while_redis_is_down_and_the_shared_claims_return() {
    if !OwnRedis::available() {
        return;
    }
    let mut redis = OwnRedis::start();
    let redis_url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    create_admin(dir.path(), "root@example.com").await;
    let hive = HiveProcess::start(
        dir.path(),
        &[
            ("REDIS_URL", redis_url.as_str()),
            ("HIVE_RATE_LIMITS", "login=1000/1m"),
            ("LOG_LEVEL", "info"),
        ],
    )
    .await;
    let base = hive.base_url.clone();
    assert_throttled_then_let_in(&base).await;

    redis.kill();
    // The same with the claims taken on this node: neither waved through nor refused for good.
    assert_throttled_then_let_in(&base).await;
    assert!(
        hive.stdout().contains("shared claims unreachable"),
        "{}",
        hive.stdout()
    );

    let _restarted = OwnRedis::start_on(redis.port);
    poll_until("the shared claims to return", PHASE, async || {
        assert_throttled_then_let_in(&base).await;
        hive.stdout()
            .contains("shared claims reachable again")
            .then_some(())
    })
    .await;
    assert!(hive.stop().await.0.success());
}

/// A tmpfs mounted on a directory for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (skipped, failing under CI) where mounting is not permitted.
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(at)
            .output()
            .is_ok_and(|output| output.status.success());
        if !mounted {
            hive_testkit::missing("mount -t tmpfs (root is needed; this test mounts one)");
            return None;
        }
        Some(Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: detached at once even while a file on it is still open (a killed server's, a
        // connection's worker thread still closing), freed when the last one closes.
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&self.0)
            .status();
    }
}

/// Writes `path` until the file system has no room left.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    for chunk in [vec![0u8; 1 << 20], vec![0u8; 4096], vec![0u8; 64]] {
        loop {
            match file.write_all(&chunk).and_then(|()| file.sync_all()) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(28) => break,
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_503_corrupts_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hive-data");
    let Some(_tmpfs) = Tmpfs::mount(&data, "64m") else {
        return;
    };
    let deployment = Deployment::new(dir.path(), None);
    let token = deployment.token().await;
    let hive = deployment.serve(&[]).await;
    let http = bounded_client();
    let agent = chat_agent(&http, &hive.base_url, &token).await;
    let targets = targets(&http, &hive.base_url, &token, "disk", &agent).await;
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for n in 0..3 {
        match write(&http, &hive.base_url, &token, &targets, 0, n).await {
            Outcome::Acknowledged(path) => acknowledged.push(path),
            _ => panic!("a write with room on the disk was not acknowledged"),
        }
    }

    let filler = data.join("filler");
    fill(&filler);
    // The write-ahead log has room for a few writes still; a bounded number of writes reaches
    // the end of it.
    for n in 3..2000 {
        match write(&http, &hive.base_url, &token, &targets, 0, n).await {
            Outcome::Acknowledged(path) => acknowledged.push(path),
            Outcome::Refused(status, retry_after, body) => {
                refused.push((status, retry_after, body));
                if refused.len() == 10 {
                    break;
                }
            }
            Outcome::Failed(error) => panic!("unanswered on a full disk: {error}"),
        }
    }
    assert!(!refused.is_empty(), "no write was refused on a full disk");
    assert_refused_as_unavailable(&refused);
    // Reads are still served.
    let listed = http
        .get(format!("{}/api/v1/secrets", hive.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);

    std::fs::remove_file(&filler).unwrap();
    let mut n = 2000;
    poll_until("a write once the disk has room", PHASE, async || {
        n += 1;
        match write(&http, &hive.base_url, &token, &targets, 0, n).await {
            Outcome::Acknowledged(path) => {
                acknowledged.push(path);
                Some(())
            }
            Outcome::Refused(status, ..) => {
                assert_eq!(status, 503);
                None
            }
            Outcome::Failed(error) => panic!("unanswered: {error}"),
        }
    })
    .await;
    assert_all_present(&hive.base_url, &token, &acknowledged).await;
    let (status, _, stderr) = hive.stop().await;
    assert!(status.success(), "{stderr}");

    deployment.assert_audit_intact().await;
    let url = format!("sqlite://{}?mode=ro", data.join("hive.db").display());
    let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    sqlx::Connection::close(connection).await.unwrap();
}
