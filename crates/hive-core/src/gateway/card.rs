//! Agent cards: the instance's (one skill per agent the caller may see) and each agent's, and
//! the gateway serving them (with when what they say last changed).

use super::{Gateway, Target, internal, sees};
use crate::agents::AgentError;
use crate::agents::skills_of;
use crate::kernel::caller::Caller;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::v1::{
    AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill,
    HttpAuthSecurityScheme, SecurityRequirement, SecurityScheme, StringList,
};
use hive_a2a::{jsonrpc::Version, v03};
use hive_proto::agents::AgentStatus;
use hive_store::AgentRow;
use hive_store::PageRequest;
use std::collections::BTreeMap;

/// The security scheme every card names: an API token (scope `execute`) or a session.
const SCHEME: &str = "hiveToken";

/// What a card says about where Hive is and what it supports.
#[derive(Debug, Clone)]
pub(crate) struct CardBase {
    /// `AUTH_URL` without a trailing slash.
    pub base_url: String,
    pub push_notifications: bool,
}

fn interfaces(url: &str, version: Version) -> Vec<AgentInterface> {
    let interface = |protocol_version: &str| AgentInterface {
        url: url.to_owned(),
        protocol_binding: hive_a2a::v1::BINDING_JSONRPC.to_owned(),
        tenant: String::new(),
        protocol_version: protocol_version.to_owned(),
    };
    // The caller's version first: a 0.3 card is written from the first interface.
    match version {
        Version::V1_0 => vec![interface("1.0"), interface(v03::PROTOCOL_VERSION)],
        Version::V0_3 => vec![interface(v03::PROTOCOL_VERSION), interface("1.0")],
    }
}

fn card(
    base: &CardBase,
    version: Version,
    name: String,
    description: String,
    rpc_path: &str,
    skills: Vec<AgentSkill>,
) -> AgentCard {
    let url = format!("{}{rpc_path}", base.base_url);
    let scheme = SecurityScheme::HttpAuth(HttpAuthSecurityScheme {
        description: "A Hive API token with the execute scope (or a signed-in session)".into(),
        scheme: "bearer".into(),
        bearer_format: "hive_…".into(),
    });
    AgentCard {
        name,
        description,
        supported_interfaces: interfaces(&url, version),
        provider: Some(AgentProvider {
            url: base.base_url.clone(),
            organization: "Hive".into(),
        }),
        version: env!("CARGO_PKG_VERSION").into(),
        documentation_url: None,
        capabilities: AgentCapabilities {
            streaming: Some(true),
            push_notifications: Some(base.push_notifications),
            extensions: Vec::new(),
            extended_agent_card: Some(true),
        },
        security_schemes: BTreeMap::from([(SCHEME.to_owned(), scheme)]),
        security_requirements: vec![SecurityRequirement {
            schemes: BTreeMap::from([(SCHEME.to_owned(), StringList::default())]),
        }],
        default_input_modes: vec!["text/plain".into(), "application/json".into()],
        default_output_modes: vec!["text/plain".into(), "application/json".into()],
        skills,
        signatures: Vec::new(),
        icon_url: None,
    }
}

/// The instance card: one skill per agent, named by the agent's name (what a message's
/// `metadata.skill` names to reach it).
pub(crate) fn instance_card(base: &CardBase, version: Version, agents: &[AgentRow]) -> AgentCard {
    let skills = agents
        .iter()
        .map(|agent| AgentSkill {
            id: agent.name.clone(),
            name: agent.name.clone(),
            description: described(agent, ""),
            tags: tagged(
                agent,
                skills_of(agent).into_iter().flat_map(|skill| skill.tags),
            ),
            ..AgentSkill::default()
        })
        .collect();
    card(
        base,
        version,
        "Hive".into(),
        "The agents of this Hive instance, one skill each: name the skill in the message's \
         metadata (\"skill\") to reach its agent."
            .into(),
        "/api/a2a/jsonrpc",
        skills,
    )
}

/// One agent's card: its own skills, its own endpoint.
pub(crate) fn agent_card(base: &CardBase, version: Version, agent: &AgentRow) -> AgentCard {
    let skills = skills_of(agent)
        .into_iter()
        .map(|skill| AgentSkill {
            description: described(agent, &skill.description),
            tags: tagged(agent, skill.tags),
            id: skill.id,
            name: skill.name,
            ..AgentSkill::default()
        })
        .collect();
    card(
        base,
        version,
        agent.name.clone(),
        agent.description.clone(),
        &format!("/api/a2a/agents/{}/jsonrpc", agent.id),
        skills,
    )
}

/// A skill's description: its own, else its agent's, else one made of the agent's kind and
/// name (A2A requires a description; an empty one tells a client nothing).
fn described(agent: &AgentRow, own: &str) -> String {
    if !own.trim().is_empty() {
        own.to_owned()
    } else if !agent.description.trim().is_empty() {
        agent.description.clone()
    } else {
        format!("The {} agent {}", agent.kind, agent.name)
    }
}

/// A skill's tags: its own and its agent's kind, sorted, each once (A2A requires at least one).
fn tagged(agent: &AgentRow, own: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut tags: Vec<String> = own.into_iter().collect();
    tags.push(agent.kind.as_str().to_owned());
    tags.sort();
    tags.dedup();
    tags
}

/// Agents the instance card lists at most.
const MAX_CARD_AGENTS: usize = 1000;

/// A card and when what it says last changed (for `Last-Modified`): the latest change of an
/// agent it lists, or the start of this process (whose version the card names).
#[derive(Debug, Clone)]
pub struct ServedCard {
    pub card: AgentCard,
    pub modified: time::OffsetDateTime,
}

impl Gateway {
    /// The instance card for this caller: a skill for each ready agent it may see.
    pub async fn instance_card(
        &self,
        caller: Option<&Caller>,
        version: Version,
    ) -> Result<AgentCard, AgentError> {
        Ok(self.served_instance_card(caller, version).await?.card)
    }

    /// The instance card with when what it lists last changed.
    pub async fn served_instance_card(
        &self,
        caller: Option<&Caller>,
        version: Version,
    ) -> Result<ServedCard, AgentError> {
        let mut agents = Vec::new();
        let mut page = PageRequest::first(100)?;
        loop {
            let found = self.store.agents().list(None, &page).await?;
            agents.extend(
                found
                    .items
                    .into_iter()
                    .filter(|agent| agent.status == AgentStatus::Ready && sees(caller, agent)),
            );
            match found.next_cursor {
                Some(cursor) if agents.len() < MAX_CARD_AGENTS => {
                    page = PageRequest::new(100, Some(&cursor))?;
                }
                _ => break,
            }
        }
        agents.truncate(MAX_CARD_AGENTS);
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        let modified = agents
            .iter()
            .map(|agent| agent.updated_at)
            .max()
            .unwrap_or(self.started_at);
        Ok(ServedCard {
            card: instance_card(&self.base, version, &agents),
            modified: modified.max(self.started_at),
        })
    }

    /// An agent's own card.
    pub fn agent_card(&self, agent: &AgentRow, version: Version) -> AgentCard {
        agent_card(&self.base, version, agent)
    }

    /// An agent's own card with when it last changed.
    pub fn served_agent_card(&self, agent: &AgentRow, version: Version) -> ServedCard {
        ServedCard {
            card: self.agent_card(agent, version),
            modified: agent.updated_at.max(self.started_at),
        }
    }

    pub(super) async fn extended_card(
        &self,
        caller: &Caller,
        target: Target,
        version: Version,
    ) -> Result<AgentCard, RpcError> {
        match target {
            Target::Instance => self
                .instance_card(Some(caller), version)
                .await
                .map_err(|_| internal()),
            Target::Agent(id) => match self.visible_agent(Some(caller), id).await {
                Ok(Some(agent)) => Ok(self.agent_card(&agent, version)),
                Ok(None) => Err(ErrorCode::ExtendedAgentCardNotConfigured.error()),
                Err(_) => Err(internal()),
            },
        }
    }
}
