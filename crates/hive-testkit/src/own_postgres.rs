//! A PostgreSQL server of a test's own, to stop and start under load (outage tests) — never the
//! shared one of `HIVE_TEST_DATABASE_URL`. Its cluster lives in a temporary directory owned by
//! the `postgres` OS user, which runs it (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tempfile::TempDir;

/// The OS user that owns and runs the cluster when the tests run as root.
const OS_USER: &str = "postgres";

pub struct OwnPostgres {
    pub port: u16,
    bin: PathBuf,
    /// The cluster (`data`) and its socket and log; removed on drop.
    dir: TempDir,
}

/// The directory of the newest installed PostgreSQL's server programs (Debian's layout).
fn server_programs() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|version| version.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

fn user_exists(user: &str) -> bool {
    Command::new("id")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl OwnPostgres {
    /// Whether a server of the test's own can run here: the server programs, and the
    /// `postgres` user to run them as. Under CI their absence fails the calling test, like a
    /// missing service.
    pub fn available() -> bool {
        let runs = server_programs().is_some() && user_exists(OS_USER);
        if !runs {
            hive_state::test_support::missing(
                "PostgreSQL's server programs (/usr/lib/postgresql/*/bin) or the postgres user; this test starts its own server",
            );
        }
        runs
    }

    /// A fresh cluster (trust authentication on loopback) on a free port, started.
    pub fn start() -> Self {
        let bin = server_programs().expect("PostgreSQL's server programs (check available)");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let owned = Command::new("chown")
            .args(["-R", OS_USER, &dir.path().display().to_string()])
            .status()
            .expect("chown runs");
        assert!(owned.success(), "chown the cluster's directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
        let server = Self { port, bin, dir };
        server.run(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        server.start_again();
        server
    }

    /// `postgres://…` to the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again, after [`Self::stop_immediately`]) and waits until it accepts
    /// connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
            ],
        );
    }

    /// `pg_ctl stop -m immediate`: every connection cut, no checkpoint (a crash, as far as
    /// clients can tell; the next start recovers from the write-ahead log).
    pub fn stop_immediately(&self) {
        self.run(
            "pg_ctl",
            &["stop", "-w", "-m", "immediate", "-D", &self.data()],
        );
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("runuser");
        command
            .args(["-u", OS_USER, "--"])
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(Path::new("/"))
            .stdin(Stdio::null());
        command
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program, args)
            .output()
            .unwrap_or_else(|error| panic!("{program} runs: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        // Already stopped is fine; the directory goes with `dir`.
        let _ = self
            .command("pg_ctl", &["stop", "-m", "immediate", "-D", &self.data()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
