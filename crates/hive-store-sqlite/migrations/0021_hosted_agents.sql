-- no-transaction
-- Hosted agents: `agents.kind` also takes 'hosted' and `agents.status` also 'paused'; the
-- versions of each hosted agent's bundle; the lease that says which replica runs it.
--
-- SQLite cannot alter a CHECK constraint, so `agents` is rebuilt: copied aside, dropped,
-- created again with the wider CHECKs (otherwise the same, STRICT), filled from the copy, and
-- its indexes made again. Dropping a table with foreign keys on deletes its rows first, which
-- would cascade to every table that references agents (conversations): foreign keys must be
-- off, and `PRAGMA foreign_keys` does nothing inside a transaction, hence `no-transaction`
-- above and the transaction this file opens itself, after turning them off. Nothing is
-- renamed, so no other table's reference to `agents` is rewritten: `conversations` keeps
-- `REFERENCES agents (id)`, which names the new table. Every row keeps its id, so every
-- reference still holds; the number of broken references (PRAGMA foreign_key_check) is
-- counted before and after, and the migration fails, rolled back, if the rebuild added any.
--
-- Crash safety: the whole change is one transaction, so a crash leaves the old schema or the
-- new one. sqlx records the migration after this file, outside it: a crash in between runs the
-- file again on the next start, so it is idempotent (the rebuild again, `IF NOT EXISTS` for
-- the new tables). A failure half-way leaves the connection in this transaction with foreign
-- keys off: `SqliteStore::migrate` closes the connection that ran the migrations, which rolls
-- it back, and the next write opens one with the store's settings.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

DROP TABLE IF EXISTS temp.hive_0021_references;
CREATE TEMP TABLE hive_0021_references (
    broken_before INTEGER NOT NULL,
    broken_after  INTEGER CHECK (broken_after <= broken_before)
);
INSERT INTO temp.hive_0021_references (broken_before)
    SELECT count(*) FROM pragma_foreign_key_check;

DROP TABLE IF EXISTS temp.hive_0021_agents;
CREATE TEMP TABLE hive_0021_agents AS SELECT * FROM agents;
DROP TABLE agents;

CREATE TABLE agents (
    id                  TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    owner_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                TEXT    NOT NULL UNIQUE
                        CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9-]*'),
    description         TEXT    NOT NULL CHECK (length(description) <= 2000),
    visibility          TEXT    NOT NULL CHECK (visibility IN ('private', 'federation', 'public')),
    kind                TEXT    NOT NULL
                        CHECK (kind IN ('remote', 'llm', 'conformance', 'hosted')),
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
FROM temp.hive_0021_agents;
DROP TABLE temp.hive_0021_agents;

CREATE INDEX agents_newest ON agents (created_at DESC, id DESC);
CREATE INDEX agents_by_owner ON agents (owner_id, created_at DESC, id DESC);

-- The highest version number each agent's bundles reached: pruning deletes bundles, never
-- this, so a number is never given twice.
CREATE TABLE IF NOT EXISTS agent_bundle_counters (
    agent_id     TEXT    PRIMARY KEY NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    last_version INTEGER NOT NULL CHECK (last_version >= 1)
) STRICT;

-- The versions of a hosted agent's bundle: the tar.gz archive itself, its SHA-256 (lower-case
-- hex) and size, and the manifest's text. `active` marks the one the agent runs: one at most
-- per agent (the partial unique index). The uploader's account may go; the bundle stays.
CREATE TABLE IF NOT EXISTS agent_bundles (
    agent_id   TEXT    NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL CHECK (version >= 1),
    sha256     TEXT    NOT NULL
               CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    size_bytes INTEGER NOT NULL CHECK (size_bytes = length(archive)),
    manifest   TEXT    NOT NULL CHECK (length(CAST(manifest AS BLOB)) <= 65536),
    archive    BLOB    NOT NULL CHECK (length(archive) <= 67108864),
    created_by TEXT    REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    active     INTEGER NOT NULL CHECK (active IN (0, 1)),
    PRIMARY KEY (agent_id, version)
) STRICT;

CREATE UNIQUE INDEX IF NOT EXISTS agent_bundles_one_active ON agent_bundles (agent_id)
    WHERE active = 1;
-- The account's deletion finds its bundles through this.
CREATE INDEX IF NOT EXISTS agent_bundles_by_creator ON agent_bundles (created_by);

-- Which replica (node) runs a hosted agent, and where the others reach it, until `expires_at`
-- unless it renews. A replica takes an expired lease over in one statement.
CREATE TABLE IF NOT EXISTS hosted_leases (
    agent_id   TEXT    PRIMARY KEY NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    node       TEXT    NOT NULL CHECK (length(node) BETWEEN 1 AND 200),
    address    TEXT    NOT NULL CHECK (length(address) <= 2048),
    expires_at INTEGER NOT NULL
) STRICT;

-- A replica renews all its leases at once.
CREATE INDEX IF NOT EXISTS hosted_leases_by_node ON hosted_leases (node, expires_at);

UPDATE temp.hive_0021_references
    SET broken_after = (SELECT count(*) FROM pragma_foreign_key_check);
DROP TABLE temp.hive_0021_references;

COMMIT;
PRAGMA foreign_keys = ON;
