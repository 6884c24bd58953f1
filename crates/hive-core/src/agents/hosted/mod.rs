//! Hosted agents: code Hive runs itself. `bundle` checks and unpacks the tar.gz of an agent's
//! code and reads its manifest; `runtime` starts a bundle's program in a sandbox with its
//! secrets, its proxy and its channel; `channel` is how Hive calls it (A2A over its Unix
//! socket) and `forward` how a call reaching another replica gets to the one running it;
//! `logs` keeps what it prints in a size-capped ring on disk; `service` is the
//! hosted agents of this replica (bundle versions, start and stop, leases, the watchdog).

pub mod bundle;
pub mod channel;
pub mod forward;
pub mod logs;
mod runtime;
mod service;

pub use runtime::{
    HostedAgent, HostedError, HostedLaunch, HostedRuntime, Launched, RefusalSubject,
    SANDBOX_ENV_AGENT_SOCKET, SandboxLaunch, sandbox_limits,
};
pub use service::{
    BUNDLES_KEPT, HostedAgents, HostedParts, HostedRoute, LEASE_TTL, RECONCILE_EVERY,
};
