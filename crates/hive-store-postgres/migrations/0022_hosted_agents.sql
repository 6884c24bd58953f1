-- Hosted agents: `agents.kind` also takes 'hosted' and `agents.status` also 'paused'; the
-- versions of each hosted agent's bundle; the lease that says which replica runs it.
--
-- The two CHECKs carry PostgreSQL's default names (0015 left them unnamed); they are replaced
-- in one ALTER TABLE, which checks the existing rows against the new ones once (every row
-- passes: the new ones only add a word).
ALTER TABLE agents
    DROP CONSTRAINT agents_kind_check,
    ADD CONSTRAINT agents_kind_check
        CHECK (kind IN ('remote', 'llm', 'conformance', 'hosted')),
    DROP CONSTRAINT agents_status_check,
    ADD CONSTRAINT agents_status_check
        CHECK (status IN ('created', 'starting', 'ready', 'stopped', 'error', 'paused'));

-- The highest version number each agent's bundles reached: pruning deletes bundles, never
-- this, so a number is never given twice. A push takes the next number with one UPSERT on this
-- row, whose lock then keeps the agent's other bundle writers waiting until it commits.
CREATE TABLE agent_bundle_counters (
    agent_id     uuid   PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    last_version bigint NOT NULL CHECK (last_version >= 1)
);

-- The versions of a hosted agent's bundle: the tar.gz archive itself, its SHA-256 (lower-case
-- hex) and size, and the manifest's text. `active` marks the one the agent runs: one at most
-- per agent (the partial unique index). The uploader's account may go; the bundle stays.
CREATE TABLE agent_bundles (
    agent_id   uuid        NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    version    bigint      NOT NULL CHECK (version >= 1),
    sha256     text        NOT NULL CHECK (sha256 COLLATE "C" ~ '^[0-9a-f]{64}$'),
    size_bytes bigint      NOT NULL CHECK (size_bytes = octet_length(archive)),
    manifest   text        NOT NULL CHECK (octet_length(manifest) <= 65536),
    archive    bytea       NOT NULL CHECK (octet_length(archive) <= 67108864),
    created_by uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    active     boolean     NOT NULL,
    PRIMARY KEY (agent_id, version)
);

CREATE UNIQUE INDEX agent_bundles_one_active ON agent_bundles (agent_id) WHERE active;
-- The account's deletion finds its bundles through this.
CREATE INDEX agent_bundles_by_creator ON agent_bundles (created_by);

-- Which replica (node) runs a hosted agent, and where the others reach it, until `expires_at`
-- unless it renews. A replica takes an expired lease over in one statement.
CREATE TABLE hosted_leases (
    agent_id   uuid        PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    node       text        NOT NULL CHECK (char_length(node) BETWEEN 1 AND 200),
    address    text        NOT NULL CHECK (char_length(address) <= 2048),
    expires_at timestamptz NOT NULL
);

-- A replica renews all its leases at once.
CREATE INDEX hosted_leases_by_node ON hosted_leases (node, expires_at);
