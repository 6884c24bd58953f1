//! How tests find the services they need (`HIVE_TEST_DATABASE_URL`, `HIVE_TEST_REDIS_URL`,
//! `HIVE_TEST_NATS_URL`): without one a test skips its part, saying so on stderr past libtest's
//! output capture (a `skipped:` line per test) — except under
//! CI, where a missing service fails the test, so that CI cannot pass by skipping. It lives in
//! the lowest crate every test helper shares (`hive-state` and the PostgreSQL backend build
//! on it).
#![allow(clippy::panic)]

/// Whether this is a CI run: `CI` set to anything but empty, `0` or `false` (CI runners set
/// `CI=true`; `.ci/run` does too).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.trim(), "" | "0" | "false"))
}

/// What a test that needs `service` does when it is not there: under CI, fail; otherwise
/// skip, saying so (see [`report_skip`]).
pub fn missing(service: &str) {
    assert!(
        !under_ci(),
        "{service} is missing, and under CI (CI is set) every test must run: configure it"
    );
    report_skip(service);
}

/// Writes `skipped: BINARY TEST: needs SERVICE` to the process's stderr, once per test and
/// service. libtest captures what `eprintln!` prints and shows it only when a test fails, so a
/// test that skipped its part would read as an ordinary pass; the line goes to the stderr
/// handle itself, which the capture does not touch, so `cargo test` shows it under the test
/// binary's `Running` line (`cargo test --workspace 2>&1 | grep -o 'skipped: .*'` lists them).
pub fn report_skip(service: &str) {
    use std::io::Write as _;
    static REPORTED: std::sync::Mutex<std::collections::BTreeSet<(String, String)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    // libtest names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .unwrap_or("(outside a test)")
        .to_owned();
    let first_time = REPORTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert((test.clone(), service.to_owned()));
    if first_time {
        let line = format!("skipped: {} {test}: needs {service}\n", test_binary());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// The running test binary's name without cargo's hash suffix (`conformance-0123abcd` →
/// `conformance`).
fn test_binary() -> String {
    let stem = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => stem,
    }
}

/// The URL of the test service in the variable `var`, if set. Under CI a missing one fails the
/// calling test.
pub fn service_url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok().filter(|v| !v.is_empty());
    if url.is_none() {
        missing(&format!("{var} (not set)"));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = "HIVE_TEST_ENV_SKIP_PROBE";

    /// Skips when run as the probe of the test below, passes otherwise.
    #[test]
    fn skip_probe() {
        if std::env::var_os(PROBE).is_some() {
            missing("a probe service");
        }
    }

    /// A skip shows in `cargo test`'s output, captured or not, naming the binary, the test and
    /// what it needed; the test itself still passes.
    #[test]
    fn a_skip_is_reported_past_the_output_capture() {
        let run = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "test_env::tests::skip_probe", "--test-threads=1"])
            .env(PROBE, "1")
            .env_remove("CI")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success(), "{stdout}{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        let expected = format!(
            "skipped: {} test_env::tests::skip_probe: needs a probe service\n",
            test_binary()
        );
        assert_eq!(stderr.matches(&expected).count(), 1, "{stderr}");
        assert!(test_binary().starts_with("hive_store"), "{}", test_binary());
    }

    /// Under CI the same test fails instead.
    #[test]
    fn under_ci_a_missing_service_fails_the_test() {
        let run = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "test_env::tests::skip_probe", "--test-threads=1"])
            .env(PROBE, "1")
            .env("CI", "true")
            .output()
            .unwrap();
        assert!(!run.status.success());
        assert!(
            String::from_utf8_lossy(&run.stdout).contains("a probe service is missing"),
            "{}",
            String::from_utf8_lossy(&run.stdout)
        );
    }
}
