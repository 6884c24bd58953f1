//! A Redis server of a test's own, to stop and start at will (outage tests), and the test
//! services named by `HIVE_TEST_REDIS_URL`, `HIVE_TEST_NATS_URL` and `HIVE_TEST_DATABASE_URL`.
//!
//! Every test reads those variables through [`service_url`] (or the helpers on it here and in
//! `hive-testkit`): without one a test skips its part, saying so on stderr — except under CI,
//! where a missing service fails the test, so that CI cannot pass by skipping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};

/// The variable that points the tests at a Redis server.
pub const REDIS_URL_VAR: &str = "HIVE_TEST_REDIS_URL";
/// The variable that points the tests at a NATS server with JetStream.
pub const NATS_URL_VAR: &str = "HIVE_TEST_NATS_URL";
/// The variable that points the tests at a PostgreSQL server (a role that may create
/// databases).
pub const DATABASE_URL_VAR: &str = "HIVE_TEST_DATABASE_URL";

pub use hive_store::test_env::{missing, service_url, under_ci};

/// The Redis of `HIVE_TEST_REDIS_URL` (see [`service_url`]).
pub fn redis_url() -> Option<String> {
    service_url(REDIS_URL_VAR)
}

/// The NATS (with JetStream) of `HIVE_TEST_NATS_URL` (see [`service_url`]).
pub fn nats_url() -> Option<String> {
    service_url(NATS_URL_VAR)
}

/// A key prefix no other test uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// The Redis of `HIVE_TEST_REDIS_URL`, if set, and a key prefix no other test uses.
pub fn test_redis() -> Option<(String, String)> {
    Some((redis_url()?, unique("hive-test-")))
}

/// The NATS (with JetStream) of `HIVE_TEST_NATS_URL`, if set, and a name no other test uses
/// (for a stream, its subject and consumers).
pub fn test_nats() -> Option<(String, String)> {
    Some((nats_url()?, unique("hive_test_")))
}

pub struct OwnRedis {
    pub port: u16,
    child: Child,
}

impl OwnRedis {
    /// Whether `redis-server` can be started here, for the tests that start their own. Under CI
    /// its absence fails the calling test, like a missing service (see [`service_url`]).
    pub fn available() -> bool {
        let runs = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !runs {
            missing("redis-server (not on PATH; this test starts its own)");
        }
        runs
    }

    /// Starts `redis-server` on a free loopback port, keeping nothing on disk.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port)
    }

    /// Starts `redis-server` on `port` (again, after [`Self::kill`]).
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (check OwnRedis::available first)");
        Self { port, child }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGSTOP: the server stops answering but keeps its connections (and what clients sent
    /// meanwhile, which it runs on [`Self::thaw`]).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Self::freeze`].
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// SIGKILL: the server vanishes mid-run.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        // A test that failed while the server was frozen leaves nothing stopped behind.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
