//! What the test suite leaves for the secret-leak check (`scripts/check-secret-leaks`): every
//! log line of the servers it runs, every audit record they wrote, the output of every `hive`
//! process, and the secret values the tests used (the canaries). The check greps the first
//! three for the fourth.
//!
//! Everything lands in `HIVE_TEST_CAPTURE_DIR` (default `target/hive-test-capture` in the
//! workspace), one file per test process and kind.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The variable naming the capture directory.
pub const CAPTURE_DIR: &str = "HIVE_TEST_CAPTURE_DIR";

/// The capture directory (created on first use).
pub fn capture_dir() -> PathBuf {
    let dir = std::env::var_os(CAPTURE_DIR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/hive-test-capture")
        });
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// `<test binary>-<pid>-<kind>.log` in the capture directory.
fn file_of(kind: &str) -> PathBuf {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".to_owned());
    capture_dir().join(format!("{binary}-{}-{kind}.log", std::process::id()))
}

/// Appends `text` to this process's capture of `kind`.
pub fn append(kind: &str, text: &str) {
    static WRITING: Mutex<()> = Mutex::new(());
    let _guard = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file_of(kind))
    {
        let _ = file.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = file.write_all(b"\n");
        }
    }
}

/// Registers a secret value a test uses: the leak check fails if it shows up in any log line,
/// process output or audit record. Values shorter than 8 characters are not registered (they
/// would match by chance).
pub fn canary(value: &str) {
    if value.len() >= 8 && !value.contains('\n') {
        append("canaries", value);
    }
}

/// Registers the value of a configuration variable as a canary when the configuration calls it
/// a secret (one table decides, the one `hive config check` masks by). For a URL only its
/// password is secret: the rest names a host, which may well be logged.
pub fn config_variable(name: &str, value: &str) {
    if !hive_core::kernel::config::spec::find(name).is_some_and(|spec| spec.secret) {
        return;
    }
    match url::Url::parse(value) {
        Ok(url) if url.has_host() => {
            if let Some(password) = url.password() {
                canary(password);
            }
        }
        _ => canary(value),
    }
}

/// Sends this process's log lines (JSON, `info` and `debug` for Hive's crates) to the capture
/// directory. Once per process; a no-op if a test installed a subscriber of its own first.
pub fn install_log_capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::new(
            "info,hive_core=debug,hive_server=debug,hive_store=debug,hive_state=debug,\
             hive_crypto=debug,hive_store_sqlite=debug,hive_store_postgres=debug",
        );
        let path = file_of("logs");
        let writer = move || -> Box<dyn Write> {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                Ok(file) => Box::new(file),
                Err(_) => Box::new(std::io::sink()),
            }
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .flatten_event(true)
            .with_writer(writer)
            .try_init();
    });
}
