-- no-transaction
-- Workflows published as agents: `agents.kind` also takes 'workflow' (an agent a workflow's
-- a2a trigger makes and keeps; its runtime names the workflow).
--
-- SQLite cannot alter a CHECK constraint, so `agents` is rebuilt as 0021 rebuilt it: copied
-- aside, dropped, created again with the wider CHECK (otherwise the same, STRICT), filled from
-- the copy, and its indexes made again. Since 0021 more tables reference agents
-- (conversations, agent_bundle_counters, agent_bundles, hosted_leases): dropping a table with
-- foreign keys on deletes its rows first, which would cascade to all of them, so foreign keys
-- must be off, and `PRAGMA foreign_keys` does nothing inside a transaction, hence
-- `no-transaction` above and the transaction this file opens itself, after turning them off.
-- Nothing is renamed, so no other table's reference to `agents` is rewritten: each keeps
-- `REFERENCES agents (id)`, which names the new table. Every row keeps its id, so every
-- reference still holds; the number of broken references (PRAGMA foreign_key_check) is counted
-- before and after, and the migration fails, rolled back, if the rebuild added any.
--
-- Crash safety: the whole change is one transaction, so a crash leaves the old schema or the
-- new one. sqlx records the migration after this file, outside it: a crash in between runs the
-- file again on the next start, so it is idempotent (the rebuild again, from the rebuilt
-- table). A failure half-way leaves the connection in this transaction with foreign keys off:
-- `SqliteStore::migrate` closes the connection that ran the migrations, which rolls it back,
-- and the next write opens one with the store's settings.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

DROP TABLE IF EXISTS temp.hive_0023_references;
CREATE TEMP TABLE hive_0023_references (
    broken_before INTEGER NOT NULL,
    broken_after  INTEGER CHECK (broken_after <= broken_before)
);
INSERT INTO temp.hive_0023_references (broken_before)
    SELECT count(*) FROM pragma_foreign_key_check;

DROP TABLE IF EXISTS temp.hive_0023_agents;
CREATE TEMP TABLE hive_0023_agents AS SELECT * FROM agents;
DROP TABLE agents;

CREATE TABLE agents (
    id                  TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    owner_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                TEXT    NOT NULL UNIQUE
                        CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9-]*'),
    description         TEXT    NOT NULL CHECK (length(description) <= 2000),
    visibility          TEXT    NOT NULL CHECK (visibility IN ('private', 'federation', 'public')),
    kind                TEXT    NOT NULL
                        CHECK (kind IN ('remote', 'llm', 'conformance', 'hosted', 'workflow')),
    runtime             TEXT    NOT NULL CHECK (length(CAST(runtime AS BLOB)) <= 65536),
    skills              TEXT    NOT NULL CHECK (length(CAST(skills AS BLOB)) <= 65536),
    requests_per_minute INTEGER NOT NULL CHECK (requests_per_minute BETWEEN 0 AND 4294967295),
    tokens_per_day      INTEGER NOT NULL CHECK (tokens_per_day >= 0),
    concurrent_tasks    INTEGER NOT NULL CHECK (concurrent_tasks BETWEEN 0 AND 4294967295),
    timeout_seconds     INTEGER NOT NULL CHECK (timeout_seconds BETWEEN 0 AND 4294967295),
    status              TEXT    NOT NULL
                        CHECK (status IN ('created', 'starting', 'ready', 'stopped', 'error',
                                          'paused')),
    status_detail       TEXT    NOT NULL CHECK (length(status_detail) <= 500),
    version             INTEGER NOT NULL CHECK (version >= 1),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

INSERT INTO agents (
    id, owner_id, name, description, visibility, kind, runtime, skills, requests_per_minute,
    tokens_per_day, concurrent_tasks, timeout_seconds, status, status_detail, version,
    created_at, updated_at
)
SELECT
    id, owner_id, name, description, visibility, kind, runtime, skills, requests_per_minute,
    tokens_per_day, concurrent_tasks, timeout_seconds, status, status_detail, version,
    created_at, updated_at
FROM temp.hive_0023_agents;
DROP TABLE temp.hive_0023_agents;

CREATE INDEX agents_newest ON agents (created_at DESC, id DESC);
CREATE INDEX agents_by_owner ON agents (owner_id, created_at DESC, id DESC);

UPDATE temp.hive_0023_references
    SET broken_after = (SELECT count(*) FROM pragma_foreign_key_check);
DROP TABLE temp.hive_0023_references;

COMMIT;
PRAGMA foreign_keys = ON;
