//! Starting `hive` as a child process and watching what it prints.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use hive_testkit::capture;

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The secrets every replica of one deployment shares (each replica's data directory would
/// otherwise generate its own, and the second would refuse the database's keys).
pub const SHARED_SECRETS: [(&str, &str); 2] = [
    (
        "ENCRYPTION_KEY",
        "5a0f3c9e81d27b64a5c8f01e3d9b2a7c6e4f8d1b0a3c5e7f9d2b4a6c8e0f1d3b",
    ),
    ("AUTH_SECRET", "Vq3mX8rT1wZ6pK9sB4nL7dF2hJ5gC0yA"),
];

pub fn hive_command(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hive"));
    command
        .current_dir(dir)
        // Nothing from the test's environment leaks into the process under test.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // These tests sign in with a password alone (`vars` may set another policy).
        .env("HIVE_MFA_REQUIRED", "none")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in vars {
        capture::config_variable(name, value);
        command.env(name, value);
    }
    command
}

/// Keeps what a `hive` process printed for the secret-leak check.
fn keep_output(stdout: &str, stderr: &str) {
    capture::append("process", stdout);
    capture::append("process", stderr);
}

/// Runs `hive <args>` to its end.
pub async fn run_to_exit(
    dir: &Path,
    args: &[&str],
    vars: &[(&str, &str)],
) -> (ExitStatus, String, String) {
    let output = tokio::time::timeout(START_TIMEOUT, hive_command(dir, vars).args(args).output())
        .await
        .expect("hive exits")
        .expect("hive runs");
    finished(output)
}

fn finished(output: std::process::Output) -> (ExitStatus, String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    keep_output(&stdout, &stderr);
    (output.status, stdout, stderr)
}

/// Runs `hive <args>` to its end with `input` on its standard input.
pub async fn run_with_input(
    dir: &Path,
    args: &[&str],
    vars: &[(&str, &str)],
    input: &str,
) -> (ExitStatus, String, String) {
    use tokio::io::AsyncWriteExt;
    // What a test types in (a password) must not come back out.
    capture::canary(input.trim());
    let mut child = hive_command(dir, vars)
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("hive runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(START_TIMEOUT, child.wait_with_output())
        .await
        .expect("hive exits")
        .expect("hive runs");
    finished(output)
}

/// A running `hive serve`.
pub struct HiveProcess {
    child: Child,
    pub base_url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<String>>,
    lines: watch::Sender<u64>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            capture::append("process", &line);
            let mut text = into.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
            lines.send_modify(|n| *n += 1);
        }
    })
}

impl HiveProcess {
    /// Starts `hive serve` on a free loopback port and waits until it says where it listens.
    pub async fn start(dir: &Path, vars: &[(&str, &str)]) -> Self {
        let mut all = vec![("HIVE_LISTEN", "127.0.0.1:0")];
        all.extend_from_slice(vars);
        let mut child = hive_command(dir, &all)
            .arg("serve")
            .spawn()
            .expect("spawn hive");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = watch::channel(0);
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone(), tx.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone(), tx),
        ];
        let find = async {
            loop {
                if let Some(url) = listening_url(&stderr.lock().unwrap()) {
                    return url;
                }
                if rx.changed().await.is_err() {
                    panic!("hive exited before listening:\n{}", stderr.lock().unwrap());
                }
            }
        };
        let base_url = tokio::time::timeout(START_TIMEOUT, find)
            .await
            .unwrap_or_else(|_| panic!("hive did not start:\n{}", stderr.lock().unwrap()));
        Self {
            child,
            base_url,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM, as an orchestrator does.
    pub async fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGKILL (no shutdown, no flush) and waits until the process is gone.
    pub async fn kill(&mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.pid().to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let status = self.wait().await;
        assert!(!status.success(), "killed: {status:?}");
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> ExitStatus {
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("hive exits")
            .unwrap()
    }

    /// SIGTERM, then the exit status and everything it printed.
    pub async fn stop(mut self) -> (ExitStatus, String, String) {
        self.terminate().await;
        let status = self.wait().await;
        // The pipes close at exit; the readers end once they have read everything.
        for reader in self.readers.drain(..) {
            reader.await.unwrap();
        }
        (status, self.stdout(), self.stderr())
    }
}

fn listening_url(stderr: &str) -> Option<String> {
    let rest = stderr.split("Hive is listening on ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

/// The `name=value` of the session cookie a login answer sets.
pub fn session_cookie(response: &reqwest::Response) -> String {
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Polls `probe` every 100 ms until it gives a value (another process doing its part), and fails
/// the test after `deadline`.
pub async fn poll_until<T>(
    what: &str,
    deadline: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let waiting = async {
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(deadline, waiting)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {deadline:?}"))
}

/// The node id a `hive serve` logged at start (JSON logs).
pub fn node_id(stdout: &str) -> String {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|line| line["node_id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no node id logged:\n{stdout}"))
}

/// `VmRSS` of a process, in KiB.
pub fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in:\n{status}"))
}
