//! Hive's services, without HTTP, grouped by domain (see docs/architecture.md for the map and
//! the directions imports may take):
//!
//! - [`kernel`]: configuration, audit, jobs, egress policy, settings, mail;
//! - [`identity`]: accounts, sessions, tokens, passkeys, second factors, single sign-on;
//! - [`vault`]: the keyring, its rotation, users' secrets;
//! - [`agents`]: the registry, import, lifecycle, the LLM client;
//! - [`gateway`]: A2A dispatch, tasks, push notifications, agent cards, chat;
//! - [`mesh`]: federation, the public tier, the WAN;
//! - [`backup`]: encrypted archives of the instance, their schedule and retention;
//! - [`workflows`]: workflow definitions, templates, conditions, schedules, import (the engine to come).
//!
//! The server crate adapts these to HTTP; the CLI drives them from the command line.

pub mod agents;
pub mod backup;
pub mod billing;
pub mod gateway;
pub mod identity;
pub mod kernel;
pub mod mesh;
pub mod runtime;
pub mod sandboxing;
pub mod shared_state;
pub mod storage;
pub mod system_health;
pub mod vault;
pub mod workflows;

pub use runtime::{DependencyFailure, Hive, StartError};
