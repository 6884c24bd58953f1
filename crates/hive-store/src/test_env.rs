//! How tests find the services they need (`HIVE_TEST_DATABASE_URL`, `HIVE_TEST_REDIS_URL`,
//! `HIVE_TEST_NATS_URL`): without one a test skips its part, saying so on stderr — except under
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
/// skip, saying so.
pub fn missing(service: &str) {
    assert!(
        !under_ci(),
        "{service} is missing, and under CI (CI is set) every test must run: configure it"
    );
    eprintln!("skipped: {service} is missing (the part of the test that needs it does not run)");
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
