//! A Redis server of a test's own, to stop and start at will (outage tests), and the shared
//! test services of `HIVE_TEST_REDIS_URL` and `HIVE_TEST_NATS_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};

/// The Redis of `HIVE_TEST_REDIS_URL`, if set, and a key prefix no other test uses.
pub fn test_redis() -> Option<(String, String)> {
    let url = std::env::var("HIVE_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())?;
    let prefix = format!("hive-test-{}", uuid::Uuid::new_v4().simple());
    Some((url, prefix))
}

/// The NATS (with JetStream) of `HIVE_TEST_NATS_URL`, if set, and a name no other test uses
/// (for a stream, its subject and consumers).
pub fn test_nats() -> Option<(String, String)> {
    let url = std::env::var("HIVE_TEST_NATS_URL")
        .ok()
        .filter(|v| !v.is_empty())?;
    let name = format!("hive_test_{}", uuid::Uuid::new_v4().simple());
    Some((url, name))
}

pub struct OwnRedis {
    pub port: u16,
    child: Child,
}

impl OwnRedis {
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
            .expect("redis-server is installed (it is wherever HIVE_TEST_REDIS_URL is set)");
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
