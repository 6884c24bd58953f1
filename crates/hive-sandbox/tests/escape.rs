//! The escape corpus and the lifecycle of the process sandbox, against the real thing:
//! bubblewrap, cgroups, seccomp and Landlock on this host. Each escape case runs a small
//! program inside a sandbox and asserts the specific refusal (the errno of the exact system
//! call, or the exit reason). They need root (cgroups, a host uid per sandbox) and bubblewrap:
//! without them they fail under CI (`CI` set; `.ci/run` installs bubblewrap) and are skipped
//! elsewhere, saying why.
//!
//! No test sleeps to cross a timeout: waits are bounded polls. Two waits look for the
//! absence of progress (a frozen sandbox's CPU time; a fork bomb's host), and hold a short
//! bounded window for it, said where they do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_sandbox::process::{ProcessBackend, ProcessBackendConfig, ProcessSandbox};
use hive_sandbox::{
    CA_BUNDLE, ExitReason, LimitEnforcement, Sandbox, SandboxBackend, SandboxExit, SandboxId,
    SandboxSpec,
};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const BWRAP: &str = "/usr/bin/bwrap";
const PYTHON: &str = "/usr/bin/python3";
/// A bound on any one sandbox's run in these tests, so that a broken case fails, not hangs.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// What is missing to run these tests here, if anything.
fn missing() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("root (cgroups and a host uid per sandbox)".into());
    }
    if !Path::new(BWRAP).exists() {
        return Some(format!("{BWRAP} (apt-get install bubblewrap)"));
    }
    if !Path::new(PYTHON).exists() {
        return Some(format!("{PYTHON} (apt-get install python3)"));
    }
    if !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        return Some("cgroup v1 controllers under /sys/fs/cgroup".into());
    }
    None
}

/// Whether to go on; under CI a missing requirement fails the test.
fn ready() -> bool {
    match missing() {
        None => true,
        Some(what) => {
            hive_store::test_env::missing(&what);
            false
        }
    }
}

static NEXT_RANGE: AtomicU32 = AtomicU32::new(0);

/// One test's backend: its own cgroup parent and uid range, so tests running side by side
/// never touch each other's sandboxes; removed at the end.
struct Harness {
    backend: ProcessBackend,
    first_uid: u32,
    parent: String,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn new(name: &str) -> Self {
        let n = NEXT_RANGE.fetch_add(1, Ordering::SeqCst);
        let start = 1_620_000_000 + std::process::id() % 1000 * 10_000 + n * 100;
        let parent = format!("hive-test-{}-{name}", std::process::id());
        let mut config = ProcessBackendConfig::new(env!("CARGO_BIN_EXE_hive-sandbox-init"));
        config.cgroup_parent = parent.clone();
        config.host_uids = start..start + 100;
        config.require_landlock = true;
        let backend = ProcessBackend::new(config).await.unwrap();
        assert_eq!(
            backend.capabilities().memory_limit,
            LimitEnforcement::WholeSandbox
        );
        Self {
            backend,
            first_uid: start,
            parent,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A spec running `command`, with an empty agent directory and a fresh channel directory.
    fn spec(&self, id: &str, command: &[&str]) -> SandboxSpec {
        let agent = self.dir.path().join(format!("{id}-agent"));
        let channel = self.dir.path().join(format!("{id}-channel"));
        std::fs::create_dir_all(&agent).unwrap();
        std::fs::create_dir_all(&channel).unwrap();
        SandboxSpec::new(
            SandboxId::new(id).unwrap(),
            agent,
            command.iter().map(|s| s.to_string()).collect(),
            channel,
        )
    }

    fn python(&self, id: &str, code: &str) -> SandboxSpec {
        let program = format!("{PRELUDE}\n{code}");
        self.spec(id, &[PYTHON, "-c", &program])
    }

    async fn start(&self, spec: SandboxSpec) -> ProcessSandbox {
        self.backend.start_process(spec).await.unwrap()
    }

    /// Runs a spec to its end: its exit and its whole standard output.
    async fn run(&self, spec: SandboxSpec) -> (SandboxExit, String) {
        let sandbox = self.start(spec).await;
        finish(&sandbox).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for controller in ["memory", "cpu", "cpuacct", "pids", "freezer"] {
            let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{controller}/{}", self.parent));
        }
    }
}

async fn finish(sandbox: &ProcessSandbox) -> (SandboxExit, String) {
    let mut stdout = sandbox.take_stdout().unwrap();
    let mut stderr = sandbox.take_stderr().unwrap();
    let run = async {
        let mut out = String::new();
        let mut err = String::new();
        let (a, b) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        a.unwrap();
        b.unwrap();
        let exit = sandbox.wait().await.unwrap();
        if !err.is_empty() {
            eprintln!("sandbox {} stderr: {err}", sandbox.id());
        }
        (exit, out)
    };
    match tokio::time::timeout(RUN_DEADLINE, run).await {
        Ok(done) => done,
        Err(_) => {
            let _ = sandbox.kill().await;
            panic!(
                "sandbox {} did not end within {RUN_DEADLINE:?}",
                sandbox.id()
            );
        }
    }
}

/// Python shared by the cases: `attempt(f)` prints "ok" or the errno's name of the OSError
/// that `f` raised; `libc` and `syscall` reach system calls Python does not wrap.
const PRELUDE: &str = r#"
import ctypes, errno, os, signal, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def attempt(f):
    try:
        f()
        print("ok", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
def check(result):
    if result == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return result
def syscall(number, *args):
    return check(libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args]))
"#;

fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

async fn assert_attempts(name: &str, code: &str, expected: &[&str]) {
    let h = Harness::new(name).await;
    let (exit, out) = h.run(h.python(name, code)).await;
    assert_eq!(exit.reason, ExitReason::Exited(0), "stdout: {out}");
    assert_eq!(lines(&out), expected, "case {name}");
}

// ---------------------------------------------------------------------------------------------
// Files: nothing of the host but /usr.

#[tokio::test]
async fn reading_etc_shadow_finds_no_such_file() {
    if !ready() {
        return;
    }
    assert!(
        Path::new("/etc/shadow").exists(),
        "the host has /etc/shadow"
    );
    // Of the host's /etc, only its public CA certificates are inside, bound read-only at
    // /etc/ssl/certs when the host has them: then bubblewrap made /etc and /etc/ssl (empty, on
    // its read-only root) to hold that one mount, and Landlock refuses listing them. Without
    // them, /etc does not exist at all.
    let certs = Path::new("/etc/ssl/certs").is_dir();
    let mut expected = vec!["ENOENT"; 6];
    expected.extend(if certs {
        ["EACCES", "EACCES", "EROFS", "['/etc/ssl/certs']"]
    } else {
        ["ENOENT", "ENOENT", "ENOENT", "[]"]
    });
    assert_attempts(
        "shadow",
        r#"attempt(lambda: open("/etc/shadow").read())
attempt(lambda: open("/etc/passwd").read())
attempt(lambda: open("/etc/hosts").read())
attempt(lambda: open("/etc/ssl/openssl.cnf").read())
attempt(lambda: os.listdir("/etc/ssl/private"))
attempt(lambda: open("/etc/ssl/private/ssl-cert-snakeoil.key").read())
attempt(lambda: os.listdir("/etc"))
attempt(lambda: os.listdir("/etc/ssl"))
attempt(lambda: open("/etc/ssl/certs/evil", "w"))
mounts = [line.split()[4] for line in open("/proc/self/mountinfo")]
print([m for m in mounts if m == "/etc" or m.startswith("/etc/")])"#,
        &expected,
    )
    .await;
}

#[tokio::test]
async fn the_data_dir_is_not_there() {
    if !ready() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let secret = data.path().join("hive.key");
    std::fs::write(&secret, "k").unwrap();
    let code = format!(
        "attempt(lambda: open({:?}).read())\nattempt(lambda: os.listdir({:?}))",
        secret.display().to_string(),
        data.path().display().to_string()
    );
    assert_attempts("datadir", &code, &["ENOENT", "ENOENT"]).await;
}

#[tokio::test]
async fn the_hosts_proc_is_not_there() {
    if !ready() {
        return;
    }
    // /proc is the sandbox's own: its pid 1 is bubblewrap's init (not dumpable, so its environ
    // is refused even to the sandbox's uid), and the host's processes are absent.
    let host_pid = std::process::id();
    let code = format!(
        r#"attempt(lambda: open("/proc/1/environ", "rb").read())
print(open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode())
attempt(lambda: open("/proc/{host_pid}/environ").read())
print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()) == [1, 2])"#
    );
    assert_attempts(
        "hostproc",
        &code,
        &["EACCES", "/usr/bin/bwrap", "ENOENT", "True"],
    )
    .await;
}

#[tokio::test]
async fn writes_outside_the_scratch_space_are_refused() {
    if !ready() {
        return;
    }
    // Read-only mounts answer EROFS; /dev is a writable tmpfs of bubblewrap's, where Landlock
    // refuses to create files (EACCES); the scratch space itself is writable.
    assert_attempts(
        "writes",
        r#"attempt(lambda: open("/usr/evil", "w"))
attempt(lambda: open("/agent/evil", "w"))
attempt(lambda: open("/evil", "w"))
attempt(lambda: open("/dev/shm/evil", "w") if os.path.isdir("/dev/shm") else open("/dev/evil", "w"))
attempt(lambda: open("/tmp/fine", "w").write("x"))"#,
        &["EROFS", "EROFS", "EROFS", "EACCES", "ok"],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// System calls: seccomp's EPERM (or ENOSYS for clone3).

#[tokio::test]
async fn ptrace_is_refused_by_seccomp() {
    if !ready() {
        return;
    }
    // PTRACE_TRACEME needs no privilege: only the filter refuses it.
    assert_attempts(
        "ptrace",
        "attempt(lambda: syscall(101, 0, 0, 0, 0))",
        &["EPERM"],
    )
    .await;
}

#[tokio::test]
async fn mount_is_refused() {
    if !ready() {
        return;
    }
    assert_attempts(
        "mount",
        r#"attempt(lambda: check(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))"#,
        &["EPERM"],
    )
    .await;
}

#[tokio::test]
async fn namespaces_cannot_be_created_or_joined() {
    if !ready() {
        return;
    }
    // unshare and setns refused; clone with CLONE_NEWUSER refused; clone3 answers ENOSYS so
    // the C library falls back to clone (whose flags the filter reads); a plain fork works.
    assert_attempts(
        "unshare",
        r#"attempt(lambda: check(libc.unshare(0x10000000)))
attempt(lambda: check(libc.unshare(0x40000000)))
attempt(lambda: check(libc.setns(os.open("/proc/self/ns/net", os.O_RDONLY), 0)))
def clone_newuser():
    pid = syscall(56, 0x10000000 | 17, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
attempt(clone_newuser)
attempt(lambda: syscall(435, 0, 0))
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
attempt(fork)"#,
        &["EPERM", "EPERM", "EPERM", "EPERM", "ENOSYS", "ok"],
    )
    .await;
}

#[tokio::test]
async fn bpf_is_refused_by_seccomp() {
    if !ready() {
        return;
    }
    assert_attempts("bpf", "attempt(lambda: syscall(321, 0, 0, 0))", &["EPERM"]).await;
}

#[tokio::test]
async fn raw_and_packet_sockets_are_refused() {
    if !ready() {
        return;
    }
    assert_attempts(
        "rawsock",
        r#"attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6))
attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
attempt(lambda: socket.socket(40, socket.SOCK_STREAM, 0))
attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0))"#,
        &["EPERM", "EPERM", "EPERM", "EPERM", "ok"],
    )
    .await;
}

#[tokio::test]
async fn the_sandbox_is_confined_without_privileges() {
    if !ready() {
        return;
    }
    let h = Harness::new("status").await;
    let sandbox = h
        .start(h.python(
            "status",
            r#"s = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
print(s["Seccomp"].strip(), s["NoNewPrivs"].strip(), s["CapEff"].strip(), s["CapBnd"].strip(), os.getuid())
sys.stdout.flush()
time.sleep(600)"#,
        ))
        .await;
    let mut stdout = BufReader::new(sandbox.take_stdout().unwrap());
    let mut line = String::new();
    tokio::time::timeout(RUN_DEADLINE, stdout.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line.trim(), "2 1 0000000000000000 0000000000000000 1000");
    // On the host, every process of the sandbox runs as one of the backend's uids, never root.
    let pids = sandbox.host_pids();
    assert!(pids.len() >= 3, "{pids:?}");
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(uid >= 1_620_000_000, "pid {pid} runs as uid {uid}");
    }
    assert!(
        h.backend
            .capabilities()
            .landlock_abi
            .is_some_and(|abi| abi >= 6)
    );
    sandbox.kill().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Network: an empty network namespace with its own loopback.

fn host_reaches(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .is_ok()
}

#[tokio::test]
async fn the_hosts_postgres_and_redis_are_out_of_reach() {
    if !ready() {
        return;
    }
    // The host's own loopback has them (under CI they run); the sandbox's loopback is another.
    for port in [5432, 6379] {
        if !host_reaches(port) {
            // The refusal proves less without a listener on the host.
            hive_store::test_env::missing(&format!("a listener on host port {port}"));
        }
    }
    assert_attempts(
        "localsvc",
        r#"def connect(port):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
attempt(lambda: connect(5432))
attempt(lambda: connect(6379))"#,
        &["ECONNREFUSED", "ECONNREFUSED"],
    )
    .await;
}

#[tokio::test]
async fn metadata_and_public_addresses_are_unreachable() {
    if !ready() {
        return;
    }
    // Inside the empty namespace no route exists: connect fails at once with ENETUNREACH and
    // no packet leaves this machine.
    assert_attempts(
        "egress",
        r#"def connect(family, addr):
    s = socket.socket(family)
    s.settimeout(5)
    s.connect(addr)
attempt(lambda: connect(socket.AF_INET, ("169.254.169.254", 80)))
attempt(lambda: connect(socket.AF_INET, ("1.1.1.1", 443)))
attempt(lambda: connect(socket.AF_INET6, ("2606:4700:4700::1111", 443)))"#,
        &["ENETUNREACH", "ENETUNREACH", "ENETUNREACH"],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Other sandboxes.

#[tokio::test]
async fn another_sandboxs_processes_cannot_be_seen_or_signalled() {
    if !ready() {
        return;
    }
    let h = Harness::new("neighbours").await;
    let victim = h
        .start(h.spec("victim", &["/bin/sh", "-c", "echo up; exec sleep 600"]))
        .await;
    let mut victim_out = BufReader::new(victim.take_stdout().unwrap());
    let mut line = String::new();
    tokio::time::timeout(RUN_DEADLINE, victim_out.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    let victim_pids = victim.host_pids();
    assert!(!victim_pids.is_empty());
    let code = format!(
        r#"for pid in {victim_pids:?}:
    attempt(lambda: os.kill(pid, signal.SIGKILL))
print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()) == [1, 2])"#
    );
    let (exit, out) = h.run(h.python("attacker", &code)).await;
    assert_eq!(exit.reason, ExitReason::Exited(0));
    let mut expected = vec!["ESRCH"; victim_pids.len()];
    expected.push("True");
    assert_eq!(lines(&out), expected);
    // The victim lives on.
    let stats = victim.stats().await.unwrap();
    assert!(stats.processes.unwrap() >= 3, "{stats:?}");
    let exit = victim.stop(Duration::from_secs(5)).await.unwrap();
    assert_eq!(exit.reason, ExitReason::Stopped { forced: false });
}

// ---------------------------------------------------------------------------------------------
// Resources.

#[tokio::test]
async fn a_fork_bomb_hits_the_process_cap() {
    if !ready() {
        return;
    }
    let h = Harness::new("forkbomb").await;
    let mut spec = h.python(
        "forkbomb",
        r#"n = 0
while True:
    try:
        pid = os.fork()
    except OSError as e:
        print(errno.errorcode[e.errno], n, flush=True)
        break
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    n += 1
time.sleep(600)"#,
    );
    spec.limits.max_processes = 20;
    let sandbox = h.start(spec).await;
    let mut stdout = BufReader::new(sandbox.take_stdout().unwrap());
    let mut line = String::new();
    tokio::time::timeout(RUN_DEADLINE, stdout.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    let (what, forks) = line.trim().split_once(' ').unwrap();
    assert_eq!(what, "EAGAIN");
    let forks: u32 = forks.parse().unwrap();
    // bubblewrap's two processes and the bomb's parent count too.
    assert!(forks <= 20 - 3, "{forks} forks under a cap of 20");
    let stats = sandbox.stats().await.unwrap();
    assert!(stats.processes.unwrap() <= 20, "{stats:?}");
    // The host is unaffected: it still starts processes.
    assert!(
        std::process::Command::new("/bin/true")
            .status()
            .unwrap()
            .success()
    );
    let pids = sandbox.host_pids();
    let exit = sandbox.kill().await.unwrap();
    assert_eq!(exit.reason, ExitReason::Stopped { forced: true });
    assert_gone(&pids);
}

#[tokio::test]
async fn a_memory_bomb_is_killed_and_reported_as_out_of_memory() {
    if !ready() {
        return;
    }
    let h = Harness::new("membomb").await;
    let mut spec = h.python(
        "membomb",
        r#"chunks = []
while True:
    chunks.append(b"\x01" * (4 << 20))"#,
    );
    spec.limits.memory_bytes = 64 << 20;
    let (exit, _) = h.run(spec).await;
    assert_eq!(exit.reason, ExitReason::OutOfMemory);
    assert!(exit.peak_memory_bytes.unwrap() <= 64 << 20, "{exit:?}");
}

#[tokio::test]
async fn the_exit_code_of_a_program_is_reported_as_such() {
    if !ready() {
        return;
    }
    let h = Harness::new("exitcode").await;
    let (exit, _) = h
        .run(h.spec("exitcode", &["/bin/sh", "-c", "exit 3"]))
        .await;
    assert_eq!(exit.reason, ExitReason::Exited(3));
    let (exit, _) = h
        .run(h.spec("signalled", &["/bin/sh", "-c", "kill -USR1 $$"]))
        .await;
    assert_eq!(exit.reason, ExitReason::Signaled(libc::SIGUSR1));
}

fn read_cgroup_u64(dir: &Path, file: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn cpu_stat(dir: &Path, key: &str) -> u64 {
    std::fs::read_to_string(dir.join("cpu.stat"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap()
        .parse()
        .unwrap()
}

async fn until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + RUN_DEADLINE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cpu_spin_is_held_to_its_share() {
    if !ready() {
        return;
    }
    let h = Harness::new("cpuspin").await;
    let mut spec = h.python("cpuspin", "while True: pass");
    spec.limits.cpu_millicores = 200;
    let sandbox = h.start(spec).await;
    let cpu = sandbox.cgroup_dir("cpu").unwrap();
    let cpuacct = sandbox.cgroup_dir("cpuacct").unwrap();
    // Measured by the scheduler's own books: over N elapsed enforcement periods of 100 ms, the
    // group may use at most N × its 20 ms quota (one period of slack for the edges).
    let periods = until("20 CFS periods", || {
        let n = cpu_stat(&cpu, "nr_periods");
        (n >= 20).then_some(n)
    })
    .await;
    let used_ns = read_cgroup_u64(&cpuacct, "cpuacct.usage");
    let periods_after = cpu_stat(&cpu, "nr_periods");
    let throttled = cpu_stat(&cpu, "nr_throttled");
    let quota_ns = 20_000_000u64;
    assert!(
        used_ns <= (periods_after + 1) * quota_ns,
        "{used_ns} ns of CPU over {periods}..{periods_after} periods of a {quota_ns} ns quota"
    );
    assert!(
        throttled * 2 >= periods,
        "throttled in {throttled} of {periods} periods"
    );
    let stats = sandbox.stats().await.unwrap();
    assert!(stats.cpu_throttled.unwrap() > Duration::ZERO);
    sandbox.kill().await.unwrap();
}

#[tokio::test]
async fn filling_the_scratch_space_ends_in_enospc() {
    if !ready() {
        return;
    }
    let h = Harness::new("diskfill").await;
    let mut spec = h.python(
        "diskfill",
        r#"written = 0
block = b"\0" * 65536
try:
    with open("/tmp/fill", "wb") as f:
        while True:
            written += f.write(block)
            f.flush()
except OSError as e:
    print(errno.errorcode[e.errno], written <= (4 << 20), flush=True)"#,
    );
    spec.limits.scratch_bytes = 4 << 20;
    let (exit, out) = h.run(spec).await;
    assert_eq!(exit.reason, ExitReason::Exited(0));
    assert_eq!(lines(&out), ["ENOSPC True"]);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle.

#[tokio::test]
async fn a_bind_source_the_sandboxs_uid_cannot_reach_is_named_before_anything_starts() {
    if !ready() {
        return;
    }
    let h = Harness::new("reach").await;
    // Hive's data directory as it must not be when Hive runs as root: 0700, with the bundle and
    // the channel under it, and a secret beside them.
    let data = h.dir.path().join("data");
    let (agent, channel) = (data.join("bundle"), data.join("channel"));
    std::fs::create_dir_all(&agent).unwrap();
    std::fs::create_dir_all(&channel).unwrap();
    std::fs::write(agent.join("hello"), "hi").unwrap();
    std::fs::write(data.join("hive.key"), "k").unwrap();
    let mode = |m| std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(m));
    mode(0o700).unwrap();
    let spec = SandboxSpec::new(
        SandboxId::new("reach").unwrap(),
        &agent,
        vec!["/bin/cat".into(), "/agent/hello".into()],
        &channel,
    );
    let error = match h.backend.start_process(spec.clone()).await {
        Ok(_) => panic!("a sandbox started with its agent root out of its uid's reach"),
        Err(e) => e.to_string(),
    };
    let data_dir = data.display().to_string();
    assert!(
        error.contains(&format!("the agent root {}", agent.display()))
            && error.contains(&format!("the directory {data_dir} (mode 0700)"))
            && error.ends_with(&format!("make it traversable: chmod o+x {data_dir}")),
        "{error}"
    );
    assert!(!error.contains("hive.key"), "{error}");
    // Nothing was created or started for it.
    assert!(!Path::new(&format!("/sys/fs/cgroup/pids/{}/reach", h.parent)).exists());
    assert!(
        channel.metadata().unwrap().uid() == 0,
        "the channel was handed over"
    );
    // Traversable, not listable: the same sandbox starts (its name and uid were released).
    mode(0o711).unwrap();
    let (exit, out) = h.run(spec).await;
    assert_eq!(exit.reason, ExitReason::Exited(0));
    assert_eq!(out, "hi");
}

#[tokio::test]
async fn hive_calls_the_agent_over_a_unix_socket_in_the_channel_dir() {
    if !ready() {
        return;
    }
    let h = Harness::new("channel").await;
    let spec = h.python(
        "channel",
        r#"srv = socket.socket(socket.AF_UNIX)
srv.bind("/hive/channel/agent.sock")
srv.listen(1)
conn, _ = srv.accept()
request = conn.makefile().readline().strip()
conn.sendall(("pong " + request + "\n").encode())
conn.close()"#,
    );
    let socket_path: PathBuf = spec.channel_dir.join("agent.sock");
    let sandbox = h.start(spec).await;
    // The socket's file appears at bind(), before listen(): wait until it accepts.
    let listening = until("the agent's socket to accept", || {
        std::os::unix::net::UnixStream::connect(&socket_path).ok()
    })
    .await;
    listening.set_nonblocking(true).unwrap();
    let mut stream = tokio::net::UnixStream::from_std(listening).unwrap();
    stream.write_all(b"ping 42\n").await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(RUN_DEADLINE, stream.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, "pong ping 42\n");
    let (exit, _) = finish(&sandbox).await;
    assert_eq!(exit.reason, ExitReason::Exited(0));
}

/// A web server on the host's loopback answering `200 ok` to each request, and how many
/// connections it has taken.
async fn web_server() -> (std::net::SocketAddr, std::sync::Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicU32::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).await.is_ok() {
                    head.push(byte[0]);
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (address, accepted)
}

#[tokio::test]
async fn the_only_way_out_is_hives_proxy_which_decides_each_request() {
    if !ready() {
        return;
    }
    let h = Harness::new("proxy").await;
    let (allowed, allowed_hits) = web_server().await;
    let (other, other_hits) = web_server().await;
    // Hive's proxy on a Unix socket, the admins' allowlist naming one of the two (loopback
    // is the inside of the network: only the admins' list opens it).
    let client = hive_egress::EgressClient::new(
        hive_egress::EgressConfig {
            allowlist: hive_egress::Allowlist::parse(&allowed.to_string()).unwrap(),
            ..hive_egress::EgressConfig::default()
        },
        std::sync::Arc::new(hive_egress::ScriptedResolver::new()),
    );
    let proxy = hive_egress::EgressProxy::new(client, hive_egress::Allowlist::empty());
    let socket = h.dir.path().join("proxy.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    // As Hive leaves it: its owner's alone; the backend hands it to the sandbox's uid.
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let stats = proxy.stats();
    let serving = tokio::spawn(async move { proxy.serve(listener).await });
    // urllib takes the proxy from HTTP_PROXY, as most HTTP clients do.
    let mut spec = h.python(
        "proxy",
        &format!(
            r#"import urllib.request, urllib.error
print(os.environ.get("HTTP_PROXY", "no proxy"), flush=True)
for url in ["http://{allowed}/", "http://{other}/"]:
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:
            print(answer.status, answer.read().decode(), flush=True)
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode().strip(), flush=True)
attempt(lambda: socket.create_connection(("{allowed_ip}", {allowed_port}), timeout=5))"#,
            allowed_ip = allowed.ip(),
            allowed_port = allowed.port(),
        ),
    );
    spec.proxy_socket = Some(socket.clone());
    let (exit, out) = h.run(spec).await;
    serving.abort();
    assert_eq!(exit.reason, ExitReason::Exited(0), "stdout: {out}");
    let got = lines(&out);
    assert!(got[0].starts_with("http://127.0.0.1:"), "{out}");
    assert_eq!(got[1], "200 ok", "the allowed host through the proxy");
    assert_eq!(
        got[2],
        format!("403 refused by Hive's egress rules: port http://{other}"),
        "the other host refused by the proxy"
    );
    // Straight to the allowed host, around the proxy: the sandbox has no route there.
    assert_eq!(got[3], "ECONNREFUSED", "{out}");
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        0,
        "a refused host saw a connection"
    );
    let counts = stats.snapshot();
    assert_eq!((counts.requests, counts.refusals), (2, 1), "{counts:?}");
    // The proxy acts with this sandbox's rights: no other user of the host may connect to it.
    let socket_meta = std::fs::metadata(&socket).unwrap();
    assert_ne!(
        socket_meta.uid(),
        0,
        "the socket was handed to the sandbox's uid"
    );
    assert_eq!(socket_meta.mode() & 0o777, 0o600);
}

#[tokio::test]
async fn the_environment_is_the_specs_and_nothing_of_hives() {
    if !ready() {
        return;
    }
    let h = Harness::new("env").await;
    // env(1) prints its environment as it got it (Python would add its own LC_CTYPE).
    let mut spec = h.spec("env", &["/usr/bin/env"]);
    spec.env.set("AGENT_NAME", "echo").unwrap();
    spec.env.set("AGENT_SECRET", "s3cr3t value").unwrap();
    let (exit, out) = h.run(spec).await;
    assert_eq!(exit.reason, ExitReason::Exited(0));
    let mut got = lines(&out);
    got.sort();
    // Besides the spec's, the sandbox names the host's CA certificates when it has them.
    let mut expected = vec!["AGENT_NAME=echo", "AGENT_SECRET=s3cr3t value"];
    if Path::new(CA_BUNDLE).is_file() {
        expected.extend([
            "SSL_CERT_DIR=/etc/ssl/certs",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        ]);
    }
    assert_eq!(got, expected);
}

/// Whether the host has Debian's CA bundle; under CI it must (the image has ca-certificates).
fn host_has_ca_bundle() -> bool {
    if Path::new(CA_BUNDLE).is_file() {
        return true;
    }
    hive_store::test_env::missing(&format!("{CA_BUNDLE} (apt-get install ca-certificates)"));
    false
}

#[tokio::test]
async fn tls_clients_find_the_hosts_public_ca_certificates() {
    if !ready() || !host_has_ca_bundle() {
        return;
    }
    // What an agent's TLS client does to verify a host reached through the proxy's CONNECT
    // tunnel: Python's default context loads the bundle SSL_CERT_FILE names. Debian's
    // per-certificate files are links into /usr/share/ca-certificates, which resolve inside.
    // The directory is listable (Go and rustls read SSL_CERT_DIR by listing it) and read-only
    // twice over: a new file meets the read-only mount (EROFS), writing an existing one meets
    // Landlock, which grants reading alone there (EACCES).
    assert_attempts(
        "cacerts",
        r#"import ssl
print(os.environ["SSL_CERT_FILE"], os.environ["SSL_CERT_DIR"])
print(ssl.create_default_context().cert_store_stats()["x509_ca"] > 0)
names = os.listdir("/etc/ssl/certs")
linked = [n for n in names if os.path.islink("/etc/ssl/certs/" + n) and os.readlink("/etc/ssl/certs/" + n).startswith("/usr/share/ca-certificates/")]
attempt(lambda: open("/etc/ssl/certs/" + linked[0]).read(1))
attempt(lambda: open("/etc/ssl/certs/evil.pem", "w"))
attempt(lambda: open("/etc/ssl/certs/ca-certificates.crt", "a"))"#,
        &[
            "/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs",
            "True",
            "ok",
            "EROFS",
            "EACCES",
        ],
    )
    .await;
}

fn assert_gone(pids: &[u32]) {
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"));
        assert!(
            status.is_err(),
            "process {pid} of the sandbox is still there: {status:?}"
        );
    }
}

#[tokio::test]
async fn stop_ends_the_whole_tree_and_removes_the_cgroups() {
    if !ready() {
        return;
    }
    let h = Harness::new("stop").await;
    // A graceful agent: it answers SIGTERM by saying so and leaving; its children go with it.
    let sandbox = h
        .start(h.python(
            "graceful",
            r#"for _ in range(3):
    if os.fork() == 0:
        time.sleep(600)
        os._exit(0)
def bye(*_):
    # The signal may land inside print("up"): write without Python's buffered stdout.
    os.write(1, b"bye\n")
    os._exit(0)
signal.signal(signal.SIGTERM, bye)
print("up", flush=True)
while True:
    time.sleep(600)"#,
        ))
        .await;
    let mut stdout = BufReader::new(sandbox.take_stdout().unwrap());
    let mut line = String::new();
    tokio::time::timeout(RUN_DEADLINE, stdout.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line, "up\n");
    let pids = until("all processes", || {
        let p = sandbox.host_pids();
        (p.len() >= 6).then_some(p)
    })
    .await;
    let dirs: Vec<PathBuf> = ["memory", "cpu", "pids", "freezer"]
        .iter()
        .map(|c| sandbox.cgroup_dir(c).unwrap())
        .collect();
    assert!(dirs.iter().all(|d| d.exists()));
    let exit = sandbox.stop(Duration::from_secs(30)).await.unwrap();
    assert_eq!(exit.reason, ExitReason::Stopped { forced: false });
    line.clear();
    stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line, "bye\n");
    assert_gone(&pids);
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");

    // An agent that ignores SIGTERM is killed when the grace period ends.
    let stubborn = h
        .start(h.python(
            "stubborn",
            r#"signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("up", flush=True)
while True:
    time.sleep(600)"#,
        ))
        .await;
    let mut stdout = BufReader::new(stubborn.take_stdout().unwrap());
    line.clear();
    stdout.read_line(&mut line).await.unwrap();
    let pids = stubborn.host_pids();
    let exit = stubborn.stop(Duration::from_millis(200)).await.unwrap();
    assert_eq!(exit.reason, ExitReason::Stopped { forced: true });
    assert_gone(&pids);
    assert!(stubborn.cgroup_dir("memory").is_some_and(|d| !d.exists()));
}

#[tokio::test]
async fn a_paused_sandbox_makes_no_progress_until_resumed() {
    if !ready() {
        return;
    }
    let h = Harness::new("pause").await;
    let sandbox = h.start(h.python("pause", "while True: pass")).await;
    let cpuacct = sandbox.cgroup_dir("cpuacct").unwrap();
    let usage = || read_cgroup_u64(&cpuacct, "cpuacct.usage");
    let before = usage();
    until("the agent to use CPU", || (usage() > before).then_some(())).await;
    sandbox.pause().await.unwrap();
    assert!(sandbox.stats().await.unwrap().paused);
    let frozen_at = usage();
    // Absence of progress can only be seen over a window: 25 looks, 20 ms apart.
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(usage(), frozen_at, "a frozen sandbox used CPU");
    }
    sandbox.resume().await.unwrap();
    until("the agent to run again", || {
        (usage() > frozen_at).then_some(())
    })
    .await;
    sandbox.kill().await.unwrap();
}

#[tokio::test]
async fn leftovers_of_a_crashed_hive_are_reaped() {
    if !ready() {
        return;
    }
    let h = Harness::new("reap").await;
    // What a crash leaves: a group under the Hive parent with a process in it, running as one
    // of the sandboxes' uids.
    let leftover = format!("/sys/fs/cgroup/pids/{}/leftover-1", h.parent);
    let memory = format!("/sys/fs/cgroup/memory/{}/leftover-1", h.parent);
    std::fs::create_dir(&leftover).unwrap();
    std::fs::create_dir(&memory).unwrap();
    let uid = h.first_uid;
    let mut command = std::process::Command::new("/bin/sleep");
    std::os::unix::process::CommandExt::uid(&mut command, uid + 99);
    let mut orphan = command.arg("600").spawn().unwrap();
    std::fs::write(format!("{leftover}/cgroup.procs"), orphan.id().to_string()).unwrap();
    let reaped = h.backend.reap_leftovers().await.unwrap();
    assert_eq!(reaped, ["leftover-1"]);
    let status = orphan.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!Path::new(&leftover).exists() && !Path::new(&memory).exists());
    // A process of a sandbox uid outside any group is found by its uid.
    let mut command = std::process::Command::new("/bin/sleep");
    std::os::unix::process::CommandExt::uid(&mut command, uid + 98);
    let mut stray = command.arg("600").spawn().unwrap();
    let reaped = h.backend.reap_leftovers().await.unwrap();
    assert_eq!(reaped, [format!("uid-{}", uid + 98)]);
    let status = stray.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
}
