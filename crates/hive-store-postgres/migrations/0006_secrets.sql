-- Secrets: metadata in clear, the value sealed by the vault (AES-256-GCM, bound to id and version).
CREATE TABLE secrets (
    id          uuid        PRIMARY KEY,
    owner_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description text        NOT NULL CHECK (length(description) <= 500),
    version     bigint      NOT NULL CHECK (version >= 1),
    key_id      bigint      NOT NULL REFERENCES vault_keys (id),
    value       text        NOT NULL CHECK (length(value) <= 140000),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (owner_id, name)
);

CREATE INDEX secrets_newest ON secrets (created_at DESC, id DESC);
CREATE INDEX secrets_by_owner ON secrets (owner_id, created_at DESC, id DESC);
CREATE INDEX secrets_by_key ON secrets (key_id);
