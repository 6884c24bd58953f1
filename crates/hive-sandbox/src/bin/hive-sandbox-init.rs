//! The sandbox's init program on its own, for this crate's tests (the `hive` binary carries
//! the same as `hive sandbox-init`): see `hive_sandbox::init`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    hive_sandbox::init::main(&[], &args)
}
