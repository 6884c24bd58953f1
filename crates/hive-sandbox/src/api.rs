//! The backend-neutral API: a backend starts sandboxes, a sandbox is stopped, paused, measured
//! and waited for. Nothing here assumes processes, pids or cgroups, so a microVM backend can
//! implement it as well.

use crate::spec::{SandboxId, SandboxSpec};
use async_trait::async_trait;
use std::time::Duration;
use tokio::io::AsyncRead;

/// A readable stream of the sandbox's output (its stdout or stderr).
pub type OutputStream = Box<dyn AsyncRead + Send + Unpin>;

/// Why a sandbox call failed. Messages say what failed and why; they never hold environment
/// values.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    #[error("this host cannot run the sandbox: {0}")]
    Unsupported(String),
    #[error("a sandbox named {0} is already running")]
    AlreadyRunning(SandboxId),
    #[error("the sandbox is no longer running")]
    NotRunning,
    #[error("{what}: {source}")]
    System {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl SandboxError {
    pub(crate) fn system(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::System {
            what: what.into(),
            source,
        }
    }
}

/// How one kind of limit is enforced on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitEnforcement {
    /// By the kernel for the whole sandbox together (cgroups, or a VM's own size).
    WholeSandbox,
    /// Per process only (rlimits): weaker, the sandbox's processes each get the allowance.
    PerProcess,
    /// Not enforced on this host.
    None,
}

/// What a backend can do on this host, found out when it is created. Hive shows it to
/// operators and refuses to place agents whose policy needs more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendCapabilities {
    pub backend: &'static str,
    pub memory_limit: LimitEnforcement,
    pub cpu_limit: LimitEnforcement,
    pub process_limit: LimitEnforcement,
    /// Pause and resume ([`Sandbox::pause`]).
    pub can_pause: bool,
    /// Whether [`SandboxStats`] is measured for the whole sandbox.
    pub whole_sandbox_stats: bool,
    /// The Landlock ABI applied inside the sandbox, if the kernel has Landlock.
    pub landlock_abi: Option<u8>,
    /// Human-readable notes on what is weaker than the full design, and why.
    pub notes: Vec<String>,
}

/// Why a sandbox ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The program ended by itself with this exit code.
    Exited(i32),
    /// The program was killed by this signal (not by the memory limit, not by a stop).
    Signaled(i32),
    /// The kernel killed a process of the sandbox for passing the memory limit.
    OutOfMemory,
    /// The program passed its CPU time allowance (backends that enforce it per process).
    CpuTimeLimit,
    /// Hive stopped it: `forced` is false when it ended within the grace period of
    /// [`Sandbox::stop`], true when it had to be killed.
    Stopped { forced: bool },
}

/// The end of a sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxExit {
    pub reason: ExitReason,
    /// Peak memory of the whole sandbox, where the backend measures it.
    pub peak_memory_bytes: Option<u64>,
    /// CPU time used by the whole sandbox, where the backend measures it.
    pub cpu_time: Option<Duration>,
}

/// A measurement of a running sandbox; `None` where the backend cannot measure it here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxStats {
    /// CPU time used since the start (all processes).
    pub cpu_time: Option<Duration>,
    /// Time the sandbox was held back by its CPU limit.
    pub cpu_throttled: Option<Duration>,
    pub memory_bytes: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
    /// Times the memory limit was hit (allocations refused or reclaimed).
    pub memory_limit_hits: Option<u64>,
    pub processes: Option<u64>,
    pub paused: bool,
}

/// Starts sandboxes of one kind.
#[async_trait]
pub trait SandboxBackend: Send + Sync {
    /// What this backend enforces on this host.
    fn capabilities(&self) -> &BackendCapabilities;

    /// Starts the spec's command in a new sandbox. The sandbox runs until it ends by itself or
    /// is stopped; dropping the handle does not stop it (call [`Sandbox::kill`]).
    async fn start(&self, spec: SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError>;

    /// Ends and removes what sandboxes of this backend left behind when a previous Hive process
    /// died without stopping them. Call once at start, before any [`SandboxBackend::start`].
    /// Returns the ids it removed.
    async fn reap_leftovers(&self) -> Result<Vec<String>, SandboxError>;

    /// Gives back what the backend holds on the host for its sandboxes (its cgroup parents,
    /// say), once every sandbox has ended: Hive is stopping. Nothing to give back by default.
    async fn release(&self) {}
}

/// One running (or ended) sandbox.
#[async_trait]
pub trait Sandbox: Send + Sync {
    fn id(&self) -> &SandboxId;

    /// Asks the program to end (SIGTERM on the process backend, an ACPI shutdown on a VM),
    /// waits up to `grace`, then kills everything in the sandbox. Returns once nothing of the
    /// sandbox is left and its resources are released.
    async fn stop(&self, grace: Duration) -> Result<SandboxExit, SandboxError>;

    /// Kills everything in the sandbox at once and releases it.
    async fn kill(&self) -> Result<SandboxExit, SandboxError>;

    /// Freezes every process of the sandbox; it makes no progress until [`Sandbox::resume`].
    async fn pause(&self) -> Result<(), SandboxError>;

    async fn resume(&self) -> Result<(), SandboxError>;

    async fn stats(&self) -> Result<SandboxStats, SandboxError>;

    /// Waits until the sandbox has ended and is released.
    async fn wait(&self) -> Result<SandboxExit, SandboxError>;

    /// The program's standard output, once (later calls return `None`).
    fn take_stdout(&self) -> Option<OutputStream>;

    /// The program's standard error, once.
    fn take_stderr(&self) -> Option<OutputStream>;
}
