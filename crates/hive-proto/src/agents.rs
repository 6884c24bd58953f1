//! Agents on the wire: what an operator registers, and how the API shows it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// Names one closed set of lower-case words, with `as_str` and parsing.
macro_rules! word_enum {
    (
        $(#[$meta:meta])* $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = crate::identity::UnknownName;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                match raw {
                    $($text => Ok(Self::$variant),)+
                    other => Err(crate::identity::UnknownName(other.to_owned())),
                }
            }
        }
    };
}

word_enum!(
    /// Who may see and call an agent: its owner (and admins), also federated peers, or anyone
    /// on the public tier.
    AgentVisibility {
        Private => "private",
        Federation => "federation",
        Public => "public",
    }
);

word_enum!(
    /// How an agent runs: an upstream A2A agent, the built-in LLM agent on an OpenAI-compatible
    /// endpoint, the protocol's conformance agent, code Hive runs in a sandbox, or a workflow
    /// published by its a2a trigger (made and kept by the workflow, never registered by hand).
    AgentKind {
        Remote => "remote",
        Llm => "llm",
        Conformance => "conformance",
        Hosted => "hosted",
        Workflow => "workflow",
    }
);

word_enum!(
    /// Where an agent's lifecycle stands.
    AgentStatus {
        Created => "created",
        Starting => "starting",
        Ready => "ready",
        Stopped => "stopped",
        Error => "error",
        /// A hosted agent whose processes are frozen (they keep their memory, get no CPU).
        Paused => "paused",
    }
);

/// One A2A skill an agent offers (shown in agent cards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Skill {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An agent's limits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsView {
    pub requests_per_minute: u32,
    /// 0: no daily token budget.
    pub tokens_per_day: u64,
    pub concurrent_tasks: u32,
    pub timeout_seconds: u32,
}

/// `POST /api/v1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAgentRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "private")]
    pub visibility: AgentVisibility,
    pub kind: AgentKind,
    /// The kind's settings (credentials as secret ids only).
    #[serde(default = "empty_object")]
    pub runtime: serde_json::Value,
    #[serde(default)]
    pub skills: Option<Vec<Skill>>,
    #[serde(default)]
    pub limits: Option<LimitsView>,
}

fn private() -> AgentVisibility {
    AgentVisibility::Private
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// `PATCH /api/v1/agents/{id}`: absent fields stay.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAgentRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub visibility: Option<AgentVisibility>,
    #[serde(default)]
    pub runtime: Option<serde_json::Value>,
    #[serde(default)]
    pub skills: Option<Vec<Skill>>,
    #[serde(default)]
    pub limits: Option<LimitsView>,
}

/// An agent as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub description: String,
    pub visibility: AgentVisibility,
    pub kind: AgentKind,
    pub runtime: serde_json::Value,
    pub skills: Vec<Skill>,
    pub limits: LimitsView,
    pub status: AgentStatus,
    pub status_detail: String,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

/// `POST /api/v1/agents/import`: a remote agent from its agent card.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportAgentRequest {
    /// The agent's base URL (the card is read from the host's well-known path) or the card's.
    pub url: String,
    /// `false` (the default): only preview what would be registered.
    #[serde(default)]
    pub create: bool,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "private")]
    pub visibility: AgentVisibility,
    #[serde(default)]
    pub credential_secret_id: Option<String>,
}

/// The card read and the agent it makes: proposed (a preview) or registered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportAgentResponse {
    pub card_url: String,
    /// The card in the A2A 1.0 shape (a 0.3 card converted).
    pub card: serde_json::Value,
    /// A preview: the registration that `create: true` would make. Created: the agent.
    pub agent: serde_json::Value,
}

/// `?days=` of `GET /api/v1/agents/{id}/usage` (1 to 90, default 14).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default)]
    pub days: Option<u32>,
}

/// One UTC day of an agent's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageDayView {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// `GET /api/v1/agents/{id}/usage`: every day asked for, oldest first, days without calls
/// with zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentUsageView {
    pub agent_id: String,
    pub days: Vec<UsageDayView>,
}

/// One call to an agent (an item of `GET /api/v1/agents/{id}/calls`), from its audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentCallView {
    /// The audit record's id.
    pub id: String,
    /// When the call was recorded: when it was answered, or when its stream ended.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// Who called, as the audit log names them (`user:<id>`, `token:<id>`…).
    pub caller: String,
    /// `a2a.call`, `mesh.federation.inbound_jsonrpc` or `mesh.a2a.public_tier.call`.
    pub action: String,
    /// The JSON-RPC method (`SendMessage`, `SendStreamingMessage`…).
    pub method: Option<String>,
    /// How the call ended ([audit.md](../../docs/audit.md#calls-to-agents)).
    pub outcome: String,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub duration_ms: Option<u64>,
}

/// One kept version of a hosted agent's bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleView {
    pub version: i64,
    /// SHA-256 of the archive, lower-case hex.
    pub sha256: String,
    pub size_bytes: i64,
    /// The manifest (`hive-agent.toml`) as the bundle holds it.
    pub manifest: String,
    /// Who uploaded it (absent once that account is deleted).
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// Whether the agent's next start runs this version.
    pub active: bool,
}

/// `POST /api/v1/agents/{id}/bundle/rollback`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to run from the next start; absent: the one before the active one.
    #[serde(default)]
    pub version: Option<i64>,
}

/// One line a hosted agent printed (its secrets' values cut out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogLineView {
    /// Counts up for the agent's whole life, across its restarts.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub text: String,
}

/// `GET /api/v1/agents/{id}/logs`: lines oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogPageView {
    pub lines: Vec<LogLineView>,
    /// Pass as `after` for the next page; absent when nothing more is kept now.
    pub next: Option<u64>,
    /// The oldest line still kept: lines before it rolled off the ring.
    pub first_kept: Option<u64>,
}

/// `GET /api/v1/agents/{id}/stats`: what a hosted agent uses (measurements absent where the
/// replica answering does not run it, or the host cannot measure them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostedStatsView {
    pub status: AgentStatus,
    /// The replica that runs it.
    pub node: Option<String>,
    pub bundle_version: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<time::OffsetDateTime>,
    /// Times it ended by itself and was restarted (on this replica, since it started).
    pub restarts: u32,
    pub cpu_seconds: Option<f64>,
    pub cpu_throttled_seconds: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
    pub processes: Option<u64>,
    pub paused: bool,
    /// Requests through its proxy, refused ones among them, and bytes each way.
    pub proxy_requests: u64,
    pub proxy_refusals: u64,
    pub proxy_bytes_up: u64,
    pub proxy_bytes_down: u64,
}
