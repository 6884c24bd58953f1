//! hive-core against real servers on loopback, through `hive-testkit`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod channel;
mod llm;
mod schedules;
