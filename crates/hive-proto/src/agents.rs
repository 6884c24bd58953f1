//! Agents on the wire: what an operator registers, and how the API shows it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Names one closed set of lower-case words, with `as_str` and parsing.
macro_rules! word_enum {
    (
        $(#[$meta:meta])* $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// endpoint, the protocol's conformance agent, or code Hive runs in a sandbox.
    AgentKind {
        Remote => "remote",
        Llm => "llm",
        Conformance => "conformance",
        Hosted => "hosted",
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsView {
    pub requests_per_minute: u32,
    /// 0: no daily token budget.
    pub tokens_per_day: u64,
    pub concurrent_tasks: u32,
    pub timeout_seconds: u32,
}

/// `POST /api/v1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportAgentResponse {
    pub card_url: String,
    /// The card in the A2A 1.0 shape (a 0.3 card converted).
    pub card: serde_json::Value,
    /// A preview: the registration that `create: true` would make. Created: the agent.
    pub agent: serde_json::Value,
}

/// `?days=` of `GET /api/v1/agents/{id}/usage` (1 to 90, default 14).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default)]
    pub days: Option<u32>,
}

/// One UTC day of an agent's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentUsageView {
    pub agent_id: String,
    pub days: Vec<UsageDayView>,
}

/// One call to an agent (an item of `GET /api/v1/agents/{id}/calls`), from its audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
