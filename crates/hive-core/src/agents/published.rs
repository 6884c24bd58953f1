//! Agents of kind `workflow`: a workflow published by its a2a trigger. The workflows domain
//! makes, changes and removes them through these methods whenever a workflow's version is saved
//! or the workflow deleted — authorized (the workflow's owner, or an admin) and audited like
//! any change of the registry — and nobody registers, changes or deletes one by hand.

use super::AgentError;
use super::registry::{
    Agents, WorkflowSettings, check_description, check_limits, check_name, checked_skills,
};
use crate::kernel::audit::AuditAction;
use crate::kernel::caller::{Caller, RequestMeta};
use hive_proto::agents::{AgentKind, AgentStatus, AgentVisibility, Skill};
use hive_store::{AgentLimits, AgentRow, PageRequest, StoreError};
use uuid::Uuid;

/// The agent a workflow's a2a trigger asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The workflow's owner, who owns the agent.
    pub owner_id: Uuid,
    pub workflow_id: Uuid,
    pub name: String,
    pub description: String,
    pub visibility: AgentVisibility,
    pub limits: AgentLimits,
}

/// The workflow an agent of kind `workflow` publishes.
pub fn published_workflow(agent: &AgentRow) -> Option<Uuid> {
    if agent.kind != AgentKind::Workflow {
        return None;
    }
    serde_json::from_str::<WorkflowSettings>(&agent.runtime)
        .ok()
        .map(|settings| settings.workflow_id)
}

impl Agents {
    /// The agent that publishes `workflow_id`, among its owner's agents.
    pub async fn published_agent(
        &self,
        owner_id: Uuid,
        workflow_id: Uuid,
    ) -> Result<Option<AgentRow>, AgentError> {
        let mut cursor: Option<String> = None;
        loop {
            let page = PageRequest::new(hive_store::MAX_PAGE_SIZE, cursor.as_deref())?;
            let listed = self.store.agents().list(Some(owner_id), &page).await?;
            if let Some(agent) = listed
                .items
                .into_iter()
                .find(|agent| published_workflow(agent) == Some(workflow_id))
            {
                return Ok(Some(agent));
            }
            match listed.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// Whether the workflow `workflow_id` (none: a workflow not saved yet) may publish itself
    /// as the agent `name`: no agent has the name, or the one that has it is that workflow's.
    pub async fn name_free_for(
        &self,
        name: &str,
        workflow_id: Option<Uuid>,
    ) -> Result<bool, AgentError> {
        Ok(match self.store.agents().find_by_name(name).await? {
            None => true,
            Some(agent) => workflow_id.is_some() && published_workflow(&agent) == workflow_id,
        })
    }

    /// Makes the workflow's agent, or changes it to what the publication says (nothing is
    /// written when nothing changed). The caller must be the workflow's owner or an admin. A
    /// new agent is `ready` at once: it runs inside Hive.
    pub async fn publish(
        &self,
        caller: &Caller,
        publication: &Publication,
        meta: &RequestMeta,
    ) -> Result<AgentRow, AgentError> {
        if caller
            .owner_scope()?
            .is_some_and(|owner| owner != publication.owner_id)
        {
            return Err(AgentError::NotFound);
        }
        let owner_id = publication.owner_id;
        let name = check_name(&publication.name)?;
        let description = check_description(&publication.description)?;
        let limits = check_limits(publication.limits)?;
        let skills = checked_skills(&[Skill {
            id: name.clone(),
            name: name.clone(),
            description: description.clone(),
            tags: Vec::new(),
        }])?;
        let runtime = self
            .checked_runtime(
                owner_id,
                AgentKind::Workflow,
                &serde_json::json!({ "workflowId": publication.workflow_id }),
            )
            .await?;
        let now = hive_store::truncate_to_micros(self.clock.now());
        let taken = || AgentError::Conflict("an agent of this name exists already");
        match self
            .published_agent(owner_id, publication.workflow_id)
            .await?
        {
            None => {
                let row = AgentRow {
                    id: Uuid::now_v7(),
                    owner_id,
                    name,
                    description,
                    visibility: publication.visibility,
                    kind: AgentKind::Workflow,
                    runtime,
                    skills,
                    limits,
                    status: AgentStatus::Ready,
                    status_detail: String::new(),
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                let record = self.record(caller, AuditAction::AgentCreate, &row, meta);
                match self.store.agents().create(&row, record.append()).await {
                    Err(StoreError::Conflict(_)) => Err(taken()),
                    other => other.map(|()| row).map_err(AgentError::from),
                }
            }
            Some(current) => {
                let next = AgentRow {
                    name,
                    description,
                    visibility: publication.visibility,
                    runtime,
                    skills,
                    limits,
                    ..current.clone()
                };
                if next == current {
                    return Ok(current);
                }
                let next = AgentRow {
                    version: current.version + 1,
                    updated_at: now,
                    ..next
                };
                let record = self.record(caller, AuditAction::AgentUpdate, &next, meta);
                match self.store.agents().update(&next, record.append()).await {
                    Ok(true) => Ok(next),
                    Ok(false) => Err(AgentError::Conflict(
                        "the workflow's agent changed meanwhile; save again",
                    )),
                    Err(StoreError::Conflict(_)) => Err(taken()),
                    Err(other) => Err(other.into()),
                }
            }
        }
    }

    /// Removes the agent that publishes `workflow_id`, if there is one (whether there was).
    /// The caller must be the workflow's owner or an admin.
    pub async fn unpublish(
        &self,
        caller: &Caller,
        owner_id: Uuid,
        workflow_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<bool, AgentError> {
        if caller.owner_scope()?.is_some_and(|owner| owner != owner_id) {
            return Err(AgentError::NotFound);
        }
        let Some(agent) = self.published_agent(owner_id, workflow_id).await? else {
            return Ok(false);
        };
        let record = self.record(caller, AuditAction::AgentDelete, &agent, meta);
        Ok(self
            .store
            .agents()
            .delete(agent.id, Some(owner_id), record.append())
            .await?)
    }
}
