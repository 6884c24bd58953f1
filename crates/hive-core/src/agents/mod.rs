//! Agents: the registry of what operators register (name, skills, visibility, kind and its
//! settings, limits) and who may see it; importing remote agents from their cards; starting,
//! stopping and watching them, and who may see their status events; the LLM client and usage
//! meter of `llm` agents; the rows the A2A gateway reads on every call, kept for a second at most
//! (`cache`); each agent's token usage by day and its recent calls (`activity`); the
//! conformance agent that exercises the A2A gateway; and the agents that publish workflows
//! (`published`: made and kept by the workflows domain, through this registry).
//!
//! Below: kernel, vault (credentials by secret id), identity (callers).

mod activity;
pub mod cache;
pub mod conformance;
mod error;
pub mod events;
pub mod hosted;
pub mod import;
pub mod lifecycle;
pub mod llm;
mod published;
mod registry;

pub use activity::{AgentCall, DEFAULT_USAGE_DAYS, call_actions};
pub use error::AgentError;
pub(crate) use registry::{check_url, checked_skills};

pub use published::{Publication, published_workflow};
pub use registry::{
    AgentChange, Agents, ConformanceSettings, DEFAULT_LIMITS, HostedSettings, LlmSettings,
    MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_SKILLS, MAX_SYSTEM_PROMPT_CHARS, NewAgent,
    RemoteSettings, Skill, WorkflowSettings, skills_of, valid_agent_name, visible_to,
};
