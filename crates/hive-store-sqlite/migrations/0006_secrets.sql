-- Secrets: metadata in clear, the value sealed by the vault (AES-256-GCM, bound to id and version).
CREATE TABLE secrets (
    id          TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    owner_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description TEXT    NOT NULL CHECK (length(description) <= 500),
    version     INTEGER NOT NULL CHECK (version >= 1),
    key_id      INTEGER NOT NULL REFERENCES vault_keys (id),
    value       TEXT    NOT NULL CHECK (length(value) <= 140000),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (owner_id, name)
) STRICT;

CREATE INDEX secrets_newest ON secrets (created_at DESC, id DESC);
CREATE INDEX secrets_by_owner ON secrets (owner_id, created_at DESC, id DESC);
CREATE INDEX secrets_by_key ON secrets (key_id);
