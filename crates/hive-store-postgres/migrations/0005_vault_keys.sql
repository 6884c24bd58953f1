-- The vault's data keys, each wrapped (AES-256-GCM) under a subkey of ENCRYPTION_KEY.
CREATE TABLE vault_keys (
    id         bigint      PRIMARY KEY CHECK (id >= 1),
    wrapped    text        NOT NULL CHECK (length(wrapped) <= 512),
    created_at timestamptz NOT NULL
);
