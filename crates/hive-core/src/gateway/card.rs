//! Agent cards: the instance's (one skill per agent the caller may see) and each agent's, and
//! the gateway serving them (with when what they say last changed).
//!
//! A card is built once for what it is made of — the protocol version and each agent it lists
//! as stored (id, settings version, last change) — and served again while those are the same:
//! a change of an agent makes a new key, not a stale card. Which agents a caller's card lists
//! is decided on every request by the one visibility rule (`sees`), so a card kept for one
//! caller never reaches another who may not see it all.

use super::{Gateway, Target, internal, sees};
use crate::agents::AgentError;
use crate::agents::skills_of;
use crate::kernel::caller::Caller;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::jsonrpc::Outcome;
use hive_a2a::v1::{
    AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill,
    HttpAuthSecurityScheme, SecurityRequirement, SecurityScheme, StringList,
};
use hive_a2a::{jsonrpc::Version, v03};
use hive_store::AgentRow;
use lru::LruCache;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use time::OffsetDateTime;
use uuid::Uuid;

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
pub(crate) fn instance_card(base: &CardBase, version: Version, agents: &[&AgentRow]) -> AgentCard {
    let skills = agents
        .iter()
        .map(|&agent| AgentSkill {
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

/// Cards kept at most (each caller's view of the instance card is one; most callers share
/// the few views there are).
const CACHED_CARDS: NonZeroUsize = NonZeroUsize::MIN.saturating_add(255);

/// A card and when what it says last changed (for `Last-Modified`): the latest change of an
/// agent it lists, or the start of this process (whose version the card names). Clones share
/// the card and its encoding, which is made once, on first use.
#[derive(Debug, Clone)]
pub struct ServedCard {
    pub card: Arc<AgentCard>,
    pub modified: time::OffsetDateTime,
    version: Version,
    encoded: Arc<OnceLock<Option<EncodedCard>>>,
}

/// A card as sent: its JSON in its version, the entity tag of those bytes, and its
/// `Last-Modified` date (HTTP's form), all made once.
#[derive(Debug)]
pub struct EncodedCard {
    pub body: bytes::Bytes,
    pub etag: String,
    pub last_modified: Option<String>,
}

impl ServedCard {
    fn new(card: AgentCard, modified: time::OffsetDateTime, version: Version) -> Self {
        Self {
            card: Arc::new(card),
            modified,
            version,
            encoded: Arc::default(),
        }
    }

    /// The card's bytes and entity tag; `None` if it does not encode (an internal error).
    pub fn encoded(&self) -> Option<&EncodedCard> {
        self.encoded
            .get_or_init(|| {
                let outcome = Outcome::AgentCard(Box::new(AgentCard::clone(&self.card)));
                let value = hive_a2a::jsonrpc::encode_outcome(&outcome, self.version).ok()?;
                let body = serde_json::to_vec(&value).ok()?;
                let etag = format!("\"{}\"", &hive_crypto::sha256_hex(&body)[..32]);
                let last_modified = self
                    .modified
                    .to_offset(time::UtcOffset::UTC)
                    .format(&time::format_description::well_known::Rfc2822)
                    .ok()
                    .map(|text| text.replace("+0000", "GMT"));
                Some(EncodedCard {
                    body: body.into(),
                    etag,
                    last_modified,
                })
            })
            .as_ref()
    }
}

/// What a card is made of; equal keys make equal cards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CardKey {
    version: Version,
    /// The instance card, or an agent's own.
    instance: bool,
    /// Each agent listed: id, settings version, last change (of settings or status).
    agents: Vec<(Uuid, i64, OffsetDateTime)>,
}

impl CardKey {
    fn of(version: Version, instance: bool, agents: &[&AgentRow]) -> Self {
        Self {
            version,
            instance,
            agents: agents
                .iter()
                .map(|agent| (agent.id, agent.version, agent.updated_at))
                .collect(),
        }
    }
}

/// The cards built, least recently served out first.
#[derive(Debug)]
pub(crate) struct Cards(Mutex<LruCache<CardKey, ServedCard>>);

impl Default for Cards {
    fn default() -> Self {
        Self(Mutex::new(LruCache::new(CACHED_CARDS)))
    }
}

impl Cards {
    /// The card of `key`, built by `build` unless it is kept.
    fn served(&self, key: CardKey, build: impl FnOnce() -> ServedCard) -> ServedCard {
        let lock = || self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(card) = lock().get(&key) {
            return card.clone();
        }
        // Built outside the lock: two requests may build the same card once each.
        let card = build();
        lock().put(key, card.clone());
        card
    }
}

impl Gateway {
    /// The instance card for this caller: a skill for each ready agent it may see.
    pub async fn instance_card(
        &self,
        caller: Option<&Caller>,
        version: Version,
    ) -> Result<AgentCard, AgentError> {
        let served = self.served_instance_card(caller, version).await?;
        Ok(AgentCard::clone(&served.card))
    }

    /// The instance card with when what it lists last changed.
    pub async fn served_instance_card(
        &self,
        caller: Option<&Caller>,
        version: Version,
    ) -> Result<ServedCard, AgentError> {
        let ready = self.agents.ready().await?;
        let mut agents: Vec<&AgentRow> = ready
            .iter()
            .filter(|agent| sees(caller, agent))
            .take(MAX_CARD_AGENTS)
            .collect();
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        let key = CardKey::of(version, true, &agents);
        Ok(self.cards.served(key, || {
            let modified = agents
                .iter()
                .map(|agent| agent.updated_at)
                .max()
                .unwrap_or(self.started_at);
            ServedCard::new(
                instance_card(&self.base, version, &agents),
                modified.max(self.started_at),
                version,
            )
        }))
    }

    /// An agent's own card.
    pub fn agent_card(&self, agent: &AgentRow, version: Version) -> AgentCard {
        AgentCard::clone(&self.served_agent_card(agent, version).card)
    }

    /// An agent's own card with when it last changed.
    pub fn served_agent_card(&self, agent: &AgentRow, version: Version) -> ServedCard {
        let key = CardKey::of(version, false, &[agent]);
        self.cards.served(key, || {
            ServedCard::new(
                agent_card(&self.base, version, agent),
                agent.updated_at.max(self.started_at),
                version,
            )
        })
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
