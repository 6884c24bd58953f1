//! What a sandbox is asked to run, and with which limits.

use crate::api::SandboxError;
use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Where the agent's files appear inside the sandbox (read-only).
pub const AGENT_MOUNT: &str = "/agent";
/// The sandbox's private writable scratch space (a size-capped tmpfs).
pub const SCRATCH_MOUNT: &str = "/tmp";
/// Where the channel directory appears inside the sandbox (read-write): the agent listens on a
/// Unix socket here and Hive calls it through that socket.
pub const CHANNEL_MOUNT: &str = "/hive/channel";
/// Where the proxy socket appears inside the sandbox, when the spec names one.
pub const PROXY_SOCKET_MOUNT: &str = "/hive/proxy.sock";
/// The variable a sandbox with a proxy socket finds its path in.
pub const SANDBOX_ENV_PROXY_SOCKET: &str = "HIVE_PROXY_SOCKET";
/// The host's public CA certificates, seen read-only at the same path when the host has the
/// directory: agents reach HTTPS hosts through the proxy's CONNECT tunnels and verify the
/// hosts' certificates themselves. Nothing else of the host's `/etc` is inside.
pub const CA_CERTS_MOUNT: &str = "/etc/ssl/certs";
/// The bundle of every CA certificate in [`CA_CERTS_MOUNT`] (Debian's layout).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Set to [`CA_BUNDLE`] when the host has it (OpenSSL, Python, curl and most TLS clients read
/// it).
pub const SANDBOX_ENV_CA_FILE: &str = "SSL_CERT_FILE";
/// Set to [`CA_CERTS_MOUNT`] when the host has [`CA_BUNDLE`].
pub const SANDBOX_ENV_CA_DIR: &str = "SSL_CERT_DIR";

/// A sandbox's name: 1–48 characters of `a-z`, `0-9` and `-`, not starting with `-`. It names
/// the sandbox's cgroups and appears in logs, so it is never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SandboxId(String);

impl SandboxId {
    pub fn new(id: impl Into<String>) -> Result<Self, SandboxError> {
        let id = id.into();
        let well_formed = !id.is_empty()
            && id.len() <= 48
            && !id.starts_with('-')
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if well_formed {
            Ok(Self(id))
        } else {
            Err(SandboxError::InvalidSpec(
                "a sandbox id is 1 to 48 characters of a-z, 0-9 and '-', not starting with '-'"
                    .into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SandboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sandbox's environment: exactly these variables and nothing of Hive's own. Values may be
/// secrets (an agent's API keys), so `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct SandboxEnv {
    /// Values are wiped from memory when the spec is dropped: they may be secrets.
    vars: Vec<(String, Zeroizing<String>)>,
}

impl SandboxEnv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` (replacing an earlier value). A name is non-empty, has no `=` and no NUL;
    /// a value has no NUL.
    pub fn set(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<&mut Self, SandboxError> {
        let name = name.into();
        let value = value.into();
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(SandboxError::InvalidSpec(
                "an environment variable's name is non-empty, without '=' or NUL".into(),
            ));
        }
        if value.contains('\0') {
            // The name is not secret; the value is, and is not repeated.
            return Err(SandboxError::InvalidSpec(format!(
                "the value of environment variable {name} contains NUL"
            )));
        }
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, Zeroizing::new(value)));
        Ok(self)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|(n, _)| n.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.vars.iter().any(|(n, _)| n == name)
    }

    /// The variables with their values, for a backend to hand to the sandbox.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl fmt::Debug for SandboxEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.vars.iter().map(|(n, _)| (n, "<redacted>")))
            .finish()
    }
}

/// What a sandbox may consume. A backend enforces each limit with the best means it has and says
/// which in [`crate::BackendCapabilities`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Memory of all the sandbox's processes together (scratch files count where the backend
    /// charges them, as cgroups do). Past it the sandbox is killed and its exit says
    /// [`crate::ExitReason::OutOfMemory`].
    pub memory_bytes: u64,
    /// CPU time per second of wall time, in thousandths of one core (1000 = one full core).
    pub cpu_millicores: u32,
    /// Processes and threads alive at once; past it `fork` and `clone` fail with EAGAIN.
    pub max_processes: u32,
    /// Open file descriptors per process; past it `open` fails with EMFILE.
    pub max_open_files: u32,
    /// CPU seconds each process may use in all (RLIMIT_CPU); past it the process is killed
    /// ([`crate::ExitReason::CpuTimeLimit`]). `None`: no such cap, only the rate above.
    pub cpu_seconds: Option<u64>,
    /// Size of the writable scratch space ([`SCRATCH_MOUNT`]); past it writes fail with ENOSPC.
    pub scratch_bytes: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            cpu_millicores: 1000,
            max_processes: 64,
            max_open_files: 256,
            cpu_seconds: None,
            scratch_bytes: 64 << 20,
        }
    }
}

impl ResourceLimits {
    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        let fail = |what: &str| Err(SandboxError::InvalidSpec(what.into()));
        if self.memory_bytes < 8 << 20 {
            return fail("the memory limit is at least 8 MiB");
        }
        if self.cpu_millicores < 10 {
            return fail("the CPU limit is at least 10 millicores");
        }
        if self.max_processes < 1 {
            return fail("the process limit is at least 1");
        }
        if self.max_open_files < 16 {
            return fail("the open files limit is at least 16");
        }
        if self.scratch_bytes < 1 << 20 {
            return fail("the scratch space is at least 1 MiB");
        }
        Ok(())
    }
}

/// Everything a backend needs to start one sandbox.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    pub id: SandboxId,
    /// The agent's files on the host, seen read-only at [`AGENT_MOUNT`].
    pub agent_root: PathBuf,
    /// The program, as a path inside the sandbox (e.g. `/usr/bin/python3`), and its arguments.
    pub command: Vec<String>,
    /// The working directory inside the sandbox ([`AGENT_MOUNT`] when `None`).
    pub working_dir: Option<String>,
    pub env: SandboxEnv,
    pub limits: ResourceLimits,
    /// A host directory, seen read-write at [`CHANNEL_MOUNT`]: the agent listens on a Unix
    /// socket in it and Hive calls the agent through it. The backend makes it usable by the
    /// sandbox (on the process backend: owned by the sandbox's host uid, mode 0700).
    pub channel_dir: PathBuf,
    /// A Unix socket on the host that reaches Hive's HTTP proxy, seen at
    /// [`PROXY_SOCKET_MOUNT`]; its path is given in [`SANDBOX_ENV_PROXY_SOCKET`]. It is the
    /// sandbox's only way out: there is no network interface but its own loopback.
    pub proxy_socket: Option<PathBuf>,
}

impl SandboxSpec {
    /// A spec with default limits, working directory and no proxy.
    pub fn new(
        id: SandboxId,
        agent_root: impl Into<PathBuf>,
        command: Vec<String>,
        channel_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            id,
            agent_root: agent_root.into(),
            command,
            working_dir: None,
            env: SandboxEnv::new(),
            limits: ResourceLimits::default(),
            channel_dir: channel_dir.into(),
            proxy_socket: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        let Some(program) = self.command.first() else {
            return Err(SandboxError::InvalidSpec("the command is empty".into()));
        };
        if !program.starts_with('/') {
            return Err(SandboxError::InvalidSpec(
                "the program is an absolute path inside the sandbox".into(),
            ));
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err(SandboxError::InvalidSpec(
                "an argument of the command contains NUL".into(),
            ));
        }
        if let Some(dir) = &self.working_dir
            && (!dir.starts_with('/') || dir.contains('\0'))
        {
            return Err(SandboxError::InvalidSpec(
                "the working directory is an absolute path inside the sandbox".into(),
            ));
        }
        if !self.agent_root.is_absolute() || !self.channel_dir.is_absolute() {
            return Err(SandboxError::InvalidSpec(
                "the agent root and the channel directory are absolute host paths".into(),
            ));
        }
        if self.proxy_socket.as_ref().is_some_and(|p| !p.is_absolute()) {
            return Err(SandboxError::InvalidSpec(
                "the proxy socket is an absolute host path".into(),
            ));
        }
        for reserved in [
            SANDBOX_ENV_PROXY_SOCKET,
            SANDBOX_ENV_CA_FILE,
            SANDBOX_ENV_CA_DIR,
            "PWD",
        ] {
            if self.env.contains(reserved) {
                return Err(SandboxError::InvalidSpec(format!(
                    "{reserved} is set by the sandbox itself"
                )));
            }
        }
        self.limits.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_environment_never_shows_a_value() {
        let mut env = SandboxEnv::new();
        env.set("OPENAI_API_KEY", "sk-very-secret-value").unwrap();
        let spec = SandboxSpec {
            env,
            ..SandboxSpec::new(
                SandboxId::new("a1").unwrap(),
                "/srv/a",
                vec!["/usr/bin/true".into()],
                "/run/a",
            )
        };
        let shown = format!("{spec:?}");
        assert!(shown.contains("OPENAI_API_KEY"), "{shown}");
        assert!(!shown.contains("sk-very-secret-value"), "{shown}");
    }

    #[test]
    fn an_error_about_a_value_names_the_variable_not_the_value() {
        let mut env = SandboxEnv::new();
        let err = env.set("TOKEN", "secret\0tail").err().unwrap().to_string();
        assert!(err.contains("TOKEN") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn ids_are_restricted_to_a_safe_alphabet() {
        for bad in ["", "-a", "A", "a/b", "a.b", "../x", &"a".repeat(49)] {
            assert!(SandboxId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(SandboxId::new("agent-7-x").is_ok());
    }

    #[test]
    fn variables_the_sandbox_sets_itself_are_refused_in_a_spec() {
        for reserved in ["HIVE_PROXY_SOCKET", "SSL_CERT_FILE", "SSL_CERT_DIR", "PWD"] {
            let mut spec = SandboxSpec::new(
                SandboxId::new("a").unwrap(),
                "/a",
                vec!["/usr/bin/true".into()],
                "/c",
            );
            spec.env.set(reserved, "/elsewhere").unwrap();
            let err = spec.validate().err().unwrap().to_string();
            assert!(err.contains(reserved), "{err}");
        }
    }

    #[test]
    fn relative_programs_and_tiny_limits_are_refused() {
        let id = SandboxId::new("a").unwrap();
        let spec = SandboxSpec::new(id.clone(), "/a", vec!["python3".into()], "/c");
        assert!(spec.validate().is_err());
        let mut spec = SandboxSpec::new(id, "/a", vec!["/usr/bin/python3".into()], "/c");
        assert!(spec.validate().is_ok());
        spec.limits.memory_bytes = 1024;
        assert!(spec.validate().is_err());
    }
}
