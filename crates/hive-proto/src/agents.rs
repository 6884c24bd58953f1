//! Agents on the wire: what an operator registers, and how the API shows it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Names one closed set of lower-case words, with `as_str` and parsing.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($variant),+
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
    /// endpoint, or the protocol's conformance agent.
    AgentKind {
        Remote => "remote",
        Llm => "llm",
        Conformance => "conformance",
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
    }
);
