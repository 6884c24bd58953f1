-- Agents: what an operator registers. `runtime` holds the kind's settings as JSON text, with
-- credentials only as secret ids (never values); `skills` is the A2A skills' JSON array text.
-- The name is unique in the instance: it names the agent's skill in the instance's card.
CREATE TABLE agents (
    id                  TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    owner_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                TEXT    NOT NULL UNIQUE
                        CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9-]*'),
    description         TEXT    NOT NULL CHECK (length(description) <= 2000),
    visibility          TEXT    NOT NULL CHECK (visibility IN ('private', 'federation', 'public')),
    kind                TEXT    NOT NULL CHECK (kind IN ('remote', 'llm', 'conformance')),
    runtime             TEXT    NOT NULL CHECK (length(CAST(runtime AS BLOB)) <= 65536),
    skills              TEXT    NOT NULL CHECK (length(CAST(skills AS BLOB)) <= 65536),
    requests_per_minute INTEGER NOT NULL CHECK (requests_per_minute BETWEEN 0 AND 4294967295),
    tokens_per_day      INTEGER NOT NULL CHECK (tokens_per_day >= 0),
    concurrent_tasks    INTEGER NOT NULL CHECK (concurrent_tasks BETWEEN 0 AND 4294967295),
    timeout_seconds     INTEGER NOT NULL CHECK (timeout_seconds BETWEEN 0 AND 4294967295),
    status              TEXT    NOT NULL
                        CHECK (status IN ('created', 'starting', 'ready', 'stopped', 'error')),
    status_detail       TEXT    NOT NULL CHECK (length(status_detail) <= 500),
    version             INTEGER NOT NULL CHECK (version >= 1),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE INDEX agents_newest ON agents (created_at DESC, id DESC);
CREATE INDEX agents_by_owner ON agents (owner_id, created_at DESC, id DESC);
