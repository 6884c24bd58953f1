//! Code nodes: a step's source run by `python3` or `node` in the sandbox hosted agents run in
//! (the same runtime, backend, uids and cgroups: [`HostedRuntime::launch`]), never in Hive's
//! process.
//!
//! Each step gets a fresh directory under `<data dir>/sandboxes/code/`: the source
//! (`main.py` or `main.js`) and the step's scope (`input.json`) in `src/`, mounted read-only at
//! `/agent`, and `run/` for the proxy's socket. The program reads the scope as JSON on its
//! standard input and prints its result as JSON on the last line of its standard output
//! (docs/workflows.md, "Code nodes"). Its limits are the node's memory and CPU, a process cap,
//! a scratch `/tmp` and the step's timeout, past which the whole sandbox is killed; its only
//! way out is the agents' proxy with the node's `network` hosts. The directory is removed when
//! the step ends, and the sandbox killed if the step is dropped (a run cancelled, a lease lost).

use super::definition::{CodeLanguage, CodeNode};
use super::nodes::{Failure, Outcome, StepInput};
use crate::agents::hosted::{
    HostedError, HostedRuntime, Launched, RefusalSubject, SandboxLaunch, sandbox_limits,
};
use hive_egress::{Allowlist, AllowlistEntry};
use hive_sandbox::{ExitReason, OutputStream};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

/// The most a code step may print on its standard output: past it the sandbox is killed.
pub const MAX_STDOUT_BYTES: usize = 1024 * 1024;
/// How much of the end of its standard error a failure quotes.
const STDERR_TAIL_BYTES: usize = 1024;
/// Processes and threads a code step may have at once.
pub const CODE_PROCESSES: u32 = 64;
/// The scratch space (`/tmp`) of a code step, in MiB (it counts against the memory limit).
pub const CODE_SCRATCH_MB: u32 = 16;
/// The interpreters, on the host's `/usr` (bound read-only into the sandbox).
pub const PYTHON: &str = "/usr/bin/python3";
pub const NODE: &str = "/usr/bin/node";
/// The step's scope, inside the sandbox: the program's standard input.
const INPUT_INSIDE: &str = "/agent/input.json";

/// Runs code steps on this replica's sandbox runtime, or says why it cannot.
pub struct CodeRunner {
    runtime: Result<HostedRuntime, String>,
    /// `<data dir>/sandboxes/code`: each step's directory is made in it.
    dir: PathBuf,
}

impl std::fmt::Debug for CodeRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeRunner")
            .field("dir", &self.dir)
            .field("available", &self.runtime.is_ok())
            .finish()
    }
}

impl CodeRunner {
    /// `sandboxes`: the hosted agents' directory (`<data dir>/sandboxes`, absolute).
    pub fn new(runtime: Result<HostedRuntime, String>, sandboxes: &Path) -> Self {
        Self {
            runtime,
            dir: sandboxes.join("code"),
        }
    }

    /// A runner that cannot run anything (tests, processes without a sandbox).
    pub fn unavailable(why: impl Into<String>) -> Self {
        Self {
            runtime: Err(why.into()),
            dir: PathBuf::new(),
        }
    }

    /// Runs the node's source with `env` (its rendered `env`, secrets included) and the step's
    /// scope on its standard input, killed at `timeout`.
    pub async fn run(
        &self,
        node: &CodeNode,
        input: &StepInput<'_>,
        env: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<Outcome, Failure> {
        let runtime = self.runtime.as_ref().map_err(|why| {
            Failure::transient(format!("code nodes cannot run on this server: {why}"))
        })?;
        let (interpreter, file) = match node.language {
            CodeLanguage::Python => (PYTHON, "main.py"),
            CodeLanguage::JavaScript => (NODE, "main.js"),
        };
        if !Path::new(interpreter).is_file() {
            return Err(Failure::permanent(format!(
                "{} code cannot run on this server: {interpreter} is not installed",
                node.language.as_str()
            )));
        }
        let scope = serde_json::to_vec(input.scope)
            .map_err(|error| Failure::permanent(format!("the step's scope: {error}")))?;
        let id = format!("wf-{}", Uuid::new_v4().simple());
        let step_dir = self.dir.join(&id);
        let prepared = {
            let (dir, step_dir) = (self.dir.clone(), step_dir.clone());
            let source = node.source.clone();
            tokio::task::spawn_blocking(move || prepare(&dir, &step_dir, file, &source, &scope))
                .await
                .map_err(|_| std::io::Error::other("the preparation was interrupted"))
                .and_then(|result| result)
        };
        if let Err(error) = prepared {
            remove_later(step_dir);
            return Err(Failure::transient(format!(
                "the code's directory could not be prepared ({})",
                error.kind()
            )));
        }
        // The node's own variables last: they may replace LANG, not the others (refused when
        // the node was saved).
        let env: Vec<(String, String)> = [
            ("HOME".to_owned(), "/tmp".to_owned()),
            ("TMPDIR".to_owned(), "/tmp".to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ]
        .into_iter()
        .chain(env)
        .collect();
        // The program's standard input is the scope: the shell opens it and becomes the
        // interpreter (no user data on the command line).
        let command: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            format!("exec \"$0\" \"$1\" < {INPUT_INSIDE}"),
            interpreter.into(),
            format!("/agent/{file}"),
        ];
        let mut detail = serde_json::Map::new();
        detail.insert(
            "workflowRun".into(),
            format!("workflow_run:{}", input.run_id).into(),
        );
        detail.insert("node".into(), input.step_key.into());
        let src = step_dir.join("src");
        let run_dir = step_dir.join("run");
        let launched = runtime
            .launch(SandboxLaunch {
                id: &id,
                root: &src,
                command: &command,
                limits: sandbox_limits(node.memory_mb, node.cpu, CODE_PROCESSES, CODE_SCRATCH_MB),
                env,
                run_dir: &run_dir,
                hosts: hosts_of(&node.network),
                refusals: RefusalSubject {
                    principal: input.caller.principal(),
                    feature: "workflow_code",
                    detail,
                },
            })
            .await;
        let launched = match launched {
            Ok(launched) => launched,
            Err(error) => {
                remove_later(step_dir);
                return Err(start_failure(&error));
            }
        };
        let mut running = Running {
            launched: Some(launched),
            step_dir,
        };
        let ended = running.follow(timeout).await;
        running.finish().await;
        outcome(ended, node, timeout)
    }
}

/// The node's hosts as the proxy's allowlist (each was checked as a host name when saved).
fn hosts_of(network: &[String]) -> Allowlist {
    Allowlist::from_entries(
        network
            .iter()
            .filter_map(|host| host.parse::<AllowlistEntry>().ok()),
    )
}

fn start_failure(error: &HostedError) -> Failure {
    match error {
        HostedError::Sandbox(error) => {
            Failure::transient(format!("the code's sandbox did not start: {error}"))
        }
        other => Failure::transient(format!("the code's sandbox did not start: {other}")),
    }
}

/// The step's directory: `src/` (the source and the scope, readable by the sandbox's uid) and
/// `run/`; every directory from the data directory down is traversable (0711), not listable.
fn prepare(
    dir: &Path,
    step_dir: &Path,
    file: &str,
    source: &str,
    scope: &[u8],
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let traversable = || std::fs::Permissions::from_mode(0o711);
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, traversable())?;
    if let Some(sandboxes) = dir.parent() {
        std::fs::set_permissions(sandboxes, traversable())?;
        if let Some(data_dir) = sandboxes.parent() {
            std::fs::set_permissions(data_dir, traversable())?;
        }
    }
    std::fs::create_dir(step_dir)?;
    std::fs::set_permissions(step_dir, traversable())?;
    let src = step_dir.join("src");
    std::fs::create_dir(&src)?;
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755))?;
    for (name, bytes) in [(file, source.as_bytes()), ("input.json", scope)] {
        let path = src.join(name);
        std::fs::write(&path, bytes)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }
    let run = step_dir.join("run");
    std::fs::create_dir(&run)?;
    std::fs::set_permissions(&run, traversable())?;
    Ok(())
}

/// Removes a step's directory off the executor.
fn remove_later(step_dir: PathBuf) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(step_dir);
        });
    }
}

/// How the program's run ended, as far as the step is concerned.
enum Ended {
    Exited {
        reason: ExitReason,
        stdout: Vec<u8>,
        stderr: String,
    },
    TimeLimit {
        stderr: String,
    },
    TooMuchOutput,
    Lost(String),
}

/// A launched step: killed and its directory removed if it is dropped before [`Self::finish`].
struct Running {
    launched: Option<Launched>,
    step_dir: PathBuf,
}

impl Running {
    fn launched(&self) -> Option<&Launched> {
        self.launched.as_ref()
    }

    /// Reads its output (standard output capped, the tail of standard error) until it ends or
    /// `timeout` passes; a sandbox past either limit is killed.
    async fn follow(&self, timeout: Duration) -> Ended {
        let Some(launched) = self.launched() else {
            return Ended::Lost("the sandbox is gone".into());
        };
        let sandbox = launched.sandbox.as_ref();
        let stderr = sandbox
            .take_stderr()
            .map(|stream| tokio::spawn(tail(stream)));
        let stdout = sandbox.take_stdout();
        let deadline = tokio::time::Instant::now() + timeout;
        let run = async {
            let printed = match stdout {
                Some(stream) => read_capped(stream, MAX_STDOUT_BYTES).await,
                None => Some(Vec::new()),
            };
            match printed {
                None => Err(()),
                Some(bytes) => Ok((bytes, sandbox.wait().await)),
            }
        };
        let result = tokio::time::timeout_at(deadline, run).await;
        let stopped = match &result {
            Ok(Ok(_)) => None,
            Ok(Err(())) | Err(_) => Some(sandbox.kill().await),
        };
        let stderr = match stderr {
            Some(task) => tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        };
        match result {
            Ok(Ok((stdout, Ok(exit)))) => Ended::Exited {
                reason: exit.reason,
                stdout,
                stderr,
            },
            Ok(Ok((_, Err(error)))) => Ended::Lost(error.to_string()),
            Ok(Err(())) => Ended::TooMuchOutput,
            Err(_) => match stopped {
                // Ended by its memory limit just as the time ran out: that is the reason.
                Some(Ok(exit)) if exit.reason == ExitReason::OutOfMemory => Ended::Exited {
                    reason: exit.reason,
                    stdout: Vec::new(),
                    stderr,
                },
                _ => Ended::TimeLimit { stderr },
            },
        }
    }

    /// Kills what may be left (nothing, when it ended by itself), ends its proxy and removes
    /// its directory.
    async fn finish(&mut self) {
        if let Some(launched) = self.launched.take() {
            let _ = launched.sandbox.kill().await;
            launched.end_proxy();
        }
        let step_dir = std::mem::take(&mut self.step_dir);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(step_dir)).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(launched) = self.launched.take() else {
            return;
        };
        let step_dir = std::mem::take(&mut self.step_dir);
        // The step was dropped mid-run (its run cancelled, its lease lost, Hive stopping):
        // nothing of it may outlive it.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = launched.sandbox.kill().await;
                launched.end_proxy();
                let _ =
                    tokio::task::spawn_blocking(move || std::fs::remove_dir_all(step_dir)).await;
            });
        }
    }
}

/// Everything `stream` gives up to `cap` bytes; `None` past it.
async fn read_capped(mut stream: OutputStream, cap: usize) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Some(bytes),
            Ok(n) => {
                if bytes.len() + n > cap {
                    return None;
                }
                bytes.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// The last [`STDERR_TAIL_BYTES`] of `stream`, read to its end, as text.
async fn tail(mut stream: OutputStream) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > 2 * STDERR_TAIL_BYTES {
                    kept.drain(..kept.len() - STDERR_TAIL_BYTES);
                }
            }
        }
    }
    let start = kept.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&kept[start..]).trim().to_owned()
}

/// The message, and the end of what the program printed on its standard error, if anything.
fn with_stderr(message: String, stderr: &str) -> String {
    if stderr.is_empty() {
        message
    } else {
        // Control characters (a terminal's escapes) are not kept.
        let shown: String = stderr
            .chars()
            .map(|c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    '\u{fffd}'
                } else {
                    c
                }
            })
            .collect();
        format!("{message}; its standard error ended with: {shown}")
    }
}

fn outcome(ended: Ended, node: &CodeNode, timeout: Duration) -> Result<Outcome, Failure> {
    match ended {
        Ended::Exited {
            reason: ExitReason::Exited(0),
            stdout,
            stderr,
        } => result_of(&stdout, &stderr),
        Ended::Exited {
            reason: ExitReason::Exited(code),
            stderr,
            ..
        } => Err(Failure::transient(with_stderr(
            format!("the code exited with status {code}"),
            &stderr,
        ))),
        Ended::Exited {
            reason: ExitReason::OutOfMemory,
            stderr,
            ..
        } => Err(Failure::permanent(with_stderr(
            format!(
                "the code passed its memory limit of {} MiB and was killed",
                node.memory_mb
            ),
            &stderr,
        ))),
        Ended::Exited {
            reason: ExitReason::Signaled(signal),
            stderr,
            ..
        } => Err(Failure::transient(with_stderr(
            format!("the code was killed by signal {signal}"),
            &stderr,
        ))),
        Ended::Exited {
            reason: ExitReason::CpuTimeLimit,
            stderr,
            ..
        } => Err(Failure::transient(with_stderr(
            "the code passed its CPU time limit and was killed".to_owned(),
            &stderr,
        ))),
        Ended::Exited {
            reason: ExitReason::Stopped { .. },
            ..
        } => Err(Failure::transient("the code was stopped")),
        Ended::TimeLimit { stderr } => Err(Failure::transient(with_stderr(
            format!(
                "the code passed its time limit of {} s and was killed",
                timeout.as_secs()
            ),
            &stderr,
        ))),
        Ended::TooMuchOutput => Err(Failure::permanent(format!(
            "the code printed more than {MAX_STDOUT_BYTES} bytes and was killed"
        ))),
        Ended::Lost(why) => Err(Failure::transient(format!(
            "the code's sandbox was lost: {why}"
        ))),
    }
}

/// The JSON value on the last non-empty line of what the program printed.
fn result_of(stdout: &[u8], stderr: &str) -> Result<Outcome, Failure> {
    let text = String::from_utf8_lossy(stdout);
    let Some(last) = text.lines().rev().find(|line| !line.trim().is_empty()) else {
        return Err(Failure::permanent(with_stderr(
            "the code printed nothing: its result is one JSON value on its last line of output"
                .to_owned(),
            stderr,
        )));
    };
    match serde_json::from_str::<Value>(last.trim()) {
        Ok(output) => Ok(Outcome::Done {
            output,
            branch: None,
        }),
        Err(_) => Err(Failure::permanent(format!(
            "the code's last line of output is not JSON: {}",
            crate::agents::llm::cap_chars(last.trim().to_owned(), 200)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_is_the_last_line_that_is_not_blank() {
        let Ok(Outcome::Done { output, .. }) = result_of(b"working...\n{\"a\": 1}\n\n", "") else {
            panic!("no result");
        };
        assert_eq!(output, serde_json::json!({"a": 1}));
        let error = result_of(b"{\"a\": 1}\nnot json\n", "").unwrap_err();
        assert!(error.message.contains("not JSON"), "{}", error.message);
        assert!(!error.retryable);
        let error = result_of(b"", "Traceback").unwrap_err();
        assert!(
            error.message.contains("printed nothing"),
            "{}",
            error.message
        );
        assert!(error.message.contains("Traceback"), "{}", error.message);
    }

    #[test]
    fn every_end_names_its_limit() {
        let node = CodeNode {
            language: CodeLanguage::Python,
            source: "print(1)".into(),
            env: Default::default(),
            network: Vec::new(),
            memory_mb: 64,
            cpu: 0.5,
        };
        let limit = Duration::from_secs(2);
        let oom = outcome(
            Ended::Exited {
                reason: ExitReason::OutOfMemory,
                stdout: Vec::new(),
                stderr: String::new(),
            },
            &node,
            limit,
        )
        .unwrap_err();
        assert!(
            oom.message.contains("memory limit of 64 MiB"),
            "{}",
            oom.message
        );
        let slow = outcome(
            Ended::TimeLimit {
                stderr: String::new(),
            },
            &node,
            limit,
        )
        .unwrap_err();
        assert!(
            slow.message.contains("time limit of 2 s"),
            "{}",
            slow.message
        );
        let failed = outcome(
            Ended::Exited {
                reason: ExitReason::Exited(3),
                stdout: Vec::new(),
                stderr: "boom".into(),
            },
            &node,
            limit,
        )
        .unwrap_err();
        assert!(
            failed.message.contains("status 3") && failed.message.ends_with("boom"),
            "{}",
            failed.message
        );
    }
}
