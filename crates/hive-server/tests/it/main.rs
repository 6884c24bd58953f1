//! The HTTP pipeline and the health route, over real HTTP on loopback, on every backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod a2a;
mod access_matrix;
mod agent_activity;
mod agents;
mod audit;
mod audit_coverage;
mod audit_trail;
mod backup;
mod billing;
mod caches;
mod chat;
mod connections;
mod egress;
mod events;
mod federation;
mod health;
mod identity;
mod interop;
mod mfa;
mod oidc;
mod pages;
mod passkeys;
mod pipeline;
mod public_tier;
mod rate_limit;
mod secrets;
mod settings;
mod shutdown;
mod smtp;
mod support;
mod vault_rotation;
mod wan;
mod workflows;
mod workflows_a2a;
