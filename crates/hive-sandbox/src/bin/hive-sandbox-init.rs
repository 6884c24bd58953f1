//! The process sandbox's first program, on both sides of its wall.
//!
//! - `gate [--rlimit NAME=VALUE]… -- BWRAP ARGS…` runs outside, already as the sandbox's
//!   unprivileged host uid: it waits for one byte on its standard input, sent once Hive has put
//!   it into the sandbox's cgroups, lowers its rlimits (a process may always lower its own;
//!   Hive may lack CAP_SYS_RESOURCE to set another's), then runs bubblewrap in its place
//!   (standard input from /dev/null). So every process of the sandbox is born inside its
//!   cgroups and under its rlimits: none can fork before.
//! - `run [--require-landlock] -- PROGRAM ARGS…` runs inside, as bubblewrap's command: it
//!   applies Landlock and seccomp to itself, then runs the agent's program in its place.
//! - `probe-landlock` prints the Landlock ABI the kernel applies (0 for none).
//!
//! It never forks and holds nothing of its own: `exec` replaces it.

use hive_sandbox::process::confine;
use rustix::process::{Resource, Rlimit};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

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

fn run(args: &[String]) -> ExitCode {
    let (require_landlock, rest) = match args.first().map(String::as_str) {
        Some("--require-landlock") => (true, &args[1..]),
        _ => (false, args),
    };
    let command = match rest.split_first() {
        Some((dashes, command)) if dashes == "--" && !command.is_empty() => command,
        _ => return fail("run: usage: run [--require-landlock] -- PROGRAM ARGS…"),
    };
    match confine::apply_landlock() {
        Ok(confine::LandlockOutcome::Unavailable) if require_landlock => {
            return fail("run: Landlock is required but this kernel does not enforce it");
        }
        Ok(_) => {}
        Err(e) => return fail(&format!("run: {e}")),
    }
    if let Err(e) = confine::apply_seccomp() {
        return fail(&format!("run: {e}"));
    }
    // bubblewrap sets PWD to the working directory; the agent gets exactly the spec's variables
    // (and the spec may not set PWD).
    let error = Command::new(&command[0])
        .args(&command[1..])
        .env_remove("PWD")
        .exec();
    eprintln!("hive-sandbox-init: cannot run {}: {error}", command[0]);
    ExitCode::from(127)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((mode, rest)) if mode == "gate" => gate(rest),
        Some((mode, rest)) if mode == "run" => run(rest),
        Some((mode, _)) if mode == "probe-landlock" => {
            println!("{}", confine::probe_landlock());
            ExitCode::SUCCESS
        }
        _ => fail("usage: hive-sandbox-init gate|run|probe-landlock …"),
    }
}
