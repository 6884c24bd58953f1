//! Importing a remote A2A agent from its agent card: the card is fetched through the egress
//! guard (either protocol version's shape), shown as a preview of the agent Hive would
//! register, and registered on request.

use crate::agents::{AgentError, Agents, NewAgent, Skill};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::egress::{Egress, Purpose};
use hive_a2a::client::{ClientError, parse_agent_card};
use hive_a2a::jsonrpc::Limits;
use hive_a2a::v1;
pub use hive_a2a::v1::AgentCard;
use hive_egress::{CallLimits, EgressRequest};
use hive_proto::agents::{AgentKind, AgentVisibility};
use hive_store::AgentRow;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// An agent card is small: 256 KiB in 10 s at most.
const CARD_LIMITS: CallLimits = CallLimits::new(Duration::from_secs(10), 256 * 1024);
/// Where a host publishes its card (A2A, RFC 8615).
pub const WELL_KNOWN_CARD: &str = "/.well-known/agent-card.json";

/// What to import, and how to register it.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The agent's base URL (its card is at the host's well-known path) or the card's URL.
    pub url: String,
    /// Overrides the name derived from the card's.
    pub name: Option<String>,
    pub visibility: AgentVisibility,
    /// A secret of the caller's sent upstream as the bearer credential.
    pub credential_secret_id: Option<Uuid>,
}

/// A fetched card and the agent it would become.
#[derive(Debug, Clone)]
pub struct ImportPreview {
    pub card_url: String,
    /// The card in the 1.0 model (a 0.3 card converted).
    pub card: v1::AgentCard,
    pub agent: NewAgent,
}

#[derive(Debug)]
pub struct AgentImport {
    agents: Arc<Agents>,
    egress: Arc<Egress>,
}

impl AgentImport {
    pub fn new(agents: Arc<Agents>, egress: Arc<Egress>) -> Self {
        Self { agents, egress }
    }

    /// Fetches the card and answers the agent it describes, registering nothing.
    pub async fn preview(
        &self,
        caller: &Caller,
        request: &ImportRequest,
        meta: &RequestMeta,
    ) -> Result<ImportPreview, AgentError> {
        if caller.user_id().is_none() {
            return Err(AgentError::Forbidden("agents belong to a user account"));
        }
        let card_url = card_url(&request.url)?;
        let purpose = Purpose {
            principal: caller.principal(),
            feature: "agent_card",
            meta: meta.clone(),
        };
        let response = self
            .egress
            .send(
                EgressRequest::get(card_url.as_str()),
                &CARD_LIMITS,
                &purpose,
            )
            .await
            .map_err(|error| {
                AgentError::Invalid(format!(
                    "the agent card could not be fetched ({})",
                    error.kind()
                ))
            })?;
        if !response.status().is_success() {
            return Err(AgentError::Invalid(format!(
                "the agent card answered HTTP {}",
                response.status().as_u16()
            )));
        }
        let body = response.bytes().await.map_err(|error| {
            AgentError::Invalid(format!(
                "the agent card could not be read ({})",
                error.kind()
            ))
        })?;
        let limits = Limits {
            max_body_bytes: 256 * 1024,
            ..Limits::default()
        };
        let card = parse_agent_card(&body, &limits).map_err(|error| match error {
            ClientError::InvalidResponse(message) => {
                AgentError::Invalid(format!("not an agent card: {message}"))
            }
            other => AgentError::Invalid(format!("not an agent card: {other}")),
        })?;
        let agent = proposed_agent(&card, request)?;
        Ok(ImportPreview {
            card_url,
            card,
            agent,
        })
    }

    /// Fetches the card and registers the agent it describes.
    pub async fn import(
        &self,
        caller: &Caller,
        request: &ImportRequest,
        meta: &RequestMeta,
    ) -> Result<(ImportPreview, AgentRow), AgentError> {
        let preview = self.preview(caller, request, meta).await?;
        let agent = self.agents.create(caller, &preview.agent, meta).await?;
        Ok((preview, agent))
    }
}

/// The card's URL: the given one when it names a `.json` document, else the host's
/// well-known card.
fn card_url(raw: &str) -> Result<String, AgentError> {
    let mut url = crate::agents::check_url("url", raw.trim())?;
    if !url.path().ends_with(".json") {
        url.set_path(WELL_KNOWN_CARD);
        url.set_query(None);
    }
    url.set_fragment(None);
    Ok(url.to_string())
}

/// The JSON-RPC interface Hive would call: 1.0 when the card offers it, else 0.3.
fn jsonrpc_interface(card: &v1::AgentCard) -> Option<(&v1::AgentInterface, &'static str)> {
    let jsonrpc = || {
        card.supported_interfaces
            .iter()
            .filter(|i| i.protocol_binding.eq_ignore_ascii_case(v1::BINDING_JSONRPC))
    };
    jsonrpc()
        .find(|i| i.protocol_version.starts_with("1."))
        .map(|i| (i, "1.0"))
        .or_else(|| {
            jsonrpc()
                .find(|i| i.protocol_version.starts_with("0.3"))
                .map(|i| (i, "0.3"))
        })
}

fn proposed_agent(card: &v1::AgentCard, request: &ImportRequest) -> Result<NewAgent, AgentError> {
    let (interface, version) = jsonrpc_interface(card).ok_or(AgentError::Invalid(
        "the agent card offers no JSON-RPC interface of A2A 1.0 or 0.3".into(),
    ))?;
    let name = match &request.name {
        Some(name) => name.clone(),
        None => slug(&card.name).ok_or(AgentError::Invalid(
            "the card's name makes no agent name: give one".into(),
        ))?,
    };
    let mut skills: Vec<Skill> = Vec::new();
    for skill in card.skills.iter().take(crate::agents::MAX_SKILLS) {
        let Some(mut id) = slug(&skill.id).or_else(|| slug(&skill.name)) else {
            continue;
        };
        while skills.iter().any(|s| s.id == id) {
            id = format!("{}-{}", &id[..id.len().min(60)], skills.len());
        }
        skills.push(Skill {
            id,
            name: clip(&skill.name, 200).unwrap_or_else(|| skill.id.clone()),
            description: clip(&skill.description, crate::agents::MAX_DESCRIPTION_CHARS)
                .unwrap_or_default(),
            tags: skill
                .tags
                .iter()
                .filter(|t| !t.is_empty() && t.len() <= 50)
                .take(20)
                .cloned()
                .collect(),
        });
    }
    let mut runtime = serde_json::json!({ "url": interface.url, "protocolVersion": version });
    if let Some(secret) = request.credential_secret_id {
        runtime["credentialSecretId"] = serde_json::json!(secret);
    }
    Ok(NewAgent {
        name,
        description: clip(&card.description, crate::agents::MAX_DESCRIPTION_CHARS)
            .unwrap_or_default(),
        visibility: request.visibility,
        kind: AgentKind::Remote,
        runtime,
        skills: (!skills.is_empty()).then_some(skills),
        limits: None,
    })
}

/// `text` made an agent or skill name: lower case, runs of anything else one dash, at most
/// 64 characters; `None` when nothing is left.
fn slug(text: &str) -> Option<String> {
    let mut slug = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.chars().take(64).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    (!slug.is_empty()).then_some(slug)
}

/// `text` without control characters, cut to `max` characters; `None` when empty.
fn clip(text: &str, max: usize) -> Option<String> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(max)
        .collect();
    (!clean.trim().is_empty()).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_is_looked_for_where_hosts_publish_it() {
        assert_eq!(
            card_url("https://agent.example.com").unwrap(),
            "https://agent.example.com/.well-known/agent-card.json"
        );
        assert_eq!(
            card_url("https://agent.example.com/a2a/v1?x=1#f").unwrap(),
            "https://agent.example.com/.well-known/agent-card.json"
        );
        assert_eq!(
            card_url("http://127.0.0.1:9000/cards/research.json").unwrap(),
            "http://127.0.0.1:9000/cards/research.json"
        );
        for bad in ["ftp://x.example/", "https://u:p@x.example/", "nonsense"] {
            assert!(card_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_become_slugs() {
        assert_eq!(
            slug("Research Bot (beta)").as_deref(),
            Some("research-bot-beta")
        );
        assert_eq!(slug("  --Été 2026--").as_deref(), Some("t-2026"));
        assert_eq!(slug("???"), None);
        assert_eq!(slug(&"a".repeat(100)).map(|s| s.len()), Some(64));
    }

    #[test]
    fn the_newest_jsonrpc_interface_is_chosen() {
        let interface = |binding: &str, version: &str, url: &str| v1::AgentInterface {
            url: url.to_owned(),
            protocol_binding: binding.to_owned(),
            tenant: String::new(),
            protocol_version: version.to_owned(),
        };
        let card = v1::AgentCard {
            name: "Echo".to_owned(),
            supported_interfaces: vec![
                interface("GRPC", "1.0", "grpc://x"),
                interface("JSONRPC", "0.3.0", "https://x.example/v03"),
                interface("JSONRPC", "1.0", "https://x.example/v1"),
            ],
            ..v1::AgentCard::default()
        };
        let (chosen, version) = jsonrpc_interface(&card).unwrap();
        assert_eq!(
            (chosen.url.as_str(), version),
            ("https://x.example/v1", "1.0")
        );
        let old = v1::AgentCard {
            supported_interfaces: vec![interface("JSONRPC", "0.3.0", "https://x.example/v03")],
            ..card.clone()
        };
        assert_eq!(jsonrpc_interface(&old).unwrap().1, "0.3");
        let none = v1::AgentCard {
            supported_interfaces: vec![interface("GRPC", "1.0", "grpc://x")],
            ..card
        };
        assert!(jsonrpc_interface(&none).is_none());
    }
}
