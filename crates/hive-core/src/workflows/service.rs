//! The workflows service: definitions and their versions, runs by hand and by webhook, the
//! history, cancellation, retries and approvals. Each method takes the caller, checks what the
//! caller may do (a workflow is its owner's, and any admin's) and audits what it changes.

use super::definition::{ApprovalNode, Definition, NodeKind, Problem, Problems, Trigger};
use super::error::WorkflowError;
use super::nodes::decision_output;
use super::principal::RUN_ROLE;
use super::runs::{RunAs, RunRequest, RunStarter, Started};
use super::webhook::{self, SignatureRefusal};
use crate::agents::Agents;
use crate::gateway::Gateway;
use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal, TransactionRecord};
use crate::kernel::caller::{Caller, Credential, RequestMeta};
use crate::vault::secrets::SecretService;
use crate::vault::{Vault, VaultFailure};
use hive_crypto::vault::{Context, Sealed};
use hive_proto::SharedClock;
use hive_store::{
    AuditOutcome, Page, PageRequest, RunFilter, RunRow, RunTrigger, StepDecision, StepRow,
    StepStatus, Store, StoreError, WorkflowRow, WorkflowSave, WorkflowVersionRow,
};
use serde_json::{Value, json};
use std::collections::hash_map::Entry;
use std::sync::Arc;
use uuid::Uuid;
use zeroize::Zeroizing;

/// The vault's table name for webhook secrets (bound into each sealed value).
const WEBHOOK_SECRET_TABLE: &str = "workflows.webhook_secret";
/// Versions a workflow's listing shows at most.
pub const MAX_VERSIONS_LISTED: u32 = 100;
/// Longest approval comment.
pub const MAX_COMMENT_CHARS: usize = 1000;

/// What a save did.
#[derive(Debug, Clone)]
pub struct Saved {
    pub workflow: WorkflowRow,
    pub version: WorkflowVersionRow,
    pub created: bool,
}

/// An approval step waiting for a decision the caller may give
/// ([`Workflows::pending_approvals`]).
#[derive(Debug, Clone)]
pub struct PendingApproval {
    pub run: RunRow,
    /// The workflow's name.
    pub workflow: String,
    /// The approval node (the step's key).
    pub step_key: String,
    /// The message its step rendered, as journaled.
    pub message: String,
    /// When the step started waiting.
    pub since: time::OffsetDateTime,
}

/// The message an approval step's journaled input carries: its text, or other JSON compact.
pub fn journaled_message(input: Option<&str>) -> String {
    input
        .and_then(|input| serde_json::from_str::<Value>(input).ok())
        .and_then(|input| input.get("message").cloned())
        .map(|message| match message {
            Value::String(text) => text,
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// Whether the caller may decide an approval: a user it names (by e-mail), or a user whose
/// role is at least the one it names.
pub fn may_decide(caller: &Caller, approval: &ApprovalNode) -> bool {
    let Some(user) = caller.user.as_ref() else {
        return false;
    };
    approval
        .users
        .iter()
        .any(|email| email.eq_ignore_ascii_case(&user.email))
        || approval.role.is_some_and(|role| caller.role >= role)
}

/// A webhook call's refusal: a bad signature (audited) or the workflow's own refusal.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Signature(SignatureRefusal),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

pub struct WorkflowParts {
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub auditor: Auditor,
    pub vault: Arc<Vault>,
    pub secrets: Arc<SecretService>,
    pub gateway: Arc<Gateway>,
    /// The agent registry: the agent an a2a trigger publishes the workflow as.
    pub agents: Arc<Agents>,
    pub starter: Arc<RunStarter>,
    /// Whether code nodes may be saved (the configuration and the admins' setting).
    pub code_nodes: crate::kernel::settings::CodeNodesGate,
}

pub struct Workflows {
    pub(super) parts: WorkflowParts,
}

impl std::fmt::Debug for Workflows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflows").finish_non_exhaustive()
    }
}

fn owner_of(caller: &Caller) -> Result<Uuid, WorkflowError> {
    caller.user_id().ok_or(WorkflowError::Forbidden(
        "workflows belong to user accounts",
    ))
}

fn problem(node: Option<&str>, rule: &'static str, message: String) -> Problem {
    Problem {
        node: node.map(str::to_owned),
        rule,
        message,
    }
}

impl Workflows {
    pub fn new(parts: WorkflowParts) -> Self {
        Self { parts }
    }

    /// The record of a change the caller makes to `target`, written with the change.
    fn change_record(
        &self,
        caller: &Caller,
        action: AuditAction,
        target: String,
        detail: Value,
        meta: &RequestMeta,
    ) -> TransactionRecord {
        self.parts.auditor.in_transaction(
            AuditEvent {
                principal: caller.principal(),
                action,
                target: Some(target),
                outcome: AuditOutcome::Success,
                detail,
            },
            meta,
        )
    }

    fn store(&self) -> &dyn Store {
        self.parts.store.as_ref()
    }

    fn now(&self) -> time::OffsetDateTime {
        hive_store::truncate_to_micros(self.parts.clock.now())
    }

    /// Checks a document as `caller` would save it: its structure, then what it names (agents
    /// the caller may call, the caller's secrets, sub-workflows the caller may run, approvers
    /// that exist). Every problem is listed.
    pub async fn check(&self, caller: &Caller, document: &str) -> Result<Definition, Problems> {
        self.check_with(caller, document, None).await
    }

    /// [`Self::check`] of a document that would be a version of `workflow` (none: the caller's
    /// workflow of the document's name, if there is one).
    async fn check_with(
        &self,
        caller: &Caller,
        document: &str,
        workflow: Option<Uuid>,
    ) -> Result<Definition, Problems> {
        let definition = Definition::parse(document)?;
        let mut problems = Vec::new();
        if let Some(problem) = self.check_publication(caller, &definition, workflow).await {
            problems.push(problem);
        }
        if let Some(why) = self.parts.code_nodes.refusal()
            && let Some(node) = definition.nodes.iter().find(|node| uses_code(&node.kind))
        {
            problems.push(problem(
                Some(&node.id),
                "code_nodes_off",
                format!("node '{}' (code): {why}", node.id),
            ));
        }
        let references = definition.references();
        for agent in &references.agents {
            match self.parts.gateway.find_visible_agent(caller, agent).await {
                Ok(Some(_)) => {}
                Ok(None) => problems.push(problem(
                    None,
                    "unknown_agent",
                    format!("agent {agent:?} does not exist or you may not call it"),
                )),
                Err(_) => problems.push(problem(
                    None,
                    "unavailable",
                    "the agents cannot be read now".to_owned(),
                )),
            }
        }
        if let Some(user) = caller.user_id() {
            if !references.secrets.is_empty() {
                match self.parts.secrets.names_of(user).await {
                    Ok(names) => {
                        for secret in &references.secrets {
                            if !names.contains(secret) {
                                problems.push(problem(
                                    None,
                                    "unknown_secret",
                                    format!("you have no secret named {secret:?}"),
                                ));
                            }
                        }
                    }
                    Err(_) => problems.push(problem(
                        None,
                        "unavailable",
                        "the secrets cannot be read now".to_owned(),
                    )),
                }
            }
            for workflow in &references.workflows {
                let found = match Uuid::parse_str(workflow) {
                    Ok(id) => self.store().workflows().get_workflow(id).await,
                    Err(_) => self.store().workflows().find_workflow(user, workflow).await,
                };
                let allowed = match found {
                    Ok(Some(found)) => caller.is_admin() || found.owner_id == user,
                    Ok(None) => workflow == &definition.name,
                    Err(_) => false,
                };
                if !allowed {
                    problems.push(problem(
                        None,
                        "unknown_workflow",
                        format!("workflow {workflow:?} does not exist or you may not run it"),
                    ));
                }
            }
        }
        for email in &references.approver_users {
            let exists = match crate::identity::normalize_email(email) {
                Ok(email) => matches!(
                    self.store().users().find_by_email(&email).await,
                    Ok(Some(_))
                ),
                Err(_) => false,
            };
            if !exists {
                problems.push(problem(
                    None,
                    "unknown_approver",
                    format!("no user {email:?} to approve"),
                ));
            }
        }
        if problems.is_empty() {
            Ok(definition)
        } else {
            Err(Problems(problems))
        }
    }

    /// Saves a document as the caller's workflow of its name: a new workflow, or the next
    /// version of the caller's workflow of that name. Audited.
    pub async fn apply(
        &self,
        caller: &Caller,
        document: &str,
        meta: &RequestMeta,
    ) -> Result<Saved, WorkflowError> {
        let owner = owner_of(caller)?;
        let definition = self
            .check(caller, document)
            .await
            .map_err(|problems| WorkflowError::Invalid(problems.to_string()))?;
        let existing = self
            .store()
            .workflows()
            .find_workflow(owner, &definition.name)
            .await?;
        let id = existing.as_ref().map_or_else(Uuid::now_v7, |w| w.id);
        self.save(
            caller,
            id,
            owner,
            &definition,
            document,
            meta,
            existing.is_none(),
        )
        .await
    }

    /// Saves a new version of the workflow `id` (its name may change). Audited.
    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        document: &str,
        meta: &RequestMeta,
    ) -> Result<Saved, WorkflowError> {
        let workflow = self.get(caller, id).await?;
        let definition = self
            .check_with(caller, document, Some(id))
            .await
            .map_err(|problems| WorkflowError::Invalid(problems.to_string()))?;
        self.save(
            caller,
            id,
            workflow.owner_id,
            &definition,
            document,
            meta,
            false,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn save(
        &self,
        caller: &Caller,
        id: Uuid,
        owner: Uuid,
        definition: &Definition,
        document: &str,
        meta: &RequestMeta,
        created: bool,
    ) -> Result<Saved, WorkflowError> {
        let record = self.change_record(
            caller,
            AuditAction::WorkflowSave,
            format!("workflow:{id}"),
            json!({ "name": definition.name, "created": created }),
            meta,
        );
        let save = WorkflowSave {
            id,
            owner_id: owner,
            name: &definition.name,
            description: &definition.description,
            document,
            scheduled: definition.has_schedule(),
            created_by: caller.user_id(),
            at: self.now(),
        };
        match self
            .store()
            .workflows()
            .save_workflow(&save, record.append())
            .await
        {
            Ok((workflow, version)) => {
                self.publish(caller, &workflow, definition, meta).await?;
                Ok(Saved {
                    workflow,
                    version,
                    created,
                })
            }
            Err(StoreError::Conflict(_)) => Err(WorkflowError::Conflict(
                "you have another workflow with this name",
            )),
            Err(StoreError::Invalid(why)) => Err(WorkflowError::Invalid(why)),
            Err(other) => Err(other.into()),
        }
    }

    /// The workflow, if the caller may see it (their own; anyone's for an admin).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<WorkflowRow, WorkflowError> {
        let scope = caller.owner_scope()?;
        self.store()
            .workflows()
            .get_workflow(id)
            .await?
            .filter(|workflow| scope.is_none_or(|owner| owner == workflow.owner_id))
            .ok_or(WorkflowError::NotFound)
    }

    pub async fn list(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Page<WorkflowRow>, WorkflowError> {
        Ok(self
            .store()
            .workflows()
            .list_workflows(caller.owner_scope()?, page)
            .await?)
    }

    pub async fn versions(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Vec<WorkflowVersionRow>, WorkflowError> {
        let workflow = self.get(caller, id).await?;
        Ok(self
            .store()
            .workflows()
            .list_versions(workflow.id, MAX_VERSIONS_LISTED)
            .await?)
    }

    /// One version (none: the newest).
    pub async fn version(
        &self,
        caller: &Caller,
        id: Uuid,
        version: Option<i64>,
    ) -> Result<WorkflowVersionRow, WorkflowError> {
        let workflow = self.get(caller, id).await?;
        self.store()
            .workflows()
            .get_version(workflow.id, version.unwrap_or(workflow.latest_version))
            .await?
            .ok_or(WorkflowError::NotFound)
    }

    pub async fn delete(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), WorkflowError> {
        let workflow = self.get(caller, id).await?;
        // Its agent first: a workflow that stays (its deletion failed) is published again by
        // its next save, while an agent left behind would name a workflow that is gone.
        self.unpublish(caller, &workflow, meta).await?;
        let record = self.change_record(
            caller,
            AuditAction::WorkflowDelete,
            format!("workflow:{id}"),
            json!({ "name": workflow.name }),
            meta,
        );
        if self
            .store()
            .workflows()
            .delete_workflow(id, record.append())
            .await?
        {
            Ok(())
        } else {
            Err(WorkflowError::NotFound)
        }
    }

    pub async fn set_enabled(
        &self,
        caller: &Caller,
        id: Uuid,
        enabled: bool,
        meta: &RequestMeta,
    ) -> Result<WorkflowRow, WorkflowError> {
        self.get(caller, id).await?;
        let record = self.change_record(
            caller,
            if enabled {
                AuditAction::WorkflowEnable
            } else {
                AuditAction::WorkflowDisable
            },
            format!("workflow:{id}"),
            json!({}),
            meta,
        );
        if !self
            .store()
            .workflows()
            .set_workflow_enabled(id, enabled, self.now(), record.append())
            .await?
        {
            return Err(WorkflowError::NotFound);
        }
        self.get(caller, id).await
    }

    /// Who a run started by `caller` acts as: the caller's own credential when it is the
    /// workflow's owner (a token's run keeps that token's limits), else — an admin starting
    /// another's workflow — its owner.
    fn run_as(caller: &Caller, workflow: &WorkflowRow) -> RunAs {
        if caller.user_id() == Some(workflow.owner_id) {
            RunAs {
                user: workflow.owner_id,
                token: match caller.credential {
                    Credential::ApiToken { token_id, .. } => Some(token_id),
                    _ => None,
                },
            }
        } else {
            RunAs {
                user: workflow.owner_id,
                token: None,
            }
        }
    }

    pub(super) async fn definition_of(
        &self,
        workflow: &WorkflowRow,
    ) -> Result<(WorkflowVersionRow, Definition), WorkflowError> {
        let version = self
            .store()
            .workflows()
            .get_version(workflow.id, workflow.latest_version)
            .await?
            .ok_or(WorkflowError::NotFound)?;
        let definition = Definition::parse(&version.document)
            .map_err(|problems| WorkflowError::Invalid(problems.to_string()))?;
        Ok((version, definition))
    }

    /// Starts a run by hand, of the newest version.
    pub async fn run(
        &self,
        caller: &Caller,
        id: Uuid,
        input: Value,
        meta: &RequestMeta,
    ) -> Result<RunRow, WorkflowError> {
        let workflow = self.get(caller, id).await?;
        if caller.role < RUN_ROLE {
            return Err(WorkflowError::Forbidden(
                "running workflows needs the operator role",
            ));
        }
        let (version, definition) = self.definition_of(&workflow).await?;
        let started = self
            .parts
            .starter
            .start(
                &RunRequest::new(
                    &workflow,
                    version.version,
                    &definition,
                    Self::run_as(caller, &workflow),
                    RunTrigger::Manual,
                    input,
                    caller.principal(),
                ),
                meta,
            )
            .await?;
        Ok(started.run().clone())
    }

    /// Sets a new webhook secret and answers it (shown once; stored sealed by the vault).
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<Zeroizing<String>, WorkflowError> {
        let workflow = self.get(caller, id).await?;
        let secret = Zeroizing::new(format!(
            "whsec_{}",
            hive_crypto::random_token_hex()
                .map_err(|error| WorkflowError::Internal(error.to_string()))?
        ));
        let row_id = workflow.id.to_string();
        let sealed = self
            .parts
            .vault
            .seal(
                secret.as_bytes(),
                &Context {
                    table: WEBHOOK_SECRET_TABLE,
                    row_id: &row_id,
                },
            )
            .await
            .map_err(vault_error)?;
        let record = self.change_record(
            caller,
            AuditAction::WorkflowWebhookSecret,
            format!("workflow:{id}"),
            json!({}),
            meta,
        );
        if !self
            .store()
            .workflows()
            .set_webhook_secret(
                id,
                Some(sealed.to_text().as_bytes()),
                self.now(),
                record.append(),
            )
            .await?
        {
            return Err(WorkflowError::NotFound);
        }
        Ok(secret)
    }

    async fn webhook_secret(
        &self,
        workflow: &WorkflowRow,
    ) -> Result<Zeroizing<Vec<u8>>, WebhookError> {
        let stored = workflow
            .webhook_secret
            .as_deref()
            .ok_or(WebhookError::Signature(SignatureRefusal::NoSecret))?;
        let text = std::str::from_utf8(stored)
            .map_err(|_| WorkflowError::Internal("a webhook secret is not text".into()))?;
        let sealed = Sealed::from_text(text).map_err(|error| {
            WorkflowError::Internal(format!("a webhook secret cannot be read: {error}"))
        })?;
        let row_id = workflow.id.to_string();
        Ok(self
            .parts
            .vault
            .unseal(
                &sealed,
                &Context {
                    table: WEBHOOK_SECRET_TABLE,
                    row_id: &row_id,
                },
            )
            .await
            .map_err(vault_error)?)
    }

    /// A call of the workflow's webhook trigger: the signature checked (refusals audited), the
    /// delivery taken once, a run started as the workflow's owner with the JSON body as input.
    pub async fn webhook(
        &self,
        workflow_id: Uuid,
        trigger_id: &str,
        signature: Option<&str>,
        body: &[u8],
        meta: &RequestMeta,
    ) -> Result<RunRow, WebhookError> {
        let workflow = self
            .store()
            .workflows()
            .get_workflow(workflow_id)
            .await
            .map_err(WorkflowError::from)?
            .ok_or(WorkflowError::NotFound)?;
        let (version, definition) = self.definition_of(&workflow).await?;
        if !matches!(
            definition.trigger(trigger_id),
            Some(Trigger::Webhook { .. })
        ) {
            return Err(WorkflowError::NotFound.into());
        }
        let refuse = |refusal: SignatureRefusal| async move {
            self.parts
                .auditor
                .record_refusal(
                    AuditEvent {
                        principal: Principal::Anonymous,
                        action: AuditAction::WorkflowWebhookRefused,
                        target: Some(format!("workflow:{workflow_id}")),
                        outcome: AuditOutcome::Denied,
                        detail: json!({ "trigger": trigger_id, "reason": refusal.reason() }),
                    },
                    meta,
                )
                .await;
            WebhookError::Signature(refusal)
        };
        let secret = match self.webhook_secret(&workflow).await {
            Ok(secret) => secret,
            Err(WebhookError::Signature(refusal)) => return Err(refuse(refusal).await),
            Err(other) => return Err(other),
        };
        let verified = match webhook::verify(signature, body, &secret, self.parts.clock.now()) {
            Ok(verified) => verified,
            Err(refusal) => return Err(refuse(refusal).await),
        };
        let input = webhook_input(body)?;
        let started = self
            .parts
            .starter
            .start(
                &RunRequest::new(
                    &workflow,
                    version.version,
                    &definition,
                    RunAs {
                        user: workflow.owner_id,
                        token: None,
                    },
                    RunTrigger::Webhook,
                    input,
                    Principal::Anonymous,
                )
                .keyed(verified.delivery_key()),
                meta,
            )
            .await?;
        match started {
            Started::Created(run) => Ok(run),
            Started::Existing(_) => Err(refuse(SignatureRefusal::Replayed).await),
        }
    }

    /// A call of the workflow's webhook trigger with an API token instead of a signature: the
    /// token's owner must be able to run the workflow (its owner, or an admin) and the token
    /// hold the `execute` scope; the run acts through that token. An `Idempotency-Key` makes
    /// a delivery once: the same key again is refused as a replay.
    pub async fn webhook_as(
        &self,
        caller: &Caller,
        workflow_id: Uuid,
        trigger_id: &str,
        idempotency_key: Option<&str>,
        body: &[u8],
        meta: &RequestMeta,
    ) -> Result<RunRow, WebhookError> {
        let workflow = self.get(caller, workflow_id).await?;
        let (version, definition) = self.definition_of(&workflow).await?;
        if !matches!(
            definition.trigger(trigger_id),
            Some(Trigger::Webhook { .. })
        ) {
            return Err(WorkflowError::NotFound.into());
        }
        let token = match caller.credential {
            Credential::ApiToken { token_id, .. } => token_id,
            _ => {
                return Err(WorkflowError::Forbidden(
                    "a webhook call is signed, or made with an API token",
                )
                .into());
            }
        };
        if caller.role < RUN_ROLE || !caller.has_scope(hive_proto::TokenScope::Execute) {
            return Err(WorkflowError::Forbidden(
                "the token may not run workflows (operator role and the execute scope)",
            )
            .into());
        }
        let trigger_key = match idempotency_key {
            None => None,
            Some(key)
                if !key.is_empty()
                    && key.len() <= MAX_IDEMPOTENCY_KEY_CHARS
                    && key.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(format!("webhook-key:{key}"))
            }
            Some(_) => {
                return Err(WorkflowError::Invalid(format!(
                    "an Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
                ))
                .into());
            }
        };
        let input = webhook_input(body)?;
        let user = owner_of(caller)?;
        let started = self
            .parts
            .starter
            .start(
                &RunRequest {
                    trigger_key,
                    ..RunRequest::new(
                        &workflow,
                        version.version,
                        &definition,
                        RunAs {
                            user,
                            token: Some(token),
                        },
                        RunTrigger::Webhook,
                        input,
                        caller.principal(),
                    )
                },
                meta,
            )
            .await?;
        match started {
            Started::Created(run) => Ok(run),
            Started::Existing(_) => {
                self.parts
                    .auditor
                    .record_refusal(
                        AuditEvent {
                            principal: caller.principal(),
                            action: AuditAction::WorkflowWebhookRefused,
                            target: Some(format!("workflow:{workflow_id}")),
                            outcome: AuditOutcome::Denied,
                            detail: json!({ "trigger": trigger_id, "reason": "replayed" }),
                        },
                        meta,
                    )
                    .await;
                Err(WebhookError::Signature(SignatureRefusal::Replayed))
            }
        }
    }

    /// A run the caller may see: one of their workflows', one that acts as them, or any for
    /// an admin.
    pub async fn get_run(&self, caller: &Caller, run_id: Uuid) -> Result<RunRow, WorkflowError> {
        let run = self
            .store()
            .workflows()
            .get_run(run_id)
            .await?
            .ok_or(WorkflowError::NotFound)?;
        if caller.is_admin() || caller.user_id() == Some(run.principal_user) {
            return Ok(run);
        }
        self.get(caller, run.workflow_id).await?;
        Ok(run)
    }

    /// The run with its journal.
    pub async fn run_detail(
        &self,
        caller: &Caller,
        run_id: Uuid,
    ) -> Result<(RunRow, Vec<StepRow>), WorkflowError> {
        let run = self.get_run(caller, run_id).await?;
        let steps = self.store().workflows().steps(run.id).await?;
        Ok((run, steps))
    }

    /// Runs the caller may see, newest first (an admin: everyone's, unless filtered).
    pub async fn runs(
        &self,
        caller: &Caller,
        mut filter: RunFilter,
        page: &PageRequest,
    ) -> Result<Page<RunRow>, WorkflowError> {
        filter.owner_id = caller.owner_scope()?;
        if let Some(workflow) = filter.workflow_id {
            self.get(caller, workflow).await?;
        }
        Ok(self.store().workflows().list_runs(&filter, page).await?)
    }

    pub async fn cancel(
        &self,
        caller: &Caller,
        run_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<RunRow, WorkflowError> {
        let run = self.get_run(caller, run_id).await?;
        let record = self.change_record(
            caller,
            AuditAction::WorkflowRunCancel,
            format!("workflow_run:{run_id}"),
            json!({ "workflowId": run.workflow_id }),
            meta,
        );
        if !self
            .store()
            .workflows()
            .cancel_run(run_id, self.now(), record.append())
            .await?
        {
            return Err(WorkflowError::Conflict("the run has ended already"));
        }
        self.get_run(caller, run_id).await
    }

    /// Queues a failed or cancelled run again from the steps that did not succeed.
    pub async fn retry(
        &self,
        caller: &Caller,
        run_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<RunRow, WorkflowError> {
        let run = self.get_run(caller, run_id).await?;
        if caller.role < RUN_ROLE {
            return Err(WorkflowError::Forbidden(
                "running workflows needs the operator role",
            ));
        }
        let version = self
            .store()
            .workflows()
            .get_version(run.workflow_id, run.version)
            .await?
            .ok_or(WorkflowError::NotFound)?;
        let definition = Definition::parse(&version.document)
            .map_err(|problems| WorkflowError::Invalid(problems.to_string()))?;
        let timeout = time::Duration::try_from(definition.limits.timeout)
            .map_err(|error| WorkflowError::Internal(error.to_string()))?;
        let record = self.change_record(
            caller,
            AuditAction::WorkflowRunRetry,
            format!("workflow_run:{run_id}"),
            json!({ "workflowId": run.workflow_id }),
            meta,
        );
        let now = self.now();
        if !self
            .store()
            .workflows()
            .retry_run(run_id, now + timeout, now, record.append())
            .await?
        {
            return Err(WorkflowError::Conflict(
                "only a failed or cancelled run can be retried",
            ));
        }
        self.parts.starter.wake().notify_one();
        self.get_run(caller, run_id).await
    }

    /// An approval step's decision, by one of its approvers (a named user, or anyone with
    /// the named role or above). Anyone else is refused, and the refusal audited.
    pub async fn decide(
        &self,
        caller: &Caller,
        run_id: Uuid,
        step_key: &str,
        approve: bool,
        comment: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<RunRow, WorkflowError> {
        if comment.is_some_and(|comment| comment.chars().count() > MAX_COMMENT_CHARS) {
            return Err(WorkflowError::Invalid(format!(
                "a comment is at most {MAX_COMMENT_CHARS} characters"
            )));
        }
        let run = self
            .store()
            .workflows()
            .get_run(run_id)
            .await?
            .ok_or(WorkflowError::NotFound)?;
        let version = self
            .store()
            .workflows()
            .get_version(run.workflow_id, run.version)
            .await?
            .ok_or(WorkflowError::NotFound)?;
        let definition = Definition::parse(&version.document)
            .map_err(|problems| WorkflowError::Invalid(problems.to_string()))?;
        let Some(NodeKind::Approval(approval)) = definition.node(step_key).map(|node| &node.kind)
        else {
            return Err(WorkflowError::NotFound);
        };
        let by = caller
            .user
            .as_ref()
            .map(|user| user.email.clone())
            .unwrap_or_default();
        if !may_decide(caller, approval) {
            self.parts
                .auditor
                .record_refusal(
                    AuditEvent {
                        principal: caller.principal(),
                        action: AuditAction::WorkflowApproval,
                        target: Some(format!("workflow_run:{run_id}")),
                        outcome: AuditOutcome::Denied,
                        detail: json!({ "node": step_key, "reason": "not_an_approver" }),
                    },
                    meta,
                )
                .await;
            // Someone who may see the run learns why; anyone else finds nothing.
            return match self.get_run(caller, run_id).await {
                Ok(_) => Err(WorkflowError::Forbidden(
                    "you are not an approver of this step",
                )),
                Err(_) => Err(WorkflowError::NotFound),
            };
        }
        let (output, branch) = decision_output(approve, &by, comment);
        let output = output.to_string();
        let record = self.change_record(
            caller,
            AuditAction::WorkflowApproval,
            format!("workflow_run:{run_id}"),
            json!({ "node": step_key, "approved": approve }),
            meta,
        );
        let decided = self
            .store()
            .workflows()
            .decide_step(
                &StepDecision {
                    run_id,
                    step_key,
                    status: StepStatus::Succeeded,
                    output: Some(&output),
                    branch: Some(branch),
                    error: None,
                    at: self.now(),
                },
                record.append(),
            )
            .await?;
        if !decided {
            return Err(WorkflowError::Conflict(
                "the step is not waiting for a decision (decided already, or the run ended)",
            ));
        }
        self.parts.starter.wake().notify_one();
        self.store()
            .workflows()
            .get_run(run_id)
            .await?
            .ok_or(WorkflowError::NotFound)
    }

    /// The approval steps waiting for a decision the caller may give (as [`Workflows::decide`]
    /// decides who may), newest first: of any workflow, the caller's or not.
    pub async fn pending_approvals(
        &self,
        caller: &Caller,
    ) -> Result<Vec<PendingApproval>, WorkflowError> {
        if caller.user.is_none() {
            return Ok(Vec::new());
        }
        let waiting = self
            .store()
            .workflows()
            .waiting_steps(hive_store::MAX_WAITING_STEPS)
            .await?;
        // Each version parsed once, each workflow's name read once.
        let mut definitions: std::collections::HashMap<(Uuid, i64), Option<Definition>> =
            std::collections::HashMap::new();
        let mut names: std::collections::HashMap<Uuid, String> = std::collections::HashMap::new();
        let mut pending = Vec::new();
        for (run, step) in waiting {
            let definition = match definitions.entry((run.workflow_id, run.version)) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(slot) => slot.insert(
                    self.store()
                        .workflows()
                        .get_version(run.workflow_id, run.version)
                        .await?
                        .and_then(|version| Definition::parse(&version.document).ok()),
                ),
            };
            let Some(definition) = definition else {
                continue;
            };
            let Some(NodeKind::Approval(approval)) =
                definition.node(&step.step_key).map(|node| &node.kind)
            else {
                continue;
            };
            if !may_decide(caller, approval) {
                continue;
            }
            let name = match names.entry(run.workflow_id) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(slot) => slot.insert(
                    self.store()
                        .workflows()
                        .get_workflow(run.workflow_id)
                        .await?
                        .map(|workflow| workflow.name)
                        .unwrap_or_default(),
                ),
            };
            pending.push(PendingApproval {
                workflow: name.clone(),
                message: journaled_message(step.input.as_deref()),
                since: step.started_at,
                step_key: step.step_key,
                run,
            });
        }
        Ok(pending)
    }

    /// Follows a run: each step as it starts, waits and ends, and the run's status, until the
    /// run ends or the receiver is dropped. Read from the journal, so a run driven by another
    /// replica is followed alike.
    pub async fn follow(
        self: &Arc<Self>,
        caller: &Caller,
        run_id: Uuid,
    ) -> Result<tokio::sync::mpsc::Receiver<Progress>, WorkflowError> {
        self.get_run(caller, run_id).await?;
        Ok(self.follow_run(run_id))
    }

    /// [`Self::follow`] of a run whose caller was checked already (the gateway, following
    /// the run an A2A task of the caller's started).
    pub(super) fn follow_run(
        self: &Arc<Self>,
        run_id: Uuid,
    ) -> tokio::sync::mpsc::Receiver<Progress> {
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut seen: std::collections::HashMap<String, (StepStatus, i64, u64)> =
                std::collections::HashMap::new();
            let mut last_status = None;
            loop {
                let run = match this.store().workflows().get_run(run_id).await {
                    Ok(Some(run)) => run,
                    _ => return,
                };
                let steps = match this.store().workflows().steps(run_id).await {
                    Ok(steps) => steps,
                    Err(_) => return,
                };
                for step in steps {
                    // A running step's progress changes its output.
                    let mark = (
                        step.status,
                        step.attempt,
                        fingerprint(step.output.as_deref()),
                    );
                    if seen.get(&step.step_key) != Some(&mark) {
                        seen.insert(step.step_key.clone(), mark);
                        if sender.send(Progress::Step(Box::new(step))).await.is_err() {
                            return;
                        }
                    }
                }
                if last_status != Some(run.status) {
                    last_status = Some(run.status);
                    let over = run.status.is_final();
                    if sender.send(Progress::Run(Box::new(run))).await.is_err() || over {
                        return;
                    }
                }
                tokio::select! {
                    () = sender.closed() => return,
                    () = tokio::time::sleep(FOLLOW_EVERY) => {}
                }
            }
        });
        receiver
    }
}

fn fingerprint(text: Option<&str>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// How often a followed run's journal is read.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// One change of a followed run.
#[derive(Debug, Clone)]
pub enum Progress {
    Step(Box<StepRow>),
    /// The run's status changed; the last event when it ended.
    Run(Box<RunRow>),
}

/// Longest `Idempotency-Key` a token's webhook call may carry.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// A webhook's body as the run's input: JSON (an empty body is `{}`).
fn webhook_input(body: &[u8]) -> Result<Value, WorkflowError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|_| WorkflowError::Invalid("the webhook's body must be JSON".into()))
}

fn uses_code(kind: &NodeKind) -> bool {
    match kind {
        NodeKind::Code(_) => true,
        NodeKind::Map(map) => uses_code(&map.body),
        _ => false,
    }
}

fn vault_error(error: VaultFailure) -> WorkflowError {
    match error {
        VaultFailure::Store(store) => store.into(),
        _ => WorkflowError::Internal("the vault could not seal or open a webhook secret".into()),
    }
}
