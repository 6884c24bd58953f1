//! The kernel: what every domain stands on. Configuration, the secrets of this process, the
//! audit log and its hash chain, background jobs, the egress policy and admin-edited settings,
//! outgoing mail and rate-limited logging; the generations of the rows replicas cache in process
//! and the store that announces their changes.
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
pub mod refusal;
pub mod runtime_secrets;
pub mod settings;
pub mod store_fault;
