-- Agents: what an operator registers. `runtime` holds the kind's settings as JSON text, with
-- credentials only as secret ids (never values); `skills` is the A2A skills' JSON array text.
-- The name is unique in the instance: it names the agent's skill in the instance's card.
CREATE TABLE agents (
    id                  uuid        PRIMARY KEY,
    owner_id            uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                text        NOT NULL UNIQUE
                        CHECK (name COLLATE "C" ~ '^[a-z0-9-]{1,64}$'),
    description         text        NOT NULL CHECK (char_length(description) <= 2000),
    visibility          text        NOT NULL CHECK (visibility IN ('private', 'federation', 'public')),
    kind                text        NOT NULL CHECK (kind IN ('remote', 'llm', 'conformance')),
    runtime             text        NOT NULL CHECK (octet_length(runtime) <= 65536),
    skills              text        NOT NULL CHECK (octet_length(skills) <= 65536),
    requests_per_minute bigint      NOT NULL CHECK (requests_per_minute BETWEEN 0 AND 4294967295),
    tokens_per_day      bigint      NOT NULL CHECK (tokens_per_day >= 0),
    concurrent_tasks    bigint      NOT NULL CHECK (concurrent_tasks BETWEEN 0 AND 4294967295),
    timeout_seconds     bigint      NOT NULL CHECK (timeout_seconds BETWEEN 0 AND 4294967295),
    status              text        NOT NULL
                        CHECK (status IN ('created', 'starting', 'ready', 'stopped', 'error')),
    status_detail       text        NOT NULL CHECK (char_length(status_detail) <= 500),
    version             bigint      NOT NULL CHECK (version >= 1),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);

CREATE INDEX agents_newest ON agents (created_at DESC, id DESC);
CREATE INDEX agents_by_owner ON agents (owner_id, created_at DESC, id DESC);
