//! The kernel: what every domain stands on. Configuration, the secrets of this process, the
//! audit log and its hash chain, background jobs, the egress policy and admin-edited settings,
//! outgoing mail and rate-limited logging; the generations of the rows replicas cache in process
//! and the store that announces their changes; the ports through which the composition root
//! connects a higher domain to a lower one.
//!
//! Below every domain; imports none of them.

pub mod audit;
pub mod caller;
pub mod changes;
pub mod config;
pub mod egress;
pub mod jobs;
pub mod log_gate;
pub mod mail;
pub mod ports;
pub mod refusal;
pub mod runtime_secrets;
pub mod settings;
pub mod store_fault;
pub mod trace_context;
