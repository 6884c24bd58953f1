//! mimalloc's defaults for a server that sees bursts: freed pages go back to the system 50 ms
//! after they are freed, from arenas committed as they are used rather than up front. With
//! mimalloc's own defaults (a 1 s purge delay, eagerly committed arenas) a process that served a
//! burst of A2A calls and then went quiet kept about twice its working set resident; with these
//! it returns to it (docs/benchmarks.md). mimalloc reads its options from the environment when
//! the process starts, before `main`, and setting them at run time would need `unsafe` FFI:
//! so the process starts itself once more with the options in its environment. An option the
//! operator set is left as they set it.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The options and the values Hive starts with unless the operator set them.
const DEFAULTS: [(&str, &str); 2] = [
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
    ("MIMALLOC_PURGE_DELAY", "50"),
];

/// The options missing from `environment`, with Hive's values for them.
fn missing(environment: impl Fn(&str) -> Option<OsString>) -> Vec<(&'static str, &'static str)> {
    DEFAULTS
        .into_iter()
        .filter(|(name, _)| environment(name).is_none())
        .collect()
}

/// Replaces this process with itself, the missing options set; returns when none is missing or
/// when the new image cannot be started (then the allocator keeps its own defaults: the tuning
/// saves memory, it is never a reason not to run).
pub fn tune() {
    let missing = missing(|name| std::env::var_os(name));
    if missing.is_empty() {
        return;
    }
    let Ok(executable) = std::env::current_exe() else {
        return;
    };
    let mut arguments = std::env::args_os();
    let Some(name) = arguments.next() else {
        return;
    };
    // `exec` returns only on failure; the same pid goes on either way.
    let _failed = Command::new(executable)
        .arg0(name)
        .args(arguments)
        .envs(missing)
        .exec();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_options_the_operator_left_unset_are_added() {
        assert_eq!(missing(|_| None), DEFAULTS.to_vec());
        let operator_set_delay =
            |name: &str| (name == "MIMALLOC_PURGE_DELAY").then(|| OsString::from("1000"));
        assert_eq!(
            missing(operator_set_delay),
            vec![("MIMALLOC_ARENA_EAGER_COMMIT", "0")]
        );
        assert!(missing(|_| Some(OsString::from("1"))).is_empty());
    }
}
