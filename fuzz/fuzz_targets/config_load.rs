//! The configuration loader (`hive_core::kernel::config::Config::load`) from a map of
//! variables, and its `HIVE_CONFIG` TOML file. Input: `NAME=VALUE` lines, then optionally a NUL
//! byte and the TOML file's text (written to a private temporary file named by `HIVE_CONFIG`).
//!
//! Secrets read from files (`NAME_FILE`, in the environment or the TOML) are left out: they
//! read paths of the host, which a fuzzer has no business opening; the file reader itself is
//! covered by the loader's tests. Property: a configuration that loads has every value within
//! the ranges its own check report states (it renders without a panic), and loading the same
//! variables again gives the same result.

#![no_main]

use hive_core::kernel::config::{Config, EnvSource, render_check};
use hive_fuzz::fields;
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

fuzz_target!(|data: &[u8]| {
    let parts = fields(data, 2);
    let Ok(variables) = std::str::from_utf8(parts[0]) else {
        return;
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for line in variables.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if name.ends_with("_FILE") || name == "HIVE_CONFIG" {
            return;
        }
        pairs.push((name.to_owned(), value.to_owned()));
    }
    let dir = tempfile::tempdir();
    if let (Some(toml), Ok(dir)) = (parts.get(1), &dir) {
        if toml.windows(5).any(|w| w == b"_FILE") {
            return;
        }
        let path = dir.path().join("hive.toml");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(toml));
        if written.is_err() {
            return;
        }
        pairs.push(("HIVE_CONFIG".to_owned(), path.display().to_string()));
    }
    let env = EnvSource::from_pairs(pairs);
    let first = Config::load(&env);
    let second = Config::load(&env);
    match (&first, &second) {
        (Ok(config), Ok(_)) => {
            let _ = render_check(config, "fuzz");
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("the same variables load once and fail once"),
    }
});
