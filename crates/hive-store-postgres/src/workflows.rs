use crate::dialect::PgDialect;
use hive_store::sqlx_support::workflows::WorkflowSql;
use hive_store::{
    workflow_columns, workflow_run_columns, workflow_step_columns, workflow_version_columns,
};

/// The statuses of a run that has not ended, as SQL.
macro_rules! active {
    () => {
        "('queued', 'running', 'waiting')"
    };
}

/// READ COMMITTED: each statement sees what the writers it waited for committed; a row lock
/// taken after such a wait reads the row again and skips it when it no longer matches.
impl WorkflowSql for PgDialect {
    // Its saves take turns; other writers' key locks (the versions' and fires' references) pass.
    const HOLD_WORKFLOW: &'static str =
        "SELECT owner_id FROM workflows WHERE id = $1 FOR NO KEY UPDATE";
    const INSERT_WORKFLOW: &'static str = concat!(
        "INSERT INTO workflows (id, owner_id, name, description, latest_version, enabled, \
         scheduled, webhook_secret, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 1, true, $5, NULL, $6, $6) RETURNING ",
        workflow_columns!()
    );
    const NEXT_VERSION: &'static str = concat!(
        "UPDATE workflows SET name = $2, description = $3, scheduled = $4, updated_at = $5, \
         latest_version = latest_version + 1 WHERE id = $1 RETURNING ",
        workflow_columns!()
    );
    const INSERT_VERSION: &'static str = concat!(
        "INSERT INTO workflow_versions (workflow_id, version, document, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING ",
        workflow_version_columns!()
    );
    const GET_WORKFLOW: &'static str = concat!(
        "SELECT ",
        workflow_columns!(),
        " FROM workflows WHERE id = $1"
    );
    const FIND_WORKFLOW: &'static str = concat!(
        "SELECT ",
        workflow_columns!(),
        " FROM workflows WHERE owner_id = $1 AND name = $2"
    );
    const LIST_WORKFLOWS: &'static str = concat!(
        "SELECT ",
        workflow_columns!(),
        " FROM workflows WHERE ($1::uuid IS NULL OR owner_id = $1) \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    const GET_VERSION: &'static str = concat!(
        "SELECT ",
        workflow_version_columns!(),
        " FROM workflow_versions WHERE workflow_id = $1 AND version = $2"
    );
    const LIST_VERSIONS: &'static str = concat!(
        "SELECT ",
        workflow_version_columns!(),
        " FROM workflow_versions WHERE workflow_id = $1 ORDER BY version DESC LIMIT $2"
    );
    const SET_ENABLED: &'static str =
        "UPDATE workflows SET enabled = $2, updated_at = $3 WHERE id = $1";
    const SET_WEBHOOK_SECRET: &'static str =
        "UPDATE workflows SET webhook_secret = $2, updated_at = $3 WHERE id = $1";
    const DELETE_WORKFLOW: &'static str = "DELETE FROM workflows WHERE id = $1";
    const SCHEDULED: &'static str = concat!(
        "SELECT ",
        workflow_columns!(),
        " FROM workflows WHERE enabled AND scheduled ORDER BY created_at, id"
    );
    const LAST_FIRES: &'static str = "SELECT workflow_id, trigger_id, fired_at \
         FROM workflow_schedule_fires WHERE workflow_id = $1 ORDER BY trigger_id";

    // The workflow's row, not the version's: every insert of the workflow takes turns on it,
    // so its active runs and trigger keys are counted with no insert of it under way. A
    // delete of the workflow waits for the insert (and the insert for it: then it finds
    // nothing).
    const HOLD_VERSION: &'static str = "SELECT v.version FROM workflows AS w \
         JOIN workflow_versions AS v ON v.workflow_id = w.id AND v.version = $2 \
         WHERE w.id = $1 FOR NO KEY UPDATE OF w";
    // The principal's inserts into other workflows take turns on a transaction-scoped advisory
    // lock: a row lock on the account would also hold its logins and session writes back. Two
    // principals whose ids hash alike only take turns needlessly. Taken after the workflow's
    // row, always in that order, so no two inserts wait for each other in a circle. The
    // two-key form never meets the one-key locks of leadership and the audit chain; its class
    // is 0x57464C57 ("WFLW").
    const HOLD_PRINCIPAL: &'static str =
        "SELECT pg_advisory_xact_lock(1464224855, hashtext($1::text))";
    const FIND_BY_TRIGGER_KEY: &'static str = concat!(
        "SELECT ",
        workflow_run_columns!(),
        " FROM workflow_runs WHERE workflow_id = $1 AND trigger_key = $2"
    );
    const COUNT_ACTIVE_FOR_USER: &'static str = concat!(
        "SELECT count(*) AS n FROM workflow_runs WHERE principal_user = $1 AND status IN ",
        active!()
    );
    const COUNT_ACTIVE_FOR_WORKFLOW: &'static str = concat!(
        "SELECT count(*) AS n FROM workflow_runs WHERE workflow_id = $1 AND status IN ",
        active!()
    );
    const INSERT_RUN: &'static str = concat!(
        "INSERT INTO workflow_runs (id, workflow_id, version, principal_user, principal_token, \
         trigger, trigger_key, status, input, parent_run, parent_step, signal, deadline_at, \
         created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10, 0, $11, $12) RETURNING ",
        workflow_run_columns!()
    );
    const RECORD_FIRE: &'static str = "INSERT INTO workflow_schedule_fires \
         (workflow_id, trigger_id, fired_at) VALUES ($1, $2, $3) \
         ON CONFLICT (workflow_id, trigger_id) DO UPDATE SET fired_at = excluded.fired_at \
         WHERE excluded.fired_at > workflow_schedule_fires.fired_at";
    const GET_RUN: &'static str = concat!(
        "SELECT ",
        workflow_run_columns!(),
        " FROM workflow_runs WHERE id = $1"
    );
    const LIST_RUNS: &'static str = concat!(
        "SELECT ",
        workflow_run_columns!(),
        " FROM workflow_runs \
         WHERE ($1::uuid IS NULL \
           OR workflow_id IN (SELECT id FROM workflows WHERE owner_id = $1)) \
         AND ($2::uuid IS NULL OR workflow_id = $2) AND ($3::text IS NULL OR status = $3) \
         AND ($4::text IS NULL OR trigger = $4) \
         AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $7"
    );

    // Replicas claiming at once skip each other's candidate (SKIP LOCKED) and take the next.
    const CLAIM: &'static str = concat!(
        "UPDATE workflow_runs SET status = 'running', lease_node = $1, lease_token = $2, \
         lease_expires_at = $4, wake_at = NULL, started_at = coalesce(started_at, $5) \
         WHERE id = (SELECT id FROM workflow_runs \
           WHERE status = 'queued' OR (status = 'waiting' AND wake_at <= $3) \
             OR (status = 'running' AND lease_expires_at < $3) \
           ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING ",
        workflow_run_columns!()
    );
    const RENEW: &'static str = "UPDATE workflow_runs SET lease_expires_at = $3 \
         WHERE id = $1 AND lease_token = $2 AND status = 'running'";
    const PARK: &'static str = "UPDATE workflow_runs SET status = 'waiting', wake_at = $4, \
         lease_node = NULL, lease_token = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND lease_token = $2 AND status = 'running' AND signal = $3";
    // Shared: the executor's own step writes pass each other; a claim, a cancellation or an
    // end of the run waits for them, and they for it (then the token no longer matches).
    const HOLD_LEASED_RUN: &'static str = "SELECT id FROM workflow_runs \
         WHERE id = $1 AND lease_token = $2 AND status = 'running' FOR SHARE";
    const READ_PARENT: &'static str =
        "SELECT parent_run, parent_step FROM workflow_runs WHERE id = $1";
    const HOLD_ACTIVE_RUN: &'static str = concat!(
        "SELECT id FROM workflow_runs WHERE id = $1 AND status IN ",
        active!(),
        " FOR NO KEY UPDATE"
    );
    const FINISH: &'static str = "UPDATE workflow_runs SET status = $3, output = $4, \
         error = $5, finished_at = $6, wake_at = NULL, \
         lease_node = NULL, lease_token = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND lease_token = $2 AND status = 'running' RETURNING id";
    const END_WAITING_STEP: &'static str = "UPDATE workflow_steps SET status = $3, \
         output = $4, branch = $5, error = $6, finished_at = $7, wake_at = NULL \
         WHERE run_id = $1 AND step_key = $2 AND status = 'waiting'";
    const SIGNAL: &'static str = "UPDATE workflow_runs SET signal = signal + 1, \
         status = CASE status WHEN 'waiting' THEN 'queued' ELSE status END, \
         wake_at = CASE status WHEN 'waiting' THEN NULL ELSE wake_at END \
         WHERE id = $1";
    const CANCEL_RUN: &'static str = concat!(
        "UPDATE workflow_runs SET status = 'cancelled', finished_at = $2, wake_at = NULL, \
         lease_node = NULL, lease_token = NULL, lease_expires_at = NULL, \
         signal = signal + 1 WHERE id = $1 AND status IN ",
        active!(),
        " RETURNING id"
    );
    const CANCEL_CHILDREN: &'static str = concat!(
        "UPDATE workflow_runs SET status = 'cancelled', finished_at = $2, wake_at = NULL, \
         lease_node = NULL, lease_token = NULL, lease_expires_at = NULL, \
         signal = signal + 1 WHERE parent_run = $1 AND status IN ",
        active!(),
        " RETURNING id"
    );
    const CANCEL_STEPS: &'static str = "UPDATE workflow_steps SET status = 'cancelled', \
         finished_at = $2, wake_at = NULL \
         WHERE run_id = $1 AND status IN ('running', 'waiting')";
    const RETRY: &'static str = "UPDATE workflow_runs SET status = 'queued', output = NULL, \
         error = NULL, finished_at = NULL, wake_at = NULL, deadline_at = $2, \
         lease_node = NULL, lease_token = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND status IN ('failed', 'cancelled')";
    const DELETE_UNFINISHED_STEPS: &'static str = "DELETE FROM workflow_steps \
         WHERE run_id = $1 AND status IN ('failed', 'cancelled', 'running', 'waiting')";
    const STEPS: &'static str = concat!(
        "SELECT ",
        workflow_step_columns!(),
        " FROM workflow_steps WHERE run_id = $1 ORDER BY started_at, step_key"
    );
    const WAITING_STEPS: &'static str = concat!(
        "SELECT ",
        workflow_step_columns!(),
        " FROM workflow_steps AS s WHERE s.status = 'waiting' \
         AND EXISTS (SELECT 1 FROM workflow_runs AS r \
           WHERE r.id = s.run_id AND r.status IN ('waiting', 'running')) \
         ORDER BY s.started_at DESC, s.run_id DESC, s.step_key DESC LIMIT $1"
    );
    const START_STEP: &'static str = "INSERT INTO workflow_steps (run_id, step_key, node_id, \
         status, attempt, input, started_at) VALUES ($1, $2, $3, 'running', $4, $5, $6) \
         ON CONFLICT (run_id, step_key) DO UPDATE SET node_id = excluded.node_id, \
           status = 'running', attempt = excluded.attempt, input = excluded.input, \
           output = NULL, branch = NULL, error = NULL, wake_at = NULL, \
           started_at = excluded.started_at, finished_at = NULL";
    const END_STEP: &'static str = "UPDATE workflow_steps SET status = $3, output = $4, \
         branch = $5, error = $6, wake_at = $7, finished_at = $8 \
         WHERE run_id = $1 AND step_key = $2";
    const NOTE_STEP: &'static str = "UPDATE workflow_steps SET output = $3 \
         WHERE run_id = $1 AND step_key = $2 AND status = 'running'";
    const PRUNE: &'static str = "DELETE FROM workflow_runs WHERE id IN (\
         SELECT r.id FROM workflow_runs AS r WHERE r.finished_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM workflow_runs AS c \
           WHERE c.parent_run = r.id AND c.finished_at IS NULL) \
         ORDER BY r.finished_at, r.id LIMIT $2)";
}
