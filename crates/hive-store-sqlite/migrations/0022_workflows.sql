-- Workflows: each owner's workflows, the versions of each one's document, their runs, each
-- run's journal of steps, and the last fire of each schedule trigger. The caps mirror
-- `hive_store::workflows` (the store refuses a value over them first, with a clearer word).
-- The run tables are written in time order on every step, so their time indexes ascend (see
-- 0020) and newest-first reads walk them backwards. New tables only: the rows already stored
-- are not touched.

-- A workflow: unique by name per owner, gone with its owner's account. `latest_version` is
-- its newest version's number; `scheduled` says that version has schedule triggers, so the
-- scheduler reads only those rows (with `enabled`). The webhook secret is sealed by the vault
-- (its own encoding, a few hundred bytes at most).
CREATE TABLE workflows (
    id             TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    owner_id       TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description    TEXT    NOT NULL CHECK (length(description) <= 2000),
    latest_version INTEGER NOT NULL CHECK (latest_version >= 1),
    enabled        INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    scheduled      INTEGER NOT NULL CHECK (scheduled IN (0, 1)),
    webhook_secret BLOB    CHECK (length(webhook_secret) BETWEEN 1 AND 4096),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CONSTRAINT workflows_name_per_owner UNIQUE (owner_id, name)
) STRICT;

CREATE INDEX workflows_newest ON workflows (created_at, id);
-- An owner's list; the unique constraint above also finds the owner's rows for the cascade.
CREATE INDEX workflows_by_owner ON workflows (owner_id, created_at, id);
CREATE INDEX workflows_scheduled ON workflows (created_at, id)
    WHERE enabled = 1 AND scheduled = 1;

-- The versions of a workflow's document, as saved (the service validated and capped it).
-- Versions are never rewritten. The author's account may go; the version stays.
CREATE TABLE workflow_versions (
    workflow_id TEXT    NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL CHECK (version >= 1),
    document    TEXT    NOT NULL CHECK (length(CAST(document AS BLOB)) <= 262144),
    created_by  TEXT    REFERENCES users (id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, version)
) STRICT;

-- The account's deletion finds its versions through this.
CREATE INDEX workflow_versions_by_creator ON workflow_versions (created_by);

-- One run of one version. It references the version (so a run never names a version that is
-- not stored) and goes with it, hence with the workflow. The principal's account takes its
-- runs with it: a run acts as that user and has no one to act as once the account is gone.
--
-- `principal_token` references nothing on purpose: the executor checks the token again before
-- every step, and a token that is gone then fails the run. ON DELETE SET NULL would instead
-- turn the run into one acting with the user's whole authority (wider than the token's scopes),
-- and CASCADE would erase the runs' history with the token.
--
-- `trigger_key` makes a triggered run unique within its workflow (the partial unique index
-- below): a schedule's fire time, a webhook's signature, a parent's step.
--
-- The lease: `lease_token` is the fencing token of the replica (`lease_node`) executing the
-- run until `lease_expires_at`; every write of the executor names it. The three are set
-- exactly while the run is running. `signal` counts what reached the run from outside (a
-- decision, a sub-workflow's end, a cancellation); an executor parks the run only if it did
-- not move. `parent_run` and `parent_step` name the step whose sub-workflow this run is; the
-- parent may be pruned before its child, leaving the step's key without its run.
CREATE TABLE workflow_runs (
    id               TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    workflow_id      TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    principal_user   TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    principal_token  TEXT    CHECK (length(principal_token) = 36),
    trigger          TEXT    NOT NULL
                     CHECK (trigger IN ('manual', 'webhook', 'schedule', 'a2a', 'workflow')),
    trigger_key      TEXT    CHECK (length(trigger_key) BETWEEN 1 AND 200),
    status           TEXT    NOT NULL
                     CHECK (status IN ('queued', 'running', 'waiting', 'succeeded', 'failed',
                                       'cancelled')),
    input            TEXT    NOT NULL CHECK (length(CAST(input AS BLOB)) <= 1048576),
    output           TEXT    CHECK (length(CAST(output AS BLOB)) <= 1048576),
    error            TEXT    CHECK (length(error) <= 4000),
    parent_run       TEXT    REFERENCES workflow_runs (id) ON DELETE SET NULL,
    parent_step      TEXT    CHECK (length(parent_step) BETWEEN 1 AND 200),
    lease_node       TEXT    CHECK (length(lease_node) BETWEEN 1 AND 200),
    lease_token      TEXT    CHECK (length(lease_token) = 36),
    lease_expires_at INTEGER,
    wake_at          INTEGER,
    signal           INTEGER NOT NULL CHECK (signal >= 0),
    deadline_at      INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    FOREIGN KEY (workflow_id, version)
        REFERENCES workflow_versions (workflow_id, version) ON DELETE CASCADE,
    -- A parent's run may be pruned (its reference nulled), never the step's key alone.
    CONSTRAINT workflow_runs_parent CHECK (parent_run IS NULL OR parent_step IS NOT NULL),
    CONSTRAINT workflow_runs_lease CHECK (
        (status = 'running') = (lease_token IS NOT NULL)
        AND (lease_token IS NULL) = (lease_node IS NULL)
        AND (lease_token IS NULL) = (lease_expires_at IS NULL)
    ),
    CONSTRAINT workflow_runs_finished CHECK (
        (status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)
    )
) STRICT;

CREATE UNIQUE INDEX workflow_runs_trigger_key ON workflow_runs (workflow_id, trigger_key)
    WHERE trigger_key IS NOT NULL;
-- Lists: everyone's, and one workflow's (also the cascade from its versions). An owner's runs
-- are those of the owner's workflows: one probe of the workflow index per workflow.
CREATE INDEX workflow_runs_newest ON workflow_runs (created_at, id);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (workflow_id, created_at, id);
-- What a claim looks for, oldest first: queued runs, waiting runs by their wake time, running
-- runs by the end of their lease. Partial: finished runs, most of the table, are left out.
CREATE INDEX workflow_runs_queued ON workflow_runs (created_at, id) WHERE status = 'queued';
CREATE INDEX workflow_runs_waking ON workflow_runs (wake_at) WHERE status = 'waiting';
CREATE INDEX workflow_runs_leased ON workflow_runs (lease_expires_at) WHERE status = 'running';
-- The caps count active runs per principal and per workflow; the first also serves the
-- cascade from the principal's account.
CREATE INDEX workflow_runs_by_principal ON workflow_runs (principal_user, status);
CREATE INDEX workflow_runs_active_by_workflow ON workflow_runs (workflow_id)
    WHERE status IN ('queued', 'running', 'waiting');
-- A run's sub-workflows (cancellation, pruning, the parent's deletion).
CREATE INDEX workflow_runs_by_parent ON workflow_runs (parent_run) WHERE parent_run IS NOT NULL;
-- Pruning takes the runs that finished first.
CREATE INDEX workflow_runs_finished ON workflow_runs (finished_at) WHERE finished_at IS NOT NULL;

-- A run's journal: one row per step (a node, or a map's item `node[i]`), its latest attempt.
-- A step is running or waiting until it ends; only then does it have `finished_at`.
CREATE TABLE workflow_steps (
    run_id      TEXT    NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    step_key    TEXT    NOT NULL CHECK (length(step_key) BETWEEN 1 AND 200),
    node_id     TEXT    NOT NULL CHECK (length(node_id) BETWEEN 1 AND 200),
    status      TEXT    NOT NULL
                CHECK (status IN ('running', 'waiting', 'succeeded', 'failed', 'skipped',
                                  'cancelled')),
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    input       TEXT    CHECK (length(CAST(input AS BLOB)) <= 1048576),
    output      TEXT    CHECK (length(CAST(output AS BLOB)) <= 1048576),
    branch      TEXT    CHECK (length(branch) <= 200),
    error       TEXT    CHECK (length(error) <= 4000),
    wake_at     INTEGER,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (run_id, step_key),
    CONSTRAINT workflow_steps_finished CHECK (
        (status IN ('running', 'waiting')) = (finished_at IS NULL)
    )
) STRICT;

-- The steps waiting for a decision or a sub-workflow, newest first (the approvals waiting
-- for someone), without reading the finished ones.
CREATE INDEX workflow_steps_waiting ON workflow_steps (started_at) WHERE status = 'waiting';

-- The last fire of each schedule trigger of a workflow (the trigger's id in the document):
-- written with the run it started, so a replica taking the scheduler over neither repeats
-- nor forgets a fire.
CREATE TABLE workflow_schedule_fires (
    workflow_id TEXT    NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    trigger_id  TEXT    NOT NULL CHECK (length(trigger_id) BETWEEN 1 AND 200),
    fired_at    INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, trigger_id)
) STRICT;
