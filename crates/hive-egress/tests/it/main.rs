//! hive-egress integration tests: the address tables, decisions without network, and real
//! HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod http;
mod literals;
mod proxy;
mod ranges;
mod support;
