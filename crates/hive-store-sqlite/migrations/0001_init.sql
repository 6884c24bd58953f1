-- History of background job runs. Times are unix microseconds, ids hyphenated UUIDs.
CREATE TABLE job_runs (
    id          TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    job         TEXT    NOT NULL CHECK (length(job) BETWEEN 1 AND 100),
    node_id     TEXT    NOT NULL CHECK (length(node_id) BETWEEN 1 AND 100),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed')),
    detail      TEXT    NULL CHECK (detail IS NULL OR length(detail) <= 1000),
    -- A run has an end time exactly when it has ended.
    CHECK ((outcome = 'running') = (finished_at IS NULL))
) STRICT;

CREATE INDEX job_runs_newest ON job_runs (started_at DESC, id DESC);
CREATE INDEX job_runs_by_job_newest ON job_runs (job, started_at DESC, id DESC);
-- For retention (prune_finished_before).
CREATE INDEX job_runs_finished ON job_runs (finished_at) WHERE finished_at IS NOT NULL;
