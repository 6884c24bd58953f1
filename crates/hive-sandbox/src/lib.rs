//! Isolation backends for agent code (and, later, workflow code nodes).
//!
//! One backend-neutral API ([`SandboxBackend`], [`Sandbox`], [`SandboxSpec`]) and, for now, one
//! backend: [`process::ProcessBackend`], Linux namespaces through bubblewrap, seccomp, Landlock,
//! an unprivileged host uid per sandbox, and cgroup v1 limits (rlimits where cgroups cannot be
//! written). A microVM backend is meant to implement the same traits; nothing in them names a
//! process, a pid or a cgroup. The layers and what each one does not stop are in
//! `docs/sandbox.md`.

mod api;
pub mod init;
pub mod process;
mod spec;

pub use api::{
    BackendCapabilities, ExitReason, LimitEnforcement, OutputStream, Sandbox, SandboxBackend,
    SandboxError, SandboxExit, SandboxStats,
};
pub use spec::{
    AGENT_MOUNT, CA_BUNDLE, CA_CERTS_MOUNT, CHANNEL_MOUNT, PROXY_SOCKET_MOUNT, ResourceLimits,
    SANDBOX_ENV_CA_DIR, SANDBOX_ENV_CA_FILE, SANDBOX_ENV_PROXY_SOCKET, SCRATCH_MOUNT, SandboxEnv,
    SandboxId, SandboxSpec,
};
