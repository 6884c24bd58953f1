//! Hive's services, without HTTP: configuration, secrets bootstrap, storage, background jobs,
//! identity and access, and (in later issues) agents, the A2A gateway, federation, workflows, billing and
//! audit. The server crate adapts these to HTTP; the CLI drives them from the command line.

pub mod a2a;
pub mod a2a_push;
pub mod agent_import;
pub mod agent_lifecycle;
pub mod agents;
pub mod audit;
pub mod config;
pub mod conversations;
pub mod egress;
pub mod federation;
pub mod identity;
pub mod jobs;
pub mod key_rotation;
pub mod llm;
pub mod log_gate;
pub mod mail;
pub mod mfa;
pub mod oidc;
mod presence;
pub mod public_tier;
pub mod runtime;
pub mod secret_values;
pub mod secrets;
pub mod settings;
pub mod shared_state;
pub mod storage;
pub mod vault;
pub mod wan;

pub use runtime::{Hive, StartError};
