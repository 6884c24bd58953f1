//! The process backend: the agent runs as ordinary Linux processes, walled in by
//!
//! - bubblewrap: fresh user, PID, mount, network, IPC, UTS and cgroup namespaces, a root of
//!   nothing but a read-only `/usr`, its own `/proc`, a minimal `/dev`, a size-capped `/tmp`,
//!   the agent's files read-only, the channel directory, the proxy socket if any, and the
//!   host's public CA certificates (`/etc/ssl/certs`, read-only) if it has them; no
//!   capabilities, no further user namespaces, a new session, killed when Hive dies;
//! - the `hive-sandbox-init` program inside, which applies Landlock and a seccomp filter
//!   ([`confine`]) before it runs the agent;
//! - a host uid of its own per sandbox (from [`ProcessBackendConfig::host_uids`], never root),
//!   so that even a process that got out of every namespace is a nobody on the host;
//! - cgroup v1 groups for memory, CPU, processes and freezing, or rlimits where cgroups cannot
//!   be written.
//!
//! The launch: Hive starts `hive-sandbox-init gate` as the sandbox's uid with exactly the
//! spec's environment; puts it into the sandbox's cgroups and sets its rlimits; then releases
//! it, and it becomes bubblewrap. Every process of the sandbox is therefore born inside the
//! cgroups.

mod bwrap;
mod cgroup;
pub mod confine;
mod held;
mod procfs;
mod reach;

use crate::api::{
    BackendCapabilities, ExitReason, LimitEnforcement, OutputStream, Sandbox, SandboxBackend,
    SandboxError, SandboxExit, SandboxStats,
};
use crate::spec::{SandboxId, SandboxSpec};
use async_trait::async_trait;
use cgroup::{CgroupLayout, SandboxCgroup};
use held::{Held, signal_listed};
use rustix::process::Signal;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::watch;

/// How long the backend waits for the kernel to finish what it asked (a freeze to settle, a
/// killed sandbox's processes to be gone) before it reports a failure.
const SETTLE_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How the process backend is set up on this host.
#[derive(Clone, Debug)]
pub struct ProcessBackendConfig {
    /// bubblewrap (Debian's `bubblewrap` package: `/usr/bin/bwrap`).
    pub bwrap: PathBuf,
    /// The sandbox's init program: the `hive` binary (with `init_args` `["sandbox-init"]`), or
    /// this crate's `hive-sandbox-init`.
    pub init_program: PathBuf,
    /// What comes before the init program's mode on its command line.
    pub init_args: Vec<String>,
    /// Where the cgroup v1 controllers are mounted.
    pub cgroup_root: PathBuf,
    /// The Hive-owned group under each controller that holds the sandboxes' groups; whatever
    /// is under it belongs to this backend and is removed by [`SandboxBackend::reap_leftovers`].
    pub cgroup_parent: String,
    /// Host uids (and gids, the same numbers) given to sandboxes, one each while it runs. They
    /// need no account; no other process of the host may use them: leftovers are found by them.
    pub host_uids: Range<u32>,
    /// Refuse to start sandboxes when the kernel does not enforce Landlock.
    pub require_landlock: bool,
}

impl ProcessBackendConfig {
    /// Debian's bubblewrap, cgroups at `/sys/fs/cgroup`, the parent group `hive`, and 65,536
    /// uids from 1,610,000,000 (far above any account's).
    pub fn new(init_program: impl Into<PathBuf>) -> Self {
        Self {
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            init_program: init_program.into(),
            init_args: Vec::new(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cgroup_parent: "hive".into(),
            host_uids: 1_610_000_000..1_610_065_536,
            require_landlock: false,
        }
    }
}

/// The uid inside the sandbox (mapped to the sandbox's host uid).
const INSIDE_UID: u32 = 1000;

/// The uids of the running sandboxes, shared by the backend and its sandboxes.
#[derive(Default)]
struct Running {
    by_id: HashMap<SandboxId, u32>,
}

/// The process backend. See the module documentation.
pub struct ProcessBackend {
    config: ProcessBackendConfig,
    capabilities: BackendCapabilities,
    cgroups: Option<CgroupLayout>,
    /// Whether Hive can switch to the sandboxes' uids (it runs as root).
    switch_uid: bool,
    landlock_abi: u8,
    running: Arc<Mutex<Running>>,
}

impl ProcessBackend {
    /// Checks the host and finds out what it enforces (see [`SandboxBackend::capabilities`]).
    pub async fn new(config: ProcessBackendConfig) -> Result<Self, SandboxError> {
        for (what, path) in [
            ("bubblewrap", &config.bwrap),
            ("the init program", &config.init_program),
        ] {
            if !path.is_file() {
                return Err(SandboxError::Unsupported(format!(
                    "{what} is not at {}",
                    path.display()
                )));
            }
        }
        if config.host_uids.is_empty() || config.host_uids.start == 0 {
            return Err(SandboxError::InvalidSpec(
                "the sandboxes' host uids are a non-empty range above 0".into(),
            ));
        }
        SandboxId::new(config.cgroup_parent.clone()).map_err(|_| {
            SandboxError::InvalidSpec("the cgroup parent is a name of a-z, 0-9 and '-'".into())
        })?;
        let mut notes = Vec::new();
        let switch_uid = rustix::process::geteuid().is_root();
        if !switch_uid {
            notes.push(
                "Hive does not run as root: sandboxes run as Hive's own uid, not one of their own"
                    .to_string(),
            );
        }
        let layout = CgroupLayout {
            root: config.cgroup_root.clone(),
            parent: config.cgroup_parent.clone(),
        };
        let cgroups = match layout.prepare() {
            Ok(()) => Some(layout),
            Err(why) => {
                notes.push(format!(
                    "cgroups cannot be used ({why}): memory and processes are limited per \
                     process by rlimits, CPU share is not limited, pause and whole-sandbox \
                     stats are unavailable"
                ));
                None
            }
        };
        let landlock_abi = probe_landlock(&config).await;
        if landlock_abi == 0 {
            if config.require_landlock {
                return Err(SandboxError::Unsupported(
                    "Landlock is required but this kernel does not enforce it".into(),
                ));
            }
            notes.push("this kernel has no Landlock: paths are confined by mounts alone".into());
        }
        let (whole, per_process) = (LimitEnforcement::WholeSandbox, LimitEnforcement::PerProcess);
        let capabilities = BackendCapabilities {
            backend: "process",
            memory_limit: if cgroups.is_some() {
                whole
            } else {
                per_process
            },
            cpu_limit: if cgroups.is_some() {
                whole
            } else {
                LimitEnforcement::None
            },
            process_limit: if cgroups.is_some() {
                whole
            } else if switch_uid {
                // RLIMIT_NPROC counts the processes of a uid, and each sandbox has its own.
                whole
            } else {
                per_process
            },
            can_pause: cgroups.is_some(),
            whole_sandbox_stats: cgroups.is_some(),
            landlock_abi: (landlock_abi > 0).then_some(landlock_abi),
            notes,
        };
        Ok(Self {
            config,
            capabilities,
            cgroups,
            switch_uid,
            landlock_abi,
            running: Arc::new(Mutex::new(Running::default())),
        })
    }

    fn allocate_uid(&self, id: &SandboxId) -> Result<u32, SandboxError> {
        let mut running = self
            .running
            .lock()
            .map_err(|_| SandboxError::Unsupported("the sandbox table is poisoned".into()))?;
        if running.by_id.contains_key(id) {
            return Err(SandboxError::AlreadyRunning(id.clone()));
        }
        let taken: Vec<u32> = running.by_id.values().copied().collect();
        let uid = self
            .config
            .host_uids
            .clone()
            .find(|uid| !taken.contains(uid))
            .ok_or_else(|| SandboxError::Unsupported("every sandbox uid is in use".into()))?;
        running.by_id.insert(id.clone(), uid);
        Ok(uid)
    }
}

async fn probe_landlock(config: &ProcessBackendConfig) -> u8 {
    let output = Command::new(&config.init_program)
        .args(&config.init_args)
        .arg("probe-landlock")
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        _ => 0,
    }
}

fn release_uid(running: &Mutex<Running>, id: &SandboxId) {
    if let Ok(mut running) = running.lock() {
        running.by_id.remove(id);
    }
}

/// Says why the sandbox's uid cannot use a bind source, and what opens it.
fn unreachable(
    what: &str,
    path: &Path,
    uid: u32,
    need: reach::Need,
    why: reach::Unreachable,
) -> String {
    let path = path.display();
    match why {
        reach::Unreachable::Directory { dir, mode, class } => {
            let dir = dir.display();
            format!(
                "the sandbox's uid ({uid}) cannot reach {what} {path}: the directory {dir} \
                 (mode {mode:04o}) does not let it search; make it traversable: \
                 chmod {class}+x {dir}"
            )
        }
        reach::Unreachable::Source {
            path: resolved,
            mode,
            class,
        } => {
            let (verb, letters, resolved) = (need.verb(), need.letters(), resolved.display());
            format!(
                "the sandbox's uid ({uid}) cannot {verb} {what} {path} (mode {mode:04o}); \
                 allow it: chmod {class}+{letters} {resolved}"
            )
        }
        reach::Unreachable::Io { path: at, error } => {
            format!(
                "{what} {path} cannot be looked up at {}: {error}",
                at.display()
            )
        }
    }
}

/// Kills every process of the sandbox: frozen first (so none forks while being killed), killed,
/// thawed (a frozen process dies only once thawed); then waits until the group is empty.
async fn kill_group(cgroup: &SandboxCgroup) -> Result<(), SandboxError> {
    let frozen = cgroup.set_frozen(true).is_ok();
    if frozen {
        // Freezing is asynchronous; a process still running could fork between reads, so the
        // kill pass below repeats until the group is empty.
        let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
        while cgroup.freezer_state().as_deref() == Some("FREEZING")
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
    let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
    loop {
        // Each one held first, and signalled only if the group still holds it then.
        let pids = signal_listed(|| cgroup.pids(), Signal::KILL);
        if frozen {
            let _ = cgroup.set_frozen(false);
        }
        if pids.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(SandboxError::system(
                "killing the sandbox's processes",
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "processes remain in its cgroup",
                ),
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Removes a sandbox's cgroups once empty, retrying while the kernel finishes the last exits.
async fn remove_group(cgroup: &SandboxCgroup) -> Result<(), SandboxError> {
    let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
    loop {
        match cgroup.remove() {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => {
                let _ = kill_group(cgroup).await;
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
}

#[async_trait]
impl SandboxBackend for ProcessBackend {
    fn capabilities(&self) -> &BackendCapabilities {
        &self.capabilities
    }

    async fn start(&self, spec: SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError> {
        Ok(Box::new(self.start_process(spec).await?))
    }

    async fn release(&self) {
        if let Some(layout) = &self.cgroups {
            let layout = layout.clone();
            let _ = tokio::task::spawn_blocking(move || layout.release()).await;
        }
    }

    async fn reap_leftovers(&self) -> Result<Vec<String>, SandboxError> {
        self.reap().await
    }
}

impl ProcessBackend {
    /// [`SandboxBackend::start`], returning the process sandbox itself (its host pids and
    /// cgroups are visible to diagnostics and tests).
    pub async fn start_process(&self, spec: SandboxSpec) -> Result<ProcessSandbox, SandboxError> {
        spec.validate()?;
        if !spec.agent_root.is_dir() {
            return Err(SandboxError::InvalidSpec(format!(
                "the agent root {} is not a directory",
                spec.agent_root.display()
            )));
        }
        if !spec.channel_dir.is_dir() {
            return Err(SandboxError::InvalidSpec(format!(
                "the channel directory {} is not a directory",
                spec.channel_dir.display()
            )));
        }
        if let Some(proxy) = &spec.proxy_socket
            && !proxy.exists()
        {
            return Err(SandboxError::InvalidSpec(format!(
                "the proxy socket {} does not exist",
                proxy.display()
            )));
        }
        let ca_certs = bwrap::HostCaCerts::find();
        let uid = self.allocate_uid(&spec.id)?;
        let started = match self.preflight(&spec, uid, ca_certs) {
            Ok(()) => self.launch(&spec, uid, ca_certs).await,
            Err(e) => Err(e),
        };
        match started {
            Ok(sandbox) => Ok(sandbox),
            Err(e) => {
                release_uid(&self.running, &spec.id);
                Err(e)
            }
        }
    }

    /// When Hive runs as root, bubblewrap runs as the sandbox's uid and looks each bind source
    /// up as that uid; a directory on the way that does not let it search would fail the start
    /// with bubblewrap's terse "Permission denied". Checked here first, before anything is
    /// created or spawned, so the error names the directory and how to open it. Errors name
    /// paths and modes, never what a directory holds.
    fn preflight(
        &self,
        spec: &SandboxSpec,
        uid: u32,
        ca_certs: bwrap::HostCaCerts,
    ) -> Result<(), SandboxError> {
        use reach::Need;
        if !self.switch_uid {
            // bubblewrap runs as Hive's own uid, which reached the sources already.
            return Ok(());
        }
        let mut from_spec = vec![
            ("the agent root", spec.agent_root.as_path(), Need::ReadDir),
            // Handed to the sandbox's uid by the launch: only the way to it matters.
            (
                "the channel directory",
                spec.channel_dir.as_path(),
                Need::Reach,
            ),
        ];
        if let Some(proxy) = &spec.proxy_socket {
            // Handed to the sandbox's uid by the launch too.
            from_spec.push(("the proxy socket", proxy.as_path(), Need::Reach));
        }
        for (what, path, need) in from_spec {
            reach::check(path, uid, need).map_err(|why| {
                SandboxError::InvalidSpec(unreachable(what, path, uid, need, why))
            })?;
        }
        let mut from_host = vec![(
            "the init program",
            self.config.init_program.as_path(),
            Need::Execute,
        )];
        if ca_certs.dir {
            let certs = Path::new(crate::CA_CERTS_MOUNT);
            from_host.push(("the CA certificates", certs, Need::ReadDir));
        }
        for (what, path, need) in from_host {
            reach::check(path, uid, need).map_err(|why| {
                SandboxError::Unsupported(unreachable(what, path, uid, need, why))
            })?;
        }
        Ok(())
    }

    async fn reap(&self) -> Result<Vec<String>, SandboxError> {
        let running: Vec<u32> = self
            .running
            .lock()
            .map(|r| r.by_id.values().copied().collect())
            .unwrap_or_default();
        let running_ids: Vec<String> = self
            .running
            .lock()
            .map(|r| r.by_id.keys().map(|k| k.as_str().to_string()).collect())
            .unwrap_or_default();
        let mut reaped = Vec::new();
        if let Some(layout) = &self.cgroups {
            for id in layout.existing_ids() {
                if running_ids.contains(&id) {
                    continue;
                }
                let group = layout.group(&id);
                kill_group(&group).await?;
                remove_group(&group).await?;
                tracing::warn!(sandbox = %id, "removed a sandbox left behind by an earlier run");
                reaped.push(id);
            }
        }
        // Processes of the sandboxes' uids that no cgroup held (rlimit mode, or an escape from
        // a group): killed by uid, until none is left.
        let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
        loop {
            let stray: Vec<(u32, u32)> = procfs::pids_of_uids(&self.config.host_uids)
                .into_iter()
                .filter(|(_, uid)| !running.contains(uid))
                .collect();
            if stray.is_empty() {
                break;
            }
            for &(pid, uid) in &stray {
                // Held first, then its real uid read again: the process behind the pid is the
                // held one if it lives, so it is still the leftover found.
                if let Some(process) = Held::open(pid, || procfs::real_uid_of(pid) == Some(uid)) {
                    let _ = process.signal(Signal::KILL);
                }
                let name = format!("uid-{uid}");
                if !reaped.contains(&name) {
                    tracing::warn!(
                        uid,
                        "killed a sandbox process left behind by an earlier run"
                    );
                    reaped.push(name);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SandboxError::system(
                    "killing leftover sandbox processes",
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "they do not end"),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(reaped)
    }

    async fn launch(
        &self,
        spec: &SandboxSpec,
        uid: u32,
        ca_certs: bwrap::HostCaCerts,
    ) -> Result<ProcessSandbox, SandboxError> {
        if self.switch_uid {
            // The agent listens in the channel directory; nobody else of the host may look in.
            std::os::unix::fs::chown(&spec.channel_dir, Some(uid), Some(uid)).map_err(|e| {
                SandboxError::system("handing the channel directory to the sandbox", e)
            })?;
            std::fs::set_permissions(
                &spec.channel_dir,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )
            .map_err(|e| SandboxError::system("closing the channel directory", e))?;
            // The proxy acts with the agent's rights: only the sandbox's uid may connect, not
            // every user of the host that can walk the (traversable) way to the socket.
            if let Some(proxy) = &spec.proxy_socket {
                std::os::unix::fs::chown(proxy, Some(uid), Some(uid)).map_err(|e| {
                    SandboxError::system("handing the proxy socket to the sandbox", e)
                })?;
                std::fs::set_permissions(
                    proxy,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .map_err(|e| SandboxError::system("closing the proxy socket", e))?;
            }
        }
        let cgroup = match &self.cgroups {
            Some(layout) => {
                let group = layout.group(spec.id.as_str());
                if group.exists() {
                    return Err(SandboxError::AlreadyRunning(spec.id.clone()));
                }
                if let Err(e) = group.create(
                    spec.limits.memory_bytes,
                    spec.limits.cpu_millicores,
                    spec.limits.max_processes,
                ) {
                    let _ = group.remove();
                    return Err(e);
                }
                Some(group)
            }
            None => None,
        };
        let args = bwrap::arguments(
            spec,
            &self.config.init_program,
            &self.config.init_args,
            INSIDE_UID,
            self.config.require_landlock && self.landlock_abi > 0,
            ca_certs,
        );
        let mut command = Command::new(&self.config.init_program);
        command
            .args(&self.config.init_args)
            .arg("gate")
            .args(self.rlimits(spec, cgroup.is_some()))
            .arg("--")
            .arg(&self.config.bwrap)
            .args(&args)
            .env_clear()
            .envs(spec.env.iter())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Its own process group: signals meant for Hive's group (a terminal's ^C) do not
            // reach the sandbox; Hive stops it itself.
            .process_group(0);
        if spec.proxy_socket.is_some() {
            command.env(crate::SANDBOX_ENV_PROXY_SOCKET, crate::PROXY_SOCKET_MOUNT);
        }
        if ca_certs.bundle {
            // Reserved like the proxy's variable: a spec cannot set them (`validate`).
            command
                .env(crate::SANDBOX_ENV_CA_FILE, crate::CA_BUNDLE)
                .env(crate::SANDBOX_ENV_CA_DIR, crate::CA_CERTS_MOUNT);
        }
        if self.switch_uid {
            command.uid(uid).gid(uid);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                if let Some(group) = &cgroup {
                    let _ = group.remove();
                }
                return Err(SandboxError::system("starting the sandbox", e));
            }
        };
        // Held while it is certainly ours: our child, not reaped yet.
        let pid = child.id().unwrap_or(0);
        let outer = Held::hold(pid);
        let outer_started = procfs::start_time_of(pid);
        if let Err(e) = self.confine_and_release(&mut child, cgroup.as_ref()).await {
            let _ = child.start_kill();
            let _ = child.wait().await;
            if let Some(group) = &cgroup {
                let _ = kill_group(group).await;
                let _ = remove_group(group).await;
            }
            return Err(e);
        }
        let namespace_init = find_namespace_init(&mut child, pid).await;
        tracing::info!(sandbox = %spec.id, pid, uid, "sandbox started");
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (exit_tx, exit_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            id: spec.id.clone(),
            outer_pid: pid,
            outer_started,
            outer,
            namespace_init,
            cgroup,
            stop: AtomicU8::new(STOP_NONE),
            exit: exit_rx,
            stdout: Mutex::new(stdout),
            stderr: Mutex::new(stderr),
        });
        tokio::spawn(monitor(
            child,
            Arc::clone(&shared),
            exit_tx,
            Arc::clone(&self.running),
        ));
        Ok(ProcessSandbox { shared })
    }

    /// Puts the held gate process into the cgroups and lets it go on.
    async fn confine_and_release(
        &self,
        child: &mut Child,
        cgroup: Option<&SandboxCgroup>,
    ) -> Result<(), SandboxError> {
        let pid = child.id().ok_or(SandboxError::NotRunning)?;
        if let Some(group) = cgroup {
            group.enter(pid)?;
        }
        let mut stdin = child.stdin.take().ok_or(SandboxError::NotRunning)?;
        stdin
            .write_all(b"g")
            .await
            .map_err(|e| SandboxError::system("releasing the sandbox's launch", e))?;
        drop(stdin);
        Ok(())
    }

    /// The rlimits the gate sets on itself: always open files and no core dumps; CPU seconds
    /// when asked; memory and processes where no cgroup limits them.
    fn rlimits(&self, spec: &SandboxSpec, cgroups: bool) -> Vec<String> {
        let limits = &spec.limits;
        let mut settings = vec![
            format!("nofile={}", limits.max_open_files),
            "core=0".to_string(),
        ];
        if let Some(seconds) = limits.cpu_seconds {
            settings.push(format!("cpu={seconds}"));
        }
        if !cgroups {
            settings.push(format!("as={}", limits.memory_bytes));
            if self.switch_uid {
                settings.push(format!("nproc={}", limits.max_processes));
            }
        }
        settings
            .into_iter()
            .flat_map(|s| ["--rlimit".to_string(), s])
            .collect()
    }
}

const STOP_NONE: u8 = 0;
const STOP_GRACEFUL: u8 = 1;
const STOP_FORCED: u8 = 2;

/// The PID namespace's init (bubblewrap's second process).
struct NamespaceInit {
    pid: u32,
    /// Its start time: the monitor waits until no process with this pid started then.
    started: u64,
    held: Held,
}

struct Shared {
    id: SandboxId,
    /// bubblewrap's outer process (our child; not reaped before the monitor sees it end), and
    /// its start time, which tells it from a later process that got its pid once it was reaped.
    outer_pid: u32,
    outer_started: Option<u64>,
    /// The outer process, held from its spawn. Both held processes are kept as long as the
    /// handle: a signal sent after the monitor reaped them reaches nothing.
    outer: Option<Held>,
    namespace_init: Option<NamespaceInit>,
    cgroup: Option<SandboxCgroup>,
    stop: AtomicU8,
    exit: watch::Receiver<Option<SandboxExit>>,
    stdout: Mutex<Option<ChildStdout>>,
    stderr: Mutex<Option<ChildStderr>>,
}

impl Shared {
    fn exited(&self) -> Option<SandboxExit> {
        self.exit.borrow().clone()
    }

    /// Whether the outer process's pid is still the outer process (alive, or ended and not yet
    /// reaped), not a later process that got it.
    fn outer_is_ours(&self) -> bool {
        self.outer_started.is_some() && procfs::start_time_of(self.outer_pid) == self.outer_started
    }

    /// The outer process's descendants now; none once it is no longer ours (reaped, its pid
    /// maybe another process's, whose descendants these would be).
    fn descendants(&self) -> Vec<u32> {
        let found = procfs::descendants(self.outer_pid);
        // Looked at after the walk: a reaped process does not come back, so a match means the
        // walk was of ours.
        if self.outer_is_ours() {
            found
        } else {
            Vec::new()
        }
    }

    /// The agent's processes: all of the sandbox but bubblewrap's two (its outer process and
    /// the namespace's init, whose parent is the outer one).
    fn agent_pids(&self) -> Vec<u32> {
        let all = match &self.cgroup {
            Some(group) => group.pids(),
            None => self.descendants(),
        };
        let init = self.namespace_init.as_ref().map(|init| init.pid);
        all.into_iter()
            .filter(|&pid| pid != self.outer_pid && Some(pid) != init)
            .collect()
    }

    /// Everything of the sandbox dies now: the namespace's init is killed, and with it the
    /// kernel kills every process of the PID namespace; bubblewrap's outer process reaps it
    /// and exits, and the monitor kills whatever the cgroup still holds. (Killing all at once
    /// would orphan the init's zombie to the host's init instead.)
    async fn kill_all(&self) -> Result<(), SandboxError> {
        self.stop.store(STOP_FORCED, Ordering::SeqCst);
        if let Some(group) = &self.cgroup {
            // A frozen process dies only once thawed.
            let _ = group.set_frozen(false);
        }
        // Through the pidfds: the init, or bubblewrap's outer process if the init has ended.
        let init_ended = self
            .namespace_init
            .as_ref()
            .is_none_or(|init| init.held.signal(Signal::KILL).is_err());
        if init_ended && let Some(outer) = &self.outer {
            let _ = outer.signal(Signal::KILL);
        }
        Ok(())
    }

    async fn wait_exit(
        &self,
        deadline: Option<Duration>,
    ) -> Result<Option<SandboxExit>, SandboxError> {
        let mut rx = self.exit.clone();
        let wait = rx.wait_for(Option::is_some);
        let result = match deadline {
            Some(limit) => match tokio::time::timeout(limit, wait).await {
                Ok(r) => r,
                Err(_) => return Ok(None),
            },
            None => wait.await,
        };
        match result {
            Ok(exit) => Ok(exit.clone()),
            Err(_) => Err(SandboxError::NotRunning),
        }
    }
}

/// Waits (bounded) until bubblewrap's outer process has started the namespace's init, and
/// returns that init, held; `None` if bubblewrap ended first.
async fn find_namespace_init(child: &mut Child, outer_pid: u32) -> Option<NamespaceInit> {
    let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
    loop {
        // Once the gate has become bubblewrap, its first child is the namespace's init. Held
        // first, then its parent read again: the outer process is our child and not reaped, so
        // a process whose parent it is now is its child, the init.
        if let Some(&init) = procfs::children_of(outer_pid).first()
            && let Some(held) = Held::hold(init)
            && let Some(started) = procfs::start_time_of(init)
            && procfs::parent_of(init) == Some(outer_pid)
        {
            return Some(NamespaceInit {
                pid: init,
                started,
                held,
            });
        }
        if !matches!(child.try_wait(), Ok(None)) || tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits for bubblewrap to end, reads how it ended, kills anything left and removes the
/// cgroups, then publishes the exit.
async fn monitor(
    mut child: Child,
    shared: Arc<Shared>,
    exit_tx: watch::Sender<Option<SandboxExit>>,
    running: Arc<Mutex<Running>>,
) {
    let status = child.wait().await;
    let (cpu_time, peak_memory_bytes, oom_kills) = match &shared.cgroup {
        Some(group) => (group.cpu_time(), group.peak_memory(), group.oom_kills()),
        None => (None, None, 0),
    };
    let reason = match shared.stop.load(Ordering::SeqCst) {
        STOP_GRACEFUL => ExitReason::Stopped { forced: false },
        STOP_FORCED => ExitReason::Stopped { forced: true },
        _ if oom_kills > 0 => ExitReason::OutOfMemory,
        _ => match status {
            Ok(status) => reason_of(status),
            Err(e) => {
                tracing::error!(sandbox = %shared.id, error = %e, "waiting for the sandbox failed");
                ExitReason::Signaled(libc::SIGKILL)
            }
        },
    };
    if let Some(group) = &shared.cgroup {
        if let Err(e) = kill_group(group).await {
            tracing::error!(sandbox = %shared.id, error = %e, "a sandbox's processes outlived it");
        }
        if let Err(e) = remove_group(group).await {
            tracing::error!(sandbox = %shared.id, error = %e, "a sandbox's cgroups stay behind");
        }
    } else if let Some(init) = &shared.namespace_init {
        // bubblewrap's outer process is reaped: its pid may be another process's now, and its
        // children went to the host's init when it ended, so nothing is found through it. All
        // of the sandbox is in its PID namespace, which ends with the init (held).
        let _ = init.held.signal(Signal::KILL);
    }
    // bubblewrap's outer process may exit before it has reaped the namespace's init, which is
    // then the host init's to reap: the sandbox has ended once that has happened too.
    if let Some(NamespaceInit {
        pid: init, started, ..
    }) = shared.namespace_init
    {
        let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
        while procfs::start_time_of(init) == Some(started) {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(sandbox = %shared.id, pid = init, "the host's init has not reaped a sandbox's exited init");
                break;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
    release_uid(&running, &shared.id);
    tracing::info!(sandbox = %shared.id, ?reason, "sandbox ended");
    let _ = exit_tx.send(Some(SandboxExit {
        reason,
        peak_memory_bytes,
        cpu_time,
    }));
}

/// bubblewrap exits with its command's code, or 128 + the signal that killed it.
fn reason_of(status: std::process::ExitStatus) -> ExitReason {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        return ExitReason::Signaled(sig);
    }
    match status.code() {
        Some(code) if code > 128 && code <= 128 + 64 => {
            let sig = code - 128;
            if sig == libc::SIGXCPU {
                ExitReason::CpuTimeLimit
            } else {
                ExitReason::Signaled(sig)
            }
        }
        Some(code) => ExitReason::Exited(code),
        None => ExitReason::Signaled(libc::SIGKILL),
    }
}

/// A sandbox of the process backend.
pub struct ProcessSandbox {
    shared: Arc<Shared>,
}

impl ProcessSandbox {
    /// The host pids of the sandbox's processes now (bubblewrap's included); for tests and
    /// diagnostics.
    pub fn host_pids(&self) -> Vec<u32> {
        let mut pids = match &self.shared.cgroup {
            Some(group) => group.pids(),
            None => self.shared.descendants(),
        };
        if self.shared.outer_is_ours() && !pids.contains(&self.shared.outer_pid) {
            pids.push(self.shared.outer_pid);
        }
        pids
    }

    /// The sandbox's group directory of a cgroup controller (e.g. "memory"), if it has one.
    pub fn cgroup_dir(&self, controller: &str) -> Option<PathBuf> {
        self.shared
            .cgroup
            .as_ref()
            .and_then(|g| g.dir(controller))
            .map(Path::to_path_buf)
    }
}

#[async_trait]
impl Sandbox for ProcessSandbox {
    fn id(&self) -> &SandboxId {
        &self.shared.id
    }

    async fn stop(&self, grace: Duration) -> Result<SandboxExit, SandboxError> {
        if let Some(exit) = self.shared.exited() {
            return Ok(exit);
        }
        let _ = self.shared.stop.compare_exchange(
            STOP_NONE,
            STOP_GRACEFUL,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        if let Some(group) = &self.shared.cgroup {
            // A frozen process cannot act on the signal.
            let _ = group.set_frozen(false);
        }
        signal_listed(|| self.shared.agent_pids(), Signal::TERM);
        if let Some(exit) = self.shared.wait_exit(Some(grace)).await? {
            return Ok(exit);
        }
        self.kill().await
    }

    async fn kill(&self) -> Result<SandboxExit, SandboxError> {
        if let Some(exit) = self.shared.exited() {
            return Ok(exit);
        }
        self.shared.kill_all().await?;
        if let Some(exit) = self.shared.wait_exit(Some(SETTLE_DEADLINE)).await? {
            return Ok(exit);
        }
        // bubblewrap did not end with its namespace: everything goes, bubblewrap included.
        match &self.shared.cgroup {
            Some(group) => kill_group(group).await?,
            None => {
                signal_listed(|| self.shared.descendants(), Signal::KILL);
                if let Some(outer) = &self.shared.outer {
                    let _ = outer.signal(Signal::KILL);
                }
            }
        }
        self.shared
            .wait_exit(Some(SETTLE_DEADLINE))
            .await?
            .ok_or_else(|| {
                SandboxError::system(
                    "killing the sandbox",
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "it did not end"),
                )
            })
    }

    async fn pause(&self) -> Result<(), SandboxError> {
        if self.shared.exited().is_some() {
            return Err(SandboxError::NotRunning);
        }
        let group =
            self.shared.cgroup.as_ref().ok_or_else(|| {
                SandboxError::Unsupported("pausing needs the freezer cgroup".into())
            })?;
        group.set_frozen(true)?;
        let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
        loop {
            if group.freezer_state().as_deref() == Some("FROZEN") {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SandboxError::system(
                    "pausing the sandbox",
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "it did not freeze"),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn resume(&self) -> Result<(), SandboxError> {
        if self.shared.exited().is_some() {
            return Err(SandboxError::NotRunning);
        }
        let group =
            self.shared.cgroup.as_ref().ok_or_else(|| {
                SandboxError::Unsupported("resuming needs the freezer cgroup".into())
            })?;
        group.set_frozen(false)
    }

    async fn stats(&self) -> Result<SandboxStats, SandboxError> {
        if self.shared.exited().is_some() {
            return Err(SandboxError::NotRunning);
        }
        Ok(match &self.shared.cgroup {
            Some(group) => SandboxStats {
                cpu_time: group.cpu_time(),
                cpu_throttled: group.cpu_throttled(),
                memory_bytes: group.memory(),
                peak_memory_bytes: group.peak_memory(),
                memory_limit_hits: group.memory_limit_hits(),
                processes: group.process_count(),
                paused: group.freezer_state().as_deref() == Some("FROZEN"),
            },
            None => SandboxStats {
                processes: Some(self.shared.descendants().len() as u64),
                ..SandboxStats::default()
            },
        })
    }

    async fn wait(&self) -> Result<SandboxExit, SandboxError> {
        self.shared
            .wait_exit(None)
            .await?
            .ok_or(SandboxError::NotRunning)
    }

    fn take_stdout(&self) -> Option<OutputStream> {
        let stdout = self.shared.stdout.lock().ok()?.take()?;
        Some(Box::new(stdout))
    }

    fn take_stderr(&self) -> Option<OutputStream> {
        let stderr = self.shared.stderr.lock().ok()?.take()?;
        Some(Box::new(stderr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn bubblewraps_exit_codes_are_decoded() {
        let code = |c: i32| std::process::ExitStatus::from_raw(c << 8);
        assert_eq!(reason_of(code(0)), ExitReason::Exited(0));
        assert_eq!(reason_of(code(3)), ExitReason::Exited(3));
        assert_eq!(reason_of(code(128 + 9)), ExitReason::Signaled(9));
        assert_eq!(
            reason_of(code(128 + libc::SIGXCPU)),
            ExitReason::CpuTimeLimit
        );
        assert_eq!(
            reason_of(std::process::ExitStatus::from_raw(9)),
            ExitReason::Signaled(9)
        );
    }
}
