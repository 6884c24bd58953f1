//! Which instance an account command works on: a running server through its API when one is
//! named (`--url`, `HIVE_URL`, a profile), else the embedded data directory (which a running
//! SQLite server locks). Either way the command says which on standard error.

use crate::remote::{Api, CallFailure, Remote};
use clap::Args;
use hive_core::Hive;
use std::sync::Arc;

/// The options every account command takes: where the server is, and how to print.
#[derive(Args, Clone, Default)]
pub struct Target {
    #[command(flatten)]
    pub(crate) remote: Remote,
    /// Print the API's JSON (one document) instead of a table for people.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// The instance a command works on.
pub(crate) enum Instance {
    /// A running server, through its API.
    Server(Arc<Api>),
    /// The data directory, opened by this process.
    Embedded(Arc<Hive>),
}

/// Why a command failed: its work (exit 1), or the instance it works on could not be opened
/// or reached (exit 2: none there, locked by a running server, unreachable, the token
/// refused, misconfigured).
#[derive(Debug)]
pub(crate) enum Failure {
    Work(String),
    Instance(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::Work(message)
    }
}

impl From<CallFailure> for Failure {
    fn from(failure: CallFailure) -> Self {
        if failure.unreachable {
            Self::Instance(failure.message)
        } else {
            Self::Work(failure.message)
        }
    }
}

/// The server the command should talk to, if one was named ([`Api::new`] announces it on
/// standard error: the URL only, never the token).
pub(crate) fn server(
    config: &hive_core::kernel::config::Config,
    target: &Target,
) -> Result<Option<Api>, Failure> {
    if !target.remote.server_given().map_err(Failure::Instance)? {
        return Ok(None);
    }
    let api = Api::new(config, &target.remote).map_err(Failure::Instance)?;
    Ok(Some(api))
}
