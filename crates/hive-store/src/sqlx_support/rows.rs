//! Rows as both sqlx backends read them: the same columns and conversions, with ids and times
//! decoded the dialect's way.

use super::dialect::{Dialect, DialectRow, get};
use crate::{
    AgentRow, ApiTokenRow, AuditCheckpoint, AuditOutcome, AuditRecord, BundleRow, ChallengeRow,
    ConversationMessageRow, ConversationRow, JobOutcome, JobRun, LeaseRow, LoginThrottle,
    MessageAuthor, OidcLinkRow, OneTimePurpose, OneTimeTokenRow, PasskeyRow, PushConfigRow, RunRow,
    RunStatus, RunTrigger, ScheduleFire, SecretRow, SessionRow, SettingRow, StepRow, StepStatus,
    StoreError, TaskRow, TotpRow, UsageRow, UserRow, WorkflowRow, WorkflowVersionRow,
    agent_word_from_stored, chain_link, limits_from_stored, role_from_text, scopes_from_text,
    sign_count_from_stored, step_from_stored, tokens_from_stored,
};

/// A vault key id (stored as a 64-bit integer).
fn key_id_at<D: Dialect>(row: &DialectRow<D>) -> Result<u32, StoreError> {
    let key_id: i64 = get::<D, _>(row, "key_id")?;
    u32::try_from(key_id).map_err(|_| StoreError::Backend("a stored key id is out of range".into()))
}

pub fn login_throttle<D: Dialect>(row: &DialectRow<D>) -> Result<LoginThrottle, StoreError> {
    Ok(LoginThrottle {
        consecutive_failures: D::count_at(row, "consecutive_failures")?,
        last_failure_at: D::optional_time_at(row, "last_failure_at")?,
        failure_day: get::<D, _>(row, "failure_day")?,
        failures_today: D::count_at(row, "failures_today")?,
    })
}

pub fn user<D: Dialect>(row: &DialectRow<D>) -> Result<UserRow, StoreError> {
    let role: String = get::<D, _>(row, "role")?;
    Ok(UserRow {
        id: D::uuid_at(row, "id")?,
        email: get::<D, _>(row, "email")?,
        display_name: get::<D, _>(row, "display_name")?,
        role: role_from_text(&role)?,
        active: get::<D, _>(row, "active")?,
        password_hash: get::<D, _>(row, "password_hash")?,
        created_at: D::time_at(row, "created_at")?,
        updated_at: D::time_at(row, "updated_at")?,
        throttle: login_throttle::<D>(row)?,
        second_factor: get::<D, _>(row, "second_factor")?,
    })
}

pub fn session<D: Dialect>(row: &DialectRow<D>) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        id: D::uuid_at(row, "id")?,
        user_id: D::uuid_at(row, "user_id")?,
        token_hash: get::<D, _>(row, "token_hash")?,
        created_at: D::time_at(row, "created_at")?,
        last_seen_at: D::time_at(row, "last_seen_at")?,
        expires_at: D::time_at(row, "expires_at")?,
        authenticated_at: D::time_at(row, "authenticated_at")?,
        second_factor_at: D::optional_time_at(row, "second_factor_at")?,
        ip: get::<D, _>(row, "ip")?,
        user_agent: get::<D, _>(row, "user_agent")?,
    })
}

pub fn api_token<D: Dialect>(row: &DialectRow<D>) -> Result<ApiTokenRow, StoreError> {
    let role: String = get::<D, _>(row, "role")?;
    let scopes: String = get::<D, _>(row, "scopes")?;
    Ok(ApiTokenRow {
        id: D::uuid_at(row, "id")?,
        user_id: D::uuid_at(row, "user_id")?,
        name: get::<D, _>(row, "name")?,
        token_hash: get::<D, _>(row, "token_hash")?,
        role: role_from_text(&role)?,
        scopes: scopes_from_text(&scopes)?,
        created_at: D::time_at(row, "created_at")?,
        expires_at: D::time_at(row, "expires_at")?,
        last_used_at: D::optional_time_at(row, "last_used_at")?,
        revoked_at: D::optional_time_at(row, "revoked_at")?,
    })
}

pub fn one_time_token<D: Dialect>(row: &DialectRow<D>) -> Result<OneTimeTokenRow, StoreError> {
    let purpose: String = get::<D, _>(row, "purpose")?;
    let role: Option<String> = get::<D, _>(row, "role")?;
    Ok(OneTimeTokenRow {
        id: D::uuid_at(row, "id")?,
        purpose: OneTimePurpose::parse(&purpose)?,
        token_hash: get::<D, _>(row, "token_hash")?,
        user_id: D::optional_uuid_at(row, "user_id")?,
        email: get::<D, _>(row, "email")?,
        role: role.as_deref().map(role_from_text).transpose()?,
        created_by: D::optional_uuid_at(row, "created_by")?,
        created_at: D::time_at(row, "created_at")?,
        expires_at: D::time_at(row, "expires_at")?,
        used_at: D::optional_time_at(row, "used_at")?,
    })
}

pub fn audit_record<D: Dialect>(row: &DialectRow<D>) -> Result<AuditRecord, StoreError> {
    let outcome: String = get::<D, _>(row, "outcome")?;
    Ok(AuditRecord {
        id: D::uuid_at(row, "id")?,
        at: D::time_at(row, "at")?,
        actor: get::<D, _>(row, "actor")?,
        action: get::<D, _>(row, "action")?,
        target: get::<D, _>(row, "target")?,
        outcome: AuditOutcome::parse(&outcome)?,
        ip: get::<D, _>(row, "ip")?,
        request_id: get::<D, _>(row, "request_id")?,
        detail: get::<D, _>(row, "detail")?,
        link: chain_link(
            get::<D, _>(row, "seq")?,
            get::<D, _>(row, "prev_hash")?,
            get::<D, _>(row, "hash")?,
        ),
    })
}

pub fn audit_checkpoint<D: Dialect>(row: &DialectRow<D>) -> Result<AuditCheckpoint, StoreError> {
    Ok(AuditCheckpoint {
        seq: get::<D, _>(row, "seq")?,
        hash: get::<D, _>(row, "hash")?,
        at: D::time_at(row, "at")?,
        created_at: D::time_at(row, "created_at")?,
        signature: get::<D, _>(row, "signature")?,
    })
}

pub fn agent<D: Dialect>(row: &DialectRow<D>) -> Result<AgentRow, StoreError> {
    let word = |column: &str| get::<D, String>(row, column);
    let number = |column: &str| get::<D, i64>(row, column);
    Ok(AgentRow {
        id: D::uuid_at(row, "id")?,
        owner_id: D::uuid_at(row, "owner_id")?,
        name: word("name")?,
        description: word("description")?,
        visibility: agent_word_from_stored(&word("visibility")?)?,
        kind: agent_word_from_stored(&word("kind")?)?,
        runtime: word("runtime")?,
        skills: word("skills")?,
        limits: limits_from_stored(
            number("requests_per_minute")?,
            number("tokens_per_day")?,
            number("concurrent_tasks")?,
            number("timeout_seconds")?,
        )?,
        status: agent_word_from_stored(&word("status")?)?,
        status_detail: word("status_detail")?,
        version: number("version")?,
        created_at: D::time_at(row, "created_at")?,
        updated_at: D::time_at(row, "updated_at")?,
    })
}

pub fn bundle<D: Dialect>(row: &DialectRow<D>) -> Result<BundleRow, StoreError> {
    Ok(BundleRow {
        agent_id: D::uuid_at(row, "agent_id")?,
        version: get::<D, _>(row, "version")?,
        sha256: get::<D, _>(row, "sha256")?,
        size_bytes: get::<D, _>(row, "size_bytes")?,
        manifest: get::<D, _>(row, "manifest")?,
        created_by: D::optional_uuid_at(row, "created_by")?,
        created_at: D::time_at(row, "created_at")?,
        active: get::<D, _>(row, "active")?,
    })
}

pub fn lease<D: Dialect>(row: &DialectRow<D>) -> Result<LeaseRow, StoreError> {
    Ok(LeaseRow {
        agent_id: D::uuid_at(row, "agent_id")?,
        node: get::<D, _>(row, "node")?,
        address: get::<D, _>(row, "address")?,
        expires_at: D::time_at(row, "expires_at")?,
    })
}

pub fn conversation<D: Dialect>(row: &DialectRow<D>) -> Result<ConversationRow, StoreError> {
    Ok(ConversationRow {
        id: D::uuid_at(row, "id")?,
        owner: get::<D, _>(row, "owner")?,
        user_id: D::optional_uuid_at(row, "user_id")?,
        agent_id: D::uuid_at(row, "agent_id")?,
        title: get::<D, _>(row, "title")?,
        open_task_id: D::optional_uuid_at(row, "open_task_id")?,
        turn_started_at: D::optional_time_at(row, "turn_started_at")?,
        created_at: D::time_at(row, "created_at")?,
        updated_at: D::time_at(row, "updated_at")?,
    })
}

pub fn conversation_message<D: Dialect>(
    row: &DialectRow<D>,
) -> Result<ConversationMessageRow, StoreError> {
    let author: String = get::<D, _>(row, "author")?;
    Ok(ConversationMessageRow {
        id: D::uuid_at(row, "id")?,
        conversation_id: D::uuid_at(row, "conversation_id")?,
        author: MessageAuthor::from_stored(&author)?,
        text: get::<D, _>(row, "text")?,
        truncated: get::<D, _>(row, "truncated")?,
        task_id: D::optional_uuid_at(row, "task_id")?,
        state: get::<D, _>(row, "state")?,
        created_at: D::time_at(row, "created_at")?,
    })
}

pub fn totp<D: Dialect>(row: &DialectRow<D>) -> Result<TotpRow, StoreError> {
    Ok(TotpRow {
        user_id: D::uuid_at(row, "user_id")?,
        seed: get::<D, _>(row, "seed")?,
        key_id: key_id_at::<D>(row)?,
        created_at: D::time_at(row, "created_at")?,
        enabled_at: D::optional_time_at(row, "enabled_at")?,
        last_used_step: step_from_stored(get::<D, _>(row, "last_used_step")?)?,
        failed_step: step_from_stored(get::<D, _>(row, "failed_step")?)?,
        failures: D::count_at(row, "failures")?,
    })
}

pub fn passkey<D: Dialect>(row: &DialectRow<D>) -> Result<PasskeyRow, StoreError> {
    Ok(PasskeyRow {
        id: D::uuid_at(row, "id")?,
        user_id: D::uuid_at(row, "user_id")?,
        credential_id: get::<D, _>(row, "credential_id")?,
        passkey: get::<D, _>(row, "passkey")?,
        sign_count: sign_count_from_stored(get::<D, _>(row, "sign_count")?)?,
        backup_eligible: get::<D, _>(row, "backup_eligible")?,
        backup_state: get::<D, _>(row, "backup_state")?,
        name: get::<D, _>(row, "name")?,
        created_at: D::time_at(row, "created_at")?,
        last_used_at: D::optional_time_at(row, "last_used_at")?,
    })
}

pub fn push_config<D: Dialect>(row: &DialectRow<D>) -> Result<PushConfigRow, StoreError> {
    Ok(PushConfigRow {
        owner: get::<D, _>(row, "owner")?,
        task_id: D::uuid_at(row, "task_id")?,
        id: get::<D, _>(row, "id")?,
        url: get::<D, _>(row, "url")?,
        auth_scheme: get::<D, _>(row, "auth_scheme")?,
        key_id: key_id_at::<D>(row)?,
        secrets: get::<D, _>(row, "secrets")?,
        created_at: D::time_at(row, "created_at")?,
        updated_at: D::time_at(row, "updated_at")?,
    })
}

pub fn secret<D: Dialect>(row: &DialectRow<D>) -> Result<SecretRow, StoreError> {
    Ok(SecretRow {
        id: D::uuid_at(row, "id")?,
        owner_id: D::uuid_at(row, "owner_id")?,
        name: get::<D, _>(row, "name")?,
        description: get::<D, _>(row, "description")?,
        version: get::<D, _>(row, "version")?,
        key_id: key_id_at::<D>(row)?,
        value: get::<D, _>(row, "value")?,
        created_at: D::time_at(row, "created_at")?,
        updated_at: D::time_at(row, "updated_at")?,
    })
}

pub fn setting<D: Dialect>(row: &DialectRow<D>) -> Result<SettingRow, StoreError> {
    Ok(SettingRow {
        name: get::<D, _>(row, "name")?,
        value: get::<D, _>(row, "value")?,
        version: get::<D, _>(row, "version")?,
        updated_at: D::time_at(row, "updated_at")?,
        updated_by: get::<D, _>(row, "updated_by")?,
    })
}

pub fn task<D: Dialect>(row: &DialectRow<D>) -> Result<TaskRow, StoreError> {
    Ok(TaskRow {
        id: D::uuid_at(row, "id")?,
        owner: get::<D, _>(row, "owner")?,
        agent_id: get::<D, _>(row, "agent_id")?,
        context_id: get::<D, _>(row, "context_id")?,
        status_time: D::time_at(row, "status_time")?,
        document: get::<D, _>(row, "document")?,
        expires_at: D::time_at(row, "expires_at")?,
    })
}

pub fn job_run<D: Dialect>(row: &DialectRow<D>) -> Result<JobRun, StoreError> {
    let outcome: String = get::<D, _>(row, "outcome")?;
    Ok(JobRun {
        id: D::uuid_at(row, "id")?,
        job: get::<D, _>(row, "job")?,
        node_id: get::<D, _>(row, "node_id")?,
        started_at: D::time_at(row, "started_at")?,
        finished_at: D::optional_time_at(row, "finished_at")?,
        outcome: JobOutcome::parse(&outcome)?,
        detail: get::<D, _>(row, "detail")?,
    })
}

pub fn usage<D: Dialect>(row: &DialectRow<D>) -> Result<UsageRow, StoreError> {
    let tokens = |column: &str| tokens_from_stored(get::<D, _>(row, column)?);
    let kind: String = get::<D, _>(row, "kind")?;
    Ok(UsageRow {
        id: D::uuid_at(row, "id")?,
        kind: crate::UsageKind::parse(&kind)?,
        agent_id: D::uuid_at(row, "agent_id")?,
        principal: get::<D, _>(row, "principal")?,
        user_id: D::optional_uuid_at(row, "user_id")?,
        model: get::<D, _>(row, "model")?,
        prompt_tokens: tokens("prompt_tokens")?,
        completion_tokens: tokens("completion_tokens")?,
        quantity: tokens("quantity")?,
        cost: crate::billing::Money::new(get::<D, _>(row, "cost_minor")?, {
            let code: String = get::<D, _>(row, "currency")?;
            crate::billing::Currency::new(&code).map_err(|_| {
                StoreError::Backend("a stored currency is not an ISO 4217 code".into())
            })?
        }),
        created_at: D::time_at(row, "created_at")?,
    })
}

pub fn challenge<D: Dialect>(row: &DialectRow<D>) -> Result<ChallengeRow, StoreError> {
    Ok(ChallengeRow {
        key_hash: get::<D, _>(row, "key_hash")?,
        purpose: get::<D, _>(row, "purpose")?,
        user_id: D::optional_uuid_at(row, "user_id")?,
        payload: get::<D, _>(row, "payload")?,
        created_at: D::time_at(row, "created_at")?,
        expires_at: D::time_at(row, "expires_at")?,
    })
}

pub fn oidc_link<D: Dialect>(row: &DialectRow<D>) -> Result<OidcLinkRow, StoreError> {
    Ok(OidcLinkRow {
        provider: get::<D, _>(row, "provider")?,
        subject: get::<D, _>(row, "subject")?,
        user_id: D::uuid_at(row, "user_id")?,
        email: get::<D, _>(row, "email")?,
        created_at: D::time_at(row, "created_at")?,
    })
}

pub fn workflow<D: Dialect>(row: &DialectRow<D>) -> Result<WorkflowRow, StoreError> {
    Ok(WorkflowRow {
        id: D::uuid_at(row, "id")?,
        owner_id: D::uuid_at(row, "owner_id")?,
        name: get::<D, _>(row, "name")?,
        description: get::<D, _>(row, "description")?,
        latest_version: get::<D, _>(row, "latest_version")?,
        enabled: get::<D, _>(row, "enabled")?,
        scheduled: get::<D, _>(row, "scheduled")?,
        webhook_secret: get::<D, _>(row, "webhook_secret")?,
        created_at: D::time_at(row, "created_at")?,
        updated_at: D::time_at(row, "updated_at")?,
    })
}

pub fn workflow_version<D: Dialect>(row: &DialectRow<D>) -> Result<WorkflowVersionRow, StoreError> {
    Ok(WorkflowVersionRow {
        workflow_id: D::uuid_at(row, "workflow_id")?,
        version: get::<D, _>(row, "version")?,
        document: get::<D, _>(row, "document")?,
        created_by: D::optional_uuid_at(row, "created_by")?,
        created_at: D::time_at(row, "created_at")?,
    })
}

fn stored_word<T>(raw: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<T, StoreError> {
    parse(raw).ok_or_else(|| StoreError::Backend(format!("a stored {what} is unknown")))
}

pub fn workflow_run<D: Dialect>(row: &DialectRow<D>) -> Result<RunRow, StoreError> {
    let trigger: String = get::<D, _>(row, "trigger")?;
    let status: String = get::<D, _>(row, "status")?;
    Ok(RunRow {
        id: D::uuid_at(row, "id")?,
        workflow_id: D::uuid_at(row, "workflow_id")?,
        version: get::<D, _>(row, "version")?,
        principal_user: D::uuid_at(row, "principal_user")?,
        principal_token: D::optional_uuid_at(row, "principal_token")?,
        trigger: stored_word(&trigger, RunTrigger::parse, "run trigger")?,
        trigger_key: get::<D, _>(row, "trigger_key")?,
        status: stored_word(&status, RunStatus::parse, "run status")?,
        input: get::<D, _>(row, "input")?,
        output: get::<D, _>(row, "output")?,
        error: get::<D, _>(row, "error")?,
        parent_run: D::optional_uuid_at(row, "parent_run")?,
        parent_step: get::<D, _>(row, "parent_step")?,
        lease_node: get::<D, _>(row, "lease_node")?,
        lease_expires_at: D::optional_time_at(row, "lease_expires_at")?,
        wake_at: D::optional_time_at(row, "wake_at")?,
        signal: get::<D, _>(row, "signal")?,
        deadline_at: D::time_at(row, "deadline_at")?,
        created_at: D::time_at(row, "created_at")?,
        started_at: D::optional_time_at(row, "started_at")?,
        finished_at: D::optional_time_at(row, "finished_at")?,
    })
}

pub fn workflow_step<D: Dialect>(row: &DialectRow<D>) -> Result<StepRow, StoreError> {
    let status: String = get::<D, _>(row, "status")?;
    Ok(StepRow {
        run_id: D::uuid_at(row, "run_id")?,
        step_key: get::<D, _>(row, "step_key")?,
        node_id: get::<D, _>(row, "node_id")?,
        status: stored_word(&status, StepStatus::parse, "step status")?,
        attempt: get::<D, _>(row, "attempt")?,
        input: get::<D, _>(row, "input")?,
        output: get::<D, _>(row, "output")?,
        branch: get::<D, _>(row, "branch")?,
        error: get::<D, _>(row, "error")?,
        wake_at: D::optional_time_at(row, "wake_at")?,
        started_at: D::time_at(row, "started_at")?,
        finished_at: D::optional_time_at(row, "finished_at")?,
    })
}

pub fn schedule_fire<D: Dialect>(row: &DialectRow<D>) -> Result<ScheduleFire, StoreError> {
    Ok(ScheduleFire {
        workflow_id: D::uuid_at(row, "workflow_id")?,
        trigger_id: get::<D, _>(row, "trigger_id")?,
        fired_at: D::time_at(row, "fired_at")?,
    })
}
