//! The `hive` binary as operators run it: real processes, real signals, real files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod agents;
mod backup;
mod billing;
mod config_check;
mod connections;
mod dashboard;
mod durability;
mod egress;
mod faults;
mod hosted;
mod hosted_cli;
mod keys;
mod leader;
mod memory;
mod mesh;
mod metrics;
mod outage;
mod process;
mod remote_admin;
mod replicas;
mod reverse_proxy;
mod sandbox;
mod serve;
mod systemd_unit;
mod traces;
mod workflow_cli;
mod workflow_code;
mod workflows;
