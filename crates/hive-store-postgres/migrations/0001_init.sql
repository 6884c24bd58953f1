-- History of background job runs.
CREATE TABLE job_runs (
    id          uuid        PRIMARY KEY,
    job         text        NOT NULL CHECK (length(job) BETWEEN 1 AND 100),
    node_id     text        NOT NULL CHECK (length(node_id) BETWEEN 1 AND 100),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed')),
    detail      text        NULL CHECK (detail IS NULL OR length(detail) <= 1000),
    -- A run has an end time exactly when it has ended.
    CHECK ((outcome = 'running') = (finished_at IS NULL))
);

CREATE INDEX job_runs_newest ON job_runs (started_at DESC, id DESC);
CREATE INDEX job_runs_by_job_newest ON job_runs (job, started_at DESC, id DESC);
-- For retention (prune_finished_before).
CREATE INDEX job_runs_finished ON job_runs (finished_at) WHERE finished_at IS NOT NULL;
