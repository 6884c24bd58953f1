use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `GET /api/health`: `{"ok":true}`, or `{"ok":false}` (503) when a deep check
/// fails. It never says why: the detail is for authenticated operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthResponse {
    pub ok: bool,
}

/// The body of `GET /api/v1/system/health` (viewers and above): this replica's view of what
/// Hive depends on. Every reason is a fixed code: no address, connection string or driver
/// error ever appears (those go to the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemHealth {
    /// `down` when a required component is down (the answer is then 503), `degraded` when any
    /// component is not `ok`, else `ok`.
    pub state: ComponentState,
    /// The id of the replica that answered (random, chosen at its start).
    pub node: String,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: time::OffsetDateTime,
    pub components: Vec<ComponentHealth>,
}

impl SystemHealth {
    /// The component named `name`, if it was checked.
    pub fn component(&self, name: Component) -> Option<&ComponentHealth> {
        self.components.iter().find(|c| c.name == name)
    }
}

/// How a component is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    Ok,
    Degraded,
    Down,
}

impl ComponentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

/// What the health report checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Database,
    Redis,
    Nats,
    Jobs,
    Sandbox,
    Disk,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Redis => "redis",
            Self::Nats => "nats",
            Self::Jobs => "jobs",
            Self::Sandbox => "sandbox",
            Self::Disk => "disk",
        }
    }
}

/// Why a component is not `ok` (or, for one that is, a fact worth knowing: `disabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthReason {
    /// The service refused or dropped the connection, or answered with an error.
    Unreachable,
    /// No answer within the check's time limit.
    TimedOut,
    /// This replica's job runner is not running.
    RunnerStopped,
    /// No replica recorded a job run lately: no replica leads.
    NoRecentRun,
    /// The job history could not be read.
    HistoryUnreadable,
    /// Hosted agents are off on this replica (`HIVE_SANDBOX=off`).
    Disabled,
    /// This process does not run hosted agents (only `hive serve` does).
    NotThisProcess,
    /// The sandbox backend cannot run on this host (no usable bubblewrap or namespaces).
    Unavailable,
    /// The sandbox runs without cgroups: limits hold per process, not for the whole sandbox.
    LimitsPerProcess,
    /// Free space under `HIVE_HEALTH_DISK_DEGRADED_MB`.
    LowSpace,
    /// Free space under `HIVE_HEALTH_DISK_DOWN_MB`.
    OutOfSpace,
    /// The data directory's file system could not be queried.
    Unreadable,
}

impl HealthReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::TimedOut => "timed_out",
            Self::RunnerStopped => "runner_stopped",
            Self::NoRecentRun => "no_recent_run",
            Self::HistoryUnreadable => "history_unreadable",
            Self::Disabled => "disabled",
            Self::NotThisProcess => "not_this_process",
            Self::Unavailable => "unavailable",
            Self::LimitsPerProcess => "limits_per_process",
            Self::LowSpace => "low_space",
            Self::OutOfSpace => "out_of_space",
            Self::Unreadable => "unreadable",
        }
    }
}

/// One component of [`SystemHealth`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentHealth {
    pub name: Component,
    /// Whether Hive cannot serve while it is down (then the answer is 503).
    pub required: bool,
    pub state: ComponentState,
    /// How long the check took, in milliseconds.
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<HealthReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobsHealth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxHealth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskHealth>,
}

/// The job runner: who leads, and the last run any replica recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobsHealth {
    /// Whether this replica holds the leader lease.
    pub this_node_leads: bool,
    /// The node that ran the last job (the leader then), or this one when it leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_node: Option<String>,
    /// When this replica took the lease, while it holds it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub leader_since: Option<time::OffsetDateTime>,
    /// When this replica's runner last checked its leadership.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub last_tick_at: Option<time::OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastJobRun>,
}

/// The newest run in the job history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LastJobRun {
    pub job: String,
    pub node: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    /// `running`, `succeeded` or `failed`.
    pub outcome: String,
}

/// The sandbox backend of this replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxHealth {
    /// The backend hosted agents run in here (`process`), when one is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Whether cgroups limit each sandbox as a whole (and pause it).
    pub cgroups: bool,
    /// The Landlock ABI applied inside sandboxes, if the kernel has Landlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<u8>,
}

/// The file system of the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskHealth {
    /// Bytes free for Hive (not counting the space reserved for root).
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// Under this, the disk is `degraded` (`HIVE_HEALTH_DISK_DEGRADED_MB`).
    pub degraded_below_bytes: u64,
    /// Under this, the disk is `down` (`HIVE_HEALTH_DISK_DOWN_MB`).
    pub down_below_bytes: u64,
}
