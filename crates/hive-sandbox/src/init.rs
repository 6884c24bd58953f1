//! The process sandbox's first program, on both sides of its wall: `hive sandbox-init …` in
//! the one binary operators install (and `hive-sandbox-init …` for this crate's own tests).
//!
//! - `gate [--rlimit NAME=VALUE]… -- BWRAP ARGS…` runs outside, already as the sandbox's
//!   unprivileged host uid: it waits for one byte on its standard input, sent once Hive has put
//!   it into the sandbox's cgroups, lowers its rlimits (a process may always lower its own;
//!   Hive may lack CAP_SYS_RESOURCE to set another's), then runs bubblewrap in its place
//!   (standard input from /dev/null). So every process of the sandbox is born inside its
//!   cgroups and under its rlimits: none can fork before.
//! - `run [--require-landlock] -- PROGRAM ARGS…` runs inside, as bubblewrap's command: it
//!   applies Landlock and seccomp to itself, then runs the agent's program in its place.
//! - `bridge [--require-landlock] SOCKET` runs inside, started by `run` when the sandbox has a proxy socket: under
//!   the same Landlock and seccomp, it listens on 127.0.0.1 (the sandbox's own loopback), says
//!   its port on standard output, and relays each connection to SOCKET (Hive's proxy), which
//!   decides it. The agent finds it in `HTTP_PROXY` and `HTTPS_PROXY`.
//! - `probe-landlock` prints the Landlock ABI the kernel applies (0 for none).
//!
//! Besides the bridge it never forks and holds nothing of its own: `exec` replaces it.

use crate::process::confine;
use rustix::process::{Resource, Rlimit};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Connections the bridge relays at once; more wait in the listen queue. Each takes two
/// threads, which count against the sandbox's process cap.
const BRIDGE_CONNECTIONS: usize = 16;

/// The byte Hive sends when the gate may open.
const GO: u8 = b'g';

fn fail(message: &str) -> ExitCode {
    eprintln!("hive-sandbox-init: {message}");
    ExitCode::from(125)
}

/// Lowers one of this process's limits (soft and hard) to `value`, or to the present hard
/// limit if that is lower already.
fn lower_rlimit(name: &str, value: &str) -> Result<(), String> {
    let resource = match name {
        "nofile" => Resource::Nofile,
        "core" => Resource::Core,
        "as" => Resource::As,
        "nproc" => Resource::Nproc,
        "cpu" => Resource::Cpu,
        _ => return Err(format!("gate: unknown rlimit {name}")),
    };
    let value: u64 = value
        .parse()
        .map_err(|_| format!("gate: rlimit {name} is not a number"))?;
    let hard = rustix::process::getrlimit(resource).maximum;
    let value = hard.map_or(value, |hard| value.min(hard));
    let limit = Rlimit {
        current: Some(value),
        maximum: Some(value),
    };
    rustix::process::setrlimit(resource, limit)
        .map_err(|e| format!("gate: setting rlimit {name} failed: {e}"))
}

fn gate(args: &[String]) -> ExitCode {
    let Some(split) = args.iter().position(|a| a == "--") else {
        return fail("gate: usage: gate [--rlimit NAME=VALUE]… -- BWRAP ARGS…");
    };
    let (options, command) = (&args[..split], &args[split + 1..]);
    let Some((bwrap, rest)) = command.split_first() else {
        return fail("gate: no program to run");
    };
    let mut byte = [0u8; 1];
    match std::io::stdin().read(&mut byte) {
        Ok(1) if byte[0] == GO => {}
        // Hive went away or said no: nothing runs.
        _ => return fail("gate: not released; the sandbox does not start"),
    }
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let setting = match (option.as_str(), options.next()) {
            ("--rlimit", Some(setting)) => setting,
            _ => return fail(&format!("gate: unknown option {option}")),
        };
        let Some((name, value)) = setting.split_once('=') else {
            return fail("gate: an rlimit is NAME=VALUE");
        };
        if let Err(e) = lower_rlimit(name, value) {
            return fail(&e);
        }
    }
    let error = Command::new(bwrap).args(rest).stdin(Stdio::null()).exec();
    fail(&format!("gate: cannot run {bwrap}: {error}"))
}

/// Applies Landlock (required or best effort) and seccomp to this process.
fn confine_self(require_landlock: bool) -> Result<(), String> {
    match confine::apply_landlock() {
        Ok(confine::LandlockOutcome::Unavailable) if require_landlock => {
            Err("Landlock is required but this kernel does not enforce it".into())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }?;
    confine::apply_seccomp().map_err(|e| e.to_string())
}

/// Starts the bridge to the proxy socket and answers the port it listens on.
fn start_bridge(prefix: &[String], socket: &str, require_landlock: bool) -> Result<u16, String> {
    let this = std::env::current_exe().map_err(|e| format!("bridge: {e}"))?;
    let mut command = Command::new(this);
    command.args(prefix).arg("bridge");
    if require_landlock {
        command.arg("--require-landlock");
    }
    let mut bridge = command
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("bridge: cannot start: {e}"))?;
    let mut line = String::new();
    if let Some(out) = bridge.stdout.take() {
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| format!("bridge: {e}"))?;
    }
    line.trim()
        .parse()
        .map_err(|_| "bridge: it did not say its port".to_owned())
}

fn run(prefix: &[String], args: &[String]) -> ExitCode {
    let (require_landlock, rest) = match args.first().map(String::as_str) {
        Some("--require-landlock") => (true, &args[1..]),
        _ => (false, args),
    };
    let command = match rest.split_first() {
        Some((dashes, command)) if dashes == "--" && !command.is_empty() => command,
        _ => return fail("run: usage: run [--require-landlock] -- PROGRAM ARGS…"),
    };
    // The bridge first: it is this program again, which Landlock would not let run later.
    let proxy = match std::env::var(crate::SANDBOX_ENV_PROXY_SOCKET) {
        Ok(socket) => match start_bridge(prefix, &socket, require_landlock) {
            Ok(port) => Some(format!("http://127.0.0.1:{port}")),
            Err(e) => return fail(&format!("run: {e}")),
        },
        Err(_) => None,
    };
    if let Err(e) = confine_self(require_landlock) {
        return fail(&format!("run: {e}"));
    }
    // bubblewrap sets PWD to the working directory; the agent gets exactly the spec's variables
    // (and the spec may not set PWD), and with a proxy, where to find it.
    let mut agent = Command::new(&command[0]);
    agent.args(&command[1..]).env_remove("PWD");
    if let Some(proxy) = proxy {
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            agent.env(name, &proxy);
        }
    }
    let error = agent.exec();
    eprintln!("hive-sandbox-init: cannot run {}: {error}", command[0]);
    ExitCode::from(127)
}

/// Relays one connection to the proxy socket, both ways, until either side closes.
fn relay(client: TcpStream, socket: &str) {
    let Ok(proxy) = UnixStream::connect(socket) else {
        return;
    };
    let (Ok(mut client_in), Ok(mut proxy_out)) = (client.try_clone(), proxy.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut proxy_out);
        let _ = proxy_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut proxy_in, mut client_out) = (proxy, client);
    let _ = std::io::copy(&mut proxy_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Both);
    let _ = upstream.join();
}

fn bridge(args: &[String]) -> ExitCode {
    let (require_landlock, rest) = match args.first().map(String::as_str) {
        Some("--require-landlock") => (true, &args[1..]),
        _ => (false, args),
    };
    let [socket] = rest else {
        return fail("bridge: usage: bridge [--require-landlock] SOCKET");
    };
    if let Err(e) = confine_self(require_landlock) {
        return fail(&format!("bridge: {e}"));
    }
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
        Ok(listener) => listener,
        Err(e) => return fail(&format!("bridge: cannot listen on loopback: {e}")),
    };
    let port = match listener.local_addr() {
        Ok(address) => address.port(),
        Err(e) => return fail(&format!("bridge: {e}")),
    };
    println!("{port}");
    let socket: Arc<str> = Arc::from(socket.as_str());
    let active = Arc::new(AtomicUsize::new(0));
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= BRIDGE_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            continue; // dropped: the client sees the connection closed
        }
        let (socket, finished) = (socket.clone(), active.clone());
        let spawned = std::thread::Builder::new().spawn(move || {
            relay(client, &socket);
            finished.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
    ExitCode::SUCCESS
}

/// Runs the mode `args` names. `prefix` is what comes before the mode on this program's command
/// line (`["sandbox-init"]` in the `hive` binary), for the bridge it starts.
pub fn main(prefix: &[String], args: &[String]) -> ExitCode {
    match args.split_first() {
        Some((mode, rest)) if mode == "gate" => gate(rest),
        Some((mode, rest)) if mode == "run" => run(prefix, rest),
        Some((mode, rest)) if mode == "bridge" => bridge(rest),
        Some((mode, _)) if mode == "probe-landlock" => {
            println!("{}", confine::probe_landlock());
            ExitCode::SUCCESS
        }
        _ => fail("usage: hive-sandbox-init gate|run|bridge|probe-landlock …"),
    }
}
