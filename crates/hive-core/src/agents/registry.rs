//! The agent registry: what an operator registers — name, description, skills, visibility,
//! runtime kind with its settings, limits — and who may see and change it. Credentials are
//! named by secret id (the owner's secrets), never given inline: the settings of each kind
//! accept a closed set of fields, so an API key pasted into them is refused, not stored.
//!
//! Running agents (start, stop, the health watchdog, the A2A gateway) builds on this registry.

use crate::agents::AgentError;
use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, TransactionRecord};
use crate::kernel::caller::{Caller, Credential, RequestMeta};
use hive_proto::SharedClock;
pub use hive_proto::agents::Skill;
use hive_proto::agents::{AgentKind, AgentStatus, AgentVisibility};
use hive_store::{AgentLimits, AgentRow, AuditOutcome, Page, PageRequest, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub const MAX_SKILLS: usize = 32;
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 16_000;

/// The limits an agent gets when none are given.
pub const DEFAULT_LIMITS: AgentLimits = AgentLimits {
    requests_per_minute: 60,
    tokens_per_day: 0,
    concurrent_tasks: 4,
    timeout_seconds: 120,
};

/// `remote`: an upstream A2A agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteSettings {
    /// The agent's JSON-RPC endpoint (http or https; reached through the egress guard).
    pub url: String,
    /// `1.0` or `0.3` (the default: most agents in the field speak it).
    #[serde(default = "default_protocol_version")]
    pub protocol_version: String,
    /// A secret of the owner's sent as `Authorization: Bearer …` upstream.
    #[serde(default)]
    pub credential_secret_id: Option<Uuid>,
}

fn default_protocol_version() -> String {
    "0.3".to_owned()
}

/// `llm`: the built-in agent on an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmSettings {
    /// Up to the version path, e.g. `https://api.openai.com/v1` or `http://ollama:11434/v1`.
    pub base_url: String,
    pub model: String,
    #[serde(default)]
    pub system_prompt: String,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// A secret of the owner's holding the API key (none for a local server without one).
    #[serde(default)]
    pub api_key_secret_id: Option<Uuid>,
}

/// `conformance`: the protocol test agent takes no settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConformanceSettings {}

/// `hosted`: code Hive runs; what it runs and with what comes from its bundle's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostedSettings {}

/// `workflow`: a workflow published as an agent by its a2a trigger. Made, changed and removed
/// by the workflow alone ([`Agents::publish`], [`Agents::unpublish`]), never by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSettings {
    pub workflow_id: Uuid,
}

/// A registration as the caller gave it.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub description: String,
    pub visibility: AgentVisibility,
    pub kind: AgentKind,
    pub runtime: serde_json::Value,
    /// None: one skill named after the agent.
    pub skills: Option<Vec<Skill>>,
    pub limits: Option<AgentLimits>,
}

/// A change; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct AgentChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub visibility: Option<AgentVisibility>,
    pub runtime: Option<serde_json::Value>,
    pub skills: Option<Vec<Skill>>,
    pub limits: Option<AgentLimits>,
}

#[derive(Debug)]
pub struct Agents {
    pub(super) store: Arc<dyn Store>,
    auditor: Auditor,
    pub(super) clock: SharedClock,
}

impl Agents {
    pub fn new(store: Arc<dyn Store>, auditor: Auditor, clock: SharedClock) -> Self {
        Self {
            store,
            auditor,
            clock,
        }
    }

    /// Registers an agent owned by the caller (an operator or admin with an account).
    pub async fn create(
        &self,
        caller: &Caller,
        new: &NewAgent,
        meta: &RequestMeta,
    ) -> Result<AgentRow, AgentError> {
        let owner_id = caller
            .user_id()
            .ok_or(AgentError::Forbidden("agents belong to a user account"))?;
        if new.kind == AgentKind::Workflow {
            return Err(AgentError::Invalid(
                "a workflow agent is made by its workflow's a2a trigger, not registered by hand"
                    .into(),
            ));
        }
        let name = check_name(&new.name)?;
        let skills = new.skills.clone().unwrap_or_else(|| {
            vec![Skill {
                id: name.clone(),
                name: name.clone(),
                description: new.description.clone(),
                tags: Vec::new(),
            }]
        });
        let now = hive_store::truncate_to_micros(self.clock.now());
        let row = AgentRow {
            id: Uuid::now_v7(),
            owner_id,
            description: check_description(&new.description)?,
            visibility: new.visibility,
            kind: new.kind,
            runtime: self
                .checked_runtime(owner_id, new.kind, &new.runtime)
                .await?,
            skills: checked_skills(&skills)?,
            limits: check_limits(new.limits.unwrap_or(DEFAULT_LIMITS))?,
            status: AgentStatus::Created,
            status_detail: String::new(),
            version: 1,
            created_at: now,
            updated_at: now,
            name,
        };
        let record = self.record(caller, AuditAction::AgentCreate, &row, meta);
        match self.store.agents().create(&row, record.append()).await {
            Err(StoreError::Conflict(_)) => {
                Err(AgentError::Conflict("an agent of this name exists already"))
            }
            other => other.map(|()| row).map_err(AgentError::from),
        }
    }

    /// One agent: the caller's own, or any for an admin; others' are not found.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<AgentRow, AgentError> {
        self.store
            .agents()
            .get(id, caller.owner_scope()?)
            .await?
            .ok_or(AgentError::NotFound)
    }

    /// The caller's agents (an admin's: all), newest first.
    pub async fn list(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Page<AgentRow>, AgentError> {
        Ok(self
            .store
            .agents()
            .list(caller.owner_scope()?, page)
            .await?)
    }

    /// Changes an agent's settings (its kind and status stay); a concurrent change first wins
    /// and this one is a conflict.
    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        change: &AgentChange,
        meta: &RequestMeta,
    ) -> Result<AgentRow, AgentError> {
        let current = self.get(caller, id).await?;
        refuse_published(&current)?;
        let mut next = current.clone();
        if let Some(name) = &change.name {
            next.name = check_name(name)?;
        }
        if let Some(description) = &change.description {
            next.description = check_description(description)?;
        }
        if let Some(visibility) = change.visibility {
            next.visibility = visibility;
        }
        if let Some(runtime) = &change.runtime {
            next.runtime = self
                .checked_runtime(current.owner_id, current.kind, runtime)
                .await?;
        }
        if let Some(skills) = &change.skills {
            next.skills = checked_skills(skills)?;
        }
        if let Some(limits) = change.limits {
            next.limits = check_limits(limits)?;
        }
        next.version = current.version + 1;
        next.updated_at = hive_store::truncate_to_micros(self.clock.now());
        let record = self.record(caller, AuditAction::AgentUpdate, &next, meta);
        match self.store.agents().update(&next, record.append()).await {
            Ok(true) => Ok(next),
            Ok(false) => Err(AgentError::Conflict(
                "the agent changed meanwhile; read it again",
            )),
            Err(StoreError::Conflict(_)) => {
                Err(AgentError::Conflict("an agent of this name exists already"))
            }
            Err(other) => Err(other.into()),
        }
    }

    pub async fn delete(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), AgentError> {
        let agent = self.get(caller, id).await?;
        refuse_published(&agent)?;
        let record = self.record(caller, AuditAction::AgentDelete, &agent, meta);
        if self
            .store
            .agents()
            .delete(id, caller.owner_scope()?, record.append())
            .await?
        {
            Ok(())
        } else {
            Err(AgentError::NotFound)
        }
    }

    /// The settings of `kind` as stored: parsed against the kind's closed set of fields, URLs
    /// checked, every secret id one of the owner's secrets.
    pub(super) async fn checked_runtime(
        &self,
        owner_id: Uuid,
        kind: AgentKind,
        runtime: &serde_json::Value,
    ) -> Result<String, AgentError> {
        let invalid = |error: serde_json::Error| {
            AgentError::Invalid(format!(
                "runtime settings of a {kind} agent: {}",
                hive_a2a::error::describe(&error)
            ))
        };
        let (stored, secrets) = match kind {
            AgentKind::Remote => {
                let settings: RemoteSettings =
                    serde_json::from_value(runtime.clone()).map_err(invalid)?;
                check_url("url", &settings.url)?;
                if !matches!(settings.protocol_version.as_str(), "1.0" | "0.3") {
                    return Err(AgentError::Invalid(
                        "protocolVersion must be 1.0 or 0.3".into(),
                    ));
                }
                let secrets: Vec<Uuid> = settings.credential_secret_id.into_iter().collect();
                (serde_json::to_string(&settings), secrets)
            }
            AgentKind::Llm => {
                let settings: LlmSettings =
                    serde_json::from_value(runtime.clone()).map_err(invalid)?;
                check_llm(&settings)?;
                let secrets: Vec<Uuid> = settings.api_key_secret_id.into_iter().collect();
                (serde_json::to_string(&settings), secrets)
            }
            AgentKind::Conformance => {
                let settings: ConformanceSettings =
                    serde_json::from_value(runtime.clone()).map_err(invalid)?;
                (serde_json::to_string(&settings), Vec::new())
            }
            AgentKind::Hosted => {
                let settings: HostedSettings =
                    serde_json::from_value(runtime.clone()).map_err(invalid)?;
                (serde_json::to_string(&settings), Vec::new())
            }
            AgentKind::Workflow => {
                let settings: WorkflowSettings =
                    serde_json::from_value(runtime.clone()).map_err(invalid)?;
                let owned = self
                    .store
                    .workflows()
                    .get_workflow(settings.workflow_id)
                    .await?
                    .is_some_and(|workflow| workflow.owner_id == owner_id);
                if !owned {
                    return Err(AgentError::Invalid(
                        "a workflow agent publishes one of its owner's workflows".into(),
                    ));
                }
                (serde_json::to_string(&settings), Vec::new())
            }
        };
        for secret_id in secrets {
            if self
                .store
                .secrets()
                .get(secret_id, Some(owner_id))
                .await?
                .is_none()
            {
                return Err(AgentError::Invalid(format!(
                    "secret {secret_id} is not one of the agent owner's secrets"
                )));
            }
        }
        stored.map_err(|error| AgentError::Internal(error.to_string()))
    }

    /// The record of a change to `agent`: its name, kind and version, never its settings.
    pub(super) fn record(
        &self,
        caller: &Caller,
        action: AuditAction,
        agent: &AgentRow,
        meta: &RequestMeta,
    ) -> TransactionRecord {
        let entry = AuditEvent {
            principal: caller.principal(),
            action,
            target: Some(format!("agent:{}", agent.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({
                "name": agent.name,
                "kind": agent.kind.as_str(),
                "visibility": agent.visibility.as_str(),
                "version": agent.version,
            }),
        };
        self.auditor.in_transaction(entry, meta)
    }
}

/// Whether `caller` may see and call `agent`. A local caller (session, API token, internal
/// token): admins (and the internal token) every agent, the owner their own, everyone else a
/// `federation` or `public` agent. A federated peer: `federation` and `public` agents. The
/// public tier: `public` agents only. A `private` agent is its owner's and the admins' alone.
pub fn visible_to(caller: &Caller, agent: &AgentRow) -> bool {
    visible(caller, agent.owner_id, agent.visibility)
}

/// [`visible_to`] for an agent known by its owner and visibility alone (an event about it).
pub(crate) fn visible(caller: &Caller, owner_id: Uuid, visibility: AgentVisibility) -> bool {
    match caller.credential {
        Credential::Peer { .. } => visibility != AgentVisibility::Private,
        Credential::PublicTier { .. } => visibility == AgentVisibility::Public,
        _ => {
            caller.is_admin()
                || caller.user_id() == Some(owner_id)
                || visibility != AgentVisibility::Private
        }
    }
}

/// The skills of a stored agent (an unreadable column reads as none).
pub fn skills_of(agent: &AgentRow) -> Vec<Skill> {
    serde_json::from_str(&agent.skills).unwrap_or_default()
}

/// Refuses a change by hand of an agent a workflow publishes: its workflow keeps it.
fn refuse_published(agent: &AgentRow) -> Result<(), AgentError> {
    if agent.kind == AgentKind::Workflow {
        return Err(AgentError::Conflict(
            "this agent publishes a workflow: change or remove the workflow's a2a trigger instead",
        ));
    }
    Ok(())
}

/// 1 to 64 of `a-z 0-9 -`, no dash first or last: an agent's name.
pub fn valid_agent_name(name: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub(super) fn check_name(raw: &str) -> Result<String, AgentError> {
    let name = raw.trim();
    if valid_agent_name(name) {
        Ok(name.to_owned())
    } else {
        Err(AgentError::Invalid(
            "name must be 1 to 64 characters of a-z 0-9 and inner dashes".into(),
        ))
    }
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), AgentError> {
    if text.chars().count() > max || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AgentError::Invalid(format!(
            "{field} must be at most {max} characters without control characters"
        )));
    }
    Ok(())
}

pub(super) fn check_description(description: &str) -> Result<String, AgentError> {
    check_text("description", description, MAX_DESCRIPTION_CHARS)?;
    Ok(description.to_owned())
}

/// An http(s) URL without credentials in it, parsed (the egress guard decides at call time whether
/// its host may be reached).
pub(crate) fn check_url(field: &str, raw: &str) -> Result<url::Url, AgentError> {
    let url = url::Url::parse(raw)
        .map_err(|_| AgentError::Invalid(format!("{field} must be an http or https URL")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(AgentError::Invalid(format!(
            "{field} must be an http or https URL"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AgentError::Invalid(format!(
            "{field} must not hold credentials: name a secret instead"
        )));
    }
    Ok(url)
}

fn check_llm(settings: &LlmSettings) -> Result<(), AgentError> {
    check_url("baseUrl", &settings.base_url)?;
    if settings.model.trim().is_empty() || settings.model.len() > 200 {
        return Err(AgentError::Invalid(
            "model must be 1 to 200 characters".into(),
        ));
    }
    check_text(
        "systemPrompt",
        &settings.system_prompt,
        MAX_SYSTEM_PROMPT_CHARS,
    )?;
    if settings
        .temperature
        .is_some_and(|t| !(0.0..=2.0).contains(&t))
    {
        return Err(AgentError::Invalid(
            "temperature must be from 0 to 2".into(),
        ));
    }
    if settings
        .max_tokens
        .is_some_and(|n| !(1..=1_000_000).contains(&n))
    {
        return Err(AgentError::Invalid(
            "maxTokens must be from 1 to 1000000".into(),
        ));
    }
    Ok(())
}

pub(crate) fn checked_skills(skills: &[Skill]) -> Result<String, AgentError> {
    if skills.is_empty() || skills.len() > MAX_SKILLS {
        return Err(AgentError::Invalid(format!(
            "an agent has 1 to {MAX_SKILLS} skills"
        )));
    }
    let mut ids = std::collections::HashSet::new();
    for skill in skills {
        check_name(&skill.id).map_err(|_| {
            AgentError::Invalid("a skill id is 1 to 64 characters of a-z 0-9 -".into())
        })?;
        if !ids.insert(skill.id.as_str()) {
            return Err(AgentError::Invalid("skill ids must differ".into()));
        }
        if skill.name.trim().is_empty() {
            return Err(AgentError::Invalid("a skill needs a name".into()));
        }
        check_text("a skill's name", &skill.name, 200)?;
        check_text(
            "a skill's description",
            &skill.description,
            MAX_DESCRIPTION_CHARS,
        )?;
        if skill.tags.len() > 20 || skill.tags.iter().any(|t| t.is_empty() || t.len() > 50) {
            return Err(AgentError::Invalid(
                "a skill has at most 20 tags of 1 to 50 characters".into(),
            ));
        }
    }
    serde_json::to_string(skills).map_err(|error| AgentError::Internal(error.to_string()))
}

pub(super) fn check_limits(limits: AgentLimits) -> Result<AgentLimits, AgentError> {
    let valid = (1..=100_000).contains(&limits.requests_per_minute)
        && limits.tokens_per_day <= 10_000_000_000
        && (1..=1_000).contains(&limits.concurrent_tasks)
        && (1..=3_600).contains(&limits.timeout_seconds);
    if valid {
        Ok(limits)
    } else {
        Err(AgentError::Invalid(
            "limits: requestsPerMinute 1-100000, tokensPerDay 0-10000000000 (0: none), \
             concurrentTasks 1-1000, timeoutSeconds 1-3600"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_slugs() {
        for good in ["a", "echo-bot", "gpt4o-mini", "x1"] {
            assert_eq!(check_name(good).unwrap(), good);
        }
        for bad in ["", "-a", "a-", "Echo", "a b", "a_b", &"a".repeat(65), "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_carry_no_credentials() {
        assert!(check_url("url", "https://agent.example.com/a2a").is_ok());
        assert!(check_url("url", "http://10.0.0.5:9000/").is_ok());
        for bad in [
            "ftp://x.example/",
            "https://user:pw@agent.example.com/",
            "https://token@agent.example.com/",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(check_url("url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_and_skills_are_bounded() {
        assert!(check_limits(DEFAULT_LIMITS).is_ok());
        let none = AgentLimits {
            concurrent_tasks: 0,
            ..DEFAULT_LIMITS
        };
        assert!(check_limits(none).is_err());
        let skill = |id: &str| Skill {
            id: id.to_owned(),
            name: "Echo".to_owned(),
            description: String::new(),
            tags: vec![],
        };
        assert!(checked_skills(&[skill("echo")]).is_ok());
        assert!(checked_skills(&[]).is_err());
        assert!(checked_skills(&[skill("echo"), skill("echo")]).is_err());
        assert!(checked_skills(&[skill("Echo!")]).is_err());
    }
}
