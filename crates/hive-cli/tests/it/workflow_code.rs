//! Workflows' code nodes through `hive serve`, in the real sandbox: the escape corpus of a code
//! step. Each case runs hostile code as a workflow's step and asserts the specific refusal or
//! failure: Pilox's escape to `process` shows nothing of Hive, the host's files are not there,
//! the network is the proxy's and the node's hosts only, a fork bomb meets the process limit, a
//! memory bomb the memory limit, an endless loop the time limit; and code nodes turned off are
//! refused at save and at the step. Needs root, bubblewrap, python3 and node: without them the
//! tests fail under CI and are skipped elsewhere.

use crate::accounts::PASSWORD;
use crate::hosted::{Api, OWNER, sandbox_here, serve};
use crate::process::{SHARED_SECRETS, poll_until, run_to_exit, run_with_input};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// A secret of the owner's that a code node gets in its environment.
const CANARY: &str = "code-node-canary-secret-value-7f3a9c";

fn node_here() -> bool {
    let ok = Path::new("/usr/bin/node").is_file();
    if !ok {
        hive_testkit::missing("/usr/bin/node (for code nodes)");
    }
    ok
}

/// A workflow `input → code → output` with `code` the node's fields.
fn workflow(name: &str, code: Value) -> Value {
    let mut node = json!({ "id": "code", "type": "code" });
    for (key, value) in code.as_object().unwrap() {
        node[key] = value.clone();
    }
    json!({
        "name": name,
        "nodes": [
            {"id": "start", "type": "input"},
            node,
            {"id": "done", "type": "output", "value": "{{ nodes.code.output }}"}
        ],
        "edges": [{"from": "start", "to": "code"}, {"from": "code", "to": "done"}]
    })
}

/// Saves the workflow (its id), failing the test when it is refused.
async fn save(api: &Api, document: Value) -> String {
    let (status, saved) = api.post("/api/v1/workflows", document).await;
    assert!(status == 201 || status == 200, "{status} {saved}");
    saved["workflow"]["id"].as_str().unwrap().to_owned()
}

/// Starts a run of the workflow with `input`: its id.
async fn start(api: &Api, workflow: &str, input: Value) -> String {
    let (status, started) = api
        .post(
            &format!("/api/v1/workflows/{workflow}/runs"),
            json!({ "input": input }),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    started["id"].as_str().unwrap().to_owned()
}

/// Runs the workflow with `input` to its end: the run's detail.
async fn run(api: &Api, workflow: &str, input: Value) -> Value {
    let run = start(api, workflow, input).await;
    ended(api, &run).await
}

/// The run's detail once it has ended.
async fn ended(api: &Api, run: &str) -> Value {
    poll_until("the run's end", Duration::from_secs(90), async || {
        let detail = api.get(&format!("/api/v1/workflow-runs/{run}")).await;
        matches!(
            detail["run"]["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
        .then_some(detail)
    })
    .await
}

fn code_step(detail: &Value) -> &Value {
    detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["key"] == "code")
        .unwrap_or_else(|| panic!("no code step in {detail}"))
}

/// The code step's error, the run having failed.
fn failure(detail: &Value) -> String {
    assert_eq!(detail["run"]["status"], "failed", "{detail}");
    let step = code_step(detail);
    assert_eq!(step["status"], "failed", "{detail}");
    step["error"].as_str().unwrap().to_owned()
}

/// The code step's output, the run having succeeded.
fn output(detail: &Value) -> Value {
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    code_step(detail)["output"].clone()
}

/// Processes of the sandboxes of the `hive serve` whose data directory is `data_dir` (their
/// cgroup parent is `hive-` and 12 hex characters of the directory's digest).
fn sandbox_processes(data_dir: &Path) -> usize {
    let data_dir = std::fs::canonicalize(data_dir).unwrap();
    let digest = hive_crypto::sha256_hex(data_dir.to_string_lossy().as_bytes());
    let parent = format!("/hive-{}/", &digest[..12]);
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|groups| groups.contains(&parent))
        })
        .count()
}

/// A server with code nodes on (not production), the deployment's secrets in its environment,
/// and the owner's secret the nodes name.
async fn code_server(dir: &Path, vars: &[(&str, &str)]) -> (crate::process::HiveProcess, Api) {
    // The owner and their token, made with the deployment's secrets in the environment (which
    // Hive then holds: the code must not see them).
    let created = run_with_input(
        dir,
        &["admin", "create", "--email", OWNER, "--name", "Root"],
        &SHARED_SECRETS,
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(created.0.success(), "{created:?}");
    let token = run_to_exit(
        dir,
        &["token", "create", "--user", OWNER, "--name", "code"],
        &SHARED_SECRETS,
    )
    .await;
    assert!(token.0.success(), "{token:?}");
    std::fs::write(dir.join("owner.token"), token.1.trim()).unwrap();
    let mut all: Vec<(&str, &str)> = SHARED_SECRETS.to_vec();
    all.extend_from_slice(vars);
    let (hive, api) = serve(dir, &all).await;
    let (status, secret) = api
        .post(
            "/api/v1/secrets",
            json!({ "name": "api-token", "value": CANARY }),
        )
        .await;
    assert_eq!(status, 201, "{secret}");
    (hive, api)
}

const PILOX_ESCAPE: &str = r#"
const fs = require('fs');
const scope = JSON.parse(fs.readFileSync(0, 'utf8'));
// Pilox's escape from its `vm` context: in a process of its own it "works", and finds the
// sandbox's process, not Hive's.
const proc = this.constructor.constructor('return process')();
const read = (path) => { try { return fs.readFileSync(path, 'utf8'); } catch (e) { return 'error:' + e.code; } };
const list = (path) => { try { return fs.readdirSync(path); } catch (e) { return 'error:' + e.code; } };
console.log('some progress output first');
console.log(JSON.stringify({
  escaped: typeof proc.pid === 'number',
  env: proc.env,
  initEnv: read('/proc/1/environ'),
  shadow: read('/etc/shadow'),
  passwd: read('/etc/passwd'),
  etc: list('/etc'),
  dataDir: list(scope.input.dataDir),
  database: read(scope.input.dataDir + '/hive.db'),
  hostPid: proc.pid,
  uid: proc.getuid(),
  input: scope.input,
  nodes: Object.keys(scope.nodes),
}));
"#;

#[tokio::test]
async fn a_code_node_runs_in_the_sandbox_and_sees_nothing_of_hive() {
    if !sandbox_here() || !node_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (hive, api) = code_server(dir.path(), &[]).await;
    // `hive serve` runs in `dir`: its data directory is `./hive-data`.
    let data_dir = std::fs::canonicalize(dir.path().join("hive-data")).unwrap();
    let data_dir = data_dir.to_str().unwrap();

    // Python: the scope on stdin, the result on the last line.
    let python = save(
        &api,
        workflow(
            "python-sum",
            json!({
                "language": "python",
                "source": "import json, sys\nscope = json.load(sys.stdin)\nprint('thinking')\nprint(json.dumps({'sum': scope['input']['a'] + 1}))\n",
            }),
        ),
    )
    .await;
    let detail = run(&api, &python, json!({ "a": 41 })).await;
    assert_eq!(output(&detail), json!({ "sum": 42 }), "{detail}");
    assert_eq!(detail["run"]["output"], json!({ "sum": 42 }));

    // JavaScript: Pilox's escape reaches the sandbox's own process, which holds nothing of
    // Hive's environment or files.
    let escape = save(
        &api,
        workflow(
            "pilox-escape",
            json!({
                "language": "javascript",
                "source": PILOX_ESCAPE,
                "env": { "TOKEN": "{{ secrets.api-token }}" },
            }),
        ),
    )
    .await;
    let detail = run(&api, &escape, json!({ "dataDir": data_dir })).await;
    let seen = output(&detail);
    assert_eq!(seen["escaped"], true, "{seen}");
    let env = seen["env"].as_object().unwrap();
    for hive_variable in [
        "ENCRYPTION_KEY",
        "AUTH_SECRET",
        "DATABASE_URL",
        "HIVE_LISTEN",
        "HIVE_MFA_REQUIRED",
    ] {
        assert!(!env.contains_key(hive_variable), "{hive_variable}: {seen}");
    }
    let text = detail.to_string();
    for (_, value) in SHARED_SECRETS {
        assert!(!text.contains(value), "a deployment secret leaked: {text}");
    }
    // Its own secret came in its environment, and was cut out of what the step answers.
    assert_eq!(env["TOKEN"], "[secret api-token]", "{seen}");
    assert!(!text.contains(CANARY), "{text}");
    assert_eq!(seen["shadow"], "error:ENOENT", "{seen}");
    assert_eq!(seen["passwd"], "error:ENOENT", "{seen}");
    assert_eq!(seen["etc"], "error:EACCES", "{seen}");
    assert_eq!(seen["dataDir"], "error:ENOENT", "{seen}");
    assert_eq!(seen["database"], "error:ENOENT", "{seen}");
    assert!(!seen["initEnv"].as_str().unwrap().contains("ENCRYPTION_KEY"));
    // Its own PID namespace, as an unprivileged uid.
    assert!(seen["hostPid"].as_u64().unwrap() < 10, "{seen}");
    assert_eq!(seen["uid"], 1000, "{seen}");
    assert_eq!(seen["nodes"], json!(["start"]), "{seen}");

    // A failure carries the end of its standard error, the secret cut out of it too.
    let leaky = save(
        &api,
        workflow(
            "leaky-failure",
            json!({
                "language": "python",
                "source": "import os, sys\nprint('token is ' + os.environ['TOKEN'], file=sys.stderr)\nsys.exit(3)\n",
                "env": { "TOKEN": "{{ secrets.api-token }}" },
            }),
        ),
    )
    .await;
    let detail = run(&api, &leaky, json!({})).await;
    let error = failure(&detail);
    assert!(error.contains("exited with status 3"), "{error}");
    assert!(error.contains("token is [secret api-token]"), "{error}");
    assert!(!detail.to_string().contains(CANARY), "{detail}");

    // Nothing of the steps is left: no process, no directory.
    assert_eq!(sandbox_processes(&dir.path().join("hive-data")), 0);
    let code_dir = dir.path().join("hive-data/sandboxes/code");
    assert_eq!(std::fs::read_dir(code_dir).unwrap().count(), 0);
    let (_, _, stderr) = hive.stop().await;
    assert!(!stderr.contains(CANARY));
}

const NETWORK: &str = r#"
import json, os, socket, sys, urllib.error, urllib.request
scope = json.load(sys.stdin)["input"]
def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code
    except Exception as error:
        return "error: " + type(error).__name__
def direct(address):
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        return "connected"
    except OSError as error:
        return "error: " + (os.strerror(error.errno) if error.errno else str(error))
print(json.dumps({
    "allowed": fetch("http://" + scope["allowed"] + "/"),
    "refused": fetch("http://" + scope["refused"] + "/"),
    "direct": direct(scope["allowed"]),
    "redis": fetch("http://" + scope["redis"] + "/") if scope.get("redis") else None,
    "proxy": os.environ.get("HTTP_PROXY", ""),
}))
"#;

#[tokio::test]
async fn a_code_node_reaches_the_network_only_through_the_proxy_and_its_hosts() {
    if !sandbox_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (allowed, allowed_seen) = crate::sandbox::web_server().await;
    let (refused, refused_seen) = crate::sandbox::web_server().await;
    // With Redis, Hive's own service: listed by the operator, and still refused to code.
    let redis = hive_testkit::redis_url().and_then(|url| {
        let rest = url.split_once("://")?.1;
        let address = rest.rsplit('@').next()?.split('/').next()?;
        Some(if address.contains(':') {
            address.to_owned()
        } else {
            format!("{address}:6379")
        })
    });
    let prefix = format!("hive-test-{}", uuid::Uuid::new_v4().simple());
    let mut allowlist = allowed.to_string();
    let redis_url = hive_testkit::redis_url().unwrap_or_default();
    let mut vars = vec![];
    if let Some(redis) = &redis {
        allowlist = format!("{allowlist},{redis}");
        vars.push(("REDIS_URL", redis_url.as_str()));
        vars.push(("HIVE_REDIS_KEY_PREFIX", prefix.as_str()));
    }
    vars.push(("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", allowlist.as_str()));
    let (_hive, api) = code_server(dir.path(), &vars).await;
    let network = save(
        &api,
        workflow(
            "network",
            json!({
                "language": "python",
                "source": NETWORK,
                "network": ["api.example.com"],
            }),
        ),
    )
    .await;
    let detail = run(
        &api,
        &network,
        json!({
            "allowed": allowed.to_string(),
            "refused": refused.to_string(),
            "redis": redis,
        }),
    )
    .await;
    let seen = output(&detail);
    assert!(
        seen["proxy"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{seen}"
    );
    // Through the proxy: the listed host answers, the other is refused and never reached.
    assert_eq!(seen["allowed"], 200, "{seen}");
    assert_eq!(allowed_seen.lock().unwrap().len(), 1);
    assert_eq!(seen["refused"], 403, "{seen}");
    assert!(
        refused_seen.lock().unwrap().is_empty(),
        "a refused host was reached"
    );
    // Directly: the sandbox's loopback is its own, nothing listens there.
    assert_eq!(seen["direct"], "error: Connection refused", "{seen}");
    if redis.is_some() {
        assert_eq!(seen["redis"], 403, "Hive's Redis reached: {seen}");
    }
    // Each refusal audited for the run's principal, naming the run and the node.
    let refusal_of = async |target: String| {
        poll_until(
            "the refusal's record",
            Duration::from_secs(10),
            async || {
                let page = api.get("/api/v1/audit?action=egress.refused").await;
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|item| item["target"] == target)
                    .cloned()
            },
        )
        .await
    };
    let audited = refusal_of(format!("http://{refused}")).await;
    assert_eq!(audited["detail"]["feature"], "workflow_code", "{audited}");
    assert_eq!(audited["detail"]["node"], "code", "{audited}");
    // Another port of a listed address: refused by the port rule.
    assert_eq!(audited["detail"]["reason"], "port", "{audited}");
    if let Some(redis) = &redis {
        let audited = refusal_of(format!("http://{redis}")).await;
        assert_eq!(audited["detail"]["reason"], "self_connection", "{audited}");
    }
    assert!(
        audited["detail"]["workflowRun"]
            .as_str()
            .unwrap()
            .starts_with("workflow_run:"),
        "{audited}"
    );
}

#[tokio::test]
async fn a_code_node_is_held_to_its_processes_memory_and_time() {
    if !sandbox_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (hive, api) = code_server(dir.path(), &[]).await;

    // A fork bomb: fork fails with EAGAIN at the process cap; the host goes on.
    let bomb = save(
        &api,
        workflow(
            "fork-bomb",
            json!({
                "language": "python",
                "source": "import errno, json, os, sys, time\nforked = 0\nwhy = None\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n        forked += 1\nexcept OSError as error:\n    why = errno.errorcode.get(error.errno)\nprint(json.dumps({'forked': forked, 'error': why}))\n",
                "timeoutSeconds": 30,
            }),
        ),
    )
    .await;
    let detail = run(&api, &bomb, json!({})).await;
    let seen = output(&detail);
    assert_eq!(seen["error"], "EAGAIN", "{seen}");
    let forked = seen["forked"].as_u64().unwrap();
    assert!((1..64).contains(&forked), "{seen}");
    let health = crate::process::client()
        .get(format!("{}/api/health", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // A memory bomb: killed at the node's memory limit, which the failure names.
    let memory = save(
        &api,
        workflow(
            "memory-bomb",
            json!({
                "language": "python",
                "source": "import json\nhog = b'x' * (512 << 20)\nprint(json.dumps(len(hog)))\n",
                "memoryMb": 48,
            }),
        ),
    )
    .await;
    let error = failure(&run(&api, &memory, json!({})).await);
    assert!(
        error.contains("passed its memory limit of 48 MiB"),
        "{error}"
    );

    // An endless loop: killed at the step's timeout, which the failure names.
    let endless = save(
        &api,
        workflow(
            "endless",
            json!({
                "language": "javascript",
                "source": "while (true) {}",
                "timeoutSeconds": 2,
            }),
        ),
    )
    .await;
    let started = std::time::Instant::now();
    let looping = start(&api, &endless, json!({})).await;
    // Its processes are seen while it runs, and all gone once the step has failed.
    poll_until("the code's sandbox", Duration::from_secs(10), async || {
        (sandbox_processes(&dir.path().join("hive-data")) > 0).then_some(())
    })
    .await;
    let error = failure(&ended(&api, &looping).await);
    assert!(error.contains("passed its time limit of 2 s"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // Output past 1 MiB: killed, the failure says so.
    let chatty = save(
        &api,
        workflow(
            "chatty",
            json!({
                "language": "python",
                "source": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
            }),
        ),
    )
    .await;
    let error = failure(&run(&api, &chatty, json!({})).await);
    assert!(error.contains("printed more than 1048576 bytes"), "{error}");

    assert_eq!(
        sandbox_processes(&dir.path().join("hive-data")),
        0,
        "a code step's process outlived it"
    );
    hive.stop().await;
}

async fn set_code_nodes(api: &Api, value: &str) -> Value {
    let version = api.get("/api/v1/settings/workflows").await["version"].clone();
    let (status, body) = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/settings/workflows",
            Some(json!({ "workflowCodeNodes": value, "version": version })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn python_echo(name: &str) -> Value {
    workflow(
        name,
        json!({
            "language": "python",
            "source": "import json, sys\nprint(json.dumps(json.load(sys.stdin)['input']))\n",
        }),
    )
}

#[tokio::test]
async fn code_nodes_turned_off_are_refused_at_save_and_at_the_step() {
    if !sandbox_here() {
        return;
    }
    // HIVE_WORKFLOW_DISABLE_CODE_NODE=true: off, whatever the admins' setting says.
    let dir = tempfile::tempdir().unwrap();
    let (hive, api) = code_server(dir.path(), &[("HIVE_WORKFLOW_DISABLE_CODE_NODE", "true")]).await;
    let view = set_code_nodes(&api, "allow").await;
    assert_eq!(view["codeNodesForcedOff"], true, "{view}");
    assert_eq!(view["codeNodesAllowed"], false, "{view}");
    let (status, checked) = api
        .post("/api/v1/workflows/validate", python_echo("forced-off"))
        .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["valid"], false);
    assert_eq!(
        checked["problems"][0]["rule"], "code_nodes_off",
        "{checked}"
    );
    assert!(
        checked["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("HIVE_WORKFLOW_DISABLE_CODE_NODE=true"),
        "{checked}"
    );
    let (status, refused) = api
        .post("/api/v1/workflows", python_echo("forced-off"))
        .await;
    assert_eq!(status, 400, "{refused}");
    hive.stop().await;

    // On by default here; an admin turns them off after a workflow was saved.
    let dir = tempfile::tempdir().unwrap();
    let (_hive, api) = code_server(dir.path(), &[]).await;
    let view = api.get("/api/v1/settings/workflows").await;
    assert_eq!(
        view,
        json!({
            "workflowCodeNodes": "inherit",
            "codeNodesDefault": true,
            "codeNodesForcedOff": false,
            "codeNodesAllowed": true,
            "version": null
        })
    );
    let echo = save(&api, python_echo("echo")).await;
    let view = set_code_nodes(&api, "off").await;
    assert_eq!(view["codeNodesAllowed"], false, "{view}");
    let error = failure(&run(&api, &echo, json!({ "n": 1 })).await);
    assert!(
        error.contains("turned off on this server by an admin"),
        "{error}"
    );
    let (status, checked) = api
        .post("/api/v1/workflows/validate", python_echo("another"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        checked["problems"][0]["rule"], "code_nodes_off",
        "{checked}"
    );
    // Allowed again: the same workflow runs.
    set_code_nodes(&api, "allow").await;
    let detail = run(&api, &echo, json!({ "n": 2 })).await;
    assert_eq!(output(&detail), json!({ "n": 2 }));
    let (status, _) = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/settings/workflows",
            Some(json!({ "workflowCodeNodes": "sometimes" })),
        )
        .await;
    assert_eq!(status, 400);
}
