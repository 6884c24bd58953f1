//! Hosted agents' runtime: a bundle's program started in a sandbox, with its secrets in its
//! environment, its only way out through the agents' proxy (its manifest's hosts merged with
//! the admins' allowlist), and the channel Hive calls it on. Ready when its agent card answers
//! on the channel; when it does not within the manifest's start timeout, the error carries the
//! tail of what it printed.
//!
//! The registry, the bundles' versions, the lifecycle API and the gateway's use of it build on
//! this (issue 22); this module knows nothing of callers or stores.
//!
//! [`HostedRuntime::launch`] is the part every sandboxed program shares (workflows' code nodes
//! use it too): the command resolved in the sandbox's `/usr`, the limits, the environment, and
//! the agents' proxy on a socket of the run's own with the program's hosts, Hive's protected
//! addresses refused and each refusal audited.

use super::bundle::Manifest;
use super::channel::{CHANNEL_URL, ChannelTransport};
use super::logs::{self, LogRing, LogStream};
use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal};
use crate::kernel::caller::RequestMeta;
use hive_a2a::client::fetch_agent_card;
use hive_a2a::jsonrpc::Limits;
use hive_egress::{Allowlist, EgressClient, EgressProxy, ProxyCounts, ProxyStats};
use hive_egress::{ProxyEvents, RefusalReason};
use hive_proto::SharedClock;
use hive_sandbox::{
    CHANNEL_MOUNT, ResourceLimits, Sandbox, SandboxBackend, SandboxError, SandboxExit, SandboxId,
    SandboxSpec,
};
use hive_store::AuditOutcome;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The variable holding the path of the socket the agent listens on.
pub const SANDBOX_ENV_AGENT_SOCKET: &str = "HIVE_AGENT_SOCKET";
/// The socket's name in the channel directory.
const AGENT_SOCKET: &str = "agent.sock";
/// How much of the agent's latest output a failed start carries.
const OUTPUT_TAIL_BYTES: usize = 8 * 1024;
/// Lines of output read back for a failed start.
const OUTPUT_TAIL_LINES: usize = 200;
/// How long a failed start waits for the rest of the agent's output.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);
/// How often the card is asked for while the agent starts.
const READY_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum HostedError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The agent's card did not answer on the channel in time, or the program ended first.
    /// `output` (its last 8 KiB) is for its owner only: an agent may print its own secrets, so
    /// it is not part of the message that logs see.
    #[error("the agent did not become ready: {why}")]
    NotReady { why: String, output: String },
    #[error("preparing the agent's run directory: {0}")]
    Io(String),
    /// The manifest's program is neither in the bundle nor in the sandbox's `/usr`.
    #[error("the program {0:?} is not in the bundle or in /usr/bin")]
    NoProgram(String),
}

/// Where the sandbox finds programs named without a path (the host's `/usr`, read-only).
const PROGRAM_DIRS: [&str; 2] = ["/usr/bin", "/usr/sbin"];

/// The command with its program as an absolute path inside the sandbox: a path with a `/` is
/// the bundle's (relative to `/agent`), a bare name is looked up in [`PROGRAM_DIRS`].
fn sandbox_command(command: &[String], bundle_dir: &Path) -> Result<Vec<String>, HostedError> {
    let Some((program, args)) = command.split_first() else {
        return Err(HostedError::NoProgram(String::new()));
    };
    let resolved = if program.starts_with('/') {
        program.clone()
    } else if program.contains('/') {
        let inside = Path::new(program.trim_start_matches("./"));
        if !bundle_dir.join(inside).is_file() {
            return Err(HostedError::NoProgram(program.clone()));
        }
        format!("{}/{}", hive_sandbox::AGENT_MOUNT, inside.display())
    } else {
        PROGRAM_DIRS
            .iter()
            .map(|dir| format!("{dir}/{program}"))
            .find(|path| Path::new(path).is_file())
            .ok_or_else(|| HostedError::NoProgram(program.clone()))?
    };
    Ok(std::iter::once(resolved)
        .chain(args.iter().cloned())
        .collect())
}

/// Each refusal of an agent's proxy, audited as Hive's own outbound refusals are
/// (`egress.refused`, the origin as target), for the program's owner, naming what ran.
struct AuditedRefusals {
    auditor: Auditor,
    subject: RefusalSubject,
}

/// Whom a sandboxed program's refused requests are recorded for, and what the records name.
#[derive(Clone, Debug)]
pub struct RefusalSubject {
    /// The principal the records are for (the agent's owner, the run's principal).
    pub principal: Principal,
    /// The record's `feature` (`hosted_agent`, `workflow_code`).
    pub feature: &'static str,
    /// More of the record's detail (`agent`, or the run and the node).
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl ProxyEvents for AuditedRefusals {
    fn refused(&self, origin: &str, reason: RefusalReason) {
        metrics::counter!("hive_egress_refusals_total", "reason" => reason.as_str()).increment(1);
        let mut detail = self.subject.detail.clone();
        detail.insert("reason".into(), reason.as_str().into());
        detail.insert("feature".into(), self.subject.feature.into());
        let entry = AuditEvent {
            principal: self.subject.principal.clone(),
            action: AuditAction::EgressRefused,
            target: Some(origin.to_owned()),
            outcome: AuditOutcome::Denied,
            detail: serde_json::Value::Object(detail),
        };
        let auditor = self.auditor.clone();
        // The proxy answers at once; the record follows (a refusal stands either way).
        tokio::spawn(async move { auditor.record_refusal(entry, &RequestMeta::default()).await });
    }
}

/// The limits of a sandbox from the sizes a manifest or a node states: memory and scratch in
/// MiB, CPU in cores (bounded by their checks: 0.05 to 8), processes at once.
pub fn sandbox_limits(memory_mb: u32, cpu: f64, processes: u32, disk_mb: u32) -> ResourceLimits {
    ResourceLimits {
        memory_bytes: u64::from(memory_mb) << 20,
        cpu_millicores: (cpu * 1000.0).round() as u32,
        max_processes: processes,
        scratch_bytes: u64::from(disk_mb) << 20,
        ..ResourceLimits::default()
    }
}

/// What [`HostedRuntime::launch`] starts: a program in a sandbox, its proxy beside it.
pub struct SandboxLaunch<'a> {
    /// The sandbox's name (`a-z`, `0-9`, `-`), unique among those running.
    pub id: &'a str,
    /// The program's files, mounted read-only at `/agent`.
    pub root: &'a Path,
    /// The program and its arguments: a path with a `/` is the root's, a bare name is looked up
    /// in the sandbox's `/usr/bin` and `/usr/sbin`.
    pub command: &'a [String],
    pub limits: ResourceLimits,
    /// Its environment beside `PATH=/usr/bin:/bin` (values may be secrets).
    pub env: Vec<(String, String)>,
    /// A directory of this run's own: its channel and proxy socket go there.
    pub run_dir: &'a Path,
    /// The hosts it may reach through the proxy, beside the admins' allowlist.
    pub hosts: Allowlist,
    /// Whom its proxy's refusals are recorded for.
    pub refusals: RefusalSubject,
}

/// A program started by [`HostedRuntime::launch`]: its sandbox, its proxy, its channel.
pub struct Launched {
    pub sandbox: Box<dyn Sandbox>,
    /// The channel directory on the host (mounted at `/hive/channel`).
    pub channel: PathBuf,
    proxy_task: JoinHandle<()>,
    proxy_stats: Arc<ProxyStats>,
}

impl Launched {
    /// Ends its proxy (call once the sandbox has ended or was killed).
    pub fn end_proxy(&self) {
        self.proxy_task.abort();
    }

    /// Requests, refusals and bytes through its proxy so far.
    pub fn proxy_counts(&self) -> ProxyCounts {
        self.proxy_stats.snapshot()
    }
}

/// What to start.
pub struct HostedLaunch<'a> {
    /// The agent, and whom its refused requests are recorded for (its owner).
    pub agent: Uuid,
    pub owner: Principal,
    /// The sandbox's name (`a-z`, `0-9`, `-`).
    pub id: &'a str,
    /// The unpacked bundle, mounted read-only at `/agent`.
    pub bundle_dir: &'a Path,
    pub manifest: &'a Manifest,
    /// The manifest's secrets with their values, taken from the vault for this start only.
    pub secrets: Vec<(String, String)>,
    /// A directory of this run's own: its channel and proxy socket go there.
    pub run_dir: &'a Path,
    /// Where what it prints is kept (its secrets' values cut out).
    pub logs: Arc<LogRing>,
    /// The time its output lines are stamped with.
    pub clock: SharedClock,
}

/// Starts hosted agents (and any other sandboxed program: [`HostedRuntime::launch`]) on a
/// sandbox backend. Clones share the backend, so one host's sandboxes share its uids and
/// cgroups whoever starts them.
#[derive(Clone)]
pub struct HostedRuntime {
    backend: Arc<dyn SandboxBackend>,
    egress: EgressClient,
    auditor: Auditor,
    /// Addresses no agent reaches whatever the lists say (the database's, Redis's).
    protected: Arc<[SocketAddr]>,
    /// Set once what an earlier, crashed run left has been reaped: nothing starts before.
    reaped: Arc<tokio::sync::OnceCell<()>>,
}

impl HostedRuntime {
    pub fn new(
        backend: Arc<dyn SandboxBackend>,
        egress: EgressClient,
        auditor: Auditor,
        protected: Vec<SocketAddr>,
    ) -> Self {
        Self {
            backend,
            egress,
            auditor,
            protected: protected.into(),
            reaped: Arc::default(),
        }
    }

    /// What the sandbox backend can do on this host.
    pub fn capabilities(&self) -> &hive_sandbox::BackendCapabilities {
        self.backend.capabilities()
    }

    /// Kills and removes what sandboxes of an earlier, crashed run left (see
    /// [`SandboxBackend::reap_leftovers`]), once for all clones: the first call (or the first
    /// launch) reaps, later ones wait for it and return at once. Failures are logged.
    pub async fn reap_leftovers(&self) {
        self.reaped
            .get_or_init(|| async {
                match self.backend.reap_leftovers().await {
                    Ok(reaped) if !reaped.is_empty() => {
                        tracing::warn!(
                            count = reaped.len(),
                            "killed sandboxes an earlier run left"
                        );
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "reaping leftover sandboxes"),
                }
            })
            .await;
    }

    /// Starts `launch.command` in a new sandbox with its limits and environment, and its only
    /// way out, the agents' proxy, on `run_dir/proxy.sock` (its hosts, Hive's protected
    /// addresses refused, each refusal audited for `launch.refusals`). The channel directory
    /// `run_dir/channel` is made. Nothing runs if any of it is wrong.
    pub async fn launch(&self, launch: SandboxLaunch<'_>) -> Result<Launched, HostedError> {
        let io = |error: std::io::Error| HostedError::Io(error.kind().to_string());
        self.reap_leftovers().await;
        let channel = launch.run_dir.join("channel");
        let proxy_socket = launch.run_dir.join("proxy.sock");
        let mut spec = SandboxSpec::new(
            SandboxId::new(launch.id)?,
            launch.root.to_path_buf(),
            sandbox_command(launch.command, launch.root)?,
            channel.clone(),
        );
        spec.limits = launch.limits;
        spec.proxy_socket = Some(proxy_socket.clone());
        spec.env.set("PATH", "/usr/bin:/bin")?;
        for (name, value) in launch.env {
            spec.env.set(name, value)?;
        }

        std::fs::create_dir_all(&channel).map_err(io)?;
        let _ = std::fs::remove_file(&proxy_socket);
        // Made 0600 (Hive's umask); the backend hands it to the sandbox's uid alone.
        let listener = tokio::net::UnixListener::bind(&proxy_socket).map_err(io)?;
        let refusals = AuditedRefusals {
            auditor: self.auditor.clone(),
            subject: launch.refusals,
        };
        let proxy = EgressProxy::new(self.egress.clone(), launch.hosts)
            .with_protected_addresses(self.protected.iter().copied())
            .with_events(Arc::new(refusals));
        let proxy_stats = proxy.stats();
        let proxy_task = tokio::spawn(async move { proxy.serve(listener).await });
        match self.backend.start(spec).await {
            Ok(sandbox) => Ok(Launched {
                sandbox,
                channel,
                proxy_task,
                proxy_stats,
            }),
            Err(error) => {
                proxy_task.abort();
                Err(error.into())
            }
        }
    }

    /// Gives back what the backend holds on the host, once every agent has ended.
    pub async fn release(&self) {
        self.backend.release().await;
    }

    pub async fn start(&self, launch: HostedLaunch<'_>) -> Result<HostedAgent, HostedError> {
        let resources = launch.manifest.resources;
        let mut env = vec![(
            SANDBOX_ENV_AGENT_SOCKET.to_owned(),
            format!("{CHANNEL_MOUNT}/{AGENT_SOCKET}"),
        )];
        env.extend(launch.secrets.iter().cloned());
        let mut detail = serde_json::Map::new();
        detail.insert("agent".into(), format!("agent:{}", launch.agent).into());
        let Launched {
            sandbox,
            channel,
            proxy_task,
            proxy_stats,
        } = self
            .launch(SandboxLaunch {
                id: launch.id,
                root: launch.bundle_dir,
                command: &launch.manifest.command,
                limits: sandbox_limits(
                    resources.memory_mb,
                    resources.cpu,
                    resources.processes,
                    resources.disk_mb,
                ),
                env,
                run_dir: launch.run_dir,
                hosts: Allowlist::from_entries(launch.manifest.allowed_hosts.iter().cloned()),
                refusals: RefusalSubject {
                    principal: launch.owner.clone(),
                    feature: "hosted_agent",
                    detail,
                },
            })
            .await?;
        let readers: Vec<JoinHandle<()>> = [
            (sandbox.take_stdout(), LogStream::Stdout),
            (sandbox.take_stderr(), LogStream::Stderr),
        ]
        .into_iter()
        .filter_map(|(stream, kind)| Some((stream?, kind)))
        .map(|(stream, kind)| {
            let clock = Arc::clone(&launch.clock);
            let ring = Arc::clone(&launch.logs);
            tokio::spawn(async move {
                if let Err(error) = logs::pump(ring, kind, stream, move || clock.now()).await {
                    tracing::warn!(error = %error.kind(), "a hosted agent's output was not all kept");
                }
            })
        })
        .collect();
        let agent = HostedAgent {
            sandbox,
            socket: channel.join(AGENT_SOCKET),
            proxy_task,
            proxy_stats,
            logs: Arc::clone(&launch.logs),
        };
        let timeout = Duration::from_secs(u64::from(resources.start_timeout_seconds));
        match agent.until_ready(timeout).await {
            Ok(()) => Ok(agent),
            Err(why) => {
                let _ = agent.sandbox.kill().await;
                agent.proxy_task.abort();
                // Its pipes close with it: what it printed last is read before it is told.
                for reader in readers {
                    let _ = tokio::time::timeout(OUTPUT_DRAIN, reader).await;
                }
                let output = agent.output_tail().await;
                Err(HostedError::NotReady { why, output })
            }
        }
    }
}

/// The last [`OUTPUT_TAIL_BYTES`] of the ring's last lines, as text.
fn tail_text(logs: &LogRing) -> String {
    let mut text = String::new();
    for line in logs.tail(OUTPUT_TAIL_LINES).unwrap_or_default() {
        text.push_str(&line.text);
        text.push('\n');
    }
    let cut = text.len().saturating_sub(OUTPUT_TAIL_BYTES);
    let start = (cut..=text.len())
        .find(|at| text.is_char_boundary(*at))
        .unwrap_or(text.len());
    text.split_off(start)
}

/// A hosted agent that answered its card on the channel.
pub struct HostedAgent {
    sandbox: Box<dyn Sandbox>,
    socket: PathBuf,
    proxy_task: JoinHandle<()>,
    proxy_stats: Arc<ProxyStats>,
    logs: Arc<LogRing>,
}

impl HostedAgent {
    async fn until_ready(&self, timeout: Duration) -> Result<(), String> {
        let transport = self.transport();
        let card_url = format!("{CHANNEL_URL}.well-known/agent-card.json");
        let asking = async {
            loop {
                if self.socket.exists()
                    && fetch_agent_card(&transport, &card_url, &Limits::default())
                        .await
                        .is_ok()
                {
                    return Ok(());
                }
                tokio::time::sleep(READY_POLL).await;
            }
        };
        let ended = async {
            match self.sandbox.wait().await {
                Ok(exit) => Err(format!("the program ended first ({:?})", exit.reason)),
                Err(error) => Err(error.to_string()),
            }
        };
        tokio::select! {
            ready = asking => ready,
            ended = ended => ended,
            () = tokio::time::sleep(timeout) => Err(format!(
                "its card did not answer on the channel within {} s", timeout.as_secs()
            )),
        }
    }

    /// How Hive's A2A client reaches the agent.
    pub fn transport(&self) -> ChannelTransport {
        ChannelTransport::new(&self.socket)
    }

    /// The URL to give the A2A client with [`HostedAgent::transport`].
    pub fn url(&self) -> &'static str {
        CHANNEL_URL
    }

    pub fn sandbox(&self) -> &dyn Sandbox {
        self.sandbox.as_ref()
    }

    /// Requests, refusals and bytes through the agent's proxy so far.
    pub fn proxy_counts(&self) -> ProxyCounts {
        self.proxy_stats.snapshot()
    }

    /// The last few kilobytes the agent printed (standard output and error, interleaved, its
    /// secrets cut out).
    pub async fn output_tail(&self) -> String {
        let logs = Arc::clone(&self.logs);
        tokio::task::spawn_blocking(move || tail_text(&logs))
            .await
            .unwrap_or_default()
    }

    /// Stops the agent (its signal, `grace`, then everything killed) and its proxy.
    pub async fn stop(&self, grace: Duration) -> Result<SandboxExit, SandboxError> {
        let exit = self.sandbox.stop(grace).await;
        self.proxy_task.abort();
        exit
    }

    /// Kills the agent at once, and its proxy.
    pub async fn kill(&self) -> Result<SandboxExit, SandboxError> {
        let exit = self.sandbox.kill().await;
        self.proxy_task.abort();
        exit
    }

    /// Ends its proxy (the program ended by itself).
    pub fn end_proxy(&self) {
        self.proxy_task.abort();
    }
}
